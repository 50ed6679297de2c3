"""Sub-commands of the `features` stage."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from recsys import config as paths

app = typer.Typer(no_args_is_help=True)


@app.command("features")
def features(
    data: Annotated[Path, typer.Option("--data", help="Dataset folder (offers/events/profiles).")],
    out: Annotated[
        Path | None,
        typer.Option(help="Destination (default: data/features/<dataset folder name>)."),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(help="YAML of FeatureConfig fields, e.g. experiments/features/default.yaml."),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(help="Ignore events and offers from this UTC date on (build as of it)."),
    ] = None,
    force: Annotated[bool, typer.Option(help="Rebuild even if an identical set exists.")] = False,
) -> None:
    """Build the versioned feature set (test and validation windows) of a dataset folder."""
    from features.build import build_feature_set
    from features.config import load_config

    started = time.perf_counter()

    def progress(message: str) -> None:
        typer.echo(f"[{time.perf_counter() - started:6.1f}s] {message}")

    try:
        feature_config = load_config(config)
        until_stamp = None if until is None else _timestamp(until)
        destination = out if out is not None else paths.FEATURES_DIR / data.resolve().name
        build_feature_set(
            data,
            destination,
            feature_config,
            until=until_stamp,
            reuse=not force,
            progress=progress,
        )
    except (FileNotFoundError, ValueError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=1) from None


def _timestamp(text: str) -> pd.Timestamp:
    try:
        stamp = pd.Timestamp(text)
    except ValueError as error:
        raise ValueError(f"--until: not a date: {text!r}") from error
    return stamp.tz_localize("UTC") if stamp.tz is None else stamp.tz_convert("UTC")
