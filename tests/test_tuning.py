"""Optuna tuning: the search space, the tuned file, a resumable study, workers on PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import mlflow
import numpy as np
import optuna
import pytest
import yaml
from optuna.pruners import ThresholdPruner
from optuna.trial import TrialState
from typer.testing import CliRunner

from recsys.evaluation import evaluate
from recsys.featureset import VALIDATION_WINDOW, load_feature_set
from recsys.models import create_model
from training import tracking
from training.cli import app
from training.experiment import SearchDimension, load_experiment
from training.tuning import (
    TRIAL_ERRORS,
    TuningError,
    _shares,
    make_objective,
    open_storage,
    storage_url,
    suggest,
    tune,
    write_tuned_file,
)

pytest_plugins = ["tests.training_fixtures"]

SPACE = {
    "learning_rate": {"type": "float", "low": 0.01, "high": 0.1, "log": True},
    "epochs": {"type": "int", "low": 2, "high": 6, "step": 2},
    "loss": {"type": "categorical", "choices": ["warp", "bpr"]},
}


def test_suggestions_stay_in_the_space() -> None:
    space = {name: SearchDimension(**values) for name, values in SPACE.items()}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(30):
        trial = study.ask()
        values = {name: suggest(trial, name, dimension) for name, dimension in space.items()}
        study.tell(trial, 0.0)
        assert 0.01 <= values["learning_rate"] <= 0.1
        assert values["epochs"] in (2, 4, 6)
        assert values["loss"] in ("warp", "bpr")
    seen = {trial.params["loss"] for trial in study.trials}
    assert seen == {"warp", "bpr"}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"type": "float", "low": 0.0, "high": 1.0, "log": True}, "log scale needs low > 0"),
        ({"type": "int", "low": 1.5, "high": 3}, "must be integers"),
        ({"type": "categorical"}, "non-empty `choices`"),
        ({"type": "float", "low": 1.0}, "give `low` and `high`"),
    ],
)
def test_bad_dimensions_are_refused(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SearchDimension(**values)


def test_trials_are_shared_between_workers() -> None:
    assert _shares(5, 2) == [3, 2]
    assert _shares(4, 4) == [1, 1, 1, 1]
    assert _shares(2, 3) == [1, 1]  # no idle worker is started


def test_storage_choice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPTUNA_STORAGE", raising=False)
    assert storage_url(None, "lightfm").endswith("optuna/lightfm.journal")
    monkeypatch.setenv("OPTUNA_STORAGE", "postgresql://db/optuna")
    assert storage_url(None, "lightfm") == "postgresql://db/optuna"
    assert storage_url("journal.log", "lightfm") == "journal.log"
    journal = tmp_path / "deep" / "study.journal"
    storage = open_storage(str(journal))
    optuna.create_study(study_name="s", storage=storage).optimize(lambda t: 1.0, n_trials=1)
    reopened = optuna.load_study(study_name="s", storage=open_storage(f"journal:{journal}"))
    assert len(reopened.trials) == 1


def test_tuned_file_keeps_the_source_and_trains_as_is(tmp_path: Path) -> None:
    source = tmp_path / "lightfm.yaml"
    source.write_text(
        yaml.safe_dump(
            {
                "name": "lightfm",
                "model": "lightfm",
                "params": {"epochs": 3, "embedding_size": 8},
                "features": {"data": "data/simulated"},
                "tuning": {"space": {"epochs": SPACE["epochs"]}},
            }
        )
    )
    experiment = load_experiment(source)
    tuned = write_tuned_file(source, experiment, {"epochs": 6, "learning_rate": 0.02})
    assert tuned == tmp_path / "lightfm-tuned.yaml"
    values = yaml.safe_load(tuned.read_text())
    assert values["params"] == {"epochs": 6, "embedding_size": 8, "learning_rate": 0.02}
    assert values["features"] == {"data": "data/simulated"}  # still relative
    assert "tuning" not in values
    assert load_experiment(tuned).name == "lightfm-tuned"


def test_cli_refuses_an_experiment_without_tuning(tmp_path: Path) -> None:
    path = tmp_path / "plain.yaml"
    path.write_text("name: plain\nmodel: popularity\n")
    answer = CliRunner().invoke(app, ["tune", "--config", str(path), "--trials", "1"])
    assert answer.exit_code == 1
    assert "no `tuning` section" in answer.output and "Traceback" not in answer.output


def test_tuning_needs_the_validation_window(
    tmp_path: Path, make_experiment: Callable[..., Path]
) -> None:
    path = _tuning_experiment(make_experiment, tmp_path / "no-features")
    with pytest.raises(TuningError, match=r"no validation window at .*recsys features --data"):
        tune(path, trials=1, storage=str(tmp_path / "j.journal"), quiet=True)


def _tuning_experiment(make: Callable[..., Path], features: Path) -> Path:
    return make(
        features,
        params={"embedding_size": 4, "epochs": 2},
        tuning={"space": {"learning_rate": SPACE["learning_rate"]}, "n_trials": 2, "seed": 3},
    )


def _trial_runs(parent_run_id: str) -> list[mlflow.entities.Run]:
    return mlflow.search_runs(
        experiment_names=[tracking.TUNING_EXPERIMENT],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}'",
        output_format="list",
    )


@pytest.mark.slow
def test_a_study_resumes_where_it_stopped(
    mlflow_store: str,
    tiny_features: Path,
    make_experiment: Callable[..., Path],
    tmp_path: Path,
) -> None:
    path = _tuning_experiment(make_experiment, tiny_features)
    journal = str(tmp_path / "study.journal")
    first = tune(path, trials=2, storage=journal, quiet=True)
    assert (first.trials_total, first.trials_run) == (2, 2)
    second = tune(path, trials=1, storage=journal, quiet=True)
    assert (second.trials_total, second.trials_run) == (3, 1)
    assert second.study_name == first.study_name

    study = optuna.load_study(study_name=first.study_name, storage=open_storage(journal))
    rates = [trial.params["learning_rate"] for trial in study.trials]
    assert len(set(rates)) == 3, "a resumed study must not replay the first proposals"
    assert second.best_value == max(trial.value for trial in study.trials)

    children = _trial_runs(first.parent_run_id)
    assert len(children) == 2
    assert all("ndcg_at_10" in run.data.metrics for run in children)
    # A trial's figure is the validation window's: refitting its parameters there gives it.
    run = children[0]
    validation = load_feature_set(tiny_features, VALIDATION_WINDOW)
    rate = float(run.data.params["learning_rate"])
    model = create_model("lightfm", {"embedding_size": 4, "epochs": 2, "learning_rate": rate})
    model.train(validation.training_data())
    expected = evaluate(validation, {"m": model}).models["m"]
    assert run.data.metrics["ndcg_at_10"] == pytest.approx(expected["ndcg@10"])
    assert run.data.metrics["users_evaluated"] == expected["users_evaluated"]
    assert len(_trial_runs(second.parent_run_id)) == 1
    tuned = load_experiment(second.tuned_file)
    assert tuned.params["learning_rate"] == pytest.approx(second.best_params["learning_rate"])


@pytest.mark.slow
@pytest.mark.postgres
def test_two_workers_share_a_study_on_postgres(
    mlflow_store: str,
    postgres_database: str,
    tiny_features: Path,
    make_experiment: Callable[..., Path],
) -> None:
    path = _tuning_experiment(make_experiment, tiny_features)
    outcome = tune(path, trials=4, workers=2, storage=postgres_database, quiet=True)
    assert (outcome.trials_total, outcome.trials_run) == (4, 4)
    study = optuna.load_study(
        study_name=outcome.study_name, storage=open_storage(postgres_database)
    )
    assert [trial.state for trial in study.trials] == [optuna.trial.TrialState.COMPLETE] * 4
    assert len(_trial_runs(outcome.parent_run_id)) == 4


# --- Pruning on epochs, configuration errors ---------------------------------------------------


def test_a_lightfm_checkpoint_is_the_model_trained_that_far(tiny_features: Path) -> None:
    """At a checkpoint the model scores as one trained for that many epochs (same seed)."""
    validation = load_feature_set(tiny_features, VALIDATION_WINDOW)
    data = validation.training_data()
    users, offers = data.users.take(np.arange(min(20, len(data.users)))), data.offers
    params = {"embedding_size": 4, "learning_rate": 0.05, "seed": 5}
    longer = create_model("lightfm", {**params, "epochs": 7})
    seen: dict[int, np.ndarray] = {}
    longer.train(
        data, checkpoint=lambda epochs: seen.setdefault(epochs, longer.score(users, offers))
    )
    assert list(seen) == [5]  # every 5 epochs, before the last
    shorter = create_model("lightfm", {**params, "epochs": 5})
    shorter.train(data)
    np.testing.assert_allclose(seen[5], shorter.score(users, offers), rtol=1e-6, atol=1e-6)
    assert not np.allclose(longer.score(users, offers), seen[5])


def test_trials_are_pruned_at_epoch_checkpoints(
    tiny_features: Path, make_experiment: Callable[..., Path]
) -> None:
    path = make_experiment(
        tiny_features,
        params={"embedding_size": 4, "epochs": 12},
        tuning={"space": {"learning_rate": SPACE["learning_rate"]}, "n_trials": 1},
    )
    objective = make_objective(load_experiment(path), tiny_features)
    # Any figure below 2 is pruned: NDCG never reaches it.
    study = optuna.create_study(direction="maximize", pruner=ThresholdPruner(lower=2.0))
    study.optimize(objective, n_trials=1, catch=TRIAL_ERRORS)
    trial = study.trials[0]
    assert trial.state == TrialState.PRUNED
    assert list(trial.intermediate_values) == [5] and 0 <= trial.intermediate_values[5] <= 1


def test_a_configuration_error_fails_the_study(
    tmp_path: Path, tiny_features: Path, make_experiment: Callable[..., Path]
) -> None:
    """A space the model refuses stops tuning with its reason, not as failed trials."""
    corner = make_experiment(
        tiny_features,
        params={"embedding_size": 4, "epochs": 2},
        tuning={"space": {"embedding_size": {"type": "int", "low": 0, "high": 4}}},
    )
    journal = tmp_path / "study.journal"
    with pytest.raises(TuningError, match=r"configuration it refuses .*embedding_size"):
        tune(corner, trials=2, storage=str(journal), quiet=True)
    assert not journal.exists()  # refused before the study started

    # A refused value met by a trial (here forced) ends the study at that trial.
    path = make_experiment(
        tiny_features,
        name="lightfm-loss",
        params={"embedding_size": 4, "epochs": 2},
        tuning={"space": {"loss": {"type": "categorical", "choices": ["warp", "bpr"]}}},
    )
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial({"loss": "nonsense"}, skip_if_exists=False)
    experiment = load_experiment(path)
    experiment.tuning.space["loss"].choices.append("nonsense")
    with pytest.raises(TuningError, match="loss"):
        study.optimize(make_objective(experiment, tiny_features), n_trials=3, catch=TRIAL_ERRORS)
    assert [trial.state for trial in study.trials] == [TrialState.FAIL]
