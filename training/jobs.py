"""The training job: one experiment file in, one MLflow run and one registered version out.

`train_experiment` loads the feature set's test window, fits the model (timed), evaluates it
with the shared harness next to its baselines, and records everything that explains the
numbers in one MLflow run: full config, data fingerprint, split dates, code and library
versions, every metric overall, per segment and per baseline, tables, figures, the encoders,
and the model itself as a pyfunc around the ranker bundle, registered under
`recsys.config.REGISTERED_MODEL_NAME` with the alias `challenger`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, DataType, ParamSchema, ParamSpec, Schema
from mlflow.types.schema import Array
from tqdm.auto import tqdm

import recsys
from recsys import config, schema
from recsys.bundle import MODEL_DIR, save_bundle
from recsys.evaluation import EvaluationResult, evaluate
from recsys.featureset import (
    ENCODERS_DIR,
    MANIFEST_FILE,
    TEST_WINDOW,
    FeatureSet,
    load_feature_set,
    window_path,
)
from recsys.models import create_model
from recsys.models.base import Recommender
from recsys.provenance import code_label
from training import plots, record, registry, tracking
from training.experiment import Experiment
from training.ranker_pyfunc import BUNDLE_ARTIFACT
from training.replay import replay_gate

logger = logging.getLogger(__name__)

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # implicit warns (and slows) without it
# MLflow draws a bar while it copies the bundle to validate the input example: local noise.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

PYFUNC_FILE = Path(__file__).with_name("ranker_pyfunc.py")
MODEL_LOCK = config.PROJECT_ROOT / "requirements" / "model.txt"
SEGMENT_METRIC_PREFIXES = ("ndcg@", "recall@", "precision@", "map@", "hit_rate@", "users_")


class TrainingError(ValueError):
    """The job cannot start: missing feature set, unusable files; the message says what to do."""


@dataclass(frozen=True)
class TrainOutcome:
    """What one training job produced."""

    run_id: str
    version: str | None
    candidate: str  # the trained model's row in `evaluation`
    evaluation: EvaluationResult
    train_seconds: float
    decision: registry.Decision | None

    @property
    def metrics(self) -> dict[str, float]:
        """The trained model's overall metrics (`ndcg@10`, ...)."""
        return self.evaluation.models[self.candidate]


def feature_set_folder(experiment: Experiment, features: Path | None = None) -> Path:
    """The test window folder to train on: `features` if given, else the experiment's."""
    root = Path(features) if features is not None else experiment.features.folder
    folder = window_path(root, TEST_WINDOW)
    if not (folder / MANIFEST_FILE).is_file():
        data = experiment.features.data
        hint = (
            f"build it with: recsys features --data {data} --out {root}"
            if data.is_dir()
            else f"the data folder {data} does not exist either: simulate or ingest data first"
        )
        raise TrainingError(f"no feature set at {root} (no {TEST_WINDOW}/{MANIFEST_FILE}); {hint}")
    return folder


def _fit(model: Recommender, feature_set: FeatureSet, quiet: bool) -> float:
    """Train with an epoch bar, shown once the model reports epochs; returns the seconds."""
    data = feature_set.training_data()
    bar: tqdm | None = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(desc=f"train {model.name}", unit="epoch", total=total, disable=quiet)
        bar.update(done - bar.n)

    started = time.perf_counter()
    try:
        model.train(data, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    return time.perf_counter() - started


def _baselines(experiment: Experiment, candidate: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """Evaluation row name -> (model name, params) of each baseline."""
    rows = {}
    for name in experiment.evaluation.baselines:
        row = f"{name}_baseline" if name == candidate else name
        rows[row] = (name, experiment.evaluation.baseline_params.get(name, {}))
    return rows


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def run_metrics(
    result: EvaluationResult, candidate: str, baseline_rows: dict[str, str]
) -> dict[str, float]:
    """Every figure of an evaluation as MLflow metrics.

    The trained model's metrics under their own key (`ndcg_at_10`), per segment as
    `<segment>.<metric>` (ranking metrics only, the others are not defined per segment), and
    each baseline's under `baseline.<model>.<metric>`. Non-finite values are left out.
    """
    logged: dict[str, float] = {}
    for name, value in result.models[candidate].items():
        if _finite(value):
            logged[tracking.metric_key(name)] = float(value)
    for segment, by_model in result.segments.items():
        for name, value in by_model.get(candidate, {}).items():
            if name.startswith(SEGMENT_METRIC_PREFIXES) and _finite(value):
                logged[f"{tracking.metric_key(segment)}.{tracking.metric_key(name)}"] = float(value)
    for row, model_name in baseline_rows.items():
        for name, value in result.models.get(row, {}).items():
            if _finite(value):
                logged[f"baseline.{model_name}.{tracking.metric_key(name)}"] = float(value)
    return logged


def run_params(
    experiment: Experiment, model: Recommender, feature_set: FeatureSet
) -> dict[str, str]:
    """Everything the numbers depend on, flattened to MLflow params (strings)."""
    manifest = feature_set.manifest
    params: dict[str, Any] = {"model.name": model.name}
    params.update(tracking.flatten(model.config.to_dict(), "model."))
    params.update(tracking.flatten(manifest.get("config", {}), "features."))
    params.update(tracking.flatten(manifest.get("split", {}), registry.SPLIT_PREFIX))
    params.update(
        {
            record.FINGERPRINT_PARAM: manifest.get("data_fingerprint"),
            record.DATA_DIR_PARAM: manifest.get("data_dir"),
            "data.window": f"{feature_set.window_start} / {feature_set.window_end}",
            "code.version": code_label(),
            "code.features_version": (manifest.get("code_version") or {}).get("git_commit"),
            "evaluation.ks": ",".join(str(k) for k in experiment.evaluation.ks),
            "evaluation.baselines": ",".join(experiment.evaluation.baselines),
            registry.METRIC_PARAM: experiment.promotion.metric,
            registry.MARGIN_PARAM: experiment.promotion.margin,
            registry.MUST_BEAT_PARAM: ",".join(experiment.promotion.must_beat),
        }
    )
    params.update({f"lib.{name}": version for name, version in tracking.library_versions().items()})
    return {key: "" if value is None else str(value) for key, value in params.items()}


def _replay_gate(
    experiment: Experiment, feature_set: FeatureSet, say: Callable[[str], None]
) -> dict[str, float]:
    """The metrics a promotion on applications reads (`registry.REPLAY_METRIC`, the model's
    and each baseline's to beat), from a replay of the feature set's data; none when the
    experiment is judged on NDCG@10."""
    promotion = experiment.promotion
    if promotion.metric != "replay":
        return {}
    data = Path(feature_set.manifest["data_dir"])
    say(
        f"replaying the last {promotion.replay_weeks} weeks of {data} to judge "
        f"{experiment.model} against {', '.join(promotion.must_beat)} on applications"
    )
    started = time.perf_counter()
    baselines = {
        name: experiment.evaluation.baseline_params.get(name, {}) for name in promotion.must_beat
    }
    mine, theirs = replay_gate(
        data, experiment.model, experiment.params, baselines, promotion.replay_weeks, say
    )
    say(f"replayed in {time.perf_counter() - started:.1f} s")
    key = registry.REPLAY_METRIC
    return {key: mine, **{f"baseline.{name}.{key}": value for name, value in theirs.items()}}


def _folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def pyfunc_signature() -> ModelSignature:
    """Profile columns (all optional, typed after `schema.PROFILE_SCHEMA`: text, numbers as
    doubles, flags, lists of text) and `k` in; `userId` and ranked `offerIds` out."""
    inputs = []
    for field in schema.PROFILE_SCHEMA:
        if field.name in schema.PROFILE_LIST_COLUMNS:
            kind = Array(DataType.string)
        elif field.name in schema.PROFILE_FLAG_COLUMNS:
            kind = DataType.boolean
        elif pa.types.is_string(field.type):
            kind = DataType.string
        else:
            kind = DataType.double
        inputs.append(ColSpec(kind, field.name, required=False))
    inputs.append(ColSpec(DataType.long, "k", required=False))
    outputs = Schema(
        [ColSpec(DataType.string, "userId"), ColSpec(Array(DataType.string), "offerIds")]
    )
    params = ParamSchema([ParamSpec("at", DataType.string, "")])
    return ModelSignature(inputs=Schema(inputs), outputs=outputs, params=params)


def pyfunc_input_example(feature_set: FeatureSet) -> pd.DataFrame:
    """Two requests: a known user by id, and an anonymous quiz profile at a known place."""
    profiles = feature_set.profiles
    placed = profiles[profiles["lat"].notna() & profiles["lon"].notna()]
    lat, lon = (placed["lat"].iloc[0], placed["lon"].iloc[0]) if len(placed) else (48.86, 2.35)
    return pd.DataFrame(
        {
            "userId": [str(feature_set.user_ids[0]), None],
            "age": [np.nan, 19.0],
            "lat": [np.nan, float(lat)],
            "lon": [np.nan, float(lon)],
            "hasQuiz": [False, True],
            "quizDomains": [[], ["environnement-animaux"]],
            "k": [5, 5],
        }
    )


def model_requirements(lock: Path = MODEL_LOCK) -> list[str]:
    """The registered model's pip requirements: the pins of the model lock.

    The lock (`make lock`) resolves the core's dependencies and the MLflow client, so the
    model installs alone where the project is not. Without a source checkout (the project
    installed as a package) the installed versions of the core's libraries stand in.
    Listed rather than inferred: MLflow's inference loads the model in a subprocess, seconds
    per run, and cannot see that `recsys` comes from this project.
    """
    if lock.is_file():
        lines = (line.split("#", 1)[0].strip() for line in lock.read_text("utf-8").splitlines())
        return [line for line in lines if line]
    versions = tracking.library_versions()
    return [f"{name}=={version}" for name, version in versions.items() if version != "missing"]


def pyfunc_files(bundle: Path, scratch: Path) -> dict[str, Any]:
    """The arguments of `mlflow.pyfunc.log_model` (or `save_model`) that make the model whole.

    The pyfunc's code (`training/ranker_pyfunc.py`, run at load time), the bundle as its
    artifact, a copy of the `recsys` core as `code_paths` (made in `scratch`, without
    compiled caches) and the locked requirements: `mlflow.pyfunc.load_model` then works in an
    environment holding only those requirements.
    """
    code = scratch / "code" / "recsys"
    shutil.copytree(
        Path(recsys.__file__).parent, code, ignore=shutil.ignore_patterns("__pycache__")
    )
    return {
        "python_model": str(PYFUNC_FILE),
        "artifacts": {BUNDLE_ARTIFACT: str(bundle)},
        "code_paths": [str(code)],
        "pip_requirements": model_requirements(),
    }


def _log_artifacts(
    result: EvaluationResult,
    feature_set: FeatureSet,
    experiment: Experiment,
    candidate: str,
    folder: Path,
) -> None:
    evaluation = folder / record.EVALUATION_ARTIFACT_DIR
    evaluation.mkdir()
    result.table().to_csv(evaluation / "metrics.csv", index_label="model")
    result.segment_table().to_csv(evaluation / "segments_ndcg_at_10.csv", index_label="segment")
    (evaluation / record.EVALUATION_FILE).write_text(
        json.dumps(result.to_json(), indent=1, default=str, ensure_ascii=False), "utf-8"
    )
    (evaluation / record.FEATURE_MANIFEST_FILE).write_text(
        json.dumps(feature_set.manifest, indent=1, ensure_ascii=False), "utf-8"
    )
    (evaluation / "experiment.yaml").write_text(experiment.to_yaml(), "utf-8")
    mlflow.log_artifacts(str(evaluation), record.EVALUATION_ARTIFACT_DIR)
    plots.write_all(result, feature_set, candidate, folder / "plots")
    mlflow.log_artifacts(str(folder / "plots"), "plots")
    mlflow.log_artifacts(str(feature_set.path / ENCODERS_DIR), "encoders")


def fit_and_evaluate(
    experiment: Experiment,
    feature_set: FeatureSet,
    quiet: bool = True,
    report: Callable[[str], None] | None = None,
) -> tuple[Recommender, EvaluationResult, float, float]:
    """Fit the experiment's model and its baselines, evaluate them together.

    Returns the trained model, the evaluation (the model's row named after the experiment),
    and the training and evaluation seconds. The same experiment and feature set give the
    same metrics: every model is seeded and trains single-threaded.
    """
    say = report if report is not None else (lambda message: None)
    model = create_model(experiment.model, experiment.params)
    train_seconds = _fit(model, feature_set, quiet)
    say(f"trained {experiment.model} in {train_seconds:.1f} s")
    models: dict[str, Recommender] = {experiment.name: model}
    for row, (name, params) in _baselines(experiment, experiment.name).items():
        models[row] = create_model(name, params)
        _fit(models[row], feature_set, quiet=True)
    truth = Path(feature_set.manifest.get("data_dir", "")) / config.TRUTH_DIR
    with tqdm(desc="evaluate", unit="user", disable=quiet, leave=False) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        started = time.perf_counter()
        result = evaluate(
            feature_set,
            models,
            ks=experiment.evaluation.ks,
            truth_dir=truth if truth.is_dir() else None,
            progress=progress,
        )
        evaluation_seconds = time.perf_counter() - started
    say(f"evaluated {len(models)} models in {evaluation_seconds:.1f} s")
    return model, result, train_seconds, evaluation_seconds


def train_experiment(
    experiment: Experiment,
    features: Path | None = None,
    promote: bool = False,
    quiet: bool = False,
    report: Callable[[str], None] | None = None,
) -> TrainOutcome:
    """Fit, evaluate, log and register one experiment; optionally try to promote it.

    Args:
        experiment: a validated experiment file.
        features: feature set folder (holding `test/`); default the experiment's.
        promote: judge the new version for `champion` (registry.promote) after registering.
        quiet: no progress bars.
        report: called with one line per step (the CLI prints them).

    Raises:
        TrainingError: no feature set where expected.
    """
    say = report if report is not None else (lambda message: None)
    folder = feature_set_folder(experiment, features)
    feature_set = load_feature_set(folder)
    say(
        f"feature set {folder}: {len(feature_set.user_ids):,} users, "
        f"{len(feature_set.offer_ids):,} offers, cutoff {feature_set.cutoff}"
    )

    candidate = experiment.name
    # First: it retrains its own models, and data it cannot replay fails before any training.
    gate = _replay_gate(experiment, feature_set, say)
    model, result, train_seconds, evaluation_seconds = fit_and_evaluate(
        experiment, feature_set, quiet, say
    )
    baseline_specs = _baselines(experiment, candidate)

    tracking.configure()
    experiment_id = tracking.ensure_experiment(tracking.TRAINING_EXPERIMENT)
    tags = {
        tracking.KIND_TAG: "train",
        record.EXPERIMENT_TAG: experiment.name,
        "recsys.model": experiment.model,
        "mlflow.note.content": experiment.description,
    }
    with (
        tempfile.TemporaryDirectory(prefix="recsys-train-") as scratch,
        mlflow.start_run(experiment_id=experiment_id, run_name=experiment.name, tags=tags) as run,
    ):
        work = Path(scratch)
        mlflow.log_params(run_params(experiment, model, feature_set))
        bundle = save_bundle(model, feature_set, work / "bundle")
        logged = run_metrics(result, candidate, {row: n for row, (n, _) in baseline_specs.items()})
        logged.update(gate)
        logged.update(
            {
                "train_seconds": train_seconds,
                "evaluation_seconds": evaluation_seconds,
                "model_size_bytes": float(_folder_bytes(bundle / MODEL_DIR)),
                "bundle_size_bytes": float(_folder_bytes(bundle)),
            }
        )
        _log_artifacts(result, feature_set, experiment, candidate, work)
        info = mlflow.pyfunc.log_model(
            name="model",
            registered_model_name=config.REGISTERED_MODEL_NAME,
            signature=pyfunc_signature(),
            input_example=pyfunc_input_example(feature_set),
            **pyfunc_files(bundle, work),
        )
        # Metrics come after the model: MLflow 3 copies a run's existing metrics onto a newly
        # logged model one history request per metric (hundreds of round trips to a server).
        # The model's own overall figures are linked to it; segments and baselines stay on
        # the run.
        overall = {key: value for key, value in logged.items() if "." not in key}
        mlflow.log_metrics(overall, model_id=info.model_id)
        mlflow.log_metrics({key: value for key, value in logged.items() if key not in overall})
    version = str(info.registered_model_version) if info.registered_model_version else None
    say(f"MLflow run {run.info.run_id}; {config.REGISTERED_MODEL_NAME} version {version}")
    decision = None
    if version is not None:
        registry.mark_challenger(version)
        if promote:
            decision = registry.promote(version)
    return TrainOutcome(run.info.run_id, version, candidate, result, train_seconds, decision)
