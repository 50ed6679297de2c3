"""Hyper-parameter search with Optuna on the validation window only.

The objective is a validation metric (NDCG@10 by default) of a model fitted before the
validation window and evaluated on it: the test window is never seen, so the figures of the
tuned model's training run stay honest. The study lives in a storage that survives the
process (a journal file by default, PostgreSQL when asked), so running the command again
continues the same study, and several worker processes can share it. Each trial is a nested
MLflow run under one parent run per invocation. The best parameters are written to a new
experiment file (`<name>-tuned.yaml`) that `recsys train` takes as it is.

Models that train by epochs and take a `checkpoint` (LightFM, and the hybrid through it) are
scored every `PRUNING_EPOCHS` epochs, and Optuna's median pruner stops a trial whose figure
there is below the median of earlier trials at the same epoch. A search space that gives a
model a configuration it refuses fails the whole study (`TuningError`), before any trial or
at the trial that meets it: such a trial says nothing about the model. Failures of training
itself (a diverging model) stay failed trials.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import optuna
import yaml
from optuna.storages import BaseStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState
from tqdm.auto import tqdm

from recsys import config
from recsys.evaluation import evaluate
from recsys.featureset import (
    MANIFEST_FILE,
    VALIDATION_WINDOW,
    load_feature_set,
    read_manifest,
    window_path,
)
from recsys.models import create_model
from recsys.models.base import Recommender
from recsys.typed_config import read_yaml
from training import record, tracking
from training.experiment import Experiment, SearchDimension, load_experiment

logger = logging.getLogger(__name__)

STORAGE_ENV = "OPTUNA_STORAGE"
PRUNING_EPOCHS = 5  # epochs between a trial's intermediate scores
PRUNER_STARTUP_TRIALS = 5  # trials that run to the end before any is pruned


class TrialFailed(RuntimeError):
    """Training failed for this trial's values (a diverging model): the study goes on."""


# What a trial may fail with and the study go on: training errors, not configuration ones.
TRIAL_ERRORS = (TrialFailed, ArithmeticError, np.linalg.LinAlgError)
JOURNAL_FOLDER = "optuna"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


class TuningError(ValueError):
    """The search cannot start; the message says why and what to do."""


@dataclass(frozen=True)
class TuneOutcome:
    """The study after this invocation."""

    study_name: str
    storage: str
    trials_total: int  # finished trials in the study, earlier invocations included
    trials_run: int  # finished in this invocation
    best_value: float
    best_params: dict[str, Any]
    tuned_file: Path
    parent_run_id: str


@dataclass(frozen=True)
class WorkerJob:
    """What a worker needs, picklable for a spawned process."""

    experiment_file: str
    features: str
    storage: str
    study_name: str
    trials: int
    sampler_seed: int
    tracking_uri: str
    mlflow_experiment_id: str
    parent_run_id: str
    show_progress: bool


def storage_url(storage: str | None = None, experiment_name: str = "study") -> str:
    """The study storage: explicit, else `$OPTUNA_STORAGE`, else a journal file under data/.

    A journal file is named by a path (or `journal:<path>`); anything with `://` is a
    database URL for Optuna's RDB storage (`postgresql://...`).
    """
    chosen = storage or os.environ.get(STORAGE_ENV)
    if chosen:
        return chosen
    return str(config.DATA_DIR / JOURNAL_FOLDER / f"{experiment_name}.journal")


def open_storage(url: str) -> BaseStorage:
    """An Optuna storage object for `storage_url`'s result."""
    if "://" in url:
        return RDBStorage(tracking.sqlalchemy_url(url))
    path = Path(url.removeprefix("journal:"))
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def _describe_storage(url: str) -> str:
    """The storage for logs and params, without a password."""
    if "://" not in url:
        return f"journal:{url.removeprefix('journal:')}"
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}"


def suggest(trial: optuna.Trial, name: str, dimension: SearchDimension) -> Any:
    """One parameter value from the experiment's search space."""
    if dimension.type == "categorical":
        return trial.suggest_categorical(name, dimension.choices)
    assert dimension.low is not None and dimension.high is not None  # checked by the schema
    if dimension.type == "int":
        step = int(dimension.step) if dimension.step and not dimension.log else 1
        return trial.suggest_int(
            name, int(dimension.low), int(dimension.high), step=step, log=dimension.log
        )
    step = dimension.step if not dimension.log else None
    return trial.suggest_float(name, dimension.low, dimension.high, step=step, log=dimension.log)


def configured_model(experiment: Experiment, params: dict[str, Any]) -> Recommender:
    """The experiment's model with `params`.

    Raises:
        TuningError: the model refuses the configuration (naming the values and why).
    """
    try:
        return create_model(experiment.model, params)
    except (ValueError, TypeError) as error:
        raise TuningError(
            f"experiment {experiment.name}: the search space gives {experiment.model} a "
            f"configuration it refuses ({params}): {error}"
        ) from error


def check_space(experiment: Experiment) -> None:
    """Every corner of the search space (each dimension at its bounds or choices, the others
    at their low end) makes a model, before any trial runs.

    Raises:
        TuningError: a corner the model refuses.
    """
    assert experiment.tuning is not None
    space = experiment.tuning.space
    low = {name: dim.choices[0] if dim.choices else dim.low for name, dim in space.items()}
    for name, dimension in space.items():
        for value in dimension.choices or (dimension.low, dimension.high):
            if dimension.type == "int":
                value = int(value)
            configured_model(experiment, {**experiment.params, **low, name: value})


def make_objective(experiment: Experiment, features: Path) -> Callable[[optuna.Trial], float]:
    """The trial function: fit on the validation window's training data, score the window.

    A model that takes a `checkpoint` is scored every `PRUNING_EPOCHS` epochs too, reported
    to the trial, and stopped (`optuna.TrialPruned`) when the study's pruner says so.
    """
    if experiment.tuning is None:
        raise TuningError(f"experiment {experiment.name} has no tuning section")
    tuning = experiment.tuning
    feature_set = load_feature_set(features, VALIDATION_WINDOW)
    data = feature_set.training_data()

    def score(model: Recommender) -> dict[str, Any]:
        result = evaluate(feature_set, {experiment.name: model}, ks=experiment.evaluation.ks)
        return result.models[experiment.name]

    def objective(trial: optuna.Trial) -> float:
        params = dict(experiment.params)
        params.update({name: suggest(trial, name, dim) for name, dim in tuning.space.items()})
        model = configured_model(experiment, params)

        def checkpoint(epochs: int) -> None:
            value = float(score(model)[tuning.metric])
            trial.report(value, epochs)
            if trial.should_prune():
                raise optuna.TrialPruned(f"epoch {epochs}: {tuning.metric} {value:.4f}")

        started = time.perf_counter()
        hooks = {"checkpoint": checkpoint} if model.checkpoints else {}
        try:
            model.train(data, **hooks)
        except ValueError as error:  # the configuration was accepted: this is training's
            raise TrialFailed(f"trial {trial.number}: {error}") from error
        seconds = time.perf_counter() - started
        values = score(model)
        if mlflow.active_run() is not None:  # the trial's nested run (`_tracked`)
            logged = {
                tracking.metric_key(name): float(value)
                for name, value in values.items()
                if isinstance(value, int | float) and np.isfinite(value)
            }
            mlflow.log_metrics({**logged, "train_seconds": seconds})
        return float(values[tuning.metric])

    return objective


def _tracked(
    objective: Callable[[optuna.Trial], float], metric: str
) -> Callable[[optuna.Trial], float]:
    """The objective run inside a nested MLflow run of its own per trial, under the
    invocation's parent run: the trial's parameters, state, metrics and objective value."""

    def tracked(trial: optuna.Trial) -> float:
        with mlflow.start_run(run_name=f"trial-{trial.number}", nested=True):
            mlflow.set_tag("optuna.trial", str(trial.number))
            state = TrialState.FAIL
            try:
                value = objective(trial)
                mlflow.log_metric(tracking.metric_key(metric), value)
                state = TrialState.COMPLETE
                return value
            except optuna.TrialPruned:
                state = TrialState.PRUNED
                raise
            finally:
                mlflow.log_params(trial.params)
                mlflow.set_tag("optuna.state", state.name)

    return tracked


def pruner() -> optuna.pruners.BasePruner:
    """The median pruner at `PRUNING_EPOCHS` steps (`make_objective`)."""
    return optuna.pruners.MedianPruner(n_startup_trials=PRUNER_STARTUP_TRIALS)


def run_worker(job: WorkerJob) -> None:
    """Run `job.trials` trials of the shared study (in this process or a spawned one)."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    experiment = load_experiment(job.experiment_file)
    assert experiment.tuning is not None
    tracking.configure(job.tracking_uri)
    mlflow.set_experiment(experiment_id=job.mlflow_experiment_id)
    study = optuna.load_study(
        study_name=job.study_name,
        storage=open_storage(job.storage),
        sampler=optuna.samplers.TPESampler(seed=job.sampler_seed),
        pruner=pruner(),
    )
    objective = _tracked(make_objective(experiment, Path(job.features)), experiment.tuning.metric)
    resumed = mlflow.active_run() is None
    if resumed:  # a spawned worker: its trials nest under the invocation's parent run
        mlflow.start_run(run_id=job.parent_run_id)
    try:
        study.optimize(
            objective,
            n_trials=job.trials,
            catch=TRIAL_ERRORS,
            show_progress_bar=job.show_progress,
        )
    finally:
        if resumed:
            mlflow.end_run()


def _shares(trials: int, workers: int) -> list[int]:
    """Trials per worker, summing to `trials` (workers with none are not started)."""
    shares = [trials // workers + (i < trials % workers) for i in range(workers)]
    return [share for share in shares if share > 0]


def _finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def _watch(processes: list[Any], study: optuna.Study, start: int, total: int, quiet: bool) -> None:
    """Wait for the workers, with one bar of the trials finished across all of them."""
    with tqdm(total=total, desc="trials", unit="trial", disable=quiet) as bar:
        while any(process.is_alive() for process in processes):
            bar.update(min(_finished(study) - start, total) - bar.n)
            time.sleep(0.5)
        bar.update(min(_finished(study) - start, total) - bar.n)
    failed = [process.exitcode for process in processes if process.exitcode != 0]
    if failed:
        raise TuningError(f"{len(failed)} tuning worker(s) failed (exit codes {failed})")


def write_tuned_file(
    source: Path, experiment: Experiment, best_params: dict[str, Any], out: Path | None = None
) -> Path:
    """`<name>-tuned.yaml` beside the source: the source's text values, best params merged.

    The source's own mapping is reused (not the validated model) so relative paths stay
    relative; the tuning section is dropped: the file describes one model to train.
    """
    values = read_yaml(source, "experiment file")
    values["name"] = f"{experiment.name}-tuned"
    values["params"] = {**(values.get("params") or {}), **best_params}
    values.pop("tuning", None)
    values["description"] = (
        f"{experiment.name} with the best parameters of its Optuna study "
        f"({experiment.tuning.metric if experiment.tuning else 'validation'} on the validation "
        "window)"
    )
    path = out if out is not None else source.with_name(f"{experiment.name}-tuned.yaml")
    path.write_text(yaml.safe_dump(values, sort_keys=False, allow_unicode=True), "utf-8")
    load_experiment(path)  # the written file must train as it is
    return path


def tune(
    experiment_file: Path,
    trials: int | None = None,
    workers: int = 1,
    storage: str | None = None,
    features: Path | None = None,
    study_name: str | None = None,
    out: Path | None = None,
    quiet: bool = False,
    report: Callable[[str], None] | None = None,
) -> TuneOutcome:
    """Run (or continue) the experiment's study and write the tuned experiment file.

    Args:
        experiment_file: an experiment YAML with a `tuning` section.
        trials: trials to run now (default the file's `tuning.n_trials`).
        workers: processes sharing the study through its storage.
        storage: study storage (see `storage_url`).
        features: feature set folder (holding `validation/`); default the experiment's.
        study_name: default `<experiment name>-<data fingerprint[:12]>`: new data, new study.
        out: where to write the tuned file (default beside the experiment file).
        quiet: no progress bar.
        report: called with one line per step.

    Raises:
        TuningError: no tuning section, no validation window, or a worker failed.
    """
    say = report if report is not None else (lambda message: None)
    experiment_file = Path(experiment_file)
    experiment = load_experiment(experiment_file)
    if experiment.tuning is None:
        raise TuningError(f"{experiment_file}: no `tuning` section to search")
    if workers < 1:
        raise TuningError(f"workers: expected at least 1, got {workers}")
    trials = trials if trials is not None else experiment.tuning.n_trials
    if trials < 1:
        raise TuningError(f"trials: expected at least 1, got {trials}")
    check_space(experiment)
    root = Path(features) if features is not None else experiment.features.folder
    validation = window_path(root, VALIDATION_WINDOW)
    if not (validation / MANIFEST_FILE).is_file():
        raise TuningError(
            f"no validation window at {validation}: build the feature set first "
            f"(recsys features --data {experiment.features.data} --out {root})"
        )
    fingerprint = str(read_manifest(validation).get("data_fingerprint") or "nodata")
    study_name = study_name or f"{experiment.name}-{fingerprint[:12]}"
    url = storage_url(storage, experiment.name)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=study_name,
        storage=open_storage(url),
        direction=experiment.tuning.direction,
        pruner=pruner(),
        load_if_exists=True,
    )
    start = _finished(study)
    say(f"study {study_name} ({_describe_storage(url)}): {start} trial(s) so far, {trials} to run")

    uri = tracking.configure()
    mlflow_experiment = tracking.ensure_experiment(tracking.TUNING_EXPERIMENT)
    tags = {
        tracking.KIND_TAG: "tune",
        record.EXPERIMENT_TAG: experiment.name,
        "recsys.model": experiment.model,
        "optuna.study": study_name,
    }
    with mlflow.start_run(
        experiment_id=mlflow_experiment, run_name=f"tune-{study_name}", tags=tags
    ) as parent:
        mlflow.log_params(
            {
                "study": study_name,
                "storage": _describe_storage(url),
                "trials": trials,
                "workers": workers,
                "metric": experiment.tuning.metric,
                "direction": experiment.tuning.direction,
                **dict(tracking.flatten(experiment.tuning.model_dump()["space"], "space.")),
            }
        )
        shares = _shares(trials, workers)
        jobs = [
            WorkerJob(
                experiment_file=str(experiment_file.resolve()),
                features=str(root),
                storage=url,
                study_name=study_name,
                trials=share,
                # Seeded from the study's progress too, so a resumed study (or a second
                # worker) does not replay the first invocation's random start.
                sampler_seed=int(
                    np.random.SeedSequence([experiment.tuning.seed, start, index]).generate_state(
                        1
                    )[0]
                ),
                tracking_uri=uri,
                mlflow_experiment_id=mlflow_experiment,
                parent_run_id=parent.info.run_id,
                show_progress=not quiet and len(shares) == 1,
            )
            for index, share in enumerate(shares)
        ]
        if len(jobs) == 1:
            run_worker(jobs[0])
        else:
            context = multiprocessing.get_context("spawn")
            processes = [context.Process(target=run_worker, args=(job,)) for job in jobs]
            for process in processes:
                process.start()
            _watch(processes, study, start, trials, quiet)

        total = _finished(study)
        completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not completed:
            raise TuningError(f"study {study_name}: no trial completed; see the log for errors")
        best = study.best_trial
        tuned = write_tuned_file(experiment_file, experiment, best.params, out)
        mlflow.log_metrics({"best_value": float(best.value), "trials_total": float(total)})
        mlflow.log_params({f"best.{name}": value for name, value in best.params.items()})
        mlflow.log_artifact(str(tuned), "tuned")
    say(f"best {experiment.tuning.metric} {best.value:.4f} with {best.params}; wrote {tuned}")
    return TuneOutcome(
        study_name=study_name,
        storage=_describe_storage(url),
        trials_total=total,
        trials_run=total - start,
        best_value=float(best.value),
        best_params=dict(best.params),
        tuned_file=tuned,
        parent_run_id=parent.info.run_id,
    )
