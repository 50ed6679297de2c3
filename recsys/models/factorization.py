"""Matrix factorisation of the interaction matrix: ALS and BPR from `implicit`.

The library fits the factors; scoring is one numpy product `U · Vᵀ` over the stored factors,
never a per-user library call, so that evaluation and the service score thousands of users
at once.

Conventions shared by both models:

- Only users and offers with at least one training interaction get factors. A user without
  one (unknown, or known with an empty history) cannot be scored: its row is NaN, which the
  ranker ranks last and the hybrid reads as "no learned opinion".
- An offer without factors (posted after the cutoff, or never interacted with) gets a zero
  factor vector, hence a score of exactly 0 for every known user: "no evidence either way",
  placed between the offers the user's factors favour and those they disfavour, rather
  than always last as NaN would put it.
- Training runs on one thread with a seed, so that a fit is reproducible. The Makefile and
  the CLI export `OPENBLAS_NUM_THREADS=1`; the fit also caps BLAS threads itself with
  `threadpoolctl`, so a library caller gets the same behaviour (implicit is slow, and warns,
  when OpenBLAS runs its own thread pool under it). implicit is imported at module level so
  that the OpenBLAS it loads exists when the cap is applied.
"""

from __future__ import annotations

import logging
import time
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from implicit.cpu.bpr import BayesianPersonalizedRanking
from threadpoolctl import threadpool_limits

from recsys.dataset import OfferBatch, TrainingData, UserBatch
from recsys.models._common import lookup, require_trained, unicode_ids
from recsys.models.base import ModelConfig, Recommender

logger = logging.getLogger(__name__)


@dataclass
class ALSConfig(ModelConfig):
    """Implicit-feedback ALS (Hu, Koren and Volinsky 2008).

    `alpha` scales the confidence of an observed pair: confidence = 1 + alpha · weight, so a
    weak, time-decayed click still counts more than an unobserved pair (implicit's own
    `alpha` multiplies the weight only, which leaves weights below 1 less trusted than
    nothing).
    """

    embedding_size: int = 64
    epochs: int = 15
    regularization: float = 0.05
    alpha: float = 10.0

    def __post_init__(self) -> None:
        _check_positive(self, ("embedding_size", "epochs"))
        if self.regularization < 0 or self.alpha < 0:
            raise ValueError("ALSConfig.regularization and ALSConfig.alpha: must be >= 0")


@dataclass
class BPRConfig(ModelConfig):
    """Bayesian Personalised Ranking; interactions count as binary positives (weights ignored)."""

    embedding_size: int = 64
    epochs: int = 100
    learning_rate: float = 0.05
    regularization: float = 0.01

    def __post_init__(self) -> None:
        _check_positive(self, ("embedding_size", "epochs", "learning_rate"))
        if self.regularization < 0:
            raise ValueError("BPRConfig.regularization: must be >= 0")


def _check_positive(config: ModelConfig, names: tuple[str, ...]) -> None:
    for name in names:
        if getattr(config, name) <= 0:
            raise ValueError(f"{type(config).__name__}.{name}: must be > 0")


@dataclass(frozen=True)
class _Factors:
    user_ids: np.ndarray  # unicode (n_users,)
    item_ids: np.ndarray  # unicode (n_items,)
    user_factors: np.ndarray  # float32 (n_users, f)
    item_factors: np.ndarray  # float32 (n_items, f)


class _FactorizationModel(Recommender):
    """Storage and scoring shared by the factorisations of `implicit`."""

    config: ALSConfig | BPRConfig

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__(config)
        self._state: _Factors | None = None

    def train(self, data: TrainingData, progress: Callable[[int, int], None] | None = None) -> None:
        """Fit on `data.interactions`, restricted to the rows and columns holding data.

        `progress(done, total)` is called after each epoch (a CLI progress bar).
        """
        interactions = sp.csr_matrix(data.interactions, dtype=np.float32)
        interactions.eliminate_zeros()
        if (interactions.data < 0).any():
            raise ValueError("interactions: weights must be positive for implicit feedback")
        user_rows = np.flatnonzero(interactions.getnnz(axis=1))
        item_cols = np.flatnonzero(interactions.getnnz(axis=0))
        if len(user_rows) == 0:
            raise ValueError("interactions: no training interaction to factorise")
        matrix = interactions[user_rows][:, item_cols].tocsr()
        epochs = self.config.epochs

        def on_epoch(epoch: int, *_: object) -> None:
            if progress is not None:
                progress(epoch + 1, epochs)

        started = time.perf_counter()
        with threadpool_limits(limits=1, user_api="blas"):
            user_factors, item_factors = self._fit(matrix, on_epoch)
        self._state = _Factors(
            user_ids=unicode_ids(data.users.ids[user_rows]),
            item_ids=unicode_ids(data.offers.ids[item_cols]),
            user_factors=np.asarray(user_factors, dtype=np.float32),
            item_factors=np.asarray(item_factors, dtype=np.float32),
        )
        logger.info(
            "fitted %s on %d users × %d offers (%d pairs) in %.1fs",
            self.name,
            len(user_rows),
            len(item_cols),
            matrix.nnz,
            time.perf_counter() - started,
        )

    @abstractmethod
    def _fit(
        self, matrix: sp.csr_matrix, on_epoch: Callable[..., None]
    ) -> tuple[np.ndarray, np.ndarray]:
        """(user_factors, item_factors) fitted on `matrix` (users × items, float32)."""

    def score(self, users: UserBatch, offers: OfferBatch) -> np.ndarray:
        """`U · Vᵀ` in float64; NaN rows for users without factors, 0 for offers without."""
        require_trained(self._state, self.name)
        state = self._state
        user_rows = lookup(state.user_ids, users.ids)
        item_rows = lookup(state.item_ids, offers.ids)
        known_users = user_rows >= 0
        known_items = item_rows >= 0
        item_factors = np.zeros((len(offers), state.item_factors.shape[1]))
        item_factors[known_items] = state.item_factors[item_rows[known_items]]
        scores = np.full((len(users), len(offers)), np.nan)
        user_factors = state.user_factors[user_rows[known_users]].astype(np.float64)
        scores[known_users] = user_factors @ item_factors.T
        return scores

    def knows(self, user_ids: np.ndarray) -> np.ndarray:
        """Users with a learned factor (at least one training interaction)."""
        require_trained(self._state, self.name)
        return lookup(self._state.user_ids, user_ids) >= 0

    def get_arrays(self) -> dict[str, np.ndarray]:
        require_trained(self._state, self.name)
        state = self._state
        return {
            "user_ids": state.user_ids,
            "item_ids": state.item_ids,
            "user_factors": state.user_factors,
            "item_factors": state.item_factors,
        }

    def set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self._state = _Factors(
            user_ids=arrays["user_ids"],
            item_ids=arrays["item_ids"],
            user_factors=arrays["user_factors"],
            item_factors=arrays["item_factors"],
        )


class ALSModel(_FactorizationModel):
    """Weighted matrix factorisation by alternating least squares (implicit's CPU solver)."""

    name = "als"
    config_class = ALSConfig
    config: ALSConfig

    def _fit(
        self, matrix: sp.csr_matrix, on_epoch: Callable[..., None]
    ) -> tuple[np.ndarray, np.ndarray]:
        confidence = matrix.copy()
        confidence.data = 1.0 + self.config.alpha * confidence.data
        model = AlternatingLeastSquares(
            factors=self.config.embedding_size,
            regularization=self.config.regularization,
            alpha=1.0,  # the confidence is already 1 + alpha · weight
            iterations=self.config.epochs,
            num_threads=1,
            random_state=self.config.seed,
        )
        model.fit(confidence, show_progress=False, callback=on_epoch)
        return model.user_factors, model.item_factors


class BPRModel(_FactorizationModel):
    """Pairwise ranking factorisation by SGD (implicit's CPU BPR).

    implicit appends an item-bias column to the item factors and a constant 1 to the user
    factors, so `U · Vᵀ` includes the bias; an offer without factors gets bias 0 as well.
    """

    name = "bpr"
    config_class = BPRConfig
    config: BPRConfig

    def _fit(
        self, matrix: sp.csr_matrix, on_epoch: Callable[..., None]
    ) -> tuple[np.ndarray, np.ndarray]:
        model = BayesianPersonalizedRanking(
            factors=self.config.embedding_size,
            learning_rate=self.config.learning_rate,
            regularization=self.config.regularization,
            iterations=self.config.epochs,
            num_threads=1,
            random_state=self.config.seed,
        )
        model.fit(matrix, show_progress=False, callback=on_epoch)
        return model.user_factors, model.item_factors
