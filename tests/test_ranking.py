"""Top-k selection and group-capped re-ranking, on hand-built cases and against references."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from recsys.ranking import diversify, top_k


def reference_top_k(
    scores: np.ndarray, k: int, mask: np.ndarray, keys: np.ndarray | None = None
) -> np.ndarray:
    """Full sort per row: score descending, then key (default index) ascending; -1-padded."""
    out = np.full((scores.shape[0], k), -1)
    keys = np.arange(scores.shape[1]) if keys is None else keys
    for u, row in enumerate(scores):
        admissible = [i for i in range(row.size) if mask[u, i] and not np.isnan(row[i])]
        ranked = sorted(admissible, key=lambda i: (-row[i], keys[i]))[:k]
        out[u, : len(ranked)] = ranked
    return out


def test_top_k_orders_best_first() -> None:
    scores = np.array([[0.1, 0.9, 0.5, 0.7], [3.0, 1.0, 2.0, 0.0]])
    np.testing.assert_array_equal(top_k(scores, 2), [[1, 3], [0, 2]])


def test_top_k_respects_mask_and_skips_nan() -> None:
    scores = np.array([[0.9, np.nan, 0.5, 0.7]])
    mask = np.array([[False, True, True, True]])
    # 0.9 is masked out, NaN never returned: 0.7 (index 3) then 0.5 (index 2), then padding.
    np.testing.assert_array_equal(top_k(scores, 3, mask), [[3, 2, -1]])


def test_top_k_pads_when_fewer_candidates_than_k() -> None:
    scores = np.array([[0.2, 0.4], [np.nan, np.nan]])
    np.testing.assert_array_equal(top_k(scores, 4), [[1, 0, -1, -1], [-1, -1, -1, -1]])


def test_top_k_breaks_ties_by_lower_index() -> None:
    # Five offers tied at 1.0 compete for the two slots after the 2.0: indices 0 and 1 win.
    scores = np.array([[1.0, 1.0, 1.0, 1.0, 2.0, 1.0]])
    np.testing.assert_array_equal(top_k(scores, 3), [[4, 0, 1]])
    np.testing.assert_array_equal(top_k(np.zeros((1, 6)), 4), [[0, 1, 2, 3]])


def test_top_k_single_row_gives_1d() -> None:
    result = top_k(np.array([0.3, 0.1, 0.2]), 2)
    assert result.shape == (2,)
    np.testing.assert_array_equal(result, [0, 2])


def test_top_k_keeps_infinite_scores_in_order() -> None:
    np.testing.assert_array_equal(top_k(np.array([-np.inf, np.nan, np.inf, 0.0]), 4), [2, 3, 0, -1])


def test_top_k_zero_k_and_errors() -> None:
    assert top_k(np.ones((2, 3)), 0).shape == (2, 0)
    with pytest.raises(ValueError, match="mask"):
        top_k(np.ones((2, 3)), 1, mask=np.ones((2, 2), dtype=bool))
    with pytest.raises(ValueError, match="k:"):
        top_k(np.ones(3), -1)


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    n_users=st.integers(1, 4),
    n_offers=st.integers(1, 12),
    k=st.integers(1, 15),
)
def test_top_k_equals_full_sort(data: st.DataObject, n_users: int, n_offers: int, k: int) -> None:
    shape = (n_users, n_offers)
    # Few distinct values so ties, NaN and infinities are common.
    values = st.sampled_from([0.0, 0.5, 1.0, -1.0, 2.5, np.nan, np.inf, -np.inf])
    scores = data.draw(hnp.arrays(np.float64, shape, elements=values))
    mask = data.draw(hnp.arrays(np.bool_, shape))
    np.testing.assert_array_equal(top_k(scores, k, mask), reference_top_k(scores, k, mask))
    keys = data.draw(st.permutations(range(n_offers)))
    np.testing.assert_array_equal(
        top_k(scores, k, mask, np.array(keys)), reference_top_k(scores, k, mask, np.array(keys))
    )


def test_top_k_breaks_ties_by_key_when_given() -> None:
    scores = np.array([1.0, 1.0, 2.0, 1.0])
    np.testing.assert_array_equal(top_k(scores, 3, keys=np.array([5, 1, 9, 0])), [2, 3, 1])
    with pytest.raises(ValueError, match="keys"):
        top_k(scores, 1, keys=np.arange(3))


def test_diversify_caps_a_group_when_alternatives_exist() -> None:
    group = np.array([0, 0, 0, 1, 2])
    order = np.array([0, 1, 2, 3, 4])
    # Cap 1: take 0 (group 0), skip 1 and 2, take 3 (group 1), take 4 (group 2).
    np.testing.assert_array_equal(diversify(order, None, group, 3, 1), [0, 3, 4])
    # Cap 2: 0, 1 (group 0 full), skip 2, take 3.
    np.testing.assert_array_equal(diversify(order, None, group, 3, 2), [0, 1, 3])


def test_diversify_fills_with_skipped_when_no_alternative() -> None:
    group = np.array([0, 0, 0, 1])
    # Only one other group: 0 and 3 are taken, then the skipped 1 and 2 fill, in list order.
    np.testing.assert_array_equal(
        diversify(np.array([0, 1, 2, 3]), None, group, 4, 1), [0, 3, 1, 2]
    )


def test_diversify_keeps_order_when_no_group_is_full() -> None:
    group = np.array([0, 1, 2, 0, 1, 2])
    order = np.array([[5, 4, 3, 2, 1, 0], [0, 1, 2, 3, 4, 5]])
    np.testing.assert_array_equal(diversify(order, None, group, 4, 2), order[:, :4])
    np.testing.assert_array_equal(diversify(order, None, group, 4, None), order[:, :4])


def test_diversify_drops_padding_and_nan_and_pads() -> None:
    group = np.array([0, 1, 0, 1])
    scores = np.array([0.9, np.nan, 0.5, 0.4])
    order = np.array([[0, 1, -1, 2], [-1, -1, -1, -1]])
    np.testing.assert_array_equal(diversify(order, scores, group, 3, 1), [[0, 2, -1], [-1, -1, -1]])


def test_diversify_per_user_groups_are_independent() -> None:
    group = np.array([7, 7, 3, 3])
    order = np.array([[0, 1, 2, 3], [2, 3, 0, 1]])
    np.testing.assert_array_equal(diversify(order, None, group, 2, 1), [[0, 2], [2, 0]])


def test_diversify_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="max_per_group"):
        diversify(np.array([0]), None, np.array([0]), 1, 0)
    with pytest.raises(ValueError, match="order"):
        diversify(np.array([3]), None, np.array([0]), 1, 1)
    with pytest.raises(ValueError, match="group"):
        diversify(np.array([0]), None, np.array([-2]), 1, 1)


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    n_offers=st.integers(1, 12),
    k=st.integers(1, 8),
    cap=st.integers(1, 3),
)
def test_diversify_cap_holds_whenever_possible(
    data: st.DataObject, n_offers: int, k: int, cap: int
) -> None:
    group = data.draw(hnp.arrays(np.int64, n_offers, elements=st.integers(0, 3)))
    order = np.array(data.draw(st.permutations(range(n_offers))))
    result = diversify(order, None, group, k, cap)
    filled = result[result >= 0]
    # Same offers as a plain cut when enough are listed; never a repeat, never invented.
    assert filled.size == min(k, n_offers)
    assert len(set(filled.tolist())) == filled.size
    counts = np.bincount(group[filled], minlength=4)
    listed = np.bincount(group, minlength=4)
    # A group may exceed the cap only once no group under the cap has an offer left out.
    if (counts > cap).any():
        assert (counts >= np.minimum(cap, listed)).all()
    # Without fill-ins the kept offers keep their list order.
    if (counts <= cap).all():
        positions = np.argsort(order)[filled]
        assert (np.diff(positions) > 0).all()
