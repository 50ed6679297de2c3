"""`recsys replay`: closed-loop replay of list policies on a simulated dataset."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True)

DEFAULT_POLICIES = "hybrid,incumbent,incumbent_local,popularity,oracle"


@app.command("replay")
def replay(
    data: Annotated[Path, typer.Option("--data", help="A `recsys simulate` output folder.")],
    policies: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated policies: model names, oracle (knows the person) and/or "
            "offer_oracle (knows every offer, nobody in particular), profile_oracle (every "
            "offer, and the person as well as their profile tells) "
            f"[default: {DEFAULT_POLICIES}]."
        ),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(
            help="Replay against the ranking service at this URL (started with "
            "RECSYS_CLOCK=request): its lists over HTTP, the visitors' prints, clicks and "
            "applies sent back to its /events; its experiment's arms are the policies compared "
            "(`recsys ab report`)."
        ),
    ] = None,
    serving_dir: Annotated[
        Path | None,
        typer.Option(
            help="Write what a service needs to serve these policies to a replay over HTTP: "
            "the offers as replayed (offers.parquet) and each model as trained at the replay's "
            "start (<policy>/, a ranker bundle)."
        ),
    ] = None,
    weeks: Annotated[int, typer.Option(help="Replayed weeks (the last of the period).")] = 26,
    repeats: Annotated[int, typer.Option(help="Independent replays per policy.")] = 3,
    retrain_weeks: Annotated[
        int, typer.Option(help="A learning policy is retrained every this many weeks.")
    ] = 4,
    traffic: Annotated[
        float | None,
        typer.Option(
            help="Served lists per month at the platform, for the six-month projection "
            "(default: the replay's own traffic)."
        ),
    ] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write the figures as JSON here.")
    ] = None,
    plot: Annotated[
        Path | None, typer.Option(help="PNG of cumulative applications (default: beside --json).")
    ] = None,
    quiet: Annotated[bool, typer.Option(help="No progress messages.")] = False,
) -> None:
    """Replay the simulated traffic with each policy serving the platform's lists."""
    from training.replay import format_report, parse_policies, report, run_replay, write_outputs

    began = time.perf_counter()
    say = (lambda message: None) if quiet else typer.echo
    try:
        if traffic is not None and traffic <= 0:
            raise ValueError(f"--traffic: expected a positive number of lists, got {traffic}")
        if url is not None and (policies is not None or serving_dir is not None):
            given = "--policies" if policies is not None else "--serving-dir"
            raise ValueError(
                f"{given}: not with --url, where the service makes the lists (the arms of its "
                "experiment are the policies compared)"
            )
        names = [] if url is not None else parse_policies(policies or DEFAULT_POLICIES)
        if not (data / "manifest.json").is_file():
            raise ValueError(f"--data: {data} holds no simulated dataset (no manifest.json)")
        replayed, results = run_replay(
            data, names, weeks, repeats, retrain_weeks, say, serving=serving_dir, url=url
        )
    except (ValueError, FileNotFoundError) as error:
        typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    document = report(replayed, results, traffic, time.perf_counter() - began)
    if plot is None and json_path is not None:
        plot = json_path.with_suffix(".png")
    write_outputs(document, json_path, plot)
    typer.echo(format_report(document))
    typer.echo(f"{document['seconds']:.1f} s")
