"""Reading export files into raw records or a raw table, keeping whatever can be read.

A damaged file must not stop a load: JSON Lines and CSV are read line by line in effect (a
bad line becomes an `unreadable` reject, the next line is read), and a JSON array cut in the
middle gives back every complete record before the cut plus one `truncated_file` reject.
Only a file that cannot be read at all (missing, empty, unknown format, broken Parquet)
raises `LoadError`.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from recsys.loaders.result import TRUNCATED_FILE, UNREADABLE, LoadError, Rejects
from recsys.loaders.values import is_missing

Format = Literal["json", "jsonl", "csv", "parquet"]

_SUFFIX_FORMATS: Final[dict[str, Format]] = {
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_DECODER: Final = json.JSONDecoder()
_WHITESPACE: Final = re.compile(r"\s*")
# `{"ok": true, "total": 3, "data": [` : scalar keys, then the array of records.
_WRAPPER: Final = re.compile(r'\{[^{}\[\]]*?"data"\s*:\s*\[')
_CLIP: Final = 2_000  # characters of a damaged tail kept in its reject


@dataclass
class RawRecords:
    """Objects read from a JSON export, with their 1-based row numbers in the file."""

    records: list[dict[str, object]]
    rows: list[int]
    rejects: Rejects = field(default_factory=Rejects)
    warnings: Counter[str] = field(default_factory=Counter)


@dataclass
class RawTable:
    """Raw columns of a tabular export (CSV, JSON, Parquet), one row per record read."""

    frame: pd.DataFrame
    rows: np.ndarray
    rejects: Rejects = field(default_factory=Rejects)
    warnings: Counter[str] = field(default_factory=Counter)
    records: list[dict[str, object]] | None = None  # the objects themselves, for JSON

    def raw_records(self, positions: np.ndarray) -> list[object]:
        """The records at `positions` as read (JSON objects; table rows without empty fields)."""
        if self.records is not None:
            return [self.records[position] for position in positions]
        rows = self.frame.iloc[positions].to_dict("records")
        return [{k: v for k, v in row.items() if not is_missing(v)} for row in rows]


def detect_format(path: Path) -> Format:
    """The format of an export from its suffix, else from its first bytes.

    Raises:
        LoadError: when the file is missing or its format cannot be told.
    """
    if not path.is_file():
        raise LoadError(f"{path}: no such file")
    suffix_format = _SUFFIX_FORMATS.get(path.suffix.lower())
    if suffix_format is not None:
        return suffix_format
    with path.open("rb") as handle:
        head = handle.read(512)
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.lstrip()[:1] in (b"[", b"{"):
        return "json"
    raise LoadError(f"{path}: unknown format; expected a .json, .jsonl, .csv or .parquet file")


def read_records(path: Path) -> RawRecords:
    """The objects of a JSON export: an array, a `{"data": [...]}` wrapper, or JSON Lines.

    Raises:
        LoadError: when the file is missing, empty or not JSON.
    """
    file_format = detect_format(path)
    if file_format not in ("json", "jsonl"):
        raise LoadError(f"{path}: expected a JSON export (.json or .jsonl), got {file_format}")
    result = RawRecords(records=[], rows=[])
    text = _decode(path.read_bytes(), result.warnings)
    start = _WHITESPACE.match(text).end()
    if start == len(text):
        raise LoadError(f"{path}: the file is empty")
    if file_format == "jsonl":
        values = _json_lines(text, result.rejects)
    elif text[start] == "[":
        values = _json_array(text, start, result.rejects)
    elif text[start] == "{":
        values = _json_object_or_lines(text, start, result.rejects)
    else:
        raise LoadError(f"{path}: not JSON (starts with {text[start : start + 20]!r})")
    for row, value in values:
        if isinstance(value, dict):
            result.records.append(value)
            result.rows.append(row)
        else:
            result.rejects.add(
                row, UNREADABLE, f"record is a {type(value).__name__}, not an object", value
            )
    return result


def read_raw_table(path: Path) -> RawTable:
    """Raw columns of a CSV, JSON or Parquet export (values as read, not yet validated).

    Raises:
        LoadError: when the file is missing, empty, of an unknown format or unreadable.
    """
    file_format = detect_format(path)
    if file_format == "parquet":
        try:
            frame = pd.read_parquet(path)
        except (pa.ArrowException, OSError, ValueError) as error:
            raise LoadError(f"{path}: not a readable Parquet file ({error})") from error
        return RawTable(frame=frame, rows=np.arange(1, len(frame) + 1, dtype=np.int64))
    if file_format == "csv":
        return _read_csv(path)
    records = read_records(path)
    return RawTable(
        frame=pd.DataFrame.from_records(records.records),
        rows=np.asarray(records.rows, dtype=np.int64),
        rejects=records.rejects,
        warnings=records.warnings,
        records=records.records,
    )


def clip(text: str) -> str:
    """A damaged text kept short enough for a rejects file."""
    return text if len(text) <= _CLIP else f"{text[:_CLIP]}… [{len(text) - _CLIP} more chars]"


def _decode(data: bytes, warnings: Counter[str]) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        # A file cut inside a multi-byte character fails on its last bytes: that is the
        # truncation (reported on its own), not an encoding defect.
        if error.start < len(data) - 3:
            warnings["invalid_utf8"] += 1
        return data.decode("utf-8-sig", errors="replace")


def _json_array(text: str, start: int, rejects: Rejects) -> list[tuple[int, object]]:
    try:
        values = json.loads(text)
    except json.JSONDecodeError:
        return _walk_array(text, start, rejects, top_level=True)
    return list(enumerate(values, start=1))


def _json_object_or_lines(text: str, start: int, rejects: Rejects) -> list[tuple[int, object]]:
    try:
        first, end = _DECODER.raw_decode(text, start)
    except json.JSONDecodeError:
        wrapper = _WRAPPER.match(text, start)
        if wrapper is not None:
            return _walk_array(text, wrapper.end() - 1, rejects, top_level=False)
        return _json_lines(text, rejects)
    if text[end:].strip():
        return _json_lines(text, rejects)
    if isinstance(first, dict) and isinstance(first.get("data"), list):
        return list(enumerate(first["data"], start=1))
    return [(1, first)]


def _json_lines(text: str, rejects: Rejects) -> list[tuple[int, object]]:
    values: list[tuple[int, object]] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            values.append((number, json.loads(line)))
        except json.JSONDecodeError as error:
            rejects.add(number, UNREADABLE, f"line {number} is not valid JSON: {error.msg}", line)
    return values


def _walk_array(
    text: str, bracket: int, rejects: Rejects, *, top_level: bool
) -> list[tuple[int, object]]:
    """The complete records of a JSON array that does not parse as a whole.

    Walks the array one record at a time with `raw_decode`; stops at the first record that
    does not decode and reports the rest as one reject: `truncated_file` when the file ends
    inside the array (it was cut), `unreadable` when the array goes on after a broken record
    (the rest cannot be resynchronised reliably).
    """
    values: list[tuple[int, object]] = []
    closing = "]" if top_level else "}"
    pos = bracket + 1
    while True:
        pos = _WHITESPACE.match(text, pos).end()
        row = len(values) + 1
        if pos >= len(text):
            rejects.add(
                row,
                TRUNCATED_FILE,
                f"the file ends before the array closes, after {len(values)} complete records",
            )
            return values
        if text[pos] == "]":
            break
        try:
            value, pos = _DECODER.raw_decode(text, pos)
        except json.JSONDecodeError as error:
            stripped = text.rstrip()
            cut = (
                error.pos >= len(stripped)
                or error.msg.startswith("Unterminated string")
                or not stripped.endswith(closing)
            )
            if cut:
                detail = (
                    f"the file is cut inside record {row}, after {len(values)} complete records"
                )
                rejects.add(row, TRUNCATED_FILE, detail, clip(text[pos:]))
            else:
                detail = (
                    f"record {row} is not valid JSON ({error.msg}, char {error.pos}); "
                    "the rest of the array cannot be read"
                )
                rejects.add(row, UNREADABLE, detail, clip(text[pos:]))
            return values
        values.append((row, value))
        pos = _WHITESPACE.match(text, pos).end()
        if pos < len(text) and text[pos] == ",":
            pos += 1
        elif pos < len(text) and text[pos] == "]":
            break
        elif pos < len(text):
            detail = f"expected ',' or ']' after record {row} (char {pos})"
            rejects.add(row + 1, UNREADABLE, detail, clip(text[pos:]))
            return values
    trailing = text[pos + 1 :].strip()
    if top_level and trailing:
        rejects.add(len(values) + 1, UNREADABLE, "data after the end of the array", clip(trailing))
    return values


def _read_csv(path: Path) -> RawTable:
    """A CSV export as string columns, a line with the wrong number of fields rejected.

    Read with pyarrow (fast on millions of rows) with every column typed as string, so that
    ids and postal codes keep their leading zeros and validation happens in one place. The
    delimiter (",", ";" or tab) is the most frequent one in the header. pyarrow hands each
    malformed row to a handler; a row that swallowed several lines (an unclosed quote) is
    split back into lines and each line is read on its own.
    """
    with path.open("rb") as handle:
        header_bytes = handle.readline()
    warnings: Counter[str] = Counter()
    header = _decode(header_bytes, Counter()).strip("\r\n")
    if not header.strip():
        raise LoadError(f"{path}: the file is empty or has no header line")
    delimiter = max((",", ";", "\t"), key=header.count)
    names = [name.strip() for name in next(csv.reader([header], delimiter=delimiter))]
    invalid: list[tuple[int, str]] = []

    def on_invalid_row(row: pa_csv.InvalidRow) -> str:
        invalid.append((row.number or 0, row.text))
        return "skip"

    try:
        table = _parse_csv(path, "utf8", delimiter, names, on_invalid_row)
    except pa.ArrowException as error:
        if "utf8" not in str(error).lower():
            raise LoadError(f"{path}: not a readable CSV file ({error})") from error
        # Spreadsheet exports in France are often Windows-1252, not UTF-8.
        warnings["decoded_as_cp1252"] += 1
        invalid.clear()
        try:
            table = _parse_csv(path, "cp1252", delimiter, names, on_invalid_row)
        except pa.ArrowException as retry_error:
            raise LoadError(f"{path}: not a readable CSV file ({retry_error})") from retry_error
    frame = table.to_pandas()
    frame.columns = names
    rows = _csv_line_numbers(len(frame), invalid)
    if rows is None:
        warnings["row_numbers_approximate"] += 1
        rows = np.arange(2, len(frame) + 2, dtype=np.int64)
    rejects = Rejects()
    recovered_rows: list[int] = []
    recovered: list[list[str | None]] = []
    for number, text in invalid:
        lines = text.split("\n")
        for offset, line in enumerate(lines):
            line = line.rstrip("\r")
            if not line.strip():
                continue
            fields = next(csv.reader([line], delimiter=delimiter))
            if len(lines) > 1 and len(fields) == len(names):
                recovered_rows.append(number + offset)
                recovered.append([value if value != "" else None for value in fields])
            else:
                detail = f"expected {len(names)} fields, found {len(fields)}"
                rejects.add(number + offset, UNREADABLE, detail, line)
    if recovered:
        frame = pd.concat([frame, pd.DataFrame(recovered, columns=names)], ignore_index=True)
        rows = np.concatenate([rows, np.asarray(recovered_rows, dtype=np.int64)])
        order = np.argsort(rows, kind="stable")
        frame, rows = frame.iloc[order].reset_index(drop=True), rows[order]
    # Blank lines (all fields empty) carry no record: dropping them loses nothing.
    blank = frame.isna().all(axis=1).to_numpy()
    frame, rows = frame.loc[~blank].reset_index(drop=True), rows[~blank]
    return RawTable(frame=frame, rows=rows, rejects=rejects, warnings=warnings)


def _parse_csv(
    path: Path,
    encoding: str,
    delimiter: str,
    names: list[str],
    on_invalid_row: Callable[[pa_csv.InvalidRow], str],
) -> pa.Table:
    # Single-threaded so that pyarrow reports the line number of each invalid row; empty
    # lines kept (as null rows, dropped later) so that line numbers can be recomputed.
    return pa_csv.read_csv(
        path,
        read_options=pa_csv.ReadOptions(use_threads=False, encoding=encoding),
        parse_options=pa_csv.ParseOptions(
            delimiter=delimiter, invalid_row_handler=on_invalid_row, ignore_empty_lines=False
        ),
        convert_options=pa_csv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()),
            strings_can_be_null=True,
            null_values=[""],
        ),
    )


def _csv_line_numbers(n_rows: int, invalid: list[tuple[int, str]]) -> np.ndarray | None:
    """Line numbers of the rows pyarrow parsed, from the lines the invalid rows took.

    Exact when each accepted record holds on one line (the export contract of events and
    profiles); None when the counts disagree (a quoted value spanning lines).
    """
    taken = [np.arange(number, number + text.count("\n") + 1) for number, text in invalid if number]
    total_lines = 1 + n_rows + sum(len(lines) for lines in taken)
    all_lines = np.arange(2, total_lines + 1, dtype=np.int64)
    if taken:
        all_lines = np.setdiff1d(all_lines, np.concatenate(taken), assume_unique=True)
    return all_lines if len(all_lines) == n_rows else None
