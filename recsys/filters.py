"""Search filters of a list (the incumbent widget's): they narrow the candidates, never widen.

A filter is applied after eligibility (`recsys.eligibility`) in the candidate step
(`recsys.candidates`), so an offer a person may not join never comes back through a filter.
Each filter is "any of these values" and filters combine with AND; an empty or absent filter
does not restrict. What a filter reads is prepared once per catalog (`FilterColumns.of`):
inverted indexes from each value to the offers carrying it, so a request only unions a few
row arrays.

City names match without case, accents, hyphens or apostrophes ("Saint-Étienne" =
"saint etienne"); a 5-character value (digits, or 2A/2B + 3 digits) is a postal code. An
offer is in a department, a postal code or a city when any of its addresses is (its
flattened first address and every entry of `addresses`), as eligibility keeps an offer when
any of its addresses is near.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from recsys import taxonomy
from recsys.arrays import NO_END, OfferArrays

POSTAL_CODE = re.compile(r"^(\d{5}|2[AB]\d{3})$")
DAY_SECONDS = 86_400


def city_key(name: str) -> str:
    """A city name as it is compared: lower case, no accents, words split by single spaces."""
    words = re.split(r"[\s\-'’]+", name)
    plain = unicodedata.normalize("NFKD", " ".join(words)).encode("ascii", "ignore").decode()
    return " ".join(plain.lower().split())


@dataclass(frozen=True)
class OfferFilters:
    """What a list is restricted to; None or empty means no restriction.

    Times are epoch seconds (UTC); durations are whole days from start to end (an offer
    without an end has no bounded duration: it passes `min_duration_days` only).
    """

    types: Sequence[str] | None = None
    domains: Sequence[str] | None = None
    remote: Sequence[str] | None = None
    activities: Sequence[str] | None = None
    departments: Sequence[str] | None = None
    cities: Sequence[str] | None = None
    organisations: Sequence[str] | None = None
    publishers: Sequence[str] | None = None
    open_to_minors: bool | None = None
    snu: bool | None = None
    start_after: int | None = None
    start_before: int | None = None
    min_duration_days: int | None = None
    max_duration_days: int | None = None


def _index(values: pd.Series, key: Callable[[Any], str | None] = str) -> dict[str, np.ndarray]:
    """`key(value)` → ascending rows holding a value of that key; the rows are `values`'
    labels (in any order, a row may hold several values), missing values and None or empty
    keys are left out.

    The key is computed once per distinct value and the rows gathered from one sort, not
    group by group: at 100k offers, with thousands of distinct cities and organisations,
    that took the indexes from seconds to a fraction of one (docs/benchmarks.md).
    """
    codes, distinct = pd.factorize(values.astype(object))  # missing: -1
    labels = values.index.to_numpy(dtype=np.int64)
    order = np.lexsort((labels, codes))  # by value, then by row
    bounds = np.searchsorted(codes[order], np.arange(len(distinct) + 1))
    rows = labels[order]
    parts: dict[str, list[np.ndarray]] = {}
    for code, value in enumerate(distinct):
        name = key(value)
        if name:
            parts.setdefault(name, []).append(rows[bounds[code] : bounds[code + 1]])
    return {name: _ascending(held) for name, held in parts.items()}


def _ascending(parts: list[np.ndarray]) -> np.ndarray:
    """The rows of non-decreasing `parts` as one ascending array, each row once."""
    rows = parts[0] if len(parts) == 1 else np.sort(np.concatenate(parts))
    return rows[np.concatenate(([True], rows[1:] != rows[:-1]))]


@dataclass(frozen=True)
class FilterColumns:
    """Inverted indexes of the offers' filterable text fields, aligned with `OfferArrays`."""

    n: int
    activity: dict[str, np.ndarray]
    department: dict[str, np.ndarray]
    postal_code: dict[str, np.ndarray]
    city: dict[str, np.ndarray]
    organisation: dict[str, np.ndarray]
    publisher: dict[str, np.ndarray]

    @classmethod
    def of(cls, offers: pd.DataFrame) -> FilterColumns:
        """From a canonical offers table whose rows are the `OfferArrays` rows."""

        def column(name: str) -> pd.Series:
            if name in offers.columns:
                return offers[name].astype(object).reset_index(drop=True)
            return pd.Series([None] * len(offers), dtype=object)

        def listed(name: str) -> pd.Series:
            """The entries of a list column, one per value, labelled by their row."""
            lists = column(name).map(
                lambda v: list(v) if isinstance(v, list | tuple | np.ndarray) else []
            )
            return lists.explode().dropna()

        addresses = listed("addresses")

        def places(name: str) -> pd.Series:
            """An address field's values, labelled by row: flattened, then of every address."""
            other = pd.Series([a[name] for a in addresses], index=addresses.index, dtype=object)
            return pd.concat([column(name), other])

        return cls(
            n=len(offers),
            activity=_index(listed("activities").astype(str)),
            department=_index(places("departmentCode")),
            postal_code=_index(places("postalCode")),
            city=_index(places("city"), lambda v: city_key(v) if isinstance(v, str) else None),
            organisation=_index(
                column("organizationName"),
                lambda v: v.strip().lower() if isinstance(v, str) else None,
            ),
            publisher=_index(column("publisherId")),
        )

    def any_of(self, index: dict[str, np.ndarray], values: Iterable[str]) -> np.ndarray:
        """(n,) bool: the offers holding one of `values` in `index`."""
        mask = np.zeros(self.n, dtype=bool)
        for value in values:
            rows = index.get(value)
            if rows is not None:
                mask[rows] = True
        return mask


def one_of(column: np.ndarray, codes: list[int], n_codes: int) -> np.ndarray:
    """`np.isin(column, codes)` for codes in [0, n_codes) and -1 (unknown, never chosen):
    a look-up per offer where `isin` sorts."""
    allowed = np.zeros(n_codes + 1, dtype=bool)  # the last slot is -1's, False
    allowed[codes] = True
    return allowed[column]


def filter_mask(
    offers: OfferArrays, columns: FilterColumns, filters: OfferFilters
) -> np.ndarray | None:
    """(n_offers,) bool where every set filter holds; None when none is set.

    Raises:
        ValueError: a programme, domain or remote value outside its vocabulary.
    """
    masks: list[np.ndarray] = []
    for values, column, vocabulary in (
        (filters.types, offers.programme, taxonomy.PROGRAMMES),
        (filters.domains, offers.domain, taxonomy.DOMAINS),
        (filters.remote, offers.remote, taxonomy.REMOTE_VALUES),
    ):
        if values:
            codes = [vocabulary.index(value) for value in values]
            masks.append(one_of(column, codes, len(vocabulary)))
    if filters.activities:
        masks.append(columns.any_of(columns.activity, filters.activities))
    if filters.departments:
        masks.append(columns.any_of(columns.department, [d.upper() for d in filters.departments]))
    if filters.cities:
        codes = [c.upper() for c in filters.cities if POSTAL_CODE.match(c.upper())]
        names = [city_key(c) for c in filters.cities if not POSTAL_CODE.match(c.upper())]
        masks.append(
            columns.any_of(columns.postal_code, codes) | columns.any_of(columns.city, names)
        )
    if filters.organisations:
        wanted = [o.strip().lower() for o in filters.organisations]
        masks.append(columns.any_of(columns.organisation, wanted))
    if filters.publishers:
        masks.append(columns.any_of(columns.publisher, filters.publishers))
    if filters.open_to_minors is not None:
        masks.append((offers.open_to_minors == 1) == filters.open_to_minors)
    if filters.snu is not None:
        masks.append(offers.snu == filters.snu)
    if filters.start_after is not None:
        masks.append(offers.start_at >= filters.start_after)
    if filters.start_before is not None:
        masks.append(offers.start_at <= filters.start_before)
    bounded = offers.end_at != NO_END
    days = np.where(
        bounded, (offers.end_at - offers.start_at) // DAY_SECONDS, np.iinfo(np.int64).max
    )
    if filters.min_duration_days is not None:
        masks.append(days >= filters.min_duration_days)
    if filters.max_duration_days is not None:
        masks.append(bounded & (days <= filters.max_duration_days))
    if not masks:
        return None
    return np.logical_and.reduce(masks)
