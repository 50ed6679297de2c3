"""The in-memory contract between feature building, models, evaluation and serving.

A feature set on disk (written by `features/`) loads into these objects; every model trains
on `TrainingData` and scores a `UserBatch` against an `OfferBatch`. Both batches carry the
encoded feature matrices (for learned models) and the column arrays (for rules, eligibility
and geography), so a model can score users or offers it never saw in training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.arrays import OfferArrays, ProfileArrays


@dataclass(frozen=True)
class OfferBatch:
    """Offers to score: ids, encoded features (rows aligned with ids) and column arrays."""

    ids: np.ndarray  # object (str)
    features: sp.csr_matrix  # (n_offers, n_offer_features) from the offer encoder
    arrays: OfferArrays

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, index: np.ndarray) -> OfferBatch:
        """A subset of the offers, ids, features and arrays indexed alike."""
        return OfferBatch(self.ids[index], self.features[index], self.arrays.take(index))


@dataclass(frozen=True)
class UserBatch:
    """Users (known or not) to score for: ids, encoded profile features and profile arrays."""

    ids: np.ndarray  # object (str); an id a model never saw is scored from its features
    features: sp.csr_matrix  # (n_users, n_user_features) from the user encoder
    arrays: ProfileArrays

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, index: np.ndarray) -> UserBatch:
        """A subset of the users, ids, features and arrays indexed alike."""
        return UserBatch(self.ids[index], self.features[index], self.arrays.take(index))


@dataclass(frozen=True)
class TrainingData:
    """What a model learns from: everything strictly before `cutoff`.

    `interactions[u, o]` is the weighted, time-decayed signal of user u on offer o (applies
    weigh most); `applies[u, o]` is 1 where u applied to o. Rows align with `users`, columns
    with `offers`.
    """

    users: UserBatch
    offers: OfferBatch
    interactions: sp.csr_matrix
    applies: sp.csr_matrix
    cutoff: pd.Timestamp

    def __post_init__(self) -> None:
        expected = (len(self.users), len(self.offers))
        for name in ("interactions", "applies"):
            shape = getattr(self, name).shape
            if shape != expected:
                raise ValueError(f"{name} has shape {shape}, expected (users, offers) {expected}")
