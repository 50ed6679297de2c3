"""Hostile input against a real server: never a 5xx, always a 4xx naming the field.

Hypothesis draws request bodies two ways: arbitrary JSON values, and bodies shaped like the
request models (the right field names, nested objects) whose values are sometimes valid,
sometimes out of range, of the wrong type or unknown. Every answer must be below 500; a 400
must name the offending field (pydantic's `loc`, or a message that says which fields); a 200
must be a well-formed answer. Oversized bodies are refused with 413 before they are parsed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recsys import taxonomy
from serving.process import running_servers
from serving.schemas import (
    MAX_EVENTS,
    Event,
    EventsRequest,
    RankRequest,
    RankResponse,
    SimilarRequest,
    SimilarResponse,
)
from tests.service_fixtures import write_world

pytestmark = pytest.mark.service

FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,  # the same bodies on every run: a failure reproduces
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
OFFER_IDS = ["paris-sport-0", "lyon-culture-1", "marseille-remote", "ended", "no-such-offer"]


def served_env(world: dict[str, Path], folder: Path, **extra: str) -> dict[str, str]:
    """Environment of a server on the tiny world (model, catalog, profiles, SQLite events)."""
    return {
        "RECSYS_MODEL_URI": str(world["bundle"]),
        "RECSYS_CATALOG": str(world["catalog"]),
        "RECSYS_PROFILES": str(world["profiles"]),
        "RECSYS_EVENT_STORE_URL": f"sqlite:///{folder / 'events.db'}",
        "RECSYS_RANK_LOG_FLUSH_SECONDS": "0.1",
        **extra,
    }


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    folder = tmp_path_factory.mktemp("fuzz")
    world = write_world(folder)
    with (
        running_servers([(served_env(world, folder), folder / "server.log")]) as (base,),
        httpx.Client(base_url=base, timeout=30) as client,
    ):
        yield client


# --- Strategies ---------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**12), max_value=10**12)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def either(valid: st.SearchStrategy) -> st.SearchStrategy:
    """Mostly plausible values, sometimes anything at all."""
    return st.one_of(valid, valid, json_values)


def vocabulary(words: tuple[str, ...]) -> st.SearchStrategy:
    return either(st.lists(st.sampled_from([*words, "not-a-word", ""]), max_size=4))


quiz = st.fixed_dictionaries(
    {},
    optional={
        "domains": vocabulary(taxonomy.QUIZ_DOMAINS),
        "activities": vocabulary(taxonomy.QUIZ_ACTIVITIES),
        "rhythm": either(st.sampled_from([*taxonomy.RHYTHMS, "tous-les-jours-ou-jamais"])),
        "colour": json_values,
    },
)
profile = st.fixed_dictionaries(
    {},
    optional={
        "user_id": either(st.text(max_size=140)),
        "age": either(st.integers(min_value=-5, max_value=130)),
        "lat": either(st.floats(min_value=-100, max_value=100)),
        "lon": either(st.floats(min_value=-200, max_value=200)),
        "postal_code": either(st.sampled_from(["75011", "2A004", "69003", "7501", "ABCDE", ""])),
        "radius_km": either(st.floats(min_value=-10, max_value=2000)),
        "mobility": either(st.sampled_from(["walking", "bike", "car", "plane"])),
        "disability": either(st.booleans()),
        "quiz": either(quiz),
    },
)
filters = st.fixed_dictionaries(
    {},
    optional={
        "types": vocabulary(taxonomy.PROGRAMMES),
        "domains": vocabulary(taxonomy.DOMAINS),
        "remote": vocabulary(taxonomy.REMOTE_VALUES),
    },
)
rank_bodies = st.fixed_dictionaries(
    {},
    optional={
        "user_id": either(st.sampled_from(["sport-lyon-0", "culture-paris-1", "stranger", ""])),
        "profile": either(profile),
        "k": either(st.integers(min_value=-10, max_value=10**9)),
        "filters": either(filters),
        "exclude_offer_ids": either(st.lists(st.sampled_from(OFFER_IDS), max_size=5)),
        "extra": json_values,
    },
)
similar_bodies = st.fixed_dictionaries(
    {},
    optional={
        "offer_id": either(st.sampled_from([*OFFER_IDS, ""])),
        "k": either(st.integers(min_value=-10, max_value=10**9)),
        "other_programmes": either(st.booleans()),
        "extra": json_values,
    },
)
event = st.fixed_dictionaries(
    {
        "id": either(st.uuids().map(str)),
        "type": either(st.sampled_from([*taxonomy.EVENT_TYPES, "like"])),
    },
    optional={
        "created_at": either(
            st.sampled_from(["2025-03-01T12:00:00", "2025-03-01T12:00:00+02:00", "3025-01-01", "x"])
        ),
        "mission_id": either(st.sampled_from(OFFER_IDS)),
        "request_id": either(st.text(max_size=40)),
        "position": either(st.integers(min_value=-3, max_value=40_000)),
        "user_id": either(st.text(max_size=40)),
        "source": either(st.sampled_from([*taxonomy.EVENT_SOURCES, "fax"])),
        "status": either(st.sampled_from([*taxonomy.APPLY_STATUSES, "MAYBE"])),
        "candidate_age": either(st.integers(min_value=-3, max_value=200)),
        "candidate_postal_code": either(st.sampled_from(["75011", "2B123", "1234", "x"])),
        "is_bot": either(st.booleans()),
        "ip": st.just("203.0.113.9"),
    },
)
events_bodies = st.fixed_dictionaries(
    {}, optional={"events": either(st.lists(event, max_size=4)), "extra": json_values}
)


# --- Checks -------------------------------------------------------------------------------


def _field_names(model: type) -> set[str]:
    """Every field name of a request model and of the models nested in it."""
    names: set[str] = set()
    for name, field in model.model_fields.items():  # type: ignore[attr-defined]
        names.add(name)
        for nested in getattr(field.annotation, "__args__", ()) or (field.annotation,):
            for inner in getattr(nested, "__args__", ()) or (nested,):
                if isinstance(inner, type) and hasattr(inner, "model_fields"):
                    names |= _field_names(inner)
    return names


def check(response: httpx.Response, body: Any, model: type, answer: type) -> None:
    """The contract for any body: < 500; a 400 names fields; a 200 is a valid answer."""
    assert response.status_code < 500, (body, response.text)
    if response.status_code == 400:
        names = _field_names(model) | (set(body) if isinstance(body, dict) else set())
        detail = response.json()["error"]["details"]
        assert detail, response.text
        for error in detail:
            named = any(isinstance(part, str) and part in names for part in error["loc"])
            mentioned = any(name in error["msg"] for name in names)
            root_type = error["loc"] == [] and not isinstance(body, dict)
            assert named or mentioned or root_type, (body, error)
    elif response.status_code == 200:
        answer.model_validate(response.json())
    else:
        # The only other refusal: /similar on an offer not in the live catalog, named.
        assert response.status_code == 404 and model is SimilarRequest, response.text
        assert body["offer_id"] in response.text, response.text


@FUZZ
@given(body=json_values)
def test_any_json_value_is_never_a_5xx(client: httpx.Client, body: Any) -> None:
    for path, model, answer in (
        ("/rank", RankRequest, RankResponse),
        ("/similar", SimilarRequest, SimilarResponse),
    ):
        check(client.post(path, json=body), body, model, answer)
    response = client.post("/events", json=body)
    assert response.status_code < 500, (body, response.text)


@FUZZ
@given(body=rank_bodies)
def test_rank_bodies(client: httpx.Client, body: dict[str, Any]) -> None:
    response = client.post("/rank", json=body)
    check(response, body, RankRequest, RankResponse)
    if response.status_code == 200:
        k = body.get("k", 10)
        assert len(response.json()["items"]) <= k


@FUZZ
@given(body=similar_bodies)
def test_similar_bodies(client: httpx.Client, body: dict[str, Any]) -> None:
    check(client.post("/similar", json=body), body, SimilarRequest, SimilarResponse)


class _EventsAnswer:
    @staticmethod
    def model_validate(value: dict[str, Any]) -> None:
        assert value["received"] == value["stored"] + value["duplicates"]


@FUZZ
@given(body=events_bodies)
def test_events_bodies(client: httpx.Client, body: dict[str, Any]) -> None:
    response = client.post("/events", json=body)
    check(response, body, EventsRequest, _EventsAnswer)
    events = body.get("events")
    if isinstance(events, list) and any(isinstance(e, dict) and "ip" in e for e in events):
        assert response.status_code == 400 and "ip" in response.text  # no IP is ever stored


def test_a_valid_event_passes_the_fuzzed_shape(client: httpx.Client) -> None:
    """Guards the strategies: a plausible event is accepted, so the fuzz reaches storage."""
    body = {"events": [{"id": "fuzz-ok", "type": "click", "mission_id": "paris-sport-0"}]}
    Event.model_validate(body["events"][0])
    assert client.post("/events", json=body).status_code == 200


# --- Size limits --------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/rank", "/similar", "/events", "/admin/catalog"])
def test_bodies_over_a_megabyte_are_refused_with_413(client: httpx.Client, path: str) -> None:
    body = json.dumps({"user_id": "x" * (1 << 20)}).encode()
    response = client.post(path, content=body, headers={"content-type": "application/json"})
    error = response.json()["error"]
    assert response.status_code == 413 and "request body" in error["message"]
    assert error["code"] == "body_too_large"


def test_chunked_bodies_are_cut_off_at_the_limit(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:  # no content-length: the server must count
        yield b'{"user_id": "'
        for _ in range(40):
            yield b"y" * 32_768
        yield b'"}'

    response = client.post("/rank", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413
    small = client.post("/rank", content=iter([b'{"k": ', b"2}"]))
    assert small.status_code == 200 and len(small.json()["items"]) == 2


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/rank", {"k": 10**9}, "k"),
        ("/rank", {"k": 101}, "k"),
        ("/similar", {"offer_id": "paris-sport-0", "k": 10**9}, "k"),
        ("/rank", {"exclude_offer_ids": ["x"] * 1001}, "exclude_offer_ids"),
        ("/rank", {"user_id": "u" * 129}, "user_id"),
        ("/events", {"events": [{"id": "a", "type": "account"}] * (MAX_EVENTS + 1)}, "events"),
        ("/events", {"events": []}, "events"),
    ],
)
def test_absurd_sizes_are_refused_naming_the_field(
    client: httpx.Client, path: str, body: dict, field: str
) -> None:
    response = client.post(path, json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert [detail["loc"][0] for detail in error["details"]] == [field]
    assert error["field"].split(".")[0] == field


def test_nul_characters_in_events_are_refused(client: httpx.Client) -> None:
    body = {"events": [{"id": "a\x00b", "type": "click", "mission_id": "paris-sport-0"}]}
    response = client.post("/events", json=body)
    assert response.status_code == 400 and response.json()["error"]["field"] == "events.0.id"


def test_refused_values_are_not_echoed(client: httpx.Client) -> None:
    response = client.post("/rank", json={"profile": {"postal_code": "secret-75011"}})
    assert response.status_code == 400 and "postal_code" in response.text
    assert "secret-75011" not in response.text
