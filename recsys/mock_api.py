"""A mock of the national engagement API's mission endpoint, for tests and the demo.

`GET /v0/mission` as DOMAIN.md §2b describes it: the partner's key in the `apikey` (or
`x-api-key`) header, paging by `limit` (default 25, at most 10,000) and `skip` (`size` and
`from` accepted as aliases), answers `{"ok": true, "total": N, "data": [...], "limit": L,
"skip": S}`, errors `{"ok": false, "code": ..., "message": ...}` (400 on a bad query, 401
without the right key). Faults are injected on purpose: every n-th request answered 429 or
500, every n-th request slowed down, so that clients can be tested against them.

The missions come from a dataset folder (`missions.json`, an API export, else the canonical
`offers.parquet` turned back into the API's format by `missions_from_offers`), re-read
whenever the file changes, so the demo can add an offer while the mock runs; tests change
them in place (`MockAPI.set_missions`, `upsert`, `remove`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from recsys import config, schema

logger = logging.getLogger(__name__)

PATH: Final = "/v0/mission"
DEFAULT_LIMIT: Final = 25
MAX_LIMIT: Final = 10_000
MISSIONS_FILE: Final = "missions.json"
KEY_HEADERS: Final = ("apikey", "x-api-key")
_PLACE_FIELDS: Final = ("city", "postalCode", "departmentCode", "departmentName", "region")
_YES_NO: Final = ("openToMinors", "reducedMobilityAccessible", "closeToTransport")


@dataclass(frozen=True)
class Faults:
    """Faults injected by request number (1-based, every endpoint call counts).

    Attributes:
        fail_every: every n-th request is answered `fail_status` (0: never).
        fail_status: 429 (rate limited) or a 5xx.
        slow_every: every n-th request waits `slow_seconds` before answering (0: never).
        slow_seconds: how long a slow answer waits.
    """

    fail_every: int = 0
    fail_status: int = 429
    slow_every: int = 0
    slow_seconds: float = 0.0


def _json_value(value: Any) -> Any:
    """A table value as JSON: timestamps in ISO 8601, NaN and NA as null, numpy as Python."""
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, pd.Timestamp | datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, np.ndarray):
        return [_json_value(item) for item in value]
    if isinstance(value, dict):
        return {key: _json_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_value(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def missions_from_offers(offers: pd.DataFrame) -> list[dict[str, Any]]:
    """Canonical offers (`recsys.schema.OFFER_SCHEMA`) as the API exports them: the first
    address flattened and under `location`, every address in `addresses`, yes/no flags."""
    offers = schema.with_optional_columns(offers, "offers")
    out = []
    for record in offers.to_dict("records"):
        mission = {
            key: _json_value(value)
            for key, value in record.items()
            if key not in ("lat", "lon", "addresses", "locationSource")
        }
        for name in _YES_NO:
            if mission.get(name) is not None:
                mission[name] = "yes" if mission[name] else "no"
        lat, lon = _json_value(record["lat"]), _json_value(record["lon"])
        located = lat is not None and lon is not None and record.get("locationSource") is None
        mission["location"] = {"lat": lat, "lon": lon} if located else None
        addresses = _json_value(record["addresses"])
        if not addresses:
            first = {name: mission.get(name) for name in _PLACE_FIELDS if name != "departmentName"}
            addresses = [{**first, "location": mission["location"]}]
        else:
            addresses = [
                {
                    **{k: v for k, v in a.items() if k not in ("lat", "lon", "locationSource")},
                    "location": (
                        {"lat": a["lat"], "lon": a["lon"]}
                        if a["lat"] is not None and a.get("locationSource") is None
                        else None
                    ),
                }
                for a in addresses
            ]
        mission["addresses"] = addresses
        out.append(mission)
    return out


def read_missions(data_dir: Path) -> list[dict[str, Any]]:
    """The missions of a dataset folder: `missions.json` (an array, or `{"data": [...]}`)
    when present, else `offers.parquet`.

    Raises:
        FileNotFoundError: when the folder holds neither.
        ValueError: when `missions.json` is not an array of missions.
    """
    export = data_dir / MISSIONS_FILE
    if export.is_file():
        loaded = json.loads(export.read_text(encoding="utf-8"))
        missions = loaded.get("data") if isinstance(loaded, dict) else loaded
        if not isinstance(missions, list):
            raise ValueError(f"{export}: expected a JSON array of missions")
        return missions
    table = data_dir / config.OFFERS_FILE
    if table.is_file():
        return missions_from_offers(schema.read_table(table))
    raise FileNotFoundError(f"--data: {data_dir} holds neither {MISSIONS_FILE} nor offers")


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"ok": False, "code": code, "message": message}, status_code=status)


class MockAPI:
    """The mock's state (missions, key, faults, request count) and its ASGI app (`app`)."""

    def __init__(
        self,
        missions: list[dict[str, Any]],
        key: str | None = None,
        faults: Faults | None = None,
        data_dir: Path | None = None,
    ) -> None:
        self.key = key
        self.faults = faults or Faults()
        self.data_dir = data_dir
        self.requests = 0
        self.pages: list[tuple[int, int]] = []  # (limit, skip) of each answered page
        self._lock = threading.Lock()
        self._stamp: tuple[float, int] | None = None
        self.set_missions(missions)
        self.app = Starlette(routes=[Route(PATH, self.mission, methods=["GET"])])

    @classmethod
    def from_dir(
        cls, data_dir: Path, key: str | None = None, faults: Faults | None = None
    ) -> MockAPI:
        """A mock serving a dataset folder's missions (see `read_missions`), re-read when
        its file changes."""
        api = cls(read_missions(data_dir), key, faults, data_dir)
        api._stamp = api._file_stamp()
        return api

    def __len__(self) -> int:
        return len(self._ids)

    def set_missions(self, missions: list[dict[str, Any]]) -> None:
        """Serve these missions, in this order."""
        encoded = [json.dumps(m, ensure_ascii=False, default=str) for m in missions]
        with self._lock:
            self._ids = [str(m.get("id")) for m in missions]
            self._encoded = encoded

    def upsert(self, mission: dict[str, Any]) -> None:
        """Add a mission, or replace the one with its id in place."""
        encoded = json.dumps(mission, ensure_ascii=False, default=str)
        with self._lock:
            ids, texts = list(self._ids), list(self._encoded)
            if str(mission["id"]) in ids:
                texts[ids.index(str(mission["id"]))] = encoded
            else:
                ids.append(str(mission["id"]))
                texts.append(encoded)
            self._ids, self._encoded = ids, texts

    def remove(self, mission_id: str) -> None:
        """Stop serving a mission (it leaves the partner's perimeter)."""
        with self._lock:
            keep = [i for i, known in enumerate(self._ids) if known != mission_id]
            self._ids = [self._ids[i] for i in keep]
            self._encoded = [self._encoded[i] for i in keep]

    def _file_stamp(self) -> tuple[float, int] | None:
        if self.data_dir is None:
            return None
        for name in (MISSIONS_FILE, config.OFFERS_FILE):
            path = self.data_dir / name
            if path.is_file():
                stat = path.stat()
                return (stat.st_mtime, stat.st_size)
        return None

    def _reload_if_changed(self) -> None:
        stamp = self._file_stamp()
        if self.data_dir is not None and stamp is not None and stamp != self._stamp:
            try:
                self.set_missions(read_missions(self.data_dir))
                self._stamp = stamp
                logger.info("mock API: missions re-read from %s", self.data_dir)
            except (OSError, ValueError) as error:  # half-written file: next request retries
                logger.warning("mock API: cannot re-read %s: %s", self.data_dir, error)

    async def mission(self, request: Request) -> Response:
        """`GET /v0/mission`: one page of missions, or an error (see the module docstring)."""
        with self._lock:
            self.requests += 1
            number = self.requests
        faults = self.faults
        if faults.slow_every and number % faults.slow_every == 0:
            await asyncio.sleep(faults.slow_seconds)
        if faults.fail_every and number % faults.fail_every == 0:
            if faults.fail_status == 429:
                response = _error(429, "TOO_MANY_REQUESTS", "rate limit exceeded, retry later")
                response.headers["Retry-After"] = "0"
                return response
            return _error(faults.fail_status, "SERVER_ERROR", "injected failure")
        if self.key is not None:
            given = next(
                (request.headers.get(h) for h in KEY_HEADERS if h in request.headers), None
            )
            if given != self.key:
                return _error(401, "UNAUTHORIZED", "apikey: missing or not a partner's key")
        try:
            limit = _query_int(request, ("limit", "size"), DEFAULT_LIMIT, 1, MAX_LIMIT)
            skip = _query_int(request, ("skip", "from"), 0, 0, None)
        except ValueError as error:
            return _error(400, "INVALID_QUERY", str(error))
        self._reload_if_changed()
        with self._lock:
            total = len(self._encoded)
            page = self._encoded[skip : skip + limit]
            self.pages.append((limit, skip))
        body = (
            f'{{"ok":true,"total":{total},"limit":{limit},"skip":{skip},"data":['
            + ",".join(page)
            + "]}"
        )
        return Response(body, media_type="application/json")


def _query_int(
    request: Request, names: tuple[str, str], default: int, low: int, high: int | None
) -> int:
    """A whole-number query parameter under its name or alias, within [low, high]."""
    given = [name for name in names if name in request.query_params]
    if len(given) == 2 and request.query_params[names[0]] != request.query_params[names[1]]:
        raise ValueError(f"{names[0]} and {names[1]} disagree")
    if not given:
        return default
    raw = request.query_params[given[0]]
    if not raw.strip().isdigit():
        raise ValueError(f"{given[0]}: expected a whole number, got {raw!r}")
    value = int(raw)
    if value < low or (high is not None and value > high):
        bound = f"at least {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{given[0]}: expected a number {bound}, got {value}")
    return value


@contextlib.contextmanager
def running(api: MockAPI, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve the mock in a background thread on a port the system picks; yields its base
    URL, and stops the server on exit."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(api.app, host=host, port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, name="mock-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise RuntimeError("mock API: the server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def serve(api: MockAPI, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve the mock until interrupted (uvicorn)."""
    import uvicorn

    uvicorn.run(api.app, host=host, port=port, log_level="warning")
