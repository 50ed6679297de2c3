"""`recsys sync` (the catalog store from the national API) and `recsys mock-api` (a mock of
that API for tests and the demo)."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from recsys import config

if TYPE_CHECKING:
    from recsys.sync import SyncConfig, SyncReport

logger = logging.getLogger(__name__)


def sync_command(
    api: Annotated[str, typer.Option("--api", help="Base URL of the API (…/v0/mission).")],
    out: Annotated[
        Path, typer.Option("--out", help="Catalog store (dataset folder; default: raw data).")
    ] = config.RAW_DIR,
    key_env: Annotated[
        str | None,
        typer.Option("--key-env", help="Environment variable holding the partner's API key."),
    ] = None,
    every: Annotated[
        str | None,
        typer.Option("--every", help="Sync again every DURATION (90s, 15m, 1h) until Ctrl-C."),
    ] = None,
    page_size: Annotated[
        int, typer.Option(min=1, max=10_000, help="Missions per page (limit).")
    ] = 5000,
    retries: Annotated[int, typer.Option(min=0, help="Retries per page on 429/5xx.")] = 6,
    backoff: Annotated[float, typer.Option(min=0.0, help="First retry's wait, seconds.")] = 1.0,
    notify_url: Annotated[
        str | None,
        typer.Option(
            "--notify",
            help=(
                "Ranking service to swap to the new store after a change (POST /admin/catalog);"
                " a failed call is repeated after the next sync."
            ),
        ),
    ] = None,
    token_env: Annotated[
        str, typer.Option("--token-env", help="Environment variable of the admin token.")
    ] = "RECSYS_ADMIN_TOKEN",
) -> None:
    """Pull the partner's offers from the national API into the catalog store, incrementally.

    New and changed offers by updatedAt; offers gone from the perimeter or deleted closed;
    rejects logged with their reasons; resumable after an interruption.
    """
    from recsys.sync import SyncConfig, parse_duration  # httpx: the serve extra

    key = None
    if key_env is not None:
        key = os.environ.get(key_env)
        if not key:
            typer.echo(f"error: --key-env: the variable {key_env} is not set", err=True)
            raise typer.Exit(2)
    try:
        period = parse_duration(every) if every is not None else None
    except ValueError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    settings = SyncConfig(
        api=api, out=out, key=key, page_size=page_size, retries=retries, backoff_seconds=backoff
    )
    try:
        while True:
            began = time.monotonic()
            ok = _once(settings, notify_url, os.environ.get(token_env))
            if period is None:
                if not ok:
                    raise typer.Exit(1)
                return
            time.sleep(max(0.0, period - (time.monotonic() - began)))
    except KeyboardInterrupt:
        # Pages fetched so far are kept: the next `recsys sync` resumes after them.
        typer.echo("interrupted: the next sync resumes where this one stopped", err=True)
        raise typer.Exit(130) from None


def _once(settings: SyncConfig, notify_url: str | None, token: str | None) -> bool:
    """One sync, its summary printed; whether it completed."""
    from recsys.sync import SyncError, notify_pending, sync

    try:
        report = sync(settings)
    except (SyncError, ValueError, OSError) as error:
        typer.echo(f"error: sync failed: {error}", err=True)
        return False
    typer.echo(summary(report, settings.out))
    if notify_url is not None:
        try:
            message = notify_pending(notify_url, settings.out, token)
        except SyncError as error:
            typer.echo(f"error: the service kept its catalog: {error}", err=True)
            return False
        if message is not None:
            typer.echo(f"  service {notify_url}: {message}")
    return True


def summary(report: SyncReport, out: Path) -> str:
    """A sync's counts, one per line."""
    lines = [
        f"sync into {out / config.OFFERS_FILE}"
        + (" (resumed)" if report.resumed else "")
        + f": {report.seconds:.1f}s, {report.pages} pages, {report.retries} retries",
        f"  fetched    {report.fetched}",
        f"  added      {report.added}",
        f"  updated    {report.updated}",
        f"  unchanged  {report.unchanged}",
        f"  closed     {report.closed} (gone from the perimeter)",
        f"  deleted    {report.deleted} (carrying deletedAt)",
        f"  rejected   {report.rejected}",
    ]
    lines.extend(f"    {reason:<22} {count}" for reason, count in report.reject_reasons.items())
    if report.still_rejected:
        lines.append(
            f"  still rejected {report.still_rejected} (unchanged since, not logged again)"
        )
    lines.append(f"  stored     {report.total} offers")
    return "\n".join(lines)


def mock_api_command(
    data: Annotated[
        Path, typer.Option("--data", help="Folder with missions.json or offers.parquet.")
    ],
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    key_env: Annotated[
        str | None,
        typer.Option("--key-env", help="Environment variable holding the key to require."),
    ] = None,
    fail_every: Annotated[
        int, typer.Option(min=0, help="Answer every N-th request with --fail-status.")
    ] = 0,
    fail_status: Annotated[int, typer.Option(help="429 or a 5xx.")] = 429,
    slow_every: Annotated[int, typer.Option(min=0, help="Slow down every N-th request.")] = 0,
    slow_seconds: Annotated[float, typer.Option(min=0.0, help="Delay of a slow answer.")] = 2.0,
) -> None:
    """Serve a dataset's offers as the national API does (GET /v0/mission), with faults."""
    from recsys.mock_api import DEFAULT_LIMIT, Faults, MockAPI, serve  # the serve extra

    if fail_status != 429 and not 500 <= fail_status <= 599:
        typer.echo(f"error: --fail-status: expected 429 or 5xx, got {fail_status}", err=True)
        raise typer.Exit(2)
    key = os.environ.get(key_env) if key_env is not None else None
    if key_env is not None and not key:
        typer.echo(f"error: --key-env: the variable {key_env} is not set", err=True)
        raise typer.Exit(2)
    faults = Faults(fail_every, fail_status, slow_every, slow_seconds)
    try:
        api = MockAPI.from_dir(data, key=key, faults=faults)
    except (FileNotFoundError, ValueError, OSError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    typer.echo(
        f"mock API on http://{host}:{port}/v0/mission: {len(api)} missions, "
        f"limit {DEFAULT_LIMIT} by default"
    )
    serve(api, host, port)
