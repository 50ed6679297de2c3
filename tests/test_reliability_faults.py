"""Faults against real server processes: a bad model or registry at start, admin swaps that
fail half-way, catalog swaps under load, and a server killed while events are posted.

Module servers (started together):

* `unreachable`: the champion alias on an MLflow tracking server that does not answer;
* `corrupt`: a bundle whose model arrays were cut in half;
* `served`: a good bundle, catalog A (offer ids `a-...`), an admin token. Catalog B holds the
  same offers under ids `b-...`, so every answer shows which catalog it was computed on.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from serving.events import EventStore
from serving.process import (
    free_port,
    kill,
    running_servers,
    start_server,
    terminate,
    wait_until_up,
)
from tests.service_fixtures import catalog_offers, write_world

pytestmark = pytest.mark.service

TOKEN = "fault-token"
ADMIN = {"X-Admin-Token": TOKEN}
BODIES: list[dict[str, Any]] = [
    {"k": 10},
    {"user_id": "sport-paris-0", "k": 5},
    {"profile": {"age": 17, "postal_code": "69003", "radius_km": 30}, "k": 8},
    {"profile": {"age": 25}, "filters": {"types": ["benevolat"]}, "k": 3},
]


def _truncate(path: Path) -> None:
    """Keep the first half of a file: what a copy interrupted half-way leaves."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _catalog(path: Path, prefix: str) -> Path:
    offers = catalog_offers()
    offers["id"] = prefix + offers["id"]
    offers.to_parquet(path, index=False)
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("faults")
    paths = write_world(folder)
    corrupt = folder / "corrupt-bundle"
    shutil.copytree(paths["bundle"], corrupt)
    _truncate(corrupt / "model" / "arrays.npz")
    broken_catalog = _catalog(folder / "broken.parquet", "b-")
    _truncate(broken_catalog)
    return {
        **paths,
        "corrupt": corrupt,
        "a": _catalog(folder / "a.parquet", "a-"),
        "b": _catalog(folder / "b.parquet", "b-"),
        "broken": broken_catalog,
        "folder": folder,
    }


def _env(world: dict[str, Path], name: str, **extra: str) -> dict[str, str]:
    return {
        "RECSYS_CATALOG": str(world["a"]),
        "RECSYS_PROFILES": str(world["profiles"]),
        "RECSYS_EVENT_STORE_URL": f"sqlite:///{world['folder'] / f'{name}.db'}",
        "RECSYS_ADMIN_TOKEN": TOKEN,
        **extra,
    }


@pytest.fixture(scope="module")
def servers(world: dict[str, Path]) -> Iterator[dict[str, httpx.Client]]:
    folder = world["folder"]
    configs = {
        "unreachable": _env(
            world,
            "unreachable",
            RECSYS_MODEL_URI="models:/engagement-ranker@champion",
            MLFLOW_TRACKING_URI=f"http://127.0.0.1:{free_port()}",
            MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
            MLFLOW_HTTP_REQUEST_TIMEOUT="5",
        ),
        "corrupt": _env(world, "corrupt", RECSYS_MODEL_URI=str(world["corrupt"])),
        "served": _env(world, "served", RECSYS_MODEL_URI=str(world["bundle"])),
    }
    logs = [(env, folder / f"{name}.log") for name, env in configs.items()]
    with running_servers(logs) as bases:
        clients = {
            name: httpx.Client(base_url=b, timeout=60)
            for name, b in zip(configs, bases, strict=True)
        }
        yield clients
        for client in clients.values():
            client.close()


# --- (a) no usable model at start ---------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "cause"), [("unreachable", "127.0.0.1"), ("corrupt", "badzipfile")]
)
def test_bad_model_at_start_serves_the_rules(
    servers: dict[str, httpx.Client], name: str, cause: str
) -> None:
    client = servers[name]
    assert client.get("/readyz").status_code == 200
    status = client.get("/status").json()
    assert status["model_version"] == "rules" and status["strategies"] == ["rules_fallback"]
    assert status["model_error"] and cause in status["model_error"].lower()
    answer = client.post("/rank", json={"profile": {"age": 20, "postal_code": "75011"}, "k": 5})
    assert answer.status_code == 200
    body = answer.json()
    assert body["strategy"] == "rules_fallback" and len(body["items"]) == 5
    assert all(item["offer_id"].startswith("a-") for item in body["items"])


# --- (b) admin actions that fail half-way ---------------------------------------------------


class Traffic:
    """Threads sending /rank requests until stopped; keeps every answer (or exception)."""

    def __init__(self, base: str, threads: int = 3, limit: int = 400) -> None:
        self.answers: list[httpx.Response | Exception] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._limit = limit
        self._threads = [
            threading.Thread(target=self._run, args=(base, i), daemon=True) for i in range(threads)
        ]

    def _run(self, base: str, offset: int) -> None:
        with httpx.Client(base_url=base, timeout=60) as client:
            i = offset
            while not self._stop.is_set() and len(self.answers) < self._limit:
                try:
                    answer: httpx.Response | Exception = client.post(
                        "/rank", json=BODIES[i % len(BODIES)]
                    )
                except httpx.HTTPError as error:
                    answer = error
                with self._lock:
                    self.answers.append(answer)
                i += 1

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=120)

    def failures(self) -> list[str]:
        return [
            str(a) if isinstance(a, Exception) else f"{a.status_code} {a.text[:200]}"
            for a in self.answers
            if isinstance(a, Exception) or a.status_code != 200
        ]


def test_failed_swaps_keep_the_previous_state(
    servers: dict[str, httpx.Client], world: dict[str, Path]
) -> None:
    client = servers["served"]
    before = client.get("/status").json()
    with Traffic(str(client.base_url)) as traffic:
        catalog = client.post(
            "/admin/catalog", json={"path": str(world["broken"]), "mode": "replace"}, headers=ADMIN
        )
        reload = client.post("/admin/reload", json={"uri": str(world["corrupt"])}, headers=ADMIN)
        time.sleep(0.5)
    assert catalog.status_code == 422 and "previous catalog kept" in catalog.json()["message"]
    assert reload.status_code == 422 and "previous model kept" in reload.json()["message"]
    status = client.get("/status").json()
    assert status["catalog_version"] == before["catalog_version"]
    assert status["model_version"] == before["model_version"] == "local:bundle"
    assert "update failed" in status["catalog_error"]
    assert "reload failed" in status["model_error"]
    assert traffic.answers and traffic.failures() == []
    answer = client.post("/rank", json={"user_id": "sport-paris-0"}).json()
    assert answer["strategy"] == "personalized"
    assert answer["catalog_version"] == before["catalog_version"]
    assert all(item["offer_id"].startswith("a-") for item in answer["items"])


# --- (c) catalog swaps under load ------------------------------------------------------------


def test_catalog_swaps_under_load_never_mix_catalogs(
    servers: dict[str, httpx.Client], world: dict[str, Path]
) -> None:
    client = servers["served"]
    prefix_of = {client.get("/status").json()["catalog_version"]: "a"}
    swaps = 0
    with Traffic(str(client.base_url), threads=4, limit=300) as traffic:
        while len(traffic.answers) < 300 and swaps < 40:
            name = "b" if swaps % 2 == 0 else "a"
            result = client.post(
                "/admin/catalog", json={"path": str(world[name]), "mode": "replace"}, headers=ADMIN
            )
            assert result.status_code == 200, result.text
            prefix_of[result.json()["catalog_version"]] = name
            swaps += 1
    assert traffic.failures() == []
    assert len(traffic.answers) >= 300 and swaps >= 2
    seen = set()
    for answer in traffic.answers:
        body = answer.json()  # type: ignore[union-attr]
        prefixes = {item["offer_id"].split("-")[0] for item in body["items"]}
        assert prefixes == {prefix_of[body["catalog_version"]]}, body
        seen |= prefixes
    assert seen == {"a", "b"}  # both catalogs were served during the test
    client.post("/admin/catalog", json={"path": str(world["a"]), "mode": "replace"}, headers=ADMIN)


# --- (d) the server killed while events are posted ------------------------------------------


def _batches(thread: int, count: int, size: int = 5) -> list[list[dict[str, Any]]]:
    return [
        [
            {"id": f"t{thread}-b{b}-e{e}", "type": "print", "mission_id": "a-paris-sport-0"}
            for e in range(size)
        ]
        for b in range(count)
    ]


def test_acknowledged_events_survive_sigkill(world: dict[str, Path]) -> None:
    folder = world["folder"]
    url = f"sqlite:///{folder / 'killed.db'}"
    env = _env(world, "killed", RECSYS_MODEL_URI=str(world["bundle"]), RECSYS_EVENT_STORE_URL=url)
    log = folder / "killed.log"
    process, base = start_server(env, log)
    restarted = None
    try:
        wait_until_up(process, base, log, time.monotonic() + 240)
        plans = {t: _batches(t, 200) for t in range(3)}
        acknowledged: set[str] = set()
        lock = threading.Lock()

        def post(thread: int) -> None:
            with httpx.Client(base_url=base, timeout=30) as client:
                for batch in plans[thread]:
                    try:
                        answer = client.post("/events", json={"events": batch})
                    except httpx.HTTPError:
                        return  # the server is gone: this batch's fate is unknown
                    if answer.status_code == 200:
                        with lock:
                            acknowledged.update(event["id"] for event in batch)

        with ThreadPoolExecutor(3) as pool:
            futures = [pool.submit(post, t) for t in plans]
            deadline = time.monotonic() + 60
            while len(acknowledged) < 100 and time.monotonic() < deadline:
                time.sleep(0.02)
            kill(process)  # SIGKILL, supervisor and worker
            for future in futures:
                future.result()
        sent = {event["id"] for batches in plans.values() for batch in batches for event in batch}
        assert 100 <= len(acknowledged) < len(sent)  # killed in the middle

        restarted, base = start_server(env, log)
        wait_until_up(restarted, base, log, time.monotonic() + 240)
        store = EventStore(url, create=False)
        try:
            stored = store.read_events()["id"]
            assert acknowledged <= set(stored) and stored.is_unique
            # The fronts retry everything: acknowledged ids are duplicates, nothing doubles.
            with httpx.Client(base_url=base, timeout=30) as client:
                for batches in plans.values():
                    for batch in batches[:40]:
                        answer = client.post("/events", json={"events": batch}).json()
                        ids = {event["id"] for event in batch}
                        assert ids & acknowledged <= set(answer["duplicate_ids"])
            after = store.read_events()["id"]
            assert after.is_unique
            assert set(after) == set(stored) | {
                event["id"] for batches in plans.values() for b in batches[:40] for event in b
            }
        finally:
            store.close()
    finally:
        terminate([p for p in (process, restarted) if p is not None])
