"""Content-based scores: offers that look like the user's history, or like their quiz answers.

Two cosines, blended per user:

- history: the user's vector is the interaction-weighted mean of the L2-normalised feature
  rows of the offers they interacted with in training; its cosine with each offer's
  (normalised) features. Offers unseen in training are scored from their features alike.
- profile: the cosine between the quiz answers (quiz domains and activity types, 0/1) and the
  offer's tags on the same two taxonomies (`OfferArrays.quiz_domains` / `quiz_activities`).
  Mapping quiz answers into the encoder's feature space would need a learned map; matching
  them on the shared quiz taxonomy needs none.

`score = (history_weight·h + profile_weight·q) / (history_weight·[has h] + profile_weight·[has
q])`: a user with only one of the two gets that one, on the same [0, 1] scale (features are
non-negative). A user with neither history nor quiz answers cannot be scored: NaN.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from recsys.arrays import OfferArrays, ProfileArrays
from recsys.dataset import OfferBatch, TrainingData, UserBatch
from recsys.models._common import (
    check_width,
    lookup,
    require_trained,
    row_chunks,
    sparse_from_arrays,
    sparse_to_arrays,
    unicode_ids,
    with_history,
)
from recsys.models.base import ModelConfig, Recommender


@dataclass
class ContentConfig(ModelConfig):
    """Weights of the history cosine and of the quiz-profile cosine in the blend."""

    history_weight: float = 1.0
    profile_weight: float = 0.5

    def __post_init__(self) -> None:
        for name in ("history_weight", "profile_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"ContentConfig.{name}: must be >= 0, got {getattr(self, name)}")
        if self.history_weight == 0 and self.profile_weight == 0:
            raise ValueError("ContentConfig: history_weight and profile_weight are both 0")


def _quiz_vectors(arrays: ProfileArrays | OfferArrays) -> np.ndarray:
    """L2-normalised [quiz domains, quiz activities] rows (zero rows stay zero)."""
    stacked = np.hstack([arrays.quiz_domains, arrays.quiz_activities]).astype(float)
    return normalize(stacked)


@dataclass(frozen=True)
class _State:
    user_ids: np.ndarray  # unicode (n_users,)
    history: sp.csr_matrix  # (n_users, n_train_offers) interaction weights
    offer_features: sp.csr_matrix  # (n_train_offers, n_features), rows L2-normalised


class ContentModel(Recommender):
    """Cosine between a user's history (or quiz answers) and the offers' features."""

    name = "content"
    config_class = ContentConfig
    config: ContentConfig

    def __init__(self, config: ContentConfig | None = None) -> None:
        super().__init__(config)
        self._state: _State | None = None

    def train(self, data: TrainingData, progress: Callable[[int, int], None] | None = None) -> None:
        history = sp.csr_matrix(data.interactions, dtype=float)
        history.eliminate_zeros()
        self._state = _State(
            user_ids=unicode_ids(data.users.ids),
            history=history,
            offer_features=sp.csr_matrix(normalize(data.offers.features.astype(float))),
        )

    def score(self, users: UserBatch, offers: OfferBatch) -> np.ndarray:
        require_trained(self._state, self.name)
        state = self._state
        check_width(offers.features, state.offer_features.shape[1], "offers.features")
        if len(users) == 0 or len(offers) == 0:  # sklearn's normalize refuses empty input
            return np.empty((len(users), len(offers)))
        config = self.config
        candidates = sp.csr_matrix(normalize(offers.features.astype(float))).T.tocsc()
        offer_quiz = _quiz_vectors(offers.arrays)

        user_row = lookup(state.user_ids, users.ids)
        has_history = user_row >= 0
        has_history[has_history] = np.diff(state.history.indptr)[user_row[has_history]] > 0
        user_quiz = _quiz_vectors(users.arrays)
        has_quiz = user_quiz.any(axis=1)
        weight = config.history_weight * has_history + config.profile_weight * has_quiz

        out = np.full((len(users), len(offers)), np.nan)
        for rows in row_chunks(len(users), len(offers)):
            index = np.arange(rows.start, rows.stop)
            blended = config.profile_weight * (user_quiz[index] @ offer_quiz.T)
            with_history = index[has_history[index]]
            if len(with_history):
                profile = normalize(state.history[user_row[with_history]] @ state.offer_features)
                cosine = (profile @ candidates).toarray()
                blended[has_history[index]] += config.history_weight * cosine
            scored = weight[index] > 0
            out[index[scored]] = blended[scored] / weight[index[scored], None]
        return out

    def knows(self, user_ids: np.ndarray) -> np.ndarray:
        """Training users with at least one interaction: the others are scored from their
        quiz like strangers."""
        require_trained(self._state, self.name)
        return with_history(self._state.user_ids, self._state.history, user_ids)

    def get_arrays(self) -> dict[str, np.ndarray]:
        require_trained(self._state, self.name)
        state = self._state
        return {
            "user_ids": state.user_ids,
            **sparse_to_arrays("history", state.history),
            **sparse_to_arrays("offer_features", state.offer_features),
        }

    def set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self._state = _State(
            user_ids=arrays["user_ids"],
            history=sparse_from_arrays("history", arrays),
            offer_features=sparse_from_arrays("offer_features", arrays),
        )
