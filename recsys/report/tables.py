"""The numbers of a report, read from an evaluation document (`EvaluationResult.to_json()`).

Pure functions over plain dicts, so the report, the notebooks and the tests share them and
none needs MLflow. A model row is compared with every other row of the same evaluation (the
baselines, and on simulated data the oracle); a delta is relative: (model − ref) / ref.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from recsys import taxonomy

ORACLE = "oracle"
INCUMBENT = "incumbent"
INCUMBENT_LOCAL = "incumbent_local"
BASELINE_ORDER: tuple[str, ...] = ("popularity", "itemknn", INCUMBENT, INCUMBENT_LOCAL)
BASELINE_SUFFIX = "_baseline"  # a baseline row renamed because the trained model has its name
ACCURACY_METRICS: tuple[str, ...] = ("ndcg", "recall", "precision", "map", "hit_rate")
METRIC_LABELS: dict[str, str] = {
    "ndcg": "NDCG",
    "recall": "Recall",
    "precision": "Precision",
    "map": "MAP",
    "hit_rate": "Hit rate",
    "coverage": "Catalog coverage",
    "new_offer_share": "New offers' share of slots",
    "mean_distance_km": "Mean distance (km)",
    "ineligible_rate": "Ineligible rate",
    "gini_programme": "Gini (programmes)",
    "gini_publisher": "Gini (publishers)",
    "top_publisher_share": "Top publisher's share",
}
MODEL_LABELS: dict[str, str] = {
    "popularity": "popularity",
    "itemknn": "item-kNN",
    INCUMBENT: "incumbent engine",
    INCUMBENT_LOCAL: "incumbent engine without remote override",
    ORACLE: "oracle (true utility)",
}
SEGMENT_LABELS: dict[str, str] = {
    "warm": "warm users (with history)",
    "cold": "cold users (profile, no history)",
    "cold_quiz_only": "cold users with a quiz",
    "anonymous": "anonymous visitors",
    "new_offers": "new offers",
    "redirect": "refused or aged out: plain list",
    "redirect:after": "refused or aged out: list continued in other programmes",
}
SEGMENT_GROUPS: tuple[tuple[str, str], ...] = (
    ("users", "Users by history"),
    ("offers", "Offers: new offers and programmes"),
    ("age", "Age bands"),
    ("region", "Regions"),
    ("other", "Other segments"),
)
BEYOND_ACCURACY: tuple[str, ...] = (
    "coverage",
    "new_offer_share",
    "mean_distance_km",
    "ineligible_rate",
    "gini_programme",
    "gini_publisher",
    "top_publisher_share",
)
SMALL_SEGMENT = 30  # fewer evaluated users than this: a difference is mostly noise


def base_name(row: str) -> str:
    """The model behind an evaluation row (`popularity_baseline` → `popularity`)."""
    return row.removesuffix(BASELINE_SUFFIX)


def is_reference(row: str) -> bool:
    """A baseline or the oracle: a point of comparison, not a candidate."""
    return base_name(row) in (*BASELINE_ORDER, ORACLE) or row.endswith(BASELINE_SUFFIX)


def model_label(row: str) -> str:
    """How a row is named in the report."""
    label = MODEL_LABELS.get(base_name(row), base_name(row))
    return f"{label} (baseline)" if row.endswith(BASELINE_SUFFIX) else label


def metric_label(metric: str) -> str:
    """`ndcg@10` → `NDCG@10`; `exposure.benevolat@10` → `Bénévolat@10`."""
    name, _, k = metric.partition("@")
    if name.startswith("exposure."):
        label = taxonomy.PROGRAMME_LABELS_FR.get(name.removeprefix("exposure."), name)
    else:
        label = METRIC_LABELS.get(name, name)
    return f"{label}@{k}" if k else label


def segment_group(segment: str) -> str:
    """Which chart a segment goes in: users, offers, age, region or other."""
    if segment in ("warm", "cold", "cold_quiz_only", "anonymous"):
        return "users"
    if segment == "new_offers" or segment.startswith("programme:"):
        return "offers"
    prefix = segment.partition(":")[0]
    return prefix if prefix in ("age", "region") else "other"


def segment_label(segment: str) -> str:
    """French programme labels, `age 18-20`, region names as they are."""
    if segment in SEGMENT_LABELS:
        return SEGMENT_LABELS[segment]
    kind, sep, value = segment.partition(":")
    if not sep:
        return segment
    if kind == "programme":
        return taxonomy.PROGRAMME_LABELS_FR.get(value, value)
    if kind == "age":
        return "age unknown" if value == "unknown" else f"age {value}"
    return value


def number(value: Any) -> float | None:
    """A finite float, or None for missing, NaN, infinite or non-numeric values."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def relative_delta(value: Any, reference: Any) -> float | None:
    """(value − reference) / reference; None when either is missing or the reference is 0."""
    value, reference = number(value), number(reference)
    if value is None or reference is None or reference == 0:
        return None
    return (value - reference) / abs(reference)


def candidate_name(evaluation: dict[str, Any], hint: str | None = None) -> str:
    """The trained model's row: `hint` if present, else the first row that is no reference.

    Raises:
        ValueError: the evaluation holds no model, or `hint` is not one of its rows.
    """
    models = list(evaluation.get("models", {}))
    if not models:
        raise ValueError("evaluation.models: no model in the evaluation")
    if hint:
        if hint not in models:
            raise ValueError(f"candidate: {hint!r} is not a model of the evaluation ({models})")
        return hint
    return next((row for row in models if not is_reference(row)), models[0])


def references(evaluation: dict[str, Any], candidate: str) -> list[str]:
    """Every other row: baselines in the usual order, then any other model, the oracle last."""
    rows = [row for row in evaluation["models"] if row != candidate]
    order = {name: position for position, name in enumerate(BASELINE_ORDER)}

    def rank(row: str) -> tuple[int, int]:
        if row == ORACLE:
            return (2, 0)
        return (0, order[base_name(row)]) if base_name(row) in order else (1, 0)

    return sorted(rows, key=rank)


def ks_of(evaluation: dict[str, Any]) -> list[int]:
    """The cut-offs the evaluation holds (from its `ndcg@k` keys)."""
    found = {
        int(name.partition("@")[2])
        for values in evaluation["models"].values()
        for name in values
        if name.startswith("ndcg@") and name.partition("@")[2].isdigit()
    }
    return sorted(found)


def value(evaluation: dict[str, Any], row: str, metric: str) -> float | None:
    """One overall metric of one row, None when absent or not finite."""
    return number(evaluation["models"].get(row, {}).get(metric))


def strongest_baseline(
    evaluation: dict[str, Any], candidate: str, metric: str = "ndcg@10"
) -> str | None:
    """The baseline with the best `metric` (the oracle is a ceiling, not a baseline)."""
    scored = [
        (value(evaluation, row, metric), row)
        for row in references(evaluation, candidate)
        if row != ORACLE and value(evaluation, row, metric) is not None
    ]
    return max(scored)[1] if scored else None


def headline_rows(
    evaluation: dict[str, Any], candidate: str, metrics: tuple[str, ...] = ACCURACY_METRICS
) -> list[dict[str, Any]]:
    """One row per metric and k: the model's value, each reference's value and the delta."""
    rows = []
    others = references(evaluation, candidate)
    for k in ks_of(evaluation):
        for name in metrics:
            metric = f"{name}@{k}"
            mine = value(evaluation, candidate, metric)
            if mine is None:
                continue
            rows.append(
                {
                    "metric": metric,
                    "label": metric_label(metric),
                    "k": k,
                    "value": mine,
                    "references": [
                        {
                            "row": row,
                            "value": value(evaluation, row, metric),
                            "delta": relative_delta(mine, value(evaluation, row, metric)),
                        }
                        for row in others
                    ],
                }
            )
    return rows


def beyond_accuracy_rows(
    evaluation: dict[str, Any], candidate: str, k: int = 10
) -> list[dict[str, Any]]:
    """Models (the candidate first) × coverage, new offers, distance, ineligible rate, Gini."""
    rows = []
    for row in [candidate, *references(evaluation, candidate)]:
        rows.append(
            {
                "row": row,
                "values": {name: value(evaluation, row, f"{name}@{k}") for name in BEYOND_ACCURACY},
            }
        )
    return rows


def segment_users(by_model: dict[str, dict[str, Any]], candidate: str) -> int:
    """Users evaluated in a segment (those with a relevant offer there)."""
    values = by_model.get(candidate) or next(iter(by_model.values()), {})
    return int(number(values.get("users_evaluated")) or 0)


def segment_rows(
    evaluation: dict[str, Any], candidate: str, metric: str = "ndcg@10"
) -> list[dict[str, Any]]:
    """Per segment: users, the model's value, every reference's, and the best baseline's delta."""
    rows = []
    others = references(evaluation, candidate)
    for segment, by_model in evaluation.get("segments", {}).items():
        mine = number(by_model.get(candidate, {}).get(metric))
        values = {row: number(by_model.get(row, {}).get(metric)) for row in others}
        baselines = [(v, row) for row, v in values.items() if row != ORACLE and v is not None]
        best_value, best = max(baselines) if baselines else (None, None)
        users = segment_users(by_model, candidate)
        rows.append(
            {
                "segment": segment,
                "label": segment_label(segment),
                "group": segment_group(segment),
                "users": users,
                "small": users < SMALL_SEGMENT,
                "value": mine,
                "references": values,
                "best_baseline": best,
                "best_value": best_value,
                "delta_best": relative_delta(mine, best_value),
                "delta_incumbent": relative_delta(mine, values.get(INCUMBENT)),
            }
        )
    return rows


def programme_exposure_rows(
    evaluation: dict[str, Any],
    candidate: str,
    dataset: dict[str, Any] | None = None,
    k: int = 10,
) -> list[dict[str, Any]]:
    """Per programme: share of top-k slots of each model, next to catalog and apply shares."""
    shares = {entry["programme"]: entry for entry in (dataset or {}).get("programmes", [])}
    rows = []
    models = [candidate, *references(evaluation, candidate)]
    for programme in taxonomy.PROGRAMMES:
        metric = f"exposure.{programme}@{k}"
        slots = {row: value(evaluation, row, metric) for row in models}
        if all(v is None for v in slots.values()):
            continue
        known = shares.get(programme, {})
        rows.append(
            {
                "programme": programme,
                "label": taxonomy.PROGRAMME_LABELS_FR[programme],
                "slots": slots,
                "catalog_share": number(known.get("catalog_share")),
                "apply_share": number(known.get("apply_share")),
            }
        )
    return rows


def fingerprint(evaluation: dict[str, Any], params: dict[str, str] | None = None) -> str | None:
    """The data fingerprint an evaluation was computed on (its own record, else the run's)."""
    found = (evaluation.get("data") or {}).get("fingerprint")
    return found or (params or {}).get("data.fingerprint") or None


def holdout_warnings(
    evaluation: dict[str, Any],
    params: dict[str, str] | None,
    comparisons: list[dict[str, Any]],
) -> list[str]:
    """One sentence per compared run whose data or split differs from this run's.

    Numbers from another holdout are not comparable: the report says so in a visible box
    rather than lining them up silently.
    """
    mine = fingerprint(evaluation, params)
    split = evaluation.get("split") or {}
    warnings = []
    for other in comparisons:
        name = f"run {other.get('run_id', '?')[:8]} ({other.get('label') or 'compared'})"
        theirs = fingerprint(other.get("evaluation") or {}, other.get("params"))
        if mine is None or theirs is None:
            warnings.append(
                f"{name}: a data fingerprint is missing, so whether both runs were evaluated on "
                "the same data cannot be checked."
            )
        elif mine != theirs:
            warnings.append(
                f"{name} was evaluated on other data (fingerprint {theirs[:12]}… against "
                f"{mine[:12]}… for this run): its figures are not comparable with this run's."
            )
        other_split = (other.get("evaluation") or {}).get("split") or {}
        if split and other_split and split != other_split:
            changed = sorted(
                key
                for key in set(split) | set(other_split)
                if split.get(key) != other_split.get(key)
            )
            warnings.append(
                f"{name} used other split dates ({', '.join(changed)} differ): a different "
                "holdout, not comparable."
            )
    return warnings


COMPARISON_METRICS: tuple[str, ...] = (
    "ndcg@10",
    "recall@10",
    "precision@10",
    "map@10",
    "hit_rate@10",
    "coverage@10",
    "new_offer_share@10",
    "mean_distance_km@10",
    "ineligible_rate@10",
)


def comparison_rows(
    evaluation: dict[str, Any],
    candidate: str,
    comparisons: list[dict[str, Any]],
    metrics: tuple[str, ...] = COMPARISON_METRICS,
) -> list[dict[str, Any]]:
    """Per metric: this run's model against each compared run's model (value and delta)."""
    rows = []
    for metric in metrics:
        mine = value(evaluation, candidate, metric)
        others = []
        for other in comparisons:
            theirs_eval = other.get("evaluation") or {"models": {}}
            row = other.get("candidate") or (
                candidate_name(theirs_eval) if theirs_eval.get("models") else ""
            )
            theirs = value(theirs_eval, row, metric) if row else None
            others.append({"value": theirs, "delta": relative_delta(mine, theirs)})
        rows.append(
            {"metric": metric, "label": metric_label(metric), "value": mine, "runs": others}
        )
    return rows


def headline_frame(evaluation: dict[str, Any], candidate: str) -> pd.DataFrame:
    """The headline as a DataFrame (metric@k × the model and its references), for notebooks."""
    rows = headline_rows(evaluation, candidate)
    columns = {candidate: [row["value"] for row in rows]}
    for position, name in enumerate(references(evaluation, candidate)):
        columns[name] = [row["references"][position]["value"] for row in rows]
    return pd.DataFrame(columns, index=pd.Index([row["metric"] for row in rows], name="metric"))


def runs_table(runs: list[dict[str, Any]], metric: str = "ndcg@10") -> pd.DataFrame:
    """One row per loaded run (`training.report_cli.load_run`): what it is, what data it was
    evaluated on, its model's figures and how it compares with its own baselines."""
    records = []
    for run in runs:
        evaluation = run["evaluation"]
        candidate = candidate_name(evaluation, run.get("candidate"))
        best = strongest_baseline(evaluation, candidate, metric)
        mine = value(evaluation, candidate, metric)
        records.append(
            {
                "run": run["run_id"][:8],
                "name": run.get("run_name", ""),
                "model": candidate,
                "started": run.get("started", ""),
                "fingerprint": (fingerprint(evaluation, run.get("params")) or "")[:12],
                "cutoff": (evaluation.get("split") or {}).get("cutoff", ""),
                metric: mine,
                "recall@10": value(evaluation, candidate, "recall@10"),
                "coverage@10": value(evaluation, candidate, "coverage@10"),
                "mean_distance_km@10": value(evaluation, candidate, "mean_distance_km@10"),
                "strongest_baseline": best,
                "vs_strongest": relative_delta(mine, value(evaluation, best, metric))
                if best
                else None,
                "vs_incumbent": relative_delta(mine, value(evaluation, INCUMBENT, metric)),
                "vs_oracle": relative_delta(mine, value(evaluation, ORACLE, metric)),
            }
        )
    return pd.DataFrame(records)
