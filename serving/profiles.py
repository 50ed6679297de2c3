"""The person a ranking request is for: stored profile and request fields as one row.

A request names a known visitor (`user_id`), describes an anonymous one (`profile`), or both
(the request's fields then override the stored ones). Both become one canonical profile row
(the columns of `recsys.schema.PROFILE_SCHEMA`), the same row offline code would build; the
core turns it into what scoring needs without pandas: `recsys.arrays.profile_row_arrays`
(its `ProfileArrays`) and `UserEncoder.transform_rows` (its encoded features).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd

from recsys import geo, schema
from recsys.arrays import ROW_CITY, ROW_INSEE
from recsys.schema import Profile


def empty_row(user_id: str | None = None) -> dict[str, Any]:
    """The canonical row of someone we know nothing about."""
    row: dict[str, Any] = dict.fromkeys(schema.PROFILE_SCHEMA.names)
    row.update({name: [] for name in schema.PROFILE_LIST_COLUMNS})
    row.update(dict.fromkeys(schema.PROFILE_FLAG_COLUMNS, False))
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
    row is then placed by `recsys.arrays.row_placement`); a new mobility without a radius
    replaces the stored radius by the mobility's.
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
    for field, column in (("insee_code", ROW_INSEE), ("city", ROW_CITY)):
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


class ProfileStore:
    """Known visitors' stored profiles, by `userId`, as canonical rows on request."""

    def __init__(self, profiles: pd.DataFrame | None = None, source: str | None = None) -> None:
        frame = (
            profiles if profiles is not None else pd.DataFrame(columns=schema.PROFILE_SCHEMA.names)
        )
        optional = schema.OPTIONAL_COLUMNS["profiles"]
        missing = [
            name
            for name in schema.PROFILE_SCHEMA.names
            if name not in frame.columns and name not in optional
        ]
        if missing:
            raise ValueError(f"profiles: missing column(s) {', '.join(missing)}")
        frame = frame.assign(**{name: None for name in optional if name not in frame.columns})
        frame = frame.dropna(subset=["userId"]).drop_duplicates("userId", keep="last")
        self.source = source
        self.frame = frame.reset_index(drop=True)  # the table as loaded (audiences read it)
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
