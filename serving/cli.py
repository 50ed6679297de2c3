"""Sub-commands of the serving stage: `serve` the ranking service, `events export`.

Mounted by the project's entry point (`engagement/cli.py`) with `app.add_typer(app)`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from recsys import config
from serving.process import run_in_foreground, serve_command

app = typer.Typer(no_args_is_help=True)
events_app = typer.Typer(no_args_is_help=True, help="The event store of the ranking service.")
app.add_typer(events_app, name="events")


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@app.command()
def serve(
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 3000,
    host: Annotated[str, typer.Option(help="Interface (0.0.0.0 to listen on all).")] = "127.0.0.1",
    model_uri: Annotated[str | None, typer.Option(help="Overrides RECSYS_MODEL_URI.")] = None,
    catalog: Annotated[
        Path | None, typer.Option(help="Overrides RECSYS_CATALOG (offers file).")
    ] = None,
    event_store: Annotated[
        str | None, typer.Option(help="Overrides RECSYS_EVENT_STORE_URL.")
    ] = None,
) -> None:
    """Run the ranking service (`bentoml serve serving.service:RankingService`).

    SIGTERM, SIGINT (Ctrl-C) or SIGHUP stops the server and every worker it started.
    Everything else is configured by environment variables (see docs/serving.md).
    """
    from serving.settings import Settings

    if catalog is not None and not catalog.is_file():
        raise _fail(f"--catalog: {catalog} does not exist", 2)
    overrides = {
        "RECSYS_MODEL_URI": model_uri,
        "RECSYS_CATALOG": str(catalog) if catalog else None,
        "RECSYS_EVENT_STORE_URL": event_store,
    }
    env = {**os.environ, **{name: value for name, value in overrides.items() if value}}
    saved = dict(os.environ)
    try:
        os.environ.update(env)
        Settings.from_env()  # refuse a malformed variable here, not in the server's log
    except ValueError as error:
        raise _fail(str(error), 2) from None
    finally:
        os.environ.clear()
        os.environ.update(saved)
    code = run_in_foreground(serve_command(host, port), env, config.PROJECT_ROOT)
    raise typer.Exit(code)


@events_app.command("export")
def export(
    out: Annotated[Path, typer.Option(help="Parquet file to write (canonical events table).")],
    store: Annotated[
        str | None, typer.Option(help="Event store URL (default RECSYS_EVENT_STORE_URL).")
    ] = None,
    db_schema: Annotated[
        str | None, typer.Option("--schema", help="Database schema of the tables.")
    ] = None,
    prefix: Annotated[str, typer.Option(help="Prefix of the table names.")] = "",
    rankings: Annotated[
        Path | None, typer.Option(help="Also write the logged rankings to this file.")
    ] = None,
) -> None:
    """Write the stored events as `events.parquet` for the feature builders."""
    import sqlalchemy

    from serving.events import export_events
    from serving.settings import Settings

    try:
        url = store or Settings.from_env().event_store_url
        count = export_events(url, out, db_schema=db_schema, prefix=prefix, rankings_out=rankings)
    except (ValueError, sqlalchemy.exc.SQLAlchemyError, OSError) as error:
        raise _fail(f"cannot export events: {error}") from None
    typer.echo(f"{count} events written to {out}")
    if rankings is not None:
        typer.echo(f"rankings written to {rankings}")
