"""The live catalog: offers as arrays prepared once, so that a request touches numpy only.

A `Catalog` is immutable. Taking in new or changed offers builds a new one (`merged` reuses the
arrays of the offers that did not change, and appends the new ones) and the service swaps one
reference, so a request always sees one whole catalog. `build` stores the offers open anywhere
first, then the others by latitude (`_storage_order`): what a request reads per candidate then
lies in long runs of consecutive rows. Nothing here depends on the model: the model-side arrays
(encoded features, item representations) are prepared from a catalog in `serving.scorer`.

Eligibility is the core's (`recsys.eligibility`), split in two for speed:

* `base_mask(age, disability, at)`: every rule but geography, what `eligible()` keeps with an
  unknown place (which passes every offer geographically): the core's `available` offers
  (once per cache window) that the age rules admit (`AgeClasses`, computed per class of
  offers, not per offer). It depends on the request time only through the offers' dates, so
  it is cached per (age, disability) until the next instant at which an offer opens, ends or
  is deleted: exact, and a dictionary look-up per request.
* geography: the core's latitude index of the catalog's addresses (`geography`, a
  `recsys.geo_index.GeographyIndex` built with the catalog), for the people of a batch of
  requests (`geography.mask`) or the rows of a lone one (`candidate_rows`). Distances
  themselves are computed for the k offers returned only.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from recsys import schema, taxonomy
from recsys.arrays import (
    NEVER_DELETED,
    NO_END,
    OfferArrays,
    concat_rows,
    offer_arrays,
    to_epoch_seconds,
)
from recsys.eligibility import AgeClasses, available, closed, remote_anywhere
from recsys.geo import unit_vectors
from recsys.geo_index import GeographyIndex
from recsys.policy import group_codes, tie_keys
from recsys.rules import offer_tags

logger = logging.getLogger(__name__)

PROGRAMME_NAMES = np.array([*taxonomy.PROGRAMMES, None], dtype=object)  # code -1 → None
DOMAIN_NAMES = np.array([*taxonomy.DOMAINS, None], dtype=object)


class CatalogError(ValueError):
    """A catalog file cannot be read or holds no usable offer."""


def read_offers(path: Path | str) -> tuple[pd.DataFrame, int]:
    """Offers from a canonical Parquet table or an API export (JSON, JSON Lines, CSV).

    Returns the canonical table and the number of export rows the loader rejected.

    Raises:
        CatalogError: the file is missing or unreadable, or a Parquet file misses columns.
    """
    path = Path(path)
    if not path.is_file():
        raise CatalogError(f"catalog: {path} does not exist")
    if path.suffix == ".parquet":
        try:
            frame = schema.read_table(path)
        except Exception as error:  # pyarrow raises several unrelated types
            raise CatalogError(f"catalog: cannot read {path}: {error}") from error
        missing = schema.missing_columns(frame, "offers")
        if missing:
            raise CatalogError(f"catalog: {path} misses offer column(s) {', '.join(missing)}")
        return schema.with_optional_columns(frame, "offers"), 0
    from recsys.loaders import LoadError, load_offers

    try:
        result = load_offers(path)
    except LoadError as error:
        raise CatalogError(f"catalog: {error}") from error
    return result.table, result.rejected


def _one_hot(codes: np.ndarray, width: int) -> np.ndarray:
    out = np.zeros((len(codes), width), dtype=np.float32)
    known = np.flatnonzero(codes >= 0)
    out[known, codes[known]] = 1.0
    return out


def attribute_vectors(arrays: OfferArrays) -> np.ndarray:
    """Unit-norm vectors of what an offer is about (domain, quiz domains, activities, programme).

    The model-independent similarity of `/similar` when no model representation exists.
    """
    blocks = np.hstack(
        [
            _one_hot(arrays.domain, len(taxonomy.DOMAINS)),
            arrays.quiz_domains.astype(np.float32),
            arrays.quiz_activities.astype(np.float32),
            0.5 * _one_hot(arrays.programme, len(taxonomy.PROGRAMMES)),
        ]
    )
    norms = np.linalg.norm(blocks, axis=1, keepdims=True)
    return blocks / np.where(norms > 0, norms, 1.0)


def _fingerprint(offers: pd.DataFrame) -> str:
    """A short content hash: what changes when an offer is added, removed or updated."""
    keys = offers[["id", "updatedAt", "statusCode", "endAt", "deletedAt", "places"]]
    hashed = pd.util.hash_pandas_object(keys.astype(str), index=False).to_numpy()
    return hashlib.sha256(np.sort(hashed).tobytes()).hexdigest()[:12]


def _storage_order(arrays: OfferArrays) -> np.ndarray:
    """The rows of a built catalog: offers open anywhere first, then the others by latitude
    (unknown last), ties in file order.

    Every request's candidates then hold one run of consecutive rows (the offers open
    anywhere) and the rows of its latitude band, so that the per-offer arrays a request
    gathers are read in long sequential runs instead of one row in five across the catalog.
    Row order decides nothing else but which of two equally scored offers comes first (file
    position decided it before).
    """
    return np.lexsort((arrays.lat, ~remote_anywhere(arrays.remote)))


def _require_columns(offers: pd.DataFrame) -> None:
    """Raise CatalogError naming the offer columns `offers` lacks."""
    missing = schema.missing_columns(offers, "offers")
    if missing:
        raise CatalogError(f"catalog: missing offer column(s) {', '.join(missing)}")


@dataclass(frozen=True)
class CatalogChange:
    """What a catalog update did: rows of the old catalog kept (in order) and counts."""

    kept_rows: np.ndarray  # int64 rows of the previous catalog, in the new catalog's order
    added: int
    updated: int
    removed: int
    rejected: int = 0


@dataclass(frozen=True)
class _Eligible:
    """Eligibility but geography for one (age, disability) over one cache window."""

    mask: np.ndarray  # bool (n_offers,)
    rows: np.ndarray  # int64: flatnonzero(mask)
    anywhere_rows: np.ndarray  # int64: the rows of `rows` geography never excludes
    # All three read-only: requests share them.


@dataclass(eq=False)
class Catalog:
    """Offers ready for the hot path; build with `Catalog.build` or `Catalog.merged`."""

    offers: pd.DataFrame = field(repr=False)
    arrays: OfferArrays = field(repr=False)
    source: str
    version: str
    loaded_at: datetime
    row: dict[str, int] = field(repr=False)
    xyz: np.ndarray = field(repr=False)  # (n, 3) unit vectors, NaN without coordinates
    geography: GeographyIndex = field(repr=False)  # the geography rule, indexed
    programme: np.ndarray = field(repr=False)  # object: programme name (None unknown)
    domain: np.ndarray = field(repr=False)  # object: domain name (None unknown)
    publisher_code: np.ndarray = field(repr=False)  # int64 group codes of the caps
    programme_code: np.ndarray = field(repr=False)  # (`recsys.policy.group_codes`)
    tie_key: np.ndarray = field(repr=False)  # int64 `recsys.policy.tie_keys`: ties by offer id
    attributes: np.ndarray = field(repr=False)  # float32 (n, d) unit rows for /similar
    rule_tags: np.ndarray = field(repr=False)  # uint32 `incumbent.offer_tags`, rules fallback
    more_addresses: np.ndarray = field(repr=False)  # bool: offers with other addresses
    age_classes: AgeClasses = field(repr=False)  # the age rules per class of offers
    # (start, end, available, masks): the offers `available` and the base masks by (age,
    # disability), valid for `at` in [start, end). One tuple read at once, so a request never
    # mixes one window's bounds with another's masks.
    _cache: tuple[int, int, np.ndarray, dict[tuple[int, bool], _Eligible]] = field(
        default=(0, -1, np.zeros(0, dtype=bool), {}), repr=False
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __len__(self) -> int:
        return len(self.row)

    @classmethod
    def build(
        cls, offers: pd.DataFrame, source: str, at: int | None = None, rejected: int = 0
    ) -> tuple[Catalog, CatalogChange]:
        """A catalog from a canonical offers table; closed offers are left out.

        Duplicated ids keep their last row (an export lists the newest version last).

        Raises:
            CatalogError: when a column is missing.
        """
        _require_columns(offers)
        at = _now() if at is None else at
        frame = offers.drop_duplicates("id", keep="last").reset_index(drop=True)
        arrays = offer_arrays(frame)
        order = _storage_order(arrays)
        keep = order[~closed(arrays, at)[order]]
        catalog = cls._assemble(frame.iloc[keep].reset_index(drop=True), arrays.take(keep), source)
        change = CatalogChange(
            kept_rows=np.zeros(0, dtype=np.int64),
            added=len(keep),
            updated=0,
            removed=len(frame) - len(keep),
            rejected=rejected,
        )
        return catalog, change

    def merged(
        self, update: pd.DataFrame, source: str, at: int | None = None, rejected: int = 0
    ) -> tuple[Catalog, CatalogChange]:
        """This catalog with `update`'s offers added or replacing those of the same id.

        Only the updated offers are turned into arrays; the others are reused. An update
        that closes an offer (refused, deleted, ended) removes it.
        """
        _require_columns(update)
        at = _now() if at is None else at
        frame = update.drop_duplicates("id", keep="last").reset_index(drop=True)
        new_arrays = offer_arrays(frame)
        open_new = np.flatnonzero(~closed(new_arrays, at))
        replaced = frame["id"].astype(str).isin(self.row).to_numpy()
        old_ids = self.arrays.ids
        still_open = ~closed(self.arrays, at)
        untouched = ~pd.Index(old_ids).isin(frame["id"].astype(str)) & still_open
        kept_rows = np.flatnonzero(untouched)
        offers = pd.concat([self.offers.iloc[kept_rows], frame.iloc[open_new]], ignore_index=True)
        arrays = concat_rows([self.arrays.take(kept_rows), new_arrays.take(open_new)])
        catalog = self._assemble(offers, arrays, source)
        change = CatalogChange(
            kept_rows=kept_rows,
            added=int((~replaced[open_new]).sum()),
            updated=int(replaced[open_new].sum()),
            removed=len(self) - len(kept_rows) - int(replaced[open_new].sum()),
            rejected=rejected,
        )
        return catalog, change

    @classmethod
    def _assemble(cls, offers: pd.DataFrame, arrays: OfferArrays, source: str) -> Catalog:
        ids = arrays.ids.astype(str)
        publisher_code, programme_code = group_codes(arrays)
        xyz = unit_vectors(arrays.lat, arrays.lon)
        catalog = cls(
            offers=offers,
            arrays=arrays,
            source=source,
            version=_fingerprint(offers) if len(offers) else "empty",
            loaded_at=datetime.now(UTC),
            row={offer_id: i for i, offer_id in enumerate(ids)},
            xyz=xyz,
            geography=GeographyIndex.build(arrays),
            programme=PROGRAMME_NAMES[arrays.programme],
            domain=DOMAIN_NAMES[arrays.domain],
            publisher_code=publisher_code,
            programme_code=programme_code,
            tie_key=tie_keys(ids),
            attributes=attribute_vectors(arrays),
            rule_tags=offer_tags(arrays),
            more_addresses=np.array([p is not None for p in arrays.more_points], dtype=bool),
            age_classes=AgeClasses.of(arrays),
        )
        logger.info("catalog built: %d offers, version %s", len(catalog), catalog.version)
        return catalog

    # --- Eligibility -------------------------------------------------------------------------

    def _next_change(self, at: int) -> int:
        """The first instant after `at` at which an offer opens, ends or is deleted."""
        a = self.arrays
        candidates = [
            a.posted_at[a.posted_at > at],
            a.deleted_at[(a.deleted_at > at) & (a.deleted_at != NEVER_DELETED)],
            a.end_at[(a.end_at >= at) & (a.end_at != NO_END)] + 1,
        ]
        soonest = [int(c.min()) for c in candidates if c.size]
        return min(soonest, default=np.iinfo(np.int64).max)

    def base_mask(self, age: float | None, disability: bool, at: int) -> np.ndarray:
        """Every eligibility rule but geography, for a person of this age at `at` (cached).

        Read-only: callers combine it into a new array, never write to it.
        """
        return self._eligible(age, disability, at).mask

    def _eligible(self, age: float | None, disability: bool, at: int) -> _Eligible:
        """`base_mask` and its row lists for this age at `at`, computed once per window."""
        # Ages capped at the schema's bound: the cache holds at most 2 · (MAX_AGE + 2) masks.
        years = -1 if age is None or math.isnan(age) else min(math.floor(age), schema.MAX_AGE)
        key = (years, bool(disability))
        cache = self._cache
        if not cache[0] <= at < cache[1]:
            with self._lock:
                cache = self._cache
                if not cache[0] <= at < cache[1]:
                    cache = (at, self._next_change(at), available(self.arrays, at), {})
                    self._cache = cache
        found = cache[3].get(key)
        if found is None:
            admitted = self.age_classes.admits(None if years < 0 else float(years), disability)
            mask = cache[2] & admitted
            mask.flags.writeable = False
            found = _Eligible(
                mask, np.flatnonzero(mask), np.flatnonzero(mask & self.geography.anywhere)
            )
            for shared in (found.rows, found.anywhere_rows):
                shared.flags.writeable = False
            cache[3][key] = found
        return found

    def candidate_rows(
        self,
        lat: float,
        lon: float,
        radius_km: float,
        age: float | None,
        disability: bool,
        at: int,
    ) -> np.ndarray:
        """The rows, ascending, where `base_mask` and the geography rule of one person hold:
        the cached rows of `base_mask` through the geography index
        (`GeographyIndex.kept_rows`), without a mask over the whole catalog."""
        found = self._eligible(age, disability, at)
        return self.geography.kept_rows(
            lat, lon, radius_km, found.mask, found.rows, found.anywhere_rows
        )

    def available_count(self, at: int) -> int:
        """Offers open now for someone whose age and place are unknown."""
        return int(self.base_mask(None, False, at).sum())


def _now() -> int:
    return int(datetime.now(UTC).timestamp())


def epoch_seconds(stamp: pd.Timestamp | datetime) -> int:
    """Epoch seconds of an aware timestamp, the unit of `OfferArrays`' dates."""
    return int(to_epoch_seconds(pd.Series([stamp]), 0)[0])


def load_catalog(path: Path | str, at: int | None = None) -> tuple[Catalog, CatalogChange]:
    """Read a catalog file (see `read_offers`) and build it."""
    offers, rejected = read_offers(path)
    return Catalog.build(offers, str(path), at=at, rejected=rejected)
