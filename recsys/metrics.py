"""Offline metrics: ranking accuracy and beyond-accuracy figures, as pure functions over arrays.

Conventions shared by every function:

- `recommended` is an int array (n_users, k_max) of offer indices per user, best first,
  padded with -1 where a user got fewer (or no) recommendations. Only the first k columns
  count for a metric "@k"; an empty slot (-1, or a column beyond k_max) is a miss.
- `relevant` is a sequence of int arrays (one per user) or a boolean sparse matrix
  (n_users, n_offers) of the offers each user applied to in the test window.
- A user with no relevant offer is excluded from accuracy metrics by rule: the per-user
  value is NaN and the count is reported (`ranking_metrics`). A user who got no
  recommendation scores zero and is never dropped, so a model that fails to serve a user
  pays for it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import scipy.sparse as sp

PAD = -1
DEFAULT_KS = (5, 10, 20)

Relevant = Sequence[np.ndarray] | sp.sparray | sp.spmatrix


# ---------------------------------------------------------------- validation and shared steps


def _check_recommended(recommended: np.ndarray) -> np.ndarray:
    recommended = np.asarray(recommended)
    if recommended.ndim != 2 or not np.issubdtype(recommended.dtype, np.integer):
        raise ValueError(
            f"recommended: expected a 2-D int array (n_users, k_max), "
            f"got {recommended.dtype} of shape {recommended.shape}"
        )
    recommended = recommended.astype(np.int64, copy=False)
    if recommended.size and recommended.min() < PAD:
        raise ValueError("recommended: offer indices must be >= 0, or -1 for an empty slot")
    # The same offer twice in a list would count as two hits and push recall above 1.
    ordered = np.sort(recommended, axis=1)
    repeated = ((ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] != PAD)).any(axis=1)
    if repeated.any():
        users = np.flatnonzero(repeated)[:5].tolist()
        raise ValueError(f"recommended: users {users} have an offer listed twice")
    return recommended


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k: expected a positive integer, got {k!r}")
    return int(k)


def _top(recommended: np.ndarray, k: int) -> np.ndarray:
    """The first k columns, padded with -1 when the lists are shorter than k."""
    top = recommended[:, :k]
    if top.shape[1] < k:
        top = np.pad(top, ((0, 0), (0, k - top.shape[1])), constant_values=PAD)
    return top


def _relevant_pairs(relevant: Relevant, n_users: int) -> tuple[np.ndarray, np.ndarray]:
    """(user, offer) pairs of the relevant sets, deduplicated, as two int64 arrays."""
    if isinstance(relevant, sp.sparray | sp.spmatrix):
        if relevant.shape[0] != n_users:
            raise ValueError(
                f"relevant: {relevant.shape[0]} rows for {n_users} users in recommended"
            )
        matrix = sp.coo_array(relevant)
        matrix.sum_duplicates()
        stored = matrix.data != 0  # an explicitly stored False is not relevant
        return matrix.row[stored].astype(np.int64), matrix.col[stored].astype(np.int64)
    if len(relevant) != n_users:
        raise ValueError(f"relevant: {len(relevant)} sets for {n_users} users in recommended")
    arrays = [np.asarray(list(r) if isinstance(r, set | frozenset) else r) for r in relevant]
    for user, items in enumerate(arrays):
        if items.ndim != 1 or (items.size and not np.issubdtype(items.dtype, np.integer)):
            raise ValueError(f"relevant[{user}]: expected a 1-D int array, got {items!r}")
    sizes = np.array([items.size for items in arrays], dtype=np.int64)
    users = np.repeat(np.arange(n_users, dtype=np.int64), sizes)
    offers = np.concatenate([items.astype(np.int64) for items in arrays] or [np.empty(0, int)])
    if offers.size and offers.min() < 0:
        raise ValueError("relevant: offer indices must be non-negative")
    return users, offers


def _hits(recommended: np.ndarray, relevant: Relevant, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Boolean (n_users, k) hit matrix of the top k and the number of relevant offers per user."""
    top = _top(recommended, k)
    n_users = top.shape[0]
    users, offers = _relevant_pairs(relevant, n_users)
    width = int(max(top.max(initial=0), offers.max(initial=0))) + 1
    # One int64 key per (user, offer) pair: a membership test over all users in one pass.
    relevant_keys = np.unique(users * width + offers)
    n_relevant = np.bincount(relevant_keys // width, minlength=n_users)
    row = np.arange(n_users, dtype=np.int64)[:, None]
    hits = (top != PAD) & np.isin(row * width + top, relevant_keys)
    return hits, n_relevant


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2))


def _excluded(values: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    return np.where(n_relevant > 0, values, np.nan)


def _precision(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    return _excluded(hits[:, :k].sum(axis=1) / k, n_relevant)


def _recall(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return _excluded(hits[:, :k].sum(axis=1) / n_relevant, n_relevant)


def _ndcg(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    discounts = _discounts(k)
    dcg = hits[:, :k] @ discounts
    ideal = np.concatenate([[0.0], np.cumsum(discounts)])[np.minimum(n_relevant, k)]
    with np.errstate(invalid="ignore", divide="ignore"):
        return _excluded(dcg / ideal, n_relevant)


def _average_precision(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    top = hits[:, :k]
    precision_at_i = np.cumsum(top, axis=1) / np.arange(1, k + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = (precision_at_i * top).sum(axis=1) / np.minimum(n_relevant, k)
    return _excluded(ap, n_relevant)


def _hit_rate(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    return _excluded(hits[:, :k].any(axis=1).astype(np.float64), n_relevant)


def _per_user(
    metric: Callable[[np.ndarray, np.ndarray, int], np.ndarray],
    recommended: np.ndarray,
    relevant: Relevant,
    k: int,
) -> np.ndarray:
    k = _check_k(k)
    hits, n_relevant = _hits(_check_recommended(recommended), relevant, k)
    return metric(hits, n_relevant, k)


# ---------------------------------------------------------------- accuracy, per user


def precision_at_k(recommended: np.ndarray, relevant: Relevant, k: int) -> np.ndarray:
    """P@k = |top-k ∩ relevant| / k per user (empty slots are misses); NaN if no relevant."""
    return _per_user(_precision, recommended, relevant, k)


def recall_at_k(recommended: np.ndarray, relevant: Relevant, k: int) -> np.ndarray:
    """R@k = |top-k ∩ relevant| / |relevant| per user; NaN if no relevant."""
    return _per_user(_recall, recommended, relevant, k)


def ndcg_at_k(recommended: np.ndarray, relevant: Relevant, k: int) -> np.ndarray:
    """NDCG@k per user with binary gain; NaN if no relevant.

    DCG@k = Σ_{i≤k} rel_i / log2(i + 1) (i the 1-based rank); the ideal DCG puts
    min(|relevant|, k) hits first, so a perfect list scores 1 whatever |relevant| is.
    """
    return _per_user(_ndcg, recommended, relevant, k)


def average_precision_at_k(recommended: np.ndarray, relevant: Relevant, k: int) -> np.ndarray:
    """AP@k = (1 / min(|relevant|, k)) · Σ_{i≤k} P@i · rel_i per user; NaN if no relevant."""
    return _per_user(_average_precision, recommended, relevant, k)


def hit_rate_at_k(recommended: np.ndarray, relevant: Relevant, k: int) -> np.ndarray:
    """1 if any relevant offer is in the top k, else 0, per user; NaN if no relevant."""
    return _per_user(_hit_rate, recommended, relevant, k)


def mean_over_users(values: np.ndarray) -> float:
    """Mean of a per-user metric over the evaluated users (NaN marks an excluded user).

    Slice the per-user array by a segment mask first to get the segment's figure. NaN when
    no user in the slice has a relevant offer: there is nothing to measure, not a zero.
    """
    values = np.asarray(values, dtype=np.float64)
    evaluated = ~np.isnan(values)
    return float(values[evaluated].mean()) if evaluated.any() else float("nan")


def map_at_k(recommended: np.ndarray, relevant: Relevant, k: int) -> float:
    """MAP@k: AP@k averaged over the users with at least one relevant offer."""
    return mean_over_users(average_precision_at_k(recommended, relevant, k))


_ACCURACY = {
    "precision": _precision,
    "recall": _recall,
    "ndcg": _ndcg,
    "map": _average_precision,
    "hit_rate": _hit_rate,
}


def ranking_metrics(
    recommended: np.ndarray, relevant: Relevant, ks: Sequence[int] = DEFAULT_KS
) -> dict[str, float]:
    """Every accuracy metric at every k, averaged over evaluated users, with the user counts.

    Keys: "precision@5", "recall@10", "ndcg@20", "map@10", "hit_rate@5", ... plus
    "users_evaluated" (users with a relevant offer, unserved ones included),
    "users_without_relevant" (excluded by rule) and "users_without_recommendations" (among
    the evaluated, counted as zero).
    """
    ks = [_check_k(k) for k in ks]
    if not ks:
        raise ValueError("ks: expected at least one cut-off")
    recommended = _check_recommended(recommended)
    hits, n_relevant = _hits(recommended, relevant, max(ks))
    evaluated = n_relevant > 0
    result: dict[str, float] = {}
    for name, metric in _ACCURACY.items():
        for k in ks:
            result[f"{name}@{k}"] = mean_over_users(metric(hits, n_relevant, k))
    result["users_evaluated"] = int(evaluated.sum())
    result["users_without_relevant"] = int((~evaluated).sum())
    unserved = (recommended == PAD).all(axis=1)
    result["users_without_recommendations"] = int((unserved & evaluated).sum())
    return result


# ---------------------------------------------------------------- beyond accuracy


def _filled(recommended: np.ndarray, k: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(user, offer) index pairs of the non-empty slots among the first k."""
    recommended = _check_recommended(recommended)
    top = recommended if k is None else recommended[:, : _check_k(k)]
    users, slots = np.nonzero(top != PAD)
    return users, top[users, slots]


def _check_offer_array(values: np.ndarray, name: str, offers: np.ndarray) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array over offers, got shape {values.shape}")
    if offers.size and offers.max() >= values.size:
        raise ValueError(
            f"{name}: {values.size} offers, but recommended holds offer index {offers.max()}"
        )
    return values


def catalog_coverage(recommended: np.ndarray, n_catalog: int, k: int | None = None) -> float:
    """Distinct recommended offers / catalog size (over the first k slots, all if k is None)."""
    if isinstance(n_catalog, bool) or not isinstance(n_catalog, int | np.integer) or n_catalog < 1:
        raise ValueError(f"n_catalog: expected a positive integer, got {n_catalog!r}")
    _, offers = _filled(recommended, k)
    if offers.size and offers.max() >= n_catalog:
        raise ValueError(f"n_catalog: {n_catalog} is smaller than offer index {offers.max()} + 1")
    return np.unique(offers).size / n_catalog


def exposure_counts(
    recommended: np.ndarray, group_of_offer: np.ndarray, n_groups: int, k: int
) -> np.ndarray:
    """Number of filled top-k slots per group (programme, publisher...), zeros included."""
    _, offers = _filled(recommended, k)
    groups = _check_offer_array(group_of_offer, "group_of_offer", offers)
    if not np.issubdtype(groups.dtype, np.integer):
        raise ValueError(f"group_of_offer: expected int group codes, got {groups.dtype}")
    if groups.size and (groups.min() < 0 or groups.max() >= n_groups):
        raise ValueError(f"group_of_offer: codes must lie in [0, n_groups={n_groups})")
    return np.bincount(groups[offers], minlength=n_groups)


def exposure_share(
    recommended: np.ndarray, group_of_offer: np.ndarray, n_groups: int, k: int
) -> np.ndarray:
    """Share of the filled top-k slots taken by each group; sums to 1 (all zeros if none filled).

    Pass the counts or the shares to `gini` for one concentration figure: Gini is scale-free.
    """
    counts = exposure_counts(recommended, group_of_offer, n_groups, k)
    total = counts.sum()
    return counts / total if total else np.zeros(n_groups)


def gini(values: np.ndarray) -> float:
    """Gini coefficient of non-negative values: 0 when equal, (n-1)/n when one holds it all.

    G = Σ_i Σ_j |x_i − x_j| / (2 n² mean), computed from the sorted values as
    G = 2 Σ_i i·x_(i) / (n Σ x) − (n + 1) / n (i 1-based). All zeros count as equal (0).
    Hand-written: the formula is two lines and scipy/sklearn offer no Gini coefficient.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"values: expected a non-empty 1-D array, got shape {values.shape}")
    if np.isnan(values).any() or values.min() < 0:
        raise ValueError("values: expected non-negative numbers without NaN")
    total = values.sum()
    if total == 0:
        return 0.0
    n = values.size
    ranks = np.arange(1, n + 1)
    return float(2 * (ranks * np.sort(values)).sum() / (n * total) - (n + 1) / n)


def new_offer_share(recommended: np.ndarray, is_new: np.ndarray, k: int) -> float:
    """Share of the filled top-k slots taken by new offers (posted after the cutoff); 0 if none."""
    _, offers = _filled(recommended, k)
    is_new = _check_offer_array(is_new, "is_new", offers)
    if is_new.dtype != np.bool_:
        raise ValueError(f"is_new: expected a bool array, got {is_new.dtype}")
    return float(is_new[offers].mean()) if offers.size else 0.0


def mean_distance(
    recommended: np.ndarray,
    distances: np.ndarray | Callable[[np.ndarray, np.ndarray], np.ndarray],
    k: int,
) -> float:
    """Mean distance (km) over the filled top-k slots whose distance is known.

    Args:
        recommended: (n_users, k_max) offer indices, -1-padded.
        distances: (n_users, n_offers) km, NaN where unknown (no user or offer location); or
            a vectorised callable `(users, offers) -> km` over equal-length index arrays of
            the filled slots, so no dense matrix is needed.
        k: cut-off.

    Returns:
        The mean, or NaN when no slot has a known distance (0 km would look ideal).
    """
    users, offers = _filled(recommended, k)
    if callable(distances):
        km = np.asarray(distances(users, offers), dtype=np.float64)
        if km.shape != users.shape:
            raise ValueError(
                f"distances: the callable returned shape {km.shape} for {users.size} slots"
            )
    else:
        matrix = np.asarray(distances, dtype=np.float64)
        n_users = np.asarray(recommended).shape[0]
        if matrix.ndim != 2 or matrix.shape[0] != n_users:
            raise ValueError(f"distances: expected shape ({n_users}, n_offers), got {matrix.shape}")
        if offers.size and offers.max() >= matrix.shape[1]:
            raise ValueError(f"distances: {matrix.shape[1]} offers, index {offers.max()} seen")
        km = matrix[users, offers]
    known = np.isfinite(km)
    return float(km[known].mean()) if known.any() else float("nan")


def ineligible_rate(
    recommended: np.ndarray,
    eligible_mask: np.ndarray | Callable[[int], np.ndarray],
    k: int,
) -> float:
    """Ineligible filled top-k slots / filled top-k slots (must be 0); 0 if none filled.

    Args:
        recommended: (n_users, k_max) offer indices, -1-padded.
        eligible_mask: (n_users, n_offers) bool, or a callable `user_index -> (n_offers,)
            bool` evaluated for the users with at least one filled slot, so the dense matrix
            never has to exist.
        k: cut-off.
    """
    users, offers = _filled(recommended, k)
    if offers.size == 0:
        return 0.0
    if callable(eligible_mask):
        eligible = np.empty(offers.size, dtype=bool)
        starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])  # users are sorted
        ends = np.r_[starts[1:], users.size]
        for start, end in zip(starts, ends, strict=True):
            row = np.asarray(eligible_mask(int(users[start])))
            if row.dtype != np.bool_ or row.ndim != 1 or offers[start:end].max() >= row.size:
                raise ValueError(
                    f"eligible_mask: user {users[start]} got a {row.dtype} array of shape "
                    f"{row.shape}; expected a bool mask over every offer"
                )
            eligible[start:end] = row[offers[start:end]]
    else:
        mask = np.asarray(eligible_mask)
        n_users = np.asarray(recommended).shape[0]
        if mask.dtype != np.bool_ or mask.ndim != 2 or mask.shape[0] != n_users:
            raise ValueError(
                f"eligible_mask: expected a bool array ({n_users}, n_offers), "
                f"got {mask.dtype} of shape {mask.shape}"
            )
        if offers.max() >= mask.shape[1]:
            raise ValueError(f"eligible_mask: {mask.shape[1]} offers, index {offers.max()} seen")
        eligible = mask[users, offers]
    return float((~eligible).mean())
