"""Data protection against a real server: many visitors are minors.

The event store keeps visitor ids only as salted hashes (RECSYS_ID_SALT), a candidate's age
only as its band, and no IP address, user agent or birth date; admin endpoints refuse without
the token; the server log holds no visitor id or postal code, even for refused requests.
"""

from __future__ import annotations

import hashlib
import hmac
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

from serving.events import EventStore, export_events
from serving.process import running_servers
from tests.service_fixtures import write_world

pytestmark = pytest.mark.service

SALT = "pepper-for-tests"
TOKEN = "privacy-token"
VISITOR = "jeanne-2010-05-17"  # what a front might use as a stable id
ANONYMOUS = "ab12-ip-ua-hash"  # the front's `user` hash (of IP, referer, user agent)
POSTAL = "75011"  # not in the catalog: it can only come from a request
AGENT = "SecretBrowser/9.9"
ADDRESS = "198.51.100.77"


def hashed(value: str) -> str:
    """HMAC-SHA256 of the id keyed by the salt, computed here independently of the service."""
    return hmac.new(SALT.encode(), value.encode(), hashlib.sha256).hexdigest()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, Path]]:
    folder = tmp_path_factory.mktemp("privacy")
    world = write_world(folder)
    env = {
        "RECSYS_MODEL_URI": str(world["bundle"]),
        "RECSYS_CATALOG": str(world["catalog"]),
        "RECSYS_PROFILES": str(world["profiles"]),
        "RECSYS_EVENT_STORE_URL": f"sqlite:///{folder / 'events.db'}",
        "RECSYS_RANK_LOG_FLUSH_SECONDS": "0.1",
        "RECSYS_ADMIN_TOKEN": TOKEN,
        "RECSYS_ID_SALT": SALT,
        "RECSYS_ACCESS_LOG_ALL": "true",  # every line checked, successful requests too
    }
    headers = {"User-Agent": AGENT, "X-Forwarded-For": ADDRESS, "X-Real-IP": ADDRESS}
    with (
        running_servers([(env, folder / "server.log")]) as (base,),
        httpx.Client(base_url=base, timeout=30, headers=headers) as client,
    ):
        yield client, folder
        # the log is checked after every request of the module (see the last test)


@pytest.fixture(scope="module")
def traffic(server: tuple[httpx.Client, Path]) -> dict[str, str]:
    """Requests that carry the visitor's personal data, valid and refused ones."""
    client, folder = server
    person = {
        "user_id": VISITOR,
        "profile": {"age": 17, "postal_code": POSTAL, "radius_km": 30},
        "k": 3,
    }
    ranked = client.post("/rank", json=person)
    assert ranked.status_code == 200
    request_id = ranked.json()["request_id"]
    events = [
        {
            "id": "ev-print",
            "type": "print",
            "mission_id": ranked.json()["items"][0]["offer_id"],
            "request_id": request_id,
            "position": 1,
            "user_id": VISITOR,
            "user": ANONYMOUS,
        },
        {
            "id": "ev-apply",
            "type": "apply",
            "mission_id": ranked.json()["items"][0]["offer_id"],
            "status": "PENDING",
            "user_id": VISITOR,
            "candidate_age": 17,
            "candidate_postal_code": POSTAL,
        },
    ]
    assert client.post("/events", json={"events": events}).json()["stored"] == 2
    refused = [
        ("/rank", {**person, "k": 0}),
        ("/rank", {"user_id": VISITOR, "profile": {"user_id": "other", "postal_code": POSTAL}}),
        ("/rank", {"profile": {"postal_code": POSTAL, "age": 300}}),
        ("/events", {"events": [{**events[1], "id": "ev-bad", "candidate_age": -1}]}),
        ("/events", {"events": [{**events[0], "id": "ev-ip", "ip": ADDRESS}]}),
        ("/events", {"events": [{**events[0], "id": "ev-dob", "birth_date": "2010-05-17"}]}),
    ]
    for path, body in refused:
        assert client.post(path, json=body).status_code == 400, body
    store = EventStore(f"sqlite:///{folder / 'events.db'}", create=False)
    deadline = time.monotonic() + 10
    while request_id not in set(store.read_rankings()["requestId"]):
        assert time.monotonic() < deadline, "ranking not logged"
        time.sleep(0.1)
    store.close()
    return {"request_id": request_id}


def _dump(database: Path) -> str:
    """Every table of the SQLite store as text."""
    with sqlite3.connect(database) as connection:
        return "\n".join(connection.iterdump())


def test_visitor_ids_are_stored_as_salted_hashes(
    server: tuple[httpx.Client, Path], traffic: dict[str, str]
) -> None:
    _, folder = server
    store = EventStore(f"sqlite:///{folder / 'events.db'}", create=False)
    try:
        events = store.read_events().set_index("id")
        rankings = store.read_rankings()
    finally:
        store.close()
    assert set(events.index) == {"ev-print", "ev-apply"}  # refused events stored nothing
    assert events.loc["ev-print", "userId"] == hashed(VISITOR)
    assert events.loc["ev-print", "user"] == hashed(ANONYMOUS)
    assert events.loc["ev-apply", "userId"] == hashed(VISITOR)  # one visitor, one id
    mine = rankings[rankings["requestId"] == traffic["request_id"]]
    assert set(mine["userId"]) == {hashed(VISITOR)}
    assert hashed(VISITOR) != hashlib.sha256(VISITOR.encode()).hexdigest()  # keyed, not plain


def test_the_store_holds_no_raw_id_ip_agent_or_birth_date(
    server: tuple[httpx.Client, Path], traffic: dict[str, str]
) -> None:
    _, folder = server
    dump = _dump(folder / "events.db")
    assert "ev-print" in dump  # the dump does show the stored rows
    for secret in (VISITOR, ANONYMOUS, AGENT, ADDRESS, "2010-05-17"):
        assert secret not in dump, secret
    with sqlite3.connect(folder / "events.db") as connection:
        columns = {row[1].lower() for row in connection.execute("PRAGMA table_info(events)")}
    assert not columns & {"ip", "ipaddress", "useragent", "birthdate", "birthday", "dateofbirth"}
    assert "candidateage" not in columns and "candidateageband" in columns  # a band, no age
    with sqlite3.connect(folder / "events.db") as connection:
        connection.row_factory = sqlite3.Row
        apply = dict(connection.execute("SELECT * FROM events WHERE id = 'ev-apply'").fetchone())
    assert apply["candidateAgeBand"] == "16-17"  # posted with candidate_age 17
    assert 17 not in apply.values() and "17" not in apply.values()


def test_export_gives_the_hashed_ids(
    server: tuple[httpx.Client, Path], traffic: dict[str, str]
) -> None:
    _, folder = server
    out = folder / "export" / "events.parquet"
    assert export_events(f"sqlite:///{folder / 'events.db'}", out) == 2
    exported = pd.read_parquet(out).set_index("id")
    assert exported.loc["ev-apply", "userId"] == hashed(VISITOR)
    assert exported.loc["ev-apply", "candidateAgeBand"] == "16-17"  # posted with age 17
    assert exported["candidateAge"].isna().all()


@pytest.mark.parametrize("path", ["/admin/catalog", "/admin/reload"])
@pytest.mark.parametrize("token", [None, "", "wrong", TOKEN.upper(), TOKEN[:-1]])
def test_admin_refuses_without_the_token(
    server: tuple[httpx.Client, Path], path: str, token: str | None
) -> None:
    client, _ = server
    headers = {} if token is None else {"X-Admin-Token": token}
    body = {"path": "/etc/passwd"} if path == "/admin/catalog" else {"uri": "/etc"}
    response = client.post(path, json=body, headers=headers)
    assert response.status_code == 403
    status = client.get("/status").json()
    assert status["catalog_error"] is None and status["model_error"] is None  # not attempted


def test_the_log_holds_no_personal_data(
    server: tuple[httpx.Client, Path], traffic: dict[str, str]
) -> None:
    _, folder = server
    log = (folder / "server.log").read_text()
    assert "/rank" in log and "/events" in log and "status=400" in log  # the log is captured
    assert "status=200" in log
    for secret in (VISITOR, ANONYMOUS, POSTAL, AGENT, ADDRESS, "2010-05-17"):
        assert secret not in log, secret
    # Ages (17, and the refused -1) appear neither as request fields nor as echoed input.
    for echo in ("input_value", '"candidate_age": 17', "'candidate_age': 17", "candidate_age=17"):
        assert echo not in log, echo
