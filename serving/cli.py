"""Sub-commands of the serving stage: `serve` the ranking service, `events export`, `ab report`.

Mounted by the project's entry point (`engagement/cli.py`) with `app.add_typer(app)`.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from recsys import config
from recsys.attribution import DEFAULT_WINDOW
from serving.process import run_in_foreground, serve_command

DEFAULT_WINDOW_DAYS = DEFAULT_WINDOW / timedelta(days=1)

app = typer.Typer(no_args_is_help=True)
events_app = typer.Typer(no_args_is_help=True, help="The event store of the ranking service.")
app.add_typer(events_app, name="events")
ab_app = typer.Typer(no_args_is_help=True, help="Online experiments of the ranking service.")
app.add_typer(ab_app, name="ab")


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
    # The server imports its code from the project's folder; its files stay in this HOME.
    env = {
        "RECSYS_HOME": str(config.HOME),
        **os.environ,
        **{name: value for name, value in overrides.items() if value},
    }
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


@app.command()
def bento(
    model_uri: Annotated[
        str | None, typer.Option(help="Model to bake in (default: RECSYS_MODEL_URI, the champion).")
    ] = None,
) -> None:
    """Build the service's Bento with the champion baked in (`bentoml build`)."""
    from serving.bento import BentoBuildError, build
    from serving.loading import ModelLoadError
    from serving.settings import Settings

    try:
        settings = Settings.from_env()
        built = build(model_uri or settings.model_uri, settings.tracking_uri)
    except (ValueError, ModelLoadError, BentoBuildError) as error:
        raise _fail(str(error)) from None
    typer.echo(f"Bento {built.tag} built, serving {built.model_version} by default.")
    typer.echo(f"Serve it: bentoml serve {built.tag} --port 3000")
    typer.echo(f"Image (needs Docker or Podman): bentoml containerize {built.tag}")


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


@ab_app.command("report")
def ab_report(
    out: Annotated[Path | None, typer.Option(help="HTML report to write.")] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write the figures as JSON here.")
    ] = None,
    store: Annotated[
        str | None, typer.Option(help="Event store URL (default RECSYS_EVENT_STORE_URL).")
    ] = None,
    experiment: Annotated[
        str | None, typer.Option(help="Experiment name (default: the last one recorded).")
    ] = None,
    window_days: Annotated[
        float, typer.Option(min=0.001, help="Attribution window, days.")
    ] = DEFAULT_WINDOW_DAYS,
    offers: Annotated[
        Path | None,
        typer.Option(help="Offers file, for the programme breakdown (default RECSYS_CATALOG)."),
    ] = None,
    db_schema: Annotated[
        str | None, typer.Option("--schema", help="Database schema of the tables.")
    ] = None,
    prefix: Annotated[str, typer.Option(help="Prefix of the table names.")] = "",
) -> None:
    """Per arm: visitors, lists, clicks, applications per 1,000 visitors, the lift over the
    control with its 95% interval, the sample-ratio check, the programme breakdown."""
    import json

    import sqlalchemy

    from serving.ab_report import ReportError, build_report, render_html
    from serving.catalog import CatalogError
    from serving.events import EventStore

    if out is None and json_path is None:
        raise _fail("give --out (HTML) or --json (or both)", 2)
    if offers is None and os.environ.get("RECSYS_CATALOG"):
        offers = Path(os.environ["RECSYS_CATALOG"])
    try:
        url = store or _store_url()
        events = EventStore(url, db_schema=db_schema, prefix=prefix, create=False)
        try:
            report = build_report(events, experiment, timedelta(days=window_days), offers)
        finally:
            events.close()
    except ReportError as error:
        raise _fail(str(error), 2) from None
    except (ValueError, CatalogError, sqlalchemy.exc.SQLAlchemyError, OSError) as error:
        raise _fail(f"cannot build the report: {error}") from None
    for arm, figures in report["arms"].items():
        rate = figures["applications_per_1000_visitors"]
        typer.echo(
            f"{arm}: {figures['visitors']} visitors, {figures['lists']} lists, "
            f"{figures['clicks']} clicks, {figures['applications']} applications"
            + ("" if rate is None else f" ({rate:.1f} per 1,000 visitors)")
        )
    for arm, lift in report["lifts"].items():
        applications = lift["applications"]
        if applications is not None:
            typer.echo(
                f"lift of {arm} over {report['control']}: {applications['lift']:+.1%} "
                f"[{applications['low']:+.1%}, {applications['high']:+.1%}]"
            )
    ratio = report["sample_ratio"]
    typer.echo(
        f"sample ratio: p = {ratio['p_value']:.3g}"
        + (" MISMATCH" if ratio["mismatch"] else " (agrees with the shares)")
    )
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report, indent=2, default=str), "utf-8")
        typer.echo(f"figures written to {json_path}")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(render_html(report), "utf-8")
        typer.echo(f"report written to {out}")


def _store_url() -> str:
    from serving.settings import Settings

    return Settings.from_env().event_store_url
