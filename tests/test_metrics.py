"""Offline metrics on hand-computed tiny cases, plus property tests."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.metrics import (
    average_precision_at_k,
    catalog_coverage,
    exposure_counts,
    exposure_share,
    gini,
    hit_rate_at_k,
    ineligible_rate,
    map_at_k,
    mean_distance,
    mean_over_users,
    ndcg_at_k,
    new_offer_share,
    precision_at_k,
    ranking_metrics,
    recall_at_k,
)

LOG2_3 = math.log2(3)

# Four users:
#   u0: relevant {1, 3}, recommended [3, 5, 1]  (hits at ranks 1 and 3)
#   u1: relevant {0},    recommended nothing    (unserved: counts as zero)
#   u2: relevant {},     recommended [0, 1, 2]  (excluded by rule)
#   u3: relevant {2, 4, 6, 7}, recommended [5, 2, -]  (hit at rank 2)
RECOMMENDED = np.array([[3, 5, 1], [-1, -1, -1], [0, 1, 2], [5, 2, -1]])
RELEVANT = [np.array([1, 3]), np.array([0]), np.array([], dtype=int), np.array([2, 4, 6, 7])]


def test_hand_computed_user_values() -> None:
    # u0 at k=3: P = 2/3; R = 2/2 = 1;
    #   DCG = 1/log2(2) + 1/log2(4) = 1.5, IDCG = 1/log2(2) + 1/log2(3) (min(|rel|, 3) = 2);
    #   AP = (1/min(2, 3)) · (P@1 · 1 + P@3 · 1) = (1/2) · (1 + 2/3) = 5/6; hit = 1.
    # u3 at k=3: P = 1/3; R = 1/4; DCG = 1/log2(3), IDCG = 1 + 1/log2(3) + 1/log2(4);
    #   AP = (1/3) · P@2 = (1/3) · (1/2) = 1/6; hit = 1.
    # u1 scores 0 everywhere; u2 is NaN (excluded).
    expected = {
        precision_at_k: [2 / 3, 0, np.nan, 1 / 3],
        recall_at_k: [1, 0, np.nan, 1 / 4],
        ndcg_at_k: [1.5 / (1 + 1 / LOG2_3), 0, np.nan, (1 / LOG2_3) / (1.5 + 1 / LOG2_3)],
        average_precision_at_k: [5 / 6, 0, np.nan, 1 / 6],
        hit_rate_at_k: [1, 0, np.nan, 1],
    }
    for metric, values in expected.items():
        assert metric(RECOMMENDED, RELEVANT, 3) == pytest.approx(values, nan_ok=True), metric


def test_cutoffs_below_and_above_list_length() -> None:
    # k=1, u0: P = 1, R = 1/2, NDCG = 1 (ideal over min(2, 1) = 1 slot), AP = (1/1) · 1 = 1.
    assert precision_at_k(RECOMMENDED, RELEVANT, 1)[0] == pytest.approx(1)
    assert recall_at_k(RECOMMENDED, RELEVANT, 1)[0] == pytest.approx(0.5)
    assert ndcg_at_k(RECOMMENDED, RELEVANT, 1)[0] == pytest.approx(1)
    assert average_precision_at_k(RECOMMENDED, RELEVANT, 1)[0] == pytest.approx(1)
    # k=5 beyond the 3 columns: missing slots are misses, P = 2/5 for u0, 1/5 for u3.
    assert precision_at_k(RECOMMENDED, RELEVANT, 5)[[0, 3]] == pytest.approx([2 / 5, 1 / 5])
    # u3 at k=5: AP divides by min(4, 5) = 4: (1/4) · (1/2) = 1/8.
    assert average_precision_at_k(RECOMMENDED, RELEVANT, 5)[3] == pytest.approx(1 / 8)


def test_means_count_unserved_as_zero_and_exclude_no_relevant() -> None:
    # Evaluated users: u0, u1, u3. P@3 = (2/3 + 0 + 1/3) / 3 = 1/3; R@3 = (1 + 0 + 1/4) / 3
    # = 5/12; MAP@3 = (5/6 + 0 + 1/6) / 3 = 1/3; hit rate = 2/3.
    result = ranking_metrics(RECOMMENDED, RELEVANT, ks=(3,))
    assert result["precision@3"] == pytest.approx(1 / 3)
    assert result["recall@3"] == pytest.approx(5 / 12)
    assert result["map@3"] == pytest.approx(1 / 3)
    assert result["hit_rate@3"] == pytest.approx(2 / 3)
    assert result["ndcg@3"] == pytest.approx(
        (1.5 / (1 + 1 / LOG2_3) + (1 / LOG2_3) / (1.5 + 1 / LOG2_3)) / 3
    )
    assert result["users_evaluated"] == 3
    assert result["users_without_relevant"] == 1
    assert result["users_without_recommendations"] == 1
    assert map_at_k(RECOMMENDED, RELEVANT, 3) == pytest.approx(1 / 3)


def test_default_keys() -> None:
    result = ranking_metrics(RECOMMENDED, RELEVANT)
    for name in ("precision", "recall", "ndcg", "map", "hit_rate"):
        for k in (5, 10, 20):
            assert f"{name}@{k}" in result
    # u0 at k=20: P = 2/20, u1 0, u3 1/20 → mean 3/60.
    assert result["precision@20"] == pytest.approx(3 / 60)


def test_sparse_relevant_matches_lists() -> None:
    rows = np.repeat(np.arange(4), [len(r) for r in RELEVANT])
    cols = np.concatenate(RELEVANT)
    matrix = sp.csr_array((np.ones(cols.size, dtype=bool), (rows, cols)), shape=(4, 8))
    assert ranking_metrics(RECOMMENDED, matrix, ks=(1, 3)) == pytest.approx(
        ranking_metrics(RECOMMENDED, RELEVANT, ks=(1, 3)), nan_ok=True
    )
    # An explicitly stored False is not relevant.
    matrix = sp.csr_array(([True, False], ([0, 0], [3, 1])), shape=(4, 8))
    assert recall_at_k(RECOMMENDED, matrix, 3)[0] == pytest.approx(1.0)  # relevant {3} only
    assert np.isnan(recall_at_k(RECOMMENDED, matrix, 3)[1:]).all()


def test_segment_mean_and_empty_segment() -> None:
    values = precision_at_k(RECOMMENDED, RELEVANT, 3)
    assert mean_over_users(values[[0, 1]]) == pytest.approx(1 / 3)
    assert math.isnan(mean_over_users(values[[2]]))


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="listed twice"):
        precision_at_k(np.array([[1, 1]]), [np.array([1])], 2)
    with pytest.raises(ValueError, match="relevant"):
        precision_at_k(RECOMMENDED, RELEVANT[:2], 2)
    with pytest.raises(ValueError, match="k:"):
        precision_at_k(RECOMMENDED, RELEVANT, 0)
    with pytest.raises(ValueError, match="recommended"):
        precision_at_k(np.array([0.5, 1.0]), RELEVANT, 1)


def test_gini() -> None:
    assert gini(np.array([2.0, 2.0, 2.0])) == pytest.approx(0)
    # Σ|x_i − x_j| over ordered pairs = 6, 2 n² mean = 2 · 16 · 0.25 = 8 → 0.75.
    assert gini(np.array([0, 0, 0, 1])) == pytest.approx(0.75)
    assert gini(np.zeros(3)) == 0
    with pytest.raises(ValueError, match="non-negative"):
        gini(np.array([1.0, -1.0]))


# Two users, catalog of 4 offers in groups [0, 0, 1, 2] (4 groups, group 3 never shown).
BEYOND = np.array([[0, 1, -1], [2, 0, 3]])
GROUPS = np.array([0, 0, 1, 2])


def test_exposure_share_and_gini() -> None:
    # Top-2 slots: u0 → 0, 1; u1 → 2, 0. Groups 0, 0, 1, 0 → counts [3, 1, 0, 0].
    counts = exposure_counts(BEYOND, GROUPS, 4, 2)
    np.testing.assert_array_equal(counts, [3, 1, 0, 0])
    shares = exposure_share(BEYOND, GROUPS, 4, 2)
    assert shares == pytest.approx([0.75, 0.25, 0, 0])
    assert shares.sum() == pytest.approx(1)
    # Sorted (0, 0, 1, 3): Σ|x_i − x_j| over ordered pairs = 20, 2 n² mean = 32 → 0.625.
    assert gini(counts) == pytest.approx(0.625)
    assert gini(shares) == pytest.approx(0.625)
    assert exposure_share(np.full((2, 2), -1), GROUPS, 4, 2) == pytest.approx([0, 0, 0, 0])
    with pytest.raises(ValueError, match="group_of_offer"):
        exposure_share(BEYOND, GROUPS, 2, 2)


def test_catalog_coverage() -> None:
    assert catalog_coverage(BEYOND, 10) == pytest.approx(0.4)  # {0, 1, 2, 3}
    assert catalog_coverage(BEYOND, 10, k=1) == pytest.approx(0.2)  # {0, 2}
    with pytest.raises(ValueError, match="n_catalog"):
        catalog_coverage(BEYOND, 3)


def test_new_offer_share() -> None:
    # Top-3 filled slots: 0, 1, 2, 0, 3 → new ones are 1 and 3: 2/5.
    assert new_offer_share(BEYOND, np.array([False, True, False, True]), 3) == pytest.approx(0.4)
    assert new_offer_share(np.full((1, 2), -1), np.array([True]), 2) == 0.0


def test_mean_distance_matrix_and_callable() -> None:
    distances = np.array([[1.0, np.nan, 5, 5], [3, 9, 7, 9]])
    # Top-2 slots: (u0, 0) = 1, (u0, 1) unknown, (u1, 2) = 7, (u1, 0) = 3 → 11/3.
    assert mean_distance(BEYOND, distances, 2) == pytest.approx(11 / 3)
    assert mean_distance(BEYOND, lambda u, o: distances[u, o], 2) == pytest.approx(11 / 3)
    assert math.isnan(mean_distance(BEYOND, np.full((2, 4), np.nan), 2))


def test_ineligible_rate_matrix_and_callable() -> None:
    eligible = np.ones((2, 4), dtype=bool)
    eligible[0, 1] = eligible[1, 3] = False
    # Top-3 filled slots: (0,0) (0,1)✗ (1,2) (1,0) (1,3)✗ → 2/5.
    assert ineligible_rate(BEYOND, eligible, 3) == pytest.approx(0.4)
    assert ineligible_rate(BEYOND, lambda u: eligible[u], 3) == pytest.approx(0.4)
    assert ineligible_rate(BEYOND, eligible, 1) == 0.0  # (0,0) and (1,2) are eligible
    with pytest.raises(ValueError, match="eligible_mask"):
        ineligible_rate(BEYOND, lambda u: eligible[u].astype(int), 3)


@st.composite
def lists_and_relevant(draw: st.DrawFn) -> tuple[np.ndarray, list[np.ndarray]]:
    """Random -1-padded lists without repeats and random relevant sets over a small catalog."""
    n_users = draw(st.integers(1, 6))
    n_offers = draw(st.integers(1, 10))
    k_max = draw(st.integers(1, 8))
    recommended = np.full((n_users, k_max), -1)
    relevant = []
    for u in range(n_users):
        ranked = draw(st.permutations(range(n_offers)))[: draw(st.integers(0, k_max))]
        recommended[u, : len(ranked)] = ranked
        relevant.append(np.array(sorted(draw(st.sets(st.integers(0, n_offers - 1)))), dtype=int))
    return recommended, relevant


PER_USER = (precision_at_k, recall_at_k, ndcg_at_k, average_precision_at_k, hit_rate_at_k)


@settings(max_examples=50, deadline=None)
@given(case=lists_and_relevant(), k=st.integers(1, 10))
def test_metrics_lie_in_unit_interval(case: tuple[np.ndarray, list], k: int) -> None:
    recommended, relevant = case
    for metric in PER_USER:
        values = metric(recommended, relevant, k)
        evaluated = np.array([r.size > 0 for r in relevant])
        assert np.isnan(values[~evaluated]).all()
        assert ((values[evaluated] >= 0) & (values[evaluated] <= 1 + 1e-12)).all()


@settings(max_examples=50, deadline=None)
@given(case=lists_and_relevant(), k=st.integers(1, 10), data=st.data())
def test_ndcg_is_one_when_relevant_ranked_first(
    case: tuple[np.ndarray, list], k: int, data: st.DataObject
) -> None:
    _, relevant = case
    width = max([r.size for r in relevant] + [1]) + 2
    recommended = np.full((len(relevant), width), -1)
    for u, items in enumerate(relevant):
        recommended[u, : items.size] = data.draw(st.permutations(items.tolist()))
    values = ndcg_at_k(recommended, relevant, k)
    evaluated = [r.size > 0 for r in relevant]
    assert values[evaluated] == pytest.approx(np.ones(sum(evaluated)))


@settings(max_examples=50, deadline=None)
@given(case=lists_and_relevant())
def test_recall_non_decreasing_in_k(case: tuple[np.ndarray, list]) -> None:
    recommended, relevant = case
    recalls = np.stack([recall_at_k(recommended, relevant, k) for k in range(1, 10)])
    evaluated = [r.size > 0 for r in relevant]
    assert (np.diff(recalls[:, evaluated], axis=0) >= 0).all()


@settings(max_examples=50, deadline=None)
@given(case=lists_and_relevant(), seed=st.integers(0, 2**32 - 1))
def test_permuting_users_keeps_means(case: tuple[np.ndarray, list], seed: int) -> None:
    recommended, relevant = case
    perm = np.random.default_rng(seed).permutation(len(relevant))
    shuffled = ranking_metrics(recommended[perm], [relevant[i] for i in perm], ks=(1, 3, 10))
    assert shuffled == pytest.approx(
        ranking_metrics(recommended, relevant, ks=(1, 3, 10)), nan_ok=True
    )
