"""Closed-loop replay on the tiny preset: deterministic, the oracle on top, intervals and
projection against hand-computed values, a policy that shows nothing, the command line."""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from engagement.cli import app
from recsys import taxonomy
from recsys.arrays import profile_arrays
from recsys.geo import haversine_km
from recsys.models.response import user_features
from recsys.policy import ListPolicy, group_codes, tie_keys
from recsys.ranking import top_k
from recsys.rules import search_radius_km
from recsys.schema import read_table
from recsys.simulation import get_preset, simulate
from recsys.simulation.config import BehaviourRates, SimulationConfig
from recsys.simulation.diffusion import WEEK
from recsys.simulation.replay import (
    SERVED_SOURCES,
    OfferOraclePolicy,
    OraclePolicy,
    Outcome,
    ProfileOraclePolicy,
    Replay,
    Requests,
    RunResult,
)
from recsys.simulation.replay_summary import interval, projection, ratio, summarise
from recsys.simulation.simulator import build_world
from recsys.simulation.truth import (
    N_DOMAINS,
    N_QUIZ_ACTIVITIES,
    Truth,
    distance_term,
    expected_utility,
    person_terms,
    population_quantiles,
    preference,
    utility,
)
from serving.engine import Engine
from serving.process import free_port
from serving.schemas import RankRequest
from serving.settings import REQUEST_CLOCK, Settings
from training.replay import (
    SERVED_OFFERS,
    ModelPolicy,
    parse_policies,
    replay_gate,
    run_replay,
    write_serving,
)
from training.replay_http import ServicePolicy

SEED = 5
WEEKS = 4


class ShowsNothing:
    """A policy whose every list is empty."""

    name = "nothing"
    learns = False

    def lists(self, requests: Requests) -> np.ndarray:
        return np.full((len(requests), int(requests.k.max())), -1, dtype=np.int64)

    def refit(self, now: int, events: pd.DataFrame) -> None:
        raise AssertionError("never called: the policy does not learn")

    def observe(self, requests: Requests, outcome: Outcome) -> None:
        assert len(outcome) == 0  # nothing shown, nothing done


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny")
    simulate(get_preset("tiny"), SEED, out)
    return out


@pytest.fixture(scope="module")
def replay(tiny_dir: Path) -> Replay:
    return Replay(tiny_dir, WEEKS)


def _same(a: RunResult, b: RunResult) -> None:
    assert a.figures() == b.figures()
    np.testing.assert_array_equal(a.weekly_applications, b.weekly_applications)
    np.testing.assert_array_equal(a.weekly_applications_all, b.weekly_applications_all)
    np.testing.assert_array_equal(a.programme_applications, b.programme_applications)
    np.testing.assert_array_equal(a.publisher_prints, b.publisher_prints)


def test_the_world_rebuilt_from_the_manifest_is_the_datasets(tiny_dir: Path) -> None:
    manifest = json.loads((tiny_dir / "manifest.json").read_text())
    config = SimulationConfig.from_dict(manifest["config"])
    assert config == get_preset("tiny")
    world = build_world(config, SEED)
    offers = read_table(tiny_dir / "offers.parquet")
    np.testing.assert_array_equal(
        world.offers.frame["id"].to_numpy(str), offers["id"].to_numpy(str)
    )
    assert len(world.sessions) == manifest["counts"]["sessions"]


def test_replay_is_deterministic_for_a_seed(replay: Replay, tiny_dir: Path) -> None:
    oracle = OraclePolicy(replay.world)
    _same(replay.run(oracle, 0), replay.run(oracle, 0))
    _same(replay.run(oracle, 1), Replay(tiny_dir, WEEKS).run(oracle, 1))
    assert replay.run(oracle, 0).figures() != replay.run(oracle, 1).figures()


def test_a_learning_policy_is_deterministic_and_retrained(replay: Replay, tmp_path: Path) -> None:
    def run(folder: str) -> tuple[RunResult, ModelPolicy]:
        policy = ModelPolicy(
            "popularity", replay.world.offers.frame, replay.profiles, tmp_path / folder
        )
        return replay.run(policy, 0, retrain_weeks=2), policy

    (first, policy), (second, _) = run("a"), run("b")
    _same(first, second)
    assert len(policy.fit_seconds) == WEEKS // 2  # weeks 1 and 3
    assert first.lists > 0 and first.prints > 0


def test_a_policy_that_shows_nothing_gets_no_application(replay: Replay) -> None:
    result = replay.run(ShowsNothing(), 0)
    assert result.lists > 0  # the sessions were served...
    assert result.prints == result.clicks == result.applications == 0  # ...with nothing
    assert result.programme_applications.sum() == 0
    assert result.weekly_applications_all.sum() > 0  # other sources keep their lists
    assert result.figures()["applications_per_1000_lists"] == 0.0


@pytest.mark.slow
def test_the_oracle_beats_every_policy_in_expectation(replay: Replay, tmp_path: Path) -> None:
    repeats = range(3)
    oracle = OraclePolicy(replay.world)
    mean = {
        "oracle": np.mean([replay.run(oracle, r).applications for r in repeats]),
        "nothing": np.mean([replay.run(ShowsNothing(), r).applications for r in repeats]),
    }
    for name in ("incumbent_local", "popularity"):
        mean[name] = np.mean(
            [
                replay.run(
                    ModelPolicy(name, replay.world.offers.frame, replay.profiles, tmp_path / name),
                    r,
                    retrain_weeks=WEEKS,
                ).applications
                for r in repeats
            ]
        )
    assert mean["oracle"] > 0
    assert all(mean["oracle"] >= value for value in mean.values()), mean


def test_interval_by_hand() -> None:
    # mean 2.5, sd (ddof 1) sqrt(5/3) = 1.290994, t(0.975, 3) = 3.182446,
    # half-width 3.182446 * 1.290994 / 2 = 2.054260.
    found = interval([1.0, 2.0, 3.0, 4.0])
    assert found["mean"] == 2.5
    assert found["low"] == pytest.approx(2.5 - 2.054260, abs=1e-6)
    assert found["high"] == pytest.approx(2.5 + 2.054260, abs=1e-6)
    assert found["repeats"] == 4
    assert interval([7.0]) == {"mean": 7.0, "low": 7.0, "high": 7.0, "repeats": 1}
    with pytest.raises(ValueError, match="values"):
        interval([])


def _run(policy: str, repeat: int, weekly: list[int], lists: int, **extra: int) -> RunResult:
    return RunResult(
        policy=policy,
        repeat=repeat,
        week_start=["2026-03-02", "2026-03-09"],
        weekly_applications=np.array(weekly),
        weekly_applications_all=np.array(weekly) * 2,
        programme_applications=np.array([sum(weekly), 0, 0, 0]),
        lists=lists,
        prints=extra.get("prints", 100),
        clicks=extra.get("clicks", 10),
        new_offer_applications=extra.get("new", 0),
        known_applications=extra.get("known", 0),
        known_lists=extra.get("known_lists", 0),
        publisher_prints=np.array([1.0, 1.0]),
    )


def test_summary_projection_and_ratio_by_hand() -> None:
    results = [
        _run("a", 0, [2, 4], 200, clicks=10, new=3),  # 30 per 1000 lists, ctr 0.10, new 0.5
        _run("a", 1, [3, 5], 200, clicks=20, new=2),  # 40 per 1000 lists, ctr 0.20, new 0.25
        _run("b", 0, [1, 2], 200),
        _run("b", 1, [2, 2], 200),
    ]
    summary = summarise(results)
    half = 12.706205 * np.sqrt(50.0) / np.sqrt(2.0)  # t(0.975, 1) · sd / √2 of (30, 40)
    rate = summary["a"]["applications_per_1000_lists"]
    assert rate["mean"] == pytest.approx(35.0)
    assert rate["high"] - rate["mean"] == pytest.approx(half, rel=1e-6)
    assert summary["a"]["applications"]["mean"] == pytest.approx(7.0)
    assert summary["a"]["click_through"]["mean"] == pytest.approx(0.15)
    assert summary["a"]["new_offer_share"]["mean"] == pytest.approx(0.375)
    assert summary["a"]["gini_publisher"]["mean"] == 0.0
    assert summary["a"]["per_week"][1]["mean"] == pytest.approx(4.5)
    assert summary["a"]["cumulative"][1]["mean"] == pytest.approx(7.0)
    assert summary["a"]["per_programme"]["benevolat"]["mean"] == pytest.approx(7.0)

    # 6 / 3 and 8 / 4: both 2.
    assert ratio(results, "a", "b") == {"mean": 2.0, "low": 2.0, "high": 2.0, "repeats": 2}

    # 35 per 1000 lists, 10,000 lists a month over 26 weeks (6 months at 52/12 weeks a month).
    projected = projection(summary, weeks=2, traffic=10_000)
    assert projected["a"]["mean"] == pytest.approx(35.0 * 10_000 * 12 / 52 * 26 / 1000)
    # 2,000 applications at 35 per 1000 lists: 57,142.9 lists in 6 months, 9,523.8 a month.
    assert projected["a"]["lists_per_month_for_objective"] == pytest.approx(2000 / 0.035 / 6)
    # Without traffic: the replay's 200 lists per 2 weeks carried over 26 weeks.
    assert projection(summary, weeks=2, traffic=None)["a"]["mean"] == pytest.approx(
        35.0 * 200 * 13 / 1000
    )


def test_segment_ratios_by_hand() -> None:
    """Applications split by people with a history and without, and their paired ratios."""
    results = [
        _run("a", 0, [2, 4], 200, known=4, known_lists=50),
        _run("a", 1, [3, 5], 200, known=6, known_lists=50),
        _run("b", 0, [1, 2], 200, known=1, known_lists=50),
        _run("b", 1, [2, 2], 200, known=3, known_lists=50),
    ]
    figures = results[0].figures()
    assert (figures["applications_known"], figures["applications_without_history"]) == (4.0, 2.0)
    assert figures["lists_known"] == 50.0
    # Known: 4 / 1 and 6 / 3, mean 3; without history: 2 / 2 and 2 / 1, mean 1.5.
    assert ratio(results, "a", "b", figure="applications_known")["mean"] == pytest.approx(3.0)
    assert ratio(results, "a", "b", figure="applications_without_history")["mean"] == pytest.approx(
        1.5
    )


def test_the_segments_add_up(replay: Replay) -> None:
    """Every served application is of someone with a history or without; people with a
    history are a part of the served lists, the identified ones only."""
    result = replay.run(OraclePolicy(replay.world), 0)
    figures = result.figures()
    assert figures["applications_known"] + figures["applications_without_history"] == (
        result.applications
    )
    assert 0 < result.known_lists < result.lists
    assert 0 < result.known_applications < result.applications
    # Anonymous sessions are a part of the people without history.
    assert 0 < result.anonymous_lists <= result.lists - result.known_lists
    assert 0 < figures["applications_anonymous"] <= figures["applications_without_history"]


class Blindfolded:
    """A policy asking another for its lists with every session's person scrambled."""

    learns = False

    def __init__(self, inner: OfferOraclePolicy | ProfileOraclePolicy) -> None:
        self.inner = inner
        self.name = inner.name

    def lists(self, requests: Requests) -> np.ndarray:
        scrambled = np.random.default_rng(0).permutation(requests.person)
        return self.inner.lists(dataclasses.replace(requests, person=scrambled))

    def refit(self, now: int, events: pd.DataFrame) -> None:
        raise AssertionError("never called: the policy does not learn")

    def observe(self, requests: Requests, outcome: Outcome) -> None:
        """Nothing to learn."""


def test_the_offer_oracle_never_reads_who_is_behind_a_session(replay: Replay) -> None:
    offer_oracle = OfferOraclePolicy(replay.world)
    _same(replay.run(offer_oracle, 0), replay.run(Blindfolded(offer_oracle), 0))


def test_the_profile_oracle_never_reads_who_is_behind_a_session(replay: Replay) -> None:
    profile_oracle = ProfileOraclePolicy(replay.world)
    _same(replay.run(profile_oracle, 0), replay.run(Blindfolded(profile_oracle), 0))


def test_the_profile_oracle_scores_by_hand(replay: Replay) -> None:
    """The person's terms read from their profile by ridge least squares over the population
    (solved here as the augmented least-squares problem [X; √λ I] B = [Y; 0], another route
    to the same minimiser), then the utility's formula written out term by term, plus the
    distance term from the request's place; a request without a place takes each offer's
    mean distance term over the population (all of it: the tiny world is smaller than the
    sample). The two routes agree to rounding: 1e-9 against terms of order 1."""
    world = replay.world
    truth, w = world.truth, world.truth.weights
    requests = _first_request_placeless(replay)
    scores = ProfileOraclePolicy(world).scores(requests)

    frame = world.people.frame
    x = user_features(profile_arrays(frame))
    y = person_terms(truth, truth.person_index(frame["userId"].to_numpy())).matrix()
    ridge = ProfileOraclePolicy.RIDGE * float((x * x).sum()) / x.shape[1]
    reading = np.linalg.lstsq(
        np.vstack([x, np.sqrt(ridge) * np.eye(x.shape[1])]),
        np.vstack([y, np.zeros((x.shape[1], y.shape[1]))]),
        rcond=None,
    )[0]
    arrays = profile_arrays(requests.profiles)
    terms = user_features(arrays) @ reading
    edges = np.cumsum([N_DOMAINS, N_QUIZ_ACTIVITIES, len(taxonomy.PROGRAMMES), 1])
    offers = requests.columns
    o = truth.offers

    def liking(row: int) -> np.ndarray:
        log_domain, log_activity, programme, pay, rhythm = np.split(terms[row], edges)
        return (
            w.domain * log_domain[o.domain[offers]]
            + w.activity * o.activity_mix[offers] @ log_activity
            + programme[o.programme[offers]]
            + w.pay * pay[0] * o.paid[offers]
            + w.rhythm * rhythm[o.rhythm[offers]]
            + w.quality * o.quality[offers]
        )

    p = truth.people
    everyone = distance_term(truth, p.lat[:, None], p.lon[:, None], p.radius_km[:, None], offers)
    np.testing.assert_allclose(scores[0], liking(0) + everyone.mean(axis=0), atol=1e-9)
    i, distance = _located_distance_by_hand(truth, requests)
    np.testing.assert_allclose(scores[i], liking(i) + distance, atol=1e-9)


def _first_request_placeless(replay: Replay) -> Requests:
    """The first week's served requests, the first one stripped of its place."""
    requests = _first_week_requests(replay)
    profiles = requests.profiles.copy()
    profiles.loc[profiles.index[0], ["lat", "lon", "postalCode", "departmentCode"]] = None
    assert np.isnan(profile_arrays(profiles).lat[0])  # nowhere to place it
    return dataclasses.replace(requests, profiles=profiles)


def _located_distance_by_hand(truth: Truth, requests: Requests) -> tuple[int, np.ndarray]:
    """The first located request and the utility's distance term of each of the week's
    offers from its place and radius, written out: −w · log(1 + d / radius) on site, times
    the remote-possible share, the fully-remote constant."""
    arrays = profile_arrays(requests.profiles)
    located = np.flatnonzero(np.isfinite(arrays.lat))
    assert located.size > 0
    i = int(located[0])
    w, o, offers = truth.weights, truth.offers, requests.columns
    radius = float(search_radius_km(arrays)[i])
    on_site = -w.distance * np.log1p(
        haversine_km(arrays.lat[i], arrays.lon[i], o.lat[offers], o.lon[offers]) / radius
    )
    remote = o.remote[offers]
    distance = np.select(
        [
            remote == taxonomy.REMOTE_VALUES.index("full"),
            remote == taxonomy.REMOTE_VALUES.index("possible"),
        ],
        [np.full(len(offers), w.remote_full), w.remote_possible_share * on_site],
        on_site,
    )
    return i, distance


def _expected_by_hand(
    rates: BehaviourRates, noise: float, utilities: np.ndarray, nodes: int = 8
) -> np.ndarray:
    """Mean over the utilities' columns and over the pair noise (Gauss–Hermite) of
    sigmoid(c + u) · sigmoid(a + b · u), written out."""
    z, w = np.polynomial.hermite_e.hermegauss(nodes)
    w = w / np.sqrt(2 * np.pi)
    u = utilities[..., None] + noise * z
    click = 1 / (1 + np.exp(-(rates.click_intercept + u)))
    apply = 1 / (1 + np.exp(-(rates.apply_intercept + rates.apply_slope * u)))
    return (click * apply * w).sum(axis=-1).mean(axis=-1)


def test_the_offer_oracle_scores_by_hand(replay: Replay) -> None:
    """A located request: the offer's application chance over the people's preference
    quantiles, with the distance term from the request's place and radius; a request
    without a place: over the quantiles of the people's whole utility. The located ones are
    interpolated on a grid of step h = 0.05: the error of linear interpolation, h² / 8 ·
    f'', is below 1e-3 of f for these sigmoids (f''/f < 3)."""
    world = replay.world
    truth, rates, noise = world.truth, world.config.rates, world.config.weights.noise
    requests = _first_request_placeless(replay)
    scores = OfferOraclePolicy(world).scores(requests)
    preferences, utilities = population_quantiles(truth, OfferOraclePolicy.QUANTILE_LEVELS)
    offers = requests.columns
    w = truth.weights
    remote = truth.offers.remote[offers]
    full = remote == taxonomy.REMOTE_VALUES.index("full")
    placeless = np.where(
        full,
        _expected_by_hand(rates, noise, preferences[offers] + w.remote_full),
        _expected_by_hand(rates, noise, utilities[offers]),
    )
    np.testing.assert_allclose(scores[0], placeless, rtol=1e-3)
    i, by_hand = _located_distance_by_hand(truth, requests)
    near = by_hand >= OfferOraclePolicy.DISTANCE_GRID[0]  # farther ones are clipped
    assert near.sum() > 0
    expected = _expected_by_hand(rates, noise, preferences[offers] + by_hand[:, None])
    np.testing.assert_allclose(scores[i][near], expected[near], rtol=1e-3)


def test_population_quantiles_are_those_of_every_person(replay: Replay) -> None:
    """With a sample as large as the population: numpy's quantiles over every person of the
    oracle's utility matrix, and of the preference (utility minus the distance term). Sums
    in other orders differ by about eps · |u| per term."""
    truth = replay.world.truth
    levels = np.array([0.1, 0.5, 0.9])
    preferences, utilities = population_quantiles(truth, levels, sample=len(truth.people), block=7)
    every = expected_utility(truth, truth.people.ids, truth.offers.ids)
    np.testing.assert_allclose(utilities, np.quantile(every, levels, axis=0).T, atol=1e-10)
    people = np.arange(len(truth.people))[:, None]
    offers = np.arange(len(truth.offers))[None, :]
    liking = preference(truth, people, offers)
    np.testing.assert_allclose(preferences, np.quantile(liking, levels, axis=0).T, atol=1e-10)
    p = truth.people
    distances = distance_term(truth, p.lat[:, None], p.lon[:, None], p.radius_km[:, None], offers)
    np.testing.assert_allclose(liking + distances, every, atol=1e-10)


def test_cli_writes_the_figures_and_the_plot(tiny_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "replay.json"
    result = CliRunner().invoke(
        app,
        [
            "replay",
            "--data",
            str(tiny_dir),
            "--policies",
            "incumbent_local,oracle",
            "--weeks",
            "2",
            "--repeats",
            "2",
            "--traffic",
            "5000",
            "--json",
            str(out),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert list(document["policies"]) == ["incumbent_local", "oracle"]
    assert document["repeats"] == 2 and document["weeks"] == 2
    assert len(document["policies"]["oracle"]["per_week"]) == 2
    assert "incumbent_local/oracle" in document["ratios"]
    assert document["projection"]["traffic_lists_per_month"] == 5000
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "oracle" in result.output


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--policies", "hybrid,nope"], "--policies: unknown policy 'nope'"),
        (["--weeks", "60"], "--weeks: expected 1 to 51"),
        (["--repeats", "0"], "--repeats: expected at least 1"),
        (["--retrain-weeks", "0"], "--retrain-weeks: expected at least 1"),
        (["--traffic", "-3"], "--traffic: expected a positive number"),
        (["--url", "http://127.0.0.1:9", "--policies", "hybrid"], "--policies: not with --url"),
        (["--url", "http://127.0.0.1:9", "--serving-dir", "x"], "--serving-dir: not with --url"),
        (["--url", f"http://127.0.0.1:{free_port()}"], "--url: cannot reach http://127.0.0.1:"),
    ],
)
def test_cli_bad_input_names_the_option(tiny_dir: Path, arguments: list[str], message: str) -> None:
    result = CliRunner().invoke(
        app, ["replay", "--data", str(tiny_dir), "--weeks", "1", "--quiet", *arguments]
    )
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


def test_cli_refuses_a_folder_without_simulation(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["replay", "--data", str(tmp_path), "--quiet"])
    assert result.exit_code == 1
    assert "--data" in result.output and "manifest" in result.output


def test_the_ceilings_are_policies_by_name() -> None:
    assert parse_policies("offer_oracle, oracle,response") == ["offer_oracle", "oracle", "response"]
    with pytest.raises(ValueError, match=r"expected any of .*offer_oracle"):
        parse_policies("offer_orakle")


def test_run_replay_builds_named_policies_per_repeat(tiny_dir: Path) -> None:
    replayed, results = run_replay(tiny_dir, ["oracle", ShowsNothing()], 1, 2, 1)
    assert [(r.policy, r.repeat) for r in results] == [
        ("oracle", 0),
        ("nothing", 0),
        ("oracle", 1),
        ("nothing", 1),
    ]
    assert replayed.weeks == 1


def _first_week_requests(replay: Replay) -> Requests:
    """The served requests of the replay's first week."""
    week = replay.world.sessions
    t0 = int(replay.world.start.timestamp())
    rows = np.flatnonzero((week.time - t0) // WEEK == replay.first_week)
    served = rows[np.isin(week.source[rows], SERVED_SOURCES) & ~week.bot[rows] & ~week.seo[rows]]
    return replay._requests(
        served, replay.t_start, replay.t_start + WEEK, replay.world.offers, replay._applications
    )


def test_lists_of_several_lengths_are_the_core_policys(replay: Replay) -> None:
    """Each row holds the request's pages one after the other, each page the core policy's
    list of the page's length, as the service makes the page of a request's `offset`
    (`ListPolicy.order_page`): not a slice of one longer list."""
    oracle = OraclePolicy(replay.world)
    requests = _first_week_requests(replay)
    assert len(np.unique(requests.k)) > 1  # pages of several lengths
    sizes = replay.world.sessions.size[requests.session].astype(np.int64)
    assert (requests.k > sizes).any()  # pages after the first
    made = oracle.lists(requests)
    masks = requests.candidates()
    publisher, programme = group_codes(requests.catalog)
    keys = tie_keys(requests.catalog.ids)
    policy = ListPolicy()
    for i in range(len(requests)):
        scores = np.where(masks[i], 0.0, np.nan)
        offers_i = np.flatnonzero(masks[i])
        scores[offers_i] = utility(
            replay.world.truth, requests.person[[i] * len(offers_i)], requests.columns[offers_i]
        )
        k, size = int(requests.k[i]), int(sizes[i])
        first = policy.lists(scores[None, :], masks[i : i + 1], size, publisher, programme, keys)
        np.testing.assert_array_equal(made[i, :size], first[0])
        pool = top_k(
            scores[None, :],
            min(policy.paged_pool_size(size, k - size), len(scores)),
            masks[i : i + 1],
            keys,
        )[0]
        pool = pool[pool >= 0]
        for offset in range(0, k, size):
            page = pool[policy.order_page(publisher[pool], programme[pool], size, offset)]
            shown = made[i, offset : offset + size]
            np.testing.assert_array_equal(shown[shown >= 0], page)
        assert (made[i, k:] == -1).all()
        assert (made[i][made[i] >= 0] < len(requests.columns)).all()


def test_a_model_policy_lists_what_the_service_lists(replay: Replay, tmp_path: Path) -> None:
    """What is evaluated is what is served: over the first replayed week, the hybrid in
    process (`ModelPolicy`) and a service engine serving the same model, catalog and profiles
    on the request's clock (what `recsys replay --url` drives over HTTP, `ServicePolicy`'s
    requests) show every visitor the same page, offer by offer. Both page as the service does
    (pages after the first are lists made one after the other) and exclude what the visitor
    applied to as the platform recorded it (the model data's applies, by the key the request
    carries: anonymous visitors' too), not what the simulated person applied to unseen."""
    serving = tmp_path / "serving"
    write_serving(replay, serving)
    frame = replay.world.offers.frame
    policy = ModelPolicy(
        "hybrid", frame, replay.profiles, tmp_path / "work", bundle=serving / "hybrid"
    )
    policy.refit(replay.t_start, replay.history())
    requests = _first_week_requests(replay)
    made = requests.offers(policy.lists(requests))
    settings = dataclasses.replace(
        Settings(),
        model_uri=str(serving / "hybrid"),
        catalog=serving / SERVED_OFFERS,
        profiles=replay.data_dir / "profiles.parquet",
        as_of=replay.t_start,
        clock=REQUEST_CLOCK,
        event_store_url=f"sqlite:///{tmp_path / 'events.db'}",
    )
    engine = Engine.start(settings)
    service = ServicePolicy("http://service", replay)
    bodies = service.requests(requests)
    service.close()
    ids = frame["id"].to_numpy(dtype=object)
    assert any(body["offset"] for body in bodies)  # pages after the first
    for i, body in enumerate(bodies):
        served = [
            item.offer_id for item in engine.rank(RankRequest.model_validate(body)).response.items
        ]
        page = made[i, body["offset"] : body["offset"] + body["k"]]
        assert served == ids[page[page >= 0]].tolist(), (i, body)


class FakeService:
    """A stand-in for the ranking service over HTTP (`httpx.MockTransport`): /rank lists the
    first offers open at the request's `at` (world rows in order), /events keeps the events."""

    def __init__(self, replay: Replay) -> None:
        offers = replay.world.offers
        self._ids = offers.frame["id"].to_numpy(dtype=object)
        self._from, self._to = offers.active_from.copy(), offers.active_to.copy()
        self.bodies: list[dict] = []
        self.answers: dict[str, dict] = {}
        self.events: list[dict] = []
        self._lock = threading.Lock()  # the policy sends /rank from several threads

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if request.url.path == "/events":
            self.events.extend(body["events"])
            return httpx.Response(200, json={"received": len(body["events"])})
        with self._lock:
            self.bodies.append(body)
            number = len(self.bodies)
        at = int(pd.Timestamp(body["at"]).timestamp())
        rows = np.flatnonzero((self._from <= at) & (self._to > at))
        page = rows[body["offset"] : body["offset"] + body["k"]]
        request_id = f"r{number}"
        answer = {
            "request_id": request_id,
            "arm": "hybrid" if number % 2 else "incumbent",
            "items": [
                {"offer_id": self._ids[row], "rank": body["offset"] + i + 1}
                for i, row in enumerate(page.tolist())
            ],
        }
        self.answers[request_id] = answer | {"at": body["at"], "user_id": body["user_id"]}
        return httpx.Response(200, json=answer)


def test_the_replay_over_http_sends_what_a_front_sends(replay: Replay) -> None:
    """`ServicePolicy` asks /rank for each served session's page at its instant and reports
    every print, click and apply the replay drew on those lists, chained to their list."""
    policy = ServicePolicy("http://service", replay)
    fake = FakeService(replay)
    policy._http = httpx.Client(base_url="http://service", transport=httpx.MockTransport(fake))
    result = replay.run(policy, 0, retrain_weeks=WEEKS)
    assert len(fake.bodies) == result.lists and sum(policy.arms.values()) == result.lists
    for body in fake.bodies:
        assert body["offset"] % body["k"] == 0 and body["fields"] == []
        if body["user_id"].startswith("anon:"):  # anonymous: the place of the request
            assert set(body["profile"]) == {"lat", "lon", "radius_km"}
        else:  # known: the service has the stored profile
            assert "profile" not in body
        assert body["context"]["source"] in {"api", "widget", "email"}
    assert min(pd.Timestamp(b["at"]) for b in fake.bodies) >= pd.Timestamp(
        replay.t_start, unit="s", tz="UTC"
    )
    kinds = pd.Series([event["type"] for event in fake.events]).value_counts().to_dict()
    assert kinds == {"print": result.prints, "click": result.clicks, "apply": result.applications}
    assert len({event["id"] for event in fake.events}) == len(fake.events)
    clicks = {event["click_id"]: event for event in fake.events if event["type"] == "click"}
    for event in fake.events:
        listed = fake.answers[event["request_id"]]
        assert event["user_id"] == listed["user_id"]
        assert event["mission_id"] in [item["offer_id"] for item in listed["items"]]
        if event["type"] == "print":
            assert event["created_at"] == listed["at"]  # shown at the request's instant
        else:
            assert event["created_at"] >= listed["at"]
        if event["type"] == "apply":
            click = clicks[event["click_id"]]
            assert click["request_id"] == event["request_id"]
            assert event["created_at"] >= click["created_at"]
            assert event["status"] in taxonomy.APPLY_STATUSES


def test_the_promotion_gate_is_a_paired_replay(tiny_dir: Path) -> None:
    """`replay_gate`: each policy's applications per 1,000 served lists in repeat 0 of the
    same replay, the candidate with its parameters; data that is no simulation is refused
    naming the setting."""
    mine, theirs = replay_gate(
        tiny_dir, "popularity", {}, {"incumbent_local": {}, "popularity": {}}, 2
    )
    replay = Replay(tiny_dir, 2)

    def alone(name: str, folder: Path) -> float:
        policy = ModelPolicy(name, replay.world.offers.frame, replay.profiles, folder)
        return replay.run(policy, 0, 2).figures()["applications_per_1000_lists"]

    scratch = tiny_dir.parent / "gate-by-hand"
    assert mine == alone("popularity", scratch / "a")
    assert theirs == {
        "incumbent_local": alone("incumbent_local", scratch / "b"),
        "popularity": mine,  # the same model, the same seeds
    }
    with pytest.raises(ValueError, match=r"promotion\.metric replay needs simulated data"):
        replay_gate(tiny_dir / "nowhere", "popularity", {}, {}, 2)
