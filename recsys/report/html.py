"""`render_report`: an evaluation document and run facts in, one self-contained HTML page out.

Pure: no MLflow, no file access, no clock other than the generation stamp. The command line
(`training/report_cli.py`) fetches the run and passes plain dicts, so this is tested on
hand-made documents.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypedDict

import jinja2

from recsys.report import figures, tables
from recsys.report.reading import reading
from recsys.report.template import TEMPLATE

SEGMENT_METRIC = "ndcg@10"
EXPOSURE_K = 10
LOGGED_FIGURES: dict[str, str] = {
    "exposure.png": "Exposure by programme and publisher, per model (figure of the training run)",
    "distance_km.png": "Distance to recommended offers (figure of the training run)",
}
DATA_COUNTS: dict[str, str] = {
    "users_evaluated": "people evaluated",
    "users_known": "with a profile",
    "users_warm": "with history",
    "offers": "offers",
    "new_offers": "new offers",
    "target_applies": "applications in the window",
}


class RunInfo(TypedDict, total=False):
    """Facts about the run under review (every key optional).

    candidate: its row in the evaluation (default: the first row that is no baseline).
    dataset: `recsys.analysis.dataset_summary` of its data; dataset_note says why it is absent.
    figures: PNG bytes of figures logged by the run, by file name (`exposure.png`, ...).
    manifest: the feature set's manifest the run logged (its counts of events and users).
    warnings: extra sentences shown in warning boxes.
    """

    run_id: str
    run_name: str
    candidate: str
    started: str
    params: dict[str, str]
    dataset: dict[str, Any] | None
    dataset_note: str
    figures: dict[str, bytes]
    manifest: dict[str, Any] | None
    warnings: list[str]


class Comparison(TypedDict, total=False):
    """Another run to compare with: its id, a label (`champion`), its evaluation and params."""

    run_id: str
    label: str
    candidate: str
    evaluation: dict[str, Any]
    params: dict[str, str]


def _num(value: Any, digits: int = 3) -> str:
    found = tables.number(value)
    return "–" if found is None else f"{found:.{digits}f}"


def _pct(value: Any, digits: int = 0) -> str:
    found = tables.number(value)
    return "–" if found is None else f"{found:.{digits}%}"


def _km(value: Any) -> str:
    found = tables.number(value)
    return "–" if found is None else f"{found:.0f} km"


def _delta(value: Any) -> str:
    found = tables.number(value)
    return "–" if found is None else f"{found:+.0%}"


def _tone(value: Any, metric: str | None = None) -> str:
    """Green or red for accuracy deltas; grey for the others, where more is not better."""
    found = tables.number(value)
    name = (metric or "ndcg").partition("@")[0]
    if found is None or round(found, 2) == 0 or name not in tables.ACCURACY_METRICS:
        return "flat"
    return "up" if found > 0 else "down"


def _figure(value: Any, metric: str) -> str:
    """A metric value in its unit: km, percent for shares and rates, 3 decimals otherwise."""
    name = metric.partition("@")[0]
    return _beyond(value, name) if name in tables.BEYOND_ACCURACY else _num(value)


def _beyond(value: Any, name: str) -> str:
    if name == "mean_distance_km":
        return _km(value)
    if name in ("gini_programme", "gini_publisher"):
        return _num(value, 2)
    return _pct(value, 1)


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    environment.filters.update(
        {
            "num": _num,
            "pct": _pct,
            "km": _km,
            "delta": _delta,
            "tone": _tone,
            "beyond": _beyond,
            "figure": _figure,
            "model": lambda row: tables.model_label(row) if row else "–",
            "metric": tables.metric_label,
        }
    )
    return environment


def _grouped_params(params: dict[str, str]) -> dict[str, list[tuple[str, str]]]:
    groups: dict[str, list[tuple[str, str]]] = {
        "model": [],
        "features": [],
        "code": [],
        "other": [],
    }
    for key in sorted(params):
        prefix, _, rest = key.partition(".")
        if prefix == "model":
            groups["model"].append((rest, params[key]))
        elif prefix == "features":
            groups["features"].append((rest, params[key]))
        elif prefix in ("code", "lib"):
            groups["code"].append((key, params[key]))
        elif not key.startswith(("split.", "data.fingerprint")):
            groups["other"].append((key, params[key]))
    return groups


def _dataset_facts(
    evaluation: dict[str, Any], params: dict[str, str], dataset: dict[str, Any] | None
) -> list[tuple[str, Any]]:
    """Fingerprint, split dates and counts of the evaluated window, as (label, value) pairs."""
    data = evaluation.get("data") or {}
    facts: list[tuple[str, Any]] = [
        ("data fingerprint", tables.fingerprint(evaluation, params) or "unknown")
    ]
    facts += [
        (key.replace("_", " "), value) for key, value in (evaluation.get("split") or {}).items()
    ]
    facts += [(label, data[key]) for key, label in DATA_COUNTS.items() if key in data]
    if dataset:
        facts.append(("data folder", dataset.get("folder", "")))
    return facts


def _feature_counts(manifest: dict[str, Any] | None) -> list[tuple[str, Any]]:
    """What the feature stage read and kept (events read, bots dropped, users, offers...)."""
    if not manifest:
        return []
    counts = {**(manifest.get("event_counts") or {}), **(manifest.get("counts") or {})}
    return [(key.replace("_", " "), value) for key, value in counts.items()]


def _segment_groups(evaluation: dict[str, Any], candidate: str) -> list[dict[str, Any]]:
    rows = tables.segment_rows(evaluation, candidate, SEGMENT_METRIC)
    groups = []
    for key, title in tables.SEGMENT_GROUPS:
        members = [row for row in rows if row["group"] == key]
        figure = figures.segment_bars(evaluation, candidate, key, SEGMENT_METRIC)
        if members and figure is not None:
            groups.append({"title": title, "rows": members, "figure": figures.data_uri(figure)})
    return groups


def _comparisons(
    evaluation: dict[str, Any], run: RunInfo, others: list[Comparison]
) -> list[dict[str, Any]]:
    mine = tables.fingerprint(evaluation, run.get("params"))
    split = evaluation.get("split") or {}
    shown = []
    for other in others:
        theirs = other.get("evaluation") or {"models": {}}
        candidate = other.get("candidate") or (
            tables.candidate_name(theirs) if theirs.get("models") else ""
        )
        fingerprint = tables.fingerprint(theirs, other.get("params"))
        shown.append(
            {
                "run_id": other.get("run_id", "?"),
                "label": other.get("label", ""),
                "candidate": candidate,
                "candidate_label": tables.model_label(candidate) if candidate else "?",
                "fingerprint": fingerprint,
                "cutoff": (theirs.get("split") or {}).get("cutoff"),
                "same_holdout": mine is not None
                and fingerprint == mine
                and (theirs.get("split") or {}) == split,
            }
        )
    return shown


def _ineligible_warning(evaluation: dict[str, Any], candidate: str) -> list[str]:
    worst = max(
        (
            tables.value(evaluation, candidate, f"ineligible_rate@{k}") or 0.0
            for k in tables.ks_of(evaluation)
        ),
        default=0.0,
    )
    if worst <= 0:
        return []
    return [
        f"{worst:.1%} of {tables.model_label(candidate)}'s recommended slots are offers the "
        "person may not join: it must not be served."
    ]


def render_report(
    evaluation: dict[str, Any],
    run_info: RunInfo | dict[str, Any],
    comparisons: list[Comparison] | list[dict[str, Any]],
) -> str:
    """The report as one HTML string (figures embedded as data URIs, styles inline).

    Args:
        evaluation: `EvaluationResult.to_json()` of the run (models, segments, split, data).
        run_info: facts about the run (see `RunInfo`).
        comparisons: other runs to line up against (see `Comparison`); a run evaluated on
            other data or another split gets a warning box, never a silent comparison.

    Raises:
        ValueError: the evaluation holds no model, or `run_info['candidate']` is not one of them.
    """
    run: RunInfo = dict(run_info)  # type: ignore[assignment]
    candidate = tables.candidate_name(evaluation, run.get("candidate"))
    dataset = run.get("dataset")
    params = run.get("params") or {}
    refs = tables.references(evaluation, candidate)
    models = [candidate, *refs]
    warnings = [
        *tables.holdout_warnings(evaluation, params, list(comparisons)),
        *_ineligible_warning(evaluation, candidate),
        *run.get("warnings", []),
    ]
    data = evaluation.get("data") or {}
    exposure = figures.programme_exposure(evaluation, candidate, dataset, EXPOSURE_K)
    distance = figures.distance(evaluation, candidate, dataset, EXPOSURE_K)
    logged = run.get("figures") or {}
    context = {
        "run": {
            "run_id": run.get("run_id", "?"),
            "title": run.get("run_name") or tables.model_label(candidate),
            "started": run.get("started", ""),
            "candidate": candidate,
            "candidate_label": tables.model_label(candidate),
        },
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "warnings": warnings,
        "reading": reading(evaluation, candidate, dataset),
        "headline": tables.headline_rows(evaluation, candidate),
        "headline_refs": refs,
        "comparisons": _comparisons(evaluation, run, list(comparisons)),
        "comparison": tables.comparison_rows(evaluation, candidate, list(comparisons)),
        "figures": {
            "at_k": figures.data_uri(figures.metrics_at_k(evaluation, candidate)),
            "exposure": figures.data_uri(exposure) if exposure is not None else None,
            "distance": figures.data_uri(distance) if distance is not None else None,
        },
        "segment_metric": SEGMENT_METRIC,
        "small_segment": tables.SMALL_SEGMENT,
        "segment_groups": _segment_groups(evaluation, candidate),
        "has_incumbent": tables.INCUMBENT in refs,
        "k": EXPOSURE_K,
        "models": models,
        "programmes": tables.programme_exposure_rows(evaluation, candidate, dataset, EXPOSURE_K),
        "beyond": tables.beyond_accuracy_rows(evaluation, candidate, EXPOSURE_K),
        "beyond_names": tables.BEYOND_ACCURACY,
        "dataset": dataset,
        "dataset_note": run.get("dataset_note")
        or "not available (the run's data folder was not read).",
        "logged_figures": [
            {"title": title, "uri": figures.png_uri(logged[name])}
            for name, title in LOGGED_FIGURES.items()
            if name in logged
        ],
        "fingerprint": tables.fingerprint(evaluation, params),
        "split": evaluation.get("split") or {},
        "data": data,
        "dataset_facts": _dataset_facts(evaluation, params, dataset),
        "params": _grouped_params(params),
        "feature_counts": _feature_counts(run.get("manifest")),
    }
    return _environment().from_string(TEMPLATE).render(**context)
