"""A two-arm experiment end to end over real HTTP: a `bentoml serve` with two workers, the
hybrid bundle against the rules engine, visitors ranked, prints, clicks and applies sent to
/events as a front (or a replay client) sends them, the A/B report recovering the counts, and
an admin call stopping the experiment on every worker."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from serving.cli import app
from serving.events import EventStore
from serving.experiments import ExperimentConfig, assign
from serving.process import running_servers
from tests.service_fixtures import write_world

pytestmark = pytest.mark.service

TOKEN = "experiment-admin-token"
SALT = "experiment-test-salt"
EXPERIMENT = {
    "name": "hybrid-vs-rules",
    "arms": [
        {"name": "hybrid", "share": 0.5},
        {"name": "rules", "share": 0.5, "policy": "rules"},
    ],
}
VISITORS = [f"visitor-{i}" for i in range(40)]
PROFILE = {"age": 20, "postal_code": "75001", "radius_km": 30}


def _events(index: int, visitor: str, listed: dict) -> list[dict]:
    """What the front sends for visitor `index`'s list: a print per item; every second visitor
    clicks the first item; of those, every second applies through the click (the chain);
    visitors 1, 5, 9, ... apply to their second item without any id (the window credits it)."""
    request_id, items = listed["request_id"], listed["items"]
    events = [
        {
            "id": f"print-{request_id}-{item['rank']}",
            "type": "print",
            "mission_id": item["offer_id"],
            "request_id": request_id,
            "position": item["rank"],
            "user_id": visitor,
        }
        for item in items
    ]
    if index % 2 == 0:
        click = f"click-{request_id}"
        first = items[0]["offer_id"]
        events.append(
            {
                "id": click,
                "type": "click",
                "mission_id": first,
                "request_id": request_id,
                "click_id": click,
                "position": 1,
                "user_id": visitor,
            }
        )
        if index % 4 == 0:
            events.append(
                {
                    "id": f"apply-{request_id}",
                    "type": "apply",
                    "mission_id": first,
                    "click_id": click,
                    "user_id": visitor,
                    "status": "PENDING",
                }
            )
    if index % 4 == 1:
        events.append(
            {
                "id": f"apply-{request_id}",
                "type": "apply",
                "mission_id": items[1]["offer_id"],
                "user_id": visitor,
            }
        )
    return events


def _experiment_states(base: str) -> dict[int, str]:
    """The experiment's state as each worker reports it, over new connections sent at once."""

    def status(_: int) -> dict:
        return httpx.get(f"{base}/status", timeout=30).json()

    with ThreadPoolExecutor(8) as pool:
        return {s["worker_pid"]: s["experiment"]["state"] for s in pool.map(status, range(8))}


def test_two_arms_served_logged_reported_and_stopped(tmp_path: Path) -> None:
    world = write_world(tmp_path / "world")
    url = f"sqlite:///{tmp_path / 'events.db'}"
    env = {
        "RECSYS_MODEL_URI": str(world["bundle"]),
        "RECSYS_CATALOG": str(world["catalog"]),
        "RECSYS_PROFILES": str(world["profiles"]),
        "RECSYS_EVENT_STORE_URL": url,
        "RECSYS_ADMIN_TOKEN": TOKEN,
        "RECSYS_ID_SALT": SALT,
        "RECSYS_WORKERS": "2",
        "RECSYS_ADMIN_SYNC_SECONDS": "0.2",
        "RECSYS_RANK_LOG_FLUSH_SECONDS": "0.1",
        "RECSYS_EXPERIMENT": json.dumps(EXPERIMENT),
    }
    config = ExperimentConfig.model_validate(EXPERIMENT)
    arms = {visitor: assign(config, visitor) for visitor in VISITORS}
    with running_servers([(env, tmp_path / "server.log")]) as (base,):
        client = httpx.Client(base_url=base, timeout=30)
        status = client.get("/status").json()["experiment"]
        assert status["name"] == "hybrid-vs-rules" and status["state"] == "running"
        assert status["arms"] == {"hybrid": 0.5, "rules": 0.5}
        assert status["arm_models"]["rules"] == "rules"

        lists = {}
        for visitor in VISITORS:
            answer = client.post("/rank", json={"user_id": visitor, "profile": PROFILE, "k": 5})
            assert answer.status_code == 200, answer.text
            listed = answer.json()
            assert (listed["experiment"], listed["arm"]) == ("hybrid-vs-rules", arms[visitor])
            expected = "rules_fallback" if arms[visitor] == "rules" else "cold_start"
            assert listed["strategy"] == expected and len(listed["items"]) >= 2
            lists[visitor] = listed
        again = client.post("/rank", json={"user_id": VISITORS[0], "profile": PROFILE}).json()
        assert again["arm"] == arms[VISITORS[0]]  # sticky
        anonymous = client.post("/rank", json={"profile": PROFILE}).json()
        assert (anonymous["experiment"], anonymous["arm"]) == (None, None)

        events = [e for i, v in enumerate(VISITORS) for e in _events(i, v, lists[v])]
        answer = client.post("/events", json={"events": events})
        assert answer.status_code == 200, answer.text
        assert answer.json()["stored"] == len(events)

        store = EventStore(url, create=False, id_salt=SALT)
        # every list the report counts, the sticky second one too: the rank log is written
        # by a background flush, so the test waits for all of them before reporting
        wanted = {listed["request_id"] for listed in lists.values()} | {again["request_id"]}
        deadline = time.monotonic() + 30
        while not wanted <= set(store.read_rankings()["requestId"]):
            assert time.monotonic() < deadline, "lists not logged"
            time.sleep(0.1)
        logged = store.read_rankings().drop_duplicates("requestId").set_index("requestId")
        for visitor, listed in lists.items():
            assert logged.loc[listed["request_id"], "arm"] == arms[visitor]
        store.close()

        figures = tmp_path / "report.json"
        page = tmp_path / "report.html"
        runner = CliRunner()
        command = ["ab", "report", "--store", url, "--json", str(figures), "--out", str(page)]
        result = runner.invoke(app, [*command, "--offers", str(world["catalog"])])
        assert result.exit_code == 0, result.output
        report = json.loads(figures.read_text())
        for arm in ("hybrid", "rules"):
            indexes = [i for i, v in enumerate(VISITORS) if arms[v] == arm]
            visitors = len(indexes)
            extra = 1 if arm == arms[VISITORS[0]] else 0  # the sticky second list
            figures_of = report["arms"][arm]
            assert figures_of["visitors"] == visitors and figures_of["lists"] == visitors + extra
            assert figures_of["clicks"] == sum(i % 2 == 0 for i in indexes)
            assert figures_of["applications"] == sum(i % 4 in (0, 1) for i in indexes)
            assert figures_of["applications_per_1000_visitors"] == pytest.approx(
                1000 * figures_of["applications"] / visitors
            )
        assert report["unattributed_applications"] == 0
        assert sum(sum(counts.values()) for counts in report["programmes"].values()) == 20
        assert "rules" in report["lifts"] and not report["sample_ratio"]["mismatch"]
        assert page.read_text().count("data:image/png;base64,") == 3

        refused = client.post("/admin/experiment/stop", json={})
        assert refused.status_code == 403
        wrong = client.post(
            "/admin/experiment/stop", json={"name": "other"}, headers={"X-Admin-Token": TOKEN}
        )
        assert wrong.status_code == 422 and "hybrid-vs-rules" in wrong.json()["message"]
        stopped = client.post("/admin/experiment/stop", json={}, headers={"X-Admin-Token": TOKEN})
        assert stopped.status_code == 200 and stopped.json()["ok"], stopped.text
        deadline = time.monotonic() + 30
        while set(states := _experiment_states(base).values()) != {"stopped"}:
            assert time.monotonic() < deadline, f"workers report {states}"
            time.sleep(0.2)
        after = client.post("/rank", json={"user_id": VISITORS[0], "profile": PROFILE}).json()
        assert (after["experiment"], after["arm"]) == (None, None)

    result = runner.invoke(app, command)
    assert result.exit_code == 0 and json.loads(figures.read_text())["stopped_at"] is not None
