"""The random per-interaction split, for public benchmark data: a holdout, not a time window."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from engagement.cli import app
from features.build import build_feature_set
from features.config import FeatureConfig
from recsys.featureset import load_feature_set
from recsys.generic import convert_interactions


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 users × 30 items, every interaction an apply (no weights), spread over a year."""
    rng = np.random.default_rng(5)
    rows = [
        (user, item, 1_600_000_000 + int(rng.integers(0, 3 * 10**7)))
        for user in range(40)
        for item in rng.choice(30, size=8, replace=False)
    ]
    folder = tmp_path_factory.mktemp("random-split")
    csv = folder / "interactions.csv"
    pd.DataFrame(rows, columns=["user", "item", "timestamp"]).to_csv(csv, index=False)
    convert_interactions(csv, folder / "data", weight_col=None)
    return folder / "data"


def _pairs(frame: pd.DataFrame) -> set[tuple[str, str]]:
    return set(zip(frame["user_key"], frame["offer_id"], strict=True))


def test_held_out_applies_are_a_seeded_quarter_never_trained_on(
    dataset: Path, tmp_path: Path
) -> None:
    config = FeatureConfig(split="random", test_frac=0.25, split_seed=9)
    build_feature_set(dataset, tmp_path / "a", config)
    test = load_feature_set(tmp_path / "a", "test")
    validation = load_feature_set(tmp_path / "a", "validation")
    assert len(test.targets) == round(0.25 * 320)  # 40 users × 8 applies
    assert len(validation.targets) == round(0.25 * (320 - 80))
    assert not _pairs(test.targets) & _pairs(validation.targets)
    # No held-out pair is in the training applies of its window.
    for window in (test, validation):
        users = pd.Index(window.user_ids).get_indexer(window.targets["user_key"])
        offers = pd.Index(window.offer_ids).get_indexer(window.targets["offer_id"])
        assert (np.asarray(window.applies[users, offers]).ravel() == 0).all()
        assert window.applies.nnz + len(window.targets) + (80 if window is validation else 0) == 320
    # Held-out applies come from the whole year, not from its end.
    span = test.targets["createdAt"].max() - test.targets["createdAt"].min()
    assert span > pd.Timedelta(days=200)

    build_feature_set(dataset, tmp_path / "b", config)
    again = load_feature_set(tmp_path / "b", "test")
    assert _pairs(again.targets) == _pairs(test.targets)
    build_feature_set(dataset, tmp_path / "c", FeatureConfig(split="random", split_seed=10))
    assert _pairs(load_feature_set(tmp_path / "c", "test").targets) != _pairs(test.targets)


def test_evaluate_labels_the_random_split_unfit(dataset: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--data",
            str(dataset),
            "--features",
            str(tmp_path / "features"),
            "--models",
            "popularity,itemknn",
            "--split",
            "random",
            "--test-frac",
            "0.25",
            "--seed",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "unfit for this domain" in result.output
    assert "itemknn" in result.output


def test_bad_split_options_are_refused(dataset: Path) -> None:
    result = CliRunner().invoke(app, ["evaluate", "--data", str(dataset), "--split", "shuffled"])
    assert result.exit_code == 1
    assert "--split" in result.output
    with pytest.raises(ValueError, match="test_frac"):
        FeatureConfig(split="random", test_frac=1.5)


def test_evaluate_takes_a_models_params_from_an_experiment_file(
    dataset: Path, tmp_path: Path
) -> None:
    experiment = tmp_path / "ease-tuned.yaml"
    experiment.write_text("name: ease-tuned\nmodel: ease\nparams: {regularization: 7.5}\n")
    out = tmp_path / "result.json"
    args = ["evaluate", "--data", str(dataset), "--features", str(tmp_path / "features")]
    args += ["--models", "popularity", "--split", "random", "--json", str(out)]
    result = CliRunner().invoke(app, [*args, "--experiment", str(experiment)])
    assert result.exit_code == 0, result.output
    evaluated = json.loads(out.read_text())
    assert list(evaluated["models"]) == ["popularity", "ease"]
    assert evaluated["data"]["params"]["ease"]["regularization"] == 7.5
    assert evaluated["data"]["counterfactual"] == {"lists": 0}  # no prints in such data
    missing = CliRunner().invoke(app, [*args, "--experiment", str(tmp_path / "none.yaml")])
    assert missing.exit_code == 1
    assert "--experiment" in missing.output
