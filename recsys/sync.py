"""Incremental sync of the catalog store from the national engagement API (`recsys sync`).

The API has no `updatedAt` filter (DOMAIN.md §2b): a sync pages through the partner's whole
perimeter (`GET /v0/mission`, `limit`/`skip`), then merges into the catalog store, the
dataset folder's `offers.parquet`:

* an offer not stored yet is added; a stored one is replaced when the API's `updatedAt` is
  later (or when the API serves again an offer the store had closed);
* an offer that carries `deletedAt` is stored with it, and a stored offer that no longer
  comes back has left the perimeter: it is closed (`deletedAt` set to the sync's start);
* rejected missions go to `offers.rejects.jsonl` with their reasons (`recsys.loaders`),
  once: a mission rejected by an earlier sync and unchanged since is not logged again.

Only the missions that are new or changed (by `updatedAt`) go through the loader, so a sync
in which little changed costs the paging, a comparison of ids and dates, and writing the
store.

Requests answered 429 or 5xx, or failing on the network, are retried with exponential
backoff (the server's `Retry-After` when longer), up to `SyncConfig.retries` times.

Resumable: each page (the API's answer as received) is written to `sync_pages/` and the
state file (`sync_state.json`) records where paging stands, so a sync interrupted mid-way
(crash, Ctrl-C, retries exhausted) resumes at the next page; once the store is written, the
state file records the last complete sync and the pages are removed. The store and the state
file are written atomically (a temporary file renamed over the old one): a reader (the
ranking service, `POST /admin/catalog`) sees the previous table or the new one, never half
of one.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import httpx
import numpy as np
import pandas as pd

from recsys import config, schema
from recsys.loaders.offers import load_offers
from recsys.loaders.store import append_rejects, atomic_write, read_stored, rejects_path

logger = logging.getLogger(__name__)

STATE_FILE: Final = "sync_state.json"
PAGES_DIR: Final = "sync_pages"
MISSION_PATH: Final = "/v0/mission"
KEY_HEADER: Final = "apikey"
RETRIED_STATUS: Final = frozenset({429, 500, 502, 503, 504})


class SyncError(RuntimeError):
    """A sync that cannot complete: refused by the API, or retries exhausted. The pages
    fetched so far are kept: the next sync resumes after them."""


@dataclass(frozen=True)
class SyncConfig:
    """Where to sync from and to, and how hard to try.

    Attributes:
        api: the API's base URL (`/v0/mission` is appended unless already there).
        out: the dataset folder of the catalog store.
        key: the partner's API key (sent as `apikey`), None for none.
        page_size: missions per page (`limit`, at most 10,000).
        retries: attempts per page after the first, on 429, 5xx and network errors.
        backoff_seconds: the first retry's wait, doubled at each further retry.
        max_backoff_seconds: the longest wait between two attempts.
        timeout_seconds: per request.
    """

    api: str
    out: Path
    key: str | None = None
    page_size: int = 5000
    retries: int = 6
    backoff_seconds: float = 1.0
    max_backoff_seconds: float = 60.0
    timeout_seconds: float = 60.0

    def __post_init__(self) -> None:
        if not 1 <= self.page_size <= 10_000:
            raise ValueError(f"page_size: expected 1 to 10000, got {self.page_size}")
        if self.retries < 0:
            raise ValueError(f"retries: expected 0 or more, got {self.retries}")

    @property
    def url(self) -> str:
        base = self.api.rstrip("/")
        return base if base.endswith(MISSION_PATH) else base + MISSION_PATH


@dataclass(frozen=True)
class SyncReport:
    """What one sync did."""

    started_at: str
    finished_at: str
    seconds: float
    fetched: int  # missions received
    pages: int  # pages fetched by this run (a resumed run counts its own)
    retries: int  # attempts repeated after a 429, a 5xx or a network error
    resumed: bool
    added: int
    updated: int
    unchanged: int
    closed: int  # stored offers gone from the perimeter, closed now
    deleted: int  # added or updated offers that carry deletedAt
    rejected: int  # missions rejected by this sync (logged)
    still_rejected: int  # rejected by an earlier sync and unchanged since (not logged again)
    total: int  # rows in the store afterwards
    reject_reasons: dict[str, int] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.closed)


def _now() -> datetime:
    return datetime.now(UTC)


def _write_json(path: Path, value: object) -> None:
    def write(target: Path) -> None:
        target.write_text(json.dumps(value, indent=2, ensure_ascii=False), encoding="utf-8")

    atomic_write(path, write)


def read_state(out: Path) -> dict[str, Any]:
    """The state file of a catalog store (`{}` before the first sync).

    Raises:
        SyncError: when the file exists but is not a JSON object.
    """
    path = out / STATE_FILE
    if not path.is_file():
        return {}
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        message = f"{path}: unreadable state file ({error}); remove it to start over"
        raise SyncError(message) from error
    if not isinstance(state, dict):
        raise SyncError(f"{path}: the state file is not a JSON object; remove it to start over")
    return state


class _Pager:
    """GETs pages with the key and retries; counts what it did."""

    def __init__(
        self, settings: SyncConfig, client: httpx.Client, sleep: Callable[[float], None]
    ) -> None:
        self.settings = settings
        self.client = client
        self.sleep = sleep
        self.retries = 0

    def page(self, skip: int) -> tuple[dict[str, Any], str]:
        """The answer at `skip`, parsed and as received."""
        settings = self.settings
        headers = {KEY_HEADER: settings.key} if settings.key else {}
        params = {"limit": settings.page_size, "skip": skip}
        problem = ""
        for attempt in range(settings.retries + 1):
            if attempt:
                self.retries += 1
            try:
                response = self.client.get(
                    settings.url, params=params, headers=headers, timeout=settings.timeout_seconds
                )
            except httpx.HTTPError as error:  # refused, reset, timed out
                problem = f"{type(error).__name__}: {error}"
                retry_after = 0.0
            else:
                if response.status_code == 200:
                    return _answer(response, skip), response.text
                if response.status_code not in RETRIED_STATUS:
                    raise SyncError(f"{settings.url}: {_describe(response)}")
                problem = _describe(response)
                retry_after = _retry_after(response)
            if attempt < settings.retries:
                wait = settings.backoff_seconds * 2**attempt
                wait = min(max(wait, retry_after), settings.max_backoff_seconds)
                logger.warning("sync: page at %d: %s; retrying in %.2fs", skip, problem, wait)
                self.sleep(wait)
        raise SyncError(
            f"{settings.url}: page at skip={skip} failed {settings.retries + 1} times "
            f"(last: {problem}); the next sync resumes here"
        )


def _answer(response: httpx.Response, skip: int) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise SyncError(f"page at skip={skip}: the answer is not JSON") from None
    if not isinstance(body, dict) or body.get("ok") is not True:
        raise SyncError(f"page at skip={skip}: unexpected answer {str(body)[:200]}")
    if not isinstance(body.get("data"), list) or not isinstance(body.get("total"), int):
        raise SyncError(f"page at skip={skip}: the answer lacks data[] or total")
    return body


def _describe(response: httpx.Response) -> str:
    """`HTTP 400 INVALID_QUERY: limit: ...`, from the API's `{ok, code, message}` body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and ("code" in body or "message" in body):
        return f"HTTP {response.status_code} {body.get('code')}: {body.get('message')}"
    return f"HTTP {response.status_code}"


def _retry_after(response: httpx.Response) -> float:
    raw = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(raw))
    except ValueError:
        return 0.0  # absent, or an HTTP date: the backoff decides


def sync(
    settings: SyncConfig,
    client: httpx.Client | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> SyncReport:
    """Run one sync (see the module docstring); resume an interrupted one first.

    Raises:
        SyncError: the API refused a request, answered something else than pages of
            missions, or kept failing past the retries; the store is then unchanged.
    """
    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    state = read_state(out)
    pages_dir = out / PAGES_DIR
    run = state.get("run")
    resumed = isinstance(run, dict) and pages_dir.is_dir() and run.get("url") == settings.url
    if not resumed:
        shutil.rmtree(pages_dir, ignore_errors=True)
        pages_dir.mkdir()
        run = {"url": settings.url, "started_at": _now().isoformat(), "next_skip": 0}
        run["pages"] = 0
        run["complete"] = False
        state["run"] = run
        _write_json(out / STATE_FILE, state)
    else:
        logger.info("sync: resuming at skip=%d", run["next_skip"])
    started = time.perf_counter()
    owned = client is None
    client = client if client is not None else httpx.Client()
    pager = _Pager(settings, client, sleep)
    fetched: dict[str, list[Any]] = {}  # this run's pages, parsed: not read back from disk
    try:
        while not run["complete"]:
            body, text = pager.page(run["next_skip"])
            missions = body["data"]
            page_file = pages_dir / f"page-{run['pages']:06d}.json"
            atomic_write(page_file, lambda target, text=text: target.write_text(text, "utf-8"))
            fetched[page_file.name] = missions
            run["pages"] += 1
            run["next_skip"] += len(missions)
            run["total"] = body["total"]
            run["complete"] = not missions or run["next_skip"] >= body["total"]
            _write_json(out / STATE_FILE, state)
    finally:
        if owned:
            client.close()
    report = _merge_pages(out, run, state, fetched, pager.retries, resumed, started)
    state.pop("run", None)
    state["last_complete"] = asdict(report)
    if report.changed:
        state["last_change"] = report.finished_at
    _write_json(out / STATE_FILE, state)
    shutil.rmtree(pages_dir, ignore_errors=True)
    logger.info("sync complete", extra={"report": asdict(report)})
    return report


def _merge_pages(
    out: Path,
    run: dict[str, Any],
    state: dict[str, Any],
    fetched: dict[str, list[Any]],
    retries: int,
    resumed: bool,
    started: float,
) -> SyncReport:
    """Load the missions that changed, merge them into the store, log new rejects, and
    remember them in `state["rejected"]` (id -> raw updatedAt). `fetched` holds the pages
    this run fetched; an interrupted run's earlier pages are read from `PAGES_DIR`."""
    pages_dir = out / PAGES_DIR
    missions = []
    for page in sorted(pages_dir.glob("page-*.json")):
        data = fetched.get(page.name)
        missions.extend(data if data is not None else _read_page(page))
    ids = [_mission_id(mission) for mission in missions]
    table_path = out / config.OFFERS_FILE
    stored = read_stored(table_path)
    known_rejects: dict[str, Any] = state.get("rejected") or {}
    load, still_rejected = _to_load(missions, ids, stored, known_rejects)
    combined = pages_dir / "missions.jsonl"
    chosen = "".join(
        json.dumps(mission, ensure_ascii=False) + "\n"
        for mission, keep in zip(missions, load, strict=True)
        if keep
    )
    combined.write_text(chosen, encoding="utf-8")
    at = pd.Timestamp(run["started_at"]).tz_convert("UTC").floor("ms")  # the store's unit
    result = load_offers(combined) if any(load) else None
    if result is not None:
        new = result.table
    else:  # nothing changed: an empty table of the canonical dtypes
        empty = pd.DataFrame(columns=schema.OFFER_SCHEMA.names)
        new = schema.conform(empty, "offers").to_pandas()
    merged, counts = merge_perimeter(stored, new, {i for i in ids if i is not None}, at)
    counts["unchanged"] += len(missions) - sum(load) - len(still_rejected)
    atomic_write(table_path, lambda target: schema.write_table(merged, "offers", target))
    rejected: dict[str, Any] = {i: known_rejects[i] for i in still_rejected}
    if result is not None:
        append_rejects(result, rejects_path("offers", out))
        updated = {i: _raw_updated(m) for i, m in zip(ids, missions, strict=True) if i}
        rejected |= {str(i): updated.get(str(i)) for i in result.rejects["id"].dropna()}
    state["rejected"] = rejected
    return SyncReport(
        started_at=run["started_at"],
        finished_at=_now().isoformat(),
        seconds=round(time.perf_counter() - started, 3),
        fetched=len(missions),
        pages=len(fetched),
        retries=retries,
        resumed=resumed,
        rejected=0 if result is None else result.rejected,
        still_rejected=len(still_rejected),
        total=len(merged),
        reject_reasons={} if result is None else result.reject_counts(),
        **counts,
    )


def _read_page(path: Path) -> list[Any]:
    """The missions of a page an interrupted run stored (the API's answer as received)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))["data"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise SyncError(f"{path}: unreadable page ({error}); remove {path.parent}") from error


def _mission_id(mission: object) -> str | None:
    """A mission's id as text (`_id` when `id` is missing), None when it has none."""
    if not isinstance(mission, dict):
        return None
    found = mission.get("id")
    found = mission.get("_id") if found is None else found
    return None if found is None else str(found)


def _raw_updated(mission: object) -> Any:
    return mission.get("updatedAt") if isinstance(mission, dict) else None


def _to_load(
    missions: list[Any],
    ids: list[str | None],
    stored: pd.DataFrame | None,
    known_rejects: dict[str, Any],
) -> tuple[list[bool], list[str]]:
    """Which missions to run through the loader: those not stored, changed since (a later
    `updatedAt`, or served again while the store has them closed) or unreadable (the loader
    says why), except those an earlier sync rejected and unchanged since (returned too:
    their rejects are not logged again)."""
    raw = pd.Series([_raw_updated(m) for m in missions], dtype=object)
    text = raw.where(raw.map(lambda value: isinstance(value, str)))
    updated = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601").dt.floor("ms")
    keys = pd.Series(ids, dtype=object)
    if stored is not None and not stored.empty:
        by_id = stored.drop_duplicates("id", keep="last").set_index("id")
        stored_updated = keys.map(by_id["updatedAt"])
        closed = keys.map(by_id["deletedAt"]).notna().to_numpy()
    else:
        stored_updated = pd.Series(pd.NaT, index=keys.index, dtype="datetime64[ms, UTC]")
        closed = np.zeros(len(missions), dtype=bool)
    later = (updated > stored_updated).fillna(False).to_numpy(dtype=bool)
    unknown = (stored_updated.isna() | updated.isna()).to_numpy()
    load, still_rejected = [], []
    for i, mission in enumerate(missions):
        mission_id = ids[i]
        reopened = bool(closed[i]) and isinstance(mission, dict) and not mission.get("deletedAt")
        changed = mission_id is None or unknown[i] or later[i] or reopened
        if changed and mission_id in known_rejects and known_rejects[mission_id] == raw[i]:
            still_rejected.append(mission_id)
            changed = False
        load.append(bool(changed))
    return load, still_rejected


def merge_perimeter(
    stored: pd.DataFrame | None, new: pd.DataFrame, seen: set[str], at: pd.Timestamp
) -> tuple[pd.DataFrame, dict[str, int]]:
    """The store after a sync: `new` (the accepted missions) merged into `stored`, and the
    stored offers whose id is not in `seen` (every mission the API returned, rejected ones
    included) closed at `at`. Counts: added, updated, unchanged, closed, deleted.
    """
    new = new.drop_duplicates("id", keep="last")
    has_deleted = new["deletedAt"].notna()
    if stored is None or stored.empty:
        counts = {"added": len(new), "updated": 0, "unchanged": 0, "closed": 0}
        counts["deleted"] = int(has_deleted.sum())
        return new.reset_index(drop=True), counts
    stored = schema.with_optional_columns(stored, "offers")
    by_id = stored.drop_duplicates("id", keep="last").set_index("id")
    known = new["id"].isin(by_id.index).to_numpy()
    previous_updated = new["id"].map(by_id["updatedAt"])
    previous_deleted = new["id"].map(by_id["deletedAt"])
    newer = new["updatedAt"].dt.floor("ms") > previous_updated  # the store keeps ms
    later = newer.fillna(False).to_numpy(dtype=bool)
    reopened = (previous_deleted.notna() & new["deletedAt"].isna()).to_numpy()
    replacing = known & (later | reopened)
    replaced_ids = set(new["id"][replacing])
    kept = stored.loc[~stored["id"].isin(replaced_ids)].copy()
    gone = ~kept["id"].isin(seen) & kept["deletedAt"].isna()
    kept.loc[gone, "deletedAt"] = at
    taken = new.loc[replacing | ~known]
    merged = pd.concat([kept, taken], ignore_index=True)
    counts = {
        "added": int((~known).sum()),
        "updated": int(replacing.sum()),
        "unchanged": int(known.sum() - replacing.sum()),
        "closed": int(gone.sum()),
        "deleted": int(has_deleted[replacing | ~known].sum()),
    }
    return merged, counts


def notify(service: str, path: Path, token: str | None, timeout: float = 600.0) -> str:
    """Ask the ranking service to serve the synced store (`POST /admin/catalog`, mode
    replace); the service's admin sync carries the swap to its other workers.

    Returns the service's message. Raises SyncError when the service refuses or is down.
    """
    url = service.rstrip("/") + "/admin/catalog"
    headers = {"X-Admin-Token": token} if token else {}
    try:
        response = httpx.post(
            url,
            json={"path": str(Path(path).resolve()), "mode": "replace"},
            headers=headers,
            timeout=timeout,
        )
    except httpx.HTTPError as error:
        raise SyncError(f"{url}: {type(error).__name__}: {error}") from error
    if response.status_code != 200:
        raise SyncError(f"{url}: HTTP {response.status_code}: {response.text[:300]}")
    return str(response.json().get("message", ""))


def notify_pending(
    service: str, out: Path, token: str | None, timeout: float = 600.0
) -> str | None:
    """`notify` the service of the store in `out` unless it was already told of the store's
    last change (`last_change` of the state file; `notified` records, per service, the
    change last delivered).

    A failed call leaves the change pending, so the next sync delivers it even when that
    sync changed nothing; a sync that changed nothing after a delivered change calls
    nothing. Returns the service's message, or None when nothing was pending.

    Raises:
        SyncError: the service refused or is down (the change stays pending).
    """
    service = service.rstrip("/")
    state = read_state(out)
    change = state.get("last_change")
    delivered = state.get("notified") or {}
    if change is None or delivered.get(service) == change:
        return None
    message = notify(service, out / config.OFFERS_FILE, token, timeout)
    state["notified"] = {**delivered, service: change}
    _write_json(out / STATE_FILE, state)
    return message


def parse_duration(text: str) -> float:
    """Seconds of "90", "90s", "15m", "2h" or "1d".

    Raises:
        ValueError: naming --every, for anything else or a non-positive duration.
    """
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    raw = text.strip().lower()
    unit = units.get(raw[-1:])
    number = raw[:-1] if unit is not None else raw
    try:
        seconds = float(number) * (unit or 1)
    except ValueError:
        message = f"--every: expected a duration like 90s, 15m or 1h, got {text!r}"
        raise ValueError(message) from None
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"--every: expected a positive duration, got {text!r}")
    return seconds
