"""Hard eligibility: one explicit case per rule, then properties against a plain restatement."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from recsys import schema, taxonomy
from recsys.arrays import OfferArrays, ProfileArrays, offer_arrays
from recsys.eligibility import (
    AgeClasses,
    available,
    distances_km,
    eligible,
    eligible_matrix,
    ineligibility_reasons,
)

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
AT = int(NOW.timestamp())
PARIS = (48.8566, 2.3522)
LYON = (45.7640, 4.8357)  # 392 km from Paris
VERSAILLES = (48.8049, 2.1204)  # 17.7 km from Paris


def offer(**overrides: Any) -> dict[str, Any]:
    """An eligible-for-anyone-adult bénévolat offer in Paris, with `overrides` applied."""
    row: dict[str, Any] = {
        "id": "o",
        "clientId": "c",
        "publisherId": "p",
        "publisherName": "Publisher",
        "organizationName": "Org",
        "title": "Mission",
        "description": "",
        "schedule": "2 heures par semaine",
        "domain": "solidarite-insertion",
        "activities": ["accueil-de-public"],
        "type": taxonomy.BENEVOLAT,
        "snu": False,
        "snuPlaces": None,
        "places": None,
        "remote": "no",
        "openToMinors": None,
        "reducedMobilityAccessible": None,
        "closeToTransport": None,
        "startAt": NOW + timedelta(days=10),
        "endAt": None,
        "postedAt": NOW - timedelta(days=10),
        "createdAt": NOW - timedelta(days=11),
        "updatedAt": NOW - timedelta(days=10),
        "deletedAt": None,
        "compensationAmount": None,
        "compensationAmountMax": None,
        "compensationUnit": None,
        "compensationType": None,
        "statusCode": "ACCEPTED",
        "city": "Paris",
        "postalCode": "75011",
        "departmentCode": "75",
        "departmentName": "Paris",
        "region": "Île-de-France",
        "lat": PARIS[0],
        "lon": PARIS[1],
        "tags": [],
    }
    unknown = set(overrides) - set(row)
    assert not unknown, unknown
    row.update(overrides)
    return row


def build(*rows: dict[str, Any]) -> OfferArrays:
    """Offer arrays through the real path: canonical schema, then `offer_arrays`."""
    frame = pd.DataFrame([{**row, "id": f"o{i}"} for i, row in enumerate(rows)])
    table = schema.conform(frame, "offers").to_pandas()
    return offer_arrays(table)


def is_eligible(row: dict[str, Any], **person: Any) -> bool:
    arguments = {"age": 20, "disability": False, "lat": PARIS[0], "lon": PARIS[1]}
    arguments |= {"radius_km": 20.0, "at": AT} | person
    offers = build(row)
    verdict = bool(eligible(offers, **arguments)[0])
    reasons = ineligibility_reasons(offers, 0, **arguments)
    assert verdict == (not reasons), reasons
    return verdict


SC = taxonomy.SERVICE_CIVIQUE


@pytest.mark.parametrize(
    ("row", "person", "expected"),
    [
        # Service Civique: 16-25, to 30 with a disability.
        (offer(type=SC), {"age": 25}, True),
        (offer(type=SC), {"age": 26}, False),
        (offer(type=SC), {"age": 26, "disability": True}, True),
        (offer(type=SC), {"age": 30, "disability": True}, True),
        (offer(type=SC), {"age": 31, "disability": True}, False),
        (offer(type=SC), {"age": 16}, True),
        (offer(type=SC), {"age": 15}, False),
        (offer(type=SC), {"age": 25.9}, True),  # completed years
        # Firefighters 16-67, reserve 17-72.
        (offer(type=taxonomy.SAPEURS_POMPIERS), {"age": 67}, True),
        (offer(type=taxonomy.SAPEURS_POMPIERS), {"age": 68}, False),
        (offer(type=taxonomy.SAPEURS_POMPIERS), {"age": 16}, True),
        (offer(type=taxonomy.RESERVE), {"age": 16}, False),
        (offer(type=taxonomy.RESERVE), {"age": 72}, True),
        (offer(type=taxonomy.RESERVE), {"age": 73}, False),
        # Bénévolat: adults; 16-17 only where openToMinors is yes (missing counts as no).
        (offer(), {"age": 70}, True),
        (offer(), {"age": 17}, False),
        (offer(openToMinors=True), {"age": 16}, True),
        (offer(openToMinors=True), {"age": 15}, False),
        (offer(openToMinors=False), {"age": 17}, False),
        # SNU: open to 15-17, unless openToMinors is no.
        (offer(snu=True), {"age": 15}, True),
        (offer(snu=True), {"age": 14}, False),
        (offer(), {"age": 15}, False),
        (offer(snu=True, openToMinors=False), {"age": 15}, False),
        (offer(snu=True, openToMinors=False), {"age": 30}, True),
        (offer(type=SC, openToMinors=False), {"age": 17}, False),
        (offer(type=SC, openToMinors=False), {"age": 18}, True),
        (offer(type=taxonomy.RESERVE, snu=True), {"age": 15}, True),
        # Unknown age: taken as an adult young person.
        (offer(type=SC), {"age": math.nan}, True),
        (offer(type=SC), {"age": None}, True),
        (offer(type=taxonomy.RESERVE), {"age": None}, True),
        (offer(openToMinors=False), {"age": None}, True),
        (offer(type="unknown-programme"), {"age": 20}, False),
        # Availability.
        (offer(places=0), {}, False),
        (offer(places=-2), {}, False),
        (offer(places=1), {}, True),
        (offer(endAt=NOW - timedelta(seconds=1)), {}, False),
        (offer(endAt=NOW), {}, True),
        (offer(deletedAt=NOW - timedelta(days=1)), {}, False),
        (offer(deletedAt=NOW), {}, False),
        (offer(deletedAt=NOW + timedelta(days=1)), {}, True),
        (offer(statusCode="REFUSED"), {}, False),
        (offer(postedAt=NOW + timedelta(hours=1)), {}, False),
        (offer(postedAt=NOW), {}, True),
        # Geography.
        (offer(lat=LYON[0], lon=LYON[1]), {}, False),
        (offer(lat=LYON[0], lon=LYON[1]), {"radius_km": 400.0}, True),
        (offer(lat=VERSAILLES[0], lon=VERSAILLES[1]), {"radius_km": 17.0}, False),
        (offer(lat=VERSAILLES[0], lon=VERSAILLES[1]), {"radius_km": 18.0}, True),
        (offer(lat=LYON[0], lon=LYON[1], remote="full"), {}, True),
        (offer(lat=LYON[0], lon=LYON[1], remote="local"), {}, True),
        (offer(lat=LYON[0], lon=LYON[1], remote="possible"), {}, True),
        (offer(lat=None, lon=None), {}, False),
        (offer(lat=None, lon=None, remote="full"), {}, True),
        (offer(lat=None, lon=None), {"lat": None, "lon": None}, True),
        (offer(lat=LYON[0], lon=LYON[1]), {"lat": math.nan, "lon": math.nan}, True),
        (offer(lat=LYON[0], lon=LYON[1]), {"radius_km": math.inf}, True),
    ],
)
def test_rule(row: dict[str, Any], person: dict[str, Any], expected: bool) -> None:
    assert is_eligible(row, **person) is expected


def test_reasons_name_the_failed_rules() -> None:
    offers = build(offer(type=SC, statusCode="REFUSED", lat=LYON[0], lon=LYON[1], places=0))
    reasons = ineligibility_reasons(
        offers, 0, age=26, disability=False, lat=PARIS[0], lon=PARIS[1], radius_km=20.0, at=AT
    )
    assert len(reasons) == 4
    assert reasons[0] == "statusCode is not ACCEPTED"
    assert reasons[1] == "no places left (places 0)"
    assert reasons[2].startswith("age 26 not admitted: Service Civique 16-25")
    assert reasons[3].startswith("on-site offer 39")


def test_distances_and_precomputed_distances() -> None:
    offers = build(offer(), offer(lat=LYON[0], lon=LYON[1]), offer(lat=None, lon=None))
    distances = distances_km(offers, *PARIS)
    assert distances[0] == 0.0
    assert distances[1] == pytest.approx(392, abs=5)
    assert np.isnan(distances[2])
    assert np.isnan(distances_km(offers, None, None)).all()
    person = {"age": 20, "disability": False, "lat": PARIS[0], "lon": PARIS[1], "at": AT}
    # Precomputed distances are used as given (here: pretend everything is 1 km away).
    mask = eligible(offers, **person, radius_km=20.0, distances_km=np.ones(3))
    assert mask.tolist() == [True, True, True]
    assert eligible(offers, **person, radius_km=20.0).tolist() == [True, False, False]


@pytest.mark.parametrize("radius", [0.0, -5.0, math.nan])
def test_bad_radius_is_refused(radius: float) -> None:
    with pytest.raises(ValueError, match="radius_km"):
        eligible(
            build(offer()), age=20, disability=False, lat=1.0, lon=1.0, radius_km=radius, at=AT
        )


def test_bad_distances_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="distances_km"):
        eligible(
            build(offer()),
            age=20,
            disability=False,
            lat=1.0,
            lon=1.0,
            radius_km=5.0,
            at=AT,
            distances_km=np.zeros(2),
        )


def test_reasons_index_out_of_range() -> None:
    with pytest.raises(ValueError, match="index"):
        ineligibility_reasons(
            build(offer()), 3, age=20, disability=False, lat=None, lon=None, radius_km=5.0, at=AT
        )


# --- Properties --------------------------------------------------------------------------------


def plain_haversine(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0088 * math.asin(math.sqrt(h))


def admits(row: dict[str, Any], age: int, disability: bool) -> bool:
    """DOMAIN.md section 4, one offer, one age, written out plainly."""
    minors = row["openToMinors"]
    if minors is False and age < 18:
        return False
    if row["snu"] and 15 <= age <= 17:
        return True
    match row["type"]:
        case taxonomy.SERVICE_CIVIQUE:
            return 16 <= age <= (30 if disability else 25)
        case taxonomy.SAPEURS_POMPIERS:
            return 16 <= age <= 67
        case taxonomy.RESERVE:
            return 17 <= age <= 72
        case taxonomy.BENEVOLAT:
            return age >= 18 or (age >= 16 and minors is True)
    return False


def reference(row: dict[str, Any], person: dict[str, Any], at: datetime) -> bool:
    if row["statusCode"] != "ACCEPTED":
        return False
    if row["deletedAt"] is not None and row["deletedAt"] <= at:
        return False
    if row["endAt"] is not None and row["endAt"] < at:
        return False
    if row["postedAt"] > at:
        return False
    if row["places"] is not None and row["places"] <= 0:
        return False
    ages = range(18, 26) if person["age"] is None else [person["age"]]
    if not all(admits(row, age, person["disability"]) for age in ages):
        return False
    if row["remote"] in ("full", "local", "possible") or person["lat"] is None:
        return True
    if row["lat"] is None:
        return False
    distance = plain_haversine(person["lat"], person["lon"], row["lat"], row["lon"])
    assume(abs(distance - person["radius_km"]) > 1e-6)  # float noise at the boundary
    return distance <= person["radius_km"]


def moment(seconds: int) -> datetime:
    return NOW + timedelta(seconds=seconds)


near_lat = st.floats(min_value=48.0, max_value=49.5)
near_lon = st.floats(min_value=1.5, max_value=3.5)
# Whole seconds: offer arrays hold epoch seconds. Includes the boundaries at +-1 s.
DAY = 86_400
offsets = st.sampled_from([-30 * DAY, -DAY, -1, 0, 1, DAY, 30 * DAY])

offer_rows = st.builds(
    lambda type_, snu, minors, status, remote, places, place, posted, end, deleted: offer(
        type=type_,
        snu=snu,
        openToMinors=minors,
        statusCode=status,
        remote=remote,
        places=places,
        lat=None if place is None else place[0],
        lon=None if place is None else place[1],
        postedAt=moment(posted),
        endAt=None if end is None else moment(end),
        deletedAt=None if deleted is None else moment(deleted),
    ),
    st.sampled_from(taxonomy.PROGRAMMES),
    st.booleans(),
    st.sampled_from([True, False, None]),
    st.sampled_from(taxonomy.STATUS_CODES),
    st.sampled_from(taxonomy.REMOTE_VALUES),
    st.sampled_from([None, -1, 0, 1, 10]),
    st.none() | st.tuples(near_lat, near_lon),
    offsets,
    st.none() | offsets,
    st.none() | offsets,
)

people = st.fixed_dictionaries(
    {
        "age": st.none() | st.integers(min_value=10, max_value=80),
        "disability": st.booleans(),
        "place": st.none() | st.tuples(near_lat, near_lon),
        "radius_km": st.sampled_from([5.0, 20.0, 50.0, 1000.0]),
    }
).map(
    lambda p: {
        "age": p["age"],
        "disability": p["disability"],
        "lat": None if p["place"] is None else p["place"][0],
        "lon": None if p["place"] is None else p["place"][1],
        "radius_km": p["radius_km"],
    }
)


def profile_arrays_of(persons: list[dict[str, Any]]) -> ProfileArrays:
    n = len(persons)

    def column(name: str) -> np.ndarray:
        return np.array([np.nan if p[name] is None else p[name] for p in persons], dtype=float)

    return ProfileArrays(
        ids=np.array([f"u{i}" for i in range(n)], dtype=object),
        age=column("age"),
        lat=column("lat"),
        lon=column("lon"),
        radius_km=column("radius_km"),
        disability=np.array([p["disability"] for p in persons], dtype=bool),
        has_quiz=np.zeros(n, dtype=bool),
        quiz_domains=np.zeros((n, len(taxonomy.QUIZ_DOMAINS)), dtype=bool),
        quiz_activities=np.zeros((n, len(taxonomy.QUIZ_ACTIVITIES)), dtype=bool),
        rhythm=np.full(n, -1, dtype=np.int16),
        motivations=np.zeros((n, len(taxonomy.MOTIVATIONS)), dtype=bool),
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(offer_rows, min_size=1, max_size=8), person=people)
def test_eligible_matches_plain_rules(rows: list[dict[str, Any]], person: dict[str, Any]) -> None:
    expected = [reference(row, person, NOW) for row in rows]
    offers = build(*rows)
    assert eligible(offers, **person, at=AT).tolist() == expected
    for index, ok in enumerate(expected):
        assert (ineligibility_reasons(offers, index, **person, at=AT) == []) is ok


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(offer_rows, min_size=1, max_size=6),
    persons=st.lists(people, min_size=1, max_size=5),
)
def test_matrix_rows_equal_single_calls(
    rows: list[dict[str, Any]], persons: list[dict[str, Any]]
) -> None:
    offers = build(*rows)
    matrix = eligible_matrix(offers, profile_arrays_of(persons), AT)
    assert matrix.shape == (len(persons), len(rows))
    for i, person in enumerate(persons):
        np.testing.assert_array_equal(matrix[i], eligible(offers, **person, at=AT))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(offer_rows, min_size=1, max_size=12))
def test_available_offers_the_age_classes_admit_are_eligible_anywhere(
    rows: list[dict[str, Any]],
) -> None:
    """The catalog's fast path: `available` ∧ `AgeClasses.admits` is `eligible` of a person
    whose place is unknown, for every age (unknown, under 16 to over the oldest bound) and
    both disability flags; offers of one class share its verdict."""
    offers = build(*rows)
    classes = AgeClasses.of(offers)
    assert len(classes.members) <= len(offers)
    for age in [None, math.nan, 14.0, 15.5, *map(float, range(16, 32)), 67.0, 68.0, 72.0, 73.0]:
        for disability in (False, True):
            expected = eligible(
                offers, age=age, disability=disability, lat=None, lon=None, radius_km=1.0, at=AT
            )
            fast = available(offers, AT) & classes.admits(age, disability)
            assert fast.tolist() == expected.tolist(), (age, disability)


def test_age_classes_group_offers_by_programme_snu_and_minors() -> None:
    offers = build(
        offer(),
        offer(type=SC),
        offer(lat=LYON[0], lon=LYON[1], places=3),  # same age fields as the first
        offer(snu=True),
        offer(openToMinors=True),
    )
    classes = AgeClasses.of(offers)
    assert len(classes.members) == 4
    assert classes.of_offer[0] == classes.of_offer[2]
    assert len(set(classes.of_offer.tolist())) == 4
    # 17: bénévolat without openToMinors refuses minors; Service Civique (16-25), the SNU
    # flag (15-17) and a bénévolat open to minors admit them.
    assert classes.admits(17.0, False).tolist() == [False, True, False, True, True]
    empty = AgeClasses.of(offers.take(np.zeros(0, dtype=np.int64)))
    assert empty.admits(20.0, False).tolist() == []


def test_matrix_in_several_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    from recsys import eligibility

    monkeypatch.setattr(eligibility, "_MATRIX_CELLS_PER_BLOCK", 2)  # one profile per block
    offers = build(offer(type=SC), offer(), offer(snu=True, lat=LYON[0], lon=LYON[1]))
    persons = [
        {"age": 15, "disability": False, "lat": None, "lon": None, "radius_km": 20.0},
        {"age": 27, "disability": True, "lat": LYON[0], "lon": LYON[1], "radius_km": 20.0},
        {"age": None, "disability": False, "lat": PARIS[0], "lon": PARIS[1], "radius_km": 5.0},
    ]
    matrix = eligible_matrix(offers, profile_arrays_of(persons), AT)
    assert matrix.tolist() == [
        [False, False, True],  # 15: SNU only (no place: distance not checked)
        [False, False, True],  # 27 with a disability in Lyon: SC ok by age but 392 km away
        [True, True, False],  # unknown age in Paris: Lyon offer too far
    ]


def test_matrix_refuses_bad_radius() -> None:
    persons = [{"age": 20, "disability": False, "lat": None, "lon": None, "radius_km": None}]
    with pytest.raises(ValueError, match="radius_km"):
        eligible_matrix(build(offer()), profile_arrays_of(persons), AT)
