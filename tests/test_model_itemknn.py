"""Item-kNN: the shared model tests plus hand-computed similarities and scores."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
import scipy.sparse as sp

from recsys.models import create_model
from recsys.models.itemknn import item_similarity, top_k_per_row
from tests.fixtures import (
    make_offers_frame,
    make_profiles_frame,
    offer_batch,
    training_data,
    user_batch,
)
from tests.model_mixin import ModelTests


class TestItemKNN(ModelTests):
    model_name = "itemknn"
    params: ClassVar = {"k": 5}
    unknown_user_scores = "nan"


# Users × offers weights. Offer columns: x0 = (1, 1, 0), x1 = (1, 0, 1), x2 = (0, 2, 1);
# norms √2, √2, √5; dots x0·x1 = 1, x0·x2 = 2, x1·x2 = 1.
WEIGHTS = np.array([[1.0, 1.0, 0.0], [1.0, 0.0, 2.0], [0.0, 1.0, 1.0]])
SIM_01 = 1 / 2
SIM_02 = 2 / np.sqrt(10)
SIM_12 = 1 / np.sqrt(10)


def _data(weights: np.ndarray = WEIGHTS):
    n_users, n_offers = weights.shape
    users = user_batch(make_profiles_frame(n_users))
    offers = offer_batch(make_offers_frame(n_offers))
    return training_data(users, offers, weights)


def test_similarity_is_cosine_without_self() -> None:
    similarity = item_similarity(sp.csr_matrix(WEIGHTS), k=2, shrinkage=0.0).toarray()
    expected = np.array([[0.0, SIM_01, SIM_02], [SIM_01, 0.0, SIM_12], [SIM_02, SIM_12, 0.0]])
    np.testing.assert_allclose(similarity, expected)


def test_shrinkage_damps_similarity() -> None:
    similarity = item_similarity(sp.csr_matrix(WEIGHTS), k=2, shrinkage=1.0).toarray()
    assert similarity[0, 1] == pytest.approx(1 / (2 + 1))  # x0·x1 / (√2·√2 + 1)
    assert similarity[0, 2] == pytest.approx(2 / (np.sqrt(10) + 1))


def test_top_k_keeps_largest_per_row_ties_by_column() -> None:
    matrix = sp.csr_matrix(np.array([[0.1, 0.5, 0.3, 0.5], [0.0, 0.0, 0.2, 0.0]]))
    kept = top_k_per_row(matrix, 2).toarray()
    np.testing.assert_array_equal(kept, [[0.0, 0.5, 0.0, 0.5], [0.0, 0.0, 0.2, 0.0]])


def test_scores_sum_neighbour_similarity_times_history_weight() -> None:
    model = create_model("itemknn", {"k": 2})
    data = _data()
    model.train(data)
    scores = model.score(data.users, data.offers)
    # User 0 holds o0 and o1 (weight 1 each): o0 ← sim01, o1 ← sim01, o2 ← sim02 + sim12.
    np.testing.assert_allclose(scores[0], [SIM_01, SIM_01, SIM_02 + SIM_12])
    # User 1 holds o0 (1) and o2 (2): o1 ← sim01·1 + sim12·2.
    assert scores[1, 1] == pytest.approx(SIM_01 + 2 * SIM_12)


def test_k_one_keeps_only_the_nearest_neighbour() -> None:
    model = create_model("itemknn", {"k": 1})
    data = _data()
    model.train(data)
    scores = model.score(data.users.take(np.array([0])), data.offers)
    # Nearest of o0 is o2 (not held by user 0), of o1 is o0, of o2 is o0.
    np.testing.assert_allclose(scores[0], [0.0, SIM_01, SIM_02])


def test_user_without_history_is_nan_and_new_offer_is_zero() -> None:
    weights = np.vstack([WEIGHTS, np.zeros(3)])  # user 3 is known but never interacted
    model = create_model("itemknn", {"k": 2})
    data = _data(weights)
    model.train(data)
    new = offer_batch(make_offers_frame(1, id=["brand-new"]))
    assert np.isnan(model.score(data.users.take(np.array([3])), data.offers)).all()
    assert model.score(data.users.take(np.array([0])), new)[0, 0] == 0.0


def test_config_refuses_bad_k() -> None:
    with pytest.raises(ValueError, match="k: must be >= 1"):
        create_model("itemknn", {"k": 0})
