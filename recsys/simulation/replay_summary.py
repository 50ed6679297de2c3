"""Figures of a closed-loop replay: per policy, means over the repeats with 95% intervals,
the six-month projection and the plot of cumulative applications.

The interval of a figure is Student's t interval of its mean over the R repeats,
`mean ± t(0.975, R − 1) · sd / √R` (sd with R − 1 degrees of freedom): the repeats are
independent replays of the same weeks, so their spread is what another replay would show.
With one repeat there is no spread to measure: the interval is the mean itself, flagged.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from recsys import taxonomy
from recsys.simulation.replay import RunResult

SIX_MONTHS_WEEKS = 26
OBJECTIVE = 2_000  # applications to public programmes in six months (DOMAIN.md section 1)
LEVEL = 0.95


def interval(values: Sequence[float], level: float = LEVEL) -> dict[str, float]:
    """Mean and Student's t interval of the mean of `values` (one value per repeat)."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"values: expected a non-empty 1-D sequence, got shape {x.shape}")
    mean = float(x.mean())
    if x.size == 1:
        return {"mean": mean, "low": mean, "high": mean, "repeats": 1}
    half = float(stats.t.ppf(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))
    return {"mean": mean, "low": mean - half, "high": mean + half, "repeats": int(x.size)}


def summarise(results: Sequence[RunResult]) -> dict[str, dict[str, Any]]:
    """Per policy: each headline figure with its interval, applications per programme and
    per week (mean and interval per week), in the order the policies first appear."""
    by_policy: dict[str, list[RunResult]] = {}
    for result in results:
        by_policy.setdefault(result.policy, []).append(result)
    out: dict[str, dict[str, Any]] = {}
    for policy, runs in by_policy.items():
        figures = [run.figures() for run in runs]
        weekly = np.array([run.weekly_applications for run in runs], dtype=np.float64)
        cumulative = np.cumsum(weekly, axis=1)
        programmes = np.array([run.programme_applications for run in runs], dtype=np.float64)
        out[policy] = {
            **{name: interval([f[name] for f in figures]) for name in figures[0]},
            "per_programme": {
                name: interval(programmes[:, i]) for i, name in enumerate(taxonomy.PROGRAMMES)
            },
            "per_week": [interval(weekly[:, w]) for w in range(weekly.shape[1])],
            "cumulative": [interval(cumulative[:, w]) for w in range(weekly.shape[1])],
            "week_start": runs[0].week_start,
        }
    return out


def ratio(
    results: Sequence[RunResult],
    policy: str,
    reference: str,
    level: float = LEVEL,
    figure: str = "applications",
) -> dict[str, float]:
    """`figure` (applications by default; `applications_known` or
    `applications_without_history` for one segment) of `policy` over `reference`, with the t
    interval of the per-repeat ratios (repeats share their random seed across policies, so
    they pair)."""
    mine = {r.repeat: r.figures()[figure] for r in results if r.policy == policy}
    theirs = {r.repeat: r.figures()[figure] for r in results if r.policy == reference}
    common = sorted(set(mine) & set(theirs))
    values = [mine[r] / theirs[r] for r in common if theirs[r] > 0]
    if not values:
        raise ValueError(f"ratio: no repeat where {reference} has applications")
    return interval(values, level)


def projection(
    summary: dict[str, dict[str, Any]],
    weeks: int,
    traffic: float | None,
    objective: float = OBJECTIVE,
) -> dict[str, Any]:
    """Applications over six months (26 weeks) at `traffic` served lists per month, and the
    traffic each policy needs to reach `objective` applications in that time.

    Assumes the applications per served list measured on the replay hold at that traffic:
    the same mix of visitors, surfaces and catalogue density, each list converting
    independently of the volume. Without `traffic`, the replay's own served lists per week,
    carried over 26 weeks. A month is 52/12 weeks.
    """
    months = SIX_MONTHS_WEEKS * 12 / 52
    out: dict[str, Any] = {
        "weeks": SIX_MONTHS_WEEKS,
        "traffic_lists_per_month": traffic,
        "objective": objective,
    }
    for policy, figures in summary.items():
        rate = figures["applications_per_1000_lists"]
        if traffic is None:
            lists = figures["lists"]["mean"] * SIX_MONTHS_WEEKS / weeks
        else:
            lists = traffic * months
        needed = objective * 1000.0 / rate["mean"] / months if rate["mean"] > 0 else None
        out[policy] = {key: rate[key] * lists / 1000.0 for key in ("mean", "low", "high")} | {
            "lists": lists,
            "lists_per_month_for_objective": needed,
        }
    return out


def plot_cumulative(summary: dict[str, dict[str, Any]], path: Path | str) -> Path:
    """PNG of cumulative applications per policy and week (mean line, 95% band)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 4.5))
    for policy, figures in summary.items():
        cumulative = figures["cumulative"]
        x = np.arange(1, len(cumulative) + 1)
        axis.plot(x, [c["mean"] for c in cumulative], label=policy)
        if cumulative and cumulative[0]["repeats"] > 1:
            low, high = [c["low"] for c in cumulative], [c["high"] for c in cumulative]
            axis.fill_between(x, low, high, alpha=0.2)
    axis.set_xlabel("replayed week")
    axis.set_ylabel("cumulative applications (served lists)")
    axis.set_title("Closed-loop replay: applications per policy")
    axis.legend()
    axis.grid(alpha=0.3)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
