"""Item-item k-nearest-neighbours on the training interactions (a tuned simple baseline).

`sim(i, j) = x_i·x_j / (‖x_i‖·‖x_j‖ + shrinkage)` where x_i is offer i's column of the
(time-decayed) interaction matrix; each offer keeps its `k` most similar other offers. The
score of offer i for user u is `Σ_{j ∈ history(u)} sim(i, j) · w(u, j)`.

A user without history (absent from training, or present with no interaction) cannot be
scored: NaN, and the hybrid model or the evaluation falls back. An offer absent from training
has no neighbours: 0.

The similarity is computed with scipy sparse products rather than implicit's
`CosineRecommender`, because that one has no shrinkage and counts an item among its own
neighbours, which would reward offers the user already interacted with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recsys.dataset import OfferBatch, TrainingData, UserBatch
from recsys.models._common import (
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
class ItemKNNConfig(ModelConfig):
    """`k` neighbours kept per offer; `shrinkage` damps similarities built on little overlap."""

    k: int = 50
    shrinkage: float = 0.0

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"ItemKNNConfig.k: must be >= 1, got {self.k}")
        if self.shrinkage < 0:
            raise ValueError(f"ItemKNNConfig.shrinkage: must be >= 0, got {self.shrinkage}")


def top_k_per_row(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep the k largest stored values of each row (ties broken by column), vectorised."""
    csr = sp.csr_matrix(matrix)
    csr.eliminate_zeros()
    rows = np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr))
    order = np.lexsort((csr.indices, -csr.data, rows))  # by row, then value descending
    rank = np.arange(len(order)) - csr.indptr[rows[order]]
    keep = order[rank < k]
    return sp.csr_matrix((csr.data[keep], (rows[keep], csr.indices[keep])), shape=csr.shape)


def item_similarity(interactions: sp.csr_matrix, k: int, shrinkage: float) -> sp.csr_matrix:
    """Shrunk cosine between offer columns, self excluded, top k per row (offer × offer)."""
    columns = sp.csc_matrix(interactions, dtype=float)
    norms = np.sqrt(np.asarray(columns.multiply(columns).sum(axis=0)).ravel())
    dots = sp.coo_matrix(columns.T @ columns)
    off_diagonal = dots.row != dots.col
    row, col = dots.row[off_diagonal], dots.col[off_diagonal]
    values = dots.data[off_diagonal] / (norms[row] * norms[col] + shrinkage)
    similarity = sp.csr_matrix((values, (row, col)), shape=dots.shape)
    return top_k_per_row(similarity, k)


@dataclass(frozen=True)
class _State:
    user_ids: np.ndarray  # unicode (n_users,)
    offer_ids: np.ndarray  # unicode (n_offers,)
    history: sp.csr_matrix  # (n_users, n_offers) interaction weights
    similarity: sp.csr_matrix  # (n_offers, n_offers), row i = neighbours of i


class ItemKNNModel(Recommender):
    """Offers similar to what the user interacted with, by co-interaction."""

    name = "itemknn"
    config_class = ItemKNNConfig
    config: ItemKNNConfig

    def __init__(self, config: ItemKNNConfig | None = None) -> None:
        super().__init__(config)
        self._state: _State | None = None

    def train(self, data: TrainingData, progress: Callable[[int, int], None] | None = None) -> None:
        history = sp.csr_matrix(data.interactions, dtype=float)
        history.eliminate_zeros()
        self._state = _State(
            user_ids=unicode_ids(data.users.ids),
            offer_ids=unicode_ids(data.offers.ids),
            history=history,
            similarity=item_similarity(history, self.config.k, self.config.shrinkage),
        )

    def score(self, users: UserBatch, offers: OfferBatch) -> np.ndarray:
        require_trained(self._state, self.name)
        state = self._state
        user_row = lookup(state.user_ids, users.ids)
        offer_col = lookup(state.offer_ids, offers.ids)
        out = np.full((len(users), len(offers)), np.nan)
        has_history = user_row >= 0
        has_history[has_history] = np.diff(state.history.indptr)[user_row[has_history]] > 0
        served = np.flatnonzero(has_history)
        known_offers = np.flatnonzero(offer_col >= 0)
        neighbours = state.similarity[offer_col[known_offers]].T.tocsr()  # (n_train, n_known)
        for rows in row_chunks(len(served), len(offers)):
            index = served[rows]
            block = np.zeros((len(index), len(offers)))
            block[:, known_offers] = (state.history[user_row[index]] @ neighbours).toarray()
            out[index] = block
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
            "offer_ids": state.offer_ids,
            **sparse_to_arrays("history", state.history),
            **sparse_to_arrays("similarity", state.similarity),
        }

    def set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self._state = _State(
            user_ids=arrays["user_ids"],
            offer_ids=arrays["offer_ids"],
            history=sparse_from_arrays("history", arrays),
            similarity=sparse_from_arrays("similarity", arrays),
        )
