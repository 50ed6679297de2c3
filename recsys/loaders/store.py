"""Merging loaded exports into the raw canonical tables, without ever losing a stored row.

Raw data is immutable: ingesting again only adds. New keys are appended; a stored offer is
replaced only by a version with a later `updatedAt`; a stored event is never replaced (events
are idempotent on `id`); a stored profile is replaced by the newly ingested one (profiles carry
no timestamp, and a later export is the later state of the person). The table is written to a
temporary file in the same folder then moved over the old one with `os.replace`, so a crash
mid-write leaves the previous table intact.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from recsys import config, schema
from recsys.loaders.result import Kind, LoadResult

TABLE_FILES: Final[dict[str, str]] = {
    "offers": config.OFFERS_FILE,
    "events": config.EVENTS_FILE,
    "profiles": config.PROFILES_FILE,
}
KEYS: Final[dict[str, str]] = {"offers": "id", "events": "id", "profiles": "userId"}


@dataclass(frozen=True)
class StoreReport:
    """What a merge did to the stored table.

    Attributes:
        table_path: the canonical Parquet table.
        rejects_path: the JSON Lines log the rejects were appended to.
        added: accepted rows with a key not stored before.
        replaced: stored rows replaced by the accepted version.
        unchanged: accepted rows ignored because the stored version stands (an offer updated
            as recently or later, an event already stored).
        total: rows in the stored table after the merge.
    """

    table_path: Path
    rejects_path: Path
    added: int
    replaced: int
    unchanged: int
    total: int


def table_path(kind: Kind, out_dir: Path) -> Path:
    """Where the canonical table of `kind` lives in a dataset folder."""
    return out_dir / TABLE_FILES[kind]


def rejects_path(kind: Kind, out_dir: Path) -> Path:
    """Where the rejects of `kind` are logged in a dataset folder."""
    return out_dir / f"{kind}{config.REJECTS_SUFFIX}"


def store(result: LoadResult, out_dir: Path | None = None) -> StoreReport:
    """Merge the accepted rows into `out_dir`'s table and append the rejects to its log.

    Args:
        result: a loaded export.
        out_dir: the dataset folder; `config.RAW_DIR` by default. Created if missing.

    Raises:
        ValueError: when the stored table cannot be read back or merged (its file is left as
            it was).
    """
    out_dir = Path(out_dir) if out_dir is not None else config.RAW_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    path = table_path(result.kind, out_dir)
    stored = read_stored(path)
    if result.loaded:
        merged, added, replaced, unchanged = merge(result.kind, stored, result.table)
        atomic_write(path, lambda target: schema.write_table(merged, result.kind, target))
        total = len(merged)
    else:
        added = replaced = unchanged = 0
        total = 0 if stored is None else len(stored)
    log = rejects_path(result.kind, out_dir)
    append_rejects(result, log)
    return StoreReport(path, log, added, replaced, unchanged, total)


def merge(
    kind: Kind, stored: pd.DataFrame | None, new: pd.DataFrame
) -> tuple[pd.DataFrame, int, int, int]:
    """The stored table with the new rows merged in: (merged, added, replaced, unchanged)."""
    if stored is None or stored.empty:
        return new.reset_index(drop=True), len(new), 0, 0
    key = KEYS[kind]
    known = new[key].isin(stored[key]).to_numpy(dtype=bool)
    fresh = new.loc[~known]
    if kind == "events":
        replacing = new.iloc[:0]
    elif kind == "offers":
        stored_updated = stored.drop_duplicates(key, keep="last").set_index(key)["updatedAt"]
        candidates = new.loc[known]
        later = candidates["updatedAt"] > candidates[key].map(stored_updated)
        replacing = candidates.loc[later.fillna(False).to_numpy(dtype=bool)]
    else:
        replacing = new.loc[known]
    kept = stored.loc[~stored[key].isin(replacing[key]).to_numpy(dtype=bool)]
    merged = pd.concat([kept, replacing, fresh], ignore_index=True)
    unchanged = int(known.sum()) - len(replacing)
    return merged, len(fresh), len(replacing), unchanged


def append_rejects(result: LoadResult, path: Path) -> None:
    """Append one JSON line per reject (source file, ingest time, row, id, reason, detail,
    raw record) to the rejects log of its table.

    Appended rather than rewritten: the log only grows, and a crash mid-append can at worst
    leave one partial last line, never lose earlier lines.
    """
    if result.rejects.empty:
        return
    ingested_at = datetime.now(UTC).isoformat(timespec="seconds")
    lines = []
    for reject in result.rejects.itertuples(index=False):
        entry = {
            "source": str(result.source),
            "ingestedAt": ingested_at,
            "row": int(reject.row),
            "id": reject.id,
            "reason": reject.reason,
            "detail": reject.detail,
            "record": reject.record,
        }
        lines.append(json.dumps(jsonable(entry), ensure_ascii=False))
    with path.open("a", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def jsonable(value: object) -> object:
    """A raw value made JSON-safe: NaN and pd.NA become null, numpy and dates plain types."""
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [jsonable(item) for item in value]
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, str | int | float | bool):
        return value
    return str(value)


def read_stored(path: Path) -> pd.DataFrame | None:
    """The canonical table at `path`, None when there is none yet.

    Raises:
        ValueError: when the file exists but cannot be read.
    """
    if not path.exists():
        return None
    try:
        return schema.read_table(path)
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: the stored table cannot be read ({error})") from error


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file in the same folder, synced, then renamed over `path`."""
    # Not tempfile.mkstemp: it creates the file with mode 0600, and the table must keep the
    # permissions any other file written here gets.
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        write(temporary)
        with open(temporary, "rb+") as written:
            os.fsync(written.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
