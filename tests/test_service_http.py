"""The ranking service over real HTTP: a `bentoml serve` process on loopback.

Two servers for the whole module (each start costs seconds):

* `served`: a hybrid bundle trained on the tiny world, its catalog and profiles, events in a
  SQLite file, an admin token;
* `fallback`: no loadable model (rules only), events in PostgreSQL (a fresh schema, dropped
  afterwards) when the server answers, else in SQLite.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from recsys.arrays import profile_row_arrays
from recsys.eligibility import eligible
from recsys.schema import Profile
from serving.catalog import Catalog, epoch_seconds
from serving.events import EventStore
from serving.process import running_servers
from serving.profiles import request_row
from tests.fixtures import LYON, PARIS
from tests.service_fixtures import (
    POSTGRES_URL,
    catalog_offers,
    new_offer,
    postgres_available,
    postgres_schema,
    write_world,
)

pytestmark = pytest.mark.service

TOKEN = "test-admin-token"


class Server:
    def __init__(self, base: str, store: EventStore, folder: Path) -> None:
        self.base = base
        self.store = store
        self.folder = folder
        self.client = httpx.Client(base_url=base, timeout=30)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        return self.client.post(path, json=body if body is not None else {}, **kwargs)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_world(tmp_path_factory.mktemp("served"))


@pytest.fixture(scope="module")
def servers(
    world: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Server]]:
    """Both servers, started together."""
    folder = world["catalog"].parent
    sqlite_url = f"sqlite:///{folder / 'events.db'}"
    served_env = {
        "RECSYS_MODEL_URI": str(world["bundle"]),
        "RECSYS_CATALOG": str(world["catalog"]),
        "RECSYS_PROFILES": str(world["profiles"]),
        "RECSYS_EVENT_STORE_URL": sqlite_url,
        "RECSYS_ADMIN_TOKEN": TOKEN,
        "RECSYS_RANK_LOG_FLUSH_SECONDS": "0.1",
    }
    other = tmp_path_factory.mktemp("fallback")
    fallback_env = {
        "RECSYS_MODEL_URI": str(other / "no-such-model"),
        "RECSYS_CATALOG": str(world["catalog"]),
        "RECSYS_RANK_LOG_FLUSH_SECONDS": "0.1",
    }
    with ExitStack() as stack:
        if postgres_available():
            name = stack.enter_context(postgres_schema())
            fallback_env.update(RECSYS_EVENT_STORE_URL=POSTGRES_URL, RECSYS_EVENT_SCHEMA=name)
            fallback_store = EventStore(POSTGRES_URL, db_schema=name)
        else:
            url = f"sqlite:///{other / 'events.db'}"
            fallback_env["RECSYS_EVENT_STORE_URL"] = url
            fallback_store = EventStore(url)
        stack.callback(fallback_store.close)
        served_store = EventStore(sqlite_url)
        stack.callback(served_store.close)
        bases = stack.enter_context(
            running_servers(
                [(served_env, folder / "server.log"), (fallback_env, other / "server.log")]
            )
        )
        yield {
            "served": Server(bases[0], served_store, folder),
            "fallback": Server(bases[1], fallback_store, other),
        }


@pytest.fixture(scope="module")
def served(servers: dict[str, Server]) -> Server:
    return servers["served"]


@pytest.fixture(scope="module")
def fallback(servers: dict[str, Server]) -> Server:
    return servers["fallback"]


def _eligible_ids(profile: Profile) -> set[str]:
    """The core's eligibility over the served catalog, now (no model involved)."""
    catalog = Catalog.build(catalog_offers(), "expected")[0]
    person = profile_row_arrays(request_row(profile, None, None))
    mask = eligible(
        catalog.arrays,
        age=float(person.age[0]),
        disability=bool(person.disability[0]),
        lat=float(person.lat[0]),
        lon=float(person.lon[0]),
        radius_km=float(person.radius_km[0]),
        at=epoch_seconds(pd.Timestamp.now(tz="UTC")),
    )
    return set(catalog.arrays.ids[mask])


# --- Health, status, documentation ---------------------------------------------------------


def test_health_readiness_metrics_and_status(served: Server) -> None:
    assert served.client.get("/healthz").status_code == 200
    assert served.client.get("/readyz").status_code == 200
    got = served.client.get("/status").json()
    posted = served.post("/status").json()
    for status in (got, posted):
        assert status["ready"] and status["model_version"] == "local:bundle"
        assert status["model_name"] == "hybrid" and status["similarity_method"] == "item_embeddings"
        assert status["strategies"] == ["personalized", "cold_start"]
        assert status["catalog_size"] == 22 and status["known_profiles"] == 12  # 2 closed out
        assert status["catalog_available"] == 20  # `future` is not posted, `full` is full
        assert status["clock"] == "service"  # RECSYS_CLOCK's default
    served.post("/rank", {"k": 1})
    metrics = served.client.get("/metrics").text
    assert "bentoml_service_request_total{" in metrics and 'endpoint="/rank"' in metrics


def test_the_access_log_keeps_failures_and_admin_calls_only(served: Server) -> None:
    """By default (RECSYS_ACCESS_LOG_ALL unset) a successful request leaves no line."""
    served.post("/rank", {"k": 2}).raise_for_status()
    assert served.post("/rank", {"k": 0}).status_code == 400
    assert served.post("/admin/reload", {}).status_code == 403
    lines = []
    for _ in range(50):  # the server writes its log as it goes
        lines = (served.folder / "server.log").read_text().splitlines()
        if any("path=/admin/reload" in line for line in lines):
            break
        time.sleep(0.1)
    access = [line for line in lines if "(scheme=http,method=" in line]
    assert any("path=/rank" in line and "status=400" in line for line in access)
    assert any("path=/admin/reload" in line and "status=403" in line for line in access)
    assert not any("status=200" in line for line in access)


def test_openapi_documents_the_models(served: Server) -> None:
    spec = served.client.get("/docs.json").json()
    assert {"/rank", "/similar", "/events", "/status", "/admin/catalog"} <= set(spec["paths"])
    schemas = spec["components"]["schemas"]
    rank = next(v for k, v in schemas.items() if k.startswith("RankRequest"))
    assert {"user_id", "profile", "k", "filters", "exclude_offer_ids"} <= set(rank["properties"])
    assert rank["properties"]["k"]["maximum"] == 100
    assert "RankedItem" in schemas and "Profile" in schemas


# --- Ranking ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "profile",
    [
        Profile(age=17, postal_code="75011", radius_km=30),
        Profile(age=28, lat=PARIS[0], lon=PARIS[1], disability=True),
        Profile(age=40, lat=LYON[0], lon=LYON[1], radius_km=5),
    ],
)
def test_lists_are_exactly_the_eligible_offers(served: Server, profile: Profile) -> None:
    body = {"profile": profile.model_dump(exclude_unset=True), "k": 100}
    answer = served.post("/rank", body).json()
    assert answer["strategy"] == "cold_start"
    assert {item["offer_id"] for item in answer["items"]} == _eligible_ids(profile)
    assert all(item["distance_km"] is None or item["distance_km"] >= 0 for item in answer["items"])


def test_known_users_get_personalised_lists(served: Server) -> None:
    sport = served.post("/rank", {"user_id": "sport-lyon-0", "k": 3}).json()
    culture = served.post("/rank", {"user_id": "culture-lyon-0", "k": 3}).json()
    assert sport["strategy"] == culture["strategy"] == "personalized"
    assert [i["domain"] for i in sport["items"]] == ["sport"] * 3
    assert [i["domain"] for i in culture["items"]] == ["culture-loisirs"] * 3
    assert {i["offer_id"][:4] for i in sport["items"] + culture["items"]} == {"lyon"}
    assert {"code": "liked", "text": "apprécié par des profils proches"} in sport["items"][0][
        "reasons"
    ]


def test_anonymous_profiles_get_cold_start_lists(served: Server) -> None:
    profile = {"age": 20, "lat": LYON[0], "lon": LYON[1], "quiz": {"domains": ["art-culture"]}}
    answer = served.post("/rank", {"profile": profile, "k": 3}).json()
    assert answer["strategy"] == "cold_start"
    assert [i["domain"] for i in answer["items"]] == ["culture-loisirs"] * 3
    first = answer["items"][0]
    assert first["rank"] == 1 and first["distance_km"] < 10
    assert "correspond à votre intérêt : culture et loisirs" in [
        reason["text"] for reason in first["reasons"]
    ]
    assert answer["location"]["source"] == "coordinates"


def test_rank_says_where_it_placed_the_visitor(served: Server) -> None:
    answer = served.post("/rank", {"profile": {"age": 20, "postal_code": "13200"}, "k": 1}).json()
    assert answer["location"] == {
        "lat": 43.5469,
        "lon": 4.6622,
        "source": "postal_code",
        "commune": "Arles",
    }
    by_name = served.post("/rank", {"profile": {"city": "st-etienne"}, "k": 1}).json()
    assert by_name["location"]["commune"] == "Saint-Etienne"
    assert served.post("/rank", {"k": 1}).json()["location"] is None


def test_concurrent_requests_are_ranked_together_each_as_alone(served: Server) -> None:
    """Requests sent at once are batched (`serving.batching`) and each gets its own list."""
    bodies = [
        {"user_id": "sport-lyon-0", "k": 3},
        {"user_id": "culture-lyon-0", "k": 3},
        {"profile": {"age": 20, "lat": LYON[0], "lon": LYON[1]}, "k": 5},
        {"profile": {"age": 30, "lat": PARIS[0], "lon": PARIS[1]}, "k": 4},
        {"profile": {"age": 8}, "k": 3},
    ] * 8
    alone = [served.post("/rank", body).json() for body in bodies[:5]]

    def summary(answer: dict) -> tuple:
        return answer["strategy"], [(i["offer_id"], i["reasons"]) for i in answer["items"]]

    before = _batched_requests(served)
    with ThreadPoolExecutor(len(bodies)) as pool:
        answers = list(pool.map(lambda body: served.post("/rank", body), bodies))
    assert all(answer.status_code == 200 for answer in answers)
    for i, answer in enumerate(answers):
        assert summary(answer.json()) == summary(alone[i % 5])
    assert len({answer.json()["request_id"] for answer in answers}) == len(bodies)
    after = _batched_requests(served)
    batches, ranked = after[0] - before[0], after[1] - before[1]
    assert ranked == len(bodies) and batches < len(bodies)  # some were ranked together


def _batched_requests(served: Server) -> tuple[float, float]:
    """(batches, requests) so far, from the `rank_batch_size` histogram of /metrics."""
    values = {}
    for line in served.client.get("/metrics").text.splitlines():
        name, _, value = line.partition(" ")
        if name in ("rank_batch_size_count", "rank_batch_size_sum"):
            values[name] = float(value)
    return values.get("rank_batch_size_count", 0.0), values.get("rank_batch_size_sum", 0.0)


@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        ("/rank", {"k": 0}, 400, "k"),
        ("/rank", {"k": 10000}, 400, "k"),
        ("/rank", {"profile": {"age": -3}}, 400, "age"),
        ("/rank", {"profile": {"lat": 200, "lon": 2}}, 400, "lat"),
        ("/rank", {"profile": {"insee_code": "13 004"}}, 400, "insee_code"),
        ("/rank", {"profile": {"city": ""}}, 400, "city"),
        ("/rank", {"filters": {"types": ["armee-du-salut"]}}, 400, "types"),
        ("/rank", {"colour": "blue"}, 400, "colour"),
        ("/similar", {"offer_id": "no-such-offer"}, 404, "no-such-offer"),
        ("/events", {"events": [{"id": "x", "type": "click"}]}, 400, "mission_id"),
    ],
)
def test_bad_input_is_a_4xx_naming_the_field(
    served: Server, path: str, body: dict, status: int, field: str
) -> None:
    response = served.post(path, body)
    assert response.status_code == status
    assert field in response.text


def test_a_request_instant_is_refused_on_the_service_clock(served: Server) -> None:
    """Without RECSYS_CLOCK=request, a list is made at the service's instant: a request
    carrying its own is a 400 naming `at` and the setting."""
    response = served.post("/rank", {"profile": {"age": 20}, "at": "2026-03-02T10:00:00Z"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["field"] == "at" and "RECSYS_CLOCK=request" in error["message"]


def test_malformed_json_is_a_400(served: Server) -> None:
    response = served.client.post(
        "/rank", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400 and "json_invalid" in response.text


def test_similar_offers(served: Server) -> None:
    answer = served.post("/similar", {"offer_id": "paris-culture-2", "k": 3}).json()
    assert answer["method"] == "item_embeddings" and len(answer["items"]) == 3
    assert all(item["domain"] == "culture-loisirs" for item in answer["items"])
    other = served.post(
        "/similar", {"offer_id": "paris-culture-2", "k": 5, "other_programmes": True}
    ).json()
    assert {item["programme"] for item in other["items"]} <= {
        "volontariat_service_civique",
        "volontariat_reserve_operationnelle",
    }


# --- Events and the rank log ------------------------------------------------------------------


def _wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


def _check_events(server: Server) -> None:
    ranked = server.post("/rank", {"user_id": "sport-paris-1", "k": 3}).json()
    request_id = ranked["request_id"]
    first = ranked["items"][0]["offer_id"]
    events = [
        {
            "id": f"{request_id}-p1",
            "type": "print",
            "mission_id": first,
            "request_id": request_id,
            "position": 1,
        },
        {
            "id": f"{request_id}-c1",
            "type": "click",
            "mission_id": first,
            "request_id": request_id,
            "position": 1,
        },
        {"id": f"{request_id}-p1", "type": "print", "mission_id": first},
    ]
    answer = server.post("/events", {"events": events}).json()
    assert (answer["received"], answer["stored"], answer["duplicates"]) == (3, 2, 1)
    again = server.post("/events", {"events": events[:2]}).json()
    assert (again["stored"], again["duplicate_ids"]) == (
        0,
        [f"{request_id}-p1", f"{request_id}-c1"],
    )
    stored = server.store.read_events().set_index("id")
    assert stored.loc[f"{request_id}-c1", "requestId"] == request_id
    assert stored.loc[f"{request_id}-c1", "toPublisherId"] is not None  # from the catalog

    def logged() -> bool:
        rankings = server.store.read_rankings()
        return request_id in set(rankings["requestId"])

    _wait_for(logged)
    rankings = server.store.read_rankings()
    mine = rankings[rankings["requestId"] == request_id]
    assert mine["missionId"].tolist() == [item["offer_id"] for item in ranked["items"]]
    assert mine["position"].tolist() == [1, 2, 3]
    assert set(mine["modelVersion"]) == {ranked["model_version"]}
    assert set(mine["strategy"]) == {ranked["strategy"]}


def test_events_are_stored_once_and_rankings_logged(served: Server) -> None:
    _check_events(served)


def test_an_apply_is_never_recommended_again_to_that_visitor(served: Server) -> None:
    user = "culture-lyon-2"
    before = [
        i["offer_id"] for i in served.post("/rank", {"user_id": user, "k": 5}).json()["items"]
    ]
    applied = before[0]
    event = {"id": f"apply-{user}", "type": "apply", "mission_id": applied, "user_id": user}
    assert served.post("/events", {"events": [event]}).json()["stored"] == 1
    after = [i["offer_id"] for i in served.post("/rank", {"user_id": user, "k": 5}).json()["items"]]
    assert applied not in after and after


# --- Live catalog and model reload -------------------------------------------------------------


def test_admin_needs_the_token(served: Server) -> None:
    assert served.post("/admin/catalog").status_code == 403
    wrong = {"X-Admin-Token": "nope"}
    assert served.post("/admin/reload", headers=wrong).status_code == 403


def test_new_offer_recommended_without_restart(served: Server) -> None:
    headers = {"X-Admin-Token": TOKEN}
    path = served.folder / "update.parquet"
    new_offer().to_parquet(path, index=False)
    before = served.client.get("/status").json()
    answer = served.post("/admin/catalog", {"path": str(path)}, headers=headers)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["ok"] and (result["added"], result["catalog_size"]) == (1, 23)
    assert result["catalog_version"] != before["catalog_version"]
    scores = {}
    for user in ("sport-lyon-0", "culture-lyon-0"):
        items = served.post("/rank", {"user_id": user, "k": 10}).json()["items"]
        scores[user] = {i["offer_id"]: i["score"] for i in items}["lyon-sport-new"]
    assert scores["sport-lyon-0"] > scores["culture-lyon-0"]
    similar = served.post("/similar", {"offer_id": "lyon-sport-new", "k": 2}).json()
    assert [i["domain"] for i in similar["items"]] == ["sport", "sport"]
    # A broken update or reload answers 422 and leaves the service as it was.
    failed = served.post("/admin/catalog", {"path": "/no/such/file.json"}, headers=headers)
    assert failed.status_code == 422 and "does not exist" in failed.json()["message"]
    reload = served.post("/admin/reload", {"uri": "/no/such/model"}, headers=headers)
    assert reload.status_code == 422 and not reload.json()["ok"]
    status = served.client.get("/status").json()
    assert status["model_version"] == "local:bundle" and status["catalog_size"] == 23
    assert "reload failed" in status["model_error"]
    assert served.post("/rank", {"user_id": "sport-lyon-0"}).json()["strategy"] == "personalized"
    good = served.post("/admin/reload", {}, headers=headers)
    assert good.status_code == 200 and good.json()["ok"]
    assert served.client.get("/status").json()["model_error"] is None


# --- Without a model ---------------------------------------------------------------------------


def test_missing_model_gives_the_rules_fallback(fallback: Server) -> None:
    assert fallback.client.get("/readyz").status_code == 200
    status = fallback.client.get("/status").json()
    assert status["strategies"] == ["rules_fallback"] and status["model_version"] == "rules"
    assert "no-such-model" in status["model_error"]
    profile = Profile(age=17, postal_code="75011", radius_km=30)
    answer = fallback.post(
        "/rank", {"profile": profile.model_dump(exclude_unset=True), "k": 100}
    ).json()
    assert answer["strategy"] == "rules_fallback" and answer["model_version"] == "rules"
    assert {i["offer_id"] for i in answer["items"]} == _eligible_ids(profile)
    known = fallback.post("/rank", {"user_id": "sport-lyon-0", "k": 3}).json()
    assert known["strategy"] == "rules_fallback" and len(known["items"]) == 3


@pytest.mark.postgres
def test_events_in_postgres(fallback: Server) -> None:
    if fallback.store.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is unreachable")
    _check_events(fallback)


def test_scores_are_finite_json(served: Server) -> None:
    answer = served.post("/rank", {"k": 100}).json()
    assert answer["items"] and all(np.isfinite(item["score"]) for item in answer["items"])
