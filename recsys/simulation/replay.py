"""Closed-loop replay: the simulated traffic again, with a list policy serving the platform.

A simulated dataset is the record of one world (offers, people, widgets, sessions) diffused
with the incumbent's lists. The replay rebuilds that world from the dataset's manifest
(`simulator.build_world`), diffuses its history again up to the replay's start (the very
draws the dataset holds), then plays the last `weeks` weeks once per policy:

* sessions on the platform's recommendation surfaces (its own search, partner widgets with
  their filters, the newsletter) get the list the policy under test makes (`ReplayPolicy`,
  through the core's list policy, `recsys.policy`);
* every other session (campaigns, search-engine landings, publishers' own sites, bots)
  keeps the incumbent's list, drawn by the simulator's own functions;
* prints, clicks (position bias) and applies are drawn from the simulator's true model
  (`diffusion.respond`) and settled by its applications state (places fill, offers close);
* a policy that learns is refitted every `retrain_weeks` on the history plus what the replay
  recorded so far, its own lists included, so feedback loops show;
* after each week the policy observes what the visitors did with its lists (`Outcome`): a
  policy behind a running service reports it to the service as the front would.

Nothing here changes the generative story: the replay calls the simulator's functions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.polynomial.hermite_e import hermegauss

from recsys import metrics, taxonomy
from recsys.arrays import OfferArrays, offer_arrays, profile_arrays
from recsys.candidates import candidate_mask, open_during
from recsys.config import EVENTS_FILE, PROFILES_FILE
from recsys.featureset import aligned_profiles
from recsys.geo import unit_vectors
from recsys.models.response import user_features
from recsys.policy import ListPolicy, exclude, group_codes, tie_keys
from recsys.ranking import PAD
from recsys.rules import search_radius_km
from recsys.schema import read_table
from recsys.simulation import diffusion
from recsys.simulation.applications import NO_APPLY, Applications
from recsys.simulation.config import GENERATOR_VERSION, SimulationConfig
from recsys.simulation.diffusion import WEEK
from recsys.simulation.simulator import (
    World,
    _events,
    _withdraw_filled,
    build_world,
    read_manifest,
)
from recsys.simulation.truth import (
    PersonTerms,
    distance_term,
    person_terms,
    population_quantiles,
    preference_of,
    utility,
)

logger = logging.getLogger(__name__)

SERVED_SOURCES = tuple(diffusion.SOURCES.index(name) for name in taxonomy.SERVED_SOURCES)
_PROGRAMMES = len(taxonomy.PROGRAMMES)


@dataclass(frozen=True)
class Requests:
    """The lists to make in one replayed week: one row per served session.

    Offers are the week's `columns` (offers open at some point of the week, rows of the
    world's offers); every matrix has one column per entry of `columns`. `profiles` is what
    the front would send: the stored profile when the session carries the stable `userId`,
    else the place of the request (the partner's or the visitor's city) and its radius, with
    `userId` set to the visitor's `user` hash. `person` is the simulated person behind each
    session: only the oracle may read it.
    """

    session: np.ndarray  # rows of the world's sessions
    identified: np.ndarray  # bool: carries the stable userId
    profiles: pd.DataFrame  # canonical profile rows, one per request
    person: np.ndarray  # int64 simulated person
    time: np.ndarray  # int64 epoch seconds of each request
    k: np.ndarray  # int64 list length (the page shown ends there)
    size: np.ndarray  # int64 page length: the page shown is the list's last `size` slots
    columns: np.ndarray  # int64 offer rows of the week
    allowed: np.ndarray  # (n, n_columns) bool: open at the request's time, surface filters
    applied: sp.csr_matrix  # (n, n_columns): non-zero where a known visitor already applied
    catalog: OfferArrays  # the columns' offers as they stand for the week (`open_during`)
    now: int  # the week's start, epoch seconds

    def __len__(self) -> int:
        return len(self.session)

    def candidates(self, excluded: sp.spmatrix | Sequence[np.ndarray] | None = None) -> np.ndarray:
        """(n, n_columns) bool: the core's candidates (eligibility at the week's start) within
        what the surface allows, minus the list policy's exclusions: `excluded` when given
        (as `recsys.policy.exclude` takes them: what the platform recorded, for a policy that
        stands for the service), else `applied` (what the simulated person applied to)."""
        mask = candidate_mask(self.catalog, profile_arrays(self.profiles), self.now)
        return exclude(mask & self.allowed, self.applied if excluded is None else excluded)

    def offers(self, lists: np.ndarray) -> np.ndarray:
        """Lists of column positions (-1 padded) as rows of the world's offers."""
        return np.where(lists >= 0, self.columns[np.maximum(lists, 0)], PAD)


@dataclass(frozen=True)
class Outcome:
    """What the visitors did with a week's policy lists: one row per print of the page each
    served session saw, in the order of the week's `Requests`.

    Times are epoch seconds; `click_time` and `apply_time` are -1 where there was no click or
    no application, `status` is `applications.NO_APPLY` there, else the index of the
    application's status in `taxonomy.APPLY_STATUSES` (what the applications state settled).
    """

    request: np.ndarray  # int64 row of the week's `Requests`
    offer: np.ndarray  # int64 row of the world's offers
    position: np.ndarray  # int64 position in the ranking (pages continue it)
    time: np.ndarray  # int64 when the list was shown (the session's time)
    click_time: np.ndarray  # int64, -1: not clicked
    apply_time: np.ndarray  # int64, -1: no application
    status: np.ndarray  # int64 status code, NO_APPLY: no application

    def __len__(self) -> int:
        return len(self.request)


class ReplayPolicy(Protocol):
    """What a replay needs from a policy: make the lists for these visitors at this instant.

    `learns` says whether `refit` should be called every `retrain_weeks`; `refit` receives
    the events recorded before `now` (history and replay), in the canonical events table.
    `observe` receives, after each week, what the visitors did with the policy's lists: a
    policy behind a service reports it as the front would (events), one in process learns
    it through `refit` and ignores it.
    """

    name: str
    learns: bool

    def lists(self, requests: Requests) -> np.ndarray:
        """(n, max k) positions in `requests.columns`, best first, -1 padded; row i is cut
        at `requests.k[i]`."""
        ...

    def refit(self, now: int, events: pd.DataFrame) -> None:
        """Train again on `events` (everything recorded before `now`)."""
        ...

    def observe(self, requests: Requests, outcome: Outcome) -> None:
        """What the visitors did with the lists made for `requests`."""
        ...


def make_lists(
    policy: ListPolicy, scores: np.ndarray, masks: np.ndarray, requests: Requests
) -> np.ndarray:
    """The core list policy's lists (`ListPolicy.pages`: pool, caps, ties by offer id) of the
    week's requests from their served `scores` over their candidates `masks`, each row its
    pages of `requests.size` up to `requests.k`, page after page as the service makes them for
    a request's `offset` (`ListPolicy.order_page`): (n, max k) positions in
    `requests.columns`, -1 padded."""
    publisher, programme = group_codes(requests.catalog)
    keys = tie_keys(requests.catalog.ids)
    out = np.full((len(requests), int(requests.k.max())), PAD, dtype=np.int64)
    for size, k in sorted(set(zip(requests.size.tolist(), requests.k.tolist(), strict=True))):
        rows = np.flatnonzero((requests.size == size) & (requests.k == k))
        made = policy.pages(scores[rows], masks[rows], size, k // size, publisher, programme, keys)
        out[rows, : made.shape[1]] = made
    return out


class OraclePolicy:
    """The ceiling: each session's person ranked by their expected utility (the simulator's
    truth), over the same candidates and through the same list policy, as evaluation's
    oracle. It knows who is behind an anonymous session, which no real policy can."""

    name = "oracle"
    learns = False

    def __init__(self, world: World, policy: ListPolicy | None = None) -> None:
        self._truth = world.truth
        self._policy = policy if policy is not None else ListPolicy()

    def lists(self, requests: Requests) -> np.ndarray:
        mask = requests.candidates()
        rows, offers = np.nonzero(mask)
        scores = np.full(mask.shape, np.nan)
        scores[rows, offers] = utility(self._truth, requests.person[rows], requests.columns[offers])
        return make_lists(self._policy, scores, mask, requests)

    def refit(self, now: int, events: pd.DataFrame) -> None:
        raise NotImplementedError("the oracle does not learn")

    def observe(self, requests: Requests, outcome: Outcome) -> None:
        """Nothing to do: the oracle knows the truth."""


class OfferOraclePolicy:
    """What knowing every offer and nobody is worth: each request's candidates ranked by the
    chance that an examined print of the offer leads to an application, averaged over the
    simulated people (their preferences for it: its quality and their tastes) and over the
    pair noise, with the distance term from the request's own place and radius (what the
    front sends: the stored profile's, or the widget's or visitor's city), or from each
    person's home where the request has no place. It never reads who is behind a session:
    for people a policy knows nothing about, the ceiling of any learning, short of knowing
    how far from the request's place the person lives.

    The preferences enter as `QUANTILE_LEVELS` quantiles per offer over a sample of people
    (`truth.population_quantiles`), the noise through Gauss–Hermite nodes, and the located
    requests' expectations are tabulated per offer over `DISTANCE_GRID` and interpolated
    linearly: exact sums per (request, offer) would cost quantiles × nodes response
    evaluations per candidate, every week.
    """

    name = "offer_oracle"
    learns = False
    QUANTILE_LEVELS = (np.arange(32) + 0.5) / 32
    NOISE_NODES = 8
    DISTANCE_GRID = np.linspace(-8.0, 0.0, 161)  # distance terms; farther ones are clipped

    def __init__(self, world: World, policy: ListPolicy | None = None) -> None:
        self._truth = world.truth
        self._rates = world.config.rates
        self._noise = world.config.weights.noise
        self._policy = policy if policy is not None else ListPolicy()
        nodes, weights = hermegauss(self.NOISE_NODES)
        self._nodes, self._weights = nodes, weights / weights.sum()
        preferences, utilities = population_quantiles(world.truth, self.QUANTILE_LEVELS)
        self._table = np.stack(
            [self.expected_applications(preferences + d) for d in self.DISTANCE_GRID], axis=1
        )
        self._placeless = self.expected_applications(utilities)

    def expected_applications(self, utilities: np.ndarray) -> np.ndarray:
        """(n,) P(click | examined) × P(apply | click), averaged over the columns of the
        (n, quantiles) `utilities` and over the pair noise."""
        taste = utilities[..., None] + self._noise * self._nodes
        chance = diffusion.click_probability(self._rates, taste) * diffusion.apply_probability(
            self._rates, taste
        )
        return (chance @ self._weights).mean(axis=1)

    def scores(self, requests: Requests) -> np.ndarray:
        """(n, n_columns) the score of every column for every request (candidates or not)."""
        arrays = profile_arrays(requests.profiles)
        radius = search_radius_km(arrays)
        columns = requests.columns[None, :]
        distance = distance_term(
            self._truth, arrays.lat[:, None], arrays.lon[:, None], radius[:, None], columns
        )
        grid = self.DISTANCE_GRID
        step = grid[1] - grid[0]
        at = (np.clip(np.nan_to_num(distance, nan=grid[0]), grid[0], grid[-1]) - grid[0]) / step
        low = np.minimum(at.astype(np.int64), len(grid) - 2)
        share = at - low
        located = (1.0 - share) * self._table[columns, low] + share * self._table[columns, low + 1]
        return np.where(np.isfinite(distance), located, self._placeless[columns])

    def lists(self, requests: Requests) -> np.ndarray:
        mask = requests.candidates()
        scores = np.where(mask, self.scores(requests), np.nan)
        return make_lists(self._policy, scores, mask, requests)

    def refit(self, now: int, events: pd.DataFrame) -> None:
        raise NotImplementedError("the offer oracle does not learn")

    def observe(self, requests: Requests, outcome: Outcome) -> None:
        """Nothing to do: the offer oracle knows the offers' truth."""


class ProfileOraclePolicy:
    """What a profile can tell of the person, read as well as a linear reading can: every
    offer's truth, as the offer oracle knows it, and the person's side of the preference
    (`truth.PersonTerms`: interests, aspiration, age, rhythm) estimated from what the
    request's profile says, the response model's person features (`user_features`: quiz,
    motivations, age band...), by a least-squares map fitted on the whole simulated
    population's truth. It never reads who is behind a session; an anonymous request (a place
    and a radius) gets the population's mean person.

    Requests rank by the estimated utility: that preference plus the distance term from the
    request's place and radius, or the offer's mean distance term over the population where
    the request has no place. It is a reference for what learning from first-visit profiles
    could reach, not a bound: a better reading than a linear one may exist.
    """

    name = "profile_oracle"
    learns = False
    RIDGE = 1e-3  # relative to the mean squared feature: keeps rare profile cells finite
    PLACELESS_SAMPLE = 2_000  # people over whom an offer's mean distance term is taken
    ROWS = 256  # requests scored at a time: bounds the (rows, columns) arrays

    def __init__(self, world: World, policy: ListPolicy | None = None) -> None:
        truth = world.truth
        self._truth = truth
        self._policy = policy if policy is not None else ListPolicy()
        frame = world.people.frame
        features = user_features(profile_arrays(frame))
        target = person_terms(truth, truth.person_index(frame["userId"].to_numpy())).matrix()
        gram = features.T @ features
        penalty = self.RIDGE * np.trace(gram) / len(gram)
        self._reading = np.linalg.solve(gram + penalty * np.eye(len(gram)), features.T @ target)
        rng = np.random.default_rng(0)
        n_people = len(truth.people)
        people = rng.choice(n_people, min(self.PLACELESS_SAMPLE, n_people), replace=False)
        p = truth.people
        everywhere = distance_term(
            truth,
            p.lat[people, None],
            p.lon[people, None],
            p.radius_km[people, None],
            np.arange(len(truth.offers))[None, :],
        )
        self._placeless = np.nanmean(everywhere, axis=0)

    def scores(self, requests: Requests) -> np.ndarray:
        """(n, n_columns) the estimated utility of every column for every request."""
        arrays = profile_arrays(requests.profiles)
        terms = PersonTerms.from_matrix(user_features(arrays) @ self._reading)
        radius = search_radius_km(arrays)
        columns = requests.columns[None, :]
        out = np.empty((len(requests), len(requests.columns)))
        for start in range(0, len(requests), self.ROWS):
            rows = np.arange(start, min(start + self.ROWS, len(requests)))[:, None]
            distance = distance_term(
                self._truth, arrays.lat[rows], arrays.lon[rows], radius[rows], columns
            )
            distance = np.where(np.isfinite(distance), distance, self._placeless[columns])
            out[rows[:, 0]] = preference_of(self._truth, terms, rows, columns) + distance
        return out

    def lists(self, requests: Requests) -> np.ndarray:
        mask = requests.candidates()
        scores = np.where(mask, self.scores(requests), np.nan)
        return make_lists(self._policy, scores, mask, requests)

    def refit(self, now: int, events: pd.DataFrame) -> None:
        raise NotImplementedError("the profile oracle does not learn")

    def observe(self, requests: Requests, outcome: Outcome) -> None:
        """Nothing to do: the profile oracle's reading is fitted once, on the truth."""


@dataclass
class RunResult:
    """What one policy produced in one replay run (served = on the policy's lists)."""

    policy: str
    repeat: int
    week_start: list[str]  # ISO date of each replayed week
    weekly_applications: np.ndarray  # served applies per week
    weekly_applications_all: np.ndarray  # applies from every source per week
    programme_applications: np.ndarray  # served applies per programme (taxonomy.PROGRAMMES)
    lists: int = 0  # served lists (human sessions of the served surfaces)
    prints: int = 0
    clicks: int = 0
    new_offer_applications: int = 0  # served applies on offers posted after the replay start
    known_lists: int = 0  # served lists of people with a history (`Replay.run`)
    known_applications: int = 0  # served applies of people with a history
    anonymous_lists: int = 0  # served lists of sessions without the stable userId
    anonymous_applications: int = 0  # served applies in those sessions
    publisher_prints: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def applications(self) -> int:
        return int(self.weekly_applications.sum())

    def figures(self) -> dict[str, float]:
        """The run's headline figures (what the report puts intervals on)."""
        applications = self.applications
        return {
            "applications": float(applications),
            "applications_all_sources": float(self.weekly_applications_all.sum()),
            "applications_per_1000_lists": 1000.0 * applications / self.lists
            if self.lists
            else 0.0,
            "applications_known": float(self.known_applications),
            "applications_without_history": float(applications - self.known_applications),
            "lists_known": float(self.known_lists),
            "applications_anonymous": float(self.anonymous_applications),
            "lists_anonymous": float(self.anonymous_lists),
            "click_through": self.clicks / self.prints if self.prints else 0.0,
            "new_offer_share": self.new_offer_applications / applications if applications else 0.0,
            "gini_publisher": metrics.gini(self.publisher_prints)
            if self.publisher_prints.size
            else 0.0,
            "lists": float(self.lists),
        }


class Replay:
    """A simulated dataset's world, diffused up to the replay's start, ready to play policies.

    Args:
        data_dir: a `recsys simulate` output (its manifest rebuilds the world).
        weeks: replayed weeks, the last ones of the simulated period.
        say: progress messages.

    Raises:
        ValueError: the folder is no finished simulation, or `weeks` does not fit in it.
    """

    def __init__(
        self, data_dir: Path | str, weeks: int, say: Callable[[str], None] = logger.info
    ) -> None:
        self.data_dir = Path(data_dir)
        manifest = read_manifest(self.data_dir)
        if manifest is None:
            raise ValueError(f"--data: {self.data_dir} holds no finished simulation (manifest)")
        if manifest.get("generator_version") != GENERATOR_VERSION:
            raise ValueError(
                f"--data: simulated by generator version {manifest.get('generator_version')!r}, "
                f"this code is {GENERATOR_VERSION!r}; simulate the dataset again"
            )
        config = SimulationConfig.from_dict(manifest["config"])
        total_weeks = config.days // 7
        if not 1 <= weeks < total_weeks:
            raise ValueError(f"--weeks: expected 1 to {total_weeks - 1}, got {weeks}")
        self.seed = int(manifest["seed"])
        self.weeks = weeks
        world = build_world(config, self.seed, say)
        self.world = world
        self.first_week = total_weeks - weeks
        self.t_start = int(world.start.timestamp()) + self.first_week * WEEK
        self.profiles = read_table(self.data_dir / PROFILES_FILE)
        sessions = world.sessions
        before = np.flatnonzero(sessions.time < self.t_start)
        say(f"replay: diffusing the {self.first_week} weeks of history again")
        self._applications = world.applications(self.profiles)
        diffusion.diffuse(
            config,
            world.cities,
            sessions.take(before),
            world.offers,
            world.truth,
            self._applications,
            world.rng_diffusion,
            world.start,
        )
        self._active_to = world.offers.active_to.copy()
        self._catalog = offer_arrays(world.offers.frame)
        self._city_points = unit_vectors(
            world.cities["lat"].to_numpy(), world.cities["lon"].to_numpy()
        )
        self._served = np.isin(sessions.source, SERVED_SOURCES) & ~sessions.bot & ~sessions.seo
        self._publisher_codes = world.offers.publisher.astype(np.int64)
        self._programme = world.offers.truth.programme.astype(np.int64)
        self._is_new = world.offers.posted_at >= self.t_start
        self._history: pd.DataFrame | None = None
        self._with_history = self._people_with_history()

    def _people_with_history(self) -> np.ndarray:
        """Bool per simulated person: clicked or applied in a session carrying their userId
        before the replay's start (what a model can know them by)."""
        events = self.history()
        acted = events[events["type"].isin(["click", "apply"]) & events["userId"].notna()]
        rows = pd.Index(self.profiles["userId"]).get_indexer(acted["userId"].unique())
        out = np.zeros(len(self.profiles), dtype=bool)
        out[rows[rows >= 0]] = True
        return out

    def history(self) -> pd.DataFrame:
        """The dataset's events before the replay's start (what every policy starts from)."""
        if self._history is None:
            events = read_table(self.data_dir / EVENTS_FILE)
            start = pd.Timestamp(self.t_start, unit="s", tz="UTC")
            self._history = events[events["createdAt"] < start].reset_index(drop=True)
        return self._history

    def offers_at_start(self) -> pd.DataFrame:
        """The offers table as it stands at the replay's start: the world's offers, those
        the history filled withdrawn (`deletedAt`, as the simulator records withdrawals).

        What a service behind the replay ranks; the withdrawals of the replayed weeks depend
        on the policy and are the replay's alone.
        """
        frame = self.world.offers.frame.copy()
        _withdraw_filled(frame, self._applications.filled_at, self.world.t_end)
        return frame

    def run(
        self,
        policy: ReplayPolicy,
        repeat: int,
        retrain_weeks: int = 4,
        say: Callable[[str], None] = logger.info,
    ) -> RunResult:
        """Play every replayed week with `policy` serving the platform's surfaces.

        Deterministic for (dataset, policy, repeat): the draws come from a generator seeded by
        the dataset's seed and `repeat`, the same for every policy.
        """
        if retrain_weeks < 1:
            raise ValueError(f"--retrain-weeks: expected at least 1, got {retrain_weeks}")
        world = self.world
        config, sessions = world.config, world.sessions
        rng = np.random.default_rng([self.seed, repeat])
        offers = replace(world.offers, active_to=self._active_to.copy())
        applications = self._applications.fork(offers, rng)
        t0 = int(world.start.timestamp())
        result = RunResult(
            policy=policy.name,
            repeat=repeat,
            week_start=[],
            weekly_applications=np.zeros(self.weeks, dtype=np.int64),
            weekly_applications_all=np.zeros(self.weeks, dtype=np.int64),
            programme_applications=np.zeros(_PROGRAMMES, dtype=np.int64),
            publisher_prints=np.zeros(len(world.offers.publisher_ids), dtype=np.float64),
        )
        log = diffusion.InteractionLog()
        # People with a history: clicked or applied in an identified session before the week.
        with_history = self._with_history.copy()
        known_session = np.zeros(len(sessions.time), dtype=bool)
        anonymous_session = np.zeros(len(sessions.time), dtype=bool)
        week_of = (sessions.time - t0) // WEEK
        for i in range(self.weeks):
            w = self.first_week + i
            week_start, week_end = t0 + w * WEEK, t0 + (w + 1) * WEEK
            if policy.learns and i % retrain_weeks == 0:
                say(f"{policy.name} #{repeat}: training on what was recorded before week {i + 1}")
                policy.refit(week_start, self._events(log, offers, repeat, week_start))
            rows = np.flatnonzero(week_of == w)
            result.week_start.append(pd.Timestamp(week_start, unit="s").date().isoformat())
            served = rows[self._served[rows]]
            seo = rows[sessions.seo[rows]]
            other = rows[~self._served[rows] & ~sessions.seo[rows]]
            open_now = (offers.active_from < week_end) & (offers.active_to > week_start)
            pools = diffusion.Pools.build(
                offers, open_now, sessions.city[rows], self._city_points, config, rng
            )
            s_other, o_other, p_other = diffusion.incumbent_lists(
                sessions, other, pools, offers, rng
            )
            s_seo, o_seo = diffusion.landings(sessions, seo, pools, offers, world.truth, rng)
            requests = self._requests(served, week_start, week_end, offers, applications)
            known_session[served] = requests.identified & with_history[requests.person]
            anonymous_session[served] = ~requests.identified
            lists = requests.offers(policy.lists(requests)) if len(served) else None
            s_pol, o_pol, p_pol = self._shown(requests, lists)
            session = np.concatenate([s_other, s_seo, s_pol])
            offer = np.concatenate([o_other, o_seo, o_pol])
            position = np.concatenate([p_other, np.ones(len(s_seo), dtype=np.int64), p_pol])
            reactions = diffusion.respond(
                config,
                sessions,
                session,
                offer,
                position,
                world.truth,
                applications,
                rng,
                world.t_end,
                week_end,
            )
            log.add(session, offer, position, reactions)
            if len(served):
                policy.observe(
                    requests,
                    _outcome(
                        requests, session, offer, position, reactions, len(s_other) + len(s_seo)
                    ),
                )

            on_policy = self._served[session]
            applying = reactions.applied_prints()
            applied_session, applied_offer = session[applying], offer[applying]
            mine = self._served[applied_session]
            result.weekly_applications[i] = int(mine.sum())
            result.weekly_applications_all[i] = len(applying)
            result.programme_applications += np.bincount(
                self._programme[applied_offer[mine]], minlength=_PROGRAMMES
            )
            result.new_offer_applications += int(self._is_new[applied_offer[mine]].sum())
            result.known_applications += int(known_session[applied_session[mine]].sum())
            result.known_lists += int(known_session[served].sum())
            result.anonymous_applications += int(anonymous_session[applied_session[mine]].sum())
            result.anonymous_lists += int(anonymous_session[served].sum())
            acted = session[reactions.clicked]
            acted = acted[sessions.identified[acted] & ~sessions.bot[acted]]
            with_history[sessions.person[acted]] = True
            result.lists += len(served)
            result.prints += int(on_policy.sum())
            result.clicks += int((reactions.clicked & on_policy).sum())
            result.publisher_prints += np.bincount(
                self._publisher_codes[offer[on_policy]], minlength=len(result.publisher_prints)
            )
        say(
            f"{policy.name} #{repeat}: {result.applications:,} applications from "
            f"{result.lists:,} served lists"
        )
        return result

    def _requests(
        self,
        served: np.ndarray,
        week_start: int,
        week_end: int,
        offers: diffusion.SimulatedOffers,
        applications: Applications,
    ) -> Requests:
        """The week's served sessions as ranking requests."""
        world, sessions = self.world, self.world.sessions
        person = sessions.person[served]
        identified = sessions.identified[served]
        user_ids = np.where(
            identified,
            self.profiles["userId"].to_numpy(dtype=object)[person],
            np.asarray(world.vocabularies.users, dtype=object)[sessions.device[served]],
        )
        frame = aligned_profiles(self.profiles, user_ids)
        anonymous = np.flatnonzero(~identified)
        city = sessions.city[served[anonymous]]
        for column, values in (
            ("lat", world.cities["lat"].to_numpy()[city]),
            ("lon", world.cities["lon"].to_numpy()[city]),
            ("radiusKm", sessions.radius[served[anonymous]]),
        ):
            frame.loc[anonymous, column] = values
        columns = np.flatnonzero((offers.active_from < week_end) & (offers.active_to > week_start))
        t = sessions.time[served][:, None]
        allowed = (offers.active_from[columns] <= t) & (offers.active_to[columns] > t)
        truth = world.offers.truth
        for wanted, have in (
            (sessions.programme[served], truth.programme[columns]),
            (sessions.domain[served], truth.domain[columns]),
        ):
            allowed &= (wanted[:, None] < 0) | (have[None, :] == wanted[:, None])
        remote = truth.remote[columns] == taxonomy.REMOTE_VALUES.index("full")
        allowed &= sessions.remote[served][:, None] | ~remote[None, :]
        known = np.flatnonzero(identified)
        row, offer = applications.applied_offers(person[known])
        position = np.searchsorted(columns, offer)
        inside = position < len(columns)
        inside[inside] = columns[position[inside]] == offer[inside]
        applied = sp.csr_matrix(
            (np.ones(int(inside.sum())), (known[row[inside]], position[inside])),
            shape=allowed.shape,
        )
        size = sessions.size[served].astype(np.int64)
        return Requests(
            session=served,
            identified=identified,
            profiles=frame,
            person=person,
            time=sessions.time[served],
            k=sessions.page[served].astype(np.int64) * size,
            size=size,
            columns=columns,
            allowed=allowed,
            applied=applied,
            catalog=open_during(self._catalog.take(columns), week_start, week_end),
            now=week_start,
        )

    def _shown(
        self, requests: Requests, lists: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(session, offer, position) of the page each served session saw of its list."""
        if lists is None or lists.size == 0:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty
        sessions = self.world.sessions
        size = sessions.size[requests.session].astype(np.int64)
        first = requests.k - size
        slot = np.arange(lists.shape[1])[None, :]
        on_page = (slot >= first[:, None]) & (slot < requests.k[:, None]) & (lists >= 0)
        r, c = np.nonzero(on_page)
        return requests.session[r], lists[r, c], (c + 1).astype(np.int64)

    def _events(
        self,
        log: diffusion.InteractionLog,
        offers: diffusion.SimulatedOffers,
        repeat: int,
        now: int,
    ) -> pd.DataFrame:
        """History plus the replay's events before `now`, as one canonical events table."""
        history = self.history()
        if log.empty:
            return history
        world = self.world
        replayed = _events(
            log.interactions(),
            world.sessions,
            offers,
            world.people,
            world.vocabularies,
            np.random.default_rng([self.seed, repeat, log.n_clicks]),
            world.salts[6] + 1 + repeat,  # ids apart from the history's
            world.config.rates.account_share,
        )
        replayed = replayed[replayed["createdAt"] < pd.Timestamp(now, unit="s", tz="UTC")]
        return pd.concat([history, replayed], ignore_index=True)


def _outcome(
    requests: Requests,
    session: np.ndarray,
    offer: np.ndarray,
    position: np.ndarray,
    reactions: diffusion.Reactions,
    first: int,
) -> Outcome:
    """The `Outcome` of the prints from `first` on (the policy's, last of the week's prints),
    from the reactions to every print of the week."""
    clicked, attempt, status = reactions.clicked, reactions.attempt, reactions.status
    n = len(session)
    clicks = np.flatnonzero(clicked)
    click_at = np.full(n, -1, dtype=np.int64)
    click_at[clicks] = reactions.click_time
    apply_at = np.full(n, -1, dtype=np.int64)
    settled = np.full(n, NO_APPLY, dtype=np.int64)
    done = reactions.applied
    apply_at[clicks[attempt][done]] = reactions.apply_time[done]
    settled[clicks[attempt][done]] = status[done]
    mine = slice(first, n)
    request = np.searchsorted(requests.session, session[mine]).astype(np.int64)
    return Outcome(
        request=request,
        offer=offer[mine].astype(np.int64),
        position=position[mine].astype(np.int64),
        time=requests.time[request].astype(np.int64),
        click_time=click_at[mine],
        apply_time=apply_at[mine],
        status=settled[mine],
    )
