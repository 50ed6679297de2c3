"""Promotion rules and the registry: pure rules, a SQLite store, a real server on PostgreSQL."""

from __future__ import annotations

import contextlib
import typing
from collections.abc import Callable
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from recsys import config
from training import registry
from training.cli import app
from training.experiment import PromotionSection, load_experiment
from training.registry import CHALLENGER, CHAMPION, Evidence, judge

pytest_plugins = ["tests.training_fixtures"]

SAFE = {"ineligible_rate_at_5": 0.0, "ineligible_rate_at_10": 0.0, "ineligible_rate_at_20": 0.0}
SPLIT = {"split.cutoff": "2024-06-01", "split.test_end": "2024-07-01"}


def evidence(version: str, ndcg: float, **changes: object) -> Evidence:
    values: dict[str, object] = {
        "version": version,
        "value": ndcg,
        "ineligible": dict(SAFE),
        "fingerprint": "abc",
        "split": dict(SPLIT),
        "must_beat": ("incumbent",),
        "baselines": {"incumbent": 0.20},
        "margin": 0.0,
    }
    values.update(changes)
    return Evidence(**values)  # type: ignore[arg-type]


# --- The rules --------------------------------------------------------------------------------


def test_first_champion_must_beat_the_incumbent_by_the_margin() -> None:
    assert judge(evidence("1", 0.25), None, 0.0, False)[0]
    assert judge(evidence("1", 0.25), None, 0.04, False)[0]  # 0.25 > 0.20 + 0.04
    promoted, why = judge(evidence("1", 0.25), None, 0.05, False)  # 0.25 is not > 0.25
    assert not promoted and "does not beat baseline incumbent" in why
    promoted, why = judge(evidence("1", 0.20), None, 0.0, False)  # a tie is not a win
    assert not promoted


def test_every_listed_baseline_must_be_beaten() -> None:
    candidate = evidence(
        "1",
        0.25,
        must_beat=("incumbent", "incumbent_local"),
        baselines={"incumbent": 0.20, "incumbent_local": 0.26},
    )
    promoted, why = judge(candidate, None, 0.0, False)
    assert not promoted and "incumbent_local" in why


def test_a_missing_baseline_figure_refuses_with_the_fix() -> None:
    promoted, why = judge(evidence("1", 0.9, baselines={}), None, 0.0, False)
    assert not promoted and "evaluation.baselines" in why


def test_any_ineligible_recommendation_refuses() -> None:
    unsafe = evidence("2", 0.9, ineligible={**SAFE, "ineligible_rate_at_20": 0.001})
    promoted, why = judge(unsafe, evidence("1", 0.1), 0.0, False)
    assert not promoted and "ineligible" in why
    promoted, why = judge(evidence("2", 0.9, ineligible={}), None, 0.0, False)
    assert not promoted and "not audited" in why


def test_challenger_must_beat_the_champion_on_the_same_holdout() -> None:
    champion = evidence("1", 0.30)
    assert judge(evidence("2", 0.32), champion, 0.01, False)[0]  # 0.32 > 0.31
    promoted, why = judge(evidence("2", 0.32), champion, 0.02, False)  # 0.32 is not > 0.32
    assert not promoted and "does not beat champion v1" in why
    assert not judge(evidence("1", 0.30), champion, 0.0, False)[0]


def test_another_holdout_is_not_comparable_unless_asked() -> None:
    champion = evidence("1", 0.30)
    moved = evidence("2", 0.25, fingerprint="def")
    promoted, why = judge(moved, champion, 0.0, False)
    assert not promoted and "--new-holdout" in why
    other_split = evidence("2", 0.50, split={**SPLIT, "split.cutoff": "2024-05-01"})
    assert not judge(other_split, champion, 0.0, False)[0]
    # On request, the candidate is judged against its own run's baselines (0.25 > 0.20).
    assert judge(moved, champion, 0.0, True)[0]


def test_on_applications_the_replayed_figure_is_judged() -> None:
    """`promotion.metric: replay`: the same rules on the replayed applications per 1,000
    lists; a champion judged on another metric is not comparable."""
    replayed = {"metric": "replay", "baselines": {"incumbent": 95.1}}
    promoted, why = judge(evidence("1", 167.1, **replayed), None, 0.0, False)
    assert promoted
    assert why == (
        "first champion: replayed applications per 1,000 lists 167.1000 beats incumbent "
        "95.1000 by more than 0.0"
    )
    promoted, why = judge(evidence("1", 90.0, **replayed), None, 0.0, False)
    assert not promoted and "90.0000 does not beat baseline incumbent (95.1000)" in why
    champion = evidence("1", 128.5, **replayed)
    assert judge(evidence("2", 167.1, **replayed), champion, 30.0, False)[0]  # 167.1 > 158.5
    assert not judge(evidence("2", 167.1, **replayed), champion, 40.0, False)[0]
    on_ndcg = evidence("1", 0.30)
    promoted, why = judge(evidence("2", 167.1, **replayed), on_ndcg, 0.0, False)
    assert not promoted and "NDCG@10 vs replayed applications" in why
    assert judge(evidence("2", 167.1, **replayed), on_ndcg, 0.0, True)[0]


def test_every_promotion_metric_an_experiment_accepts_can_be_judged() -> None:
    accepted = typing.get_args(PromotionSection.model_fields["metric"].annotation)
    assert set(accepted) == set(registry.PROMOTION_METRICS)
    assert PromotionSection().metric == registry.DEFAULT_METRIC


# --- Against a SQLite store --------------------------------------------------------------------


def _register(name: str, ndcg: float, incumbent: float = 0.2, **params: str) -> str:
    """A training-like run with the evidence promotion reads, and a version pointing at it."""
    with mlflow.start_run() as run:
        mlflow.log_metrics({"ndcg_at_10": ndcg, "baseline.incumbent.ndcg_at_10": incumbent, **SAFE})
        mlflow.log_params(
            {
                "data.fingerprint": "abc",
                **SPLIT,
                "promotion.margin": "0.0",
                "promotion.must_beat": "incumbent",
                **params,
            }
        )
    client = MlflowClient()
    with contextlib.suppress(mlflow.exceptions.MlflowException):  # already registered
        client.create_registered_model(name)
    version = client.create_model_version(name, f"runs:/{run.info.run_id}/model", run.info.run_id)
    registry.mark_challenger(version.version, name)
    return str(version.version)


def _aliases(name: str) -> dict[str, str]:
    aliases = MlflowClient().get_registered_model(name).aliases
    return {alias: str(version) for alias, version in aliases.items()}


def test_promotion_moves_aliases_and_records_decisions(mlflow_store: str) -> None:
    name = "ranker-under-test"
    assert _register(name, 0.30) == "1"
    first = registry.promote(name=name)
    assert first.promoted and first.previous_champion is None
    assert _aliases(name) == {CHAMPION: "1", CHALLENGER: "1"}

    _register(name, 0.28)
    second = registry.promote(name=name)
    assert not second.promoted and "does not beat champion v1 (0.3000)" in second.reason
    assert _aliases(name) == {CHAMPION: "1", CHALLENGER: "2"}
    tags = MlflowClient().get_model_version(name, "2").tags
    assert tags["promotion.decision"] == "refused"

    _register(name, 0.35)
    # The margin of the command line wins over the run's: 0.35 is not > 0.30 + 0.1.
    assert not registry.promote(name=name, margin=0.1).promoted
    third = registry.promote("3", name=name, margin=0.01)
    assert third.promoted and third.previous_champion == "1"
    assert _aliases(name) == {CHAMPION: "3", CHALLENGER: "3"}
    assert MlflowClient().get_model_version(name, "3").tags["promotion.decision"] == "promoted"

    _register(name, 0.25, **{"data.fingerprint": "new-data"})
    assert not registry.promote(name=name).promoted
    assert registry.promote(name=name, new_holdout=True).promoted  # 0.25 > incumbent 0.2
    assert _aliases(name)[CHAMPION] == "4"


def test_a_run_judged_on_applications_is_read_by_its_metric(mlflow_store: str) -> None:
    name = "replayed-ranker"
    with mlflow.start_run() as run:
        mlflow.log_metrics(
            {
                "ndcg_at_10": 0.1,  # below the baseline's NDCG: not what is judged
                "baseline.incumbent.ndcg_at_10": 0.2,
                registry.REPLAY_METRIC: 167.1,
                f"baseline.incumbent.{registry.REPLAY_METRIC}": 95.1,
                **SAFE,
            }
        )
        mlflow.log_params(
            {
                "data.fingerprint": "abc",
                **SPLIT,
                "promotion.metric": "replay",
                "promotion.margin": "0.0",
                "promotion.must_beat": "incumbent",
            }
        )
    client = MlflowClient()
    client.create_registered_model(name)
    version = client.create_model_version(name, f"runs:/{run.info.run_id}/model", run.info.run_id)
    decision = registry.promote(version.version, name=name)
    assert decision.promoted, decision.reason
    assert "replayed applications per 1,000 lists 167.1000 beats incumbent 95.1000" in (
        decision.reason
    )


def test_unknown_model_or_version_is_a_registry_error(mlflow_store: str) -> None:
    with pytest.raises(registry.RegistryError, match="no 'challenger' version"):
        registry.promote(name="never-trained")
    _register("ranker-under-test", 0.3)
    with pytest.raises(registry.RegistryError, match="no version 9"):
        registry.promote("9", name="ranker-under-test")


def test_cli_promote_and_runs(mlflow_store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    refused = runner.invoke(app, ["promote"])
    assert refused.exit_code == 1
    assert "has no 'challenger' version" in refused.output
    assert "Traceback" not in refused.output

    monkeypatch.setattr(config, "REGISTERED_MODEL_NAME", "cli-ranker")
    _register("cli-ranker", 0.1, incumbent=0.2)
    answer = runner.invoke(app, ["promote"])
    assert answer.exit_code == 0, answer.output
    assert "version 1: not promoted: first champion: NDCG@10 0.1000 does not beat" in answer.output
    listing = runner.invoke(app, ["runs"])
    assert listing.exit_code == 0, listing.output
    assert "no training run yet" in listing.output  # the synthetic run is not a training run
    assert "challenger" in listing.output and "refused" in listing.output


# --- End to end: train, register, promote ----------------------------------------------------


def _train_and_promote(experiment_file: Path) -> None:
    from training.jobs import train_experiment

    experiment = load_experiment(experiment_file)
    outcome = train_experiment(experiment, promote=True, quiet=True)
    assert outcome.version == "1" and outcome.decision is not None
    beats = outcome.metrics["ndcg@10"] > outcome.evaluation.models["incumbent"]["ndcg@10"]
    assert outcome.decision.promoted == beats
    aliases = _aliases(config.REGISTERED_MODEL_NAME)
    assert aliases[CHALLENGER] == "1"
    assert aliases.get(CHAMPION) == ("1" if beats else None)

    # The registered model loads by alias and ranks offers of the snapshot.
    model = mlflow.pyfunc.load_model(f"models:/{config.REGISTERED_MODEL_NAME}@{CHALLENGER}")
    answer = model.predict(pd.DataFrame({"age": [20.0], "lat": [48.85], "lon": [2.35], "k": [3]}))
    assert len(answer["offerIds"][0]) <= 3
    assert registry.promote("1").reason in (
        "it is already the champion",
        outcome.decision.reason,
    )


@pytest.mark.slow
def test_train_register_promote_on_sqlite(
    mlflow_store: str, tiny_features: Path, make_experiment: Callable[..., Path]
) -> None:
    _train_and_promote(make_experiment(tiny_features))
    artifacts = Path(mlflow_store.removeprefix("sqlite:///")).parent / "mlartifacts"
    assert any(artifacts.rglob("MLmodel")), "artifacts must sit next to the database"


@pytest.mark.slow
@pytest.mark.postgres
def test_train_register_promote_on_a_server_backed_by_postgres(
    mlflow_server: str, tiny_features: Path, tmp_path: Path, make_experiment: Callable[..., Path]
) -> None:
    _train_and_promote(make_experiment(tiny_features))
    served = tmp_path / "served-artifacts"
    assert any(served.rglob("MLmodel")), "the server must hold the artifacts"


@pytest.mark.slow
def test_train_judged_on_replayed_applications(
    mlflow_store: str, tiny_features: Path, make_experiment: Callable[..., Path]
) -> None:
    """`promotion.metric: replay`: the run logs the model's and the baseline's replayed
    applications per 1,000 lists, and the promotion follows them."""
    from training.jobs import train_experiment

    experiment = load_experiment(
        make_experiment(
            tiny_features,
            name="popularity-replayed",
            model="popularity",
            params={},
            promotion={"metric": "replay", "replay_weeks": 2, "must_beat": ["incumbent"]},
        )
    )
    outcome = train_experiment(experiment, promote=True, quiet=True)
    run = MlflowClient().get_run(outcome.run_id)
    assert run.data.params["promotion.metric"] == "replay"
    mine = run.data.metrics[registry.REPLAY_METRIC]
    theirs = run.data.metrics[f"baseline.incumbent.{registry.REPLAY_METRIC}"]
    assert mine > 0 and theirs > 0
    assert outcome.decision is not None
    assert outcome.decision.promoted == (mine > theirs)
    assert "replayed applications per 1,000 lists" in outcome.decision.reason
