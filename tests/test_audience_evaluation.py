"""The audience evaluation (hand-computed metrics on a tiny case), the crisis scenario of the
simulator, and the `recsys audience` command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from engagement.cli import app
from recsys import metrics, taxonomy
from recsys.audience import TERM_WEIGHTS
from recsys.geo import haversine_km
from recsys.simulation.config import get_preset
from recsys.simulation.crisis import add_crisis
from recsys.simulation.simulator import simulate
from recsys.simulation.truth import load_truth
from tests.fixtures import PARIS, make_profiles_frame
from tests.service_fixtures import write_world


def test_people_as_items_metrics_by_hand() -> None:
    """Two offers: the first's two applicants ranked 1st and 4th, the second's one absent."""
    recommended = np.array([[7, 3, 5, 2], [1, 2, 3, 4]])
    relevant = [np.array([2, 7]), np.array([9])]
    values = metrics.ranking_metrics(recommended, relevant, (1, 4))
    # Offer 1: recall@1 = 1/2, recall@4 = 1; offer 2: 0. Means over the two offers.
    assert values["recall@1"] == pytest.approx(0.25)
    assert values["recall@4"] == pytest.approx(0.5)
    # NDCG@4 of offer 1: (1 + 1/log2(5)) / (1 + 1/log2(3)).
    ndcg = (1 + 1 / np.log2(5)) / (1 + 1 / np.log2(3))
    assert values["ndcg@4"] == pytest.approx(ndcg / 2, rel=1e-12)


@pytest.fixture(scope="module")
def crisis_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("crisis") / "tiny"
    simulate(get_preset("tiny"), 3, out)
    add_crisis(out, 3)
    return out


def test_the_crisis_adds_local_offers_and_their_answers(crisis_world: Path) -> None:
    manifest = json.loads((crisis_world / "manifest.json").read_text())
    crisis = manifest["crisis"]
    offers = pd.read_parquet(crisis_world / "offers.parquet")
    events = pd.read_parquet(crisis_world / "events.parquet")
    profiles = pd.read_parquet(crisis_world / "profiles.parquet")
    mine = offers.loc[offers["id"].isin(crisis["offers"])]
    assert len(mine) == 4 and set(mine["departmentCode"]) == {crisis["department"]}
    assert set(mine["type"]) == {taxonomy.BENEVOLAT} and not mine["openToMinors"].any()
    applies = events.loc[(events["type"] == "apply") & events["missionId"].isin(crisis["offers"])]
    assert len(applies) == crisis["applies"] > 0
    posted = pd.Timestamp(crisis["posted_at"])
    assert (applies["createdAt"] > posted).all()
    assert applies["createdAt"].max() < pd.Timestamp(manifest["end"], tz="UTC") + pd.Timedelta(
        days=1
    )
    # Answers come from adults within reach, under their stable ids.
    who = profiles.set_index("userId").loc[applies["userId"].astype(str)]
    truth = load_truth(crisis_world)
    rows = truth.person_index(applies["userId"].astype(str).to_numpy())
    distance = haversine_km(
        truth.people.lat[rows], truth.people.lon[rows], crisis["lat"], crisis["lon"]
    )
    assert (distance <= crisis["config"]["reach_km"]).all()
    assert (truth.people.age[rows] >= taxonomy.ADULT_AGE).all()
    assert len(who) == len(applies)
    # The oracle can score the crisis offers.
    assert set(crisis["offers"]) <= set(truth.offers.ids)
    # Each answer is a print, a click and an apply chained by requestId and clickId.
    chain = events.loc[events["missionId"].isin(crisis["offers"])]
    assert chain["type"].value_counts().to_dict() == {
        "print": len(applies),
        "click": len(applies),
        "apply": len(applies),
    }
    assert chain.groupby("requestId")["type"].nunique().eq(3).all()


def test_the_simulate_command_refuses_an_unknown_scenario(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["simulate", "--preset", "tiny", "--out", str(tmp_path), "--scenario", "war"]
    )
    assert result.exit_code == 2
    assert "scenario" in result.output


def test_the_audience_command_writes_rows_totals_and_audit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = write_world(tmp_path / "world")
    ids = [f"yes-{i}" for i in range(15)]
    profiles = make_profiles_frame(
        len(ids), userId=ids, lat=PARIS[0], lon=PARIS[1], contactConsent=True
    )
    profiles.to_parquet(world["profiles"], index=False)
    store = f"sqlite:///{tmp_path / 'events.db'}"
    monkeypatch.setenv("RECSYS_MODEL_URI", str(world["bundle"]))
    monkeypatch.setenv("RECSYS_CATALOG", str(world["catalog"]))
    monkeypatch.setenv("RECSYS_EVENT_STORE_URL", store)
    monkeypatch.setenv("RECSYS_ID_SALT", "cli-salt")
    runner = CliRunner()
    need = tmp_path / "need.yaml"
    need.write_text(
        "title: Collecte\n"
        "domains: [solidarite-insertion]\n"
        f"place: {{lat: {PARIS[0]}, lon: {PARIS[1]}}}\n"
        "radius_km: 10\n"
        f"start: {pd.Timestamp.now(tz='UTC').isoformat()}\n"
    )
    out = tmp_path / "audience.csv"
    args = ["audience", "--need", str(need), "--k", "12", "--out", str(out)]
    result = runner.invoke(app, [*args, "--profiles", str(world["profiles"]), "--requester", "zoe"])
    assert result.exit_code == 0, result.output
    rows = pd.read_csv(out)
    assert len(rows) == 12 and list(rows.columns) == ["person", "score", "distanceBand", "reasons"]
    totals = json.loads(out.with_suffix(".totals.json").read_text())
    assert totals["eligible"] == 15 and totals["department"] == {"75": 12}
    profiles = ["--profiles", str(world["profiles"])]
    small = runner.invoke(app, [*args, "--k", "30", *profiles, "--min-count", "20"])
    assert small.exit_code == 1 and "fewer than the minimum of 20" in small.output
    below = runner.invoke(app, [*args, *profiles, "--min-count", "20"])  # k 12 < 20
    assert below.exit_code == 2 and "k: 12 is below min_count 20" in below.output
    bad = runner.invoke(app, ["audience", "--offer", "x", "--need", str(need)])
    assert bad.exit_code == 2 and "exactly one" in bad.output
    need.write_text("domains: [nope]\ndepartments: ['75']\nstart: 2026-01-01T00:00:00Z\n")
    invalid = runner.invoke(app, ["audience", "--need", str(need)])
    assert invalid.exit_code == 2 and "domains" in invalid.output
    log = runner.invoke(app, ["audience", "log"])
    assert log.exit_code == 0
    lines = log.output.strip().splitlines()
    # Newest first: the bad need, both targets, k below the minimum, too small, served.
    assert len(lines) == 5
    assert "zoe (cli) need Collecte" in lines[4] and "served 12" in lines[4]
    assert "refused 0" in lines[3] and "fewer than the minimum of 20" in lines[3]
    assert "(cli) malformed request: refused 0 — k: 12 is below min_count 20" in lines[2]
    assert "malformed request: refused 0 — give exactly one of --offer" in lines[1]
    assert "malformed request: refused 0 — --need" in lines[0] and "domains" in lines[0]


@pytest.fixture(scope="module")
def crisis_features(crisis_world: Path) -> Path:
    from features.build import build_feature_set

    return build_feature_set(crisis_world, crisis_world.parent / "features")


def test_evaluation_on_the_crisis_world(crisis_world: Path, crisis_features: Path) -> None:
    from recsys.audience import Area, AudienceConfig
    from recsys.audience_evaluation import evaluate_audiences
    from recsys.featureset import load_feature_set

    feature_set = load_feature_set(crisis_features, "test")
    result = evaluate_audiences(
        feature_set, None, AudienceConfig(), truth_dir=crisis_world / "truth", ks=(10, 100)
    )
    assert set(result.methods) == {
        "audience",
        "nearest",
        "recent_domain",
        "random",
        "oracle",
        "oracle_utility",
    }
    offers = result.data["offers"]
    assert offers > 0
    for values in result.methods.values():
        assert values["users_evaluated"] == offers  # every offer counted, none dropped
        assert 0 <= values["recall@10"] <= values["recall@100"] <= 1
    assert result.data["relevant_eligible_share"] <= 1
    crisis = json.loads((crisis_world / "manifest.json").read_text())["crisis"]
    area = Area(lat=crisis["lat"], lon=crisis["lon"], radius_km=crisis["config"]["reach_km"])
    local = evaluate_audiences(
        feature_set, None, AudienceConfig(), offer_ids=crisis["offers"], area=area, ks=(10, 100)
    )
    assert local.data["offers"] == 4
    assert "oracle" not in local.methods


def test_tune_then_evaluate_from_the_command_line(crisis_features: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    experiment = ["--experiment", "experiments/popularity.yaml"]
    tuned = tmp_path / "tuned.yaml"
    tune = ["audience", "tune", "--features", str(crisis_features), *experiment]
    result = runner.invoke(app, [*tune, "--out", str(tuned)])
    assert result.exit_code == 0, result.output
    weights = yaml.safe_load(tuned.read_text())
    assert set(weights) == set(TERM_WEIGHTS.values()) and min(weights.values()) >= 0
    figures = tmp_path / "figures.json"
    args = ["audience", "evaluate", "--features", str(crisis_features), *experiment]
    result = runner.invoke(app, [*args, "--config", str(tuned), "--json", str(figures)])
    assert result.exit_code == 0, result.output
    assert "audience / best baseline recall@100" in result.output
    payload = json.loads(figures.read_text())
    assert set(payload["methods"]) >= {"audience", "nearest", "random", "oracle", "oracle_utility"}
    crisis = runner.invoke(app, [*args, "--offers", "crisis"])
    assert crisis.exit_code == 0, crisis.output
    assert "4 offers" in crisis.output
    tuned.write_text("nope_weight: 1\n")
    bad = runner.invoke(app, [*args, "--config", str(tuned)])
    assert bad.exit_code == 2 and "nope_weight" in bad.output


def test_expected_sessions_match_the_session_process() -> None:
    from recsys.simulation.diffusion import DAY, _gap_mean, expected_sessions

    start, end = 100 * DAY, 142 * DAY
    # Level 0: one session, at the arrival: inside the window or not.
    got = expected_sessions(np.array([110 * DAY, 90 * DAY, 150 * DAY]), np.zeros(3), start, end)
    np.testing.assert_allclose(got, [1.0, 0.0, 0.0], atol=1e-12)
    # Level 3, arrived 30 days before the window: the drawn process, 200,000 times.
    rng = np.random.default_rng(0)
    draws = 200_000
    count = 1 + rng.poisson(3.0, draws)
    gap = _gap_mean(count)
    inside = np.zeros(draws)
    arrival = 70 * DAY
    for i in range(int(count.max())):
        times = arrival + rng.gamma(np.maximum(i, 1), 1.0, draws) * gap * (i > 0)
        inside += (i < count) & (times >= start) & (times < end)
    expected = expected_sessions(np.array([arrival]), np.array([3.0]), start, end)[0]
    error = inside.std() / np.sqrt(draws)
    assert abs(expected - inside.mean()) < 4 * error
