"""`recsys audience`: the people to call for an offer or a need, and the audit of such requests.

    recsys audience --offer ID | --need FILE.yaml [--k N] [--out audience.csv] [--min-count 10]
    recsys audience log [--limit N]

Configured like the service (`serving.settings`: RECSYS_MODEL_URI, RECSYS_CATALOG,
RECSYS_PROFILES, RECSYS_EVENT_STORE_URL, RECSYS_ID_SALT, RECSYS_AS_OF), so that the command
line and `POST /admin/audience` draw the same audience and audit it in the same store.
"""

from __future__ import annotations

import getpass
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from recsys.audience import MIN_COUNT

app = typer.Typer(
    invoke_without_command=True,
    no_args_is_help=True,
    help="Audiences for a mobilisation: consenting people ranked for an offer or a need.",
)


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def read_need(path: Path) -> Any:
    """A need from a YAML (or JSON) file.

    Raises:
        ValueError: the file is missing, not YAML, or not a valid need (naming the field).
    """
    import yaml
    from pydantic import ValidationError

    from recsys.audience import Need

    if not path.is_file():
        raise ValueError(f"--need: {path} does not exist")
    try:
        values = yaml.safe_load(path.read_text("utf-8"))
    except yaml.YAMLError as error:
        raise ValueError(f"--need: {path} is not valid YAML: {error}") from None
    try:
        return Need.model_validate(values)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in item['loc']) or 'need'}: {item['msg']}"
            for item in error.errors()
        )
        raise ValueError(f"--need {path}: {problems}") from None


@app.callback()
def audience(
    ctx: typer.Context,
    offer: Annotated[str | None, typer.Option(help="Offer id of the catalog.")] = None,
    need: Annotated[
        Path | None, typer.Option(help="YAML need: programme, domains, place, dates...")
    ] = None,
    k: Annotated[int, typer.Option(min=1, max=100_000, help="People to return at most.")] = 100,
    out: Annotated[Path, typer.Option(help="CSV of the audience.")] = Path("audience.csv"),
    min_count: Annotated[
        int, typer.Option(min=MIN_COUNT, help="Refuse audiences smaller than this.")
    ] = MIN_COUNT,
    requester: Annotated[
        str | None, typer.Option(help="Who asks (audited; default: the login name).")
    ] = None,
    model_uri: Annotated[str | None, typer.Option(help="Overrides RECSYS_MODEL_URI.")] = None,
    profiles: Annotated[Path | None, typer.Option(help="Overrides RECSYS_PROFILES.")] = None,
    at: Annotated[
        str | None, typer.Option(help="ISO time of the request (default RECSYS_AS_OF or now).")
    ] = None,
) -> None:
    """Draw the audience of an offer (--offer) or a need (--need) and write it as CSV."""
    if ctx.invoked_subcommand is not None:
        return
    from recsys.audience import AudienceTooSmall
    from serving.audience import AudienceDesk, AudienceQuery, AuditUnavailable, UnknownTarget

    who = requester or getpass.getuser()
    asked = {"offer": offer, "need": str(need) if need else None, "k": k, "min_count": min_count}
    try:
        if (offer is None) == (need is None):
            raise ValueError("give exactly one of --offer ID or --need FILE.yaml")
        query = AudienceQuery(
            requester=who,
            channel="cli",
            offer_id=offer,
            need=read_need(need) if need is not None else None,
            k=k,
            min_count=min_count,
        )
    except ValueError as error:
        _audit_malformed(who, asked, str(error))
        raise _fail(str(error), 2) from None
    try:
        context = _context(model_uri, profiles, at)
    except ValueError as error:
        raise _fail(str(error), 2) from None
    desk = AudienceDesk(context["store"], context["salt"])
    started = time.perf_counter()
    try:
        request_id, drawn = desk.draw(query, **context["draw"])
    except (AudienceTooSmall, UnknownTarget) as error:
        raise _fail(f"refused (audited): {error}") from None
    except AuditUnavailable as error:
        raise _fail(str(error)) from None
    except ValueError as error:
        raise _fail(f"refused (audited): {error}", 2) from None
    finally:
        context["store"].close()
    _write(drawn, out)
    typer.echo(
        f"audience {request_id}: {len(drawn.rows)} people of {drawn.eligible} consenting and "
        f"eligible, in {time.perf_counter() - started:.1f} s -> {out}"
    )
    for name, counts in drawn.totals.items():
        typer.echo(f"  by {name}: " + ", ".join(f"{key} {value}" for key, value in counts.items()))


def _audit_malformed(requester: str, asked: dict[str, Any], reason: str) -> None:
    """Audit a command refused before it could be read as an audience request (its
    arguments as criteria), in the service's event store; a store that cannot be opened or
    written is reported, the refusal stands."""
    import sqlalchemy

    from serving.audience import malformed_record
    from serving.events import EventStore
    from serving.settings import Settings

    body = json.dumps(asked, ensure_ascii=False).encode()
    record = malformed_record(body, reason, authorized=True)
    try:
        settings = Settings.from_env()
        store = EventStore(
            settings.event_store_url,
            db_schema=settings.event_schema,
            prefix=settings.event_table_prefix,
            id_salt=settings.id_salt or "",
        )
        try:
            store.record_audience(replace(record, requester=requester, channel="cli"))
        finally:
            store.close()
    except (ValueError, sqlalchemy.exc.SQLAlchemyError) as error:
        typer.echo(f"warning: the refusal could not be audited: {error}", err=True)


def _context(model_uri: str | None, profiles: Path | None, at: str | None) -> dict[str, Any]:
    """Model, catalog, profiles, clock and event store, as the service would load them."""
    import pandas as pd

    from serving.catalog import read_offers
    from serving.events import EventStore
    from serving.loading import ModelLoadError, load_model
    from serving.profiles import ProfileStore
    from serving.settings import Settings

    settings = Settings.from_env()
    try:
        loaded = load_model(model_uri or settings.model_uri, settings.tracking_uri)
    except ModelLoadError as error:
        raise ValueError(str(error)) from None
    bundle = loaded.bundle
    catalog = read_offers(settings.catalog)[0] if settings.catalog else bundle.catalog
    # The clock follows the service's rule: a snapshot of past data is read at its cutoff.
    when = settings.as_of
    if at is not None:
        try:
            when = int(pd.Timestamp(at).tz_convert("UTC").timestamp())
        except (ValueError, TypeError):
            raise ValueError(f"--at: {at!r} is not an ISO time with a time zone") from None
    if when is None:
        when = int(time.time()) if settings.catalog else int(bundle.cutoff.timestamp())
    path = profiles or settings.profiles
    if path is None and bundle.manifest.get("data_dir"):
        path = Path(bundle.manifest["data_dir"]) / "profiles.parquet"
    if path is None or not Path(path).is_file():
        raise ValueError(f"profiles: {path} not found (set RECSYS_PROFILES or --profiles)")
    store = EventStore(
        settings.event_store_url,
        db_schema=settings.event_schema,
        prefix=settings.event_table_prefix,
        id_salt=settings.id_salt or "",
    )
    return {
        "store": store,
        "salt": settings.id_salt or "",
        "draw": {
            "bundle": bundle,
            "version": loaded.version,
            "catalog": catalog,
            "profiles": ProfileStore.load(path).frame,
            "at": when,
        },
    }


def _write(drawn: Any, out: Path) -> None:
    from serving.audience import audience_rows

    out.parent.mkdir(parents=True, exist_ok=True)
    audience_rows(drawn).to_csv(out, index=False)
    totals = out.with_suffix(".totals.json")
    totals.write_text(json.dumps({"eligible": drawn.eligible, **drawn.totals}, indent=1) + "\n")


@app.command("log")
def log(
    limit: Annotated[int, typer.Option(min=1, help="Most recent requests to list.")] = 50,
    store: Annotated[
        str | None, typer.Option(help="Event store URL (default RECSYS_EVENT_STORE_URL).")
    ] = None,
) -> None:
    """The audit of audience requests, newest first: who, when, criteria, size."""
    import sqlalchemy

    from serving.events import EventStore
    from serving.settings import Settings

    try:
        settings = Settings.from_env()
        events = EventStore(
            store or settings.event_store_url,
            db_schema=settings.event_schema,
            prefix=settings.event_table_prefix,
            create=False,
        )
    except (ValueError, sqlalchemy.exc.SQLAlchemyError) as error:
        raise _fail(f"cannot open the event store: {error}") from None
    try:
        frame = events.read_audiences(limit)
    except sqlalchemy.exc.SQLAlchemyError as error:
        raise _fail(f"cannot read the audit: {error}") from None
    finally:
        events.close()
    if frame.empty:
        typer.echo("no audience request recorded")
        return
    for row in frame.itertuples(index=False):
        typer.echo(
            f"{row.createdAt:%Y-%m-%d %H:%M:%S} {row.requestId} {row.requester} ({row.channel}) "
            f"{_asked(json.loads(row.criteria))}: {row.status} {row.size}"
            + (f" — {row.reason}" if isinstance(row.reason, str) else "")
        )


def _asked(criteria: dict[str, Any]) -> str:
    """What an audited request asked for, in a few words."""
    if "body" in criteria:  # refused before it could be read (`serving.audience.AudienceAudit`)
        token = "" if criteria.get("authorized") else ", without the admin token"
        return f"malformed request{token}"
    if criteria.get("offer_id"):
        what = f"offer {criteria['offer_id']}"
    else:
        what = f"need {criteria['need'].get('title')} {criteria['need'].get('domains')}"
    return f"{what} k={criteria['k']}"
