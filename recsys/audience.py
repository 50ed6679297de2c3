"""Audiences: the consenting people most likely to answer an offer or a need, best first.

The reverse of a ranking: one offer (or a coordinator's need, turned into an offer row) is
scored against every known person, and the top k eligible, consenting people are kept. People
are streamed in chunks with a running top-k per target, so no people × offers matrix ever
exists whole and memory stays bounded by `AudienceConfig.chunk_size` × targets.

Who may be in an audience (hard rules, never traded against a score):
    - only people whose profile says `contactConsent`, given (`consentAt`) no later than the
      request (the `People` panel holds nobody else; a withdrawal takes effect when the
      profiles are next loaded);
    - eligible for the target at the time of the request (`recsys.eligibility`: age,
      programme, dates, places; for an offer, the person's own radius);
    - for a need, inside its area: within `radius_km` of its place, or living in one of its
      departments (a person of unknown place is then out: nothing proves they are near).

The propensity score of a person p for a target o (weights in `AudienceConfig`):

    score(p, o) = model_weight · model(p, o)            the learned model, scored in reverse
                + rules_weight · rules(p, o)            the quiz engine without remote overrides
                + engagement_weight · log(1 + e(p))     recency-weighted activity on the platform
                + domain_weight · log(1 + e_d(p, o))    the same, in the target's domain(s)
                + recency_weight · −log(1 + idle(p) / recency_days)
                + tenure_weight · −log(1 + since(p) / tenure_days)
                + visits_weight · log(1 + v(p))
                + distance_weight · −log(1 + d(p, o) / distance_scale_km)
                + reach_weight · −log(1 + d(p, o) / radius(p))
                + fit_weight · fit(age band(p), programme(o))

`model` is the learned part of the served model (`learned_model`). `e(p)` sums the person's
events before the request (prints, clicks, applies, weighted by type), each decayed by
`0.5 ** (age / half_life_days)`: someone who applied last week is likelier to answer than
someone last seen a year ago. `idle(p)` is the number of days since their last event or their
consent (a year when neither is known): people come to the platform in spells. `since(p)` is
the number of days since their first event or consent (the same year when neither is known):
a spell starts with the arrival and fades months later. `v(p)` counts their visits (distinct
ranking requests they acted on, undecayed): how often they come at all. A fully remote target
has no distance terms; an unknown distance counts as `distance_scale_km` (and as the person's
radius). `radius(p)` is the person's own (`arrays.profile_arrays`: said, from mobility, or the
default). `fit` is how much likelier people of an age band apply to a programme than people
overall (`programme_fit`, from the panel's applies before the request: a log-lift, smoothed).

The weights are fitted (`fit_weights`, `recsys audience tune`): a conditional logit of who
applied to which offer among the people eligible for it, on a validation window.

Rows name people by `recsys.privacy.pseudonym` of their id (the event store's form), with the
score, a distance band and the reasons; totals count the audience by department and age band.
An audience of fewer than `MIN_COUNT` people is refused (`AudienceTooSmall`): it would come
close to naming someone.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from recsys import geo, places, schema, taxonomy
from recsys.arrays import ProfileArrays, to_epoch_seconds
from recsys.dataset import FrameEncoder, OfferBatch, UserBatch
from recsys.eligibility import eligible_matrix, offer_distances_km
from recsys.geo import haversine_km
from recsys.models.base import Recommender
from recsys.privacy import pseudonym
from recsys.rules import incumbent_scores
from recsys.typed_config import DictConfig

MIN_COUNT = 10  # the smallest audience served: fewer people would come close to naming them
DAY_SECONDS = 86_400
UNKNOWN = "unknown"
# Upper bounds (km) of the distance bands of audience rows; beyond the last: "50+ km".
DISTANCE_BAND_EDGES: tuple[float, ...] = (5.0, 10.0, 20.0, 50.0)
DISTANCE_BANDS: tuple[str, ...] = ("<5 km", "5-10 km", "10-20 km", "20-50 km", "50+ km")
REMOTE_BAND = "remote"
_FULL = taxonomy.REMOTE_VALUES.index("full")
_NEED_ID = "need"


class AudienceTooSmall(ValueError):
    """Fewer people than the minimum would be returned: the audience is refused."""


@dataclass
class AudienceConfig(DictConfig):
    """Weights of the propensity score (module docstring) and of the engagement signal.

    The weights' defaults are `recsys audience tune` (the conditional logit of `fit_weights`)
    on the validation window of the simulator's demo preset (seed 42), the hybrid as model;
    the scales (`*_days`, `distance_scale_km`) are fixed, not fitted.
    """

    model_weight: float = 0.0582
    rules_weight: float = 1.8332
    engagement_weight: float = 0.0
    domain_weight: float = 0.868
    distance_weight: float = 1.4632
    recency_weight: float = 3.0809
    tenure_weight: float = 0.9099
    visits_weight: float = 0.1969
    reach_weight: float = 0.4815
    fit_weight: float = 1.1294
    distance_scale_km: float = 21.684
    half_life_days: float = 30.0
    recency_days: float = 116.017
    tenure_days: float = 60.0
    print_weight: float = 0.2
    click_weight: float = 1.0
    apply_weight: float = 3.0
    chunk_size: int = 32_768

    def __post_init__(self) -> None:
        for name in (
            "model_weight",
            "rules_weight",
            "engagement_weight",
            "domain_weight",
            "distance_weight",
            "recency_weight",
            "tenure_weight",
            "visits_weight",
            "reach_weight",
            "fit_weight",
            "print_weight",
            "click_weight",
            "apply_weight",
        ):
            if not getattr(self, name) >= 0:
                raise ValueError(f"AudienceConfig.{name}: must be >= 0, got {getattr(self, name)}")
        for name in ("distance_scale_km", "half_life_days", "recency_days", "tenure_days"):
            if not getattr(self, name) > 0:
                raise ValueError(f"AudienceConfig.{name}: must be > 0, got {getattr(self, name)}")
        if self.chunk_size < 1:
            raise ValueError(f"AudienceConfig.chunk_size: must be >= 1, got {self.chunk_size}")

    def event_weights(self) -> dict[str, float]:
        """Weight of one event of each type in the engagement sum."""
        return {"print": self.print_weight, "click": self.click_weight, "apply": self.apply_weight}


# --- People ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Engagement:
    """Each person's activity before an instant, rows aligned with people."""

    total: np.ndarray  # float32 (n,): decayed, type-weighted event count
    by_domain: np.ndarray  # float32 (n, len(taxonomy.DOMAINS)): the same, per offer domain
    last_seen: np.ndarray  # int64 (n,): epoch seconds of the last event, -1 never
    first_seen: np.ndarray  # int64 (n,): epoch seconds of the first event, -1 never
    visits: np.ndarray  # float32 (n,): distinct ranking requests acted on, undecayed
    applied: np.ndarray  # float32 (n, len(taxonomy.PROGRAMMES)): applies per programme

    @classmethod
    def none(cls, n: int) -> Engagement:
        """Nobody did anything (no events known)."""
        return cls(
            np.zeros(n, np.float32),
            np.zeros((n, len(taxonomy.DOMAINS)), np.float32),
            np.full(n, -1, np.int64),
            np.full(n, -1, np.int64),
            np.zeros(n, np.float32),
            np.zeros((n, len(taxonomy.PROGRAMMES)), np.float32),
        )

    def take(self, rows: np.ndarray) -> Engagement:
        return Engagement(
            self.total[rows],
            self.by_domain[rows],
            self.last_seen[rows],
            self.first_seen[rows],
            self.visits[rows],
            self.applied[rows],
        )

    def decayed(self, seconds: int, half_life_days: float) -> Engagement:
        """The same activity measured `seconds` later: the decayed sums shrink by the half-life
        (every event ages alike), the rest stays."""
        factor = np.float32(np.exp2(-seconds / (half_life_days * DAY_SECONDS)))
        return replace(self, total=self.total * factor, by_domain=self.by_domain * factor)

    def merge(self, other: Engagement) -> Engagement:
        """The activity of both sources (disjoint events): sums, earliest first, latest last."""
        return Engagement(
            self.total + other.total,
            self.by_domain + other.by_domain,
            np.maximum(self.last_seen, other.last_seen),
            _earliest(self.first_seen, other.first_seen),
            self.visits + other.visits,
            self.applied + other.applied,
        )


def _earliest(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise earliest of two epoch arrays where -1 means never."""
    return np.where(a < 0, b, np.where(b < 0, a, np.minimum(a, b)))


ENGAGEMENT_COLUMNS = ["type", "createdAt", "missionId", "userId", "isBot", "requestId"]


def engagement(
    events: pd.DataFrame,
    offers: pd.DataFrame,
    person_ids: np.ndarray,
    at: int,
    config: AudienceConfig,
    since: int | None = None,
) -> Engagement:
    """The `Engagement` of `person_ids` from canonical events in [`since`, `at`).

    Args:
        events: canonical events (at least `ENGAGEMENT_COLUMNS`); bots and events of unknown
            people are ignored. An event without `requestId` is a visit of its own.
        offers: `offer_facts` of the catalog (an unknown offer counts in the total and the
            visits only).
        person_ids: the people, by `userId` as the events hold it.
        at: epoch seconds; later events are the future and are ignored.
        config: event weights and half-life.
        since: epoch seconds; earlier events are ignored (another source holds them).
    """
    out = Engagement.none(len(person_ids))
    weights = config.event_weights()
    frame = events.loc[
        events["userId"].notna() & events["type"].isin(list(weights)), ENGAGEMENT_COLUMNS
    ]
    frame = frame.loc[~frame["isBot"].fillna(False).astype(bool)]
    rows = pd.Index(np.asarray(person_ids, dtype=object).astype(str)).get_indexer(
        frame["userId"].astype(str)
    )
    seconds = to_epoch_seconds(frame["createdAt"], -1)
    keep = (rows >= 0) & (seconds >= (since or 0)) & (seconds < at)
    if not keep.any():
        return out
    rows, seconds = rows[keep], seconds[keep]
    kinds = frame["type"].astype(str).to_numpy()[keep]
    weight = pd.Series(kinds).map(weights).to_numpy(dtype=float)
    weight = weight * np.exp2(-(at - seconds) / (config.half_life_days * DAY_SECONDS))
    offer_ids = frame["missionId"].astype(str).to_numpy()[keep]
    domain = _codes(offers["domain"], taxonomy.DOMAINS, offer_ids)
    programme = _codes(offers["type"], taxonomy.PROGRAMMES, offer_ids)
    np.add.at(out.total, rows, weight.astype(np.float32))
    known = domain >= 0
    np.add.at(out.by_domain, (rows[known], domain[known]), weight[known].astype(np.float32))
    np.maximum.at(out.last_seen, rows, seconds)
    first = np.full(len(person_ids), np.iinfo(np.int64).max)
    np.minimum.at(first, rows, seconds)
    out.first_seen[:] = np.where(first == np.iinfo(np.int64).max, -1, first)
    request = frame["requestId"].to_numpy(dtype=object)[keep]
    visit = pd.DataFrame({"row": rows, "request": request})
    alone = visit["request"].isna().to_numpy()
    distinct = visit.loc[~alone].drop_duplicates()["row"].to_numpy()
    out.visits[:] = np.bincount(np.concatenate([distinct, rows[alone]]), minlength=len(person_ids))
    applied = (kinds == "apply") & (programme >= 0)
    np.add.at(out.applied, (rows[applied], programme[applied]), np.float32(1))
    return out


def _codes(values: pd.Series, names: tuple[str, ...], ids: np.ndarray) -> np.ndarray:
    """Index in `names` of `values` (indexed by offer id) for each of `ids`; -1 unknown."""
    index = {name: i for i, name in enumerate(names)}
    return values.map(index).reindex(ids).fillna(-1).astype(int).to_numpy()


def offer_facts(offers: pd.DataFrame) -> pd.DataFrame:
    """What `engagement` reads of a catalog: domain and programme, indexed by offer id."""
    facts = offers[["domain", "type"]].copy()
    facts.index = offers["id"].astype(str)
    return facts


def programme_fit(band: np.ndarray, applied: np.ndarray) -> np.ndarray:
    """(bands + 1, programmes) log-lift: log P(programme | age band) − log P(programme) over
    the applies counted in `applied` (rows aligned with `band`, the index in
    `schema.CANDIDATE_AGE_BANDS`, its length for unknown), each cell counted one more."""
    counts = np.ones((len(schema.CANDIDATE_AGE_BANDS) + 1, applied.shape[1]))
    np.add.at(counts, band, applied.astype(float))
    within = counts / counts.sum(axis=1, keepdims=True)
    overall = counts.sum(axis=0) / counts.sum()
    return np.log(within) - np.log(overall)[None, :]


@dataclass(frozen=True)
class People:
    """The consenting known people an audience is drawn from, prepared once per profile load.

    Everyone here agreed to be contacted: `People.build` leaves everyone else out, so no
    scoring or ranking step can return them.
    """

    users: UserBatch  # ids (userId), encoded features, profile arrays
    department: np.ndarray  # object (str or None)
    age_band: np.ndarray  # object: one of schema.CANDIDATE_AGE_BANDS, or UNKNOWN
    engagement: Engagement
    fit: np.ndarray  # float64 (bands + 1, programmes): `programme_fit` of the panel

    def __len__(self) -> int:
        return len(self.users)

    @classmethod
    def build(
        cls,
        profiles: pd.DataFrame,
        encoder: FrameEncoder,
        engagement_of: Callable[[np.ndarray], Engagement] | None = None,
        at: int | None = None,
    ) -> People:
        """The panel from a canonical profiles table: consenting rows only, encoded.

        Args:
            profiles: canonical profiles (a table without `contactConsent` consents nobody).
            encoder: the model's user encoder.
            engagement_of: the engagement of the kept ids (`engagement`), none when omitted.
            at: epoch seconds of the requests the panel serves: a consent given later
                (`consentAt` after it) does not count yet.
        """
        consent = consenting(profiles, at)
        kept = profiles.loc[consent].reset_index(drop=True)
        users = UserBatch.encode(kept, encoder)
        ages = pd.to_numeric(kept["age"], errors="coerce")
        bands = np.array(
            [UNKNOWN if math.isnan(a) else schema.candidate_age_band(int(a)) for a in ages],
            dtype=object,
        )
        ids = users.ids.astype(str)
        activity = engagement_of(ids) if engagement_of is not None else Engagement.none(len(ids))
        # Consenting is engaging too: the consent's time counts as a sign of life.
        consented = (
            to_epoch_seconds(kept["consentAt"], -1)
            if "consentAt" in kept
            else np.full(len(kept), -1, np.int64)
        )
        if at is not None:
            consented = np.where(consented <= at, consented, -1)
        activity = replace(
            activity,
            last_seen=np.maximum(activity.last_seen, consented),
            first_seen=_earliest(activity.first_seen, consented),
        )
        return cls(
            users=users,
            department=kept["departmentCode"].to_numpy(dtype=object),
            age_band=bands,
            engagement=activity,
            fit=programme_fit(band_index(bands), activity.applied),
        )

    def bands(self, rows: np.ndarray) -> np.ndarray:
        """Index of each person's age band in `schema.CANDIDATE_AGE_BANDS` (its length when
        unknown)."""
        return band_index(self.age_band[rows])


def band_index(bands: np.ndarray) -> np.ndarray:
    """Index of each age band label in `schema.CANDIDATE_AGE_BANDS`, its length for UNKNOWN."""
    index = {name: i for i, name in enumerate(schema.CANDIDATE_AGE_BANDS)}
    unknown = len(schema.CANDIDATE_AGE_BANDS)
    return np.array([index.get(b, unknown) for b in bands], dtype=np.int64)


def consenting(profiles: pd.DataFrame, at: int | None = None) -> np.ndarray:
    """Boolean mask of the profiles whose `contactConsent` is true (missing reads as no) and,
    when `at` is given, whose `consentAt` is unknown or not after it."""
    if "contactConsent" not in profiles.columns:
        return np.zeros(len(profiles), dtype=bool)
    consent = profiles["contactConsent"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    if at is not None and "consentAt" in profiles.columns:
        given = to_epoch_seconds(profiles["consentAt"], -1)
        consent &= given <= at
    return consent


# --- Needs -------------------------------------------------------------------------------------


class NeedPlace(BaseModel):
    """Where a need is: coordinates, or a postal code (its department's prefecture)."""

    model_config = ConfigDict(extra="forbid")

    lat: float | None = Field(default=None, ge=-90, le=90, examples=[45.4397])
    lon: float | None = Field(default=None, ge=-180, le=180, examples=[4.3872])
    postal_code: geo.PostalCode | None = Field(default=None, examples=["42000"])

    @model_validator(mode="after")
    def _located(self) -> NeedPlace:
        if (self.lat is None) != (self.lon is None):
            raise ValueError("place: lat and lon must be given together")
        if self.lat is None and self.postal_code is None:
            raise ValueError("place: give lat and lon, or a postal_code")
        return self

    def coordinates(self) -> tuple[float, float]:
        """(lat, lon): as given, else the postal code's place (`recsys.places.locate`: the
        centroid of its communes, its department's prefecture for a code La Poste does not
        list).

        Raises:
            ValueError: naming the postal code when nothing places it.
        """
        if self.lat is not None and self.lon is not None:
            return self.lat, self.lon
        found = places.locate(postal_code=self.postal_code)
        if found is None:
            raise ValueError(f"place.postal_code: {self.postal_code} is in no known department")
        return found.lat, found.lon


class Need(BaseModel):
    """A coordinator's need: what, where, when and how many (a YAML file or a JSON body)."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(
        default="need", max_length=200, examples=["Collecte alimentaire de printemps"]
    )
    programme: str = Field(default=taxonomy.BENEVOLAT, examples=["benevolat"])
    domains: list[str] = Field(
        min_length=1, max_length=len(taxonomy.DOMAINS), examples=[["solidarite-insertion"]]
    )
    activities: list[str] = Field(
        default_factory=list, max_length=len(taxonomy.ACTIVITIES), examples=[["aide-alimentaire"]]
    )
    place: NeedPlace | None = Field(default=None, examples=[{"postal_code": "42000"}])
    radius_km: float | None = Field(default=None, gt=0, le=1000, examples=[20])
    departments: list[str] = Field(default_factory=list, max_length=101, examples=[["42"]])
    start: datetime = Field(examples=["2026-04-04T09:00:00Z"])
    end: datetime | None = Field(default=None, examples=["2026-04-05T18:00:00Z"])
    places: int | None = Field(default=None, ge=1, examples=[30])
    open_to_minors: bool = Field(default=False, examples=[False])

    @field_validator("programme")
    @classmethod
    def _known_programme(cls, value: str) -> str:
        if value not in taxonomy.PROGRAMMES:
            raise ValueError(f"programme: {value!r} is not one of {list(taxonomy.PROGRAMMES)}")
        return value

    @field_validator("domains")
    @classmethod
    def _known_domains(cls, values: list[str]) -> list[str]:
        unknown = sorted(set(values) - set(taxonomy.DOMAINS))
        if unknown:
            raise ValueError(f"domains: unknown domain(s) {unknown}")
        return list(dict.fromkeys(values))

    @field_validator("activities")
    @classmethod
    def _known_activities(cls, values: list[str]) -> list[str]:
        unknown = sorted(set(values) - set(taxonomy.ACTIVITIES))
        if unknown:
            raise ValueError(f"activities: unknown activit(y/ies) {unknown}")
        return list(dict.fromkeys(values))

    @field_validator("departments")
    @classmethod
    def _known_departments(cls, values: list[str]) -> list[str]:
        known = set(geo.departments()["code"])
        codes = [value.upper().zfill(2) for value in values]
        unknown = sorted(set(codes) - known)
        if unknown:
            raise ValueError(f"departments: unknown department(s) {unknown}")
        return list(dict.fromkeys(codes))

    @model_validator(mode="after")
    def _one_area(self) -> Need:
        by_radius = self.place is not None and self.radius_km is not None
        if by_radius == bool(self.departments):
            raise ValueError(
                "area: give either place and radius_km, or departments (exactly one of them)"
            )
        if self.start.tzinfo is None or (self.end is not None and self.end.tzinfo is None):
            raise ValueError("start/end: give a time zone (e.g. 2026-03-01T08:00:00Z)")
        if self.end is not None and self.end < self.start:
            raise ValueError("end: before start")
        return self

    def offer_frame(self, at: int) -> pd.DataFrame:
        """The need as one canonical offer row (what the model and eligibility read).

        The first domain is the offer's; every activity is kept. Posted at `at`; on site at
        the place, or without coordinates when the area is a list of departments.
        """
        lat, lon = self.place.coordinates() if self.place is not None else (math.nan, math.nan)
        posted = pd.Timestamp(at, unit="s", tz="UTC")
        row: dict[str, Any] = dict.fromkeys(schema.OFFER_SCHEMA.names)
        row.update(
            id=_NEED_ID,
            clientId=_NEED_ID,
            publisherId=_NEED_ID,
            publisherName="",
            organizationName="",
            title=self.title,
            description="",
            schedule="",
            domain=self.domains[0],
            activities=list(self.activities),
            type=self.programme,
            snu=False,
            places=self.places,
            remote="no",
            openToMinors=self.open_to_minors,
            startAt=pd.Timestamp(self.start).floor("ms"),
            endAt=pd.Timestamp(self.end).floor("ms") if self.end is not None else None,
            postedAt=posted,
            createdAt=posted,
            updatedAt=posted,
            statusCode=taxonomy.STATUS_ACCEPTED,
            departmentCode=self.departments[0] if self.departments else None,
            lat=lat,
            lon=lon,
            tags=[],
        )
        frame = pd.DataFrame([row])
        return schema.conform(frame, "offers").to_pandas()

    def area(self) -> Area:
        """Where the people must be."""
        if self.departments:
            return Area(departments=tuple(self.departments))
        lat, lon = self.place.coordinates()
        return Area(lat=lat, lon=lon, radius_km=self.radius_km)


@dataclass(frozen=True)
class Area:
    """A need's area: a circle (lat, lon, radius_km), or departments."""

    lat: float = math.nan
    lon: float = math.nan
    radius_km: float | None = None
    departments: tuple[str, ...] = ()

    def mask(self, people: ProfileArrays, departments: np.ndarray) -> np.ndarray:
        """Who lives inside; an unknown place or department is outside."""
        if self.departments:
            return np.isin(departments.astype(str), list(self.departments))
        return haversine_km(people.lat, people.lon, self.lat, self.lon) <= self.radius_km


# --- Scoring and ranking -----------------------------------------------------------------------


Scorer = Callable[["People", np.ndarray, "Targets", np.ndarray], np.ndarray]
"""(people, rows of people, targets, distances (m, n) km) -> scores (m, n); -inf never needed:
the ranker masks what is not eligible."""


@dataclass(frozen=True)
class Targets:
    """What audiences are drawn for: offers (or a need's row) and what scoring derives once."""

    offers: OfferBatch
    at: int  # epoch seconds of the request: eligibility and recency are measured then
    extra_domains: tuple[np.ndarray, ...] = ()  # per target: more domain indices (a need's)
    area: Area | None = None
    prepared: Any = None  # the model's `prepare_offers` of `offers`, when a model scores

    def __len__(self) -> int:
        return len(self.offers)

    def domains(self) -> list[np.ndarray]:
        """Each target's domain indices (its own first, then a need's others)."""
        out = []
        for j, own in enumerate(self.offers.arrays.domain):
            extra = self.extra_domains[j] if self.extra_domains else ()
            values = np.array([own, *extra], dtype=np.int64)
            out.append(values[values >= 0])
        return out


def need_targets(need: Need, encoder: FrameEncoder, at: int) -> Targets:
    """A need as targets: its offer row encoded, its other domains and its area."""
    offers = OfferBatch.encode(need.offer_frame(at), encoder)
    others = np.array([taxonomy.DOMAINS.index(d) for d in need.domains[1:]], dtype=np.int64)
    return Targets(offers, at, (others,), need.area())


def engagement_terms(
    people: People, rows: np.ndarray, targets: Targets
) -> tuple[np.ndarray, np.ndarray]:
    """log(1 + e(p)) (m, 1) and log(1 + e_d(p, o)) (m, n), the latter the best of a target's
    domains."""
    eng = people.engagement
    total = np.log1p(eng.total[rows].astype(float))[:, None]
    by_domain = np.zeros((len(rows), len(targets)))
    block = eng.by_domain[rows]
    for j, domains in enumerate(targets.domains()):
        if len(domains):
            by_domain[:, j] = np.log1p(block[:, domains].max(axis=1).astype(float))
    return total, by_domain


def days_since(seconds: np.ndarray, at: int) -> np.ndarray:
    """Days from each epoch time to `at`; never (-1) counts as a year."""
    return np.where(seconds >= 0, np.maximum(at - seconds, 0), 365 * DAY_SECONDS) / DAY_SECONDS


def recency_term(people: People, rows: np.ndarray, at: int, days: float) -> np.ndarray:
    """−log(1 + days since last seen / `days`), (m, 1); never seen counts as a year ago."""
    return -np.log1p(days_since(people.engagement.last_seen[rows], at) / days)[:, None]


def tenure_term(people: People, rows: np.ndarray, at: int, days: float) -> np.ndarray:
    """−log(1 + days since first seen / `days`), (m, 1); never seen counts as a year ago."""
    return -np.log1p(days_since(people.engagement.first_seen[rows], at) / days)[:, None]


def distance_term(distances: np.ndarray, targets: Targets, scale_km: float) -> np.ndarray:
    """−log(1 + d / scale), an unknown distance at the scale, 0 for fully remote targets."""
    term = -np.log1p(np.where(np.isnan(distances), scale_km, distances) / scale_km)
    return np.where((targets.offers.arrays.remote == _FULL)[None, :], 0.0, term)


def reach_term(distances: np.ndarray, targets: Targets, radius_km: np.ndarray) -> np.ndarray:
    """−log(1 + d / the person's radius), an unknown distance at the radius, 0 for fully
    remote targets."""
    radius = radius_km[:, None]
    term = -np.log1p(np.where(np.isnan(distances), radius, distances) / radius)
    return np.where((targets.offers.arrays.remote == _FULL)[None, :], 0.0, term)


def learned_model(model: Recommender | None) -> Recommender | None:
    """The learned part of a model: the hybrid's learned model, any other model itself.

    The hybrid's own blend ranks offers for one person (scores standardised per person,
    offer popularity and freshness); across people for one offer, the audience blends the
    learned scores with its own terms instead.
    """
    from recsys.models.hybrid import HybridModel

    return model.learned if isinstance(model, HybridModel) else model


# Each term of the propensity score and the `AudienceConfig` weight it is multiplied by.
TERM_WEIGHTS: dict[str, str] = {
    "model": "model_weight",
    "rules": "rules_weight",
    "engagement": "engagement_weight",
    "domain": "domain_weight",
    "recency": "recency_weight",
    "tenure": "tenure_weight",
    "visits": "visits_weight",
    "distance": "distance_weight",
    "reach": "reach_weight",
    "fit": "fit_weight",
}


@dataclass(frozen=True)
class PropensityScorer:
    """The propensity score of the module docstring, for one (learned) model and config.

    `model` is scored as given: pass `learned_model(bundle.model)`.
    """

    model: Recommender | None
    config: AudienceConfig

    def prepare(self, targets: Targets) -> Targets:
        """The targets with the model's offer-side work done once."""
        if self.model is None or self.config.model_weight == 0:
            return targets
        return replace(targets, prepared=self.model.prepare_offers(targets.offers))

    def terms(
        self, people: People, rows: np.ndarray, targets: Targets, distances: np.ndarray
    ) -> dict[str, np.ndarray]:
        """Each weighted term, (m, n) or broadcastable to it; the score is their sum."""
        c = self.config
        users = people.users.take(rows)
        terms: dict[str, np.ndarray] = {}
        if targets.prepared is not None:
            learned = np.asarray(self.model.score_prepared(users, targets.prepared), dtype=float)
            terms["model"] = c.model_weight * np.nan_to_num(learned, nan=0.0)
        if c.rules_weight:
            rules = incumbent_scores(users.arrays, targets.offers.arrays, remote_overrides=False)
            terms["rules"] = c.rules_weight * rules
        total, by_domain = engagement_terms(people, rows, targets)
        terms["engagement"] = c.engagement_weight * total
        terms["domain"] = c.domain_weight * by_domain
        terms["recency"] = c.recency_weight * recency_term(people, rows, targets.at, c.recency_days)
        terms["tenure"] = c.tenure_weight * tenure_term(people, rows, targets.at, c.tenure_days)
        visits = np.log1p(people.engagement.visits[rows].astype(float))[:, None]
        terms["visits"] = c.visits_weight * visits
        terms["distance"] = c.distance_weight * distance_term(
            distances, targets, c.distance_scale_km
        )
        terms["reach"] = c.reach_weight * reach_term(distances, targets, users.arrays.radius_km)
        programmes = targets.offers.arrays.programme
        terms["fit"] = c.fit_weight * people.fit[people.bands(rows)[:, None], programmes[None, :]]
        return terms

    def __call__(
        self, people: People, rows: np.ndarray, targets: Targets, distances: np.ndarray
    ) -> np.ndarray:
        shape = (len(rows), len(targets))
        out = np.zeros(shape)
        for term in self.terms(people, rows, targets, distances).values():
            out += np.broadcast_to(term, shape)
        return out


@dataclass(frozen=True)
class Ranked:
    """One target's audience: people rows best first, their scores, how many were eligible."""

    rows: np.ndarray  # int64 rows of `People`
    scores: np.ndarray  # float64
    eligible: int


def eligible_people(people: ProfileArrays, targets: Targets) -> np.ndarray:
    """Boolean (m, n): who may answer each target at its time (module docstring, hard rules)."""
    if targets.area is None:
        return eligible_matrix(targets.offers.arrays, people, targets.at)
    # A need's geography is its area, not each person's own radius.
    anywhere = replace(targets.offers.arrays, remote=np.full(len(targets), _FULL, np.int16))
    return eligible_matrix(anywhere, people, targets.at)


def eligible_chunks(
    people: People, targets: Targets, chunk_size: int = 32_768
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(rows, mask (m, n), distances (m, n) km) per chunk of people: the rows eligible for at
    least one target (and inside a need's area), who may answer each target, and how far."""
    offers = targets.offers.arrays
    for start in range(0, len(people), chunk_size):
        rows = np.arange(start, min(start + chunk_size, len(people)))
        arrays = people.users.arrays.take(rows)
        mask = eligible_people(arrays, targets)
        if targets.area is not None:
            mask &= targets.area.mask(arrays, people.department[rows])[:, None]
        useful = np.flatnonzero(mask.any(axis=1))
        if len(useful) == 0:
            continue
        located = arrays.take(useful)
        distances = offer_distances_km(offers, located.lat[:, None], located.lon[:, None])
        yield rows[useful], mask[useful], distances


def rank_audiences(
    people: People,
    targets: Targets,
    scorer: Scorer,
    k: int,
    chunk_size: int = 32_768,
) -> list[Ranked]:
    """The k best eligible people for each target, streamed over chunks of people.

    Per chunk (`eligible_chunks`): eligibility (and a need's area) first, then `scorer` on
    the people eligible for at least one target only, then a merge into each target's running
    top k. Ties break towards the earlier row, so the result does not depend on the chunk size.
    """
    if k < 1:
        raise ValueError(f"k: expected a positive audience size, got {k}")
    n = len(targets)
    best_rows = [np.zeros(0, np.int64) for _ in range(n)]
    best_scores = [np.zeros(0) for _ in range(n)]
    counts = np.zeros(n, np.int64)
    for rows, mask, distances in eligible_chunks(people, targets, chunk_size):
        counts += mask.sum(axis=0)
        scores = np.asarray(scorer(people, rows, targets, distances), dtype=float)
        for j in range(n):
            admitted = np.flatnonzero(mask[:, j])
            if len(admitted) == 0:
                continue
            best_rows[j], best_scores[j] = _merge(
                best_rows[j], best_scores[j], rows[admitted], scores[admitted, j], k
            )
    return [Ranked(best_rows[j], best_scores[j], int(counts[j])) for j in range(n)]


def _merge(
    rows_a: np.ndarray, scores_a: np.ndarray, rows_b: np.ndarray, scores_b: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The k best of two (rows, scores) lists, best first; NaN last, ties by lower row."""
    rows = np.concatenate([rows_a, rows_b])
    scores = np.concatenate([scores_a, scores_b])
    key = np.where(np.isnan(scores), -np.inf, scores)
    if len(rows) > k:
        keep = np.argpartition(-key, k - 1)[:k]
        # argpartition may cut through ties: take every row tied with the k-th, then sort.
        threshold = key[keep].min()
        keep = np.flatnonzero(key >= threshold)
        rows, scores, key = rows[keep], scores[keep], key[keep]
    order = np.lexsort((rows, -key))[:k]
    return rows[order], scores[order]


# --- Answers -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Audience:
    """What a coordinator receives: rows, totals, and what it was drawn from."""

    rows: pd.DataFrame  # person (pseudonym), score, distanceBand, reasons (list of str)
    totals: dict[str, dict[str, int]]  # "department" and "ageBand" -> counts
    eligible: int  # consenting eligible people (the pool the audience is the top of)


def distance_bands(distances: np.ndarray, remote: bool) -> np.ndarray:
    """The band of each distance (`DISTANCE_BANDS`), UNKNOWN where NaN, REMOTE_BAND if remote."""
    if remote:
        return np.full(len(distances), REMOTE_BAND, dtype=object)
    bands = np.array(DISTANCE_BANDS, dtype=object)[np.searchsorted(DISTANCE_BAND_EDGES, distances)]
    return np.where(np.isnan(distances), UNKNOWN, bands)


def build_audience(
    people: People,
    targets: Targets,
    scorer: PropensityScorer,
    k: int,
    salt: str,
    min_count: int = MIN_COUNT,
) -> Audience:
    """The audience of one target (an offer, or a need's row), with rows and totals.

    Raises:
        AudienceTooSmall: fewer than `min_count` people would be returned.
        ValueError: more than one target, or a bad k.
    """
    if len(targets) != 1:
        raise ValueError(f"targets: an audience is drawn for one target, got {len(targets)}")
    prepared = scorer.prepare(targets)
    ranked = rank_audiences(people, prepared, scorer, k, scorer.config.chunk_size)[0]
    if len(ranked.rows) < min_count:
        raise AudienceTooSmall(
            f"audience: {len(ranked.rows)} people, fewer than the minimum of {min_count}; "
            "widen the area, the dates or the programme"
        )
    rows = ranked.rows
    arrays = people.users.arrays.take(rows)
    offers = targets.offers.arrays
    distances = offer_distances_km(offers, arrays.lat[:, None], arrays.lon[:, None])[:, 0]
    terms = scorer.terms(people, rows, prepared, distances[:, None])
    reasons = _reasons(people, rows, targets, distances, terms)
    frame = pd.DataFrame(
        {
            "person": [pseudonym(str(i), salt) for i in people.users.ids[rows]],
            "score": np.round(ranked.scores, 6),
            "distanceBand": distance_bands(distances, bool(offers.remote[0] == _FULL)),
            "reasons": reasons,
        }
    )
    totals = {
        "department": _counts(people.department[rows]),
        "ageBand": _counts(people.age_band[rows]),
    }
    return Audience(frame, totals, ranked.eligible)


def _counts(values: np.ndarray) -> dict[str, int]:
    labels = pd.Series(values, dtype=object).fillna(UNKNOWN).astype(str)
    return {str(key): int(count) for key, count in labels.value_counts().sort_index().items()}


def _reasons(
    people: People,
    rows: np.ndarray,
    targets: Targets,
    distances: np.ndarray,
    terms: dict[str, np.ndarray],
) -> list[list[str]]:
    """Why each person is in the audience, strongest first."""
    last_seen = people.engagement.last_seen[rows]
    domains = targets.domains()[0]
    by_domain = people.engagement.by_domain[rows][:, domains]
    out = []
    for i in range(len(rows)):
        said: list[tuple[float, str]] = []
        if "model" in terms and terms["model"][i, 0] > 0:
            said.append((terms["model"][i, 0], "the model predicts an application"))
        if "rules" in terms and terms["rules"][i, 0] > 0.5 * (terms["rules"].max() or 1):
            said.append((terms["rules"][i, 0], "quiz answers and place match"))
        if terms["domain"][i, 0] > 0:
            names = ", ".join(taxonomy.DOMAINS[d] for d in domains[by_domain[i] > 0])
            said.append((terms["domain"][i, 0], f"engaged before in {names}"))
        if last_seen[i] >= 0:
            days = max(0, (targets.at - int(last_seen[i])) // DAY_SECONDS)
            when = {0: "today", 1: "yesterday"}.get(days, f"{days} days ago")
            said.append((float(terms["recency"][i, 0]), f"active {when}"))
        if not math.isnan(distances[i]):
            said.append((-distances[i] / 1000, f"{distances[i]:.0f} km away"))
        said.sort(key=lambda item: -item[0])
        out.append([text for _, text in said])
    return out
