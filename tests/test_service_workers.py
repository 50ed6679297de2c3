"""Several worker processes (RECSYS_WORKERS=2): an admin call reaches every one of them.

A real `bentoml serve` on loopback with two workers. Each worker answers with its process id
in /status; requests on new connections, sent together, reach both. A widget allow-list set
on one worker narrows every worker's lists, and is still there after a restart.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from serving.process import running_servers
from tests.service_fixtures import new_offer, write_world

pytestmark = pytest.mark.service

TOKEN = "workers-admin-token"
LYON_PERSON = {"age": 20, "lat": 45.764, "lon": 4.8357, "radius_km": 30}


def _versions_by_worker(base: str, rounds: int = 1) -> dict[int, set[str]]:
    """Catalog versions each worker reported, over `rounds` of 8 new connections at once."""
    seen: dict[int, set[str]] = {}

    def status(_: int) -> dict:
        return httpx.get(f"{base}/status", timeout=30).json()  # a new connection each time

    with ThreadPoolExecutor(8) as pool:
        for _ in range(rounds):
            for answer in pool.map(status, range(8)):
                seen.setdefault(answer["worker_pid"], set()).add(answer["catalog_version"])
    return seen


def _lists_of_every_worker(base: str, body: dict) -> list[list[dict]]:
    """The items of 8 /rank requests on new connections at once (they reach both workers)."""

    def items(_: int) -> list[dict]:
        return httpx.post(f"{base}/rank", json=body, timeout=30).json()["items"]

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(items, range(8)))


def test_an_admin_call_reaches_every_worker(tmp_path: Path) -> None:
    world = write_world(tmp_path / "world")
    env = {
        "RECSYS_MODEL_URI": str(world["bundle"]),
        "RECSYS_CATALOG": str(world["catalog"]),
        "RECSYS_PROFILES": str(world["profiles"]),
        "RECSYS_EVENT_STORE_URL": f"sqlite:///{tmp_path / 'events.db'}",
        "RECSYS_ADMIN_TOKEN": TOKEN,
        "RECSYS_WORKERS": "2",
        "RECSYS_ADMIN_SYNC_SECONDS": "0.2",
    }
    update = tmp_path / "update.parquet"
    new_offer().to_parquet(update, index=False)
    with running_servers([(env, tmp_path / "server.log")]) as (base,):
        before = _versions_by_worker(base, rounds=10)
        assert len(before) == 2, f"requests reached {len(before)} worker(s) only"
        assert len(set().union(*before.values())) == 1  # one catalog, loaded by each
        answer = httpx.post(
            f"{base}/admin/catalog",
            json={"path": str(update)},
            headers={"X-Admin-Token": TOKEN},
            timeout=60,
        )
        assert answer.status_code == 200 and answer.json()["ok"], answer.text
        version = answer.json()["catalog_version"]
        deadline = time.monotonic() + 30
        while True:
            after = _versions_by_worker(base)
            if len(after) == 2 and all(v == {version} for v in after.values()):
                break
            assert time.monotonic() < deadline, f"workers still serve {after}"
            time.sleep(0.2)
        for user in ("sport-lyon-0", "culture-lyon-0"):  # the new offer is served everywhere
            items = httpx.post(f"{base}/rank", json={"user_id": user, "k": 30}, timeout=30)
            assert "lyon-sport-new" in {item["offer_id"] for item in items.json()["items"]}
        # An apply received by one worker is excluded by every worker (read from the store).
        user = "sport-lyon-0"
        event = {
            "id": "apply-new",
            "type": "apply",
            "mission_id": "lyon-sport-new",
            "user_id": user,
        }
        stored = httpx.post(f"{base}/events", json={"events": [event]}, timeout=30).json()
        assert stored["stored"] == 1
        deadline = time.monotonic() + 30
        while True:  # new connections: the requests reach both workers
            with ThreadPoolExecutor(8) as pool:
                lists = list(
                    pool.map(
                        lambda _: httpx.post(
                            f"{base}/rank", json={"user_id": user, "k": 30}, timeout=30
                        ).json()["items"],
                        range(8),
                    )
                )
            if all("lyon-sport-new" not in {i["offer_id"] for i in items} for items in lists):
                break
            assert time.monotonic() < deadline, "a worker still lists the offer applied to"
            time.sleep(0.2)

        # A widget allow-list set on one worker: every worker's lists follow it.
        widget = {"widget_id": "w-workers", "publishers": ["p8"]}  # the new offer's publisher
        saved = httpx.post(
            f"{base}/admin/widgets/set", json=widget, headers={"X-Admin-Token": TOKEN}, timeout=30
        )
        assert saved.status_code == 200 and saved.json()["not_in_catalog"] == [], saved.text
        body = {"profile": LYON_PERSON, "k": 30, "context": {"widget_id": "w-workers"}}
        deadline = time.monotonic() + 30
        while True:
            lists = _lists_of_every_worker(base, body)
            if all([i["offer_id"] for i in items] == ["lyon-sport-new"] for items in lists):
                break
            assert time.monotonic() < deadline, "a worker still ignores the widget's list"
            time.sleep(0.2)
    # Restarted on the same store (and the start-up catalog, without p8's offer): still there.
    with running_servers([({**env, "RECSYS_WORKERS": "1"}, tmp_path / "restart.log")]) as (base,):
        answer = httpx.post(
            f"{base}/admin/widgets/get",
            json={"widget_id": "w-workers"},
            headers={"X-Admin-Token": TOKEN},
            timeout=30,
        )
        assert answer.json()["widgets"] == [
            {**widget, "source": "admin", "not_in_catalog": ["p8"]}
        ], answer.text
        ranked = httpx.post(f"{base}/rank", json=body, timeout=30)
        assert ranked.status_code == 200 and ranked.json()["items"] == []
