"""EASE: the shared model tests plus the closed form computed by hand."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
import scipy.sparse as sp

from recsys.models import create_model
from recsys.models.ease import ease_weights
from tests.fixtures import (
    FLOAT64_RTOL,
    make_offers_frame,
    make_profiles_frame,
    offer_batch,
    training_data,
    user_batch,
)
from tests.model_mixin import ModelTests


class TestEASE(ModelTests):
    model_name = "ease"
    params: ClassVar = {"regularization": 1.0}
    unknown_user_scores = "nan"
    rtol = FLOAT64_RTOL


# X = [[1, 1], [1, 0]], λ = 1: XᵀX + λI = [[3, 1], [1, 2]], det 5, P = [[2, −1], [−1, 3]] / 5;
# B_01 = −P_01 / P_11 = 1/3, B_10 = −P_10 / P_00 = 1/2, zero diagonal.
WEIGHTS = np.array([[1.0, 1.0], [1.0, 0.0]])


def _data(weights: np.ndarray):
    n_users, n_offers = weights.shape
    users = user_batch(make_profiles_frame(n_users))
    offers = offer_batch(make_offers_frame(n_offers))
    return training_data(users, offers, weights)


def test_weights_are_the_closed_form() -> None:
    weights = ease_weights(sp.csr_matrix(WEIGHTS), regularization=1.0)
    np.testing.assert_allclose(weights, [[0.0, 1 / 3], [1 / 2, 0.0]], rtol=FLOAT64_RTOL)


def test_scores_are_history_times_weights() -> None:
    model = create_model("ease", {"regularization": 1.0})
    data = _data(WEIGHTS)
    model.train(data)
    # User 0 holds both offers: [B_10, B_01]; user 1 holds offer 0 only: [B_00, B_01].
    np.testing.assert_allclose(
        model.score(data.users, data.offers), [[1 / 2, 1 / 3], [0.0, 1 / 3]], rtol=1e-6
    )


def test_binary_ignores_the_weights() -> None:
    weighted = _data(WEIGHTS * np.array([[3.0, 0.5], [2.0, 1.0]]))
    model = create_model("ease", {"regularization": 1.0, "binary": True})
    model.train(weighted)
    np.testing.assert_allclose(
        model.score(weighted.users, weighted.offers), [[1 / 2, 1 / 3], [0.0, 1 / 3]], rtol=1e-6
    )


def test_offers_beyond_max_offers_score_zero_and_user_without_history_is_nan() -> None:
    # Offer 2 has one interacting user, offers 0 and 1 two each: max_offers 2 drops offer 2.
    weights = np.array([[1.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    model = create_model("ease", {"regularization": 1.0, "max_offers": 2})
    data = _data(weights)
    model.train(data)
    scores = model.score(data.users, data.offers)
    np.testing.assert_array_equal(scores[:3, 2], 0.0)
    assert np.isnan(scores[3]).all()
    assert model.knows(data.users.ids).tolist() == [True, True, True, False]


@pytest.mark.parametrize(
    ("params", "field"),
    [({"regularization": 0.0}, "regularization"), ({"max_offers": 0}, "max_offers")],
)
def test_config_refuses_bad_values(params: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        create_model("ease", params)
