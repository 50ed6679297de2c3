"""`POST /admin/audience` over real HTTP: a `bentoml serve` process on loopback.

The tiny service world (`tests.service_fixtures`) with profiles added for a mobilisation:
30 consenting people in Paris (`yes-0` ...), 10 in Paris who did not consent (`no-0` ...),
and the 12 training users (no consent either).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pandas as pd
import pytest

from recsys.privacy import pseudonym
from serving.events import EventStore
from serving.process import running_servers
from tests.fixtures import PARIS, make_profiles_frame
from tests.service_fixtures import training_profiles, write_world

pytestmark = pytest.mark.service

TOKEN = "audience-admin-token"
SALT = "audience-salt"
HEADERS = {"X-Admin-Token": TOKEN}


def _profiles() -> pd.DataFrame:
    ids = [f"yes-{i}" for i in range(30)] + [f"no-{i}" for i in range(10)]
    people = make_profiles_frame(
        len(ids),
        userId=ids,
        lat=PARIS[0],
        lon=PARIS[1],
        contactConsent=[True] * 30 + [False] * 10,
    )
    return pd.concat([training_profiles(), people], ignore_index=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, EventStore]]:
    folder = tmp_path_factory.mktemp("audience")
    world = write_world(folder)
    profiles = folder / "consenting.parquet"
    _profiles().to_parquet(profiles, index=False)
    url = f"sqlite:///{folder / 'events.db'}"
    env = {
        "RECSYS_MODEL_URI": str(world["bundle"]),
        "RECSYS_CATALOG": str(world["catalog"]),
        "RECSYS_PROFILES": str(profiles),
        "RECSYS_EVENT_STORE_URL": url,
        "RECSYS_ADMIN_TOKEN": TOKEN,
        "RECSYS_ID_SALT": SALT,
    }
    with ExitStack() as stack:
        store = EventStore(url)
        stack.callback(store.close)
        (base,) = stack.enter_context(running_servers([(env, folder / "server.log")]))
        client = stack.enter_context(httpx.Client(base_url=base, timeout=60))
        yield client, store


def _audit(store: EventStore) -> pd.DataFrame:
    return store.read_audiences().sort_values("createdAt").reset_index(drop=True)


def test_audiences_need_the_admin_token(server) -> None:
    client, _ = server
    body = {"requester": "eve", "offer_id": "paris-sport-0"}
    assert client.post("/admin/audience", json=body).status_code == 403
    answer = client.post("/admin/audience", json=body, headers={"X-Admin-Token": "wrong"})
    assert answer.status_code == 403


def test_an_offer_audience_holds_consenting_people_only_and_is_audited(server) -> None:
    client, store = server
    body = {"requester": "coordinator-75", "offer_id": "paris-sport-0", "k": 20}
    answer = client.post("/admin/audience", json=body, headers=HEADERS)
    assert answer.status_code == 200, answer.text
    payload = answer.json()
    people = [row["person"] for row in payload["people"]]
    consenting = {pseudonym(f"yes-{i}", SALT) for i in range(30)}
    assert len(people) == 20 and set(people) <= consenting
    assert payload["eligible"] == 30
    assert sum(payload["totals"]["department"].values()) == 20
    assert sum(payload["totals"]["ageBand"].values()) == 20
    scores = [row["score"] for row in payload["people"]]
    assert scores == sorted(scores, reverse=True)
    assert all(row["distance_band"] == "<5 km" for row in payload["people"])
    log = _audit(store)
    row = log.loc[log["requestId"] == payload["request_id"]].iloc[0]
    assert (row["requester"], row["channel"], row["status"], row["size"]) == (
        "coordinator-75",
        "http",
        "served",
        20,
    )


def test_engagement_posted_to_the_service_counts_at_the_next_request(server) -> None:
    client, _ = server
    body = {"requester": "coordinator-75", "offer_id": "paris-sport-0", "k": 30}
    person = pseudonym("yes-7", SALT)

    def reasons() -> list[str]:
        answer = client.post("/admin/audience", json=body, headers=HEADERS)
        assert answer.status_code == 200, answer.text
        rows = {row["person"]: row["reasons"] for row in answer.json()["people"]}
        return rows[person]

    assert not any(reason.startswith("active") for reason in reasons())  # never seen
    now = pd.Timestamp.now(tz="UTC").isoformat()  # after the model's cutoff (the fixture's)
    event = {
        "id": "live-apply-1",
        "type": "apply",
        "mission_id": "paris-sport-0",
        "user_id": "yes-7",
        "request_id": "live-request-1",
        "created_at": now,
    }
    answer = client.post("/events", json={"events": [event]})
    assert answer.status_code == 200 and answer.json()["stored"] == 1, answer.text
    time.sleep(1.1)  # the request's clock is in whole seconds; the event must be before it
    assert "active today" in reasons()  # read from the store, not the model's data


def test_a_need_by_department_and_a_refused_small_one(server) -> None:
    client, store = server
    need = {
        "title": "Collecte",
        "domains": ["solidarite-insertion"],
        "departments": ["75"],
        "start": pd.Timestamp.now(tz="UTC").isoformat(),
    }
    answer = client.post(
        "/admin/audience", json={"requester": "c", "need": need, "k": 50}, headers=HEADERS
    )
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["people"]) == 30
    elsewhere = {**need, "departments": ["13"]}
    refused = client.post(
        "/admin/audience", json={"requester": "c", "need": elsewhere}, headers=HEADERS
    )
    assert refused.status_code == 422
    assert "fewer than the minimum of 10" in refused.text
    last = _audit(store).iloc[-1]
    assert (last["status"], last["size"]) == ("refused", 0)
    assert '"departments": ["13"]' in last["criteria"]


def test_unknown_offers_and_bad_requests_are_4xx_naming_the_field(server) -> None:
    client, store = server
    before = len(_audit(store))
    missing = client.post(
        "/admin/audience", json={"requester": "c", "offer_id": "nope"}, headers=HEADERS
    )
    assert missing.status_code == 404
    assert _audit(store).iloc[-1]["status"] == "refused"
    assert len(_audit(store)) == before + 1
    for body, field in (
        ({"requester": "c", "offer_id": "paris-sport-0", "min_count": 3}, "min_count"),
        ({"requester": "c"}, "offer_id or need"),
        (
            {
                "requester": "c",
                "need": {"domains": ["nope"], "departments": ["75"], "start": "2026-01-01T00:00Z"},
            },
            "domains",
        ),
    ):
        answer = client.post("/admin/audience", json=body, headers=HEADERS)
        assert answer.status_code == 400, answer.text
        assert field in answer.text


def test_malformed_requests_are_refused_naming_the_field_and_audited(server) -> None:
    client, store = server
    need = {
        "domains": ["sport"],
        "place": {"lat": 48.85, "lon": 2.35},
        "start": "2026-01-01T00:00Z",
    }
    cases = (
        (b'{"requester": "mallory", "offer_id": ', None, "unknown"),  # not JSON: nobody named
        (
            {"requester": "dana", "offer_id": "paris-sport-0", "colour": "red"},
            "colour",
            "dana",
        ),
        ({"requester": "erin", "need": {**need, "radius_km": -5}}, "need.radius_km", "erin"),
        ({"requester": "frank", "offer_id": "paris-sport-0", "k": 5}, "k", "frank"),
        ({"offer_id": "paris-sport-0", "k": 5}, "requester", "unknown"),
    )
    for body, field, requester in cases:
        before = len(_audit(store))
        if isinstance(body, bytes):
            answer = client.post(
                "/admin/audience",
                content=body,
                headers={**HEADERS, "content-type": "application/json"},
            )
        else:
            answer = client.post("/admin/audience", json=body, headers=HEADERS)
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert error["code"] == "invalid_request"
        if field is not None:
            assert error["field"] == field, error
        log = _audit(store)
        assert len(log) == before + 1  # audited before the answer left
        last = log.iloc[-1]
        assert (last["requester"], last["channel"], last["status"], last["size"]) == (
            requester,
            "http",
            "refused",
            0,
        )
        assert last["reason"] == error["message"]
        criteria = json.loads(last["criteria"])
        assert criteria["authorized"] is True
        sent = body.decode() if isinstance(body, bytes) else body
        assert (
            criteria["body"] if isinstance(body, bytes) else json.loads(criteria["body"])
        ) == sent
    # Without the admin token: refused and audited as not authorised.
    answer = client.post("/admin/audience", json={"requester": "x", "k": 5, "offer_id": "o"})
    assert answer.status_code == 400
    assert json.loads(_audit(store).iloc[-1]["criteria"])["authorized"] is False


def test_the_audit_is_listed_by_the_command_line(server, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from engagement.cli import app

    _, store = server
    result = CliRunner().invoke(app, ["audience", "log", "--store", store.url])
    assert result.exit_code == 0, result.output
    assert "coordinator-75 (http) offer paris-sport-0 k=20: served 20" in result.output
    assert "dana (http) malformed request: refused 0 — colour: " in result.output
