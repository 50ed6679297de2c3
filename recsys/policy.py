"""The list policy: from a model's scores and a candidate set to the list a person is served.

Offline evaluation (`recsys.evaluation`, its default `served` policy), the registered model
(`recsys.bundle`) and the service (`serving.ranking`) all make their lists here, so the lists
measured are the lists served. Given each person's candidates (eligibility, request filters:
`recsys.candidates`) and the model's scores of them, the policy:

1. removes the exclusions (`exclude`, `exclude_rows`): offers the person already applied to
   (evaluation: the feature set's applies before the cutoff; the registered model: the same,
   kept in the bundle; the service: the bundle's and the event store's since) and the offers
   a request asks to leave out;
2. blends the rules engine into the scores of people the model learned nothing about
   (`ListPolicy.served_scores`): for a model that does not blend the rules itself
   (`Recommender.blends_rules`), both scores are standardised over the person's candidates
   and mixed, `(1 − a) · z(model) + a · z(rules)`, a = `cold_start_rules_weight`; people the
   model knows keep the model's score;
3. keeps a pool of the best candidates (`ListPolicy.pool_size`), ties broken by offer id
   (`tie_keys`), so that two stores of the same offers in another order give the same list;
4. caps the list twice, greedily: publishers (`max_per_publisher` of k slots), then
   programmes (`max_per_programme`), `recsys.ranking.diversify`. The programme cap holds
   exactly, the publisher cap as far as the programme cap allows; a group exceeds its cap
   only when no alternative is left.

Two paths give the same lists: `ListPolicy.lists` over many people at once (numpy across
rows, what evaluation runs) and `ListPolicy.order_pool` over one person's pool (a walk over a
Python list of at most a few hundred ints, what a lone request runs: the vectorised walk's
dozens of numpy calls per step cost more than a request's scoring). Tests hold them equal.
Pages after the first are lists of k made one after the other (`ListPolicy.order_page`, what
the service answers to an `offset`; `ListPolicy.pages`, the same for many people, what the
closed-loop replay shows), not slices of one longer list: the caps are those of k.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numba
import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys import taxonomy
from recsys.arrays import OfferArrays
from recsys.ranking import PAD, diversify, top_k
from recsys.typed_config import DictConfig

POOL_FACTOR = 5  # candidates kept before the caps, per slot of the list
MIN_POOL = 50
SERVED = "served"
RAW = "raw"
POLICIES = (SERVED, RAW)


def group_cap(share: float, k: int) -> int:
    """Most slots of a k-list one group may take: ceil(share · k), at least 1."""
    return max(1, math.ceil(share * k - 1e-9))


def group_codes(offers: OfferArrays) -> tuple[np.ndarray, np.ndarray]:
    """Each offer's publisher and programme group codes (non-negative int64), as the caps see
    them: an offer without a publisher or a programme is a group of its own kind."""
    publisher = pd.factorize(offers.publisher_ids, use_na_sentinel=False)[0].astype(np.int64)
    programme = np.where(offers.programme >= 0, offers.programme, len(taxonomy.PROGRAMMES))
    return publisher, programme.astype(np.int64)


def tie_keys(offer_ids: np.ndarray) -> np.ndarray:
    """Each offer's rank in the sorted ids (int64): equal scores list the smaller id first,
    however the offers are stored (the service stores its catalog by latitude)."""
    keys = np.empty(len(offer_ids), dtype=np.int64)
    keys[np.argsort(np.asarray(offer_ids).astype(str), kind="stable")] = np.arange(len(offer_ids))
    return keys


def exclude(masks: np.ndarray, excluded: sp.spmatrix | Sequence[np.ndarray]) -> np.ndarray:
    """`masks` (n_people, n_offers) without each person's excluded offers, in place.

    Args:
        masks: candidates, True where an offer may be listed.
        excluded: a sparse (n_people, n_offers) matrix, non-zero where the person already
            applied, or one array of offer positions per person.
    """
    if sp.issparse(excluded):
        if excluded.shape != masks.shape:
            raise ValueError(f"excluded has shape {excluded.shape}, expected {masks.shape}")
        rows, cols = excluded.nonzero()
        masks[rows, cols] = False
        return masks
    for person, columns in enumerate(excluded):
        masks[person, columns] = False
    return masks


def exclude_rows(rows: np.ndarray, excluded: np.ndarray) -> np.ndarray:
    """`exclude` of one person whose candidates are the rows `rows` (ascending)."""
    return rows[~np.isin(rows, excluded)] if len(excluded) else rows


@dataclass(frozen=True)
class RowStats:
    """Each row's mean and standard deviation over its finite values where a mask holds
    (a NaN counts as the mean): what standardises a person's scores over their candidates.
    Rows are independent: a batch standardises as one row would."""

    mean: np.ndarray  # (n_rows, 1)
    std: np.ndarray  # (n_rows, 1), 1 where the values are (numerically) constant

    @classmethod
    def of(cls, values: np.ndarray, mask: np.ndarray) -> RowStats:
        mean = np.empty((values.shape[0], 1))
        std = np.empty((values.shape[0], 1))
        _row_moments(np.ascontiguousarray(values, dtype=np.float64), mask, mean, std)
        return cls(mean, np.where(std > 1e-12, std, 1.0))

    def standardised(self, values: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """(x − mean) / std where x is finite and `mask` holds; elsewhere 0."""
        return np.where(np.isfinite(values) & mask, (values - self.mean) / self.std, 0.0)


@numba.njit(cache=True, nogil=True)
def _row_moments(values: np.ndarray, mask: np.ndarray, mean: np.ndarray, std: np.ndarray) -> None:
    """Each row's mean and (population) standard deviation over its finite values where
    `mask` holds, into `mean` and `std` (n_rows, 1); 0 and 0 for a row with none.

    Two compiled passes per row, where numpy's masking, mean and deviations make a dozen
    passes over a request's tens of thousands of candidates (docs/benchmarks.md).
    """
    for i in range(values.shape[0]):
        count, total = 0, 0.0
        for j in range(values.shape[1]):
            if mask[i, j] and math.isfinite(values[i, j]):
                count += 1
                total += values[i, j]
        centre = total / count if count else 0.0
        squares = 0.0
        for j in range(values.shape[1]):
            if mask[i, j] and math.isfinite(values[i, j]):
                squares += (values[i, j] - centre) ** 2
        mean[i, 0] = centre
        std[i, 0] = math.sqrt(squares / count) if count else 0.0


@numba.njit(cache=True, nogil=True)
def _blend(
    values: np.ndarray,
    rules: np.ndarray,
    mask: np.ndarray,
    known: np.ndarray,
    model_mean: np.ndarray,
    model_std: np.ndarray,
    rules_mean: np.ndarray,
    rules_std: np.ndarray,
    weight: float,
    out: np.ndarray,
) -> None:
    """`out` = the model's score for known people (`known[i]`), else
    `(1 − weight)·z(model) + weight·z(rules)`, each z `RowStats.standardised` (0 where the
    score is not finite or `mask` fails); `rules` is read only when `weight` > 0.

    One compiled pass where numpy's masked standardisations and mix make a dozen passes with
    their temporaries over every person's candidates.
    """
    for i in range(values.shape[0]):
        if known[i]:
            out[i] = values[i]
            continue
        for j in range(values.shape[1]):
            admitted = mask[i, j]
            value = values[i, j]
            z_model = (value - model_mean[i]) / model_std[i]
            if not (admitted and math.isfinite(value)):
                z_model = 0.0
            z_rules = 0.0
            if weight > 0:
                rule = rules[i, j]
                if admitted and math.isfinite(rule):
                    z_rules = (rule - rules_mean[i]) / rules_std[i]
            out[i, j] = (1.0 - weight) * z_model + weight * z_rules


@dataclass(frozen=True)
class ModelScores:
    """The model's own scores of people's candidates, and their statistics per person over
    their candidates `masks` (measured when first needed: a list of known people needs none)."""

    values: np.ndarray  # (n_people, n_columns)
    masks: np.ndarray  # (n_people, n_columns) bool

    @functools.cached_property
    def stats(self) -> RowStats:
        return RowStats.of(self.values, self.masks)

    def z(self, people: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """Standardised score of column `positions[i]` for person `people[i]` (NaN, a pair
        the model cannot score, compares False)."""
        mean, std = self.stats.mean[people, 0], self.stats.std[people, 0]
        return (self.values[people, positions] - mean) / std


@dataclass(frozen=True)
class ListPolicy(DictConfig):
    """The knobs of the served lists (the module docstring says what each does).

    The service reads them from its environment (`serving.settings`), evaluation and the
    registered model use these defaults.
    """

    max_per_programme: float = 0.7
    max_per_publisher: float = 0.5
    cold_start_rules_weight: float = 0.5
    rules_remote_overrides: bool = False

    def pool_size(self, k: int) -> int:
        """Candidates kept before the caps for a list of k."""
        return max(POOL_FACTOR * k, MIN_POOL)

    def paged_pool_size(self, k: int, offset: int) -> int:
        """Candidates kept for the page of k starting at `offset` (`order_page`): each earlier
        page takes k of them."""
        return offset + self.pool_size(k)

    def caps(self, k: int) -> tuple[int, int]:
        """(publisher cap, programme cap) of a list of k."""
        return group_cap(self.max_per_publisher, k), group_cap(self.max_per_programme, k)

    def served_scores(
        self,
        model: ModelScores,
        known: np.ndarray,
        blends_rules: bool,
        rules: Callable[[], np.ndarray],
    ) -> np.ndarray:
        """The scores the lists are made from (step 2 of the module docstring).

        Args:
            model: the model's scores and each person's candidates.
            known: (n_people,) bool, `Recommender.knows` of each person.
            blends_rules: the model blends the rules itself: its score is served as it is.
            rules: gives the rules engine's scores of the same columns (called only when
                someone's scores need them).
        """
        if blends_rules or known.all():
            return model.values
        weight = self.cold_start_rules_weight
        masks, values = model.masks, np.ascontiguousarray(model.values, dtype=np.float64)
        rule_values, rule_stats = np.zeros((0, 0)), RowStats(np.zeros((0, 1)), np.ones((0, 1)))
        if weight > 0:
            rule_values = np.ascontiguousarray(rules(), dtype=np.float64)
            rule_stats = RowStats.of(rule_values, masks)
        out = np.empty_like(values)
        stats = model.stats
        _blend(
            values,
            rule_values,
            masks,
            known,
            stats.mean[:, 0],
            stats.std[:, 0],
            rule_stats.mean[:, 0],
            rule_stats.std[:, 0],
            weight,
            out,
        )
        return out

    def lists(
        self,
        scores: np.ndarray,
        masks: np.ndarray,
        k: int,
        publisher: np.ndarray,
        programme: np.ndarray,
        keys: np.ndarray | None,
    ) -> np.ndarray:
        """Every person's list of k (steps 3 and 4), the batch path: (n_people, k) column
        positions, best first, -1-padded.

        Args:
            scores: (n_people, n_columns) served scores.
            masks: (n_people, n_columns) candidates after exclusions.
            k: list length.
            publisher, programme: (n_columns,) group codes (`group_codes`).
            keys: (n_columns,) tie-break keys (`tie_keys`).
        """
        pools = top_k(scores, min(self.pool_size(k), scores.shape[1]), masks, keys)
        publisher_cap, programme_cap = self.caps(k)
        by_publisher = diversify(pools, None, publisher, pools.shape[1], publisher_cap)
        return diversify(by_publisher, None, programme, k, programme_cap)

    def order_pool(self, publisher: np.ndarray, programme: np.ndarray, k: int) -> np.ndarray:
        """One person's list of k from their pool (step 4), the single-request path.

        Args:
            publisher, programme: group codes of the pool's offers, best first (a row of
                `top_k` of `pool_size(k)`, padding dropped).
            k: list length.

        Returns:
            Positions into the pool, at most k, best first; equal to `lists` of that person.
        """
        publisher_cap, programme_cap = self.caps(k)
        by_publisher = _capped(np.arange(len(publisher)), publisher, len(publisher), publisher_cap)
        return _capped(by_publisher, programme[by_publisher], k, programme_cap)

    def order_page(
        self, publisher: np.ndarray, programme: np.ndarray, k: int, offset: int
    ) -> np.ndarray:
        """The page of k starting at `offset` (a multiple of k) of one person's pool.

        Pages are lists of k made one after the other: page n is `order_pool` of the best
        `pool_size(k)` offers the earlier pages did not take. Page 1 is `order_pool` itself,
        and the pages of one ranking never repeat an offer nor skip one.

        Args:
            publisher, programme: group codes of the pool's offers, best first (a row of
                `top_k` of `paged_pool_size(k, offset)`, padding dropped).
            k: page length.
            offset: offers on the earlier pages.

        Returns:
            Positions into the pool, at most k, best first.
        """
        return self._pages(publisher, programme, k, offset // k + 1)[-1]

    def _pages(
        self, publisher: np.ndarray, programme: np.ndarray, k: int, pages: int
    ) -> list[np.ndarray]:
        """The first `pages` pages of k of one person's pool (`order_page`), positions into
        the pool: each page `order_pool` of the best `pool_size(k)` offers the earlier pages
        did not take."""
        remaining = np.arange(len(publisher))
        out = []
        for _ in range(pages):
            window = remaining[: self.pool_size(k)]
            taken = self.order_pool(publisher[window], programme[window], k)
            out.append(window[taken])
            remaining = np.delete(remaining, taken)
        return out

    def pages(
        self,
        scores: np.ndarray,
        masks: np.ndarray,
        k: int,
        pages: int,
        publisher: np.ndarray,
        programme: np.ndarray,
        keys: np.ndarray | None,
    ) -> np.ndarray:
        """Every person's first `pages` pages of k, one after the other, the batch path of
        `order_page`: (n_people, pages · k) column positions, page n in slots (n − 1)·k to
        n·k, each page best first and -1-padded. Page 1 is `lists` of k; page n is what the
        service answers to a request of k at offset (n − 1)·k.

        Args: as `lists`; `pages`: how many pages (at least 1).
        """
        if pages == 1:
            return self.lists(scores, masks, k, publisher, programme, keys)
        size = min(self.paged_pool_size(k, (pages - 1) * k), scores.shape[1])
        pools = top_k(scores, size, masks, keys)
        out = np.full((len(pools), pages * k), PAD, dtype=np.int64)
        for i, pool in enumerate(pools):
            pool = pool[pool != PAD]
            for n, page in enumerate(self._pages(publisher[pool], programme[pool], k, pages)):
                out[i, n * k : n * k + len(page)] = pool[page]
        return out


def _capped(order: np.ndarray, group: np.ndarray, k: int, cap: int) -> np.ndarray:
    """`recsys.ranking.diversify` of one list (`group[i]` is the group of `order[i]`).

    The same greedy walk over a Python list, and none when no group exceeds the cap (the
    usual case for publishers).
    """
    groups = group.tolist()
    if max(Counter(groups).values(), default=0) <= cap:  # the walk would keep the order
        return np.asarray(order[:k], dtype=np.int64)
    taken: list[int] = []
    rest: list[int] = []
    counts: dict[int, int] = {}
    for item, code in zip(order.tolist(), groups, strict=True):
        if len(taken) == k:  # the list is full: the rest is never shown
            break
        if counts.get(code, 0) < cap:
            taken.append(item)
            counts[code] = counts.get(code, 0) + 1
        else:
            rest.append(item)
    return np.array(taken + rest[: k - len(taken)], dtype=np.int64)
