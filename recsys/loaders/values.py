"""Vectorised parsers from raw export values to canonical column values.

Every parser returns the parsed column and a boolean mask of the values that were present but
could not be parsed, so that a loader can reject those rows with the field's name instead of
silently turning a bad value into a missing one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import date, datetime
from html.parser import HTMLParser
from typing import Final

import numpy as np
import pandas as pd

from recsys.arrays import is_missing
from recsys.geo import POSTAL_CODE

TRUE_WORDS: Final = frozenset({"yes", "true", "1", "1.0", "oui", "y", "t"})
FALSE_WORDS: Final = frozenset({"no", "false", "0", "0.0", "non", "n", "f"})
_BOOL_WORDS: Final = {**dict.fromkeys(TRUE_WORDS, True), **dict.fromkeys(FALSE_WORDS, False)}
_NOT_SCALAR: Final = object()  # marker of a dict or list where a scalar was expected

Parsed = tuple[pd.Series, np.ndarray]


def _scalar_text(value: object) -> object:
    if is_missing(value):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    if isinstance(value, datetime | date):
        return value.isoformat()
    return _NOT_SCALAR


def as_text(values: pd.Series) -> Parsed:
    """Stripped strings, null where missing or blank; bad where a dict or list stands instead.

    Numbers become their decimal spelling without a spurious ".0" (an id exported as 1234.0
    reads "1234"), booleans "true"/"false".
    """
    n = len(values)
    if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        text = values.astype("string")
        bad = np.zeros(n, dtype=bool)
    else:
        # Python only on the values present: a sparse column (an apply-only attribute over
        # millions of prints) costs what its few values cost.
        present = np.flatnonzero(values.notna().to_numpy(dtype=bool))
        texts = [_scalar_text(value) for value in values.iloc[present]]
        converted = np.full(n, None, dtype=object)
        bad = np.zeros(n, dtype=bool)
        bad[present] = [value is _NOT_SCALAR for value in texts]
        converted[present] = texts
        converted[bad] = None
        text = pd.Series(converted, index=values.index, dtype="string")
    text = text.str.strip()
    blank = (text == "").fillna(False).astype(bool)
    return text.mask(blank).astype("string"), bad


def as_bool(values: pd.Series) -> Parsed:
    """yes/no, true/false, oui/non, 1/0 (any case) as a nullable boolean; null stays null."""
    if pd.api.types.is_bool_dtype(values):
        return values.astype("boolean"), np.zeros(len(values), dtype=bool)
    text, bad = as_text(values)
    parsed = text.str.lower().map(_BOOL_WORDS).astype("boolean")
    bad = bad | (text.notna() & parsed.isna()).to_numpy(dtype=bool)
    return parsed, bad


def as_number(values: pd.Series) -> Parsed:
    """Floats (a French decimal comma is accepted); bad where present but not a number."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.astype("float64"), np.zeros(len(values), dtype=bool)
    text, bad = as_text(values)
    try:  # the common case, every value a well-formed number: one vectorised cast
        number = text.astype("float64")
    except (ValueError, TypeError):
        number = pd.to_numeric(text.str.replace(",", ".", regex=False), errors="coerce")
        number = number.astype("float64")
    bad = bad | (text.notna() & number.isna()).to_numpy(dtype=bool)
    return number, bad


def as_int(values: pd.Series, low: int, high: int) -> Parsed:
    """Integers in [low, high] as float64 (NaN = missing); bad when fractional or out of range."""
    number, bad = as_number(values)
    finite = number.notna().to_numpy(dtype=bool)
    raw = number.to_numpy(dtype=float, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        wrong = finite & ((raw % 1 != 0) | (raw < low) | (raw > high))
    return number.mask(wrong), bad | wrong


def as_timestamp(values: pd.Series) -> Parsed:
    """ISO 8601 timestamps as UTC at millisecond precision; a naive timestamp is read as UTC.

    Bad where present but unparseable (including numbers: an epoch is ambiguous between
    seconds and milliseconds, so it is refused rather than guessed).
    """
    if pd.api.types.is_datetime64_any_dtype(values):
        stamps = pd.Series(values)
        stamps = (
            stamps.dt.tz_localize("UTC") if stamps.dt.tz is None else stamps.dt.tz_convert("UTC")
        )
        bad = np.zeros(len(values), dtype=bool)
    else:
        text, bad = as_text(values)
        is_number = text.str.fullmatch(r"[+-]?\d+(?:\.\d*)?").fillna(False).to_numpy(dtype=bool)
        text = text.mask(is_number)
        stamps = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
        bad = bad | is_number | (text.notna() & stamps.isna()).to_numpy(dtype=bool)
    return stamps.dt.floor("ms").dt.as_unit("ms"), bad


def as_postal_code(values: pd.Series) -> Parsed:
    """French postal codes; a 4-digit code lost its leading zero in a spreadsheet and gets it
    back ("1000" → "01000"). Bad where present but not a postal code."""
    text, bad = as_text(values)
    text = text.str.upper()
    four_digits = text.str.fullmatch(r"[0-9]{4}").fillna(False).astype(bool)
    text = text.mask(four_digits, "0" + text)
    valid = text.str.fullmatch(POSTAL_CODE.pattern).fillna(False).astype(bool)
    bad = bad | (text.notna() & ~valid).to_numpy(dtype=bool)
    return text, bad


def in_vocabulary(text: pd.Series, vocabulary: Iterable[str]) -> np.ndarray:
    """Mask of present values outside `vocabulary`."""
    return (text.notna() & ~text.isin(list(vocabulary))).to_numpy(dtype=bool)


def _split_list(value: object) -> list[str] | None:
    if is_missing(value):
        return []
    if isinstance(value, str):
        value = value.strip()
        if value.startswith("["):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                return None
            if not isinstance(value, list):
                return None
        else:
            value = re.split(r"[;|]", value)
    if isinstance(value, list | tuple | np.ndarray):
        items = []
        for item in value:
            if is_missing(item):
                continue
            if not isinstance(item, str):
                return None
            if item.strip():
                items.append(item.strip())
        return list(dict.fromkeys(items))
    return None


def as_str_list(values: pd.Series) -> Parsed:
    """Lists of strings from lists, JSON strings ('["a", "b"]') or ";"- or "|"-separated strings.

    Missing gives an empty list; blanks and repeats are dropped; bad where the value is none
    of these shapes or holds a non-string item.
    """
    parsed = values.map(_split_list, na_action=None)
    bad = parsed.isna().to_numpy(dtype=bool)
    return parsed.where(~bad, None), bad


def unknown_items(lists: pd.Series, vocabulary: Iterable[str]) -> pd.Series:
    """Per row, the items of a list column that are outside `vocabulary` (empty list if none)."""
    allowed = frozenset(vocabulary)
    return lists.map(lambda items: [] if items is None else [i for i in items if i not in allowed])


class _TextExtractor(HTMLParser):
    """Collects the text of an HTML fragment; block elements become spaces."""

    BLOCK_TAGS: Final = frozenset(
        {"p", "br", "div", "li", "ul", "ol", "tr", "td", "th", "table", "hr", "blockquote"}
        | {"h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "pre", "dd", "dt"}
    )
    SKIPPED_TAGS: Final = frozenset({"script", "style"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIPPED_TAGS:
            self._skipping += 1
        elif tag in self.BLOCK_TAGS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIPPED_TAGS:
            self._skipping = max(0, self._skipping - 1)
        elif tag in self.BLOCK_TAGS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def html_to_text(value: str) -> str:
    """Plain text of an HTML description: tags dropped, entities unescaped, paragraph and line
    breaks kept as single spaces, whitespace runs (non-breaking spaces included) collapsed.

    Written on the standard library's `html.parser` because BeautifulSoup is not a project
    dependency and a tolerant tag stripper is all a description needs.
    """
    if "<" not in value and "&" not in value:
        return " ".join(value.split())
    extractor = _TextExtractor()
    extractor.feed(value)
    extractor.close()
    return " ".join("".join(extractor.parts).split())
