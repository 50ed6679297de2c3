"""Fit several models on one feature set and evaluate them side by side.

This is what `recsys evaluate` runs: every model on the same split and candidate sets, the
oracle added on simulated data, one table printed for data scientists and one JSON written
for scripts and reports.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from recsys.evaluation import DEFAULT_KS, EvaluationResult, evaluate
from recsys.featureset import FeatureSet
from recsys.models import create_model
from recsys.models.base import Recommender
from recsys.policy import ListPolicy

logger = logging.getLogger(__name__)

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # implicit warns (and slows) without it

HEADLINE_METRICS: tuple[str, ...] = (
    "ndcg@10",
    "recall@10",
    "precision@10",
    "map@10",
    "hit_rate@10",
    "ndcg@5",
    "ndcg@20",
    "recall@20",
    "coverage@10",
    "new_offer_share@10",
    "mean_distance_km@10",
    "gini_programme@10",
    "top_publisher_share@10",
    "ineligible_rate@10",
    "ips@10",
    "snips@10",
    "ips_coverage@10",
)
SEGMENT_METRIC = "ndcg@10"


def fit_models(
    feature_set: FeatureSet,
    model_names: Sequence[str],
    params: dict[str, dict[str, Any]] | None = None,
    report: Callable[[str], None] | None = None,
) -> tuple[dict[str, Recommender], dict[str, float]]:
    """Fit each named model on the feature set's training data; returns models and fit seconds."""
    data = feature_set.training_data()
    models: dict[str, Recommender] = {}
    seconds: dict[str, float] = {}
    for name in model_names:
        model = create_model(name, (params or {}).get(name))
        started = time.perf_counter()
        model.train(data)
        seconds[name] = time.perf_counter() - started
        models[name] = model
        if report is not None:
            report(f"trained {name} in {seconds[name]:.1f} s")
    return models, seconds


def compare(
    feature_set: FeatureSet,
    model_names: Sequence[str],
    params: dict[str, dict[str, Any]] | None = None,
    truth_dir: Path | None = None,
    ks: tuple[int, ...] = DEFAULT_KS,
    report: Callable[[str], None] | None = None,
    policy: ListPolicy | None = ListPolicy(),  # noqa: B008 (frozen: shared safely)
    at: int | None = None,
    estimate_applications: bool = True,
) -> EvaluationResult:
    """Fit and evaluate every model on the same split; fit and scoring times go in `data`.

    `policy`, `at` and `estimate_applications` are `recsys.evaluation.evaluate`'s: the
    served lists by default, with the counterfactual estimates of applications.
    """
    models, fit_seconds = fit_models(feature_set, model_names, params, report)
    started = time.perf_counter()
    result = evaluate(
        feature_set,
        models,
        ks=ks,
        truth_dir=truth_dir,
        policy=policy,
        at=at,
        estimate_applications=estimate_applications,
    )
    result.data["fit_seconds"] = fit_seconds
    result.data["params"] = {name: model.config.to_dict() for name, model in models.items()}
    result.data["evaluation_seconds"] = time.perf_counter() - started
    return result


def format_tables(result: EvaluationResult) -> str:
    """The models × metrics table, then the segments × models table for NDCG@10, and what
    the redirect segment is made of (`recsys.redirects`)."""
    pd.set_option("display.width", 200)
    overall = result.table(HEADLINE_METRICS).round(4)
    segments = result.segment_table(SEGMENT_METRIC).round(4)
    logged = result.data.get("counterfactual") or {}
    estimates = (
        f"\n\nips@10, snips@10: applications per 1,000 logged lists estimated for each "
        f"model's lists from the {logged['lists']:,} lists the window's logs served "
        f"({logged['logged_applications_per_1000']:.1f} per 1,000 as logged); "
        "ips_coverage@10: share of the lists' examination the logs cover"
        if logged.get("lists")
        else ""
    )
    text = (
        f"{overall.to_string()}{estimates}\n\n{SEGMENT_METRIC} by segment (users = users with "
        f"a relevant apply in the segment):\n{segments.to_string()}"
    )
    redirect = result.data.get("redirect")
    if redirect and redirect["people"]:
        text += (
            f"\n\nredirect segment: {redirect['people']} people ({redirect['refused']} refused, "
            f"{redirect['aged_out']} aged out of a programme), {redirect['next_applies']} next "
            f"applies, {redirect['next_in_other_programme_share']:.0%} of them in another "
            "programme; redirect = the plain list, redirect:after = the list continued in the "
            "other programmes they may join (/rank with after)"
        )
    return text
