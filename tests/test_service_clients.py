"""The service as its diffusion clients call it, over real HTTP: request context, search
filters, paging.

One `bentoml serve` process for the module, rules only (no model: the fastest start), on the
served test catalog plus offers that tell the filters apart, events in SQLite.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from serving.events import EventStore
from serving.process import running_servers
from tests.browser import CHROMIUM, Browser
from tests.service_fixtures import _offers, catalog_offers

pytestmark = pytest.mark.service

PARTNER = "https://partner.example"
PARIS_PERSON = {"age": 20, "postal_code": "75001", "lat": 48.8566, "lon": 2.3522}
LYON_PERSON = {"age": 20, "lat": 45.764, "lon": 4.8357, "radius_km": 30}


def filter_offers(now: pd.Timestamp) -> pd.DataFrame:
    """Offers in Saint-Étienne (42) that differ by one filterable field each."""
    base = {
        "domain": "environnement",
        "activities": ["ramassage-dechets"],
        "title": "Nettoyage des berges",
        "description": "Ramassage de déchets.",
        "type": "benevolat",
        "publisherId": "p-se",
        "publisherName": "Publisher SE",
        "organizationName": "Les Amis du Furan",
        "lat": 45.4397,
        "lon": 4.3872,
        "city": "Saint-Étienne",
        "postalCode": "42000",
        "departmentCode": "42",
        "region": "Auvergne-Rhône-Alpes",
        "openToMinors": True,
        "startAt": now + pd.Timedelta(days=10),
        "endAt": now + pd.Timedelta(days=12),
    }
    variants = [
        {"id": "se-short"},
        {"id": "se-long", "endAt": now + pd.Timedelta(days=200)},
        {"id": "se-late", "startAt": now + pd.Timedelta(days=90), "endAt": None},
        {"id": "se-adults", "openToMinors": False, "organizationName": "Croix-Rouge française"},
        {"id": "se-snu", "snu": True, "activities": ["animation"], "publisherId": "p-snu"},
    ]
    return _offers([{**base, **variant} for variant in variants], now)


BORDEAUX, TOULOUSE = (44.8378, -0.5792), (43.6045, 1.444)
SUD_OUEST = "Banque alimentaire du Sud-Ouest"


def two_address_offer(now: pd.Timestamp) -> pd.DataFrame:
    """An offer in Bordeaux (its first address, flattened) and in Toulouse."""

    def address(city: str, code: str, point: tuple[float, float]) -> dict[str, Any]:
        place = {"city": city, "postalCode": code, "departmentCode": code[:2]}
        return {**place, "lat": point[0], "lon": point[1], "locationSource": None}

    row = {
        "id": "two-cities",
        "domain": "solidarite-insertion",
        "activities": ["aide-alimentaire"],
        "title": "Collecte alimentaire",
        "type": "benevolat",
        "publisherId": "p-so",
        "publisherName": "Publisher SO",
        "organizationName": SUD_OUEST,
        "lat": BORDEAUX[0],
        "lon": BORDEAUX[1],
        "city": "Bordeaux",
        "postalCode": "33000",
        "departmentCode": "33",
        "openToMinors": True,
        "addresses": [
            address("Bordeaux", "33000", BORDEAUX),
            address("Toulouse", "31000", TOULOUSE),
        ],
    }
    return _offers([row], now)


HOSTILE_TITLE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


def hostile_offer(now: pd.Timestamp) -> pd.DataFrame:
    """A partner's offer whose texts hold markup that would run if rendered as HTML."""
    row = {
        "id": "paris-hostile",
        "domain": "sport",
        "activities": ["animation-sportive"],
        "title": HOSTILE_TITLE,
        "description": "<iframe src=javascript:alert(1)>",
        "type": "benevolat",
        "publisherId": "p-hostile",
        "publisherName": "Publisher H",
        "organizationName": '<svg onload="window.__pwned = 3">Club</svg>',
        "lat": 48.86,
        "lon": 2.36,
        "city": "Paris",
        "postalCode": "75003",
        "departmentCode": "75",
        "openToMinors": True,
    }
    return _offers([row], now)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, EventStore]]:
    folder = tmp_path_factory.mktemp("clients")
    now = pd.Timestamp.now(tz="UTC").floor("s")
    catalog = folder / "offers.parquet"
    offers = [catalog_offers(now), filter_offers(now), hostile_offer(now), two_address_offer(now)]
    pd.concat(offers, ignore_index=True).to_parquet(catalog, index=False)
    url = f"sqlite:///{folder / 'events.db'}"
    widgets = folder / "widgets.json"
    widgets.write_text(json.dumps({"widget-se": {"publishers": ["p-snu", "p-elsewhere"]}}))
    env = {
        "RECSYS_WIDGETS": str(widgets),
        "RECSYS_MODEL_URI": str(folder / "no-such-model"),
        "RECSYS_CATALOG": str(catalog),
        "RECSYS_EVENT_STORE_URL": url,
        "RECSYS_RANK_LOG_FLUSH_SECONDS": "0.1",
        "RECSYS_CORS_ORIGINS": f"{PARTNER}, https://other.example",
        "RECSYS_ADMIN_TOKEN": "token",
    }
    store = EventStore(url)
    try:
        with (
            running_servers([(env, folder / "server.log")]) as bases,
            httpx.Client(base_url=bases[0], timeout=30) as client,
        ):
            yield client, store, bases[0]
    finally:
        store.close()


def rank(client: httpx.Client, body: dict[str, Any]) -> httpx.Response:
    return client.post("/rank", json=body)


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["offer_id"] for item in response.json()["items"]]


def test_context_is_accepted_and_stored_with_the_list(server: tuple) -> None:
    client, store = server[:2]
    context = {
        "publisher_id": "pub-1",
        "widget_id": "widget-42",
        "source": "widget",
        "page": "/missions",
        "campaign": "rentree",
    }
    response = rank(client, {"profile": PARIS_PERSON, "k": 3, "context": context})
    assert response.status_code == 200, response.text
    request_id = response.json()["request_id"]
    deadline = time.monotonic() + 10
    rows = pd.DataFrame()
    while time.monotonic() < deadline:
        rows = store.read_contexts()
        if request_id in set(rows["requestId"]):
            break
        time.sleep(0.1)
    row = rows.set_index("requestId").loc[request_id]
    assert (row["publisherId"], row["widgetId"], row["source"], row["page"]) == (
        "pub-1",
        "widget-42",
        "widget",
        "/missions",
    )
    assert json.loads(row["extra"]) == {"campaign": "rentree"}


@pytest.mark.parametrize(
    ("context", "field"),
    [
        ({"source": "carrier-pigeon"}, "source"),
        ({"widget_id": "w" * 200}, "widget_id"),
        ({"nested": {"a": 1}}, "context"),
    ],
)
def test_bad_context_is_refused_naming_the_field(server: tuple, context: dict, field: str) -> None:
    client = server[0]
    response = rank(client, {"profile": PARIS_PERSON, "context": context})
    assert response.status_code == 400
    assert field in response.text


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"departments": ["42"]}, {"se-short", "se-long", "se-late", "se-adults", "se-snu"}),
        ({"cities": ["saint etienne"]}, {"se-short", "se-long", "se-late", "se-adults", "se-snu"}),
        ({"cities": ["42000"], "activities": ["animation"]}, {"se-snu"}),
        ({"departments": ["42"], "snu": True}, {"se-snu"}),
        ({"departments": ["42"], "publishers": ["p-snu"]}, {"se-snu"}),
        ({"organisations": ["croix-rouge française"]}, {"se-adults"}),
        (
            {"departments": ["42"], "open_to_minors": True},
            {"se-short", "se-long", "se-late", "se-snu"},
        ),
        ({"departments": ["42"], "max_duration_days": 7}, {"se-short", "se-adults", "se-snu"}),
        ({"departments": ["42"], "min_duration_days": 100}, {"se-long", "se-late"}),
    ],
)
def test_filters_narrow_the_list(server: tuple, filters: dict, expected: set[str]) -> None:
    client = server[0]
    body = {"profile": {"age": 30, "lat": 45.4397, "lon": 4.3872}, "k": 20, "filters": filters}
    assert set(ids(rank(client, body))) == expected


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (
            {"types": ["volontariat_service_civique"]},
            {"lyon-sport-1", "lyon-sport-3", "lyon-culture-1", "lyon-culture-3"},
        ),
        (
            {"domains": ["sport"], "types": ["benevolat"]},
            {"lyon-sport-0", "lyon-sport-2", "marseille-remote"},
        ),
        ({"remote": ["full"]}, {"marseille-remote"}),
    ],
)
def test_programme_domain_and_remote_filters(
    server: tuple, filters: dict, expected: set[str]
) -> None:
    """In Lyon: Service Civique is every odd offer, the sport bénévolat the even ones and the
    fully remote one (eligible anywhere)."""
    body = {"profile": LYON_PERSON, "k": 30, "filters": filters}
    assert set(ids(rank(server[0], body))) == expected


def test_start_window_filter(server: tuple) -> None:
    client = server[0]
    soon = (pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=60)).isoformat()
    body = {
        "profile": {"age": 30, "lat": 45.4397, "lon": 4.3872},
        "k": 20,
        "filters": {"departments": ["42"], "start_after": soon},
    }
    assert ids(rank(client, body)) == ["se-late"]


def test_a_filter_never_widens_eligibility(server: tuple) -> None:
    """A 16-year-old asking for the organisation whose offer is closed to minors gets none."""
    client = server[0]
    body = {
        "profile": {"age": 16, "lat": 45.4397, "lon": 4.3872},
        "k": 20,
        "filters": {"organisations": ["Croix-Rouge française"]},
    }
    assert ids(rank(client, body)) == []
    body["filters"] = {"departments": ["42"]}
    assert "se-adults" not in ids(rank(client, body))


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        ({"departments": ["Loire"]}, "departments"),
        ({"activities": ["juggling"]}, "activities"),
        ({"min_duration_days": -1}, "min_duration_days"),
        ({"widget": "x"}, "widget"),
    ],
)
def test_bad_filter_is_refused_naming_the_field(server: tuple, filters: dict, field: str) -> None:
    client = server[0]
    response = rank(client, {"profile": PARIS_PERSON, "filters": filters})
    assert response.status_code == 400
    assert field in response.text


def test_pages_continue_the_ranking_without_duplicates_or_gaps(server: tuple) -> None:
    client, store = server[:2]
    body: dict[str, Any] = {"profile": LYON_PERSON, "k": 3}
    pages = [ids(rank(client, {**body, "offset": offset})) for offset in (0, 3, 6, 9, 12)]
    seen = [offer for page in pages for offer in page]
    assert len(seen) == len(set(seen)), "an offer repeated across pages"
    assert pages[0] == ids(rank(client, body)), "page 1 is the list without offset"
    everything = set(ids(rank(client, {**body, "k": 100})))
    assert set(seen) == everything, "the pages together are every candidate"
    assert len(seen) > 6, "the test needs more than two pages of candidates"
    # ranks continue from the offset
    response = rank(client, {**body, "offset": 3})
    assert [item["rank"] for item in response.json()["items"]] == [4, 5, 6]
    # the logged positions too
    request_id = response.json()["request_id"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        logged = store.read_rankings()
        if request_id in set(logged["requestId"]):
            break
        time.sleep(0.1)
    positions = logged.loc[logged["requestId"] == request_id, "position"].tolist()
    assert positions == [4, 5, 6]


def test_offset_not_a_multiple_of_k_is_refused(server: tuple) -> None:
    client = server[0]
    response = rank(client, {"profile": PARIS_PERSON, "k": 5, "offset": 7})
    assert response.status_code == 400
    assert "offset" in response.text


DISPLAY_KEYS = {
    "title",
    "organisation",
    "publisher",
    "city",
    "postal_code",
    "department",
    "start_at",
    "end_at",
    "places_left",
    "remote",
    "programme_label",
    "domain_label",
    "application_url",
    "lat",
    "lon",
}


def test_items_carry_what_a_front_displays(server: tuple) -> None:
    client = server[0]
    body = {"profile": {"age": 30, "lat": 45.4397, "lon": 4.3872}, "k": 20}
    body["filters"] = {"organisations": ["Croix-Rouge française"]}
    response = rank(client, body)
    assert response.status_code == 200, response.text
    (item,) = response.json()["items"]
    assert set(item) >= DISPLAY_KEYS
    assert item["title"] == "Nettoyage des berges"
    assert item["organisation"] == "Croix-Rouge française"
    assert item["publisher"] == "Publisher SE"
    assert (item["city"], item["postal_code"], item["department"]) == (
        "Saint-Étienne",
        "42000",
        "42",
    )
    assert item["programme_label"] == "Bénévolat"
    assert item["domain_label"] == "Environnement"
    assert item["remote"] == "no"
    start, end = pd.Timestamp(item["start_at"]), pd.Timestamp(item["end_at"])
    assert end - start == pd.Timedelta(days=2)
    assert item["reasons"] and all(set(r) == {"code", "text"} for r in item["reasons"])
    assert item["reasons"][0]["code"] == "near"


@pytest.mark.parametrize(
    ("place", "shown"),
    [(TOULOUSE, ("Toulouse", "31000", "31")), (BORDEAUX, ("Bordeaux", "33000", "33"))],
)
def test_an_offer_shows_its_address_nearest_to_the_person(
    server: tuple, place: tuple[float, float], shown: tuple[str, str, str]
) -> None:
    """5.56 km north of either address (0.05° of latitude, R·π/3600), within a 20 km radius:
    the offer is listed (Toulouse only through its second address) with that address's
    place and distance; Bordeaux and Toulouse are 212 km apart."""
    client = server[0]
    person = {"age": 30, "lat": place[0] + 0.05, "lon": place[1], "radius_km": 20}
    body = {"profile": person, "k": 5, "filters": {"organisations": [SUD_OUEST]}}
    response = rank(client, body)
    assert ids(response) == ["two-cities"]
    (item,) = response.json()["items"]
    assert (item["city"], item["postal_code"], item["department"]) == shown
    assert (item["lat"], item["lon"]) == place
    assert item["distance_km"] == 5.6
    assert {"code": "near", "text": "près de chez vous : 6 km"} in item["reasons"]
    (light,) = rank(client, {**body, "fields": ["city"]}).json()["items"]
    assert light["city"] == shown[0] and "postal_code" not in light


def test_without_a_place_an_offer_shows_its_first_address(server: tuple) -> None:
    client = server[0]
    body = {"profile": {"age": 30}, "k": 5, "filters": {"organisations": [SUD_OUEST]}}
    (item,) = rank(client, body).json()["items"]
    assert (item["offer_id"], item["city"], item["postal_code"]) == (
        "two-cities",
        "Bordeaux",
        "33000",
    )
    assert item["distance_km"] is None


def test_fields_keep_a_lighter_payload(server: tuple) -> None:
    client = server[0]
    body = {"profile": PARIS_PERSON, "k": 3, "fields": ["title", "city"]}
    items = rank(client, body).json()["items"]
    assert items
    for item in items:
        assert set(item) & DISPLAY_KEYS == {"title", "city"}
        assert {"offer_id", "rank", "score", "reasons", "distance_km"} <= set(item)
    none = rank(client, {**body, "fields": []}).json()["items"]
    assert all(not set(item) & DISPLAY_KEYS for item in none)
    refused = rank(client, {**body, "fields": ["password"]})
    assert refused.status_code == 400 and "fields" in refused.text


def test_openapi_documents_every_field_with_examples(server: tuple) -> None:
    client = server[0]
    document = client.get("/docs.json").json()
    schemas = document["components"]["schemas"]
    request = next(v for k, v in schemas.items() if k.startswith("RankRequest"))
    assert {"offset", "context", "fields", "filters", "after"} <= set(request["properties"])
    filters = schemas["RankFilters"]["properties"]
    assert {"departments", "cities", "start_after", "max_duration_days"} <= set(filters)
    assert set(schemas["RankedItem"]["properties"]) >= DISPLAY_KEYS
    bare = {
        name: [field for field, spec in model["properties"].items() if "examples" not in spec]
        for name, model in schemas.items()
    }
    assert not {name: fields for name, fields in bare.items() if fields}
    assert any(name.startswith("WidgetUpdate") for name in schemas)
    # Errors are documented in the shape the service answers.
    for name in ("InvalidArgument", "NotFound", "InternalServerError"):
        assert schemas[name]["properties"]["error"]["$ref"].endswith("/ErrorDetail")
    assert set(schemas["ErrorDetail"]["properties"]) == {"code", "message", "field", "details"}
    missing = client.post("/similar", json={"offer_id": "no-such-offer"}).json()
    assert set(missing) == {"error"} and set(missing["error"]) == {"code", "message", "field"}


def test_a_widget_shows_only_its_publishers(server: tuple) -> None:
    client = server[0]
    person = {"age": 30, "lat": 45.4397, "lon": 4.3872}
    body = {"profile": person, "k": 20, "filters": {"departments": ["42"]}}
    assert len(ids(rank(client, body))) == 5
    widget = {**body, "context": {"widget_id": "widget-se"}}
    assert ids(rank(client, widget)) == ["se-snu"]
    other = {**body, "context": {"widget_id": "widget-unlisted"}}
    assert len(ids(rank(client, other))) == 5  # a widget not configured is not restricted
    refused = rank(client, {**widget, "filters": {"publishers": ["p-se"]}})
    assert refused.status_code == 400
    assert refused.json()["error"]["field"] == "filters.publishers"


ADMIN = {"X-Admin-Token": "token"}
SAINT_ETIENNE = {"age": 30, "lat": 45.4397, "lon": 4.3872}


def set_widget(client: httpx.Client, body: dict[str, Any]) -> httpx.Response:
    return client.post("/admin/widgets/set", json=body, headers=ADMIN)


def get_widgets(client: httpx.Client, body: dict[str, Any]) -> list[dict[str, Any]]:
    answer = client.post("/admin/widgets/get", json=body, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    return answer.json()["widgets"]


def test_an_admin_sets_reads_and_removes_a_widget_list(server: tuple) -> None:
    client = server[0]
    body = {"profile": SAINT_ETIENNE, "k": 20, "filters": {"departments": ["42"]}}
    widget = {**body, "context": {"widget_id": "widget-admin"}}
    assert len(ids(rank(client, widget))) == 5  # no list yet: not restricted
    saved = set_widget(client, {"widget_id": "widget-admin", "publishers": ["p-se", "p-typo"]})
    assert saved.status_code == 200, saved.text
    assert saved.json() == {
        "widget_id": "widget-admin",
        "publishers": ["p-se", "p-typo"],
        "source": "admin",
        "not_in_catalog": ["p-typo"],
    }
    assert set(ids(rank(client, widget))) == {"se-short", "se-long", "se-late", "se-adults"}
    assert get_widgets(client, {"widget_id": "widget-admin"}) == [saved.json()]
    listed = {w["widget_id"]: w["source"] for w in get_widgets(client, {})}
    assert listed == {"widget-admin": "admin", "widget-se": "file"}
    removed = set_widget(client, {"widget_id": "widget-admin", "publishers": None})
    assert removed.json()["source"] == "none" and removed.json()["publishers"] is None
    assert len(ids(rank(client, widget))) == 5


def test_an_admin_list_replaces_the_file_s_until_removed(server: tuple) -> None:
    client = server[0]
    body = {"profile": SAINT_ETIENNE, "k": 20, "context": {"widget_id": "widget-se"}}
    assert ids(rank(client, body)) == ["se-snu"]  # the file's list: p-snu
    try:
        assert set_widget(client, {"widget_id": "widget-se", "publishers": ["p-se"]}).is_success
        assert "se-snu" not in ids(rank(client, body)) and ids(rank(client, body))
    finally:
        back = set_widget(client, {"widget_id": "widget-se", "publishers": None})
    assert back.json()["source"] == "file"
    assert back.json()["publishers"] == ["p-snu", "p-elsewhere"]
    assert ids(rank(client, body)) == ["se-snu"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"widget_id": "w", "publishers": []}, "publishers"),
        ({"widget_id": "w"}, "publishers"),
        ({"widget_id": "w", "publishers": [""]}, "publishers.0"),
        ({"widget_id": "w", "publishers": [7]}, "publishers.0"),
        ({"widget_id": "", "publishers": ["p"]}, "widget_id"),
        ({"publishers": ["p"]}, "widget_id"),
        ({"widget_id": "w", "publishers": ["p"], "colour": "red"}, "colour"),
    ],
)
def test_bad_widget_lists_are_refused_naming_the_field(
    server: tuple, body: dict, field: str
) -> None:
    answer = set_widget(server[0], body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["field"] == field
    assert answer.json()["error"]["code"] == "invalid_request"


def test_widget_admin_calls_need_the_token(server: tuple) -> None:
    client = server[0]
    for route, body in (
        ("/admin/widgets/set", {"widget_id": "w", "publishers": ["p"]}),
        ("/admin/widgets/get", {}),
    ):
        answer = client.post(route, json=body, headers={"X-Admin-Token": "wrong"})
        assert answer.status_code == 403
        assert answer.json()["error"]["code"] == "forbidden"
    assert all(w["widget_id"] != "w" for w in get_widgets(client, {}))


DOCS = Path(__file__).resolve().parents[1] / "docs" / "serving.md"
WORKED = re.compile(r"""curl -s "\$RECSYS(/[a-z]+)"[^\n]*\n?[^']*-d '(.*?)'\n""", re.S)


def worked_requests() -> list[tuple[str, dict]]:
    """The front developers' worked requests of docs/serving.md: (route, body)."""
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("## For front developers")[1].split("\n## ")[0]
    return [(route, json.loads(body)) for route, body in WORKED.findall(section)]


def test_the_worked_requests_of_the_docs_are_answered(server: tuple) -> None:
    requests = worked_requests()
    assert [route for route, _ in requests] == ["/rank"] * 4 + ["/eligibility"]
    client = server[0]
    answers = [client.post(route, json=body) for route, body in requests]
    assert all(answer.status_code == 200 for answer in answers), [a.text for a in answers]
    widget, page_two, counsellor, redirect_, eligibility = (a.json() for a in answers)
    assert all(
        set(item) & DISPLAY_KEYS <= set(requests[0][1]["fields"]) for item in widget["items"]
    )
    assert all(item["rank"] > 10 for item in page_two["items"])
    assert counsellor["items"], "the counsellor's list is empty"
    assert redirect_["items"]
    assert {i["reasons"][0]["code"] for i in redirect_["items"]} == {"after_refused"}
    assert all(i["programme"] != "volontariat_service_civique" for i in redirect_["items"])
    codes = {p["programme"]: p["code"] for p in eligibility["programmes"]}
    assert codes["volontariat_service_civique"] == "too_old"


# --- Web conventions ---------------------------------------------------------------------------


def test_cors_lets_listed_origins_call_public_endpoints(server: tuple) -> None:
    client = server[0]
    preflight = client.options(
        "/rank",
        headers={
            "origin": PARTNER,
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type, x-request-id",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == PARTNER
    answer = client.post("/rank", json={"k": 1}, headers={"origin": PARTNER})
    assert answer.headers["access-control-allow-origin"] == PARTNER
    assert "x-request-id" in answer.headers["access-control-expose-headers"].lower()
    stranger = client.post("/rank", json={"k": 1}, headers={"origin": "https://evil.example"})
    assert "access-control-allow-origin" not in stranger.headers


def test_cors_never_opens_admin_endpoints(server: tuple) -> None:
    client = server[0]
    preflight = client.options(
        "/admin/catalog",
        headers={"origin": PARTNER, "access-control-request-method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    answer = client.post("/admin/catalog", json={}, headers={"origin": PARTNER})
    assert "access-control-allow-origin" not in answer.headers


def test_request_id_is_returned_and_made_when_missing(server: tuple) -> None:
    client = server[0]
    given = client.post("/rank", json={"k": 1}, headers={"x-request-id": "front-123.a"})
    assert given.headers["x-request-id"] == "front-123.a"
    made = client.post("/rank", json={"k": 1})
    assert len(made.headers["x-request-id"]) == 32
    odd = client.post("/rank", json={"k": 1}, headers={"x-request-id": "<script>"})
    assert odd.headers["x-request-id"] != "<script>"
    failed = client.post("/rank", json={"k": 0}, headers={"x-request-id": "r-1"})
    assert failed.headers["x-request-id"] == "r-1"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code", "field"),
    [
        (
            "POST",
            "/rank",
            {"filters": {"departments": ["Loire"]}},
            400,
            "invalid_request",
            "filters.departments.0",
        ),
        ("POST", "/rank", {"k": 5, "offset": 3}, 400, "invalid_request", None),
        ("POST", "/similar", {"offer_id": "no-such-offer"}, 404, "not_found", "offer_id"),
        ("POST", "/events", {"events": []}, 400, "invalid_request", "events"),
        ("POST", "/admin/catalog", {}, 403, "forbidden", None),
        ("GET", "/no-such-page", None, 404, "not_found", None),
    ],
)
def test_every_error_has_one_shape(
    server: tuple, method: str, path: str, body: Any, status: int, code: str, field: str | None
) -> None:
    client = server[0]
    response = client.request(method, path, json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert (error["code"], error["field"]) == (code, field)
    assert isinstance(error["message"], str) and error["message"]
    if path == "/similar":
        assert "no-such-offer" in error["message"]


# --- Paths between programmes ------------------------------------------------------------------


def test_eligibility_answers_every_programme_in_french(server: tuple) -> None:
    client = server[0]
    response = client.post("/eligibility", json={"age": 27})
    assert response.status_code == 200, response.text
    answers = {a["programme"]: a for a in response.json()["programmes"]}
    assert set(answers) == {
        "volontariat_service_civique",
        "snu",
        "benevolat",
        "volontariat_sapeurs_pompiers",
        "volontariat_reserve_operationnelle",
    }
    sc = answers["volontariat_service_civique"]
    assert (sc["eligible"], sc["code"], sc["label"]) == (False, "too_old", "Service Civique")
    assert "16 à 25 ans" in sc["reason"]
    assert answers["benevolat"]["eligible"] and not answers["snu"]["eligible"]
    assert "nationalité française" in " ".join(
        answers["volontariat_reserve_operationnelle"]["notes"]
    )
    with_disability = client.post("/eligibility", json={"age": 27, "disability": True}).json()
    assert with_disability["programmes"][0]["eligible"] is True
    refused = client.post("/eligibility", json={"age": -1})
    assert refused.status_code == 400 and refused.json()["error"]["field"] == "age"


def test_after_a_refusal_the_list_continues_in_other_programmes(server: tuple) -> None:
    client = server[0]
    body = {
        "profile": {"age": 20, "lat": 48.8566, "lon": 2.3522},
        "k": 10,
        "after": {"offer_id": "paris-sport-1", "outcome": "refused"},
    }
    response = rank(client, body)
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert items
    assert all(item["programme"] != "volontariat_service_civique" for item in items)
    assert "paris-sport-1" not in {item["offer_id"] for item in items}
    for item in items:
        first = item["reasons"][0]
        assert first["code"] == "after_refused"
        assert first["text"].endswith(item["programme_label"])


def test_after_a_full_offer_the_list_stays_in_its_domain(server: tuple) -> None:
    client = server[0]
    body = {
        "profile": {"age": 20, "lat": 48.8566, "lon": 2.3522},
        "k": 10,
        "after": {"offer_id": "paris-culture-0", "outcome": "full"},
    }
    items = rank(client, body).json()["items"]
    assert items and {item["domain"] for item in items} == {"culture-loisirs"}
    assert {item["programme"] for item in items} > {"benevolat"}  # any programme
    assert "paris-culture-0" not in {item["offer_id"] for item in items}
    assert {item["reasons"][0]["code"] for item in items} == {"after_full"}


def test_after_an_snu_mission_the_list_leaves_snu_missions(server: tuple) -> None:
    """A 16-year-old in Saint-Étienne who finished the SNU mission: the bénévolat open to
    minors around (and the fully remote offer), no other SNU mission."""
    body = {
        "profile": {"age": 16, "lat": 45.4397, "lon": 4.3872},
        "k": 20,
        "after": {"offer_id": "se-snu", "outcome": "finished"},
    }
    items = rank(server[0], body).json()["items"]
    assert {i["offer_id"] for i in items} == {"se-short", "se-long", "se-late", "marseille-remote"}
    assert {i["reasons"][0]["code"] for i in items} == {"after_finished"}


def test_after_an_expired_offer_the_list_stays_in_its_domain(server: tuple) -> None:
    body = {
        "profile": {"age": 20, "lat": 48.8566, "lon": 2.3522},
        "k": 30,
        "after": {"offer_id": "ended", "outcome": "expired", "domain": "sport"},
    }
    items = rank(server[0], body).json()["items"]
    assert items and {i["domain"] for i in items} == {"sport"}
    assert "ended" not in {i["offer_id"] for i in items}
    assert {i["reasons"][0]["code"] for i in items} == {"after_expired"}


def test_after_an_offer_gone_from_the_catalog(server: tuple) -> None:
    client = server[0]
    after = {"offer_id": "gone-1", "outcome": "too_old"}
    body = {"profile": {"age": 27, "lat": 48.8566, "lon": 2.3522}, "after": after}
    unknown = rank(client, body)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["field"] == "after.offer_id"
    body["after"] = {**after, "programme": "volontariat_service_civique"}
    items = rank(client, body).json()["items"]
    assert items and all(i["reasons"][0]["code"] == "after_too_old" for i in items)
    assert items[0]["reasons"][0]["text"].startswith("Service Civique n’est plus accessible")


def test_after_with_filters_that_leave_no_path_is_refused(server: tuple) -> None:
    client = server[0]
    body = {
        "profile": PARIS_PERSON,
        "filters": {"types": ["volontariat_service_civique"]},
        "after": {"offer_id": "paris-sport-1", "outcome": "refused"},
    }
    response = rank(client, body)
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "filters.types"


def test_similar_with_a_profile_keeps_what_the_person_may_join(server: tuple) -> None:
    client = server[0]
    body = {"offer_id": "paris-sport-0", "k": 40}
    anyone = {i["offer_id"] for i in client.post("/similar", json=body).json()["items"]}
    assert {"paris-adults", "paris-reserve"} <= anyone
    minor = {"age": 16, "lat": 48.8566, "lon": 2.3522, "radius_km": 30}
    response = client.post("/similar", json={**body, "profile": minor})
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    offered = {i["offer_id"] for i in items}
    assert offered and not offered & {"paris-adults", "paris-reserve", "marseille-onsite"}
    assert offered < anyone
    # distances are from the person now: on-site offers within the radius, Lyon ones gone
    far = {i["offer_id"] for i in items if i["distance_km"] is not None and i["distance_km"] > 30}
    assert far <= {"marseille-remote"}  # remote: at any distance
    assert not any(o.startswith("lyon-") for o in offered)


# --- The public page, in a browser -------------------------------------------------------------


def test_page_headers_are_strict(server: tuple) -> None:
    client = server[0]
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe" not in csp
    assert '<html lang="fr">' in page.text and "<script>" not in page.text.replace(" ", "")
    assert client.get("/page/france.json").json()["polygons"]
    assert "swagger" in client.get("/docs").text.lower()


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_quiz_in_a_browser_lists_offers_with_reasons_and_runs_no_partner_markup(
    server: tuple, tmp_path: Path
) -> None:
    base = server[2]
    with Browser() as browser:
        browser.open(f"{base}/")
        browser.evaluate(
            """(() => {
              document.getElementById('age').value = '20';
              document.getElementById('place').value = '75001';
              document.getElementById('domains-sport').checked = true;
              document.querySelector('#quiz button[type=submit]').click();
            })()"""
        )
        count = browser.wait_for("document.querySelectorAll('#offers > li').length")
        assert count >= 3
        items = browser.evaluate(
            """[...document.querySelectorAll('#offers > li')].map(li => ({
                id: li.dataset.offerId,
                title: li.querySelector('h3').textContent,
                reasons: [...li.querySelectorAll('.reasons li')].map(r => r.dataset.code),
                badges: [...li.querySelectorAll('.badge')].map(b => b.textContent),
                distance: (li.querySelector('.distance') || {}).textContent}))"""
        )
        assert all(item["reasons"] for item in items)
        assert all(item["badges"] for item in items)
        assert any(item["distance"] for item in items)
        hostile = [item for item in items if item["id"] == "paris-hostile"]
        assert hostile and hostile[0]["title"] == HOSTILE_TITLE  # shown as text
        assert browser.evaluate("window.__pwned === undefined")
        assert browser.evaluate("document.querySelectorAll('#offers img, #offers svg').length") == 0
        assert browser.wait_for("document.querySelectorAll('#map circle').length") >= 1
        # the list is shareable: the URL holds the quiz, and opening it lists the same offers
        url = browser.evaluate("window.location.href")
        assert "age=20" in url and "lieu=75001" in url and "domaines=sport" in url
        browser.open(url)
        browser.wait_for("document.querySelectorAll('#offers > li').length")
        again = browser.evaluate(
            "[...document.querySelectorAll('#offers > li')].map(li => li.dataset.offerId)"
        )
        assert again == [item["id"] for item in items]
        # "Pourquoi pas le Service Civique ?"
        browser.evaluate(
            """(() => { document.getElementById('age').value = '27';
                        document.getElementById('ask-eligibility').click(); })()"""
        )
        answer = browser.wait_for(
            "(document.querySelector("
            "'#eligibility li[data-programme=volontariat_service_civique]') || {}).textContent"
        )
        assert answer.startswith("Non") and "25 ans" in answer
        assert browser.evaluate("window.__pwned === undefined")
        browser.screenshot(tmp_path / "page.png")
        assert (tmp_path / "page.png").stat().st_size > 10_000
