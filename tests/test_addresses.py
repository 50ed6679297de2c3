"""Every address of an offer: loaded, placed when without coordinates, the nearest one counts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from recsys import geo, places, schema
from recsys.arrays import ProfileArrays, offer_arrays
from recsys.eligibility import (
    distances_km,
    eligible,
    eligible_matrix,
    ineligibility_reasons,
    nearest_addresses,
    pair_distances_km,
)
from recsys.loaders import load_offers
from recsys.schema import Profile
from serving.catalog import Catalog
from tests.test_eligibility import AT, LYON, PARIS, build, offer

MARSEILLE = (43.2965, 5.3698)


def _address(lat: float | None, lon: float | None, **text: str | None) -> dict[str, Any]:
    fields = {"city": None, "postalCode": None, "departmentCode": None}
    return {**fields, **text, "lat": lat, "lon": lon, "locationSource": None}


def _with_addresses(*addresses: dict[str, Any]) -> dict[str, Any]:
    """The eligibility tests' Paris offer with these addresses."""
    return {**offer(), "addresses": list(addresses)}


def _paris_and_lyon() -> dict[str, Any]:
    return _with_addresses(_address(*PARIS), _address(*LYON), _address(None, None))


def test_an_offer_is_as_near_as_its_nearest_address() -> None:
    offers = build(_paris_and_lyon(), offer())
    near_lyon = (LYON[0] + 0.05, LYON[1])
    km = distances_km(offers, *near_lyon)
    assert km[0] == pytest.approx(geo.haversine_km(*near_lyon, *LYON))
    assert km[1] == pytest.approx(geo.haversine_km(*near_lyon, *PARIS))
    person = {"age": 20, "disability": False, "radius_km": 10.0, "at": AT}
    mask = eligible(offers, lat=near_lyon[0], lon=near_lyon[1], **person)
    assert mask.tolist() == [True, False]
    assert ineligibility_reasons(offers, 0, lat=near_lyon[0], lon=near_lyon[1], **person) == []
    far = ineligibility_reasons(offers, 0, lat=MARSEILLE[0], lon=MARSEILLE[1], **person)
    lyon_marseille = geo.haversine_km(*LYON, *MARSEILLE)  # the nearest address is Lyon
    assert far == [f"on-site offer {lyon_marseille:.1f} km away, beyond the 10 km radius"]
    pairs = pair_distances_km(
        offers, np.array([0, 1, 0]), np.array([near_lyon[0]] * 3), near_lyon[1]
    )
    np.testing.assert_allclose(pairs, [km[0], km[1], km[0]])
    # Which address: Lyon is the first other point of offer 0; Paris its own (a tie with
    # its Paris address goes to the own point); an unplaced person has none.
    km, which = nearest_addresses(
        offers,
        np.array([0, 0, 1, 0]),
        [near_lyon[0], PARIS[0], near_lyon[0], np.nan],
        [near_lyon[1], PARIS[1], near_lyon[1], np.nan],
    )
    assert which.tolist() == [0, -1, -1, -1]
    np.testing.assert_allclose(km[:3], [pairs[0], 0.0, pairs[1]])
    assert np.isnan(km[3])
    np.testing.assert_allclose(offers.more_points[0], [LYON])


def test_the_matrix_and_the_catalog_agree_with_one_person_at_a_time() -> None:
    rows = [_paris_and_lyon(), offer(), _with_addresses(_address(*MARSEILLE))]
    frame = pd.DataFrame([{**row, "id": f"o{i}"} for i, row in enumerate(rows)])
    table = schema.conform(frame, "offers").to_pandas()
    offers = offer_arrays(table)
    catalog = Catalog._assemble(table, offers, "addresses")  # file order kept
    people = [(LYON[0] + 0.05, LYON[1]), PARIS, MARSEILLE, (45.0, 0.0)]
    profiles = ProfileArrays(
        ids=np.array(["a", "b", "c", "d"], dtype=object),
        age=np.full(4, 20.0),
        lat=np.array([p[0] for p in people]),
        lon=np.array([p[1] for p in people]),
        radius_km=np.full(4, 10.0),
        disability=np.zeros(4, dtype=bool),
        has_quiz=np.zeros(4, dtype=bool),
        quiz_domains=np.zeros((4, 1), dtype=bool),
        quiz_activities=np.zeros((4, 1), dtype=bool),
        rhythm=np.full(4, -1, dtype=np.int16),
        motivations=np.zeros((4, 1), dtype=bool),
    )
    matrix = eligible_matrix(offers, profiles, AT)
    assert matrix.tolist() == [
        [True, False, False],
        [True, True, True],  # the third offer is in Paris and in Marseille
        [False, False, True],
        [False, False, False],
    ]
    for i, (lat, lon) in enumerate(people):
        rows = catalog.candidate_rows(lat, lon, 10.0, 20.0, False, AT)
        assert rows.tolist() == np.flatnonzero(matrix[i]).tolist()


def _export(tmp_path: Path, missions: list[dict[str, Any]]) -> Path:
    path = tmp_path / "missions.json"
    path.write_text(json.dumps(missions), encoding="utf-8")
    return path


def _mission(mission_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": mission_id,
        "title": "Mission",
        "domain": "sport",
        "type": "benevolat",
        "statusCode": "ACCEPTED",
        "createdAt": "2025-01-01T00:00:00Z",
        **fields,
    }


def test_loader_keeps_every_address_and_places_those_without_coordinates(tmp_path: Path) -> None:
    missions = [
        _mission(
            "two",
            addresses=[
                {"city": "Paris", "postalCode": "75011", "location": {"lat": 48.86, "lon": 2.38}},
                {"city": "Arles", "postalCode": "13200"},  # no coordinates: placed
                {"city": "Nowhere", "location": {"lat": "x", "lon": 2}},  # unreadable: unplaced
            ],
        ),
        _mission("by-code", postalCode="13200"),
        _mission("by-city", city="Saint-Étienne"),
        _mission("department-only", departmentCode="13"),
        _mission("own", location={"lat": 45.0, "lon": 5.0}, postalCode="13200"),
    ]
    result = load_offers(_export(tmp_path, missions))
    table = result.table.set_index("id")
    arles = places.locate(postal_code="13200")
    assert (table.loc["by-code", "lat"], table.loc["by-code", "lon"]) == (arles.lat, arles.lon)
    assert table["locationSource"].to_dict() == {
        "two": None,
        "by-code": "postal_code",
        "by-city": "commune",
        "department-only": None,  # a department alone places nothing
        "own": None,
    }
    assert np.isnan(table.loc["department-only", "lat"])
    assert result.warnings["placed_by_postal_code_or_city"] == 2
    addresses = table.loc["two", "addresses"]
    assert [a["city"] for a in addresses] == ["Paris", "Arles", "Nowhere"]
    assert addresses[1]["lat"] == arles.lat and addresses[1]["locationSource"] == "commune"
    assert addresses[2]["lat"] is None
    # Written and read back, the offer's other placed address is a point of its arrays.
    path = tmp_path / "offers.parquet"
    schema.write_table(result.table, "offers", path)
    arrays = offer_arrays(schema.read_table(path))
    row = list(arrays.ids).index("two")
    np.testing.assert_allclose(arrays.more_points[row], [[arles.lat, arles.lon]])
    assert arrays.more_points[list(arrays.ids).index("by-code")] is None


def test_profiles_take_insee_codes_and_city_names() -> None:
    with pytest.raises(ValueError, match="insee_code"):
        Profile(insee_code="1300")
    assert Profile(city="Arles", insee_code="13004").city == "Arles"


def test_the_rules_score_an_offer_by_its_nearest_address(tmp_path: Path) -> None:
    """Offline (`incumbent_scores`) and served (the rules fallback), an offer in Paris and
    Lyon scores for a visitor in Lyon as an offer in Lyon alone does."""
    from recsys.models.incumbent import incumbent_scores
    from serving.engine import Engine
    from serving.schemas import RankRequest
    from serving.settings import Settings

    rows = [_paris_and_lyon(), {**offer(), "lat": LYON[0], "lon": LYON[1]}]
    frame = pd.DataFrame([{**row, "id": f"o{i}"} for i, row in enumerate(rows)])
    table = schema.conform(frame, "offers").to_pandas()
    near_lyon = (LYON[0] + 0.05, LYON[1])
    person = ProfileArrays(
        ids=np.array(["a"], dtype=object),
        age=np.array([20.0]),
        lat=np.array([near_lyon[0]]),
        lon=np.array([near_lyon[1]]),
        radius_km=np.array([10.0]),
        disability=np.zeros(1, dtype=bool),
        has_quiz=np.zeros(1, dtype=bool),
        quiz_domains=np.zeros((1, 9), dtype=bool),
        quiz_activities=np.zeros((1, 6), dtype=bool),
        rhythm=np.full(1, -1, dtype=np.int16),
        motivations=np.zeros((1, 8), dtype=bool),
    )
    scores = incumbent_scores(person, offer_arrays(table))
    # Geography 1 − 5.6/10 from either offer's Lyon point; Paris (0) would give 0.25 in all.
    # The two distances come from haversine and its vector form: equal to float precision.
    assert scores[0, 0] == pytest.approx(scores[0, 1], rel=1e-12)
    assert scores[0, 1] == pytest.approx((0.3 * 0.5 + 0.3 * (1 - 5.56 / 10)) / 0.6, abs=0.01)
    path = tmp_path / "offers.parquet"
    schema.write_table(table, "offers", path)
    engine = Engine.start(Settings(model_uri=str(tmp_path / "none"), catalog=path))
    profile = Profile(age=20, lat=near_lyon[0], lon=near_lyon[1], radius_km=10)
    items = engine.rank(RankRequest(profile=profile, k=5), at=AT).response.items
    assert {item.offer_id for item in items} == {"o0", "o1"}
    assert items[0].score == pytest.approx(items[1].score, abs=1e-6)  # rounded to 6 places
    assert items[0].distance_km == items[1].distance_km == 5.6
