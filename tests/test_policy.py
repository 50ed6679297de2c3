"""The list policy: hand-checked blends and caps, and its two paths giving the same lists."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from recsys.policy import (
    ListPolicy,
    ModelScores,
    RowStats,
    _capped,
    exclude,
    exclude_rows,
    group_cap,
    tie_keys,
)
from recsys.ranking import PAD, diversify, top_k


def test_group_cap_by_hand() -> None:
    assert group_cap(0.5, 6) == 3 and group_cap(0.7, 10) == 7 and group_cap(0.01, 3) == 1
    assert ListPolicy().caps(10) == (5, 7)
    assert ListPolicy().pool_size(5) == 50 and ListPolicy().pool_size(20) == 100


def test_known_people_keep_the_model_score_cold_ones_get_the_rules_blended() -> None:
    values = np.array([[3.0, 1.0, 2.0], [3.0, 1.0, 2.0]])
    rules = np.array([[0.0, 1.0, 0.5], [0.0, 1.0, 0.5]])
    masks = np.ones((2, 3), dtype=bool)
    served = ListPolicy(cold_start_rules_weight=0.5).served_scores(
        ModelScores(values, masks), np.array([True, False]), False, lambda: rules
    )
    np.testing.assert_array_equal(served[0], values[0])
    z = np.sqrt(1.5)  # model: mean 2, deviation sqrt(2/3); rules: mean 0.5, deviation sqrt(1/6)
    expected = 0.5 * np.array([z, -z, 0.0]) + 0.5 * np.array([-z, z, 0.0])
    np.testing.assert_allclose(served[1], expected, atol=1e-12)


def test_a_model_that_blends_the_rules_is_served_as_it_is() -> None:
    values = np.array([[3.0, 1.0]])
    masks = np.ones((1, 2), dtype=bool)

    def never() -> np.ndarray:
        raise AssertionError("the rules are not needed")

    for known, blends in ((np.array([False]), True), (np.array([True]), False)):
        served = ListPolicy().served_scores(ModelScores(values, masks), known, blends, never)
        assert served is values


def test_rules_weight_zero_serves_the_standardised_model_alone() -> None:
    values = np.array([[4.0, 8.0, np.nan]])
    masks = np.ones((1, 3), dtype=bool)
    served = ListPolicy(cold_start_rules_weight=0.0).served_scores(
        ModelScores(values, masks), np.array([False]), False, lambda: np.zeros((1, 3))
    )
    np.testing.assert_allclose(served, [[-1.0, 1.0, 0.0]])


def test_exclusions_sparse_lists_and_rows_agree() -> None:
    masks = np.ones((2, 5), dtype=bool)
    applied = sp.csr_matrix(np.array([[0, 1, 0, 0, 1], [0, 0, 0, 0, 0]], dtype=np.float32))
    by_matrix = exclude(masks.copy(), applied)
    by_lists = exclude(masks.copy(), [np.array([1, 4]), np.array([], dtype=np.int64)])
    np.testing.assert_array_equal(by_matrix, by_lists)
    np.testing.assert_array_equal(
        exclude_rows(np.arange(5), np.array([1, 4])), np.flatnonzero(by_matrix[0])
    )
    with pytest.raises(ValueError, match="excluded has shape"):
        exclude(masks, sp.csr_matrix((3, 5)))


def test_ties_break_by_offer_id_wherever_the_offers_are_stored() -> None:
    ids = np.array(["c", "a", "d", "b"], dtype=object)
    scores = np.array([[1.0, 1.0, 2.0, 1.0]])
    masks = np.ones((1, 4), dtype=bool)
    group = np.arange(4)
    listed = ListPolicy().lists(scores, masks, 4, group, group, tie_keys(ids))
    assert ids[listed[0]].tolist() == ["d", "a", "b", "c"]
    order = np.array([3, 1, 0, 2])  # the same offers stored otherwise
    again = ListPolicy().lists(scores[:, order], masks, 4, group, group, tie_keys(ids[order]))
    assert ids[order][again[0]].tolist() == ["d", "a", "b", "c"]


def test_caps_by_hand() -> None:
    """Ten offers of one programme score best; a list of 4 holds ceil(0.5·4) = 2 of them,
    then the best of the others; without others, the cap gives way."""
    policy = ListPolicy(max_per_programme=0.5, max_per_publisher=1.0)
    scores = np.array([[10.0 - i for i in range(12)]])
    programme = np.array([0] * 10 + [1, 2])
    publisher = np.zeros(12, dtype=np.int64)
    masks = np.ones((1, 12), dtype=bool)
    listed = policy.lists(scores, masks, 4, publisher, programme, None)
    assert listed[0].tolist() == [0, 1, 10, 11]
    only_one = masks & (programme == 0)
    assert policy.lists(scores, only_one, 4, publisher, programme, None)[0].tolist() == [0, 1, 2, 3]


@settings(max_examples=200, deadline=None)
@given(
    groups=st.lists(st.integers(0, 3), min_size=0, max_size=30),
    k=st.integers(0, 12),
    cap=st.integers(1, 4),
)
def test_the_one_list_walk_equals_the_core_diversify(groups: list[int], k: int, cap: int) -> None:
    """The one-list walk gives `recsys.ranking.diversify`'s list (offers are positions)."""
    group = np.array(groups, dtype=np.int64)
    order = np.random.default_rng(len(groups)).permutation(len(groups))
    expected = diversify(order, None, group, k, cap)
    np.testing.assert_array_equal(_capped(order, group[order], k, cap), expected[expected >= 0])


@settings(max_examples=100, deadline=None)
@given(
    data=st.data(),
    n_people=st.integers(1, 4),
    n_columns=st.integers(1, 80),
    k=st.integers(1, 12),
    programme_share=st.sampled_from([0.3, 0.5, 0.7, 1.0]),
    publisher_share=st.sampled_from([0.2, 0.5, 1.0]),
)
def test_the_single_request_path_equals_the_batch_path(
    data: st.DataObject,
    n_people: int,
    n_columns: int,
    k: int,
    programme_share: float,
    publisher_share: float,
) -> None:
    """What a lone request runs (top-k of its pool, then `order_pool`) is each row of
    `lists`, what evaluation runs, for any scores, candidates, groups and caps."""
    shape = (n_people, n_columns)
    scores = data.draw(
        hnp.arrays(np.float64, shape, elements=st.sampled_from([0.0, 0.5, 1.0, 2.0]))
    )
    masks = data.draw(hnp.arrays(np.bool_, shape))
    programme = data.draw(hnp.arrays(np.int64, n_columns, elements=st.integers(0, 3)))
    publisher = data.draw(hnp.arrays(np.int64, n_columns, elements=st.integers(0, 5)))
    keys = np.array(data.draw(st.permutations(range(n_columns))), dtype=np.int64)
    policy = ListPolicy(max_per_programme=programme_share, max_per_publisher=publisher_share)
    batch = policy.lists(scores, masks, k, publisher, programme, keys)
    for person in range(n_people):
        pool = top_k(scores[person], min(policy.pool_size(k), n_columns), masks[person], keys)
        pool = pool[pool != PAD]
        alone = pool[policy.order_pool(publisher[pool], programme[pool], k)]
        row = batch[person]
        np.testing.assert_array_equal(alone, row[row != PAD])


def test_row_statistics_by_hand() -> None:
    """Mean and deviation over a row's finite candidates; a constant row divides by 1."""
    values = np.array([[1.0, 2.0, 3.0, np.nan], [4.0, 8.0, 100.0, 5.0], [7.0, 7.0, 7.0, 7.0]])
    mask = np.array([[True, True, True, True], [True, True, False, False], [True] * 4])
    stats = RowStats.of(values, mask)
    np.testing.assert_allclose(stats.mean[:, 0], [2.0, 6.0, 7.0])
    np.testing.assert_allclose(stats.std[:, 0], [np.sqrt(2.0 / 3.0), 2.0, 1.0])
    z = stats.standardised(values, mask)
    np.testing.assert_allclose(z[1], [-1.0, 1.0, 0.0, 0.0])  # masked out: 0
    assert z[0, 3] == 0.0  # NaN: counted as the mean


def test_row_statistics_equal_numpy_over_the_counted_values() -> None:
    """Random rows with NaN, infinities and masked-out values: numpy's mean and deviation
    of each row's finite, admitted values."""
    rng = np.random.default_rng(5)
    values = rng.normal(size=(4, 1000)) * 3.0 + 1.0
    values[rng.random(values.shape) < 0.05] = np.nan
    values[0, :3] = [np.inf, -np.inf, 1e9]
    mask = rng.random(values.shape) < 0.8
    mask[0, 2] = False  # the huge value is not a candidate
    stats = RowStats.of(values, mask)
    for i, (row, admitted) in enumerate(zip(values, mask, strict=True)):
        counted = row[admitted & np.isfinite(row)]
        np.testing.assert_allclose(stats.mean[i, 0], counted.mean(), rtol=1e-12)
        np.testing.assert_allclose(stats.std[i, 0], counted.std(), rtol=1e-12)


def test_the_blend_equals_the_numpy_formula_exactly() -> None:
    """The compiled blend is `(1 − a)·z(model) + a·z(rules)` of `RowStats.standardised`, bit
    for bit, with NaN, infinities and masked-out candidates; known rows keep the model's."""
    rng = np.random.default_rng(11)
    values = rng.normal(size=(5, 300))
    values[rng.random(values.shape) < 0.05] = np.nan
    values[1, :2] = [np.inf, -np.inf]
    rules = rng.random((5, 300))
    masks = rng.random((5, 300)) < 0.8
    known = np.array([False, False, True, False, False])
    model = ModelScores(values, masks)
    for weight in (0.0, 0.3, 1.0):
        served = ListPolicy(cold_start_rules_weight=weight).served_scores(
            model, known, False, lambda: rules
        )
        rules_z = RowStats.of(rules, masks).standardised(rules, masks)
        blended = (1.0 - weight) * model.stats.standardised(values, masks) + weight * rules_z
        expected = np.where(known[:, None], values, blended)
        np.testing.assert_array_equal(served, expected)
