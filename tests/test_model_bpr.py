"""BPR: the shared model contract, plus the zero-factor convention for unseen offers."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from recsys.models.factorization import BPRModel
from tests.fixtures import FLOAT64_RTOL, checkerboard_data, new_offers
from tests.model_mixin import ModelTests


class TestBPR(ModelTests):
    model_name = "bpr"
    params: ClassVar[dict[str, Any]] = {"embedding_size": 4, "epochs": 200, "learning_rate": 0.05}
    unknown_user_scores = "nan"
    rtol = FLOAT64_RTOL


def test_new_offers_score_exactly_zero_bias_included() -> None:
    board = checkerboard_data()
    model = BPRModel(BPRModel.config_class(embedding_size=4, epochs=5))
    model.train(board.data)
    np.testing.assert_array_equal(model.score(board.data.users, new_offers()), 0.0)
