"""Loaders of real exports (offers, stat events, profiles) into the canonical tables.

Each loader validates every row against `recsys.schema`: a row is either accepted into the
table or rejected with a reason code (see `result`), never dropped silently. `store` merges a
loaded export into a dataset folder without losing what is already stored. The reject
reasons and the field mapping are documented in docs/data_formats.md.
"""

from __future__ import annotations

from recsys.loaders.events import load_events
from recsys.loaders.offers import load_offers
from recsys.loaders.profiles import load_profiles
from recsys.loaders.result import LoadError, LoadResult
from recsys.loaders.store import StoreReport, store

LOADERS = {"offers": load_offers, "events": load_events, "profiles": load_profiles}

__all__ = [
    "LOADERS",
    "LoadError",
    "LoadResult",
    "StoreReport",
    "load_events",
    "load_offers",
    "load_profiles",
    "store",
]
