"""Sub-commands of the core: `simulate` a dataset, `ingest` real exports, `sync` the catalog
from the national API, `mock-api` (that API's mock)."""

from __future__ import annotations

import typer

from recsys.ingest_cli import app as ingest_app
from recsys.simulation.commands import simulate, simulate_and_summarise
from recsys.sync_cli import mock_api_command, sync_command

app = typer.Typer(no_args_is_help=True)
app.command("simulate")(simulate)
app.add_typer(ingest_app, name="ingest", help="Load real exports into canonical tables.")
app.command("sync")(sync_command)
app.command("mock-api")(mock_api_command)

__all__ = ["app", "simulate_and_summarise"]
