"""The two list-making primitives: top-k selection and group-capped re-ranking.

`recsys.policy` composes them into the list a person is served, the same for offline
evaluation, the registered model and the service. Offers are positions in the offer arrays;
-1 marks an empty slot (fewer admissible candidates than k).
"""

from __future__ import annotations

import math

import numba
import numpy as np

PAD = -1


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 0:
        raise ValueError(f"k: expected a non-negative integer, got {k!r}")


def top_k(
    scores: np.ndarray, k: int, mask: np.ndarray | None = None, keys: np.ndarray | None = None
) -> np.ndarray:
    """Indices of the k best scores per row, best first, -1-padded.

    Masked-out (False) and NaN scores are never returned; equal scores rank the lower key
    (by default the lower offer index) first, so a list is reproducible across runs and
    machines; a -inf score ranks after every finite one. Each row is one compiled pass
    keeping the k best so far in a heap (`_select`), O(n log k).

    Args:
        scores: (n_users, n_offers) or (n_offers,) float scores, higher is better.
        k: list length; rows with fewer admissible offers are padded with -1.
        mask: same shape as `scores`, True where the offer may be returned.
        keys: (n_offers,) distinct int64 tie-break keys, lower first; None: the index. A key
            that does not depend on where an offer is stored (`recsys.policy.tie_keys`)
            makes two stores of the same offers give the same lists.

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
    values = np.ascontiguousarray(np.atleast_2d(scores), dtype=np.float64)
    if mask is None:
        admissible = np.ones((0, 0), dtype=np.bool_)  # no mask: every offer may be returned
    else:
        mask = np.asarray(mask)
        if mask.shape != scores.shape or mask.dtype != np.bool_:
            raise ValueError(
                f"mask: expected a bool array of shape {scores.shape}, "
                f"got {mask.dtype} of shape {mask.shape}"
            )
        admissible = np.ascontiguousarray(np.atleast_2d(mask))
    if keys is None:
        order = np.zeros(0, dtype=np.int64)  # empty: the index is the key
    else:
        order = np.ascontiguousarray(keys, dtype=np.int64)
        if order.shape != (values.shape[1],):
            raise ValueError(f"keys: expected shape ({values.shape[1]},), got {order.shape}")
    out = np.full((values.shape[0], k), PAD, dtype=np.int64)
    _select(values, admissible, order, out)
    return out[0] if single else out


@numba.njit(cache=True, nogil=True)
def _select(scores: np.ndarray, admissible: np.ndarray, keys: np.ndarray, out: np.ndarray) -> None:
    """Each row's `out.shape[1]` best admissible offers into `out`, best first.

    Written as a compiled loop where numpy has `argpartition`: partitioning, then fixing the
    ties it leaves at the boundary and sorting the kept make ten passes over each row. Here
    a max-heap holds the k best so far, its root the
    worst of them by (score descending, key ascending): an offer enters only when it beats
    the root. An empty `admissible` admits every offer, an empty `keys` keys each offer by
    its index; -inf counts as the lowest finite score, so it ranks by key among its equals;
    NaN is never kept.
    """
    k = out.shape[1]
    if k == 0:
        return
    lowest = -np.finfo(np.float64).max
    everything = admissible.shape[0] == 0
    by_index = keys.shape[0] == 0
    heap_score = np.empty(k, dtype=np.float64)
    heap_key = np.empty(k, dtype=np.int64)
    heap_index = np.empty(k, dtype=np.int64)
    for u in range(scores.shape[0]):
        size = 0
        for j in range(scores.shape[1]):
            value = scores[u, j]
            if math.isnan(value) or not (everything or admissible[u, j]):
                continue
            value = max(value, lowest)
            key = j if by_index else keys[j]
            if size < k:  # not full: sift the new entry up from the last leaf
                at = size
                size += 1
                while at > 0:
                    parent = (at - 1) // 2
                    if _worse(heap_score[parent], heap_key[parent], value, key):
                        break
                    heap_score[at] = heap_score[parent]
                    heap_key[at] = heap_key[parent]
                    heap_index[at] = heap_index[parent]
                    at = parent
                heap_score[at], heap_key[at], heap_index[at] = value, key, j
            elif _worse(heap_score[0], heap_key[0], value, key):  # beats the worst kept
                _sift_down(heap_score, heap_key, heap_index, 0, size, value, key, j)
        # Pop the worst into the last free slot until the heap is empty: best first.
        for last in range(size - 1, -1, -1):
            out[u, last] = heap_index[0]
            _sift_down(
                heap_score,
                heap_key,
                heap_index,
                0,
                last,
                heap_score[last],
                heap_key[last],
                heap_index[last],
            )


@numba.njit(cache=True, nogil=True, inline="always")
def _worse(score_a: float, key_a: int, score_b: float, key_b: int) -> bool:
    """Whether (score_a, key_a) ranks after (score_b, key_b)."""
    return score_a < score_b or (score_a == score_b and key_a > key_b)


@numba.njit(cache=True, nogil=True)
def _sift_down(
    heap_score: np.ndarray,
    heap_key: np.ndarray,
    heap_index: np.ndarray,
    at: int,
    size: int,
    score: float,
    key: int,
    index: int,
) -> None:
    """Place (score, key, index) at `at` of the max-heap of `size` entries (the root the
    worst)."""
    while True:
        child = 2 * at + 1
        if child >= size:
            break
        if child + 1 < size and _worse(
            heap_score[child + 1], heap_key[child + 1], heap_score[child], heap_key[child]
        ):
            child += 1
        if not _worse(heap_score[child], heap_key[child], score, key):
            break
        heap_score[at] = heap_score[child]
        heap_key[at] = heap_key[child]
        heap_index[at] = heap_index[child]
        at = child
    heap_score[at], heap_key[at], heap_index[at] = score, key, index


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
