"""`recsys ab report`: an online experiment's figures from the event store, as JSON and as a
self-contained HTML page (plots embedded as PNG data URIs, nothing fetched when opened).

The store holds everything: the experiment's design as the service first ran it
(`EventStore.read_experiments`), its stop if an admin call stopped it, every list with its
arm (`EventStore.read_rankings`), and the prints, clicks and applies the front sent. Clicks
and applications are credited to lists by `recsys.attribution`; the figures are
`recsys.abtest.summary`'s. The programme breakdown needs the offers (`--offers`, default
RECSYS_CATALOG): the store keeps offer ids only.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from recsys import abtest
from recsys.attribution import DEFAULT_WINDOW, attribute
from recsys.report.figures import OTHER_COLORS, data_uri
from serving.catalog import read_offers
from serving.events import EventStore
from serving.experiments import STOP_ACTION


class ReportError(ValueError):
    """Nothing to report: no such experiment in the store (the message says what there is)."""


def build_report(
    store: EventStore,
    experiment: str | None = None,
    window: timedelta = DEFAULT_WINDOW,
    offers: Path | None = None,
) -> dict[str, Any]:
    """The report's content (what `--json` writes).

    Raises:
        ReportError: the store has no experiment, or none of that name.
    """
    designs = store.read_experiments()
    if not designs:
        raise ReportError("no experiment recorded in this event store")
    name = experiment or list(designs)[-1]
    if name not in designs:
        raise ReportError(f"--experiment: no experiment {name!r} (recorded: {', '.join(designs)})")
    design = designs[name]
    shares = {arm["name"]: arm["share"] for arm in design["arms"]}
    everything = store.read_rankings()  # credits go to the last list, of any arm or none
    lists = everything[everything["experiment"] == name].drop_duplicates("requestId")
    lists = lists[["requestId", "userId", "arm", "createdAt"]]
    events = store.read_events()
    applies = attribute(events, everything, "apply", window)
    clicks = attribute(events, everything, "click", window)
    programmes = None
    if offers is not None:
        frame = read_offers(offers)[0]
        programmes = dict(zip(frame["id"], frame["type"], strict=True))
    stopped = [
        arguments["at"]
        for _, action, arguments in store.admin_actions(after=0)
        if action == STOP_ACTION and arguments.get("name") == name
    ]
    return {
        "experiment": name,
        "design": design,
        "stopped_at": stopped[0] if stopped else None,
        "window_days": window / timedelta(days=1),
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "first_list": _stamp(lists["createdAt"].min()),
        "last_list": _stamp(lists["createdAt"].max()),
        "unattributed_applications": int(applies["requestId"].isna().sum()),
        **abtest.summary(
            lists,
            clicks.dropna(subset=["requestId"]),
            applies.dropna(subset=["requestId"]),
            shares,
            programmes,
        ),
    }


def _stamp(value: Any) -> str | None:
    return None if pd.isna(value) else pd.Timestamp(value).isoformat(timespec="seconds")


def _colors(arms: list[str]) -> dict[str, str]:
    return {arm: OTHER_COLORS[i % len(OTHER_COLORS)] for i, arm in enumerate(arms)}


def rates_figure(report: dict[str, Any]) -> Figure:
    """Applications per 1,000 visitors per arm, with each arm's 95% interval."""
    arms = list(report["arms"])
    colors = _colors(arms)
    figure = Figure(figsize=(6, 3.2))
    axes = figure.add_subplot()
    values = [report["arms"][arm]["applications_per_1000_visitors"] or 0.0 for arm in arms]
    errors = np.zeros((2, len(arms)))
    for i, arm in enumerate(arms):
        interval = report["arms"][arm]["applications_per_1000_visitors_interval"]
        if interval is not None:
            errors[:, i] = [values[i] - interval[0], interval[1] - values[i]]
    axes.bar(arms, values, yerr=errors, capsize=6, color=[colors[a] for a in arms])
    axes.set_ylabel("applications per 1,000 visitors")
    axes.set_title("Applications per 1,000 visitors (95% interval)")
    figure.tight_layout()
    return figure


def cumulative_figure(report: dict[str, Any]) -> Figure:
    """Credited applications accumulated day by day, per arm."""
    colors = _colors(list(report["arms"]))
    figure = Figure(figsize=(6, 3.2))
    axes = figure.add_subplot()
    for arm, days in report["daily"].items():
        if days:
            index = pd.to_datetime(list(days))
            axes.step(
                index,
                np.cumsum(list(days.values())),
                where="post",
                marker="o",
                label=arm,
                color=colors[arm],
            )
    axes.set_ylabel("applications")
    axes.set_title("Cumulative credited applications")
    if any(report["daily"].values()):
        axes.legend()
    figure.autofmt_xdate()
    figure.tight_layout()
    return figure


def programmes_figure(report: dict[str, Any]) -> Figure:
    """Credited applications per programme, bars grouped by arm."""
    arms = list(report["arms"])
    colors = _colors(arms)
    programmes = list(report["programmes"])
    figure = Figure(figsize=(6, 0.5 + 0.45 * max(len(programmes), 1) * len(arms) ** 0.5))
    axes = figure.add_subplot()
    height = 0.8 / len(arms)
    for i, arm in enumerate(arms):
        counts = [report["programmes"][p][arm] for p in programmes]
        positions = np.arange(len(programmes)) + i * height
        axes.barh(positions, counts, height=height, label=arm, color=colors[arm])
    axes.set_yticks(np.arange(len(programmes)) + 0.4 - height / 2, programmes)
    axes.invert_yaxis()
    axes.set_xlabel("credited applications")
    axes.legend()
    figure.tight_layout()
    return figure


TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>A/B report: {{ r.experiment }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #161616; }
table { border-collapse: collapse; margin: 1rem 0; }
th, td { padding: .3rem .7rem; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child, .text { text-align: left; }
.warn { color: #ce0500; font-weight: bold; } .ok { color: #18753c; }
img { max-width: 100%; }
</style></head><body>
<h1>A/B report: {{ r.experiment }}</h1>
<p>Lists from {{ r.first_list or "–" }} to {{ r.last_list or "–" }}
{%- if r.stopped_at %}; stopped by an admin call at {{ r.stopped_at }}{% endif %}.
Applications are credited to the list that led to them by the requestId / clickId chain,
else to the last list that showed the offer to the visitor within {{ r.window_days|round(1) }}
days; {{ r.unattributed_applications }} applications went to no list. Generated
{{ r.generated_at }}.</p>
<h2>Arms</h2>
<table><tr><th>arm</th><th>share</th><th class="text">serves</th><th>visitors</th><th>lists</th>
<th>clicks</th><th>applications</th><th>clicks / 1,000 visitors</th>
<th>applications / 1,000 visitors</th></tr>
{% for arm, a in r.arms.items() %}<tr>
<td>{{ arm }}{% if arm == r.control %} (control){% endif %}</td>
<td>{{ a.share }}</td><td class="text">{{ serves[arm] }}</td>
<td>{{ a.visitors }}</td><td>{{ a.lists }}</td>
<td>{{ a.clicks }}</td><td>{{ a.applications }}</td><td>{{ a.clicks_per_1000_visitors|rate }}</td>
<td>{{ a.applications_per_1000_visitors|rate }}</td></tr>
{% endfor %}</table>
<h2>Lift against {{ r.control }}</h2>
<table><tr><th>arm</th><th>applications per visitor</th><th>clicks per visitor</th></tr>
{% for arm, l in r.lifts.items() %}<tr><td>{{ arm }}</td>
<td>{{ l.applications|lift }}</td><td>{{ l.clicks|lift }}</td></tr>{% endfor %}</table>
<p>Relative lift of the mean per visitor, 95% interval by the delta method; an interval that
excludes 0 is a difference at that level.</p>
<h2>Sample ratio</h2>
{% set s = r.sample_ratio %}
<p class="{{ 'warn' if s.mismatch else 'ok' }}">Chi-square {{ s.chi2|round(3) }}, p = {{
'%.3g'|format(s.p_value) }}: {{ 'MISMATCH: the visitors per arm are not the configured shares;
the comparison is void until the cause is found' if s.mismatch else 'visitors per arm agree
with the configured shares' }}.</p>
<p><img alt="applications per 1,000 visitors" src="{{ figures.rates }}"></p>
<p><img alt="cumulative applications" src="{{ figures.cumulative }}"></p>
<h2>Per programme</h2>
{% if r.programmes %}<table><tr><th>programme</th>{% for arm in r.arms %}<th>{{ arm }}</th>
{% endfor %}</tr>{% for programme, counts in r.programmes.items() %}<tr><td>{{ programme }}</td>
{% for arm in r.arms %}<td>{{ counts[arm] }}</td>{% endfor %}</tr>{% endfor %}</table>
<p><img alt="applications per programme" src="{{ figures.programmes }}"></p>
{% else %}<p>No breakdown: give the offers (--offers, or RECSYS_CATALOG) to name each
application's programme.</p>{% endif %}
</body></html>
"""


def _rate(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def _lift(value: dict[str, float] | None) -> str:
    if value is None:
        return "– (an arm without any)"
    return f"{value['lift']:+.1%} [{value['low']:+.1%}, {value['high']:+.1%}]"


def render_html(report: dict[str, Any]) -> str:
    """The report as one HTML page."""
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    environment.filters.update({"rate": _rate, "lift": _lift})
    figures = {
        "rates": data_uri(rates_figure(report)),
        "cumulative": data_uri(cumulative_figure(report)),
    }
    if report["programmes"]:
        figures["programmes"] = data_uri(programmes_figure(report))
    serves = {
        arm["name"]: arm.get("model_uri")
        or ("rules" if arm.get("policy") == "rules" else "the service's model")
        for arm in report["design"]["arms"]
    }
    return environment.from_string(TEMPLATE).render(r=report, figures=figures, serves=serves)
