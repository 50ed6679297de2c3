"""What a front displays of each listed offer, so that it needs no second call per offer.

The display columns of a catalog are prepared once, when the engine takes the catalog in
(`display_columns`, kept as long as the catalog lives, like `serving.filtering`), as Python
lists: a list then reads k values per field. Texts come from partners as they are (titles
and organisation names may hold HTML): every consumer must escape them; the service never
renders them.
French labels of programmes and domains are `recsys.taxonomy`'s.

The place shown (city, postal code, department, lat, lon) is that of the offer's address
nearest to the person (`recsys.eligibility.nearest_addresses`, the distance the list
shows): the flattened first address, unless another of the offer's `addresses` is nearer.
Without a person's place, the first address.

`fields` (RankRequest) keeps a subset: `DISPLAY_FIELDS` names every field this adds.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import pandas as pd

from recsys import schema, taxonomy
from serving.catalog import Catalog

# Display field -> the offers column it comes from (None: computed below).
DISPLAY_FIELDS: Final[dict[str, str | None]] = {
    "title": "title",
    "organisation": "organizationName",
    "publisher": "publisherName",
    "city": "city",
    "postal_code": "postalCode",
    "department": "departmentCode",
    "start_at": "startAt",
    "end_at": "endAt",
    "places_left": "places",
    "remote": "remote",
    "programme_label": None,
    "domain_label": None,
    "application_url": "applicationUrl",
    "lat": "lat",
    "lon": "lon",
}

# The display fields an address of the offer (`schema.ADDRESS_LIST`) carries.
_ADDRESS_FIELDS: Final[dict[str, str]] = {
    field: column
    for field, column in DISPLAY_FIELDS.items()
    if column in schema.ADDRESS_LIST.value_type.names
}

_columns: weakref.WeakKeyDictionary[Catalog, dict[str, list]] = weakref.WeakKeyDictionary()
# Every display field of a catalog row, by row, filled as rows are first listed: a list then
# copies one dict per offer instead of reading fifteen columns (docs/benchmarks.md).
_listed: weakref.WeakKeyDictionary[Catalog, dict[int, dict[str, Any]]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def _values(offers: pd.DataFrame, column: str) -> list:
    """A column's values as JSON-ready Python objects, None where missing: dates as ISO 8601
    strings, `places` as ints.

    Converted by pandas and numpy, not value by value through pandas scalars: at 100k offers
    that took the display columns from seconds to a fraction of one (docs/benchmarks.md).
    """
    if column not in offers.columns:
        return [None] * len(offers)
    series = offers[column]
    if pd.api.types.is_datetime64_any_dtype(series):  # in UTC, as the schema stores dates
        # As `Timestamp.isoformat` prints them: seconds, microseconds only when there are some.
        instants = series.to_numpy(dtype="datetime64[us]")
        text = np.datetime_as_string(instants)
        whole = instants == instants.astype("datetime64[s]")
        stamps = np.where(whole, text.astype("U19"), text).astype(object) + "+00:00"
        stamps[np.isnat(instants)] = None
        return stamps.tolist()
    values = series.to_numpy(dtype=object, na_value=None).tolist()
    if column == "places":
        values = [None if value is None else int(value) for value in values]
    return values


def display_columns(catalog: Catalog) -> dict[str, list]:
    """Each display field's value for every catalog row (built once per catalog)."""
    with _lock:
        columns = _columns.get(catalog)
        if columns is None:
            offers = catalog.offers
            columns = {
                field: _values(offers, column)
                for field, column in DISPLAY_FIELDS.items()
                if column is not None
            }
            columns["programme_label"] = [
                taxonomy.PROGRAMME_LABELS_FR.get(p) for p in catalog.programme.tolist()
            ]
            columns["domain_label"] = [
                taxonomy.DOMAIN_LABELS_FR.get(d) for d in catalog.domain.tolist()
            ]
            _columns[catalog] = columns
        return columns


def display(
    catalog: Catalog,
    rows: Sequence[int],
    fields: Sequence[Sequence[str] | None],
    nearest: Sequence[int],
) -> list[dict[str, Any]]:
    """The display fields of catalog rows `rows`: row i's are `fields[i]` (None: all), in
    `DISPLAY_FIELDS`' order (`RankedItem`'s, so an answer reads as its model writes it), its
    place that of address `nearest[i]` (`recsys.eligibility.nearest_addresses`: -1 the
    first address, j the offer's other address `more_points[j]`)."""
    columns = display_columns(catalog)
    with _lock:
        listed = _listed.setdefault(catalog, {})
    every = list(DISPLAY_FIELDS)
    out = []
    for row, chosen, which in zip(rows, fields, nearest, strict=True):
        full = listed.get(row)
        if full is None:  # a race only builds the same dict twice
            full = listed[row] = {field: columns[field][row] for field in every}
        if chosen is None:
            shown = dict(full)
        else:
            shown = {field: full[field] for field in every if field in chosen}
        if which >= 0:
            address = _other_address(catalog, row, which)
            for field in shown.keys() & _ADDRESS_FIELDS.keys():
                shown[field] = address[_ADDRESS_FIELDS[field]]
        out.append(shown)
    return out


def _other_address(catalog: Catalog, row: int, which: int) -> dict[str, Any]:
    """The `addresses` entry of offer `row` placed at its other point `which`
    (`OfferArrays.more_points` keeps the coordinates of the placed addresses, deduplicated)."""
    lat, lon = catalog.arrays.more_points[row][which].tolist()
    for address in catalog.offers["addresses"].iat[row]:
        if address["lat"] == lat and address["lon"] == lon:
            return address
    raise AssertionError(f"offer {catalog.arrays.ids[row]}: no address at ({lat}, {lon})")
