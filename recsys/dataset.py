"""The in-memory contract between feature building, models, evaluation and serving.

A feature set on disk (written by `features/`) loads into these objects; every model trains
on `TrainingData` and scores a `UserBatch` against an `OfferBatch`. Both batches carry the
encoded feature matrices (for learned models) and the column arrays (for rules, eligibility
and geography), so a model can score users or offers it never saw in training.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.arrays import (
    OfferArrays,
    ProfileArrays,
    concat_rows,
    offer_arrays,
    profile_arrays,
)


class FrameEncoder(Protocol):
    """What turns a canonical table into feature rows (`recsys.encoding`'s encoders)."""

    def transform(self, frame: pd.DataFrame) -> sp.csr_matrix: ...


@dataclass(frozen=True)
class OfferBatch:
    """Offers to score: ids, encoded features (rows aligned with ids) and column arrays."""

    ids: np.ndarray  # object (str)
    features: sp.csr_matrix  # (n_offers, n_offer_features) from the offer encoder
    arrays: OfferArrays

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def encode(cls, offers: pd.DataFrame, encoder: FrameEncoder) -> OfferBatch:
        """The offers of a canonical table: ids, `encoder`'s features and column arrays."""
        offers = offers.reset_index(drop=True)
        ids = offers["id"].astype(str).to_numpy(dtype=object)
        return cls(ids, encoder.transform(offers), offer_arrays(offers))

    def take(self, index: np.ndarray) -> OfferBatch:
        """A subset of the offers, ids, features and arrays indexed alike."""
        return OfferBatch(self.ids[index], self.features[index], self.arrays.take(index))

    @staticmethod
    def concat(parts: list[OfferBatch]) -> OfferBatch:
        """The offers of `parts` one after the other: ids, features and arrays alike."""
        return OfferBatch(
            np.concatenate([p.ids for p in parts]),
            sp.vstack([p.features for p in parts], format="csr"),
            concat_rows([p.arrays for p in parts]),
        )


@dataclass(frozen=True)
class UserBatch:
    """Users (known or not) to score for: ids, encoded profile features and profile arrays."""

    ids: np.ndarray  # object (str); an id a model never saw is scored from its features
    features: sp.csr_matrix  # (n_users, n_user_features) from the user encoder
    arrays: ProfileArrays

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def encode(cls, profiles: pd.DataFrame, encoder: FrameEncoder) -> UserBatch:
        """The people of a canonical profiles table (userId None for anonymous ones)."""
        profiles = profiles.reset_index(drop=True)
        ids = profiles["userId"].to_numpy(dtype=object)
        return cls(ids, encoder.transform(profiles), profile_arrays(profiles))

    def take(self, index: np.ndarray) -> UserBatch:
        """A subset of the users, ids, features and arrays indexed alike."""
        return UserBatch(self.ids[index], self.features[index], self.arrays.take(index))

    @staticmethod
    def concat(parts: list[UserBatch]) -> UserBatch:
        """The users of `parts` one after the other: ids, features and arrays alike."""
        return UserBatch(
            np.concatenate([p.ids for p in parts]),
            sp.vstack([p.features for p in parts], format="csr"),
            concat_rows([p.arrays for p in parts]),
        )


@dataclass(frozen=True)
class PreparedOffers:
    """Offers with what a model derives from them alone (`Recommender.prepare_offers`).

    Serving prepares its whole catalog once, then scores every request against a few of its
    rows (`Recommender.score_prepared`); an offline batch prepares and scores at once. Every
    value of `arrays` has one row per offer (first axis); `inner` is the part a composite
    model's inner model prepared.
    """

    offers: OfferBatch
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    inner: PreparedOffers | None = None

    def __len__(self) -> int:
        return len(self.offers)

    def find(self, key: str) -> np.ndarray | None:
        """`arrays[key]` here or in the inner parts, None when no part prepared it."""
        if key in self.arrays:
            return self.arrays[key]
        return self.inner.find(key) if self.inner is not None else None

    def take(self, index: np.ndarray) -> PreparedOffers:
        """The prepared rows `index`, as if only those offers had been prepared."""
        return PreparedOffers(
            self.offers.take(index),
            {key: np.take(value, index, axis=0) for key, value in self.arrays.items()},
            self.inner.take(index) if self.inner is not None else None,
        )

    @staticmethod
    def concat(parts: list[PreparedOffers]) -> PreparedOffers:
        """The prepared offers of `parts` one after the other (a catalog update)."""
        inner = [p.inner for p in parts]
        return PreparedOffers(
            OfferBatch.concat([p.offers for p in parts]),
            {key: np.concatenate([p.arrays[key] for p in parts]) for key in parts[0].arrays},
            None if inner[0] is None else PreparedOffers.concat(inner),  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class Impressions:
    """The print log: one row per offer shown to a user, at a position of a list, and what
    followed (a click, an apply after the click). Rows of `user` and `offer` index the
    training data's users and offers."""

    user: np.ndarray  # int64 row in TrainingData.users
    offer: np.ndarray  # int64 row in TrainingData.offers
    position: np.ndarray  # int64, 1 = top of the list
    landing: np.ndarray  # bool: a search-engine landing on the offer's page, not a list
    clicked: np.ndarray  # bool
    applied: np.ndarray  # bool (implies clicked)

    def __len__(self) -> int:
        return len(self.user)


@dataclass(frozen=True)
class TrainingData:
    """What a model learns from: everything strictly before `cutoff`.

    `interactions[u, o]` is the weighted, time-decayed signal of user u on offer o (applies
    weigh most); `applies[u, o]` is 1 where u applied to o. Rows align with `users`, columns
    with `offers`. `impressions`, when the data has a print log, reads it on demand (it can
    be large, and most models never ask for it).
    """

    users: UserBatch
    offers: OfferBatch
    interactions: sp.csr_matrix
    applies: sp.csr_matrix
    cutoff: pd.Timestamp
    impressions: Callable[[], Impressions] | None = None

    def __post_init__(self) -> None:
        expected = (len(self.users), len(self.offers))
        for name in ("interactions", "applies"):
            shape = getattr(self, name).shape
            if shape != expected:
                raise ValueError(f"{name} has shape {shape}, expected (users, offers) {expected}")
