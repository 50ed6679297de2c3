"""The figures logged with every training run (matplotlib, Agg backend: no display needed).

Each figure puts the trained model next to its baselines, so a reader of the MLflow run
never sees a number without its point of comparison.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: runs in CI and in worker processes

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from recsys import metrics, taxonomy
from recsys.evaluation import EvaluationResult
from recsys.featureset import FeatureSet
from recsys.geo import haversine_km

AT_K_METRICS = ("ndcg", "recall", "precision", "hit_rate")
SEGMENT_METRIC = "ndcg@10"
EXPOSURE_K = 10
TOP_PUBLISHERS = 15
DISTANCE_BASELINES = ("incumbent", "incumbent_local", "popularity")


def _save(figure: plt.Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def metrics_at_k(result: EvaluationResult, candidate: str, path: Path) -> Path:
    """Ranking metrics against k, one line per model, the trained model in bold."""
    ks = sorted(
        {int(name.split("@")[1]) for name in result.models[candidate] if name.startswith("ndcg@")}
    )
    figure, axes = plt.subplots(1, len(AT_K_METRICS), figsize=(4 * len(AT_K_METRICS), 3.5))
    for axis, metric in zip(np.atleast_1d(axes), AT_K_METRICS, strict=True):
        for name, values in result.models.items():
            series = [values.get(f"{metric}@{k}", np.nan) for k in ks]
            bold = name == candidate
            axis.plot(ks, series, marker="o", linewidth=2.5 if bold else 1, label=name)
        axis.set_title(metric)
        axis.set_xlabel("k")
        axis.set_xticks(ks)
    np.atleast_1d(axes)[0].legend(fontsize=7)
    return _save(figure, path)


def ndcg_by_segment(result: EvaluationResult, path: Path) -> Path:
    """NDCG@10 per segment (rows) and model (bars)."""
    table = result.segment_table(SEGMENT_METRIC).drop(columns="users")
    height = max(3.0, 0.3 * len(table) * max(1, len(table.columns)) / 2)
    figure, axis = plt.subplots(figsize=(8, height))
    table.iloc[::-1].plot.barh(ax=axis, width=0.8)
    axis.set_xlabel(SEGMENT_METRIC)
    axis.legend(fontsize=7)
    return _save(figure, path)


def _open_in_window(feature_set: FeatureSet) -> np.ndarray:
    """Offers one could apply to during the evaluated window: the catalog exposure is judged by."""
    offers = feature_set.offer_arrays
    start = int(feature_set.window_start.timestamp())
    end = int(feature_set.window_end.timestamp())
    return (
        offers.accepted
        & (offers.posted_at < end)
        & (offers.end_at >= start)
        & (offers.deleted_at >= start)
    )


def _exposure_bars(
    axis: plt.Axes,
    result: EvaluationResult,
    codes: np.ndarray,
    labels: list[str],
    catalog: np.ndarray,
    keep: np.ndarray,
) -> None:
    """Bars of each model's top-k share per group, the catalog's share as black ticks."""
    n = len(labels)
    shares = {
        name: metrics.exposure_share(top, codes, n, EXPOSURE_K)[keep]
        for name, top in result.recommendations.items()
    }
    frame = pd.DataFrame(shares, index=[labels[i] for i in keep])
    frame.plot.bar(ax=axis, width=0.8)
    axis.scatter(range(len(keep)), catalog[keep], color="black", marker="_", s=300, label="catalog")
    axis.set_ylabel(f"share of top-{EXPOSURE_K} slots")
    axis.legend(fontsize=7)
    axis.tick_params(axis="x", labelrotation=60, labelsize=7)


def exposure(result: EvaluationResult, feature_set: FeatureSet, path: Path) -> Path:
    """Exposure share by programme and by publisher (top publishers), against catalog share."""
    open_offers = _open_in_window(feature_set)
    arrays = feature_set.offer_arrays
    figure, (left, right) = plt.subplots(1, 2, figsize=(14, 4.5))

    programmes = list(taxonomy.PROGRAMMES)
    codes = arrays.programme.astype(np.int64)
    catalog = np.bincount(codes[open_offers], minlength=len(programmes)) / max(open_offers.sum(), 1)
    _exposure_bars(left, result, codes, programmes, catalog, np.arange(len(programmes)))
    left.set_title("exposure by programme")

    publisher_codes, publishers = pd.factorize(arrays.publisher_ids)
    n = len(publishers)
    catalog = np.bincount(publisher_codes[open_offers], minlength=n) / max(open_offers.sum(), 1)
    top = np.argsort(-catalog, kind="stable")[:TOP_PUBLISHERS]
    _exposure_bars(right, result, publisher_codes, [str(p) for p in publishers], catalog, top)
    right.set_title(f"exposure by publisher (the {len(top)} largest in the catalog)")
    return _save(figure, path)


def distance_histogram(
    result: EvaluationResult, feature_set: FeatureSet, names: list[str], path: Path
) -> Path:
    """Distance from the person to each recommended offer (top-10), for the given models."""
    users = feature_set.user_batch(result.user_ids).arrays
    offers = feature_set.offer_arrays
    figure, axis = plt.subplots(figsize=(7, 4))
    distances = {}
    for name in names:
        top = result.recommendations[name][:, :EXPOSURE_K]
        filled = top >= 0
        safe = np.where(filled, top, 0)
        km = haversine_km(
            users.lat[:, None], users.lon[:, None], offers.lat[safe], offers.lon[safe]
        )
        distances[name] = km[filled & np.isfinite(km)]
    pooled = np.concatenate([*distances.values(), np.zeros(1)])
    bins = np.histogram_bin_edges(pooled, bins=40, range=(0.0, max(float(pooled.max()), 1.0)))
    for name, values in distances.items():
        if values.size:
            axis.hist(values, bins=bins, histtype="step", linewidth=1.5, label=name)
    axis.set_xlabel("km from the person (offers without a place left out)")
    axis.set_ylabel(f"top-{EXPOSURE_K} slots")
    axis.legend(fontsize=7)
    return _save(figure, path)


def write_all(
    result: EvaluationResult, feature_set: FeatureSet, candidate: str, folder: Path
) -> list[Path]:
    """Every figure of a training run, written into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    incumbents = [name for name in DISTANCE_BASELINES if name in result.models]
    compared = [candidate, *[name for name in incumbents if name != candidate]]
    return [
        metrics_at_k(result, candidate, folder / "metrics_at_k.png"),
        ndcg_by_segment(result, folder / "ndcg_by_segment.png"),
        exposure(result, feature_set, folder / "exposure.png"),
        distance_histogram(result, feature_set, compared, folder / "distance_km.png"),
    ]
