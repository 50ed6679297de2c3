"""The incumbent quiz-matching engine as a model: a thin adapter over `recsys.rules`.

Two rows of every comparison (DOMAIN.md §7): `incumbent`, the engine as in production (remote
offers scored 0.9 or 0.95 at any distance), and `incumbent_local`, the same engine with remote
offers scored by distance like any other, the stronger baseline where distance matters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from recsys.dataset import OfferBatch, TrainingData, UserBatch
from recsys.models.base import ModelConfig, Recommender
from recsys.rules import incumbent_scores


@dataclass
class IncumbentConfig(ModelConfig):
    """`remote_overrides`: score full-remote 0.9 and local 0.95 whatever the distance."""

    remote_overrides: bool = True


@dataclass
class IncumbentLocalConfig(IncumbentConfig):
    """The same engine, remote offers scored by distance like any other."""

    remote_overrides: bool = False


class IncumbentModel(Recommender):
    """The quiz-matching engine m4 as a model: nothing to learn, scores from the arrays."""

    name = "incumbent"
    config_class = IncumbentConfig
    config: IncumbentConfig
    # Its score is the rules engine: the list policy serves it as it is, never blended with
    # the rules a second time (which would make `incumbent` half `incumbent_local`).
    blends_rules = True

    def train(self, data: TrainingData, progress: Callable[[int, int], None] | None = None) -> None:
        """Nothing to learn: the engine is a fixed rule."""

    def score(self, users: UserBatch, offers: OfferBatch) -> np.ndarray:
        return incumbent_scores(users.arrays, offers.arrays, self.config.remote_overrides)

    def get_arrays(self) -> dict[str, np.ndarray]:
        return {}

    def set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        if arrays:
            raise ValueError(f"{self.name}: expected no stored arrays, got {sorted(arrays)}")


class IncumbentLocalModel(IncumbentModel):
    """The engine without its remote overrides (DOMAIN.md §7, the stronger rule baseline)."""

    name = "incumbent_local"
    config_class = IncumbentLocalConfig
    config: IncumbentLocalConfig
