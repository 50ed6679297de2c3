"""The report's charts, drawn from an evaluation document.

Figures are built with matplotlib's object API (`matplotlib.figure.Figure`), not pyplot: no
global backend is switched, so the same functions draw into a notebook and, through
`data_uri`, into a self-contained HTML file (PNG as base64, nothing fetched when opened).
"""

from __future__ import annotations

import base64
import io
import textwrap
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from recsys.report import tables
from recsys.report.tables import INCUMBENT, INCUMBENT_LOCAL, ORACLE, model_label

CANDIDATE_COLOR = "#000091"  # the State's blue: the model under review
REFERENCE_COLORS: dict[str, str] = {
    "popularity": "#929292",
    "itemknn": "#c3992a",
    INCUMBENT: "#e1000f",
    INCUMBENT_LOCAL: "#f59a9a",
    ORACLE: "#18753c",
}
OTHER_COLORS: tuple[str, ...] = ("#6a6af4", "#a558a0", "#009081", "#ff9940", "#417dc4")
DPI = 100


def data_uri(figure: Figure) -> str:
    """The figure as a `data:image/png;base64,...` URI, to embed without any file or request."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def png_uri(png: bytes) -> str:
    """A PNG file's bytes as a data URI (figures logged by the training run)."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def colors(rows: list[str], candidate: str) -> dict[str, str]:
    """A stable colour per row: the candidate blue, each baseline its own, others cycled."""
    palette: dict[str, str] = {}
    extra = iter(OTHER_COLORS * (1 + len(rows) // len(OTHER_COLORS)))
    for row in rows:
        if row == candidate:
            palette[row] = CANDIDATE_COLOR
        else:
            palette[row] = REFERENCE_COLORS.get(tables.base_name(row)) or next(extra)
    return palette


def _models(evaluation: dict[str, Any], candidate: str) -> list[str]:
    return [candidate, *tables.references(evaluation, candidate)]


def metrics_at_k(
    evaluation: dict[str, Any], candidate: str, metrics: tuple[str, ...] = ("ndcg", "recall")
) -> Figure:
    """One panel per metric, the metric against k, one line per model (the candidate bold)."""
    ks = tables.ks_of(evaluation)
    rows = _models(evaluation, candidate)
    palette = colors(rows, candidate)
    figure = Figure(figsize=(4.8 * len(metrics), 3.4), layout="constrained")
    axes = np.atleast_1d(figure.subplots(1, len(metrics)))
    for axis, metric in zip(axes, metrics, strict=True):
        for row in rows:
            series = [tables.value(evaluation, row, f"{metric}@{k}") for k in ks]
            series = [np.nan if v is None else v for v in series]
            axis.plot(
                ks,
                series,
                marker="o",
                color=palette[row],
                linewidth=2.8 if row == candidate else 1.3,
                linestyle="--" if row == ORACLE else "-",
                label=model_label(row),
            )
        axis.set_title(f"{tables.METRIC_LABELS[metric]} at k")
        axis.set_xlabel("k (length of the list)")
        axis.set_xticks(ks)
        axis.set_ylim(bottom=0)
        axis.grid(alpha=0.3)
    axes[-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return figure


def segment_bars(
    evaluation: dict[str, Any], candidate: str, group: str, metric: str = "ndcg@10"
) -> Figure | None:
    """Horizontal bars of `metric` per segment of one group and model; labels carry the counts.

    A segment with fewer than `tables.SMALL_SEGMENT` users is greyed and starred: its bars
    move with a handful of people. Returns None when the group has no segment.
    """
    rows = [
        row for row in tables.segment_rows(evaluation, candidate, metric) if row["group"] == group
    ]
    if not rows:
        return None
    models = _models(evaluation, candidate)
    palette = colors(models, candidate)
    height = 0.8 / len(models)
    figure = Figure(
        figsize=(10, 0.45 + 0.13 * len(rows) * len(models) + 0.25 * len(rows)), layout="constrained"
    )
    axis = figure.subplots()
    positions = np.arange(len(rows))[::-1]
    for index, model in enumerate(models):
        values = [
            row["value"] if model == candidate else row["references"].get(model) for row in rows
        ]
        axis.barh(
            positions + 0.4 - height * (index + 0.5),
            [np.nan if v is None else v for v in values],
            height=height,
            color=palette[model],
            label=model_label(model),
        )
    axis.set_yticks(positions)
    axis.set_yticklabels(
        [f"{row['label']}{' *' if row['small'] else ''}  (n={row['users']})" for row in rows]
    )
    for tick, row in zip(axis.get_yticklabels(), rows, strict=True):
        if row["small"]:
            tick.set_color("#777777")
    axis.set_xlabel(tables.metric_label(metric))
    axis.grid(axis="x", alpha=0.3)
    axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return figure


def programme_exposure(
    evaluation: dict[str, Any],
    candidate: str,
    dataset: dict[str, Any] | None = None,
    k: int = 10,
) -> Figure | None:
    """Share of top-k slots per programme and model, with the catalog and apply shares marked."""
    rows = tables.programme_exposure_rows(evaluation, candidate, dataset, k)
    if not rows:
        return None
    models = _models(evaluation, candidate)
    palette = colors(models, candidate)
    width = 0.8 / len(models)
    figure = Figure(figsize=(10, 3.6), layout="constrained")
    axis = figure.subplots()
    positions = np.arange(len(rows))
    for index, model in enumerate(models):
        values = [row["slots"].get(model) for row in rows]
        axis.bar(
            positions - 0.4 + width * (index + 0.5),
            [np.nan if v is None else v for v in values],
            width=width,
            color=palette[model],
            label=model_label(model),
        )
    for key, marker, color, label in (
        ("catalog_share", "_", "black", "share of the open catalog"),
        ("apply_share", "D", "#e1000f", "share of applications"),
    ):
        shares = [row[key] for row in rows]
        if any(v is not None for v in shares):
            axis.scatter(
                positions,
                [np.nan if v is None else v for v in shares],
                marker=marker,
                s=700 if marker == "_" else 40,
                linewidths=2.5,
                color=color,
                zorder=3,
                label=label,
            )
    axis.set_xticks(positions)
    axis.set_xticklabels([textwrap.fill(row["label"], 16) for row in rows])
    axis.set_ylabel(f"share of top-{k} slots")
    axis.yaxis.set_major_formatter(lambda x, _: f"{x:.0%}")
    axis.grid(axis="y", alpha=0.3)
    axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return figure


def distance(
    evaluation: dict[str, Any],
    candidate: str,
    dataset: dict[str, Any] | None = None,
    k: int = 10,
) -> Figure | None:
    """Mean distance of recommended offers per model, against the people's declared radius
    and the distance of actual applications."""
    models = [
        row
        for row in _models(evaluation, candidate)
        if tables.value(evaluation, row, f"mean_distance_km@{k}") is not None
    ]
    if not models:
        return None
    palette = colors(models, candidate)
    figure = Figure(figsize=(9, 0.8 + 0.38 * len(models)), layout="constrained")
    axis = figure.subplots()
    positions = np.arange(len(models))[::-1]
    axis.barh(
        positions,
        [tables.value(evaluation, row, f"mean_distance_km@{k}") for row in models],
        color=[palette[row] for row in models],
    )
    axis.set_yticks(positions)
    axis.set_yticklabels([textwrap.fill(model_label(row), 24) for row in models])
    references = (
        ("radius_km", "mean", "--", "people's declared radius (mean)"),
        ("apply_distance_km", "median", ":", "distance of actual applications (median)"),
    )
    for key, stat, style, label in references:
        found = tables.number(((dataset or {}).get(key) or {}).get(stat))
        if found is not None:
            axis.axvline(found, color="black", linestyle=style, linewidth=1.5, label=label)
    axis.set_xlabel(f"mean distance of top-{k} recommendations (km)")
    axis.grid(axis="x", alpha=0.3)
    if axis.get_legend_handles_labels()[0]:
        axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return figure


def runs_bars(runs: list[dict[str, Any]], metric: str = "ndcg@10") -> Figure:
    """`metric` of each loaded run's model (bars) with that run's own baselines (markers).

    Baselines are drawn per run because each run measured them on its own holdout: a bar is
    only comparable with the markers above it, and with other bars when the data match.
    """
    figure = Figure(figsize=(8, 3.6), layout="constrained")
    axis = figure.subplots()
    positions = np.arange(len(runs))
    labels = []
    seen: set[str] = set()
    for position, run in zip(positions, runs, strict=True):
        evaluation = run["evaluation"]
        candidate = tables.candidate_name(evaluation, run.get("candidate"))
        labels.append(f"{run.get('run_name') or candidate}\n{run['run_id'][:8]}")
        axis.bar(
            position,
            tables.value(evaluation, candidate, metric) or 0.0,
            width=0.6,
            color=CANDIDATE_COLOR,
            alpha=0.6,
            label=None if "model" in seen else "the run's model",
        )
        seen.add("model")
        for row in tables.references(evaluation, candidate):
            found = tables.value(evaluation, row, metric)
            if found is None:
                continue
            name = tables.base_name(row)
            axis.scatter(
                position,
                found,
                marker="D" if row == ORACLE else "_",
                s=40 if row == ORACLE else 900,
                linewidths=2.5,
                color=REFERENCE_COLORS.get(name, "#555555"),
                zorder=3,
                label=None if name in seen else model_label(name),
            )
            seen.add(name)
    axis.set_xticks(positions)
    axis.set_xticklabels(labels, fontsize=8)
    axis.set_ylabel(tables.metric_label(metric))
    axis.grid(axis="y", alpha=0.3)
    axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return figure
