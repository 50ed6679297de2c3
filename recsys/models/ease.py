"""EASE: a shallow linear autoencoder of the interaction matrix, solved in closed form.

Steck (2019), "Embarrassingly Shallow Autoencoders for Sparse Data": the offer-offer weights
B minimise ‖X − X·B‖²_F + λ·‖B‖²_F under diag(B) = 0, whose solution is

    P = (XᵀX + λ·I)⁻¹,    B_ij = −P_ij / P_jj  (i ≠ j),    B_jj = 0,

and the score of offer j for user u is `x_u · B[:, j]`, x_u the user's row of the
(time-decayed) interaction matrix. One dense inverse of an (n × n) Gram matrix, n the offers
kept: the fit costs O(n³) and B takes n² floats, so only the `max_offers` offers with the
most training interactions get a column (the others, and offers posted after the cutoff,
score exactly 0: no evidence either way, as for the factorisations). λ is the one parameter
to tune (`recsys tune` on the validation window).

A user without history (absent from training, or present with no interaction) cannot be
scored: NaN, like item-kNN; the list policy blends the rules for them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

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

logger = logging.getLogger(__name__)


@dataclass
class EASEConfig(ModelConfig):
    """`regularization` is λ (in units of the Gram matrix's entries: squared interaction
    weights); `max_offers` bounds n, the offers with a column of B (n² float32 to store);
    `binary` fits on 1 for every observed pair instead of its weight."""

    regularization: float = 100.0
    max_offers: int = 6000
    binary: bool = False

    def __post_init__(self) -> None:
        if not self.regularization > 0:
            raise ValueError(f"EASEConfig.regularization: must be > 0, got {self.regularization}")
        if self.max_offers < 1:
            raise ValueError(f"EASEConfig.max_offers: must be >= 1, got {self.max_offers}")


def ease_weights(interactions: sp.csr_matrix, regularization: float) -> np.ndarray:
    """B of the closed form (module docstring) for `interactions` (users × offers), float64.

    The Gram matrix is symmetric positive definite once λ > 0 is added to its diagonal, so
    the inverse comes from its Cholesky factor (LAPACK potrf then potri: n³ flops in all,
    a third of solving against the identity).
    """
    columns = sp.csc_matrix(interactions, dtype=np.float64)
    gram = (columns.T @ columns).toarray()
    gram[np.diag_indices_from(gram)] += regularization
    factor, info = scipy.linalg.lapack.dpotrf(gram, lower=False, overwrite_a=True)
    if info == 0:
        inverse, info = scipy.linalg.lapack.dpotri(factor, lower=False, overwrite_c=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"EASE: Cholesky inverse failed (LAPACK info {info})")
    upper = np.triu(inverse)
    inverse = upper + np.triu(upper, 1).T  # potri fills the upper triangle only
    weights = inverse / -np.diag(inverse)[None, :]
    weights[np.diag_indices_from(weights)] = 0.0
    return weights


@dataclass(frozen=True)
class _State:
    user_ids: np.ndarray  # unicode (n_users,)
    offer_ids: np.ndarray  # unicode (n_kept,) the offers with a column of B
    history: sp.csr_matrix  # (n_users, n_kept) interaction weights (binary if configured)
    weights: np.ndarray  # float32 (n_kept, n_kept), B


class EASEModel(Recommender):
    """Offers reconstructed from the user's history by the closed-form linear autoencoder."""

    name = "ease"
    config_class = EASEConfig
    config: EASEConfig

    def __init__(self, config: EASEConfig | None = None) -> None:
        super().__init__(config)
        self._state: _State | None = None

    def train(self, data: TrainingData, progress: Callable[[int, int], None] | None = None) -> None:
        """Keep the `max_offers` offers with the most interacting users (ties by position),
        then solve for B on the users' rows restricted to them."""
        matrix = sp.csr_matrix(data.interactions, dtype=np.float64)
        matrix.eliminate_zeros()
        if (matrix.data < 0).any():
            raise ValueError("interactions: weights must be positive for EASE")
        if self.config.binary:
            matrix.data[:] = 1.0
        counts = matrix.getnnz(axis=0)
        order = np.lexsort((np.arange(len(counts)), -counts))
        kept = np.sort(order[: min(self.config.max_offers, int((counts > 0).sum()))])
        if len(kept) == 0:
            raise ValueError("interactions: no training interaction to learn from")
        history = matrix[:, kept].tocsr()
        started = time.perf_counter()
        with threadpool_limits(limits=1, user_api="blas"):
            weights = ease_weights(history, self.config.regularization)
        self._state = _State(
            user_ids=unicode_ids(data.users.ids),
            offer_ids=unicode_ids(data.offers.ids[kept]),
            history=history.astype(np.float32),
            weights=weights.astype(np.float32),
        )
        logger.info(
            "fitted ease on %d offers (λ = %g) in %.1fs",
            len(kept),
            self.config.regularization,
            time.perf_counter() - started,
        )

    def score(self, users: UserBatch, offers: OfferBatch) -> np.ndarray:
        """`x_u · B` in float64; NaN rows for users without history, 0 for offers without a
        column of B."""
        require_trained(self._state, self.name)
        state = self._state
        user_row = lookup(state.user_ids, users.ids)
        offer_col = lookup(state.offer_ids, offers.ids)
        out = np.full((len(users), len(offers)), np.nan)
        served = np.flatnonzero(with_history(state.user_ids, state.history, users.ids))
        known_offers = np.flatnonzero(offer_col >= 0)
        columns = state.weights[:, offer_col[known_offers]].astype(np.float64)
        for rows in row_chunks(len(served), len(offers)):
            index = served[rows]
            block = np.zeros((len(index), len(offers)))
            block[:, known_offers] = state.history[user_row[index]].astype(np.float64) @ columns
            out[index] = block
        return out

    def knows(self, user_ids: np.ndarray) -> np.ndarray:
        """Training users with at least one interaction on a kept offer."""
        require_trained(self._state, self.name)
        return with_history(self._state.user_ids, self._state.history, user_ids)

    def get_arrays(self) -> dict[str, np.ndarray]:
        require_trained(self._state, self.name)
        state = self._state
        return {
            "user_ids": state.user_ids,
            "offer_ids": state.offer_ids,
            **sparse_to_arrays("history", state.history),
            "weights": state.weights,
        }

    def set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self._state = _State(
            user_ids=arrays["user_ids"],
            offer_ids=arrays["offer_ids"],
            history=sparse_from_arrays("history", arrays),
            weights=arrays["weights"],
        )
