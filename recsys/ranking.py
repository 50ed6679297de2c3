"""Turn scores into ranked lists: top-k selection and group-capped re-ranking.

Offline evaluation and the service call these same functions, so the lists that are measured
are the lists that are served. Offers are positions in the offer arrays; -1 marks an empty
slot (fewer admissible candidates than k).
"""

from __future__ import annotations

import numpy as np

PAD = -1


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 0:
        raise ValueError(f"k: expected a non-negative integer, got {k!r}")


def top_k(scores: np.ndarray, k: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Indices of the k best scores per row, best first, -1-padded.

    Masked-out (False) and NaN scores are never returned; equal scores rank the lower offer
    index first, so a list is reproducible across runs and machines. Each row costs O(n):
    `np.argpartition` (introselect) keeps the k best, ties at the boundary go to the lowest
    indices, and only the k kept are sorted.

    Args:
        scores: (n_users, n_offers) or (n_offers,) float scores, higher is better.
        k: list length; rows with fewer admissible offers are padded with -1.
        mask: same shape as `scores`, True where the offer may be returned.

    Returns:
        (n_users, k) int64 offer indices, or (k,) for a 1-D `scores`.
    """
    _check_k(k)
    scores = np.asarray(scores)
    if scores.ndim not in (1, 2):
        raise ValueError(f"scores: expected a 1-D or 2-D array, got shape {scores.shape}")
    if not np.issubdtype(scores.dtype, np.number) or np.iscomplexobj(scores):
        raise ValueError(f"scores: expected real numbers, got dtype {scores.dtype}")
    single = scores.ndim == 1
    # Ascending: the best score comes first. One pass each (this runs on every request).
    key = np.negative(np.atleast_2d(scores), dtype=np.float64)
    excluded = np.isnan(key)
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != scores.shape or mask.dtype != np.bool_:
            raise ValueError(
                f"mask: expected a bool array of shape {scores.shape}, "
                f"got {mask.dtype} of shape {mask.shape}"
            )
        excluded |= ~np.atleast_2d(mask)
    # Excluded offers get +inf, after every admissible one (a -inf score is clamped to the
    # lowest finite score). An inf sentinel rather than NaN: argpartition is faster on it.
    np.minimum(key, np.finfo(np.float64).max, out=key)
    np.copyto(key, np.inf, where=excluded)
    n_users, n_offers = key.shape
    kept = min(k, n_offers)
    out = np.full((n_users, k), PAD, dtype=np.int64)
    if kept == 0 or n_users == 0:
        return out[0] if single else out

    partitioned = np.argpartition(key, kept - 1, axis=1)
    picked = partitioned[:, :kept]
    picked_key = np.take_along_axis(key, picked, axis=1)
    threshold = np.take_along_axis(key, partitioned[:, kept - 1 : kept], axis=1)
    # argpartition keeps an arbitrary subset of the offers tied at the threshold; where it
    # left one out, the row's tied slots go to the lowest tied indices. An infinite threshold
    # means fewer admissible offers than k, all of them kept.
    tied = key == threshold
    crowded = np.flatnonzero(
        (threshold[:, 0] < np.inf)
        & (np.count_nonzero(tied, axis=1) > np.count_nonzero(picked_key == threshold, axis=1))
    )
    if crowded.size:
        # Offers strictly above the threshold are all among the kept: move them first.
        above = picked_key[crowded] < threshold[crowded]
        first = np.argsort(~above, axis=1, kind="stable")
        picked[crowded] = np.take_along_axis(picked[crowded], first, axis=1)
        picked_key[crowded] = np.take_along_axis(picked_key[crowded], first, axis=1)
        n_above = above.sum(axis=1)
        rows, cols = np.nonzero(tied[crowded])  # ascending offer index within a row
        counts = np.bincount(rows, minlength=crowded.size)
        rank = np.arange(rows.size) - np.repeat(np.cumsum(counts) - counts, counts)
        keep = n_above[rows] + rank < kept
        picked[crowded[rows[keep]], n_above[rows[keep]] + rank[keep]] = cols[keep]

    # Sort the kept by key, then by offer index; excluded ones sort last and become -1.
    order = np.lexsort((picked, picked_key), axis=1)
    ranked = np.take_along_axis(picked, order, axis=1)
    excluded = np.take_along_axis(picked_key, order, axis=1) == np.inf
    out[:, :kept] = np.where(excluded, PAD, ranked)
    return out[0] if single else out


def diversify(
    order: np.ndarray,
    scores: np.ndarray | None,
    group: np.ndarray,
    k: int,
    max_per_group: int | None,
) -> np.ndarray:
    """Re-rank candidate lists so that no group holds more than `max_per_group` of k slots.

    Greedy, as a reader would do it: walk each list best first and skip an offer whose group
    (programme or publisher) already fills its quota; if fewer than k offers were taken, the
    skipped ones are appended in their original order, so the cap gives way only when no
    alternative is left. Without a cap, this is the first k admissible candidates.

    Args:
        order: (n_users, n_candidates) or (n_candidates,) offer indices, best first, -1 for
            no candidate (e.g. `top_k` output with a longer k, or a full argsort).
        scores: the scores `order` was built from, indexed by offer ((n_offers,), or
            (n_users, n_offers) for per-user scores); candidates with a NaN score are dropped.
            None when every listed candidate is admissible.
        group: (n_offers,) non-negative int group code per offer.
        k: list length to return.
        max_per_group: most slots one group may take when alternatives exist; None for no cap.

    Returns:
        (n_users, k) int64 offer indices, -1-padded, or (k,) for a 1-D `order`.
    """
    _check_k(k)
    if max_per_group is not None and (
        isinstance(max_per_group, bool)
        or not isinstance(max_per_group, int | np.integer)
        or max_per_group < 1
    ):
        raise ValueError(
            f"max_per_group: expected a positive integer or None, got {max_per_group!r}"
        )
    order = np.asarray(order)
    if order.ndim not in (1, 2) or not np.issubdtype(order.dtype, np.integer):
        raise ValueError(f"order: expected a 1-D or 2-D int array, got {order.dtype} {order.shape}")
    group = np.asarray(group)
    if group.ndim != 1 or not np.issubdtype(group.dtype, np.integer):
        raise ValueError(f"group: expected a 1-D int array, got {group.dtype} {group.shape}")
    if group.size and group.min() < 0:
        raise ValueError("group: codes must be non-negative")
    single = order.ndim == 1
    order = np.atleast_2d(order).astype(np.int64)
    if order.size and (order.min() < PAD or order.max() >= group.size):
        raise ValueError(f"order: offer indices must lie in [-1, {group.size}) (len(group))")
    n_users, n_candidates = order.shape

    valid = order >= 0
    safe = np.where(valid, order, 0)
    if scores is not None:
        scores = np.asarray(scores, dtype=np.float64)
        if scores.shape == (group.size,):
            candidate_scores = scores[safe]
        elif scores.ndim == 2 and scores.shape == (n_users, group.size):
            candidate_scores = np.take_along_axis(scores, safe, axis=1)
        else:
            raise ValueError(
                f"scores: expected shape ({group.size},) or ({n_users}, {group.size}), "
                f"got {scores.shape}"
            )
        valid &= ~np.isnan(candidate_scores)

    out = np.full((n_users, k), PAD, dtype=np.int64)
    if max_per_group is None or n_candidates == 0:
        taken = valid & (np.cumsum(valid, axis=1) <= k)
        skipped = np.zeros_like(taken)
    else:
        # Groups renumbered per row (0..n_candidates-1) so the counters stay (n_users,
        # n_candidates) however many publishers exist.
        codes = np.where(valid, group[safe], -1)
        by_code = np.argsort(codes, axis=1, kind="stable")
        sorted_codes = np.take_along_axis(codes, by_code, axis=1)
        new_code = np.ones_like(sorted_codes, dtype=bool)
        new_code[:, 1:] = sorted_codes[:, 1:] != sorted_codes[:, :-1]
        local = np.empty_like(codes)
        np.put_along_axis(local, by_code, np.cumsum(new_code, axis=1) - 1, axis=1)

        users = np.arange(n_users)
        per_group = np.zeros((n_users, n_candidates), dtype=np.int64)
        n_taken = np.zeros(n_users, dtype=np.int64)
        taken = np.zeros_like(valid)
        # The greedy walk is sequential along a list; it runs for all users at once.
        for j in range(n_candidates):
            if (n_taken >= k).all():
                break
            g = local[:, j]
            take = valid[:, j] & (n_taken < k) & (per_group[users, g] < max_per_group)
            taken[:, j] = take
            per_group[users[take], g[take]] += 1
            n_taken += take
        skipped = valid & ~taken
        skipped &= np.cumsum(skipped, axis=1) <= (k - taken.sum(axis=1))[:, None]

    # Taken offers first in list order, then the fill-ins in list order.
    position = np.arange(n_candidates)
    rank = np.where(taken, position, np.where(skipped, n_candidates + position, 2 * n_candidates))
    ranked = np.argsort(rank, axis=1, kind="stable")[:, :k]
    filled = np.take_along_axis(rank, ranked, axis=1) < 2 * n_candidates
    width = ranked.shape[1]
    out[:, :width] = np.where(filled, np.take_along_axis(order, ranked, axis=1), PAD)
    return out[0] if single else out
