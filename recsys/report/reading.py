"""The plain-language reading at the top of a report, written from the numbers.

Each sentence states one comparison with its figures, so a reader who stops after the first
paragraph still knows whether the model beats what runs today, for whom, and at what cost in
exposure and distance.
"""

from __future__ import annotations

from typing import Any

from recsys import taxonomy
from recsys.report import tables
from recsys.report.tables import INCUMBENT, INCUMBENT_LOCAL, ORACLE, model_label, number

METRIC = "ndcg@10"
K = 10
Dataset = dict[str, Any] | None  # `recsys.analysis.dataset_summary`, when the data was read
HEADLINE_SEGMENTS: tuple[str, ...] = ("cold", "cold_quiz_only", "anonymous", "warm", "new_offers")


def _signed(delta: float) -> str:
    return f"{delta:+.0%}"


def _versus(mine: float, row: str, reference: float) -> str:
    delta = tables.relative_delta(mine, reference)
    if delta is None:
        return f"{model_label(row)} scores {reference:.3f}"
    verb = "beats" if delta > 0 else "trails" if delta < 0 else "ties with"
    amount = f" by {abs(delta):.0%}" if delta else ""
    return f"{verb} the {model_label(row)}{amount} ({mine:.3f} against {reference:.3f})"


def _accuracy(evaluation: dict[str, Any], candidate: str) -> list[str]:
    mine = tables.value(evaluation, candidate, METRIC)
    if mine is None:
        return [f"{candidate} has no {tables.metric_label(METRIC)} in this evaluation."]
    name = model_label(candidate)
    sentences = []
    incumbents = [
        (row, tables.value(evaluation, row, METRIC))
        for row in (INCUMBENT, INCUMBENT_LOCAL)
        if tables.value(evaluation, row, METRIC) is not None
    ]
    if incumbents:
        parts = [_versus(mine, row, reference) for row, reference in incumbents]
        sentences.append(f"{name} {' and '.join(parts)} on {tables.metric_label(METRIC)}.")
    best = tables.strongest_baseline(evaluation, candidate, METRIC)
    if best is None:
        sentences.append(
            f"No baseline was evaluated next to {name} ({tables.metric_label(METRIC)} "
            f"{mine:.3f}): its figures cannot be judged against what runs today."
        )
    else:
        best_value = tables.value(evaluation, best, METRIC) or 0.0
        delta = tables.relative_delta(mine, best_value)
        if delta is not None and delta > 0:
            sentences.append(
                f"It beats every baseline, the strongest being {model_label(best)} "
                f"({best_value:.3f}), by {delta:.0%}."
            )
        else:
            gap = f", {_signed(delta)}" if delta is not None else ""
            sentences.append(
                f"It does not beat the strongest baseline, {model_label(best)} "
                f"({best_value:.3f}{gap}), so it does not beat the incumbent in the protocol's "
                "sense."
            )
    oracle = tables.value(evaluation, ORACLE, METRIC)
    if oracle:
        sentences.append(
            f"It reaches {mine / oracle:.0%} of the oracle's {tables.metric_label(METRIC)} "
            f"({oracle:.3f}), the ceiling set by the simulator's true utility."
        )
    return sentences


def _segments(evaluation: dict[str, Any], candidate: str) -> list[str]:
    rows = {row["segment"]: row for row in tables.segment_rows(evaluation, candidate, METRIC)}
    reference = INCUMBENT if tables.value(evaluation, INCUMBENT, METRIC) is not None else None
    parts = []
    for segment in HEADLINE_SEGMENTS:
        row = rows.get(segment)
        if row is None or row["value"] is None:
            continue
        delta = row["delta_incumbent"] if reference else row["delta_best"]
        shown = _signed(delta) if delta is not None else f"{row['value']:.3f}"
        caution = ", small: noisy" if row["small"] else ""
        parts.append(f"{row['label']} {shown} ({row['users']} users{caution})")
    if not parts:
        return []
    against = "against the incumbent engine" if reference else "against the best baseline"
    return [f"By segment, {against}: {'; '.join(parts)}."]


def _exposure(evaluation: dict[str, Any], candidate: str, dataset: Dataset) -> list[str]:
    rows = tables.programme_exposure_rows(evaluation, candidate, dataset, K)
    if not rows:
        return []
    chosen = [row for row in rows if row["programme"] == taxonomy.SERVICE_CIVIQUE]
    gaps = [
        (abs(row["slots"][candidate] - row["apply_share"]), row)
        for row in rows
        if row["slots"].get(candidate) is not None and row["apply_share"] is not None
    ]
    if gaps:
        widest = max(gaps, key=lambda pair: pair[0])[1]
        if widest not in chosen:
            chosen.append(widest)
    sentences = []
    for row in chosen:
        slots = row["slots"].get(candidate)
        if slots is None:
            continue
        context = []
        if row["apply_share"] is not None:
            context.append(f"{row['apply_share']:.0%} of applications")
        if row["catalog_share"] is not None:
            context.append(f"{row['catalog_share']:.0%} of the open catalog")
        tail = f" for {' and '.join(context)}" if context else ""
        sentences.append(f"{row['label']} gets {slots:.0%} of top-{K} slots{tail}.")
    top = tables.value(evaluation, candidate, f"top_publisher_share@{K}")
    gini = tables.value(evaluation, candidate, f"gini_publisher@{K}")
    if top is not None and gini is not None:
        sentences.append(
            f"The most exposed publisher takes {top:.0%} of slots (Gini across publishers "
            f"{gini:.2f}, 0 = even, 1 = one publisher)."
        )
    return sentences


def _distance(evaluation: dict[str, Any], candidate: str, dataset: Dataset) -> list[str]:
    mine = tables.value(evaluation, candidate, f"mean_distance_km@{K}")
    if mine is None:
        return []
    sentence = f"Recommended offers are {mine:.0f} km away on average"
    incumbent = tables.value(evaluation, INCUMBENT, f"mean_distance_km@{K}")
    if incumbent is not None:
        sentence += f" (incumbent engine: {incumbent:.0f} km)"
    radius = number(((dataset or {}).get("radius_km") or {}).get("mean"))
    applied = number(((dataset or {}).get("apply_distance_km") or {}).get("median"))
    context = []
    if radius is not None:
        context.append(f"people who applied declared a {radius:.0f} km radius on average")
    if applied is not None:
        context.append(f"half of the applications were within {applied:.0f} km")
    return [sentence + (f"; {' and '.join(context)}." if context else ".")]


def _new_offers(evaluation: dict[str, Any], candidate: str, dataset: Dataset) -> list[str]:
    share = tables.value(evaluation, candidate, f"new_offer_share@{K}")
    if share is None:
        return []
    catalog = number((dataset or {}).get("new_offer_share"))
    if catalog is None:
        data = evaluation.get("data") or {}
        offers, new = number(data.get("offers")), number(data.get("new_offers"))
        catalog = new / offers if offers and new is not None else None
    tail = f"; they are {catalog:.0%} of the catalog" if catalog is not None else ""
    return [f"New offers (posted after the cutoff) fill {share:.0%} of top-{K} slots{tail}."]


def _eligibility(evaluation: dict[str, Any], candidate: str) -> list[str]:
    rates = [
        tables.value(evaluation, candidate, f"ineligible_rate@{k}")
        for k in tables.ks_of(evaluation)
    ]
    rates = [rate for rate in rates if rate is not None]
    if not rates:
        return []
    if max(rates) == 0:
        return ["No recommendation broke an eligibility rule (age, programme, dates, status)."]
    return [
        f"{max(rates):.1%} of recommended slots were offers the person may not join: "
        "eligibility must be 0, this model cannot be served."
    ]


def reading(
    evaluation: dict[str, Any], candidate: str, dataset: dict[str, Any] | None = None
) -> list[str]:
    """The report's opening sentences: accuracy against the baselines, segments, exposure,
    distance, new offers and eligibility, each with its figures."""
    return [
        *_accuracy(evaluation, candidate),
        *_segments(evaluation, candidate),
        *_exposure(evaluation, candidate, dataset),
        *_distance(evaluation, candidate, dataset),
        *_new_offers(evaluation, candidate, dataset),
        *_eligibility(evaluation, candidate),
    ]
