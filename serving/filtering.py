"""The request filters over the live catalog: `recsys.filters`, prepared once per catalog.

A catalog is immutable and replaced whole (`serving.engine`), so what the filters read
(`recsys.filters.FilterColumns`) is built when the engine takes a catalog in, before it
serves, and kept as long as the catalog lives.
"""

from __future__ import annotations

import threading
import weakref

import numpy as np

from recsys.filters import FilterColumns, filter_mask
from serving.catalog import Catalog
from serving.schemas import RankFilters

_columns: weakref.WeakKeyDictionary[Catalog, FilterColumns] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def filter_columns(catalog: Catalog) -> FilterColumns:
    """The catalog's filter indexes (built once, under a lock: batches run on threads)."""
    with _lock:
        columns = _columns.get(catalog)
        if columns is None:
            columns = _columns[catalog] = FilterColumns.of(catalog.offers)
        return columns


def filters_hold(catalog: Catalog, filters: RankFilters | None) -> np.ndarray | None:
    """(n_offers,) bool where the request's filters hold; None when it sets none."""
    if filters is None:
        return None
    core = filters.core()
    if not any(value not in (None, [], ()) for value in vars(core).values()):
        return None
    return filter_mask(catalog.arrays, filter_columns(catalog), core)
