"""The figures of an online experiment, per arm, from its logged lists and the clicks and
applications credited to them (`recsys.attribution`): pure functions, no database.

The unit is the visitor: assignment is by visitor, so each visitor's count of credited
applications is one observation, and rates are per 1,000 visitors.

* Relative lift of an arm over the control: the ratio of mean applications per visitor
  minus 1, with a 95% interval by the delta method on the log of the ratio of two
  independent means, `se² = s_t² / (n_t · m_t²) + s_c² / (n_c · m_c²)` (sample variances),
  interval `(m_t / m_c) · exp(± z · se) − 1` (none when either arm has no application).
* Sample-ratio mismatch: Pearson's chi-square of the visitors per arm against the configured
  shares (k − 1 degrees of freedom); a p-value under `SRM_ALPHA` flags a broken assignment
  or logging, which voids the comparison.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

LEVEL = 0.95
SRM_ALPHA = 0.001
PER = 1000  # rates per this many visitors


@dataclass(frozen=True)
class Lift:
    """Relative lift of an arm's mean over the control's, with its interval."""

    lift: float
    low: float
    high: float
    level: float = LEVEL


def relative_lift(treatment: np.ndarray, control: np.ndarray, level: float = LEVEL) -> Lift | None:
    """The delta-method interval of the module docstring; None when an arm has fewer than
    two visitors or a mean of zero (the log of the ratio is then undefined)."""
    t, c = np.asarray(treatment, dtype=float), np.asarray(control, dtype=float)
    if len(t) < 2 or len(c) < 2 or t.mean() <= 0 or c.mean() <= 0:
        return None
    ratio = t.mean() / c.mean()
    se = math.sqrt(
        t.var(ddof=1) / (len(t) * t.mean() ** 2) + c.var(ddof=1) / (len(c) * c.mean() ** 2)
    )
    z = float(stats.norm.ppf(0.5 + level / 2))
    return Lift(ratio - 1, ratio * math.exp(-z * se) - 1, ratio * math.exp(z * se) - 1, level)


@dataclass(frozen=True)
class SampleRatio:
    """The chi-square test of the visitors per arm against the configured shares."""

    chi2: float
    p_value: float
    expected: dict[str, float]
    mismatch: bool


def sample_ratio(visitors: Mapping[str, int], shares: Mapping[str, float]) -> SampleRatio:
    """Pearson's chi-square of `visitors` (per arm) against `shares` (per arm, summing to 1)."""
    arms = list(shares)
    observed = np.array([visitors.get(arm, 0) for arm in arms], dtype=float)
    total = observed.sum()
    expected = np.array([shares[arm] for arm in arms]) * total
    if total == 0:
        return SampleRatio(0.0, 1.0, dict.fromkeys(arms, 0.0), False)
    chi2, p_value = stats.chisquare(observed, expected)
    return SampleRatio(
        float(chi2),
        float(p_value),
        dict(zip(arms, expected.tolist(), strict=True)),
        bool(p_value < SRM_ALPHA),
    )


def per_visitor(lists: pd.DataFrame, credited: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each arm's credited events per visitor (visitors with none count 0), arm → counts.

    `lists`: one row per list, `requestId`, `userId`, `arm`; `credited`: one row per
    credited event, its list's `requestId`. An event is counted for the visitor of its list.
    """
    visitors = lists[["arm", "userId"]].drop_duplicates()
    owner = lists.set_index("requestId")[["arm", "userId"]]
    hits = credited[["requestId"]].join(owner, on="requestId", how="inner")
    counts = hits.groupby(["arm", "userId"]).size().rename("n")
    merged = visitors.join(counts, on=["arm", "userId"]).fillna({"n": 0})
    return {str(arm): group["n"].to_numpy(dtype=float) for arm, group in merged.groupby("arm")}


def summary(
    lists: pd.DataFrame,
    clicks: pd.DataFrame,
    applies: pd.DataFrame,
    shares: Mapping[str, float],
    programmes: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The experiment's figures (the report's JSON).

    Args:
        lists: one row per list of the experiment: `requestId`, `userId`, `arm`, `createdAt`.
        clicks, applies: one row per credited event (`recsys.attribution.attribute`, rows
            with a `requestId` of `lists`), with `missionId` and `createdAt`.
        shares: the configured share of each arm, the control first.
        programmes: offer id → programme, for the breakdown (none without it).

    Returns:
        `arms` (per arm: visitors, lists, clicks, applications, and per 1,000 visitors),
        `lifts` (each other arm against the control, applications and clicks per visitor),
        `sample_ratio`, `programmes` (applications per arm and programme), `daily`
        (applications per arm and day, for the plot).
    """
    lists = lists[lists["userId"].notna()]
    control = next(iter(shares))
    in_lists = set(lists["requestId"])
    clicks = clicks[clicks["requestId"].isin(in_lists)]
    applies = applies[applies["requestId"].isin(in_lists)]
    arm_of = lists.set_index("requestId")["arm"]
    click_counts, apply_counts = per_visitor(lists, clicks), per_visitor(lists, applies)
    arms: dict[str, dict[str, Any]] = {}
    for arm in shares:
        of_arm = lists[lists["arm"] == arm]
        visitors = int(of_arm["userId"].nunique())
        n_clicks = int(click_counts.get(arm, np.zeros(0)).sum())
        n_applies = int(apply_counts.get(arm, np.zeros(0)).sum())
        arms[arm] = {
            "share": shares[arm],
            "visitors": visitors,
            "lists": len(of_arm),
            "clicks": n_clicks,
            "applications": n_applies,
            "clicks_per_1000_visitors": PER * n_clicks / visitors if visitors else None,
            "applications_per_1000_visitors": PER * n_applies / visitors if visitors else None,
            "applications_per_1000_visitors_interval": _rate_interval(apply_counts.get(arm)),
        }
    lifts = {}
    for arm in list(shares)[1:]:
        lifts[arm] = {
            metric: _as_dict(relative_lift(counts.get(arm, []), counts.get(control, [])))
            for metric, counts in (("applications", apply_counts), ("clicks", click_counts))
        }
    by_programme: dict[str, dict[str, int]] = {}
    if programmes is not None:
        named = applies.assign(
            arm=applies["requestId"].map(arm_of),
            programme=applies["missionId"].map(programmes).fillna("unknown"),
        )
        table = named.groupby(["programme", "arm"]).size()
        for (programme, arm), count in table.items():
            by_programme.setdefault(str(programme), dict.fromkeys(shares, 0))[str(arm)] = int(count)
    daily = applies.assign(
        arm=applies["requestId"].map(arm_of),
        day=pd.to_datetime(applies["createdAt"], utc=True).dt.strftime("%Y-%m-%d"),
    )
    daily_counts = {
        arm: {str(day): int(n) for day, n in group.groupby("day").size().items()}
        for arm, group in daily.groupby("arm")
    }
    return {
        "control": control,
        "arms": arms,
        "lifts": lifts,
        "sample_ratio": asdict(sample_ratio({a: v["visitors"] for a, v in arms.items()}, shares)),
        "programmes": dict(sorted(by_programme.items())),
        "daily": {arm: daily_counts.get(arm, {}) for arm in shares},
    }


def _rate_interval(counts: np.ndarray | None, level: float = LEVEL) -> list[float] | None:
    """A normal interval of an arm's mean per visitor, per 1,000 visitors, its low end
    clipped at 0 (None below two visitors)."""
    if counts is None or len(counts) < 2:
        return None
    z = float(stats.norm.ppf(0.5 + level / 2))
    half = z * counts.std(ddof=1) / math.sqrt(len(counts))
    return [PER * max(counts.mean() - half, 0.0), PER * (counts.mean() + half)]


def _as_dict(lift: Lift | None) -> dict[str, float] | None:
    return None if lift is None else asdict(lift)
