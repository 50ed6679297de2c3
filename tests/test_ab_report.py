"""`recsys.abtest` against hand-computed figures, and `recsys ab report` over an event store."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from recsys import taxonomy
from recsys.abtest import relative_lift, sample_ratio, summary
from serving.cli import app
from serving.events import EVENT_COLUMNS, EventStore, Ranking
from serving.experiments import STOP_ACTION
from tests.fixtures import make_offers_frame
from tests.service_fixtures import POSTGRES_URL, postgres_available, postgres_schema

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
SC, BENEVOLAT = taxonomy.SERVICE_CIVIQUE, taxonomy.BENEVOLAT


def test_relative_lift_by_the_delta_method_by_hand() -> None:
    """t = [0, 1, 2, 1]: mean 1, variance 2/3; c = [0, 0, 1, 1]: mean 1/2, variance 1/3.
    Ratio 2; se² = (2/3) / (4 · 1) + (1/3) / (4 · 1/4) = 1/6 + 1/3 = 1/2;
    z · se = 1.959964 · 0.707107 = 1.385903 = ln 4 − 0.000391, e^1.385903 = 4 · 0.999609 =
    3.998436: lift 1, interval [2 / 3.998436 − 1, 2 · 3.998436 − 1] = [−0.499804, 6.996872]."""
    lift = relative_lift(np.array([0, 1, 2, 1]), np.array([0, 0, 1, 1]))
    assert lift is not None
    assert lift.lift == pytest.approx(1.0, abs=1e-12)
    assert lift.low == pytest.approx(-0.499804, abs=2e-6)
    assert lift.high == pytest.approx(6.996872, abs=2e-5)
    assert relative_lift(np.array([0, 0]), np.array([1, 0])) is None  # no application
    assert relative_lift(np.array([1]), np.array([1, 0])) is None  # one visitor


def test_sample_ratio_by_hand() -> None:
    """500 / 520 / 980 visitors for shares 1/4, 1/4, 1/2 of 2,000: expected 500, 500, 1,000;
    chi² = 0 + 20² / 500 + 20² / 1000 = 1.2; two degrees of freedom: p = e^(−0.6)."""
    check = sample_ratio({"a": 500, "b": 520, "c": 980}, {"a": 0.25, "b": 0.25, "c": 0.5})
    assert check.chi2 == pytest.approx(1.2, abs=1e-9)
    assert check.p_value == pytest.approx(math.exp(-0.6), abs=1e-9)
    assert not check.mismatch
    broken = sample_ratio({"a": 400, "b": 600}, {"a": 0.5, "b": 0.5})  # chi² = 40
    assert broken.chi2 == pytest.approx(40.0) and broken.mismatch
    assert not sample_ratio({}, {"a": 0.5, "b": 0.5}).mismatch


def _scenario_lists() -> pd.DataFrame:
    """Control A: u1 (r1, r2), u2 (r3); B: u3 (r4), u4 (r5), u5 (r6)."""
    rows = [
        ("r1", "u1", "A"),
        ("r2", "u1", "A"),
        ("r3", "u2", "A"),
        ("r4", "u3", "B"),
        ("r5", "u4", "B"),
        ("r6", "u5", "B"),
    ]
    return pd.DataFrame(
        [
            {"requestId": r, "userId": u, "arm": a, "createdAt": T0 + timedelta(hours=i)}
            for i, (r, u, a) in enumerate(rows)
        ]
    )


def test_summary_by_hand() -> None:
    """Applies credited to r1 (o1, Service Civique), r2 (o2, bénévolat), r4 (o1); clicks to r1,
    r3, r4, r5. A: 2 visitors, 3 lists, 2 clicks, 2 applications (1,000 per 1,000 visitors);
    B: 3, 3, 2, 1 (333.3). Applications per visitor: A [2, 0] (mean 1, variance 2),
    B [1, 0, 0] (mean 1/3, variance 1/3): ratio 1/3, se² = (1/3) / (3 · 1/9) + 2 / (2 · 1) = 2."""
    applies = pd.DataFrame(
        {
            "requestId": ["r1", "r2", "r4"],
            "missionId": ["o1", "o2", "o1"],
            "createdAt": [T0, T0 + timedelta(days=1), T0 + timedelta(days=1)],
        }
    )
    clicks = pd.DataFrame(
        {"requestId": ["r1", "r3", "r4", "r5"], "missionId": ["o1"] * 4, "createdAt": [T0] * 4}
    )
    report = summary(
        _scenario_lists(), clicks, applies, {"A": 0.4, "B": 0.6}, {"o1": SC, "o2": BENEVOLAT}
    )
    arms = report["arms"]
    assert [(a["visitors"], a["lists"], a["clicks"], a["applications"]) for a in arms.values()] == [
        (2, 3, 2, 2),
        (3, 3, 2, 1),
    ]
    assert arms["A"]["applications_per_1000_visitors"] == pytest.approx(1000.0)
    assert arms["B"]["applications_per_1000_visitors"] == pytest.approx(1000 / 3)
    lift = report["lifts"]["B"]["applications"]
    z_se = 1.959964 * math.sqrt(2)
    assert lift["lift"] == pytest.approx(-2 / 3)
    assert lift["low"] == pytest.approx(math.exp(-z_se) / 3 - 1, abs=1e-6)
    assert lift["high"] == pytest.approx(math.exp(z_se) / 3 - 1, abs=1e-6)
    assert report["programmes"] == {BENEVOLAT: {"A": 1, "B": 0}, SC: {"A": 1, "B": 1}}
    assert report["daily"] == {"A": {"2025-03-01": 1, "2025-03-02": 1}, "B": {"2025-03-02": 1}}
    assert report["control"] == "A" and not report["sample_ratio"]["mismatch"]


# --- The command over a store --------------------------------------------------------------------


def _store(url: str, db_schema: str | None = None) -> None:
    """An experiment "exp" (A control, B) and an older one; lists and events through the
    store's own writes; visitor ids as the front sends them (the store hashes them)."""
    store = EventStore(url, db_schema=db_schema, id_salt="s")
    design = {"name": "exp", "arms": [{"name": "A", "share": 0.5}, {"name": "B", "share": 0.5}]}
    store.record_experiment("older", {**design, "name": "older"})
    store.record_experiment("exp", design)
    lists = [  # request, visitor, arm, offers
        ("r1", "u1", "A", ["o1", "o2"]),
        ("r2", "u2", "A", ["o1"]),
        ("r3", "u3", "B", ["o2", "o1"]),
        ("r4", "u4", "B", ["o2"]),
        ("r5", "u5", None, ["o1"]),  # unassigned
    ]
    store.log_rankings(
        Ranking(
            rid,
            T0,
            "m/1",
            "c1",
            "cold_start",
            user,
            offers,
            [1.0] * len(offers),
            None if arm is None else "exp",
            arm,
        )
        for rid, user, arm, offers in lists
    )

    def event(id_: str, type_: str, user: str, offer: str, hours: int, **more: str) -> dict:
        return {
            **dict.fromkeys(EVENT_COLUMNS),
            "id": id_,
            "type": type_,
            "userId": user,
            "missionId": offer,
            "isBot": False,
            "createdAt": T0 + timedelta(hours=hours),
            **more,
        }

    store.add_events(
        [
            event("p1", "print", "u1", "o1", 1, requestId="r1"),
            event("c1", "click", "u1", "o1", 1, requestId="r1", clickId="c1"),
            event("a1", "apply", "u1", "o1", 2, clickId="c1"),  # chain via the click: r1
            event("c3", "click", "u3", "o2", 1, requestId="r3", clickId="c3"),
            event("a3", "apply", "u3", "o2", 30),  # window: r3
            event("a4", "apply", "u4", "o2", 24 * 9),  # nine days later: none
            event("a5", "apply", "u5", "o1", 3, requestId="r5"),  # an unassigned list
        ]
    )
    store.record_admin(STOP_ACTION, {"name": "exp", "at": (T0 + timedelta(days=2)).isoformat()})
    store.close()


def test_report_command_writes_the_figures_and_the_page(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    _store(url)
    offers = make_offers_frame(2, id=["o1", "o2"], type=[SC, BENEVOLAT])
    offers_path = tmp_path / "offers.parquet"
    offers.to_parquet(offers_path, index=False)
    out, figures = tmp_path / "report.html", tmp_path / "report.json"
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "ab",
            "report",
            "--store",
            url,
            "--out",
            str(out),
            "--json",
            str(figures),
            "--offers",
            str(offers_path),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "A: 2 visitors, 2 lists, 1 clicks, 1 applications (500.0 per 1,000" in result.output
    report = json.loads(figures.read_text())
    assert report["experiment"] == "exp"  # the last one recorded
    assert report["stopped_at"] == (T0 + timedelta(days=2)).isoformat()
    assert {
        arm: (a["visitors"], a["clicks"], a["applications"]) for arm, a in report["arms"].items()
    } == {"A": (2, 1, 1), "B": (2, 1, 1)}
    assert report["unattributed_applications"] == 1  # a4; a5 went to the unassigned list
    assert report["programmes"] == {BENEVOLAT: {"A": 0, "B": 1}, SC: {"A": 1, "B": 0}}
    lift = report["lifts"]["B"]["applications"]
    assert lift["lift"] == pytest.approx(0.0) and lift["low"] < 0 < lift["high"]
    page = out.read_text()
    assert page.count('src="data:image/png;base64,') == 3 and "http" not in page.replace(
        "http-equiv", ""
    )
    assert "exp" in page and "(control)" in page

    result = runner.invoke(
        app, ["ab", "report", "--store", url, "--json", str(figures), "--experiment", "nope"]
    )
    assert result.exit_code == 2 and "--experiment: no experiment 'nope'" in result.output
    result = runner.invoke(app, ["ab", "report", "--store", url])
    assert result.exit_code == 2 and "--out" in result.output
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    EventStore(empty).close()
    result = runner.invoke(app, ["ab", "report", "--store", empty, "--json", str(figures)])
    assert result.exit_code == 2 and "no experiment recorded" in result.output


@pytest.fixture
def pg_schema() -> Iterator[str]:
    if not postgres_available():
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is unreachable")
    with postgres_schema() as name:
        yield name


@pytest.mark.postgres
def test_report_from_a_postgres_store(pg_schema: str, tmp_path: Path) -> None:
    _store(POSTGRES_URL, pg_schema)
    figures = tmp_path / "report.json"
    result = CliRunner().invoke(
        app,
        ["ab", "report", "--store", POSTGRES_URL, "--schema", pg_schema, "--json", str(figures)],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(figures.read_text())
    assert {
        arm: (a["visitors"], a["clicks"], a["applications"]) for arm, a in report["arms"].items()
    } == {"A": (2, 1, 1), "B": (2, 1, 1)}
    assert report["programmes"] == {} and report["unattributed_applications"] == 1
