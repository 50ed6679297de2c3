"""Counterfactual estimates of applications: position propensities and IPS / SNIPS, by hand."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.counterfactual import LoggedLists, estimate, position_propensities, target_ranks
from recsys.ranking import PAD

FLOAT_RTOL = 1e-12  # a handful of float64 operations

# θ by position (θ_0 = 0: not listed): 1, 1/2, 1/4 at positions 1, 2, 3.
THETA = np.array([0.0, 1.0, 0.5, 0.25])

# Three logged lists. List 0 (user 0): offers 10, 11, 12 at positions 1, 2, 3; 10 and 12
# applied to. List 1 (user 1): offers 10, 13 at 1, 2; 13 applied to. List 2 (user 0): 11 at 1.
LOGGED = LoggedLists(
    list_id=np.array([0, 0, 0, 1, 1, 2]),
    user=np.array([0, 0, 0, 1, 1, 0]),
    offer=np.array([10, 11, 12, 10, 13, 11]),
    position=np.array([1, 2, 3, 1, 2, 1]),
    applied=np.array([True, False, True, False, True, False]),
    n_lists=3,
)
# Target lists (k = 2): user 0 gets [12, 10], user 1 gets [13] and an empty slot.
TARGET = np.array([[12, 10], [13, PAD]])


def test_target_ranks_of_logged_prints() -> None:
    assert target_ranks(LOGGED, TARGET).tolist() == [2, 0, 1, 0, 1, 0]


def test_ips_and_snips_by_hand() -> None:
    found = estimate(LOGGED, TARGET, THETA)
    # Per list, A = Σ y·θ_q/θ_r: list 0: 10 (q 2, r 1) 0.5/1 + 12 (q 1, r 3) 1/0.25 = 4.5;
    # list 1: 13 (q 1, r 2) 1/0.5 = 2; list 2: 0. IPS = 6.5 / 3.
    assert found["ips"] == pytest.approx(6.5 / 3, rel=FLOAT_RTOL)
    # Covered examination B = Σ θ_q over the logged offers the target lists: 1.5, 1, 0.
    # Target mass M per list: user 0 θ1 + θ2 = 1.5, user 1 θ1 = 1: mean (1.5 + 1 + 1.5) / 3.
    # SNIPS = ΣA / ΣB · mean M = 6.5 / 2.5 · 4/3.
    assert found["snips"] == pytest.approx(6.5 / 2.5 * 4 / 3, rel=FLOAT_RTOL)
    assert found["coverage"] == pytest.approx(2.5 / 4, rel=FLOAT_RTOL)
    assert found["lists"] == 3
    # IPS: sample standard deviation of A = (4.5, 2, 0) over √3.
    assert found["ips_se"] == pytest.approx(np.std([4.5, 2, 0], ddof=1) / np.sqrt(3), rel=1e-12)
    # SNIPS (delta method): residuals A − (6.5/2.5)·B = (0.6, −0.6, 0); variance of the
    # ratio Σ r² / (n − 1) / n / mean(B)², times mean M.
    ratio_se = np.sqrt((0.36 + 0.36) / 2 / 3) / (2.5 / 3)
    assert found["snips_se"] == pytest.approx(ratio_se * 4 / 3, rel=1e-9)


def test_the_logged_lists_themselves_score_what_was_logged() -> None:
    """Weights are 1 when the target is the logged list: IPS = SNIPS = applies per list."""
    logged = LoggedLists(
        list_id=np.array([0, 0, 0, 1, 1]),
        user=np.array([0, 0, 0, 1, 1]),
        offer=np.array([5, 6, 7, 5, 8]),
        position=np.array([1, 2, 3, 1, 2]),
        applied=np.array([False, True, True, False, False]),
        n_lists=2,
    )
    target = np.array([[5, 6, 7], [5, 8, PAD]])
    found = estimate(logged, target, THETA)
    assert found["ips"] == pytest.approx(1.0, rel=FLOAT_RTOL)
    assert found["snips"] == pytest.approx(1.0, rel=FLOAT_RTOL)
    assert found["coverage"] == pytest.approx(1.0, rel=FLOAT_RTOL)


def test_snips_is_nan_when_nothing_is_covered() -> None:
    found = estimate(LOGGED, np.array([[99, PAD], [98, PAD]]), THETA)
    assert found["ips"] == 0.0 and found["coverage"] == 0.0
    assert np.isnan(found["snips"])


def _prints(cells: list[tuple[int, int, int, int]]) -> tuple[np.ndarray, ...]:
    """(offer, position, clicked) arrays from (offer, position, prints, clicks) cells."""
    offer, position, clicked = [], [], []
    for o, r, n, c in cells:
        offer += [o] * n
        position += [r] * n
        clicked += [True] * c + [False] * (n - c)
    return np.array(offer), np.array(position), np.array(clicked)


def test_propensities_recover_a_position_based_model() -> None:
    # θ = (1, 1/2, 1/4), attractiveness 1/2 (offer 0) and 1/4 (offer 1): each cell's click
    # count is exactly prints · θ_r · γ_o.
    cells = [(0, 1, 16, 8), (0, 2, 16, 4), (0, 3, 16, 2), (1, 1, 16, 4), (1, 2, 16, 2)]
    theta = position_propensities(*_prints(cells))
    np.testing.assert_allclose(theta, [0.0, 1.0, 0.5, 0.25], rtol=1e-6)


def test_propensities_fill_an_unseen_position_from_the_next_one() -> None:
    cells = [(0, 1, 8, 4), (0, 3, 8, 1), (1, 1, 8, 2), (1, 3, 8, 1)]
    theta = position_propensities(*_prints(cells))
    assert theta[2] == theta[3] and len(theta) == 4


@pytest.mark.parametrize(
    ("position", "clicked", "message"),
    [([0, 1], [True, False], "1-based"), ([1, 2], [False, False], "no click")],
)
def test_propensities_refuse_bad_logs(position: list, clicked: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        position_propensities(np.array([0, 1]), np.array(position), np.array(clicked))
