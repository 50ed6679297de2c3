"""Where a visitor or an offer is, from what they give: INSEE code, commune name, postal code.

Source: La Poste's official postal-code base (Licence Ouverte / Etalab 2.0; "Source : La
Poste, base officielle des codes postaux"), shipped as `recsys/data/communes.csv.gz` (one row
per INSEE code and postal code, with the commune's reference point; rebuilt from the published
CSV by `scripts/build_communes.py`, attribution in `recsys/data/ATTRIBUTION.md`). It covers
metropolitan France, Corsica and the overseas departments and territories.

Placement, most precise source first (`locate`):

1. coordinates given by the caller (not resolved here);
2. `insee`: the commune of an INSEE code (2A004 is Ajaccio);
3. `commune`: a commune name, matched despite case, accents, hyphens, apostrophes and
   "St"/"Ste" for "Saint"/"Sainte"; a name several communes share is settled by the postal
   code or the department when given, else refused (Saint-Denis is in the 93 and in La
   Réunion); "Paris", "Lyon" and "Marseille" are the centroid of their arrondissements;
4. `postal_code`: the centroid of the reference points of the code's communes, named after
   the commune nearest to it (13200 is Arles; 33680 covers Lacanau, Le Porge...);
5. `department`: the department's prefecture (`recsys.geo.departments`), the last resort for
   a department code alone or a well-formed postal code La Poste does not list (a CEDEX).

Centroids are the normalised mean of unit vectors, so that points on both sides of the
antimeridian (Wallis-et-Futuna) average correctly.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Final, Literal

import numpy as np
import pandas as pd

from recsys import geo

COMMUNES_FILE: Final = geo.DATA_DIR / "communes.csv.gz"

Source = Literal["coordinates", "insee", "commune", "postal_code", "department"]

_SAINT = {"ST": "SAINT", "STE": "SAINTE"}
_NOT_LETTERS = re.compile(r"[^A-Z0-9]+")
_ARRONDISSEMENT = re.compile(r"^(?P<city>PARIS|LYON|MARSEILLE) \d{2}$")
# Words a readable name writes in lower case after its first word ("Saint-Denis-les-Bourg").
_LOWER_WORDS = frozenset(
    {"LE", "LA", "LES", "L", "DE", "DU", "DES", "D", "SUR", "SOUS", "EN", "ET", "AUX", "AU"}
    | {"LEZ", "DI"}
)
_ARTICLES = frozenset({"LE", "LA", "LES", "L"})


@dataclass(frozen=True)
class Placement:
    """A place and how it was found.

    Attributes:
        lat, lon: degrees.
        source: what placed it (`Source`).
        commune: display name of the commune (or of the one nearest a postal code's
            centroid; the city for a department's prefecture), None when unknown.
        insee: INSEE code of that commune, None for a department or a whole city.
    """

    lat: float
    lon: float
    source: Source
    commune: str | None = None
    insee: str | None = None


def normalise_name(name: str) -> str:
    """A commune name as the index keys it: upper case, no accents, words separated by one
    space, "ST"/"STE" spelled out ("Saint-Étienne", "ST ETIENNE", "saint etienne" agree)."""
    text = unicodedata.normalize("NFKD", name)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).upper()
    text = text.replace("Œ", "OE").replace("Æ", "AE")
    words = _NOT_LETTERS.sub(" ", text).split()
    return " ".join(_SAINT.get(word, word) for word in words)


def display_name(name: str) -> str:
    """A readable commune name from La Poste's upper-case one: "SAINT DENIS LES BOURG"
    becomes "Saint-Denis-les-Bourg", "LE MANS" "Le Mans" (accents cannot be recovered)."""
    words = name.split()
    if not words:
        return name
    out: list[str] = []
    lead = words[0] in _ARTICLES and len(words) > 1
    for i, word in enumerate(words):
        if word.isdigit():
            out.append(" " + word)
            continue
        shown = word.lower() if (i > 0 and word in _LOWER_WORDS) else word.capitalize()
        if i == 0:
            out.append(shown)
        elif lead and i == 1:
            out.append((" " if words[0] != "L" else "'") + shown)
        else:
            out.append(("'" if words[i - 1] in ("L", "D") and i > 0 else "-") + shown)
    return "".join(out)


@cache
def communes() -> pd.DataFrame:
    """The shipped table: insee, postal_code, name (La Poste's spelling), lat, lon.

    One row per (insee, postal_code). Cached: treat as read-only.
    """
    return pd.read_csv(
        COMMUNES_FILE,
        dtype={"insee": str, "postal_code": str, "name": str},
        keep_default_na=False,
    )


@dataclass(frozen=True)
class _Index:
    by_insee: dict[str, Placement]
    by_postal_code: dict[str, Placement]
    insee_of_postal_code: dict[str, frozenset[str]]
    by_name: dict[str, tuple[str, ...]]  # normalised name -> INSEE codes
    cities: dict[str, Placement]  # PARIS, LYON, MARSEILLE: their arrondissements' centroid


def _centroids(xyz: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """(n_groups, 3) unit vectors: the normalised mean of each group's points `xyz`."""
    sums = np.zeros((n_groups, 3))
    np.add.at(sums, groups, xyz)
    return sums / np.linalg.norm(sums, axis=1, keepdims=True)


def _degrees(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lat, lon) in degrees of unit vectors, `geo.unit_vectors` inverted."""
    lat = np.degrees(np.arcsin(np.clip(xyz[:, 2], -1.0, 1.0)))
    return lat, np.degrees(np.arctan2(xyz[:, 1], xyz[:, 0]))


@cache
def _index() -> _Index:
    table = communes()
    one = table.drop_duplicates("insee")
    by_insee = {
        insee: Placement(float(lat), float(lon), "insee", display_name(name), insee)
        for insee, name, lat, lon in zip(
            one["insee"], one["name"], one["lat"], one["lon"], strict=True
        )
    }
    by_name: dict[str, list[str]] = defaultdict(list)
    arrondissements: dict[str, list[str]] = defaultdict(list)
    for insee, name in zip(one["insee"], one["name"], strict=True):
        key = normalise_name(name)
        by_name[key].append(insee)
        match = _ARRONDISSEMENT.match(key)
        if match:
            arrondissements[match["city"]].append(insee)
    cities = {}
    for city, codes in arrondissements.items():
        points = [by_insee[code] for code in codes]
        xyz = geo.unit_vectors([p.lat for p in points], [p.lon for p in points])
        lat, lon = _degrees(_centroids(xyz, np.zeros(len(points), dtype=np.int64), 1))
        cities[city] = Placement(float(lat[0]), float(lon[0]), "commune", display_name(city))
    # Per postal code: the centroid of its communes, and the commune nearest to it.
    xyz = geo.unit_vectors(table["lat"].to_numpy(float), table["lon"].to_numpy(float))
    codes, code_names = pd.factorize(table["postal_code"])
    centres = _centroids(xyz, codes, len(code_names))
    centre_lat, centre_lon = _degrees(centres)
    gap = np.linalg.norm(xyz - centres[codes], axis=1)
    nearest = pd.Series(gap).groupby(codes).idxmin().to_numpy()
    insee = table["insee"].to_numpy(dtype=object)
    by_postal_code = {
        str(code): Placement(
            float(lat), float(lon), "postal_code", by_insee[insee[row]].commune, insee[row]
        )
        for code, lat, lon, row in zip(
            code_names, centre_lat, centre_lon, nearest[np.arange(len(code_names))], strict=True
        )
    }
    insee_of_postal_code = {
        str(code): frozenset(group)
        for code, group in pd.Series(insee).groupby(table["postal_code"].to_numpy())
    }
    return _Index(
        by_insee=by_insee,
        by_postal_code=by_postal_code,
        insee_of_postal_code=insee_of_postal_code,
        by_name={key: tuple(codes) for key, codes in by_name.items()},
        cities=cities,
    )


def _clean(value: object) -> str | None:
    """A code or name as text, None when missing or blank (None, NaN, pd.NA, "")."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value or None


def _department_of_insee(insee: str) -> str:
    return insee[:3] if insee.startswith("97") else insee[:2]


def by_insee(insee: object) -> Placement | None:
    """The commune of an INSEE code (case and spaces ignored), None when unknown."""
    code = _clean(insee)
    return None if code is None else _index().by_insee.get(code.upper())


def by_postal_code(postal_code: object) -> Placement | None:
    """The centroid of a postal code's communes, None when La Poste does not list it."""
    code = _clean(postal_code)
    return None if code is None else _index().by_postal_code.get(code)


def by_name(
    name: object, postal_code: object = None, department_code: object = None
) -> Placement | None:
    """The commune called `name`, settled by the postal code or department when several
    communes share the name; None when unknown or still ambiguous."""
    text = _clean(name)
    if text is None:
        return None
    key = normalise_name(text)
    index = _index()
    candidates = index.by_name.get(key, ())
    code = _clean(postal_code)
    if code is not None and len(candidates) != 1:
        in_code = index.insee_of_postal_code.get(code, frozenset())
        narrowed = tuple(c for c in candidates if c in in_code)
        if narrowed:
            candidates = narrowed
    department = geo.department_code(department_code) or geo.department_of_postal_code(code)
    if department is not None and len(candidates) > 1:
        narrowed = tuple(c for c in candidates if _department_of_insee(c) == department)
        if narrowed:
            candidates = narrowed
    if len(candidates) == 1:
        found = index.by_insee[candidates[0]]
        return Placement(found.lat, found.lon, "commune", found.commune, found.insee)
    if not candidates:
        return index.cities.get(key)
    return None


def by_department(department_code: object) -> Placement | None:
    """A department's prefecture (codes as exports spell them: "1", "01", "2a", "974")."""
    code = geo.department_code(department_code)
    if code is None:
        return None
    lat, lon = geo.prefectures()[code]
    return Placement(lat, lon, "department", None, None)


@lru_cache(maxsize=65_536)
def locate(
    postal_code: str | None = None,
    insee: str | None = None,
    commune: str | None = None,
    department_code: str | None = None,
) -> Placement | None:
    """The best placement from what is given (module docstring's order), None when nothing
    can be placed. Missing values (None, NaN, pd.NA, blanks) count as not given.

    A postal code La Poste does not list falls back on its department's prefecture; an
    INSEE-style code given as a postal code ("2A004") is read as the INSEE code it is.
    """
    found = by_insee(insee)
    if found is None:
        found = by_name(commune, postal_code, department_code)
    if found is None:
        found = by_postal_code(postal_code)
    if found is None and _clean(postal_code) is not None:
        found = by_insee(postal_code)
    if found is None:
        found = by_department(geo.department_of_postal_code(_clean(postal_code)))
    if found is None:
        found = by_department(department_code)
    return found


def locate_many(
    postal_codes: pd.Series,
    communes: pd.Series | None = None,
    department_codes: pd.Series | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised `locate`: (lat, lon, source) arrays, NaN and None where nothing places.

    Distinct combinations are placed once, so a table of any size costs one `locate` per
    distinct place.
    """
    n = len(postal_codes)
    none = pd.Series([None] * n, index=postal_codes.index, dtype=object)
    frame = pd.DataFrame(
        {
            "postal_code": postal_codes.astype(object),
            "commune": (communes if communes is not None else none).astype(object),
            "department": (department_codes if department_codes is not None else none).astype(
                object
            ),
        }
    )
    frame = frame.map(_clean)
    codes, uniques = pd.factorize(
        pd.MultiIndex.from_frame(frame.fillna("\x00")), use_na_sentinel=False
    )
    lat = np.full(len(uniques), np.nan)
    lon = np.full(len(uniques), np.nan)
    source = np.full(len(uniques), None, dtype=object)
    for i, (postal, name, department) in enumerate(uniques):
        found = locate(
            postal_code=None if postal == "\x00" else postal,
            commune=None if name == "\x00" else name,
            department_code=None if department == "\x00" else department,
        )
        if found is not None:
            lat[i], lon[i], source[i] = found.lat, found.lon, found.source
    return lat[codes], lon[codes], source[codes]
