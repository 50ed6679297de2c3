"""The model family behind one protocol (`recsys.models.base.Recommender`).

Models are looked up by name; imports are lazy so that a light command does not pay for
LightFM or implicit.
"""

from __future__ import annotations

import importlib
from typing import Any

from recsys.models.base import ModelConfig, Recommender

# name -> "module:Class"
MODEL_CLASSES: dict[str, str] = {
    "popularity": "recsys.models.popularity:PopularityModel",
    "incumbent": "recsys.models.incumbent:IncumbentModel",
    "incumbent_local": "recsys.models.incumbent:IncumbentLocalModel",
    "itemknn": "recsys.models.itemknn:ItemKNNModel",
    "ease": "recsys.models.ease:EASEModel",
    "content": "recsys.models.content:ContentModel",
    "als": "recsys.models.factorization:ALSModel",
    "bpr": "recsys.models.factorization:BPRModel",
    "lightfm": "recsys.models.lightfm_model:LightFMModel",
    "hybrid": "recsys.models.hybrid:HybridModel",
    "response": "recsys.models.response:ResponseModel",
}


def model_class(name: str) -> type[Recommender]:
    """The class registered under `name`; ValueError naming the known models otherwise."""
    if name not in MODEL_CLASSES:
        raise ValueError(f"unknown model {name!r}; expected one of {sorted(MODEL_CLASSES)}")
    module_name, class_name = MODEL_CLASSES[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def create_model(name: str, params: dict[str, Any] | None = None) -> Recommender:
    """A fresh model from its name and a plain dict of config values (validated)."""
    cls = model_class(name)
    return cls(cls.config_class.from_dict(params or {}))


__all__ = ["MODEL_CLASSES", "ModelConfig", "Recommender", "create_model", "model_class"]
