"""ALS: the shared model contract, plus the conventions of the factorisation models."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from recsys.models.factorization import ALSModel
from tests.fixtures import FLOAT64_RTOL, checkerboard_data, new_offers
from tests.model_mixin import ModelTests


class TestALS(ModelTests):
    model_name = "als"
    params: ClassVar[dict[str, Any]] = {"embedding_size": 2, "epochs": 10, "regularization": 0.01}
    unknown_user_scores = "nan"
    rtol = FLOAT64_RTOL


def test_new_offers_score_exactly_zero_for_known_users() -> None:
    board = checkerboard_data()
    model = ALSModel()
    model.train(board.data)
    np.testing.assert_array_equal(model.score(board.data.users, new_offers()), 0.0)


def test_user_without_interactions_is_nan() -> None:
    board = checkerboard_data()
    interactions = board.data.interactions.toarray()
    interactions[0] = 0.0
    data = type(board.data)(
        board.data.users,
        board.data.offers,
        type(board.data.interactions)(interactions),
        board.data.applies,
        board.data.cutoff,
    )
    model = ALSModel()
    model.train(data)
    scores = model.score(data.users, data.offers)
    assert np.isnan(scores[0]).all()
    assert np.isfinite(scores[1:]).all()
