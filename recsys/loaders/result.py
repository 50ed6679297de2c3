"""What a loader returns: the canonical table, every rejected row with its reason, warnings.

Nothing read from a file is dropped silently: a row is either in `table` or in `rejects`
(with its row number, id, reason code and the raw record), and a value dropped inside a kept
row (an unknown activity slug, say) is counted in `warnings`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

import numpy as np
import pandas as pd

Kind = Literal["offers", "events", "profiles"]

REJECT_COLUMNS: Final = ("row", "id", "reason", "detail", "record")

# Reject reason codes (stable: tests, docs/data_formats.md and downstream reports use them).
MISSING_ID: Final = "missing_id"
MISSING_TITLE: Final = "missing_title"  # a front cannot show an offer without a title
DUPLICATE_ID: Final = "duplicate_id"
UNKNOWN_DOMAIN: Final = "unknown_domain"
UNKNOWN_TYPE: Final = "unknown_type"
UNKNOWN_STATUS: Final = "unknown_status"
MISSING_MISSION: Final = "missing_mission"
BAD_DATE: Final = "bad_date"
BAD_LOCATION: Final = "bad_location"
UNREADABLE: Final = "unreadable"
TRUNCATED_FILE: Final = "truncated_file"
INVALID_FIELD: Final = "invalid_field"  # written "invalid_field:<name>"


def invalid_field(name: str) -> str:
    """The reason code of a value of the wrong type or outside its vocabulary."""
    return f"{INVALID_FIELD}:{name}"


class LoadError(ValueError):
    """The file cannot be loaded at all: missing, empty, of an unknown format, or unreadable."""


class Rejects:
    """Rejected rows gathered while loading, turned into one frame at the end."""

    def __init__(self) -> None:
        self._parts: list[pd.DataFrame] = []

    def add(
        self,
        row: int,
        reason: str,
        detail: str,
        record: object = None,
        record_id: str | None = None,
    ) -> None:
        """Reject one row (unreadable text, a truncated tail, a record that is not an object)."""
        self._parts.append(
            pd.DataFrame(
                {
                    "row": [row],
                    "id": pd.Series([record_id], dtype=object),
                    "reason": [reason],
                    "detail": [detail],
                    "record": pd.Series([record], dtype=object),
                }
            )
        )

    def add_many(
        self,
        rows: np.ndarray,
        ids: np.ndarray,
        reasons: np.ndarray,
        details: np.ndarray,
        records: list[object],
    ) -> None:
        """Reject a batch of rows found by a vectorised check."""
        if len(rows) == 0:
            return
        self._parts.append(
            pd.DataFrame(
                {
                    "row": np.asarray(rows, dtype=np.int64),
                    "id": pd.Series(
                        [None if pd.isna(value) else str(value) for value in ids], dtype=object
                    ),
                    "reason": np.asarray(reasons, dtype=object),
                    "detail": np.asarray(details, dtype=object),
                    "record": pd.Series(records, dtype=object).to_numpy(),
                }
            )
        )

    def frame(self) -> pd.DataFrame:
        """All rejects in file order."""
        if not self._parts:
            return empty_rejects()
        frame = pd.concat(self._parts, ignore_index=True)
        frame["row"] = frame["row"].astype(np.int64)
        return frame.sort_values("row", kind="stable").reset_index(drop=True)


def empty_rejects() -> pd.DataFrame:
    """A rejects frame with no row, columns in REJECT_COLUMNS order."""
    return pd.DataFrame(
        {
            "row": pd.Series(dtype=np.int64),
            **{name: pd.Series(dtype=object) for name in REJECT_COLUMNS[1:]},
        }
    )


@dataclass
class LoadResult:
    """A loaded export.

    Attributes:
        kind: which canonical table `table` is.
        source: the file read.
        table: accepted rows, columns and dtypes ready for `recsys.schema.conform`.
        rejects: one row per rejected record: `row` (1-based record number in the file, the
            line number for CSV and JSON Lines), `id` (when readable), `reason` (a code of
            this module), `detail` (what was wrong, naming the field), `record` (the raw
            record as read: a dict, or the raw text when unreadable).
        warnings: counts of values dropped or repaired inside accepted rows, by code.
    """

    kind: Kind
    source: Path
    table: pd.DataFrame
    rejects: pd.DataFrame
    warnings: Counter[str] = field(default_factory=Counter)

    @property
    def loaded(self) -> int:
        """Number of accepted rows."""
        return len(self.table)

    @property
    def rejected(self) -> int:
        """Number of rejects (a truncated tail counts as one)."""
        return len(self.rejects)

    def reject_counts(self) -> dict[str, int]:
        """Rejects by reason, most frequent first (ties by name)."""
        counts = self.rejects["reason"].value_counts()
        return {
            reason: int(count)
            for reason, count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        }


class Verdicts:
    """The first failing check of each row of a batch: its reason code and detail.

    Checks run column by column (vectorised) in order of precedence; a row keeps the reason
    of the first check it fails, so that each reject carries exactly one reason.
    """

    def __init__(self, n_rows: int) -> None:
        self.ok = np.ones(n_rows, dtype=bool)
        self.reason = np.full(n_rows, None, dtype=object)
        self.detail = np.full(n_rows, None, dtype=object)

    def flag(
        self,
        mask: np.ndarray | pd.Series,
        reason: str,
        message: str,
        values: pd.Series | np.ndarray | None = None,
    ) -> None:
        """Reject the rows of `mask` still accepted; the detail quotes `values` when given."""
        hit = np.asarray(mask, dtype=bool) & self.ok
        if not hit.any():
            return
        self.ok &= ~hit
        self.reason[hit] = reason
        if values is None:
            self.detail[hit] = message
        else:
            quoted = np.asarray(values, dtype=object)[hit]
            self.detail[hit] = [f"{message}: {_quote(value)}" for value in quoted]

    def reject_into(
        self, rejects: Rejects, rows: np.ndarray, ids: pd.Series, records: list[object]
    ) -> None:
        """Move the rejected rows into `rejects`; `records` are their raw records, in order."""
        hit = ~self.ok
        id_values = pd.Series(ids).astype(object).to_numpy()[hit]
        rejects.add_many(rows[hit], id_values, self.reason[hit], self.detail[hit], records)


def _quote(value: object) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return "missing"
    return repr(value) if isinstance(value, str) else str(value)
