"""Diffusion: sessions over the year, the lists the incumbent shows, and what people do.

Each session comes from a source (a partner widget with its own place and filters, the
platform's search, a campaign, a newsletter, a publisher's own site, a search-engine landing)
and shows a list built the way the incumbent builds it: offers open at that moment, near the
place of the request, filtered, sorted by distance or recency, cut into pages. A shown offer is
examined with a probability falling with its position, clicked with a probability rising with
the person's true utility for it, and applied to after the click with a probability rising
again with that utility. Bots browse many pages, click at random and never apply.

Work is vectorised per week: the offers open that week go into a k-d tree once, each city that
sends requests gets its nearest offers once, and every session's list is a masked sort of its
city's pool.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.spatial import KDTree

from recsys import eligibility, taxonomy
from recsys.geo import EARTH_RADIUS_KM, haversine_km, unit_vectors
from recsys.simulation import vocabulary as vocab
from recsys.simulation.applications import NO_APPLY, Applications
from recsys.simulation.config import BehaviourRates, SimulationConfig
from recsys.simulation.ids import hex_ids, pair_normal
from recsys.simulation.offers import DAY, SimulatedOffers
from recsys.simulation.people import SimulatedPeople, choice_per_row
from recsys.simulation.truth import (
    AGE_BAND_EDGES,
    AGE_FIT,
    PROGRAMME_FIT,
    PeopleTruth,
    Truth,
    utility,
)

WEEK = 7 * DAY
SOURCES = taxonomy.EVENT_SOURCES  # api, widget, campaign, seo, jstag, publisher, email
API, WIDGET, CAMPAIGN, SEO, JSTAG, PUBLISHER, EMAIL = (
    SOURCES.index(name)
    for name in ("api", "widget", "campaign", "seo", "jstag", "publisher", "email")
)
_SOURCE_FIRST = np.array([0.25, 0.35, 0.10, 0.20, 0.05, 0.05, 0.0])
_SOURCE_LATER = np.array([0.32, 0.25, 0.08, 0.10, 0.07, 0.06, 0.12])
_IDENTIFIED = np.array([0.85, 0.45, 0.6, 0.5, 0.6, 0.6, 1.0])  # sessions carrying userId
_SORT_DISTANCE, _SORT_RECENT = 0, 1
_WIDGET_REACH_KM = 30.0  # visitors of a partner site live this close to it
SPELL_DAYS = 120.0  # a person's sessions spread over about this many days from their arrival
_REMOTE_PER_WEEK = 30  # fully remote offers a search may mix into its list
_CAMPAIGN_PROGRAMMES = (1, 0, 1, 2, 0, 3, 1, 0, 1, 0, 2, 1)  # by month from the start
_FULL = taxonomy.REMOTE_VALUES.index("full")


@dataclass(frozen=True)
class Widgets:
    """Partner sites showing a widget: place, filters and traffic, one row per widget."""

    city: np.ndarray
    radius: np.ndarray
    programme: np.ndarray  # -1 all programmes
    domain: np.ndarray  # -1 all domains
    sort: np.ndarray
    size: np.ndarray
    remote: np.ndarray  # also shows fully remote offers
    traffic: np.ndarray
    ids: list[str]  # sourceId
    host_ids: list[str]  # fromPublisherId
    host_names: list[str]


@dataclass
class Sessions:
    """One row per session (one ranking request and what followed)."""

    person: np.ndarray  # int64, -1 for bots
    time: np.ndarray  # int64 epoch seconds
    source: np.ndarray  # int8 index into SOURCES
    source_id: np.ndarray  # int64 index into the sourceId vocabulary, -1 none
    from_publisher: np.ndarray  # int64 index into the fromPublisherId vocabulary
    device: np.ndarray  # int64 index into the `user` hash vocabulary
    identified: np.ndarray  # bool: carries the stable userId
    bot: np.ndarray  # bool
    city: np.ndarray  # int64 city whose pool the request searches
    radius: np.ndarray  # float64 km
    programme: np.ndarray  # int8 filter, -1 none
    domain: np.ndarray  # int8 filter, -1 none
    publisher: np.ndarray  # int16 filter, -1 none
    sort: np.ndarray  # int8
    size: np.ndarray  # int16 page size
    page: np.ndarray  # int16 page number from 1
    remote: np.ndarray  # bool: fully remote offers may be mixed in
    gate_age: np.ndarray  # float64 age the platform filters on, NaN none
    seo: np.ndarray  # bool: a search-engine landing on one offer

    def __len__(self) -> int:
        return len(self.time)

    def take(self, index: np.ndarray) -> Sessions:
        return Sessions(**{name: value[index] for name, value in vars(self).items()})


@dataclass(frozen=True)
class Vocabularies:
    """String values that session and event columns index into."""

    source_ids: list[str]
    from_publishers: list[str]
    users: list[str]  # `user` hashes: every person's devices, then bots


@dataclass(frozen=True)
class Interactions:
    """Raw outcome of the diffusion, as index arrays (turned into events by `events`)."""

    print_session: np.ndarray
    print_offer: np.ndarray
    print_position: np.ndarray
    click_session: np.ndarray
    click_offer: np.ndarray
    click_position: np.ndarray
    click_time: np.ndarray
    apply_click: np.ndarray  # row in the click arrays of each apply
    apply_time: np.ndarray
    apply_status: np.ndarray  # index into taxonomy.APPLY_STATUSES


def make_widgets(
    config: SimulationConfig, cities: pd.DataFrame, rng: np.random.Generator, salt: int
) -> Widgets:
    """Partner sites, placed by population, most showing every programme within 25 km."""
    n = config.n_widgets
    population = cities["population"].to_numpy(dtype=float)
    city = rng.choice(len(cities), size=n, p=population / population.sum())
    domain_weights = np.array([vocab.DOMAIN_WEIGHTS[d] for d in taxonomy.DOMAINS])
    domain = np.where(
        rng.random(n) < 0.15,
        rng.choice(len(domain_weights), size=n, p=domain_weights / domain_weights.sum()),
        -1,
    )
    traffic = 1.0 / (1.0 + rng.permutation(n)) ** 0.8
    pattern = rng.integers(0, len(vocab.WIDGET_HOSTS), n)
    names = cities["name"].to_numpy(dtype=object)[city]
    departments = cities["department_name"].to_numpy(dtype=object)[city]
    return Widgets(
        city=city,
        radius=rng.choice([10.0, 25.0, 50.0], size=n, p=[0.15, 0.65, 0.2]),
        programme=rng.choice([-1, 1, 0, 2, 3], size=n, p=[0.5, 0.25, 0.2, 0.025, 0.025]),
        domain=domain,
        sort=(rng.random(n) < 0.4).astype(np.int8),
        size=rng.integers(6, 13, n),
        remote=rng.random(n) < 0.5,
        traffic=traffic / traffic.sum(),
        ids=hex_ids(np.arange(n), salt, prefix="wdg_", width=12).to_pylist(),
        host_ids=hex_ids(np.arange(n), salt + 1, width=16).to_pylist(),
        host_names=[
            vocab.WIDGET_HOSTS[p].format(city=c, department=d)
            for p, c, d in zip(pattern, names, departments, strict=True)
        ],
    )


def make_sessions(
    config: SimulationConfig,
    cities: pd.DataFrame,
    people: SimulatedPeople,
    offers: SimulatedOffers,
    widgets: Widgets,
    rng: np.random.Generator,
    start: pd.Timestamp,
    salt: int,
) -> tuple[Sessions, Vocabularies]:
    """Every session of the year, people's and bots', sorted by time."""
    t0 = int(start.timestamp())
    t_end = t0 + config.days * DAY
    truth = people.truth
    person, time, ordinal = _session_times(people, rng, t_end)
    n = len(person)

    probabilities = np.where((ordinal == 0)[:, None], _SOURCE_FIRST, _SOURCE_LATER)
    source = choice_per_row(probabilities, rng).astype(np.int8)
    home = people.city[person]
    widget_cdf = _widget_cdf(cities, widgets)
    has_widget = np.isfinite(widget_cdf[:, -1])
    source[(source == WIDGET) & ~has_widget[home]] = API

    stamps = pd.to_datetime(time, unit="s")
    month = np.clip(
        (stamps.year.to_numpy() - start.year) * 12 + stamps.month.to_numpy() - start.month, 0, 11
    )  # campaign of the month, counted from the start
    week = (time - t0) // WEEK
    n_campaigns = 12
    n_weeks = config.days // 7 + 1
    platform = len(vocab.PUBLISHERS)
    source_ids = [
        *widgets.ids,
        *_campaign_ids(start),
        *[f"newsletter_{w:02d}" for w in range(n_weeks)],
    ]
    from_publishers = [
        *offers.publisher_ids,
        hex_ids(np.array([0]), salt + 7).to_pylist()[0],
        *widgets.host_ids,
    ]

    first_device = np.concatenate([[0], np.cumsum(people.devices)[:-1]])
    device = first_device[person] + (rng.random(n) * people.devices[person]).astype(np.int64)
    s = Sessions(
        person=person.astype(np.int64),
        time=time,
        source=source,
        source_id=np.full(n, -1, dtype=np.int64),
        from_publisher=np.full(n, platform, dtype=np.int64),
        device=device,
        identified=rng.random(n) < _IDENTIFIED[source],
        bot=np.zeros(n, dtype=bool),
        city=home.astype(np.int64),
        radius=np.full(n, 50.0),
        programme=np.full(n, -1, dtype=np.int8),
        domain=np.full(n, -1, dtype=np.int8),
        publisher=np.full(n, -1, dtype=np.int16),
        sort=(rng.random(n) < 0.5).astype(np.int8),
        size=np.full(n, 10, dtype=np.int16),
        page=rng.choice([1, 2, 3], size=n, p=[0.75, 0.18, 0.07]).astype(np.int16),
        remote=np.ones(n, dtype=bool),
        gate_age=np.full(n, np.nan),
        seo=source == SEO,
    )
    s.identified[source == EMAIL] = True

    rows = np.flatnonzero(source == WIDGET)
    w = _sample_rows(widget_cdf, home[rows], rng)
    s.source_id[rows] = w
    s.from_publisher[rows] = platform + 1 + w
    s.city[rows] = widgets.city[w]
    s.radius[rows] = widgets.radius[w]
    s.programme[rows] = widgets.programme[w]
    s.domain[rows] = widgets.domain[w]
    s.sort[rows] = widgets.sort[w]
    s.size[rows] = widgets.size[w]
    s.page[rows] = np.where(rng.random(len(rows)) < 0.85, 1, 2)
    s.remote[rows] = widgets.remote[w]

    rows = np.flatnonzero(source == API)
    s.radius[rows] = rng.choice([10.0, 25.0, 50.0], size=len(rows), p=[0.2, 0.4, 0.4])
    searched = rng.random(len(rows)) < 0.35
    s.domain[rows[searched]] = choice_per_row(truth.domain_interest[person[rows[searched]]], rng)
    chosen = rng.random(len(rows)) < 0.25
    s.programme[rows[chosen]] = _preferred_programme(truth, person[rows[chosen]], rng)

    rows = np.flatnonzero(source == EMAIL)
    s.source_id[rows] = len(widgets.ids) + n_campaigns + week[rows]
    s.radius[rows] = 30.0
    searched = rng.random(len(rows)) < 0.5
    s.domain[rows[searched]] = choice_per_row(truth.domain_interest[person[rows[searched]]], rng)
    s.sort[rows] = _SORT_RECENT
    s.size[rows] = 6
    s.page[rows] = 1
    s.remote[rows] = False

    rows = np.flatnonzero(source == CAMPAIGN)
    s.source_id[rows] = len(widgets.ids) + month[rows]
    s.programme[rows] = np.array(_CAMPAIGN_PROGRAMMES)[month[rows]]
    s.sort[rows] = _SORT_RECENT
    s.size[rows] = 8
    s.page[rows] = 1
    s.remote[rows] = False

    rows = np.flatnonzero((source == JSTAG) | (source == PUBLISHER))
    sizes = np.bincount(offers.publisher, minlength=len(vocab.PUBLISHERS)) ** 0.8
    chosen_publisher = rng.choice(len(sizes), size=len(rows), p=sizes / sizes.sum())
    s.publisher[rows] = chosen_publisher
    s.from_publisher[rows] = chosen_publisher
    s.source[rows] = np.where(chosen_publisher < 5, PUBLISHER, JSTAG)  # big operators: API feed
    s.radius[rows] = 30.0
    s.page[rows] = np.where(rng.random(len(rows)) < 0.8, 1, 2)

    rows = np.flatnonzero(source == SEO)
    s.radius[rows] = 60.0
    s.page[rows] = 1
    s.size[rows] = 1

    platform_knows = ((s.source == API) | (s.source == EMAIL)) & s.identified
    s.gate_age = np.where(platform_knows, people.observed_age[person], np.nan)

    bots = _bot_sessions(
        config, cities, widgets, rng, t0, t_end, platform, int(people.devices.sum())
    )
    merged = Sessions(**{k: np.concatenate([v, getattr(bots, k)]) for k, v in vars(s).items()})
    order = np.argsort(merged.time, kind="stable")
    users = [
        *hex_ids(np.arange(int(people.devices.sum())), salt + 3, width=16).to_pylist(),
        *hex_ids(np.arange(config.n_bots), salt + 4, width=16).to_pylist(),
    ]
    return merged.take(order), Vocabularies(source_ids, from_publishers, users)


def _session_times(
    people: SimulatedPeople, rng: np.random.Generator, t_end: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(person, time, ordinal) of people's sessions: 1 + Poisson(activity) sessions from the
    arrival on, exponential gaps shorter for busier people, cut at the end of the year."""
    count = 1 + rng.poisson(people.truth.activity_level)
    person = np.repeat(np.arange(len(count)), count)
    first = np.concatenate([[0], np.cumsum(count)[:-1]])
    gap_mean = _gap_mean(count)
    gaps = rng.exponential(1.0, len(person)) * gap_mean[person]
    gaps[first] = 0.0
    cumulative = np.cumsum(gaps)
    offset = np.repeat(cumulative[first], count)
    time = people.arrival[person] + (cumulative - offset).astype(np.int64)
    ordinal = np.arange(len(person)) - np.repeat(first, count)
    keep = time < t_end
    return person[keep], time[keep], ordinal[keep]


def _gap_mean(count: np.ndarray) -> np.ndarray:
    """Mean seconds between the sessions of a person who has `count` of them: the spell
    lasts about `SPELL_DAYS`, gaps from half a day to 45 days."""
    return np.clip(SPELL_DAYS * DAY / count, DAY / 2, 45 * DAY)


def expected_sessions(arrival: np.ndarray, level: np.ndarray, start: int, end: int) -> np.ndarray:
    """Expected number of sessions of each person in [start, end) (epoch seconds), given their
    arrival and activity level: `_session_times` in expectation, not drawn.

    With N = 1 + Poisson(level) sessions, the first at the arrival and the others after
    exponential gaps of mean g(N) (`_gap_mean`), the later ones up to a time x after the
    arrival are min(Poisson(x / g), N - 1) in number; E[min(P, m)] = μ F(m - 1) + m (1 - F(m)).
    """
    from scipy.stats import poisson

    arrival = np.asarray(arrival, dtype=float)
    level = np.asarray(level, dtype=float)
    top = float(level.max(initial=0.0))
    count = np.arange(1, int(np.ceil(top + 10 * np.sqrt(top) + 10)) + 1)[None, :]
    weight = poisson.pmf(count - 1, level[:, None])
    gap = _gap_mean(count)
    early = np.maximum(start - arrival, 0)[:, None] / gap
    late = np.maximum(end - arrival, 0)[:, None] / gap

    def capped(mu: np.ndarray, cap: np.ndarray) -> np.ndarray:
        return mu * poisson.cdf(cap - 1, mu) + cap * poisson.sf(cap, mu)

    later = capped(late, count - 1) - capped(early, count - 1)
    first = ((arrival >= start) & (arrival < end)).astype(float)[:, None]
    return ((first + later) * weight).sum(axis=1)


def _campaign_ids(start: pd.Timestamp) -> list[str]:
    months = pd.date_range(start, periods=12, freq="MS")
    return [
        f"cmp_{m:%Y-%m}_{taxonomy.PROGRAMMES[p].split('_')[-1]}"
        for m, p in zip(months, _CAMPAIGN_PROGRAMMES, strict=True)
    ]


def _widget_cdf(cities: pd.DataFrame, widgets: Widgets) -> np.ndarray:
    """Per city, the cumulative traffic share of the widgets within reach; inf where none."""
    distance = haversine_km(
        cities["lat"].to_numpy()[:, None],
        cities["lon"].to_numpy()[:, None],
        cities["lat"].to_numpy()[widgets.city][None, :],
        cities["lon"].to_numpy()[widgets.city][None, :],
    )
    weights = np.where(distance <= _WIDGET_REACH_KM, widgets.traffic[None, :], 0.0)
    total = weights.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        cdf = np.cumsum(weights, axis=1) / total
    return np.where(total > 0, cdf, np.inf)


def _sample_rows(cdf: np.ndarray, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One column per requested row of a row-wise CDF, by one searchsorted over all rows.

    Row r's CDF is shifted to (r, r + 1], so the flattened array is sorted and a draw r + u
    lands in row r, on the first column whose cumulative share reaches u.
    """
    n_columns = cdf.shape[1]
    finite = np.where(np.isfinite(cdf), cdf, 1.0)
    flat = (finite + np.arange(len(cdf))[:, None]).ravel()
    position = np.searchsorted(flat, rows + rng.random(len(rows)) * (1 - 1e-12), side="left")
    return np.minimum(position - rows * n_columns, n_columns - 1)


def _preferred_programme(
    truth: PeopleTruth, people: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """A programme filter a person would set: softmax of their programme and age fit."""
    band = np.searchsorted(AGE_BAND_EDGES, truth.age[people], side="right")
    fit = PROGRAMME_FIT[truth.aspiration[people]] + AGE_FIT[band]
    weights = np.exp(2.0 * fit)
    return choice_per_row(weights / weights.sum(axis=1, keepdims=True), rng)


def _bot_sessions(
    config: SimulationConfig,
    cities: pd.DataFrame,
    widgets: Widgets,
    rng: np.random.Generator,
    t0: int,
    t_end: int,
    platform: int,
    device_offset: int,
) -> Sessions:
    """Crawlers: many sessions at any hour, long lists several pages deep, no identity."""
    low, high = config.bot_sessions
    count = rng.integers(low, high + 1, config.n_bots)
    bot = np.repeat(np.arange(config.n_bots), count)
    n = len(bot)
    population = cities["population"].to_numpy(dtype=float)
    on_widget = rng.random(n) < 0.5
    w = rng.integers(0, len(widgets.city), n)
    city = np.where(
        on_widget, widgets.city[w], rng.choice(len(cities), size=n, p=population / population.sum())
    )
    return Sessions(
        person=np.full(n, -1, dtype=np.int64),
        time=rng.integers(t0, t_end, n),
        source=np.where(on_widget, WIDGET, API).astype(np.int8),
        source_id=np.where(on_widget, w, -1).astype(np.int64),
        from_publisher=np.where(on_widget, platform + 1 + w, platform).astype(np.int64),
        device=(device_offset + bot).astype(np.int64),
        identified=np.zeros(n, dtype=bool),
        bot=np.ones(n, dtype=bool),
        city=city.astype(np.int64),
        radius=np.full(n, 50.0),
        programme=np.full(n, -1, dtype=np.int8),
        domain=np.full(n, -1, dtype=np.int8),
        publisher=np.full(n, -1, dtype=np.int16),
        sort=rng.integers(0, 2, n).astype(np.int8),
        size=np.full(n, 30, dtype=np.int16),
        page=rng.integers(1, 4, n).astype(np.int16),
        remote=np.ones(n, dtype=bool),
        gate_age=np.full(n, np.nan),
        seo=np.zeros(n, dtype=bool),
    )


def diffuse(
    config: SimulationConfig,
    cities: pd.DataFrame,
    sessions: Sessions,
    offers: SimulatedOffers,
    truth: Truth,
    applications: Applications,
    rng: np.random.Generator,
    start: pd.Timestamp,
    progress: Callable[[str], None] | None = None,
) -> Interactions:
    """Show lists week by week and draw prints, clicks and applies."""
    t0 = int(start.timestamp())
    t_end = t0 + config.days * DAY
    week = (sessions.time - t0) // WEEK
    n_weeks = int(week.max()) + 1 if len(week) else 0
    bounds = np.searchsorted(week, np.arange(n_weeks + 1))
    city_points = unit_vectors(cities["lat"].to_numpy(), cities["lon"].to_numpy())
    log = InteractionLog()
    for w in range(n_weeks):
        rows = np.arange(bounds[w], bounds[w + 1])
        if len(rows) == 0:
            continue
        week_start, week_end = t0 + w * WEEK, t0 + (w + 1) * WEEK
        open_now = (offers.active_from < week_end) & (offers.active_to > week_start)
        pools = Pools.build(offers, open_now, sessions.city[rows], city_points, config, rng)
        session, offer, position = incumbent_lists(
            sessions, rows[~sessions.seo[rows]], pools, offers, rng
        )
        seo_rows = rows[sessions.seo[rows]]
        seo_session, seo_offer = landings(sessions, seo_rows, pools, offers, truth, rng)
        session = np.concatenate([session, seo_session])
        offer = np.concatenate([offer, seo_offer])
        position = np.concatenate([position, np.ones(len(seo_session), dtype=np.int64)])

        reactions = respond(
            config, sessions, session, offer, position, truth, applications, rng, t_end, week_end
        )
        log.add(session, offer, position, reactions)
        if progress is not None and (w % 13 == 12 or w == n_weeks - 1):
            progress(f"diffusion: week {w + 1}/{n_weeks}, {log.n_clicks:,} clicks so far")
    return log.interactions()


@dataclass(frozen=True)
class Reactions:
    """What people did with a week's prints: `clicked` (bool over the prints), `click_time`
    (over the clicks), `attempt` (rows among the clicks that attempt an apply), `apply_time`
    and the settled `status` (over the attempts; `NO_APPLY` where none was recorded)."""

    clicked: np.ndarray
    click_time: np.ndarray
    attempt: np.ndarray
    apply_time: np.ndarray
    status: np.ndarray

    @property
    def applied(self) -> np.ndarray:
        """bool over the attempts: those recorded as applications."""
        return self.status != NO_APPLY

    def applied_prints(self) -> np.ndarray:
        """Rows of the prints that led to a recorded application."""
        return np.flatnonzero(self.clicked)[self.attempt][self.applied]


def respond(
    config: SimulationConfig,
    sessions: Sessions,
    session: np.ndarray,
    offer: np.ndarray,
    position: np.ndarray,
    truth: Truth,
    applications: Applications,
    rng: np.random.Generator,
    t_end: int,
    week_end: int,
) -> Reactions:
    """A week's prints answered, drawn by the true reaction model, then settled by the
    applications state (places fill, offers close). The diffusion and the closed-loop replay
    draw every week through it.

    A print is examined with probability 1/log2(1 + position), then clicked with probability
    sigmoid(intercept + taste), taste being the utility plus the persistent pair noise; a
    click leads to an apply attempt with probability sigmoid(a + b · taste). Bots click at a
    flat rate and never apply. Clicks and applies are dated before `t_end`.
    """
    rates = config.rates
    human = ~sessions.bot[session]
    person = np.where(human, sessions.person[session], 0)
    taste = utility(truth, person, offer) + config.weights.noise * pair_normal(
        person, offer, len(truth.offers), truth.noise_salt
    )
    examined = 1.0 / np.log2(1.0 + position)
    p_click = np.where(
        human,
        examined * click_probability(rates, taste, sessions.seo[session]),
        rates.bot_click_rate,
    )
    clicked = rng.random(len(session)) < p_click
    n_clicks = int(clicked.sum())
    seconds = rng.exponential(20.0, n_clicks).astype(np.int64) * position[clicked]
    click_time = np.minimum(sessions.time[session[clicked]] + 3 + seconds, t_end - 1)
    p_apply = apply_probability(rates, taste[clicked])
    wants = human[clicked] & (rng.random(n_clicks) < p_apply)
    delay = rng.lognormal(np.log(600.0), 1.2, int(wants.sum())).astype(np.int64) + 30
    apply_time = np.minimum(click_time[wants] + delay, t_end - 1)
    attempt = np.flatnonzero(wants)
    status = applications.settle(
        sessions.person[session[clicked][attempt]], offer[clicked][attempt], apply_time, week_end
    )
    return Reactions(clicked, click_time, attempt, apply_time, status)


class InteractionLog:
    """Prints and their reactions, week after week, as the simulator's `Interactions` index
    arrays (applies point at their click's row): what the diffusion returns and what the
    replay retrains on."""

    def __init__(self) -> None:
        self._parts: dict[str, list[np.ndarray]] = {k: [] for k in _PART_KEYS}
        self.n_clicks = 0

    @property
    def empty(self) -> bool:
        return not self._parts["print_session"]

    def add(
        self, session: np.ndarray, offer: np.ndarray, position: np.ndarray, reactions: Reactions
    ) -> None:
        clicked, attempt, status = reactions.clicked, reactions.attempt, reactions.status
        applied = reactions.applied
        for key, value in (
            ("print_session", session),
            ("print_offer", offer),
            ("print_position", position),
            ("click_session", session[clicked]),
            ("click_offer", offer[clicked]),
            ("click_position", position[clicked]),
            ("click_time", reactions.click_time),
            ("apply_click", self.n_clicks + attempt[applied]),
            ("apply_time", reactions.apply_time[applied]),
            ("apply_status", status[applied]),
        ):
            self._parts[key].append(value)
        self.n_clicks += int(clicked.sum())

    def interactions(self) -> Interactions:
        return Interactions(**{k: _concat(v) for k, v in self._parts.items()})


_PART_KEYS = (
    "print_session",
    "print_offer",
    "print_position",
    "click_session",
    "click_offer",
    "click_position",
    "click_time",
    "apply_click",
    "apply_time",
    "apply_status",
)


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def click_probability(
    rates: BehaviourRates, taste: np.ndarray, seo: np.ndarray | bool = False
) -> np.ndarray:
    """P(click | examined) of a human print: sigmoid(intercept + taste), the intercept of a
    search landing where `seo`."""
    intercept = np.where(seo, rates.seo_click_intercept, rates.click_intercept)
    return _sigmoid(intercept + taste)


def apply_probability(rates: BehaviourRates, taste: np.ndarray) -> np.ndarray:
    """P(apply attempt | click) of a human print: sigmoid(a + b · taste)."""
    return _sigmoid(rates.apply_intercept + rates.apply_slope * taste)


@dataclass(frozen=True)
class Pools:
    """One week's candidate pools: per requesting city, its nearest open offers (sorted by
    distance from the city centre, the incumbent's geolocation grain), plus a sample of fully
    remote offers every search may mix in."""

    cities: np.ndarray  # sorted city rows that have a pool
    offer: np.ndarray  # (n_cities, k) offer rows, -1 padding
    distance: np.ndarray  # (n_cities, k) km
    remote: np.ndarray  # offer rows of the remote sample

    @staticmethod
    def build(
        offers: SimulatedOffers,
        open_now: np.ndarray,
        request_cities: np.ndarray,
        city_points: np.ndarray,
        config: SimulationConfig,
        rng: np.random.Generator,
    ) -> Pools:
        lat, lon = offers.truth.lat, offers.truth.lon
        placed = np.flatnonzero(open_now & ~np.isnan(lat))
        used = np.unique(request_cities)
        k = min(config.pool_size, len(placed))
        if k == 0:
            offer = np.full((len(used), 1), -1, dtype=np.int64)
            distance = np.full((len(used), 1), np.inf)
        else:
            # Nearest by chord on the unit sphere is nearest by great circle: a plain k-d
            # tree finds the nearest offers without a haversine metric.
            tree = KDTree(unit_vectors(lat[placed], lon[placed]))
            chord, index = tree.query(city_points[used], k=k)
            index, chord = index.reshape(len(used), k), chord.reshape(len(used), k)
            offer = placed[index]
            distance = 2.0 * EARTH_RADIUS_KM * np.arcsin(np.minimum(chord / 2.0, 1.0))
        remote = np.flatnonzero(open_now & (offers.truth.remote == _FULL))
        if len(remote) > _REMOTE_PER_WEEK:
            remote = np.sort(rng.choice(remote, _REMOTE_PER_WEEK, replace=False))
        return Pools(used, offer, distance, remote)

    def candidates(
        self, cities: np.ndarray, radius: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(offer, distance, is_remote) matrices for requests from `cities`; remote offers get
        a random distance within the request's radius, as if interleaved by the engine."""
        row = np.searchsorted(self.cities, cities)
        n = len(cities)
        remote_offer = np.broadcast_to(self.remote, (n, len(self.remote)))
        remote_distance = rng.random((n, len(self.remote))) * radius[:, None]
        offer = np.concatenate([self.offer[row], remote_offer], axis=1)
        distance = np.concatenate([self.distance[row], remote_distance], axis=1)
        is_remote = np.zeros(offer.shape, dtype=bool)
        is_remote[:, self.offer.shape[1] :] = True
        return offer, distance, is_remote


_CHUNK = 2048  # sessions per vectorised block (a few (chunk, pool) matrices in memory)


def incumbent_lists(
    sessions: Sessions,
    rows: np.ndarray,
    pools: Pools,
    offers: SimulatedOffers,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The page each session was shown: (session, offer, position) triples."""
    out_s, out_o, out_p = [], [], []
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start : start + _CHUNK]
        offer, distance, is_remote = pools.candidates(
            sessions.city[chunk], sessions.radius[chunk], rng
        )
        ok = _open_and_matching(sessions, chunk, offer, distance, is_remote, offers)
        posted = offers.posted_at[np.maximum(offer, 0)]
        key = np.where(
            (sessions.sort[chunk] == _SORT_DISTANCE)[:, None], distance, -posted.astype(float)
        )
        key = np.where(ok, key, np.inf)
        size = sessions.size[chunk].astype(np.int64)
        first = (sessions.page[chunk].astype(np.int64) - 1) * size
        depth = min(int((first + size).max()), key.shape[1])
        top = (
            np.argpartition(key, depth - 1, axis=1)[:, :depth]
            if depth < key.shape[1]
            else np.tile(np.arange(key.shape[1]), (len(chunk), 1))
        )
        top = np.take_along_axis(
            top, np.argsort(np.take_along_axis(key, top, 1), axis=1, kind="stable"), 1
        )
        slot = first[:, None] + np.arange(int(size.max()))[None, :]
        inside = (slot < (first + size)[:, None]) & (slot < depth)
        column = np.take_along_axis(top, np.minimum(slot, depth - 1), 1)
        shown = inside & np.isfinite(np.take_along_axis(key, column, 1))
        r, c = np.nonzero(shown)
        out_s.append(chunk[r])
        out_o.append(offer[r, column[r, c]])
        out_p.append(slot[r, c] + 1)
    if not out_s:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    return np.concatenate(out_s), np.concatenate(out_o), np.concatenate(out_p)


def _open_and_matching(
    sessions: Sessions,
    chunk: np.ndarray,
    offer: np.ndarray,
    distance: np.ndarray,
    is_remote: np.ndarray,
    offers: SimulatedOffers,
) -> np.ndarray:
    """Which candidates the incumbent would list: open at the request's time, in its radius
    (or remote, if it mixes remote in), matching its filters and, on the platform, the age."""
    valid = offer >= 0
    o = np.where(valid, offer, 0)
    t = sessions.time[chunk][:, None]
    ok = valid & (offers.active_from[o] <= t) & (offers.active_to[o] > t)
    ok &= np.where(
        is_remote, sessions.remote[chunk][:, None], distance <= sessions.radius[chunk][:, None]
    )
    programme = offers.truth.programme[o]
    for wanted, have in (
        (sessions.programme[chunk], programme),
        (sessions.domain[chunk], offers.truth.domain[o]),
        (sessions.publisher[chunk], offers.publisher[o]),
    ):
        ok &= (wanted[:, None] < 0) | (have == wanted[:, None])
    age = sessions.gate_age[chunk][:, None]
    admitted = eligibility.admits_years(
        programme, offers.snu[o], offers.open_to_minors[o], np.floor(np.nan_to_num(age))
    )
    return ok & (np.isnan(age) | admitted)


def landings(
    sessions: Sessions,
    rows: np.ndarray,
    pools: Pools,
    offers: SimulatedOffers,
    truth: Truth,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Search-engine landings: each person lands on one open offer near them, picked by taste
    (utility plus pair noise plus a Gumbel draw, i.e. a softmax choice)."""
    out_s, out_o = [], []
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start : start + _CHUNK]
        offer, distance, is_remote = pools.candidates(
            sessions.city[chunk], sessions.radius[chunk], rng
        )
        ok = _open_and_matching(sessions, chunk, offer, distance, is_remote, offers)
        person = sessions.person[chunk][:, None]
        o = np.maximum(offer, 0)
        score = utility(truth, person, o) + truth.weights.noise * pair_normal(
            person, o, len(offers.posted_at), truth.noise_salt
        )
        score = np.where(ok, score + rng.gumbel(size=score.shape), -np.inf)
        best = np.argmax(score, axis=1)
        found = np.isfinite(score[np.arange(len(chunk)), best])
        out_s.append(chunk[found])
        out_o.append(offer[np.flatnonzero(found), best[found]])
    if not out_s:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    return np.concatenate(out_s), np.concatenate(out_o)
