"""The geography index gives the geography rule of `recsys.eligibility`, its reference, on
random catalogs: offers with several addresses (some unplaced), remote and unplaced offers,
people on an address, at its radius's edge, unplaced, with radii from a city block to past
the antipode."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from recsys.arrays import OfferArrays, offer_arrays
from recsys.eligibility import geography_mask, offer_distances_km
from recsys.geo import EARTH_RADIUS_KM
from recsys.geo_index import GeographyIndex
from tests.fixtures import make_offers_frame, random_offers_frame

NOW = pd.Timestamp("2025-06-01", tz="UTC")
# Past the antipode (π R ≈ 20,015 km) every placed address is within reach.
RADII = [0.5, 5.0, 20.0, 150.0, 1000.0, 20_000.0, 25_000.0, math.inf]
# Off an address's exact distance d by a billionth of it or a centimetre: far above where the
# index's cosine test and the haversine may round apart (R²·1e-16 / d: 4.5 µm at 1 km).
EDGE, EDGE_KM = 1e-9, 1e-5


def _people(
    rng: np.random.Generator, offers: OfferArrays, n: int
) -> list[tuple[float, float, float]]:
    """(lat, lon, radius) of random people: anywhere in the catalog's area, on an offer's
    own point or another address, unplaced; some radii just inside and just outside the
    distance of some offer's nearest address."""
    points = np.column_stack([offers.lat, offers.lon])
    points = points[np.isfinite(points).all(axis=1)]
    others = np.vstack([p for p in offers.more_points if p is not None])
    people = []
    for _ in range(n):
        draw = rng.random()
        if draw < 0.15:
            lat, lon = math.nan, math.nan
        elif draw < 0.35:
            lat, lon = points[rng.integers(len(points))]
        elif draw < 0.5:
            lat, lon = others[rng.integers(len(others))]
        else:
            lat, lon = rng.uniform(42.5, 50.5), rng.uniform(-1.5, 7.5)
        radius = float(rng.choice(RADII))
        if math.isfinite(lat) and rng.random() < 0.4:  # at the edge of some offer's reach
            distances = offer_distances_km(offers, lat, lon)
            target = rng.choice(distances[np.isfinite(distances) & (distances > 2 * EDGE_KM)])
            margin = max(target * EDGE, EDGE_KM)
            radius = float(target + margin if rng.random() < 0.5 else target - margin)
        people.append((float(lat), float(lon), radius))
    return people


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_index_gives_the_reference_geography(seed: int) -> None:
    rng = np.random.default_rng(seed)
    offers = offer_arrays(random_offers_frame(rng, 500, NOW))
    assert sum(p is not None for p in offers.more_points) > 50  # several addresses are common
    index = GeographyIndex.build(offers)
    people = _people(rng, offers, 80)
    lat, lon, radius = (np.array(column) for column in zip(*people, strict=True))
    together = index.mask(lat, lon, radius)
    everything = np.ones(len(offers), dtype=bool)
    among = rng.random(len(offers)) < 0.7  # what the other rules kept
    for i, (person_lat, person_lon, person_radius) in enumerate(people):
        expected = geography_mask(offers, person_lat, person_lon, person_radius)
        np.testing.assert_array_equal(together[i], expected, err_msg=str(people[i]))
        alone = index.mask(lat[i : i + 1], lon[i : i + 1], radius[i : i + 1])
        np.testing.assert_array_equal(alone[0], expected)
        for kept in (everything, among):
            rows = index.kept_rows(
                person_lat,
                person_lon,
                person_radius,
                kept,
                np.flatnonzero(kept),
                np.flatnonzero(kept & index.anywhere),
            )
            np.testing.assert_array_equal(rows, np.flatnonzero(kept & expected))


def test_an_offer_is_within_reach_by_any_of_its_addresses() -> None:
    """By hand, for a person on the equator at 2.9°E: offer 0 at (1°N, 0°) with another
    address at (0°, 3°E), 0.1° of longitude away (R·π/1800 = 11.12 km); offer 1 at (2°N, 0°),
    about 389 km away; offer 2 fully remote; offer 3 on site without coordinates."""
    frame = make_offers_frame(
        4,
        lat=[1.0, 2.0, 50.0, np.nan],
        lon=[0.0, 0.0, 0.0, np.nan],
        remote=["no", "no", "full", "no"],
        addresses=[[_address(1.0, 0.0), _address(0.0, 3.0)], None, None, None],
    )
    index = GeographyIndex.build(offer_arrays(frame))
    assert index.rows.tolist() == [0, 0, 1]  # by latitude: 0° and 1° (offer 0), 2° (offer 1)
    assert EARTH_RADIUS_KM * math.pi / 1800 == pytest.approx(11.12, abs=0.005)
    person = np.array([0.0]), np.array([2.9])
    masks = [index.mask(*person, np.array([km]))[0].tolist() for km in (11.0, 11.2, 400.0)]
    assert masks == [
        [False, False, True, False],
        [True, False, True, False],
        [True, True, True, False],
    ]
    unplaced = index.mask(np.array([np.nan]), np.array([np.nan]), np.array([5.0]))
    assert unplaced[0].tolist() == [True] * 4


def _address(lat: float, lon: float) -> dict[str, object]:
    return {
        "city": None,
        "postalCode": None,
        "departmentCode": None,
        "lat": lat,
        "lon": lon,
        "locationSource": None,
    }
