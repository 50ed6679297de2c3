"""Sub-commands of the core: `simulate` a dataset, `ingest` real exports."""

from __future__ import annotations

import typer

from recsys.ingest_cli import app as ingest_app
from recsys.simulation.commands import simulate, simulate_and_summarise

app = typer.Typer(no_args_is_help=True)
app.command("simulate")(simulate)
app.add_typer(ingest_app, name="ingest", help="Load real exports into canonical tables.")

__all__ = ["app", "simulate_and_summarise"]
