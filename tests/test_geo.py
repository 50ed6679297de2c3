"""Geography: distances, postal codes, the departments and cities tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys import geo

PARIS = (48.8566, 2.3522)
LYON = (45.7640, 4.8357)
MARSEILLE = (43.2965, 5.3698)


def test_haversine_known_distances() -> None:
    assert geo.haversine_km(*PARIS, *LYON) == pytest.approx(392, abs=5)
    assert geo.haversine_km(*PARIS, *MARSEILLE) == pytest.approx(661, abs=5)
    assert geo.haversine_km(*PARIS, *PARIS) == 0.0
    # A quarter of the equator: a quarter of the circumference.
    quarter = geo.haversine_km(0.0, 0.0, 0.0, 90.0)
    assert quarter == pytest.approx(math.pi * geo.EARTH_RADIUS_KM / 2, rel=1e-12)


def test_haversine_broadcasts_and_propagates_nan() -> None:
    lats = np.array([[LYON[0]], [MARSEILLE[0]]])  # (2, 1)
    lons = np.array([[LYON[1]], [MARSEILLE[1]]])
    out = geo.haversine_km(lats, lons, np.array([PARIS[0], np.nan]), np.array([PARIS[1], 0.0]))
    assert out.shape == (2, 2)
    assert out[0, 0] == pytest.approx(geo.haversine_km(*LYON, *PARIS))
    assert out[1, 0] == pytest.approx(geo.haversine_km(*MARSEILLE, *PARIS))
    assert np.isnan(out[:, 1]).all()
    assert np.isnan(geo.haversine_km(math.nan, 2.0, 48.0, 2.0))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(-90, 90), st.floats(-180, 180)),
        min_size=1,
        max_size=6,
    ),
    st.floats(0, 0.01),  # a few metres to a kilometre away
)
def test_pairwise_km_is_haversine(points: list[tuple[float, float]], offset: float) -> None:
    """The vector form agrees with haversine, near points and far."""
    lat, lon = np.array(points).T
    near_lat = np.clip(lat + offset, -90, 90)
    km = geo.pairwise_km(geo.unit_vectors(lat, lon), geo.unit_vectors(near_lat, lon))
    expected = geo.haversine_km(lat[:, None], lon[:, None], near_lat[None, :], lon[None, :])
    np.testing.assert_allclose(km, expected, rtol=1e-9, atol=1e-9)


def test_pairwise_km_by_hand_and_with_unknown_places() -> None:
    quarter = geo.pairwise_km(geo.unit_vectors([0.0], [0.0]), geo.unit_vectors([0.0], [90.0]))
    assert quarter[0, 0] == pytest.approx(math.pi * geo.EARTH_RADIUS_KM / 2, rel=1e-12)
    opposite = geo.pairwise_km(geo.unit_vectors([0.0], [0.0]), geo.unit_vectors([0.0], [180.0]))
    assert opposite[0, 0] == pytest.approx(math.pi * geo.EARTH_RADIUS_KM, rel=1e-9)
    unknown = geo.pairwise_km(
        geo.unit_vectors([np.nan], [2.0]), geo.unit_vectors(*np.array([PARIS]).T)
    )
    assert np.isnan(unknown).all()


@pytest.mark.parametrize(
    ("postal_code", "department"),
    [
        ("75011", "75"),
        ("01000", "01"),
        ("20100", "2A"),
        ("20199", "2A"),
        ("20200", "2B"),
        ("20600", "2B"),
        ("2A004", "2A"),
        ("97411", "974"),
        ("97600", "976"),
        (" 69001 ", "69"),
        ("abc", None),
        ("7501", None),
        ("750011", None),
        ("97500", None),  # Saint-Pierre-et-Miquelon: not one of the 101 departments
        ("00100", None),
        ("", None),
        (None, None),
    ],
)
def test_department_of_postal_code(postal_code: str | None, department: str | None) -> None:
    assert geo.department_of_postal_code(postal_code) == department
    vectorised = geo.departments_of_postal_codes(pd.Series([postal_code], dtype=object))
    assert (None if pd.isna(vectorised.iloc[0]) else vectorised.iloc[0]) == department


_EDGE_CODES = ["20000", "20199", "20200", "20999", "2B123", "97100", "97411", "97500", "98000"]


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.from_regex(r"\A(\d{5}|2[AB]\d{3}|20\d{3}|97\d{3}|\d{1,6}|[a-zA-Z]{0,3})\Z"),
            st.sampled_from(_EDGE_CODES),
        ),
        max_size=20,
    )
)
def test_vectorised_departments_match_scalar(codes: list[str]) -> None:
    vectorised = geo.departments_of_postal_codes(pd.Series(codes, dtype=object))
    scalar = [geo.department_of_postal_code(code) for code in codes]
    assert [None if pd.isna(v) else v for v in vectorised] == scalar


def test_departments_table() -> None:
    table = geo.departments()
    assert len(table) == 101
    assert table["code"].is_unique
    assert {"2A", "2B", "971", "972", "973", "974", "976"} <= set(table["code"])
    assert "20" not in set(table["code"])
    assert set(table["region_code"]) == set(geo.REGION_NAMES)
    assert (table["region_name"] == table["region_code"].map(geo.REGION_NAMES)).all()
    metropolitan = table[table["code"].str.len() == 2]
    assert metropolitan["lat"].between(41.3, 51.1).all()
    assert metropolitan["lon"].between(-5.2, 9.6).all()
    assert geo.region_name("11") == "Île-de-France"


def test_region_name_rejects_unknown_code() -> None:
    with pytest.raises(ValueError, match="region_code"):
        geo.region_name("99")


def test_cities_table() -> None:
    cities = geo.cities()
    assert len(cities) == 692
    assert cities["geonameid"].is_unique
    assert set(cities["department_code"]) <= set(geo.departments()["code"])
    codes = cities["postal_code"]
    assert (codes.str.len() == 5).all()
    assert codes.str.fullmatch(r"\d{5}").all()
    # Every synthetic postal code maps back to its city's department.
    assert (codes.map(geo.department_of_postal_code) == cities["department_code"]).all()
    # One department-level code (<dep>000, 20200 for 2B) per department: its biggest city.
    heads = cities[codes.str.endswith("000") | (codes == "20200")]
    assert heads["department_code"].is_unique
    assert set(heads["department_code"]) == set(cities["department_code"])
    # A city's department belongs to the city's region.
    regions = geo.departments().set_index("code")["region_code"]
    assert (cities["department_code"].map(regions) == cities["region_code"]).all()
    assert cities["region_name"].notna().all()
    assert cities["population"].is_monotonic_decreasing


@pytest.mark.parametrize(
    ("name", "department", "postal_code"),
    [
        ("Paris", "75", "75000"),
        ("Marseille", "13", "13000"),
        ("Ajaccio", "2A", "20000"),
        ("Bastia", "2B", "20200"),
        ("Argenteuil", "95", None),  # hand-checked: nearer Nanterre than Cergy
        ("Le Havre", "76", "76000"),  # hand-checked: nearer Caen than Rouen, and 76's biggest
        ("Bayonne", "64", None),
        ("Versailles", "78", None),  # by the nearest-prefecture rule
    ],
)
def test_city_departments(name: str, department: str, postal_code: str | None) -> None:
    city = geo.cities().set_index("name").loc[name]
    assert city["department_code"] == department
    if postal_code is not None:
        assert city["postal_code"] == postal_code


def test_city_overrides_are_consistent() -> None:
    overrides = geo.city_department_overrides()
    cities = geo.cities().set_index("geonameid")
    assert overrides.index.is_unique
    assert set(overrides.index) <= set(cities.index)
    assert (cities.loc[overrides.index, "department_code"] == overrides).all()
