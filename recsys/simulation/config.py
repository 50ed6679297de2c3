"""Knobs of the simulator and its three presets (tiny for tests, demo, large for benchmarks).

Every size and rate the generative story uses lives here, so that a preset is one frozen
record written into the manifest and a run is reproduced from (preset, seed, version).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

from recsys import taxonomy

# Bump when the generative story changes: a cached dataset with another version is rebuilt.
GENERATOR_VERSION = "1.1"


@dataclass(frozen=True)
class UtilityWeights:
    """Weights of the true utility of a (person, offer) pair (see `truth.utility`)."""

    domain: float = 1.0  # log interest of the person in the offer's domain
    activity: float = 0.5  # mean log interest in the offer's activity types
    distance: float = 1.6  # times -log(1 + d / radius)
    remote_full: float = -0.8  # distance term of a fully remote offer, wherever the person is
    remote_possible_share: float = 0.5  # share of the distance term kept when remote is possible
    programme: float = 1.0  # aspiration x programme fit table
    age: float = 1.0  # age band x programme fit table
    pay: float = 0.6  # paid offer, for people who want pay (insertion)
    rhythm: float = 0.5  # offer rhythm equals the person's preferred rhythm
    quality: float = 0.6  # latent offer quality, standard normal
    noise: float = 0.8  # sd of the persistent pair noise (not in the expected utility)


@dataclass(frozen=True)
class BehaviourRates:
    """How shown offers turn into clicks and applies (logistic links on the utility)."""

    click_intercept: float = -3.4  # sigmoid(click_intercept + utility) when examined
    seo_click_intercept: float = 1.0  # a search landing is examined and wanted
    apply_intercept: float = -2.8  # sigmoid(apply_intercept + apply_slope * utility) per click
    apply_slope: float = 0.7
    ineligible_apply_share: float = 0.1  # attempts by ineligible people, all REFUSED
    bot_click_rate: float = 0.3
    account_share: float = 0.35  # applies preceded by an account creation on the publisher


@dataclass(frozen=True)
class SimulationConfig:
    """Sizes and rates of one simulated dataset."""

    name: str
    n_people: int
    n_offers: int
    n_widgets: int
    n_bots: int
    n_cities: int  # the most populous cities used (fewer for small presets keeps density)
    sessions_per_person: float  # mean number of sessions of a person over the year
    pool_size: int  # nearest active offers considered per session (the search's reach)
    start: date = date(2025, 9, 1)
    days: int = 365
    offers_before_start: float = 0.2  # share of offers posted in the months before `start`
    quiz_share: float = 0.5
    disability_share: float = 0.03
    unknown_age_share: float = 0.05
    consent_share: float = 0.4  # people who agree to be contacted for a mobilisation
    bot_sessions: tuple[int, int] = (20, 120)  # sessions per bot, min and max
    weights: UtilityWeights = field(default_factory=UtilityWeights)
    rates: BehaviourRates = field(default_factory=BehaviourRates)

    def __post_init__(self) -> None:
        for name in ("n_people", "n_offers", "n_widgets", "n_cities", "pool_size", "days"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected a positive count, got {getattr(self, name)}")
        if self.sessions_per_person < 1:
            raise ValueError(
                f"sessions_per_person: expected at least 1, got {self.sessions_per_person}"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (dates as ISO strings), as written in the manifest."""
        out = asdict(self)
        out["start"] = self.start.isoformat()
        out["bot_sessions"] = list(self.bot_sessions)
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SimulationConfig:
        """The config `to_dict` wrote (a manifest's `config`)."""
        values = dict(values)
        values["start"] = date.fromisoformat(values["start"])
        values["bot_sessions"] = tuple(values["bot_sessions"])
        values["weights"] = UtilityWeights(**values["weights"])
        values["rates"] = BehaviourRates(**values["rates"])
        return cls(**values)


PRESETS: dict[str, SimulationConfig] = {
    "tiny": SimulationConfig(
        name="tiny",
        n_people=600,
        n_offers=300,
        n_widgets=6,
        n_bots=2,
        n_cities=15,
        sessions_per_person=11.0,
        pool_size=150,
        bot_sessions=(10, 30),
    ),
    "demo": SimulationConfig(
        name="demo",
        n_people=50_000,
        n_offers=10_000,
        n_widgets=150,
        n_bots=30,
        n_cities=692,
        sessions_per_person=2.9,
        pool_size=300,
    ),
    "large": SimulationConfig(
        name="large",
        n_people=500_000,
        n_offers=100_000,
        n_widgets=1_200,
        n_bots=300,
        n_cities=692,
        sessions_per_person=2.9,
        pool_size=300,
    ),
}


def get_preset(name: str) -> SimulationConfig:
    """The preset called `name`.

    Raises:
        ValueError: naming the known presets when `name` is not one of them.
    """
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(
            f"preset: unknown preset {name!r}; expected one of {', '.join(PRESETS)}"
        ) from None


PROGRAMME_SHARES: dict[str, float] = {
    taxonomy.BENEVOLAT: 0.65,
    taxonomy.SERVICE_CIVIQUE: 0.25,
    taxonomy.SAPEURS_POMPIERS: 0.05,
    taxonomy.RESERVE: 0.05,
}
