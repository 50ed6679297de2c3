"""Content model: the shared model tests plus hand-computed cosines."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
import scipy.sparse as sp

from recsys.dataset import OfferBatch
from recsys.models import create_model
from tests.fixtures import (
    make_offers_frame,
    make_profiles_frame,
    offer_batch,
    training_data,
    user_batch,
)
from tests.model_mixin import ModelTests


class TestContent(ModelTests):
    model_name = "content"
    params: ClassVar = {}


class TestContentHistoryOnly(ModelTests):
    model_name = "content"
    params: ClassVar = {"profile_weight": 0.0}
    unknown_user_scores = "nan"  # strangers have no history and the quiz part is off


def _offers(features: np.ndarray, **columns) -> OfferBatch:
    batch = offer_batch(make_offers_frame(len(features), **columns))
    return OfferBatch(batch.ids, sp.csr_matrix(features), batch.arrays)


# Offer features f0 = (1, 0), f1 = (0, 1), f2 = (1, 1). Offers o0 "sport / animation-sportive"
# (quiz sport + transmettre-animer), o1 "culture / atelier-creatif" (art-culture +
# creer-communiquer), o2 "sport / secourisme" (sport + secourir-proteger).
FEATURES = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
OFFER_COLUMNS = {
    "domain": ["sport", "culture-loisirs", "sport"],
    "activities": [["animation-sportive"], ["atelier-creatif"], ["secourisme"]],
}


def _trained(**params):
    users = user_batch(
        make_profiles_frame(
            2,
            quizDomains=[[], ["sport"]],
            quizActivities=[[], ["transmettre-animer"]],
        )
    )
    offers = _offers(FEATURES, **OFFER_COLUMNS)
    # u0: o0 weight 1, o1 weight 3 (no quiz); u1: o0 weight 1 (quiz sport + transmettre).
    data = training_data(users, offers, np.array([[1.0, 3.0, 0.0], [1.0, 0.0, 0.0]]))
    model = create_model("content", params)
    model.train(data)
    return model, data


def test_history_cosine() -> None:
    model, data = _trained()
    scores = model.score(data.users.take(np.array([0])), data.offers)[0]
    # u0's vector ∝ 1·f0 + 3·f1 = (1, 3): cosines 1/√10, 3/√10, 4/√20.
    np.testing.assert_allclose(scores, [1 / np.sqrt(10), 3 / np.sqrt(10), 4 / np.sqrt(20)])


def test_history_and_quiz_blend() -> None:
    model, data = _trained(history_weight=1.0, profile_weight=0.5)
    scores = model.score(data.users.take(np.array([1])), data.offers)[0]
    # History (1, 0): cosines 1, 0, 1/√2. Quiz (sport, transmettre)/√2 against o0
    # (sport, transmettre)/√2 = 1, o1 = 0, o2 (sport, secourir)/√2 = 1/2.
    history = np.array([1.0, 0.0, 1 / np.sqrt(2)])
    quiz = np.array([1.0, 0.0, 0.5])
    np.testing.assert_allclose(scores, (1.0 * history + 0.5 * quiz) / 1.5)


def test_unknown_user_scored_from_quiz_and_new_offer_from_features() -> None:
    model, _ = _trained()
    stranger = user_batch(
        make_profiles_frame(
            2,
            userId=["s", "t"],
            quizDomains=[["sport"], []],
            quizActivities=[["transmettre-animer"], []],
        )
    )
    new = _offers(np.array([[2.0, 0.0]]), domain="sport", activities=[["secourisme"]])
    scores = model.score(stranger, new)
    assert scores[0, 0] == pytest.approx(0.5)  # quiz cosine only, weights renormalised
    assert np.isnan(scores[1, 0])  # neither history nor quiz: cannot score


def test_features_of_another_encoder_are_refused() -> None:
    model, data = _trained()
    wrong = _offers(np.ones((3, 5)), **OFFER_COLUMNS)
    with pytest.raises(ValueError, match=r"offers\.features: 5 feature columns"):
        model.score(data.users, wrong)


def test_config_refuses_both_weights_zero() -> None:
    with pytest.raises(ValueError, match="both 0"):
        create_model("content", {"history_weight": 0.0, "profile_weight": 0.0})
