"""Loader of diffusion events ("stat events") into the canonical events table.

Event files can hold millions of rows, so every check is a pandas operation on a whole
column; Python only touches the `customAttributes` of the rows that have them (applies).
Precedence of the reject reasons: missing_id, unknown_type, bad_date, missing_mission,
unknown_status, invalid_field:<name>, then duplicate_id (the first occurrence is kept: an event
is immutable, a repeat is the same event exported twice).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from recsys import taxonomy
from recsys.loaders.readers import read_raw_table
from recsys.loaders.result import (
    BAD_DATE,
    DUPLICATE_ID,
    MISSING_ID,
    MISSING_MISSION,
    UNKNOWN_STATUS,
    UNKNOWN_TYPE,
    LoadResult,
    Verdicts,
    invalid_field,
)
from recsys.loaders.values import (
    as_bool,
    as_int,
    as_postal_code,
    as_text,
    as_timestamp,
    in_vocabulary,
)
from recsys.schema import CANDIDATE_AGE_BANDS, EVENT_SCHEMA, MAX_AGE

logger = logging.getLogger(__name__)

_TEXT_FIELDS: Final = (
    "toPublisherId",
    "fromPublisherId",
    "source",
    "sourceId",
    "user",
    "clickId",
    "requestId",
    "clientEventId",
)
_CUSTOM_KEYS: Final = ("candidateAge", "candidatePostalCode", "userIdentifiant")
# An account creation may follow a visit without a mission; every other event is about one.
_NEEDS_MISSION: Final = ("print", "click", "apply")
_INT16_MAX: Final = 2**15 - 1


def load_events(path: str | Path) -> LoadResult:
    """Load stat events from CSV, JSON (array or lines) or Parquet.

    Raises:
        LoadError: when the file is missing, empty, of an unknown format or unreadable.
    """
    path = Path(path)
    raw = read_raw_table(path)
    frame, rows, warnings = raw.frame, raw.rows, raw.warnings
    verdicts = Verdicts(len(frame))
    columns = _validate(frame, verdicts, warnings)
    _reject_duplicates(columns["id"], rows, verdicts)
    rejected = np.flatnonzero(~verdicts.ok)
    verdicts.reject_into(raw.rejects, rows, columns["id"], raw.raw_records(rejected))
    table = pd.DataFrame({name: columns[name] for name in EVENT_SCHEMA.names})
    table = table.loc[verdicts.ok].reset_index(drop=True)
    _count_notes(table, warnings)
    logger.info("events loaded", extra={"source": str(path), "loaded": len(table)})
    return LoadResult(
        kind="events", source=path, table=table, rejects=raw.rejects.frame(), warnings=warnings
    )


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    if name in frame.columns:
        return frame[name].reset_index(drop=True)
    return pd.Series([None] * len(frame), dtype=object)


def _validate(
    frame: pd.DataFrame, verdicts: Verdicts, warnings: Counter[str]
) -> dict[str, pd.Series]:
    """Parse every column and flag the rows that fail, in order of precedence."""
    out: dict[str, pd.Series] = {}
    raw_id = _column(frame, "id")
    if "_id" in frame.columns:  # Elasticsearch exports name the key `_id`
        raw_id = raw_id.where(raw_id.notna(), _column(frame, "_id"))
    ids, bad_id = as_text(raw_id)
    verdicts.flag(ids.isna().to_numpy() & ~bad_id, MISSING_ID, "id is missing")
    verdicts.flag(bad_id, invalid_field("id"), "id is not text", raw_id)
    out["id"] = ids

    kind, _ = as_text(_column(frame, "type"))
    kind = kind.str.lower()
    unknown = kind.isna().to_numpy() | in_vocabulary(kind, taxonomy.EVENT_TYPES)
    message = f"type is not one of {', '.join(taxonomy.EVENT_TYPES)}"
    verdicts.flag(unknown, UNKNOWN_TYPE, message, _column(frame, "type"))
    out["type"] = kind

    created, bad = as_timestamp(_column(frame, "createdAt"))
    verdicts.flag(
        bad, BAD_DATE, "createdAt is not an ISO 8601 timestamp", _column(frame, "createdAt")
    )
    verdicts.flag(created.isna().to_numpy(), BAD_DATE, "createdAt is missing")
    out["createdAt"] = created

    mission, bad_mission = as_text(_column(frame, "missionId"))
    needs = kind.isin(_NEEDS_MISSION).fillna(False).to_numpy(dtype=bool)
    verdicts.flag(
        needs & mission.isna().to_numpy() & ~bad_mission,
        MISSING_MISSION,
        "missionId is missing on an event of type",
        kind,
    )
    out["missionId"] = mission

    status, bad_status = as_text(_column(frame, "status"))
    status = status.str.upper()
    verdicts.flag(
        bad_status | in_vocabulary(status, taxonomy.APPLY_STATUSES),
        UNKNOWN_STATUS,
        f"status is not one of {', '.join(taxonomy.APPLY_STATUSES)}",
        _column(frame, "status"),
    )
    out["status"] = status

    verdicts.flag(bad_mission, invalid_field("missionId"), "missionId is not text", mission)
    for name in _TEXT_FIELDS:
        out[name], bad = as_text(_column(frame, name))
        verdicts.flag(bad, invalid_field(name), f"{name} is not text", _column(frame, name))
    is_bot, bad = as_bool(_column(frame, "isBot"))
    verdicts.flag(bad, invalid_field("isBot"), "isBot is not true/false", _column(frame, "isBot"))
    out["isBot"] = is_bot.fillna(False)  # absent means the export did not flag it
    position, bad = as_int(_column(frame, "position"), 0, _INT16_MAX)
    verdicts.flag(
        bad, invalid_field("position"), "position is not a rank", _column(frame, "position")
    )
    out["position"] = position.astype("Int16")

    custom = _custom_attributes(frame, warnings)
    user_id, bad = as_text(_column(frame, "userId"))
    verdicts.flag(bad, invalid_field("userId"), "userId is not text", _column(frame, "userId"))
    identifiant, bad = as_text(custom["userIdentifiant"])
    _warn(warnings, "invalid_user_identifiant", bad)
    out["userId"] = user_id.fillna(identifiant)
    # A candidate's declared age or postal code is side information of an apply: a bad one is
    # dropped with a warning rather than losing the apply, the outcome that counts.
    age, bad = as_int(custom["candidateAge"], 0, MAX_AGE)
    _warn(warnings, "invalid_candidate_age", bad)
    out["candidateAge"] = age.astype("Int16")
    postal_code, bad = as_postal_code(custom["candidatePostalCode"])
    _warn(warnings, "invalid_candidate_postal_code", bad)
    out["candidatePostalCode"] = postal_code.mask(bad)
    # Only the service's store export has a band (`schema.EVENT_SCHEMA`); platform exports
    # give the exact age above.
    band, bad = as_text(_column(frame, "candidateAgeBand"))
    bad |= in_vocabulary(band, CANDIDATE_AGE_BANDS)
    _warn(warnings, "invalid_candidate_age_band", bad)
    out["candidateAgeBand"] = band.mask(bad)
    return out


def _custom_attributes(frame: pd.DataFrame, warnings: Counter[str]) -> pd.DataFrame:
    """candidateAge, candidatePostalCode, userIdentifiant from wherever the export put them.

    In order of precedence: a top-level column of that name (a canonical file re-ingested),
    a flattened `customAttributes.<key>` column, the `customAttributes` object (a dict, or a
    JSON string in CSV). Only the rows that have `customAttributes` are visited.
    """
    n = len(frame)
    values: dict[str, list[object]] = {key: [None] * n for key in _CUSTOM_KEYS}
    attributes = _column(frame, "customAttributes")
    present = np.flatnonzero(attributes.notna().to_numpy(dtype=bool))
    for position, value in zip(present, attributes.iloc[present].tolist(), strict=True):
        if isinstance(value, str):
            if not value.strip():
                continue
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                value = None
        if not isinstance(value, dict):
            warnings["invalid_custom_attributes"] += 1
            continue
        for key in _CUSTOM_KEYS:
            values[key][position] = value.get(key)
    custom = pd.DataFrame(values, dtype=object)
    for key in _CUSTOM_KEYS:
        for name in (f"customAttributes.{key}", key):
            if name in frame.columns:
                top = _column(frame, name).astype(object)
                custom[key] = top.where(top.notna(), custom[key])
    return custom


def _warn(warnings: Counter[str], code: str, mask: np.ndarray) -> None:
    count = int(np.count_nonzero(mask))
    if count:
        warnings[code] += count


def _reject_duplicates(ids: pd.Series, rows: np.ndarray, verdicts: Verdicts) -> None:
    """Among valid events sharing an id keep the first and reject the repeats."""
    valid = pd.DataFrame({"id": ids, "row": rows}).loc[verdicts.ok]
    repeats = valid.index[valid.duplicated("id", keep="first")]
    if len(repeats) == 0:
        return
    first_row = valid.drop_duplicates("id", keep="first").set_index("id")["row"]
    mask = np.zeros(len(ids), dtype=bool)
    mask[repeats] = True
    kept_at = ids.map(first_row).astype("Int64").to_numpy(dtype=object)
    verdicts.flag(mask, DUPLICATE_ID, "same id as the event kept at row", kept_at)


def _count_notes(table: pd.DataFrame, warnings: Counter[str]) -> None:
    """Count bot events (kept, flagged) and sources outside the API's list (kept as given)."""
    _warn(warnings, "bot_event", table["isBot"].to_numpy(dtype=bool))
    _warn(warnings, "unknown_source", in_vocabulary(table["source"], taxonomy.EVENT_SOURCES))
