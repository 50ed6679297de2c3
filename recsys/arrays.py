"""Column arrays of offers and profiles, prepared once, shared by rules, models and serving.

Eligibility, the incumbent's engine, evaluation and the service's hot path all work on the
same numpy arrays built here from the canonical tables, so that offline figures describe
exactly what is served and no request touches pandas.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from recsys import places, taxonomy

NO_END = np.iinfo(np.int64).max  # an offer without endAt never ends
NEVER_DELETED = np.iinfo(np.int64).max

_DOMAIN_INDEX = {name: i for i, name in enumerate(taxonomy.DOMAINS)}
_PROGRAMME_INDEX = {name: i for i, name in enumerate(taxonomy.PROGRAMMES)}
_REMOTE_INDEX = {name: i for i, name in enumerate(taxonomy.REMOTE_VALUES)}
_QUIZ_DOMAIN_INDEX = {name: i for i, name in enumerate(taxonomy.QUIZ_DOMAINS)}
_QUIZ_ACTIVITY_INDEX = {name: i for i, name in enumerate(taxonomy.QUIZ_ACTIVITIES)}
_RHYTHM_INDEX = {name: i for i, name in enumerate(taxonomy.RHYTHMS)}
_MOTIVATION_INDEX = {name: i for i, name in enumerate(taxonomy.MOTIVATIONS)}


def to_epoch_seconds(values: pd.Series | pd.DatetimeIndex, missing: int) -> np.ndarray:
    """UTC timestamps as int64 seconds since epoch, `missing` where null."""
    stamps = pd.to_datetime(pd.Series(values), utc=True)
    seconds = np.full(len(stamps), missing, dtype=np.int64)
    present = stamps.notna().to_numpy()
    seconds[present] = stamps[present].dt.as_unit("s").astype("int64").to_numpy()
    return seconds


def _multi_hot(lists: pd.Series, index: dict[str, int]) -> np.ndarray:
    out = np.zeros((len(lists), len(index)), dtype=bool)
    for row, values in enumerate(lists):
        if not isinstance(values, list | tuple | np.ndarray):
            continue  # None, NaN or pd.NA: nothing answered
        for value in values:
            column = index.get(value)
            if column is not None:
                out[row, column] = True
    return out


def _codes(values: pd.Series, index: dict[str, int]) -> np.ndarray:
    return values.map(index).fillna(-1).astype(np.int16).to_numpy()


def _tristate(values: pd.Series) -> np.ndarray:
    """bool-with-missing as int8: 1 yes, 0 no, -1 missing."""
    out = np.full(len(values), -1, dtype=np.int8)
    present = values.notna().to_numpy()
    out[present] = values[present].astype(bool).to_numpy().astype(np.int8)
    return out


_HOURS_PER_WEEK = re.compile(r"(\d+)\s*h(?:eures?)?\s*(?:par|/)\s*semaine")


def offer_rhythm(programme: str, schedule: str | None) -> int:
    """The quiz rhythm an offer answers to, from its programme and its free-text schedule.

    Service Civique is full time for months; firefighters and reserves commit a few hours a
    week or a few days a year; bénévolat is read from the schedule text.
    """
    text = schedule.lower() if isinstance(schedule, str) else ""  # NaN/None: no schedule
    if programme == taxonomy.SERVICE_CIVIQUE:
        return _RHYTHM_INDEX["temps-plein-plusieurs-mois"]
    if programme == taxonomy.SAPEURS_POMPIERS:
        return _RHYTHM_INDEX["quelques-heures-par-semaine"]
    if programme == taxonomy.RESERVE:
        return _RHYTHM_INDEX["quelques-jours-dans-l-annee"]
    if "jour" in text and ("une journée" in text or "1 jour" in text or "ponctuel" in text):
        return _RHYTHM_INDEX["un-jour"]
    if "an" in text and ("par an" in text or "dans l'année" in text):
        return _RHYTHM_INDEX["quelques-jours-dans-l-annee"]
    if "jours par semaine" in text or "temps plein" in text:
        return _RHYTHM_INDEX["plusieurs-jours-par-semaine"]
    match = _HOURS_PER_WEEK.search(text)
    if match and int(match.group(1)) >= 15:
        return _RHYTHM_INDEX["plusieurs-jours-par-semaine"]
    return _RHYTHM_INDEX["quelques-heures-par-semaine"]


@dataclass(frozen=True)
class OfferArrays:
    """One row per offer, aligned with `ids`; times are epoch seconds (UTC)."""

    ids: np.ndarray  # object (str)
    publisher_ids: np.ndarray  # object (str)
    programme: np.ndarray  # int16 index into taxonomy.PROGRAMMES
    domain: np.ndarray  # int16 index into taxonomy.DOMAINS (-1 unknown)
    quiz_domains: np.ndarray  # bool (n, len(QUIZ_DOMAINS))
    quiz_activities: np.ndarray  # bool (n, len(QUIZ_ACTIVITIES))
    rhythm: np.ndarray  # int16 index into taxonomy.RHYTHMS
    remote: np.ndarray  # int16 index into taxonomy.REMOTE_VALUES
    snu: np.ndarray  # bool
    open_to_minors: np.ndarray  # int8 1/0/-1 missing
    accepted: np.ndarray  # bool statusCode == ACCEPTED
    places: np.ndarray  # float64, NaN unknown
    paid: np.ndarray  # bool, any compensation
    lat: np.ndarray  # float64, NaN unknown (the first address, or the offer's location)
    lon: np.ndarray  # float64, NaN unknown
    more_points: np.ndarray  # object: None, or (m, 2) float64 (lat, lon) of other addresses
    start_at: np.ndarray  # int64
    end_at: np.ndarray  # int64 (NO_END when open-ended)
    posted_at: np.ndarray  # int64
    deleted_at: np.ndarray  # int64 (NEVER_DELETED)

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, index: np.ndarray) -> OfferArrays:
        """A subset (or reordering) of the offers, every array indexed alike."""
        return take_rows(self, index)


def offer_arrays(offers: pd.DataFrame) -> OfferArrays:
    """Build the offer arrays from a canonical offers table (schema.OFFER_SCHEMA columns)."""
    activities = offers["activities"]
    quiz_activity_lists = activities.map(
        lambda values: [
            taxonomy.ACTIVITY_TO_QUIZ.get(v) for v in (values if values is not None else [])
        ]
    )
    quiz_domain_lists = offers["domain"].map(lambda d: taxonomy.DOMAIN_TO_QUIZ.get(d, ()))
    compensation = offers["compensationAmount"].fillna(0).to_numpy(dtype=float)
    places = pd.to_numeric(offers["places"], errors="coerce").to_numpy(dtype=float)
    rhythm = np.array(
        [
            offer_rhythm(programme, schedule)
            for programme, schedule in zip(offers["type"], offers["schedule"], strict=True)
        ],
        dtype=np.int16,
    )
    lat = pd.to_numeric(offers["lat"], errors="coerce").to_numpy(dtype=float)
    lon = pd.to_numeric(offers["lon"], errors="coerce").to_numpy(dtype=float)
    return OfferArrays(
        ids=offers["id"].astype(str).to_numpy(dtype=object),
        publisher_ids=offers["publisherId"].astype(str).to_numpy(dtype=object),
        programme=_codes(offers["type"], _PROGRAMME_INDEX),
        domain=_codes(offers["domain"], _DOMAIN_INDEX),
        quiz_domains=_multi_hot(quiz_domain_lists, _QUIZ_DOMAIN_INDEX),
        quiz_activities=_multi_hot(quiz_activity_lists, _QUIZ_ACTIVITY_INDEX),
        rhythm=rhythm,
        remote=_codes(offers["remote"].fillna("no"), _REMOTE_INDEX),
        snu=offers["snu"].fillna(False).astype(bool).to_numpy(),
        open_to_minors=_tristate(offers["openToMinors"]),
        accepted=(offers["statusCode"] == taxonomy.STATUS_ACCEPTED).to_numpy(),
        places=places,
        paid=compensation > 0,
        lat=lat,
        lon=lon,
        more_points=_more_points(offers.get("addresses"), lat, lon),
        start_at=to_epoch_seconds(offers["startAt"], 0),
        end_at=to_epoch_seconds(offers["endAt"], NO_END),
        posted_at=to_epoch_seconds(offers["postedAt"], 0),
        deleted_at=to_epoch_seconds(offers["deletedAt"], NEVER_DELETED),
    )


def _more_points(addresses: pd.Series | None, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Per offer, the placed addresses other than its (lat, lon) as an (m, 2) array, or None.

    Most offers have one address: they cost one None, and distance code looks at the others
    only (`recsys.eligibility.offer_distances_km`).
    """
    out = np.full(len(lat), None, dtype=object)
    if addresses is None:
        return out
    for row, listed in enumerate(addresses):
        if listed is None or isinstance(listed, float) or len(listed) < 1:
            continue  # None, NaN or empty: the offer's own point only
        points = [
            (float(a["lat"]), float(a["lon"]))
            for a in listed
            if a["lat"] is not None
            and a["lon"] is not None
            and math.isfinite(a["lat"])
            and math.isfinite(a["lon"])
            and not (a["lat"] == lat[row] and a["lon"] == lon[row])
        ]
        if points:
            out[row] = np.unique(np.array(points, dtype=np.float64), axis=0)
    return out


@dataclass(frozen=True)
class ProfileArrays:
    """One row per visitor, aligned with `ids`; NaN where the visitor did not say."""

    ids: np.ndarray  # object (str or None for anonymous)
    age: np.ndarray  # float64, NaN unknown
    lat: np.ndarray  # float64
    lon: np.ndarray  # float64
    radius_km: np.ndarray  # float64
    disability: np.ndarray  # bool
    has_quiz: np.ndarray  # bool
    quiz_domains: np.ndarray  # bool (n, len(QUIZ_DOMAINS)); all False = don't know / no quiz
    quiz_activities: np.ndarray  # bool (n, len(QUIZ_ACTIVITIES))
    rhythm: np.ndarray  # int16, -1 don't know
    motivations: np.ndarray  # bool (n, len(MOTIVATIONS))

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, index: np.ndarray) -> ProfileArrays:
        """A subset (or reordering) of the profiles, every array indexed alike."""
        return take_rows(self, index)


Rows = TypeVar("Rows", OfferArrays, ProfileArrays)


def take_rows(arrays: Rows, index: np.ndarray) -> Rows:
    """Rows `index` (positions or a boolean mask) of every column of `arrays`.

    `np.take` rather than fancy indexing: several times faster on the 2-D and object columns,
    and the service gathers candidate rows on every request.
    """
    index = np.asarray(index)
    if index.dtype == bool:
        index = np.flatnonzero(index)
    return type(arrays)(
        **{f.name: np.take(getattr(arrays, f.name), index, axis=0) for f in fields(arrays)}
    )


def concat_rows(parts: list[Rows]) -> Rows:
    """The rows of `parts` one after the other, column by column (a lone part as it is)."""
    if len(parts) == 1:
        return parts[0]
    return type(parts[0])(
        **{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(parts[0])}
    )


def profile_arrays(profiles: pd.DataFrame) -> ProfileArrays:
    """Build profile arrays from a canonical profiles table (schema.PROFILE_SCHEMA columns).

    Missing coordinates are filled from the postal code, else the department
    (`recsys.places.locate`); missing radius from mobility, else taxonomy.DEFAULT_RADIUS_KM.
    """
    lat = pd.to_numeric(profiles["lat"], errors="coerce").to_numpy(dtype=float).copy()
    lon = pd.to_numeric(profiles["lon"], errors="coerce").to_numpy(dtype=float).copy()
    unknown = np.isnan(lat) | np.isnan(lon)
    if unknown.any():
        lat[unknown], lon[unknown], _ = places.locate_many(
            profiles["postalCode"][unknown],
            department_codes=profiles["departmentCode"][unknown],
        )
    mobility_radius = profiles["mobility"].map(taxonomy.MOBILITY_RADIUS_KM)
    radius = (
        pd.to_numeric(profiles["radiusKm"], errors="coerce")
        .fillna(mobility_radius)
        .fillna(taxonomy.DEFAULT_RADIUS_KM)
        .to_numpy(dtype=float)
    )
    return ProfileArrays(
        ids=profiles["userId"].to_numpy(dtype=object),
        age=pd.to_numeric(profiles["age"], errors="coerce").to_numpy(dtype=float),
        lat=lat,
        lon=lon,
        radius_km=radius,
        disability=profiles["disability"].fillna(False).astype(bool).to_numpy(),
        has_quiz=profiles["hasQuiz"].fillna(False).astype(bool).to_numpy(),
        quiz_domains=_multi_hot(profiles["quizDomains"], _QUIZ_DOMAIN_INDEX),
        quiz_activities=_multi_hot(profiles["quizActivities"], _QUIZ_ACTIVITY_INDEX),
        rhythm=_codes(profiles["quizRhythm"], _RHYTHM_INDEX),
        motivations=_multi_hot(profiles["quizMotivations"], _MOTIVATION_INDEX),
    )


# --- One canonical profile row (a request), without pandas -------------------------------------

# A request's commune, kept in its row beside the profile table's columns (which have none).
ROW_INSEE, ROW_CITY = "inseeCode", "city"


def is_missing(value: object) -> bool:
    """True for None, NaN, pd.NA and NaT: the spellings of "no value" in raw records and
    request rows."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def row_text(value: Any) -> str | None:
    """A row's field as text, None when missing."""
    return None if is_missing(value) else str(value)


def row_number(value: Any) -> float:
    """A row's field as a float, NaN when missing."""
    return math.nan if is_missing(value) else float(value)


def row_values(value: Any) -> list[str]:
    """A row's list field as texts (missing items dropped), [] when not a list."""
    if isinstance(value, list | tuple | np.ndarray):
        return [str(item) for item in value if not is_missing(item)]
    return []


def row_flag(value: Any) -> bool:
    """A row's yes/no field, False when missing."""
    return False if is_missing(value) else bool(value)


def _row_multi_hot(values: list[str], index: dict[str, int]) -> np.ndarray:
    out = np.zeros((1, len(index)), dtype=bool)
    for value in values:
        column = index.get(value)
        if column is not None:
            out[0, column] = True
    return out


def row_placement(row: Mapping[str, Any]) -> places.Placement | None:
    """Where the person of a canonical profile row is: their coordinates, else
    `recsys.places.locate` of their INSEE code and city (`ROW_INSEE`, `ROW_CITY`: a request's,
    beside the table's columns), postal code and department; None when nothing places them.

    The point `profile_arrays` gives a row without INSEE code or city.
    """
    lat, lon = row_number(row["lat"]), row_number(row["lon"])
    if not (math.isnan(lat) or math.isnan(lon)):  # half a place is no place
        return places.Placement(lat, lon, "coordinates")
    return places.locate(
        postal_code=row_text(row["postalCode"]),
        insee=row_text(row.get(ROW_INSEE)),
        commune=row_text(row.get(ROW_CITY)),
        department_code=row_text(row["departmentCode"]),
    )


def profile_row_arrays(
    row: Mapping[str, Any], where: places.Placement | None = None
) -> ProfileArrays:
    """`profile_arrays` of one canonical profile row (a dict of `schema.PROFILE_SCHEMA`
    columns), equal to it, without the one-row DataFrame whose building costs more than a
    request's whole ranking (docs/benchmarks.md). `where` is the row's `row_placement` when
    the caller already has it."""
    where = row_placement(row) if where is None else where
    lat, lon = (where.lat, where.lon) if where is not None else (math.nan, math.nan)
    radius = row_number(row["radiusKm"])
    if math.isnan(radius):
        radius = taxonomy.MOBILITY_RADIUS_KM.get(row_text(row["mobility"]) or "", math.nan)
    if math.isnan(radius):
        radius = taxonomy.DEFAULT_RADIUS_KM
    rhythm = _RHYTHM_INDEX.get(row_text(row["quizRhythm"]) or "", -1)
    return ProfileArrays(
        ids=np.array([row["userId"]], dtype=object),
        age=np.array([row_number(row["age"])]),
        lat=np.array([lat]),
        lon=np.array([lon]),
        radius_km=np.array([radius]),
        disability=np.array([row_flag(row["disability"])]),
        has_quiz=np.array([row_flag(row["hasQuiz"])]),
        quiz_domains=_row_multi_hot(row_values(row["quizDomains"]), _QUIZ_DOMAIN_INDEX),
        quiz_activities=_row_multi_hot(row_values(row["quizActivities"]), _QUIZ_ACTIVITY_INDEX),
        rhythm=np.array([rhythm], dtype=np.int16),
        motivations=_row_multi_hot(row_values(row["quizMotivations"]), _MOTIVATION_INDEX),
    )
