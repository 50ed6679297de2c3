"""Recency-weighted popularity, optionally local to the visitor's department and per programme.

The popularity of an offer is `pop(o) = Σ_u interactions[u, o] + apply_weight · Σ_u
applies[u, o]`: the interaction weights are already time-decayed by the feature stage, and
applies, the outcome that counts, are added once more at full weight.

Scores are shares, smoothed towards the global share (a Dirichlet prior of mass `shrinkage`):

    score(u, o) = (pop_c(o) + shrinkage · pop(o) / N) / (N_c + shrinkage)

where the cell c is the visitor's department (`by_department`, from the training visitors
located in it) and/or the offer's programme (`by_programme`), `pop_c` the popularity counted
in that cell and `N_c` its total; N is the global total. Without either flag this is the
global share `pop(o) / N`. A department with little traffic thus falls back to the
national ranking (an empty cell without shrinkage takes the global share); `by_programme`
ranks each offer within its programme, so that the biggest programme does not fill the top by
volume alone.

Departments come from coordinates (nearest prefecture); a visitor without coordinates gets
the national ranking. An offer unseen in training scores `new_offer_factor` times the mean
score of the training offers of its programme × department cell (falling back to its
programme, then to all offers), so that new offers can be recommended without outranking the
proven ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recsys import geo
from recsys.dataset import OfferBatch, TrainingData, UserBatch
from recsys.models._common import lookup, nearest_department, require_trained, unicode_ids
from recsys.models.base import ModelConfig, Recommender


@dataclass
class PopularityConfig(ModelConfig):
    """Popularity knobs; see the module docstring for the formula."""

    by_department: bool = False
    by_programme: bool = False
    shrinkage: float = 10.0
    apply_weight: float = 1.0
    new_offer_factor: float = 0.5

    def __post_init__(self) -> None:
        for name in ("shrinkage", "apply_weight", "new_offer_factor"):
            if getattr(self, name) < 0:
                raise ValueError(
                    f"PopularityConfig.{name}: must be >= 0, got {getattr(self, name)}"
                )


@dataclass(frozen=True)
class _State:
    offer_ids: np.ndarray  # unicode (n_offers,)
    programme: np.ndarray  # int16 (n_offers,)
    department: np.ndarray  # int16 (n_offers,), -1 unknown
    popularity: np.ndarray  # float (n_offers,)
    by_department: np.ndarray  # float (n_departments, n_offers); (0, n_offers) when unused


class PopularityModel(Recommender):
    """Most popular offers first; user-dependent only through the department option."""

    name = "popularity"
    config_class = PopularityConfig
    config: PopularityConfig

    def __init__(self, config: PopularityConfig | None = None) -> None:
        super().__init__(config)
        self._state: _State | None = None

    def train(self, data: TrainingData, progress: Callable[[int, int], None] | None = None) -> None:
        weights = sp.csr_matrix(data.interactions + self.config.apply_weight * data.applies)
        popularity = np.asarray(weights.sum(axis=0)).ravel()
        if popularity.sum() <= 0:
            raise ValueError("interactions: no positive weight; popularity needs at least one")
        n_departments = len(geo.departments()) if self.config.by_department else 0
        local = np.zeros((n_departments, len(popularity)))
        if self.config.by_department:
            user_department = nearest_department(data.users.arrays.lat, data.users.arrays.lon)
            located = np.flatnonzero(user_department >= 0)
            membership = sp.csr_matrix(
                (np.ones(len(located)), (user_department[located], located)),
                shape=(n_departments, len(data.users)),
            )
            local = np.asarray((membership @ weights).todense())
        arrays = data.offers.arrays
        self._state = _State(
            offer_ids=unicode_ids(data.offers.ids),
            programme=arrays.programme.astype(np.int16),
            department=nearest_department(arrays.lat, arrays.lon),
            popularity=popularity,
            by_department=local,
        )

    def _score_table(self, departments: np.ndarray) -> np.ndarray:
        """Scores of every training offer for each department in `departments` (-1: national)."""
        state = self._state
        shrinkage = self.config.shrinkage
        national = np.broadcast_to(state.popularity, (len(departments), len(state.popularity)))
        counts = national
        if self.config.by_department:
            local = state.by_department[np.maximum(departments, 0)]
            counts = np.where(departments[:, None] >= 0, local, national)
        if self.config.by_programme:
            programme = state.programme.astype(np.int64) + 1  # -1 (unknown) becomes a cell too
            cell_total = (counts @ _membership(programme))[:, programme]
        else:
            cell_total = counts.sum(axis=1, keepdims=True)
        prior_share = np.broadcast_to(state.popularity / state.popularity.sum(), counts.shape)
        denominator = cell_total + shrinkage
        # An empty cell without shrinkage has nothing to say: the national share instead.
        empty = np.broadcast_to(denominator <= 0, counts.shape)
        smoothed = (counts + shrinkage * prior_share) / np.where(denominator > 0, denominator, 1.0)
        return np.where(empty, prior_share, smoothed)

    def _new_offer_prior(self, table: np.ndarray, offers: OfferBatch) -> np.ndarray:
        """`new_offer_factor` × mean score of the training offers in each offer's cell.

        The cell is programme × department, else the programme alone, else every offer.
        """
        state = self._state
        n_cells = len(geo.departments()) + 1
        prior = np.repeat(table.mean(axis=1, keepdims=True), len(offers), axis=1)
        train_programme = state.programme.astype(np.int64) + 1
        new_programme = offers.arrays.programme.astype(np.int64) + 1
        new_department = nearest_department(offers.arrays.lat, offers.arrays.lon)
        for train_key, new_key in (
            (train_programme, new_programme),
            (
                train_programme * n_cells + state.department + 1,
                new_programme * n_cells + new_department + 1,
            ),
        ):
            membership = _membership(train_key)
            counts = np.asarray(membership.sum(axis=0)).ravel()
            means = (table @ membership) / np.maximum(counts, 1)
            seen = new_key < len(counts)
            seen[seen] = counts[new_key[seen]] > 0
            prior[:, seen] = means[:, new_key[seen]]
        return self.config.new_offer_factor * prior

    def score(self, users: UserBatch, offers: OfferBatch) -> np.ndarray:
        require_trained(self._state, self.name)
        if self.config.by_department:
            user_department = nearest_department(users.arrays.lat, users.arrays.lon)
        else:
            user_department = np.full(len(users), -1, dtype=np.int16)
        departments, row_of_user = np.unique(user_department, return_inverse=True)
        table = self._score_table(departments)
        position = lookup(self._state.offer_ids, offers.ids)
        known = position >= 0
        out = np.empty((len(departments), len(offers)))
        out[:, known] = table[:, position[known]]
        if (~known).any():
            out[:, ~known] = self._new_offer_prior(table, offers.take(np.flatnonzero(~known)))
        return out[row_of_user]

    def get_arrays(self) -> dict[str, np.ndarray]:
        require_trained(self._state, self.name)
        state = self._state
        return {
            "offer_ids": state.offer_ids,
            "programme": state.programme,
            "department": state.department,
            "popularity": state.popularity,
            "by_department": state.by_department,
        }

    def set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self._state = _State(
            offer_ids=arrays["offer_ids"],
            programme=arrays["programme"],
            department=arrays["department"],
            popularity=arrays["popularity"],
            by_department=arrays["by_department"],
        )


def _membership(cell: np.ndarray) -> sp.csr_matrix:
    """One-hot (n_rows, max cell + 1) of non-negative cell indices, to sum rows per cell."""
    return sp.csr_matrix(
        (np.ones(len(cell)), (np.arange(len(cell)), cell)), shape=(len(cell), int(cell.max()) + 1)
    )
