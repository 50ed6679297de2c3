"""Placement from La Poste's postal-code base: postal codes, INSEE codes, commune names."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from recsys import geo, places


def test_every_postal_code_is_placed_near_its_communes() -> None:
    """Over the whole shipped table: each code's placement against its nearest commune."""
    table = places.communes()
    placed = pd.DataFrame(
        [
            (code, found.lat, found.lon, found.source)
            for code in table["postal_code"].unique()
            for found in [places.locate(postal_code=code)]
        ],
        columns=["postal_code", "lat", "lon", "source"],
    )
    assert (placed["source"] == "postal_code").all()  # none unplaced, none by department
    pairs = table.merge(placed, on="postal_code", suffixes=("", "_placed"))
    pairs["km"] = geo.haversine_km(
        pairs["lat"], pairs["lon"], pairs["lat_placed"], pairs["lon_placed"]
    )
    error = pairs.groupby("postal_code")["km"].min()
    assert len(error) == table["postal_code"].nunique() == 6328
    assert error.median() <= 3.0
    # A code of one commune is placed at that commune exactly (to the table's 5 decimals).
    single = table.groupby("postal_code")["insee"].nunique() == 1
    assert error[single[single].index].max() < 1e-6


@pytest.mark.parametrize(
    ("postal_code", "commune", "lat", "lon"),
    [
        ("13200", "Arles", 43.5469, 4.6622),  # not Marseille, 73 km away
        ("20000", "Ajaccio", 41.9348, 8.7013),  # Corsica
        ("20200", "Ville-di-Pietrabugno", 42.6865, 9.4237),  # Bastia and its hills
        ("97400", "Saint-Denis", -20.9330, 55.4469),  # La Réunion
        ("97600", "Koungou", -12.7871, 45.1955),  # Mayotte: Mamoudzou and Koungou
        ("97300", "Cayenne", 5.0217, -52.5013),  # Guyane (the commune's reference point)
    ],
)
def test_postal_codes(postal_code: str, commune: str, lat: float, lon: float) -> None:
    found = places.locate(postal_code=postal_code)
    assert found is not None and found.source == "postal_code" and found.commune == commune
    assert geo.haversine_km(found.lat, found.lon, lat, lon) < 5.0


def test_a_code_of_several_communes_is_their_centroid() -> None:
    table = places.communes()
    rows = table[table["postal_code"] == "33680"]
    assert rows["insee"].nunique() >= 3  # Lacanau, Le Porge, Saumos...
    found = places.locate(postal_code="33680")
    xyz = geo.unit_vectors(rows["lat"], rows["lon"]).mean(axis=0)
    xyz /= np.linalg.norm(xyz)
    assert found.lat == pytest.approx(math.degrees(math.asin(xyz[2])), abs=1e-9)
    assert found.lon == pytest.approx(math.degrees(math.atan2(xyz[1], xyz[0])), abs=1e-9)
    assert found.commune in {places.display_name(n) for n in rows["name"]}


@pytest.mark.parametrize(
    "name", ["Saint-Étienne", "ST ETIENNE", "saint etienne", "St-Étienne", " Saint Etienne "]
)
def test_names_despite_accents_hyphens_and_saint(name: str) -> None:
    found = places.locate(commune=name)
    assert found is not None and (found.source, found.insee) == ("commune", "42218")


def test_homonyms_are_settled_by_postal_code_or_department() -> None:
    assert places.by_name("Saint-Denis") is None  # 93, La Réunion and more: ambiguous
    assert places.locate(commune="Saint-Denis", postal_code="93200").insee == "93066"
    assert places.locate(commune="Saint-Denis", department_code="974").insee == "97411"
    # Unresolvable, the postal code places the visitor.
    assert places.locate(commune="Saint-Denis", postal_code="13200").commune == "Arles"


def test_insee_code_and_whole_cities() -> None:
    assert places.locate(insee="2A004").commune == "Ajaccio"
    assert places.locate(postal_code="2A004").source == "insee"  # typed where a code goes
    assert places.locate(insee="13004", postal_code="75011").commune == "Arles"  # most precise
    paris = places.locate(commune="Paris")
    assert (paris.source, paris.commune) == ("commune", "Paris")
    assert geo.haversine_km(paris.lat, paris.lon, 48.8566, 2.3522) < 3.0
    assert places.locate(commune="L'Île-des-Pins").source == "commune"  # "(L')" in the base


def test_fallbacks_and_nothing() -> None:
    cedex = places.locate(postal_code="75099")  # well formed, not a distribution code
    assert cedex.source == "department" and cedex.lat == geo.prefectures()["75"][0]
    assert places.locate(department_code="2a").source == "department"
    assert places.locate() is None
    assert places.locate(postal_code="abc", commune="Nowhere-sur-Mer") is None
    assert places.locate(department_code="99") is None


def test_locate_many_matches_locate() -> None:
    postal = pd.Series(["13200", None, "xyz", "13200", pd.NA, None])
    communes = pd.Series([None, "Arles", None, None, None, float("nan")])
    departments = pd.Series([None, None, "69", None, None, None])
    lat, lon, source = places.locate_many(postal, communes, departments)
    assert source.tolist() == ["postal_code", "commune", "department", "postal_code", None, None]
    arles = places.locate(postal_code="13200")
    assert (lat[0], lon[0]) == (arles.lat, arles.lon)
    assert np.isnan(lat[4:]).all()


def test_display_names() -> None:
    assert places.display_name("SAINT DENIS LES BOURG") == "Saint-Denis-les-Bourg"
    assert places.display_name("LE MANS") == "Le Mans"
    assert places.display_name("L ISLE ADAM") == "L'Isle-Adam"
    assert places.display_name("PARIS 01") == "Paris 01"
