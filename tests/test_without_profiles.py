"""Real exports may come as offers and events only: the pipeline runs without profiles."""

from __future__ import annotations

import shutil
from pathlib import Path

from features.build import build_feature_set
from recsys import config
from recsys.evaluation import evaluate
from recsys.featureset import load_feature_set
from recsys.models import create_model

pytest_plugins = ["tests.training_fixtures"]


def test_offers_and_events_alone_build_and_evaluate(tiny_dataset: Path, tmp_path: Path) -> None:
    data = tmp_path / "export"
    data.mkdir()
    for name in (config.OFFERS_FILE, config.EVENTS_FILE):
        shutil.copy(tiny_dataset / name, data / name)
    build_feature_set(data, tmp_path / "features")
    feature_set = load_feature_set(tmp_path / "features")
    assert feature_set.profiles["age"].isna().all()  # nobody has a declared profile
    assert len(feature_set.user_ids) > 0 and feature_set.interactions.nnz > 0
    model = create_model("popularity")
    model.train(feature_set.training_data())
    result = evaluate(feature_set, {"popularity": model})
    assert (
        result.models["popularity"]["users_evaluated"] == feature_set.targets["user_key"].nunique()
    )
    assert result.models["popularity"]["ndcg@10"] > 0
