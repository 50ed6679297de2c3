"""The person a ranking request is for: stored profile, request fields, arrays and features.

A request names a known visitor (`user_id`), describes an anonymous one (`profile`), or both
(the request's fields then override the stored ones). Both become one canonical profile row
(the columns of `recsys.schema.PROFILE_SCHEMA`), the same row offline code would build, and the
row becomes what scoring needs:

* `row_arrays(row)`: the `ProfileArrays` of that row, equal to
  `recsys.arrays.profile_arrays(recsys.bundle.profiles_frame(...))` of it;
* `FeatureColumns.columns(row)`: the columns the bundle's `UserEncoder.transform` sets to 1
  for it.

Both are written without pandas because a one-row DataFrame costs milliseconds per request
(building the frame, then `transform`, then `profile_arrays`), several times the whole
ranking of a 10,000-offer catalog. Tests check equality with the pandas versions, so the
encoders stay the single definition of the features.
"""

from __future__ import annotations

import math
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys import geo, places, schema, taxonomy
from recsys.arrays import ProfileArrays
from recsys.encoding import UserEncoder
from recsys.schema import Profile

LIST_COLUMNS = ("quizDomains", "quizActivities", "quizMotivations")
# A request's commune, kept in its row beside the profile table's columns (which have none).
INSEE_KEY, CITY_KEY = "inseeCode", "city"
FLAG_COLUMNS = ("disability", "hasQuiz")
ONE_ROW_MATRICES = 4096  # feature combinations whose one-row matrix is kept

_QUIZ_DOMAIN_INDEX = {name: i for i, name in enumerate(taxonomy.QUIZ_DOMAINS)}
_QUIZ_ACTIVITY_INDEX = {name: i for i, name in enumerate(taxonomy.QUIZ_ACTIVITIES)}
_RHYTHM_INDEX = {name: i for i, name in enumerate(taxonomy.RHYTHMS)}
_MOTIVATION_INDEX = {name: i for i, name in enumerate(taxonomy.MOTIVATIONS)}


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA:
        return True
    return isinstance(value, float) and math.isnan(value)


def _text(value: Any) -> str | None:
    return None if _missing(value) else str(value)


def _number(value: Any) -> float:
    return math.nan if _missing(value) else float(value)


def _values(value: Any) -> list[str]:
    if isinstance(value, list | tuple | np.ndarray):
        return [str(item) for item in value if not _missing(item)]
    return []


def empty_row(user_id: str | None = None) -> dict[str, Any]:
    """The canonical row of someone we know nothing about."""
    row: dict[str, Any] = dict.fromkeys(schema.PROFILE_SCHEMA.names)
    row.update({name: [] for name in LIST_COLUMNS})
    row.update(dict.fromkeys(FLAG_COLUMNS, False))
    row["userId"] = user_id
    return row


@cache
def _region_names() -> dict[str, str]:
    table = geo.departments()
    return dict(zip(table["code"], table["region_name"], strict=True))


def _region_of(department: str | None) -> str | None:
    return None if department is None else _region_names().get(department)


def request_row(
    profile: Profile | None, user_id: str | None, stored: dict[str, Any] | None
) -> dict[str, Any]:
    """The canonical row of a request: the stored profile with the request's fields over it.

    Only the fields the request sets count (an omitted `disability` keeps the stored one).
    A new postal code, INSEE code or city without coordinates replaces the stored place (the
    row is then placed by `placement`); a new mobility without a radius replaces
    the stored radius by the mobility's.
    """
    row = dict(stored) if stored is not None else empty_row()
    row["userId"] = user_id
    if profile is None:
        return row
    given = profile.model_fields_set
    if "age" in given:
        row["age"] = profile.age
    if "postal_code" in given and profile.postal_code is not None:
        department = geo.department_of_postal_code(profile.postal_code)
        row.update(
            postalCode=profile.postal_code,
            departmentCode=department,
            region=_region_of(department),
            lat=None,
            lon=None,
        )
    for field, column in (("insee_code", INSEE_KEY), ("city", CITY_KEY)):
        if field in given and getattr(profile, field) is not None:
            row.update({column: getattr(profile, field), "lat": None, "lon": None})
    if "lat" in given:
        row["lat"], row["lon"] = profile.lat, profile.lon
    if "mobility" in given:
        row["mobility"] = profile.mobility
        row["radiusKm"] = None
    if "radius_km" in given:
        row["radiusKm"] = profile.radius_km
    if "disability" in given:
        row["disability"] = profile.disability
    if "quiz" in given and profile.quiz is not None:
        quiz = profile.quiz
        row.update(
            hasQuiz=True,
            quizDomains=list(quiz.domains),
            quizActivities=list(quiz.activities),
            quizRhythm=quiz.rhythm,
            quizMotivations=list(quiz.motivations),
        )
    return row


def _multi_hot(values: list[str], index: dict[str, int]) -> np.ndarray:
    out = np.zeros((1, len(index)), dtype=bool)
    for value in values:
        column = index.get(value)
        if column is not None:
            out[0, column] = True
    return out


def placement(row: dict[str, Any]) -> places.Placement | None:
    """Where the person of a canonical row is: their coordinates, else `recsys.places.locate`
    of their INSEE code, city, postal code and department; None when nothing places them.

    The same point as `recsys.arrays.profile_arrays` for a row without INSEE code or city
    (which profile tables do not have).
    """
    lat, lon = _number(row["lat"]), _number(row["lon"])
    if not (math.isnan(lat) or math.isnan(lon)):  # half a place is no place
        return places.Placement(lat, lon, "coordinates")
    return places.locate(
        postal_code=_text(row["postalCode"]),
        insee=_text(row.get(INSEE_KEY)),
        commune=_text(row.get(CITY_KEY)),
        department_code=_text(row["departmentCode"]),
    )


def row_arrays(row: dict[str, Any], where: places.Placement | None = None) -> ProfileArrays:
    """`ProfileArrays` of one canonical row, as `recsys.arrays.profile_arrays` builds them.

    `where` is the row's `placement` when the caller already has it.
    """
    where = placement(row) if where is None else where
    lat, lon = (where.lat, where.lon) if where is not None else (math.nan, math.nan)
    radius = _number(row["radiusKm"])
    if math.isnan(radius):
        radius = taxonomy.MOBILITY_RADIUS_KM.get(_text(row["mobility"]) or "", math.nan)
    if math.isnan(radius):
        radius = taxonomy.DEFAULT_RADIUS_KM
    rhythm = _RHYTHM_INDEX.get(_text(row["quizRhythm"]) or "", -1)
    return ProfileArrays(
        ids=np.array([row["userId"]], dtype=object),
        age=np.array([_number(row["age"])]),
        lat=np.array([lat]),
        lon=np.array([lon]),
        radius_km=np.array([radius]),
        disability=np.array(
            [bool(row["disability"]) if not _missing(row["disability"]) else False]
        ),
        has_quiz=np.array([bool(row["hasQuiz"]) if not _missing(row["hasQuiz"]) else False]),
        quiz_domains=_multi_hot(_values(row["quizDomains"]), _QUIZ_DOMAIN_INDEX),
        quiz_activities=_multi_hot(_values(row["quizActivities"]), _QUIZ_ACTIVITY_INDEX),
        rhythm=np.array([rhythm], dtype=np.int16),
        motivations=_multi_hot(_values(row["quizMotivations"]), _MOTIVATION_INDEX),
    )


class FeatureColumns:
    """The columns a fitted `UserEncoder` sets for one canonical row, without pandas.

    Reads the encoder's own block list and feature names, so a block added to the encoder is
    picked up here; `tests/test_service_engine.py` checks equality with `transform`.
    """

    def __init__(self, encoder: UserEncoder) -> None:
        self.n_features = encoder.n_features
        self._column = {name: i for i, name in enumerate(encoder.feature_names)}
        self._edges = np.asarray(encoder.config.age_band_edges, dtype=float)
        self._bands = encoder.age_bands
        # (feature-name prefix, profile column, kind) of each block, in the encoder's order.
        self._blocks = [(b.name, b.column, b.kind) for b in UserEncoder._BLOCKS]
        self._one_row = lru_cache(maxsize=ONE_ROW_MATRICES)(self._build_one_row)

    def columns(self, row: dict[str, Any]) -> np.ndarray:
        """Sorted int64 indices of the features set to 1 (every feature value is 1)."""
        age = _number(row["age"])
        band = (
            len(self._edges) + 1
            if math.isnan(age)
            else int(np.searchsorted(self._edges, age, side="right"))
        )
        names = [f"age={self._bands[band]}"]
        for prefix, column, kind in self._blocks:
            if kind == "multi":
                names.extend(f"{prefix}={value}" for value in _values(row[column]))
            else:
                value = _text(row[column])
                if value is not None:
                    names.append(f"{prefix}={value}")
        for flag in FLAG_COLUMNS:
            if not _missing(row[flag]) and bool(row[flag]):
                names.append(flag)
        found = {self._column[name] for name in names if name in self._column}
        return np.array(sorted(found), dtype=np.int64)

    def matrix(self, rows: list[dict[str, Any]]) -> sp.csr_matrix:
        """The encoded features of canonical rows, (n_rows, n_features), as `transform` gives.

        The matrix of a lone row is shared by every request with the same features (callers
        never write to it): scipy's checks when building one cost more than the row itself.
        """
        columns = [self.columns(row) for row in rows]
        if len(columns) == 1:
            return self._one_row(tuple(columns[0].tolist()))
        return self._matrix(columns)

    def _build_one_row(self, columns: tuple[int, ...]) -> sp.csr_matrix:
        return self._matrix([np.array(columns, dtype=np.int64)])

    def _matrix(self, columns: list[np.ndarray]) -> sp.csr_matrix:
        indptr = np.cumsum([0, *(len(c) for c in columns)])
        indices = np.concatenate(columns) if columns else np.zeros(0, np.int64)
        return sp.csr_matrix(
            (np.ones(len(indices), np.float32), indices, indptr),
            shape=(len(columns), self.n_features),
        )


class ProfileStore:
    """Known visitors' stored profiles, by `userId`, as canonical rows on request."""

    def __init__(self, profiles: pd.DataFrame | None = None, source: str | None = None) -> None:
        frame = (
            profiles if profiles is not None else pd.DataFrame(columns=schema.PROFILE_SCHEMA.names)
        )
        missing = [name for name in schema.PROFILE_SCHEMA.names if name not in frame.columns]
        if missing:
            raise ValueError(f"profiles: missing column(s) {', '.join(missing)}")
        frame = frame.dropna(subset=["userId"]).drop_duplicates("userId", keep="last")
        self.source = source
        # Plain object columns: a row is then a dict built from numpy scalars, no pandas call.
        self._columns = {
            name: frame[name].to_numpy(dtype=object) for name in schema.PROFILE_SCHEMA.names
        }
        self._row = {str(user): i for i, user in enumerate(frame["userId"])}

    def __len__(self) -> int:
        return len(self._row)

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._row

    def get(self, user_id: str | None) -> dict[str, Any] | None:
        """The stored canonical row of `user_id`, or None when unknown."""
        if user_id is None:
            return None
        index = self._row.get(user_id)
        if index is None:
            return None
        return {name: values[index] for name, values in self._columns.items()}

    @classmethod
    def load(cls, path: Path | str) -> ProfileStore:
        """Profiles from a canonical Parquet table or a profile export (CSV, JSON)."""
        path = Path(path)
        if path.suffix == ".parquet":
            frame = schema.read_table(path)
        else:
            from recsys.loaders import load_profiles

            frame = load_profiles(path).table
        return cls(frame, str(path))
