"""`recsys ingest offers|events|profiles FILE [--out DIR]`: load a real export, merge it into
the raw tables, log its rejects, and print what was loaded, rejected and repaired."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from recsys import config
from recsys.loaders import LOADERS, LoadError, LoadResult, StoreReport, store
from recsys.loaders.result import Kind

app = typer.Typer(no_args_is_help=True, help="Load real exports into canonical tables.")

FileArgument = Annotated[
    Path, typer.Argument(help="Export to load (.json, .jsonl, .csv or .parquet).")
]
OutOption = Annotated[
    Path | None,
    typer.Option(
        "--out",
        help="Dataset folder to merge into (default: the raw data folder, RECSYS_DATA_DIR/raw).",
    ),
]


@app.command("offers")
def offers(file: FileArgument, out: OutOption = None) -> None:
    """Load the national API's mission export (JSON array, {"data": [...]} or lines)."""
    _ingest("offers", file, out)


@app.command("events")
def events(file: FileArgument, out: OutOption = None) -> None:
    """Load stat events (print, click, apply, account) from CSV, JSON or Parquet."""
    _ingest("events", file, out)


@app.command("profiles")
def profiles(file: FileArgument, out: OutOption = None) -> None:
    """Load known visitors' profiles (age, place, mobility, quiz) from CSV, JSON or Parquet."""
    _ingest("profiles", file, out)


def _ingest(kind: Kind, file: Path, out: Path | None) -> None:
    out_dir = out if out is not None else config.RAW_DIR
    try:
        result = LOADERS[kind](file)
        report = store(result, out_dir)
    except (LoadError, ValueError, OSError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    typer.echo(_summary(result, report))
    if result.loaded == 0:
        typer.echo(
            f"error: no row of {file} was accepted; {report.table_path} is unchanged "
            f"(see {report.rejects_path})",
            err=True,
        )
        raise typer.Exit(1)


def _summary(result: LoadResult, report: StoreReport) -> str:
    """The counts of an ingest as an aligned two-column table."""
    lines = [(f"{result.kind} from {result.source}", "")]
    lines.append(("  loaded", str(result.loaded)))
    lines.append(("  rejected", str(result.rejected)))
    lines.extend((f"    {reason}", str(count)) for reason, count in result.reject_counts().items())
    if result.warnings:
        lines.append(("  warnings (rows kept)", str(sum(result.warnings.values()))))
        lines.extend((f"    {code}", str(count)) for code, count in sorted(result.warnings.items()))
    lines.append(
        (
            f"  stored in {report.table_path}",
            f"{report.total} rows ({report.added} new, {report.replaced} replaced, "
            f"{report.unchanged} unchanged)",
        )
    )
    if result.rejected:
        lines.append((f"  rejects appended to {report.rejects_path}", ""))
    width = max(len(label) for label, value in lines if value) + 2
    return "\n".join(f"{label:<{width}}{value}".rstrip() for label, value in lines)
