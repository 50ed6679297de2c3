"""The training job: experiment files, MLflow naming, determinism, bundle and one full run."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from typer.testing import CliRunner

from recsys.bundle import load_bundle, save_bundle
from recsys.evaluation import EvaluationResult
from recsys.featureset import load_feature_set
from recsys.models import create_model
from training import tracking
from training.cli import app
from training.experiment import ExperimentError, load_experiment, parse_experiment
from training.jobs import TrainingError, feature_set_folder, fit_and_evaluate, run_metrics

pytest_plugins = ["tests.training_fixtures"]

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"


# --- Experiment files --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    sorted([*EXPERIMENTS.glob("*.yaml"), *EXPERIMENTS.glob("movielens100k/*.yaml")]),
    ids=lambda p: str(p.relative_to(EXPERIMENTS).with_suffix("")),
)
def test_shipped_experiment_files_are_valid(path: Path) -> None:
    experiment = load_experiment(path)
    assert experiment.evaluation.ks == (5, 10, 20)
    assert experiment.model_params()["seed"] == 42


def test_every_model_has_an_experiment_and_the_learned_ones_a_search_space() -> None:
    from recsys.models import MODEL_CLASSES

    named = {load_experiment(path).model for path in EXPERIMENTS.glob("*.yaml")}
    assert set(MODEL_CLASSES) <= named
    for name in ("lightfm", "hybrid"):
        assert load_experiment(EXPERIMENTS / f"{name}.yaml").tuning is not None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model": "deepfm"}, "model: unknown model 'deepfm'"),
        ({"params": {"epochs": "ten"}}, "LightFMConfig.epochs: expected a number"),
        ({"params": {"epoch": 3}}, "unknown parameter(s) ['epoch']"),
        ({"evaluation": {"ks": [5, 20]}}, "must include 10"),
        ({"evaluation": {"baselines": ["oracle"]}}, "unknown model 'oracle'"),
        ({"promotion": {"margin": -0.1}}, "promotion.margin: Input should be greater than"),
        ({"promotion": {"metric": "clicks"}}, "promotion.metric: Input should be 'ndcg@10' or"),
        ({"promotion": {"replay_weeks": 0}}, "promotion.replay_weeks: Input should be greater"),
        ({"colour": "blue"}, "colour: Extra inputs are not permitted"),
        (
            {"tuning": {"space": {"epochs": {"type": "int", "low": 9, "high": 2}}}},
            "low 9.0 is above high 2.0",
        ),
        (
            {"tuning": {"space": {"depth": {"type": "int", "low": 1, "high": 2}}}},
            "['depth'] are not parameters of lightfm",
        ),
        (
            {
                "tuning": {
                    "metric": "ndcg@50",
                    "space": {"epochs": {"type": "int", "low": 1, "high": 2}},
                }
            },
            "must read <metric>@<k> with k in evaluation.ks",
        ),
    ],
)
def test_bad_experiments_name_the_field(change: dict[str, object], message: str) -> None:
    document = {"name": "x", "model": "lightfm", **change}
    with pytest.raises(ExperimentError) as caught:
        parse_experiment(document, "x.yaml")
    assert message in str(caught.value)


def test_relative_paths_are_read_from_the_home_folder() -> None:
    experiment = parse_experiment({"name": "x", "model": "popularity", "features": {"data": "d"}})
    assert experiment.features.data == tracking.config.HOME / "d"
    assert experiment.features.folder == tracking.config.FEATURES_DIR / "d"


def test_cli_reports_a_bad_file_without_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nmodel: lightfm\nparams: {epochs: ten}\n")
    runner = CliRunner()
    answer = runner.invoke(app, ["train", "--config", str(bad)])
    assert answer.exit_code == 1
    assert "params: LightFMConfig.epochs: expected a number, got 'ten'" in answer.output
    assert "Traceback" not in answer.output
    missing = runner.invoke(app, ["train", "--config", str(tmp_path / "none.yaml")])
    assert missing.exit_code == 1 and "does not exist" in missing.output


def test_a_missing_feature_set_says_how_to_build_it(
    tmp_path: Path, make_experiment: Callable[..., Path]
) -> None:
    experiment = load_experiment(make_experiment(tmp_path / "no-features"))
    with pytest.raises(TrainingError, match=r"data folder .* does not exist either"):
        feature_set_folder(experiment)
    data = tmp_path / "data"
    data.mkdir()
    experiment = parse_experiment(
        {"name": "x", "model": "popularity", "features": {"data": str(data)}}
    )
    with pytest.raises(TrainingError, match=re.escape(f"recsys features --data {data}")):
        feature_set_folder(experiment, tmp_path / "elsewhere")
    answer = CliRunner().invoke(
        app, ["train", "-c", str(make_experiment(tmp_path / "nothing")), "-q"]
    )
    assert answer.exit_code == 1 and "no feature set at" in answer.output


# --- MLflow naming ----------------------------------------------------------------------------


def test_metric_keys_are_valid_mlflow_names() -> None:
    assert tracking.metric_key("ndcg@10") == "ndcg_at_10"
    assert tracking.metric_key("age:31+") == "age_31plus"
    assert tracking.metric_key("region:Provence-Alpes-Côte d'Azur") == (
        "region_Provence-Alpes-Côte_d_Azur"
    )
    assert tracking.metric_key("exposure.benevolat@5") == "exposure.benevolat_at_5"


def test_flatten_and_urls() -> None:
    assert dict(tracking.flatten({"a": {"b": 1, "c": {"d": 2}}, "e": 3}, "p.")) == {
        "p.a.b": 1,
        "p.a.c.d": 2,
        "p.e": 3,
    }
    assert tracking.sqlalchemy_url("postgresql://u@h:5432/db").startswith("postgresql")
    assert tracking.sqlalchemy_url("postgresql://u@h:5432/db").endswith("://u@h:5432/db")
    assert tracking.sqlalchemy_url("sqlite:///x.db") == "sqlite:///x.db"
    assert tracking.artifact_root("sqlite:////srv/m/mlflow.db") == "file:///srv/m/mlartifacts"
    assert tracking.artifact_root("http://127.0.0.1:5000") is None


def test_run_metrics_name_overall_segment_and_baseline_figures() -> None:
    result = EvaluationResult(
        models={
            "mine": {"ndcg@10": 0.5, "mean_distance_km@10": float("nan"), "users_evaluated": 4},
            "incumbent": {"ndcg@10": 0.25},
        },
        segments={
            "cold": {"mine": {"ndcg@10": 0.1, "gini_programme@10": 0.3}},
            "age:31+": {"mine": {"recall@5": 1.0}},
        },
        split={},
        data={},
    )
    assert run_metrics(result, "mine", {"incumbent": "incumbent"}) == {
        "ndcg_at_10": 0.5,
        "users_evaluated": 4.0,
        "cold.ndcg_at_10": 0.1,
        "age_31plus.recall_at_5": 1.0,
        "baseline.incumbent.ndcg_at_10": 0.25,
    }


# --- On the tiny simulated dataset --------------------------------------------------------------


def test_same_config_and_seed_give_the_same_metrics(
    tiny_features: Path, make_experiment: Callable[..., Path]
) -> None:
    """LightFM trains with num_threads=1 and a seed: two fits give identical figures."""
    experiment = load_experiment(make_experiment(tiny_features))
    feature_set = load_feature_set(tiny_features)
    _, first, _, _ = fit_and_evaluate(experiment, feature_set)
    _, second, _, _ = fit_and_evaluate(experiment, feature_set)
    assert first.models == second.models
    assert set(first.models) >= {"lightfm-tiny", "popularity", "incumbent"}


def test_bundle_round_trip_ranks_like_the_model(tiny_features: Path, tmp_path: Path) -> None:
    feature_set = load_feature_set(tiny_features)
    model = create_model("popularity")
    model.train(feature_set.training_data())
    save_bundle(model, feature_set, tmp_path / "bundle")
    bundle = load_bundle(tmp_path / "bundle")
    assert bundle.model_name == "popularity"
    assert bundle.data_fingerprint == feature_set.manifest["data_fingerprint"]
    users = feature_set.user_batch(feature_set.user_ids[:5])
    offers = bundle.offer_batch()
    np.testing.assert_array_equal(offers.ids, feature_set.offer_ids)
    np.testing.assert_allclose(
        bundle.model.score(users, offers), model.score(users, feature_set.offer_batch())
    )
    lists = bundle.recommend(pd.DataFrame({"age": [20.0, 70.0], "lat": [48.85] * 2}), k=4)
    assert [len(items) <= 4 for items in lists] == [True, True]
    assert set(lists[0]) <= set(feature_set.offer_ids)


@pytest.mark.slow
def test_cli_train_logs_one_complete_run(
    mlflow_store: str, tiny_features: Path, make_experiment: Callable[..., Path]
) -> None:
    path = make_experiment(tiny_features)
    answer = CliRunner().invoke(app, ["train", "--config", str(path), "--quiet"])
    assert answer.exit_code == 0, answer.output
    assert "registered version 1 (challenger)" in answer.output

    client = MlflowClient()
    (run,) = mlflow.search_runs(
        experiment_names=[tracking.TRAINING_EXPERIMENT], output_format="list"
    )
    params, metrics = run.data.params, run.data.metrics
    manifest = load_feature_set(tiny_features).manifest
    assert params["data.fingerprint"] == manifest["data_fingerprint"]
    assert params["split.cutoff"] == manifest["split"]["cutoff"]
    assert params["model.embedding_size"] == "8" and params["model.seed"] == "42"
    assert params["features.apply_weight"] == str(manifest["config"]["apply_weight"])
    assert {"lib.numpy", "lib.rectools-lightfm", "lib.mlflow", "code.version"} <= set(params)
    for k in (5, 10, 20):
        assert metrics[f"ineligible_rate_at_{k}"] == 0.0
        assert f"ndcg_at_{k}" in metrics and f"baseline.incumbent.ndcg_at_{k}" in metrics
    assert any(name.startswith("warm.ndcg_at_") for name in metrics)
    assert metrics["model_size_bytes"] > 0 and metrics["train_seconds"] > 0

    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert artifacts == {
        "plots/metrics_at_k.png",
        "plots/ndcg_by_segment.png",
        "plots/exposure.png",
        "plots/distance_km.png",
    }
    evaluation = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
    assert "evaluation/metrics.csv" in evaluation and "evaluation/evaluation.json" in evaluation
    assert client.list_artifacts(run.info.run_id, "encoders")

    version = client.get_model_version_by_alias("engagement-ranker", "challenger")
    assert version.run_id == run.info.run_id
    pyfunc = mlflow.pyfunc.load_model("models:/engagement-ranker@challenger")
    request = pd.DataFrame({"userId": ["nobody"], "age": [22.0], "lat": [45.76], "lon": [4.84]})
    served = pyfunc.predict(request.assign(k=[7]))
    bundle = pyfunc.unwrap_python_model().bundle
    assert served["offerIds"][0] == bundle.recommend(request, k=7)[0]
    assert 0 < len(served["offerIds"][0]) <= 7
    assert yaml.safe_load(Path(path).read_text())["name"] == run.data.tags["recsys.experiment"]

    listing = CliRunner().invoke(app, ["runs", "--limit", "5"])
    assert listing.exit_code == 0, listing.output
    assert "lightfm-tiny" in listing.output and "challenger" in listing.output
