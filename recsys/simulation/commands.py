"""Command line of the simulator: `recsys simulate` and the summary `make run` prints.

The simulator's modules are imported inside the commands, so that `recsys --help` and the
other stages' commands do not pay for loading them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from recsys.config import DEFAULT_SEED, SIMULATED_DIR

if TYPE_CHECKING:
    from recsys.simulation.config import SimulationConfig

T = TypeVar("T")


def simulate(
    preset: Annotated[str, typer.Option(help="Size preset: tiny (tests), demo or large.")] = "demo",
    seed: Annotated[
        int, typer.Option(help="Seed: the same seed writes the same files.")
    ] = DEFAULT_SEED,
    out: Annotated[
        Path | None,
        typer.Option(help="Output folder (default: the data folder's simulated/<preset>)."),
    ] = None,
    scenario: Annotated[
        str,
        typer.Option(
            help="base: the ordinary year; crisis: plus a sudden need in one department and "
            "the people who answer it (recsys.simulation.crisis)."
        ),
    ] = "base",
) -> None:
    """Simulate a France engagement dataset (offers, events, profiles) with its ground truth."""
    config = _preset_or_exit(preset)
    from recsys.simulation.crisis import SCENARIOS, add_crisis
    from recsys.simulation.simulator import simulate as run_simulation

    if scenario not in SCENARIOS:
        typer.echo(f"Error: scenario: {scenario!r} is not one of {', '.join(SCENARIOS)}", err=True)
        raise typer.Exit(code=2)
    suffix = "" if scenario == "base" else f"-{scenario}"
    target = out if out is not None else SIMULATED_DIR / f"{preset}{suffix}"
    began = time.perf_counter()
    manifest = _run_or_exit(lambda: run_simulation(config, seed, target, progress=_echo))
    if scenario == "crisis":
        manifest = _run_or_exit(lambda: add_crisis(target, seed))
        crisis = manifest["crisis"]
        typer.echo(
            f"crisis: {len(crisis['offers'])} offers in department {crisis['department']} "
            f"({crisis['city']}) posted {crisis['posted_at']}, {crisis['applies']:,} answers"
        )
    counts = manifest["counts"]
    typer.echo(
        f"{preset} (seed {seed}): {counts['offers']:,} offers, {counts['people']:,} people, "
        f"{counts['events']:,} events in {time.perf_counter() - began:.1f}s -> {target}"
    )


def simulate_and_summarise(preset: str, seed: int) -> None:
    """Simulate into the default folder unless a matching dataset is there, then summarise it.

    A dataset matches when its manifest has the same preset, seed, generator version and
    configuration; anything else is simulated again (overwritten).
    """
    from recsys.simulation.config import GENERATOR_VERSION
    from recsys.simulation.simulator import read_manifest
    from recsys.simulation.simulator import simulate as run_simulation
    from recsys.simulation.summary import summarise

    config = _preset_or_exit(preset)
    target = SIMULATED_DIR / preset
    manifest = read_manifest(target)
    wanted = (preset, seed, GENERATOR_VERSION, json.loads(json.dumps(config.to_dict())))
    if manifest is not None and wanted == (
        manifest.get("preset"),
        manifest.get("seed"),
        manifest.get("generator_version"),
        manifest.get("config"),
    ):
        typer.echo(f"Reusing the simulated dataset in {target} (preset {preset}, seed {seed}).")
    else:
        typer.echo(f"Simulating preset {preset} with seed {seed} into {target} ...")
        _run_or_exit(lambda: run_simulation(config, seed, target, progress=_echo))
    _print_summary(summarise(target))


def _print_summary(summary: dict[str, Any]) -> None:
    manifest = summary["manifest"]
    counts = manifest["counts"]
    typer.echo(
        f"\nSimulated {manifest['start']} to {manifest['end']} (preset {manifest['preset']}, "
        f"seed {manifest['seed']}): {counts['offers']:,} offers, {counts['people']:,} people, "
        f"{counts['events']:,} events."
    )
    total = sum(summary["offers_by_programme"].values())
    typer.echo("\nOffers by programme:")
    for name, count in summary["offers_by_programme"].items():
        typer.echo(f"  {name:<36} {count:>9,}  {count / total:6.1%}")
    typer.echo("\nOffers by domain:")
    for name, count in summary["offers_by_domain"].items():
        typer.echo(f"  {name:<36} {count:>9,}  {count / total:6.1%}")
    typer.echo("\nEvents by type:")
    for name, count in summary["events_by_type"].items():
        typer.echo(f"  {name:<36} {count:>9,}")
    typer.echo(f"  {'(of which bots)':<36} {summary['bot_events']:>9,}")
    typer.echo("\nHuman events by programme of the offer:")
    typer.echo(f"  {'':<36} {'prints':>9} {'clicks':>9} {'applies':>9}")
    for name, row in summary["human_events_by_programme"].items():
        typer.echo(f"  {name:<36} {row['print']:>9,} {row['click']:>9,} {row['apply']:>9,}")
    typer.echo(
        f"\nApply rate (human events): {summary['applies_per_print']:.2%} of prints, "
        f"{summary['applies_per_click']:.1%} of clicks."
    )
    typer.echo(
        "New offers in the last month: "
        f"{summary['new_offer_share_last_month']:.1%} of the offers open then."
    )


def _preset_or_exit(preset: str) -> SimulationConfig:
    from recsys.simulation.config import get_preset

    try:
        return get_preset(preset)
    except ValueError as error:
        typer.echo(f"Error: {error}", err=True)
        raise typer.Exit(code=2) from None


def _run_or_exit(run: Callable[[], T]) -> T:
    try:
        return run()
    except (ValueError, OSError) as error:
        typer.echo(f"Error: {error}", err=True)
        raise typer.Exit(code=1) from None


def _echo(message: str) -> None:
    typer.echo(f"  {message}")
