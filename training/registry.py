"""Promotion in the MLflow model registry, with aliases (`challenger`, `champion`).

Every new version becomes `challenger`. A version becomes `champion` only on evidence from
its own training run, never by hand-waving:

* it never recommended an ineligible offer (`ineligible_rate@k` is 0 at every k logged);
* if a champion exists and was judged on the same metric and the same holdout (same data
  fingerprint and split dates), the candidate's figure beats the champion's by more than the
  margin;
* if there is no champion yet (or, on request, the champion's holdout is obsolete), the
  candidate's figure beats by more than the margin each baseline named in the run's
  `promotion.must_beat` (the incumbent engine by default), measured in the same run.

The figure is the run's `promotion.metric`: NDCG@10 of the evaluation (the default), or
`replay`, the applications per 1,000 served lists of a closed-loop replay of the model
against each baseline (`training.replay.replay_gate`): the platform's objective measured
where the data is simulated.

A refusal is a normal outcome, not an error: the decision and its reason are returned, and
written as tags on the model version (`promotion.decision`, `promotion.reason`).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from recsys import config
from training.record import FINGERPRINT_PARAM
from training.tracking import metric_key

logger = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
METRIC_PARAM = "promotion.metric"
REPLAY_METRIC = "replay_applications_per_1000_lists"
# promotion.metric -> (the run's metric key, how the reasons name it)
PROMOTION_METRICS = {
    "ndcg@10": (metric_key("ndcg@10"), "NDCG@10"),
    "replay": (REPLAY_METRIC, "replayed applications per 1,000 lists"),
}
DEFAULT_METRIC = "ndcg@10"  # runs from before `promotion.metric` were judged on it
SPLIT_PREFIX = "split."
MARGIN_PARAM = "promotion.margin"
MUST_BEAT_PARAM = "promotion.must_beat"
_INELIGIBLE = re.compile(r"^ineligible_rate_at_\d+$")


class RegistryError(ValueError):
    """The registry cannot answer: no such model or version, or a run without its evidence."""


@dataclass(frozen=True)
class Decision:
    """The outcome of a promotion attempt."""

    promoted: bool
    version: str
    reason: str
    previous_champion: str | None = None

    def message(self, name: str | None = None) -> str:
        name = name or config.REGISTERED_MODEL_NAME
        verdict = "promoted to champion" if self.promoted else "not promoted"
        return f"{name} version {self.version}: {verdict}: {self.reason}"


@dataclass(frozen=True)
class Evidence:
    """What a version's training run says about it."""

    version: str
    value: float  # the figure of `metric`
    ineligible: dict[str, float]
    fingerprint: str | None
    split: dict[str, str]
    must_beat: tuple[str, ...]
    baselines: dict[str, float]
    margin: float | None
    metric: str = DEFAULT_METRIC

    @property
    def label(self) -> str:
        return PROMOTION_METRICS[self.metric][1]


def _evidence(client: MlflowClient, version: ModelVersion) -> Evidence:
    if not version.run_id:
        raise RegistryError(f"version {version.version} has no training run to judge it by")
    run = client.get_run(version.run_id)
    metrics, params = run.data.metrics, run.data.params
    metric = params.get(METRIC_PARAM) or DEFAULT_METRIC
    if metric not in PROMOTION_METRICS:
        raise RegistryError(f"version {version.version}: unknown {METRIC_PARAM} {metric!r}")
    key = PROMOTION_METRICS[metric][0]
    if key not in metrics:
        raise RegistryError(f"version {version.version}: run {run.info.run_id} has no {key}")
    must_beat = tuple(name for name in params.get(MUST_BEAT_PARAM, "").split(",") if name)
    baselines = {
        name: metrics[f"baseline.{name}.{key}"]
        for name in must_beat
        if f"baseline.{name}.{key}" in metrics
    }
    margin = params.get(MARGIN_PARAM)
    return Evidence(
        version=str(version.version),
        value=metrics[key],
        ineligible={name: value for name, value in metrics.items() if _INELIGIBLE.match(name)},
        fingerprint=params.get(FINGERPRINT_PARAM),
        split={name: value for name, value in params.items() if name.startswith(SPLIT_PREFIX)},
        must_beat=must_beat,
        baselines=baselines,
        margin=float(margin) if margin is not None else None,
        metric=metric,
    )


def _alias_version(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST" or "not found" in str(error).lower():
            return None
        raise


def mark_challenger(version: str, name: str | None = None) -> None:
    """Point the `challenger` alias at a newly registered version."""
    name = name or config.REGISTERED_MODEL_NAME
    MlflowClient().set_registered_model_alias(name, CHALLENGER, str(version))


def _against_baselines(candidate: Evidence, margin: float) -> tuple[bool, str]:
    label = candidate.label
    if not candidate.must_beat:
        return False, "the run names no baseline to beat (promotion.must_beat is empty)"
    missing = [name for name in candidate.must_beat if name not in candidate.baselines]
    if missing:
        return False, (
            f"the run has no {label} for baseline(s) {missing}: "
            "list them in the experiment's evaluation.baselines"
        )
    for name, value in candidate.baselines.items():
        if not candidate.value > value + margin:
            return False, (
                f"{label} {candidate.value:.4f} does not beat baseline {name} "
                f"({value:.4f}) by more than {margin}"
            )
    beaten = ", ".join(f"{name} {value:.4f}" for name, value in candidate.baselines.items())
    return True, f"{label} {candidate.value:.4f} beats {beaten} by more than {margin}"


def judge(
    candidate: Evidence, champion: Evidence | None, margin: float, new_holdout: bool
) -> tuple[bool, str]:
    """(promote?, why) from the evidence alone; pure, so the rules are testable."""
    if not candidate.ineligible:
        return False, "the run logged no ineligible_rate@k: eligibility was not audited"
    unsafe = {name: value for name, value in candidate.ineligible.items() if value != 0}
    if unsafe:
        return False, f"it recommended ineligible offers ({unsafe})"
    if champion is None:
        ok, why = _against_baselines(candidate, margin)
        return ok, f"first champion: {why}"
    if champion.version == candidate.version:
        return False, "it is already the champion"
    same_holdout = (
        champion.fingerprint == candidate.fingerprint
        and champion.split == candidate.split
        and champion.metric == candidate.metric
    )
    if not same_holdout:
        if new_holdout:
            ok, why = _against_baselines(candidate, margin)
            return ok, f"champion v{champion.version} was judged on other data; {why}"
        return False, (
            f"champion v{champion.version} was judged on another holdout or metric (data "
            f"fingerprint {champion.fingerprint} vs {candidate.fingerprint}, other split dates, "
            f"or {champion.label} vs {candidate.label}): the figures are not comparable; pass "
            "--new-holdout to judge against the baselines"
        )
    label = candidate.label
    if candidate.value > champion.value + margin:
        return True, (
            f"{label} {candidate.value:.4f} beats champion v{champion.version} "
            f"({champion.value:.4f}) by more than {margin}"
        )
    return False, (
        f"{label} {candidate.value:.4f} does not beat champion v{champion.version} "
        f"({champion.value:.4f}) by more than {margin}"
    )


def promote(
    version: str | int | None = None,
    margin: float | None = None,
    name: str | None = None,
    new_holdout: bool = False,
) -> Decision:
    """Judge a version (default: the `challenger`) and make it `champion` if it earns it.

    Args:
        version: the version to judge; default the one the `challenger` alias points at.
        margin: gain of the promotion metric required; default the run's
            `promotion.margin` (else 0).
        name: registered model name (default `recsys.config.REGISTERED_MODEL_NAME`).
        new_holdout: when the champion was evaluated on other data, judge the candidate
            against its run's baselines (as a first champion) instead of refusing.

    Raises:
        RegistryError: no such model or version, or a run without the metrics to judge.
    """
    name = name or config.REGISTERED_MODEL_NAME
    client = MlflowClient()
    if version is None:
        chosen = _alias_version(client, name, CHALLENGER)
        if chosen is None:
            raise RegistryError(f"{name} has no {CHALLENGER!r} version: train a model first")
    else:
        try:
            chosen = client.get_model_version(name, str(version))
        except MlflowException as error:
            raise RegistryError(f"{name} has no version {version}: {error.message}") from None
    candidate = _evidence(client, chosen)
    current = _alias_version(client, name, CHAMPION)
    champion = _evidence(client, current) if current is not None else None
    if margin is None:
        margin = candidate.margin if candidate.margin is not None else 0.0
    if margin < 0:
        raise RegistryError(f"margin: expected >= 0, got {margin}")
    promoted, reason = judge(candidate, champion, margin, new_holdout)
    previous = champion.version if champion is not None else None
    if promoted:
        client.set_registered_model_alias(name, CHAMPION, candidate.version)
        logger.info("%s v%s is champion (was %s)", name, candidate.version, previous)
    client.set_model_version_tag(
        name, candidate.version, "promotion.decision", "promoted" if promoted else "refused"
    )
    client.set_model_version_tag(name, candidate.version, "promotion.reason", reason[:5000])
    return Decision(promoted, candidate.version, reason, previous)
