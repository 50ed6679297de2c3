"""One small protocol every model implements: train, score, save, load.

Candidate selection (eligibility, geography, already-applied) and ranking live elsewhere
(`recsys.candidates`, `recsys.ranking`); a model only turns (users, offers) into scores.
`score` is the whole protocol; `prepare_offers` / `score_prepared` split it for callers that
score many small batches against one set of offers (the service), and models with per-offer
work (LightFM's item representations, the hybrid's rule tags) implement `score` through them,
so both paths run the same code.

What callers need to know about a model is asked of it, never guessed from its name or its
arrays: `knows(user_ids)` (who it learned something about), `item_embeddings(prepared)` (the
offers' vectors, when it has some), `blends_rules` (its score already blends the rules engine
for visitors without history), `train(data, progress)` (every model accepts a progress
callback; those without epochs never call it) and `checkpoints` (whether `train` also takes a
`checkpoint` callback, as LightFM and the hybrid over it do).
Artefacts are explicit arrays (`arrays.npz`, loaded with allow_pickle=False) plus a JSON
config, never a bare pickle.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Self

import numpy as np

from recsys.dataset import OfferBatch, PreparedOffers, TrainingData, UserBatch
from recsys.typed_config import DictConfig

CONFIG_FILE = "config.json"
ARRAYS_FILE = "arrays.npz"


@dataclass
class ModelConfig(DictConfig):
    """Base of every model's typed config; round-trips to a plain dict (logged as params)."""

    seed: int = 42


class Recommender(ABC):
    """A model: learns from `TrainingData`, scores users against offers.

    `score` returns a float matrix (n_users, n_offers), higher is better; NaN marks a pair
    the model cannot score (the ranker then treats it as unrankable, never crashes).
    Unknown users and offers are scored through their features where the model can.
    """

    name: ClassVar[str]
    config_class: ClassVar[type[ModelConfig]] = ModelConfig
    blends_rules: ClassVar[bool] = False
    """Whether `score` already blends the rules engine for visitors without history, so the
    list policy serves it as it is instead of blending the rules itself (`recsys.policy`)."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        self.config = config if config is not None else self.config_class()

    @property
    def checkpoints(self) -> bool:
        """Whether `train` also takes `checkpoint(epochs)`, called every few epochs with the
        model usable as trained so far (tuning scores it there, and stops it by raising)."""
        return False

    @abstractmethod
    def train(self, data: TrainingData, progress: Callable[[int, int], None] | None = None) -> None:
        """Fit on everything before the cutoff.

        Args:
            data: the training window.
            progress: called with (epochs done, epochs total) by models that train in epochs.
        """

    @abstractmethod
    def score(self, users: UserBatch, offers: OfferBatch) -> np.ndarray:
        """Scores of shape (len(users), len(offers))."""

    def prepare_offers(self, offers: OfferBatch) -> PreparedOffers:
        """What scoring derives from the offers alone, computed once for many `score_prepared`.

        The service prepares its catalog at load and scores each request against the
        candidate rows only. Models without such work keep the batch as it is.
        """
        return PreparedOffers(offers)

    def score_prepared(
        self, users: UserBatch, prepared: PreparedOffers, rows: np.ndarray | None = None
    ) -> np.ndarray:
        """`score(users, offers.take(rows))` from prepared offers (all of them when `rows` is
        None), shape (len(users), len(rows)); models that prepare override it."""
        offers = prepared.offers if rows is None else prepared.offers.take(rows)
        return self.score(users, offers)

    def knows(self, user_ids: np.ndarray) -> np.ndarray:
        """Bool per id: whether the model learned something about this person (their history),
        so that their list is personalised rather than cold-start. None for models without
        per-user state."""
        return np.zeros(len(user_ids), dtype=bool)

    def item_embeddings(self, prepared: PreparedOffers) -> np.ndarray | None:
        """The prepared offers' learned vectors (n_offers, d), row-aligned, or None when the
        model has none (what `/similar` compares when it can)."""
        return None

    @abstractmethod
    def get_arrays(self) -> dict[str, np.ndarray]:
        """The fitted state as named arrays (no object dtype), for `save`."""

    @abstractmethod
    def set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore the fitted state from `get_arrays`' output."""

    def save(self, path: Path | str) -> None:
        """Write `config.json` (with the model name) and `arrays.npz` into folder `path`."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        payload = {"model": self.name, "config": self.config.to_dict()}
        (folder / CONFIG_FILE).write_text(json.dumps(payload, indent=2, sort_keys=True))
        np.savez(folder / ARRAYS_FILE, **self.get_arrays())

    @classmethod
    def load(cls, path: Path | str) -> Self:
        """Rebuild a saved model of this class from folder `path`."""
        folder = Path(path)
        payload = json.loads((folder / CONFIG_FILE).read_text())
        if payload.get("model") != cls.name:
            raise ValueError(f"{folder} holds model {payload.get('model')!r}, not {cls.name!r}")
        model = cls(cls.config_class.from_dict(payload["config"]))
        with np.load(folder / ARRAYS_FILE, allow_pickle=False) as stored:
            model.set_arrays({key: stored[key] for key in stored.files})
        return model
