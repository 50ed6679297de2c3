"""Loader of known visitors' profiles (age, place, mobility, quiz answers) into profiles.

Validated against the same bounds and vocabularies as `schema.Profile` and `schema.Quiz`, but
column-wise. Column names may be the canonical camelCase ones, their snake_case spelling
(`postal_code`, `radius_km`, `quiz_domains`...) or, for the id, `userIdentifiant` (the stable
account id of the stat events). List fields (quiz answers) may come as lists, JSON strings or
";"- or "|"-separated strings; a quiz value outside the vocabulary (a newer quiz option) is
dropped with a warning naming it, the person kept. `contactConsent` (yes/no, missing reads as
no) and `consentAt` (ISO time) say whether and since when the person agreed to be contacted for
a mobilisation (`recsys.audience`); a `consentAt` without consent is dropped, so the table never
suggests a consent that is not there. Precedence of the reject reasons: missing_id,
bad_location, invalid_field:<name>, then duplicate_id (the last occurrence is kept: a later row
is a later state of the person).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from recsys import geo, taxonomy
from recsys.loaders.readers import read_raw_table
from recsys.loaders.result import (
    BAD_LOCATION,
    DUPLICATE_ID,
    MISSING_ID,
    LoadResult,
    Verdicts,
    invalid_field,
)
from recsys.loaders.values import (
    as_bool,
    as_int,
    as_number,
    as_postal_code,
    as_str_list,
    as_text,
    as_timestamp,
    in_vocabulary,
    unknown_items,
)
from recsys.schema import MAX_AGE, PROFILE_SCHEMA

logger = logging.getLogger(__name__)

# Same bounds as schema.Profile.
_MAX_RADIUS_KM: Final = 1000.0
_QUIZ_LISTS: Final[dict[str, tuple[str, ...]]] = {
    "quizDomains": (*taxonomy.QUIZ_DOMAINS, taxonomy.DONT_KNOW),
    "quizActivities": (*taxonomy.QUIZ_ACTIVITIES, taxonomy.DONT_KNOW),
    "quizMotivations": (*taxonomy.MOTIVATIONS, taxonomy.DONT_KNOW),
}


# Other spellings of the id column, in order of preference after `userId` itself.
_ID_ALIASES: Final = ("userIdentifiant", "user_id", "user_identifiant")


def load_profiles(path: str | Path) -> LoadResult:
    """Load visitor profiles from CSV, JSON (array or lines) or Parquet.

    Raises:
        LoadError: when the file is missing, empty, of an unknown format or unreadable.
    """
    path = Path(path)
    raw = read_raw_table(path)
    frame, rows = _canonical_columns(raw.frame.reset_index(drop=True)), raw.rows
    verdicts = Verdicts(len(frame))
    warnings = Counter(raw.warnings)
    columns = _validate(frame, verdicts, warnings)
    _reject_duplicates(columns["userId"], rows, verdicts)
    rejected = np.flatnonzero(~verdicts.ok)
    verdicts.reject_into(raw.rejects, rows, columns["userId"], raw.raw_records(rejected))
    table = pd.DataFrame({name: columns[name] for name in PROFILE_SCHEMA.names})
    table = table.loc[verdicts.ok].reset_index(drop=True)
    logger.info(
        "profiles loaded", extra={"source": str(path), "loaded": len(table), "warnings": warnings}
    )
    return LoadResult(
        kind="profiles",
        source=path,
        table=table,
        rejects=raw.rejects.frame(),
        warnings=warnings,
    )


def _camel_case(name: str) -> str:
    """`radius_km` -> `radiusKm`; a name without underscores is kept as it is."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _canonical_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """The export's columns under their canonical names (snake_case and id aliases mapped).

    A canonical column present in the export wins over another spelling of it.
    """
    canonical = set(PROFILE_SCHEMA.names)
    renames: dict[str, str] = {}
    for name in frame.columns:
        target = _camel_case(str(name)) if re.fullmatch(r"[a-z0-9_]+", str(name)) else name
        if target != name and target in canonical and target not in frame.columns:
            renames.setdefault(name, target)
    frame = frame.rename(columns=renames)
    if "userId" not in frame.columns:
        alias = next((name for name in _ID_ALIASES if name in frame.columns), None)
        if alias is not None:
            frame = frame.rename(columns={alias: "userId"})
    return frame


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    if name in frame.columns:
        return frame[name]
    return pd.Series([None] * len(frame), dtype=object)


def _validate(
    frame: pd.DataFrame, verdicts: Verdicts, warnings: Counter[str]
) -> dict[str, pd.Series]:
    """Parse every column and flag the rows that fail, in order of precedence."""
    out: dict[str, pd.Series] = {}
    user_id, bad = as_text(_column(frame, "userId"))
    verdicts.flag(user_id.isna().to_numpy() & ~bad, MISSING_ID, "userId is missing")
    verdicts.flag(bad, invalid_field("userId"), "userId is not text", _column(frame, "userId"))
    out["userId"] = user_id

    lat, bad_lat = as_number(_column(frame, "lat"))
    lon, bad_lon = as_number(_column(frame, "lon"))
    verdicts.flag(bad_lat | bad_lon, BAD_LOCATION, "lat/lon is not a number")
    verdicts.flag(
        (lat.isna() != lon.isna()).to_numpy(), BAD_LOCATION, "lat and lon must be given together"
    )
    out_of_range = ((lat.abs() > 90) | (lon.abs() > 180)).fillna(False).to_numpy(dtype=bool)
    verdicts.flag(out_of_range, BAD_LOCATION, "(lat, lon) out of range")
    out["lat"], out["lon"] = lat, lon

    age, bad = as_int(_column(frame, "age"), 0, MAX_AGE)
    verdicts.flag(bad, invalid_field("age"), f"age is not in 0-{MAX_AGE}", _column(frame, "age"))
    out["age"] = age.astype("Int16")
    postal_code, bad = as_postal_code(_column(frame, "postalCode"))
    verdicts.flag(
        bad, invalid_field("postalCode"), "not a postal code", _column(frame, "postalCode")
    )
    out["postalCode"] = postal_code
    _validate_department(frame, postal_code, verdicts, out)

    mobility, bad = as_text(_column(frame, "mobility"))
    mobility = mobility.str.lower()
    bad = bad | in_vocabulary(mobility, taxonomy.MOBILITY_RADIUS_KM)
    message = f"mobility is not one of {', '.join(taxonomy.MOBILITY_RADIUS_KM)}"
    verdicts.flag(bad, invalid_field("mobility"), message, _column(frame, "mobility"))
    out["mobility"] = mobility
    radius, bad = as_number(_column(frame, "radiusKm"))
    bad = bad | ((radius <= 0) | (radius > _MAX_RADIUS_KM)).fillna(False).to_numpy(dtype=bool)
    message = f"radiusKm is not in (0, {_MAX_RADIUS_KM:g}]"
    verdicts.flag(bad, invalid_field("radiusKm"), message, _column(frame, "radiusKm"))
    out["radiusKm"] = radius
    disability, bad = as_bool(_column(frame, "disability"))
    message = "disability is not yes/no"
    verdicts.flag(bad, invalid_field("disability"), message, _column(frame, "disability"))
    out["disability"] = disability.fillna(False)

    answered = pd.Series(np.zeros(len(frame), dtype=bool))
    for name, vocabulary in _QUIZ_LISTS.items():
        lists, bad = as_str_list(_column(frame, name))
        message = f"{name} is not a list of strings"
        verdicts.flag(bad, invalid_field(name), message, _column(frame, name))
        lists = _known_items(name, lists, vocabulary, warnings)
        out[name] = lists
        answered |= lists.map(lambda items: bool(items)).fillna(False).astype(bool)
    rhythm, bad = as_text(_column(frame, "quizRhythm"))
    verdicts.flag(bad, invalid_field("quizRhythm"), "quizRhythm is not text", rhythm)
    unknown = in_vocabulary(rhythm, (*taxonomy.RHYTHMS, taxonomy.DONT_KNOW)) & ~bad
    _count_dropped("quizRhythm", Counter(rhythm[unknown]), warnings)
    rhythm = rhythm.mask(unknown)
    out["quizRhythm"] = rhythm
    answered |= rhythm.notna().to_numpy()
    has_quiz, bad = as_bool(_column(frame, "hasQuiz"))
    verdicts.flag(bad, invalid_field("hasQuiz"), "hasQuiz is not yes/no", _column(frame, "hasQuiz"))
    out["hasQuiz"] = has_quiz.fillna(pd.Series(answered.to_numpy(), dtype="boolean"))
    _validate_consent(frame, verdicts, out)
    return out


def _validate_consent(frame: pd.DataFrame, verdicts: Verdicts, out: dict[str, pd.Series]) -> None:
    """contactConsent (missing = no) and consentAt, kept only where consent is given."""
    consent, bad = as_bool(_column(frame, "contactConsent"))
    message = "contactConsent is not yes/no"
    verdicts.flag(bad, invalid_field("contactConsent"), message, _column(frame, "contactConsent"))
    consent = consent.fillna(False).astype(bool)
    out["contactConsent"] = consent
    consent_at, bad = as_timestamp(_column(frame, "consentAt"))
    message = "consentAt is not an ISO time"
    verdicts.flag(bad, invalid_field("consentAt"), message, _column(frame, "consentAt"))
    out["consentAt"] = consent_at.where(consent.to_numpy())


def _known_items(
    name: str, lists: pd.Series, vocabulary: tuple[str, ...], warnings: Counter[str]
) -> pd.Series:
    """The items of each list that the vocabulary knows; each dropped item counts a warning.

    A quiz gains options before this project's vocabulary does: the person is kept with the
    answers it can use, and the log names the values dropped.
    """
    unknown = unknown_items(lists, vocabulary)
    dropped = Counter(item for items in unknown for item in items)
    if not dropped:
        return lists
    _count_dropped(name, dropped, warnings)
    allowed = frozenset(vocabulary)
    return lists.map(lambda items: None if items is None else [i for i in items if i in allowed])


def _count_dropped(name: str, dropped: Counter[str], warnings: Counter[str]) -> None:
    """Count and log the quiz values of `name` dropped as unknown."""
    if not dropped:
        return
    warnings[f"unknown_value:{name}"] += sum(dropped.values())
    logger.warning(
        "unknown %s values dropped: %s",
        name,
        dict(dropped.most_common(20)),
        extra={"field": name, "dropped": dict(dropped)},
    )


def _validate_department(
    frame: pd.DataFrame, postal_code: pd.Series, verdicts: Verdicts, out: dict[str, pd.Series]
) -> None:
    """Department as given ("1" reads "01"), else from the postal code; region from it."""
    given, bad = as_text(_column(frame, "departmentCode"))
    given = given.str.upper()
    given = given.mask(given.str.fullmatch(r"\d").fillna(False).astype(bool), "0" + given)
    departments = geo.departments().set_index("code")
    bad = bad | in_vocabulary(given, departments.index)
    message = "departmentCode is not a French department"
    verdicts.flag(bad, invalid_field("departmentCode"), message, _column(frame, "departmentCode"))
    code = given.fillna(geo.departments_of_postal_codes(postal_code)).astype("string")
    out["departmentCode"] = code
    region, bad = as_text(_column(frame, "region"))
    verdicts.flag(bad, invalid_field("region"), "region is not text", _column(frame, "region"))
    out["region"] = region.fillna(code.map(departments["region_name"])).astype("string")


def _reject_duplicates(ids: pd.Series, rows: np.ndarray, verdicts: Verdicts) -> None:
    """Among valid profiles sharing a userId keep the last and reject the earlier ones."""
    valid = pd.DataFrame({"id": ids, "row": rows}).loc[verdicts.ok]
    earlier = valid.index[valid.duplicated("id", keep="last")]
    if len(earlier) == 0:
        return
    last_row = valid.drop_duplicates("id", keep="last").set_index("id")["row"]
    mask = np.zeros(len(ids), dtype=bool)
    mask[earlier] = True
    kept_at = ids.map(last_row).astype("Int64").to_numpy(dtype=object)
    verdicts.flag(mask, DUPLICATE_ID, "superseded by the later profile at row", kept_at)
