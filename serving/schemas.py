"""Request and response models of the ranking service (what its OpenAPI documents).

Fields are snake_case throughout the API; the event store and its export use the canonical
camelCase columns of `recsys.schema.EVENT_SCHEMA`. Vocabularies (programmes, domains, remote
values, event types) are closed lists from `recsys.taxonomy`, so a wrong value is refused with
a 400 that names the field and lists what is allowed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from pydantic import (
    MISSING,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from recsys import paths, taxonomy
from recsys.audience import MIN_COUNT, Need
from recsys.filters import OfferFilters
from recsys.geo import PostalCode
from recsys.places import Source
from recsys.schema import Profile
from serving.payload import DISPLAY_FIELDS

Programme = Literal[taxonomy.PROGRAMMES]  # type: ignore[valid-type]
Domain = Literal[taxonomy.DOMAINS]  # type: ignore[valid-type]
Remote = Literal[taxonomy.REMOTE_VALUES]  # type: ignore[valid-type]
EventType = Literal[taxonomy.EVENT_TYPES]  # type: ignore[valid-type]
EventSource = Literal[taxonomy.EVENT_SOURCES]  # type: ignore[valid-type]
ApplyStatus = Literal[taxonomy.APPLY_STATUSES]  # type: ignore[valid-type]
ActivitySlug = Literal[taxonomy.ACTIVITIES]  # type: ignore[valid-type]
DepartmentCode = Annotated[str, StringConstraints(pattern=r"^(\d{2,3}|2[ABab])$")]
CityName = Annotated[str, StringConstraints(min_length=1, max_length=128)]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=256)]
DisplayField = Literal[tuple(DISPLAY_FIELDS)]  # type: ignore[valid-type]
Strategy = Literal["personalized", "cold_start", "rules_fallback"]

MAX_K = 100
MAX_EVENTS = 1000
MAX_OFFSET = 1000
MAX_CONTEXT_EXTRA = 10
MAX_CLOCK_SKEW = timedelta(days=1)  # events dated further in the future are refused


class _Strict(BaseModel):
    # Refused values stay out of error messages: BentoML logs them, and they may be a
    # minor's postal code or visitor id (the 400 answer never echoes them either).
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)


class RankFilters(_Strict):
    """Optional restrictions of a list (the incumbent widget's search, `recsys.filters`).

    Each is "any of these" (empty or absent = no filter); filters combine with AND and only
    narrow the offers the person may join, never widen them.
    """

    types: list[Programme] | None = Field(
        default=None, description="programmes (offer `type`)", examples=[["benevolat"]]
    )
    domains: list[Domain] | None = Field(
        default=None, description="offer domains", examples=[["environnement", "sport"]]
    )
    remote: list[Remote] | None = Field(
        default=None, description="remote values", examples=[["no", "possible"]]
    )
    activities: list[ActivitySlug] | None = Field(
        default=None, description="activity slugs (any of the offer's)", examples=[["animation"]]
    )
    departments: list[DepartmentCode] | None = Field(
        default=None, description="department codes", examples=[["75", "2A", "971"]]
    )
    cities: list[CityName] | None = Field(
        default=None,
        description="postal codes (5 characters) or city names (case and accents ignored)",
        examples=[["69003", "Saint-Étienne"]],
    )
    organisations: list[ShortText] | None = Field(
        default=None,
        description="host organisation names (exact, case ignored)",
        examples=[["Croix-Rouge française"]],
    )
    publishers: list[ShortText] | None = Field(
        default=None, description="publisher ids (the offer's owner)", examples=[["pub-1"]]
    )
    open_to_minors: bool | None = Field(
        default=None,
        description="true: only offers open to minors; false: only the others",
        examples=[True],
    )
    snu: bool | None = Field(
        default=None, description="true: only SNU general-interest offers", examples=[True]
    )
    start_after: datetime | None = Field(
        default=None,
        description="offers starting at or after (UTC if no offset)",
        examples=["2026-01-01T00:00:00Z"],
    )
    start_before: datetime | None = Field(
        default=None,
        description="offers starting at or before (UTC if no offset)",
        examples=["2026-03-31T23:59:59Z"],
    )
    min_duration_days: int | None = Field(
        default=None, ge=0, le=3660, description="start to end, whole days", examples=[30]
    )
    max_duration_days: int | None = Field(
        default=None,
        ge=0,
        le=3660,
        description="start to end, whole days (open-ended offers are left out)",
        examples=[7],
    )

    def core(self) -> OfferFilters:
        """The same filters for the candidate step (`recsys.filters`)."""
        return OfferFilters(
            **{
                name: getattr(self, name)
                for name in RankFilters.model_fields
                if name not in ("start_after", "start_before")
            },
            start_after=_epoch(self.start_after),
            start_before=_epoch(self.start_before),
        )


def _epoch(value: datetime | None) -> int | None:
    if value is None:
        return None
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value
    return int(value.timestamp())


class RankContext(BaseModel):
    """Where the list is shown, stored with it in the rank log (`rank_contexts` table).

    Other fields a front sends here (a campaign, a page section) are accepted and stored
    as they are: at most MAX_CONTEXT_EXTRA of them, short values.
    """

    model_config = ConfigDict(extra="allow", hide_input_in_errors=True)

    publisher_id: str | None = Field(
        default=None, max_length=128, description="the site showing the list", examples=["pub-1"]
    )
    widget_id: str | None = Field(
        default=None, max_length=128, description="the partner widget", examples=["widget-42"]
    )
    source: EventSource | None = Field(
        default=None, description="how the list is diffused", examples=["widget"]
    )
    page: str | None = Field(
        default=None,
        max_length=512,
        description="page or path showing the list",
        examples=["/missions/environnement"],
    )

    @model_validator(mode="after")
    def _small_extra(self) -> RankContext:
        extra = self.model_extra or {}
        if len(extra) > MAX_CONTEXT_EXTRA:
            raise ValueError(f"at most {MAX_CONTEXT_EXTRA} extra context fields")
        for name, value in extra.items():
            if len(name) > 64 or not isinstance(value, str | int | float | bool | None):
                raise ValueError(f"extra context field {name[:64]!r}: a short scalar expected")
            if isinstance(value, str) and len(value) > 256:
                raise ValueError(f"extra context field {name[:64]!r}: at most 256 characters")
        return self


Outcome = Literal[paths.OUTCOMES]  # type: ignore[valid-type]


class RankAfter(_Strict):
    """What happened to an application: the list continues the person's path from there
    (`serving.paths`)."""

    offer_id: str = Field(min_length=1, max_length=128, examples=["m-981"])
    outcome: Outcome = Field(
        description="refused, too_old, finished: other programmes the person may join; "
        "full, expired: close offers of the same domain in any programme they may join",
        examples=["refused"],
    )
    programme: Programme | None = Field(
        default=None,
        description="the offer's programme, needed only when it has left the live catalog",
        examples=["volontariat_service_civique"],
    )
    domain: Domain | None = Field(
        default=None,
        description="the offer's domain, needed only when it has left the live catalog",
        examples=["solidarite-insertion"],
    )
    snu: bool = Field(
        default=False, description="the offer was an SNU mission (left catalog)", examples=[False]
    )


class RankRequest(_Strict):
    """Who to rank for (a known `user_id`, a `profile`, or both: the profile's fields win)."""

    user_id: str | None = Field(default=None, min_length=1, max_length=128, examples=["jva-5521"])
    profile: Profile | None = Field(
        default=None,
        examples=[
            {"age": 19, "postal_code": "42000", "quiz": {"domains": ["environnement-animaux"]}}
        ],
    )
    k: int = Field(default=10, ge=1, le=MAX_K, description="list length (page size)", examples=[10])
    filters: RankFilters | None = Field(
        default=None, examples=[{"departments": ["42"], "remote": ["no", "possible"]}]
    )
    exclude_offer_ids: list[str] = Field(default_factory=list, max_length=1000, examples=[["m-42"]])
    offset: int = Field(
        default=0,
        ge=0,
        le=MAX_OFFSET,
        description="where the page starts in the ranking: a multiple of k (page n: (n-1)·k); "
        "pages of one visitor and catalog version never repeat or skip an offer",
        examples=[10],
    )
    context: RankContext | None = Field(
        default=None,
        description="where the list is shown (stored with it, not used to rank)",
        examples=[{"publisher_id": "pub-ville-se", "widget_id": "widget-42", "source": "widget"}],
    )
    fields: list[DisplayField] | None = Field(
        default=None,
        description="display fields to return (default: all); [] for none",
        examples=[["title", "city", "start_at"]],
    )
    after: RankAfter | None = Field(
        default=None,
        description="continue after an application's outcome, with a reason for the bridge",
        examples=[{"offer_id": "m-981", "outcome": "refused"}],
    )
    at: datetime | None = Field(
        default=None,
        description="the instant to make the list at (UTC if no offset): only where the service "
        "takes the request's clock (RECSYS_CLOCK=request, replays in simulated time), refused "
        "otherwise; the list is logged at that instant",
        examples=["2026-03-02T10:15:00Z"],
    )
    # Set by `serving.paths.redirect`: (reason code, template) said first on every item.
    _bridge: tuple[str, str] | None = PrivateAttr(default=None)

    @field_validator("at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def instant(self) -> int | None:
        """`at` in epoch seconds (None: the service's clock)."""
        return None if self.at is None else int(self.at.timestamp())

    @model_validator(mode="after")
    def _one_person(self) -> RankRequest:
        inner = self.profile.user_id if self.profile is not None else None
        if self.user_id is not None and inner is not None and inner != self.user_id:
            raise ValueError("user_id and profile.user_id name different people")
        if self.user_id is None and inner is not None:
            self.user_id = inner
        if self.offset % self.k:
            raise ValueError(f"offset {self.offset} is not a multiple of k ({self.k})")
        return self


class Reason(BaseModel):
    """Why an offer is listed: a French text and its stable code (icons, analyses)."""

    code: str = Field(
        description="stable code (`serving.explanations.REASONS`): near, remote_full, "
        "remote_possible, domain, activity, liked, rhythm, service_civique, paid, new, "
        "in_domain, open_to_you",
        examples=["near"],
    )
    text: str = Field(description="short French text", examples=["près de chez vous : 3 km"])


class RankedItem(BaseModel):
    """One recommended offer, why it was chosen, and what a front displays of it.

    The display fields (title to application_url) are all present by default, null when the
    offer does not say; a request's `fields` keeps only those it names (the others are left
    out of the answer: their default is pydantic's `MISSING`, which serialisation skips).
    Partner texts are returned as they are and may hold HTML: escape them.
    """

    offer_id: str = Field(examples=["m-981"])
    rank: int = Field(
        description="1 for the first offer of the ranking (pages continue it)", examples=[1]
    )
    score: float = Field(
        description="the ranking score (higher first); comparable within a list", examples=[1.42]
    )
    programme: str | None = Field(examples=["benevolat"])
    domain: str | None = Field(examples=["environnement"])
    distance_km: float | None = Field(
        description="great-circle distance, null when unknown", examples=[2.7]
    )
    reasons: list[Reason] = Field(
        description="why, most telling first (at least one)",
        examples=[
            [
                {"code": "near", "text": "près de chez vous : 3 km"},
                {"code": "domain", "text": "Environnement, comme vous l’avez choisi"},
            ]
        ],
    )
    title: str | MISSING | None = Field(default=MISSING, examples=["Nettoyage des berges du Furan"])
    organisation: str | MISSING | None = Field(default=MISSING, examples=["Les Amis du Furan"])
    publisher: str | MISSING | None = Field(default=MISSING, examples=["JeVeuxAider.gouv.fr"])
    city: str | MISSING | None = Field(default=MISSING, examples=["Saint-Étienne"])
    postal_code: str | MISSING | None = Field(default=MISSING, examples=["42000"])
    department: str | MISSING | None = Field(default=MISSING, description="code", examples=["42"])
    start_at: str | MISSING | None = Field(default=MISSING, examples=["2026-01-10T09:00:00+00:00"])
    end_at: str | MISSING | None = Field(
        default=MISSING, description="null: open-ended", examples=["2026-01-10T12:00:00+00:00"]
    )
    places_left: int | MISSING | None = Field(default=MISSING, examples=[3])
    remote: str | MISSING | None = Field(
        default=MISSING, description="no, possible, full, local", examples=["no"]
    )
    programme_label: str | MISSING | None = Field(default=MISSING, examples=["Service Civique"])
    domain_label: str | MISSING | None = Field(default=MISSING, examples=["Environnement"])
    application_url: str | MISSING | None = Field(
        default=MISSING,
        description="where to apply (the catalog's `applicationUrl`)",
        examples=["https://www.jeveuxaider.gouv.fr/missions/981"],
    )
    lat: float | MISSING | None = Field(
        default=MISSING, description="the address's latitude (a map's)", examples=[45.44]
    )
    lon: float | MISSING | None = Field(
        default=MISSING, description="the address's longitude", examples=[4.39]
    )


class Location(BaseModel):
    """Where the visitor was placed, so the front can say "autour d'Arles"."""

    lat: float = Field(examples=[45.4397])
    lon: float = Field(examples=[4.3872])
    source: Source = Field(
        description="what placed the visitor (`recsys.places`), most precise first",
        examples=["postal_code"],
    )
    commune: str | None = Field(
        default=None,
        description="the commune (nearest the centroid for a postal code)",
        examples=["Saint-Étienne"],
    )


class RankResponse(BaseModel):
    """A ranked list; `request_id` tags the prints, clicks and applies it leads to."""

    request_id: str = Field(examples=["5f0c2a9e6b1d4c8e9a7b3f21d0e4c6a8"])
    model_version: str = Field(examples=["7"])
    catalog_version: str = Field(examples=["c-20260115T0600-10412"])
    strategy: Strategy = Field(examples=["personalized"])
    location: Location | None = Field(
        default=None,
        description="where the visitor was placed; null when unplaced",
        examples=[
            {"lat": 45.4397, "lon": 4.3872, "source": "postal_code", "commune": "Saint-Étienne"}
        ],
    )
    items: list[RankedItem] = Field(
        examples=[
            [
                {
                    "offer_id": "m-981",
                    "rank": 1,
                    "score": 1.42,
                    "programme": "benevolat",
                    "domain": "environnement",
                    "distance_km": 2.7,
                    "reasons": [{"code": "near", "text": "près de chez vous : 3 km"}],
                    "title": "Nettoyage des berges du Furan",
                    "city": "Saint-Étienne",
                }
            ]
        ]
    )
    experiment: str | None = Field(
        default=None,
        description="the online experiment the visitor is in (RECSYS_EXPERIMENT)",
        examples=["hybrid-vs-rules"],
    )
    arm: str | None = Field(
        default=None,
        description="the experiment's arm that made the list; null: unassigned",
        examples=["treatment"],
    )


class EligibilityRequest(_Strict):
    """A person's question: which programmes may I join?"""

    age: int | None = Field(
        default=None,
        ge=0,
        le=120,
        description="age in completed years (null: unknown)",
        examples=[27],
    )
    disability: bool = Field(
        default=False,
        description="a disability (Service Civique is then open up to 30)",
        examples=[False],
    )


class ProgrammeEligibility(BaseModel):
    """One programme: may the person join it, and why (`recsys.paths`)."""

    programme: str = Field(
        description="programme (`type`), or `snu` for the SNU general-interest mission",
        examples=["volontariat_service_civique"],
    )
    label: str = Field(examples=["Service Civique"])
    eligible: bool = Field(examples=[False])
    code: Literal["eligible", "too_young", "too_old", "unknown_age"] = Field(examples=["too_old"])
    reason: str = Field(
        description="plain French",
        examples=[
            "Service Civique : ouvert de 16 à 25 ans (30 ans avec un handicap), "
            "plus accessible à 27 ans"
        ],
    )
    notes: list[str] = Field(
        description="worth knowing (nationality, parental consent, missions open to minors)",
        examples=[["réservé aux personnes de nationalité française"]],
    )


class EligibilityResponse(BaseModel):
    """Every programme (`recsys.paths.KINDS` order) for the person asked about."""

    age: int | None = Field(examples=[27])
    disability: bool = Field(examples=[False])
    programmes: list[ProgrammeEligibility] = Field(
        examples=[
            [
                {
                    "programme": "volontariat_service_civique",
                    "label": "Service Civique",
                    "eligible": False,
                    "code": "too_old",
                    "reason": "Service Civique : ouvert de 16 à 25 ans (30 ans avec un "
                    "handicap), plus accessible à 27 ans",
                    "notes": [],
                }
            ]
        ]
    )


class SimilarRequest(_Strict):
    """Offers like `offer_id`, optionally only from other programmes (cross-programme links)."""

    offer_id: str = Field(min_length=1, max_length=128, examples=["m-981"])
    k: int = Field(default=10, ge=1, le=MAX_K, examples=[5])
    other_programmes: bool = Field(
        default=False,
        description="only offers of a different programme than offer_id's",
        examples=[True],
    )
    profile: Profile | None = Field(
        default=None,
        description="the person the offers are for: then only offers they may join "
        "(age, programme, radius), and distances from them",
        examples=[{"age": 16, "postal_code": "75011", "radius_km": 10}],
    )


class SimilarItem(BaseModel):
    offer_id: str = Field(examples=["m-1204"])
    rank: int = Field(examples=[1])
    score: float = Field(description="cosine similarity to the given offer", examples=[0.83])
    programme: str | None = Field(examples=["volontariat_service_civique"])
    domain: str | None = Field(examples=["environnement"])
    distance_km: float | None = Field(
        description="from the person when `profile` places them, else from the given offer",
        examples=[4.1],
    )


class SimilarResponse(BaseModel):
    offer_id: str = Field(examples=["m-981"])
    model_version: str = Field(examples=["7"])
    method: Literal["item_embeddings", "offer_features", "offer_attributes"] = Field(
        examples=["item_embeddings"]
    )
    items: list[SimilarItem] = Field(
        examples=[
            [
                {
                    "offer_id": "m-1204",
                    "rank": 1,
                    "score": 0.83,
                    "programme": "volontariat_service_civique",
                    "domain": "environnement",
                    "distance_km": 4.1,
                }
            ]
        ]
    )


class Event(_Strict):
    """One diffusion signal from the front (print, click, apply, account)."""

    id: str = Field(
        min_length=1,
        max_length=128,
        description="unique event id (idempotency)",
        examples=["ev-7f3a"],
    )
    type: EventType = Field(examples=["apply"])
    created_at: datetime | None = Field(
        default=None,
        description="when it happened (UTC if no offset); default: on receipt",
        examples=["2026-01-15T10:42:00Z"],
    )
    mission_id: str | None = Field(default=None, min_length=1, max_length=128, examples=["m-981"])
    request_id: str | None = Field(
        default=None,
        max_length=128,
        description="the /rank request_id the list came from",
        examples=["5f0c2a9e6b1d4c8e9a7b3f21d0e4c6a8"],
    )
    position: int | None = Field(
        default=None, ge=1, le=32767, description="rank on the page", examples=[1]
    )
    user_id: str | None = Field(default=None, max_length=128, examples=["jva-5521"])
    user: str | None = Field(
        default=None,
        max_length=256,
        description="opaque visitor hash",
        examples=["b1946ac92492d2347c6235b4d2611184"],
    )
    to_publisher_id: str | None = Field(default=None, max_length=128, examples=["pub-jva"])
    from_publisher_id: str | None = Field(default=None, max_length=128, examples=["pub-ville-se"])
    source: EventSource | None = Field(default=None, examples=["widget"])
    source_id: str | None = Field(default=None, max_length=128, examples=["widget-42"])
    click_id: str | None = Field(default=None, max_length=128, examples=["cl-5e21"])
    client_event_id: str | None = Field(default=None, max_length=128, examples=["front-000123"])
    is_bot: bool = Field(default=False, examples=[False])
    status: ApplyStatus | None = Field(default=None, examples=["PENDING"])
    candidate_age: int | None = Field(
        default=None,
        ge=0,
        le=120,
        description="age in years; only its band is stored",
        examples=[19],
    )
    candidate_postal_code: PostalCode | None = Field(default=None, examples=["42000"])

    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        # PostgreSQL text cannot hold NUL: refused here as bad input, not a failed insert.
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("NUL characters are not allowed")
        return value

    @field_validator("created_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        if value > datetime.now(UTC) + MAX_CLOCK_SKEW:
            raise ValueError(f"created_at {value.isoformat()} is in the future")
        return value

    @model_validator(mode="after")
    def _coherent(self) -> Event:
        if self.type != "account" and self.mission_id is None:
            raise ValueError(f"mission_id is required for a {self.type} event")
        if self.status is not None and self.type != "apply":
            raise ValueError(f"status is only for apply events, not {self.type}")
        return self


class EventsRequest(_Strict):
    events: list[Event] = Field(
        min_length=1,
        max_length=MAX_EVENTS,
        examples=[
            [
                {
                    "id": "ev-7f3a",
                    "type": "print",
                    "mission_id": "m-981",
                    "request_id": "5f0c2a9e6b1d4c8e9a7b3f21d0e4c6a8",
                    "position": 1,
                }
            ]
        ],
    )


class EventsResponse(BaseModel):
    """How many events were new, and which ids had already been stored."""

    received: int = Field(examples=[2])
    stored: int = Field(examples=[1])
    duplicates: int = Field(examples=[1])
    duplicate_ids: list[str] = Field(examples=[["ev-7f3a"]])


class ExperimentStatus(BaseModel):
    """The online experiment configured by RECSYS_EXPERIMENT (`serving.experiments`)."""

    name: str = Field(examples=["hybrid-vs-rules"])
    state: Literal["running", "scheduled", "ended", "stopped", "failed"] = Field(
        examples=["running"]
    )
    start: datetime | None = Field(examples=["2026-01-05T00:00:00Z"])
    end: datetime | None = Field(examples=["2026-02-02T00:00:00Z"])
    stopped_at: datetime | None = Field(examples=[None])
    error: str | None = Field(
        description="why the experiment does not run, if it failed", examples=[None]
    )
    arms: dict[str, float] = Field(
        description="each arm's configured share of the visitors",
        examples=[{"control": 0.5, "treatment": 0.5}],
    )
    arm_models: dict[str, str] = Field(
        description="the model version each arm serves",
        examples=[{"control": "rules", "treatment": "7"}],
    )


class Status(BaseModel):
    """What the service is serving right now."""

    ready: bool = Field(examples=[True])
    model_version: str = Field(examples=["7"])
    model_name: str | None = Field(examples=["hybrid"])
    similarity_method: str | None = Field(
        description="what /similar compares: item_embeddings (the model's) or offer_features",
        examples=["item_embeddings"],
    )
    model_uri: str = Field(examples=["models:/engagement-ranker@champion"])
    model_error: str | None = Field(
        description="why the model is not served, if it is not", examples=[None]
    )
    strategies: list[Strategy] = Field(
        description="strategies this state can answer with",
        examples=[["personalized", "cold_start", "rules_fallback"]],
    )
    catalog_version: str | None = Field(examples=["c-20260115T0600-10412"])
    catalog_source: str | None = Field(examples=["data/catalog/offers.parquet"])
    catalog_size: int = Field(examples=[10412])
    catalog_available: int = Field(
        description="offers open now (before age and place)", examples=[8730]
    )
    catalog_loaded_at: datetime | None = Field(examples=["2026-01-15T06:00:12Z"])
    catalog_error: str | None = Field(examples=[None])
    as_of: datetime | None = Field(
        description="the time lists are computed at (null: now); see RECSYS_AS_OF",
        examples=[None],
    )
    clock: str = Field(
        default="service",
        description="RECSYS_CLOCK: `service`, or `request` when a /rank request may carry its "
        "instant `at`",
        examples=["service"],
    )
    known_profiles: int = Field(examples=[50000])
    rank_log_pending: int = Field(examples=[0])
    rank_log_dropped: int = Field(examples=[0])
    worker_pid: int = Field(
        description="the worker process that answered (RECSYS_WORKERS > 1: each has its state)",
        examples=[4242],
    )
    experiment: ExperimentStatus | None = Field(default=None, examples=[None])


class CatalogUpdate(_Strict):
    """Take in offers without restarting: `merge` adds or replaces by id, `replace` swaps all."""

    path: str | None = Field(
        default=None,
        description="offers file on the server (default: RECSYS_CATALOG)",
        examples=["data/catalog/offers.parquet"],
    )
    mode: Literal["merge", "replace"] = Field(default="merge", examples=["merge"])


class ModelReload(_Strict):
    uri: str | None = Field(
        default=None,
        description="model to load (default: RECSYS_MODEL_URI)",
        examples=["models:/engagement-ranker@champion"],
    )


class ExperimentStop(_Strict):
    name: str | None = Field(
        default=None,
        description="the experiment to stop (checked when given; default: the one)",
        examples=["hybrid-vs-rules"],
    )


WidgetId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
PublisherId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
MAX_WIDGET_PUBLISHERS = 1000


class WidgetUpdate(_Strict):
    """Set a widget's publisher allow-list, or remove it (`publishers: null`): saved, kept
    across restarts, on every worker (`serving.widgets`). It replaces the RECSYS_WIDGETS
    file's list of the same widget; removed, the file's list applies again."""

    widget_id: WidgetId = Field(
        description="the widget (`context.widget_id`)", examples=["widget-42"]
    )
    publishers: list[PublisherId] | None = Field(
        min_length=1,
        max_length=MAX_WIDGET_PUBLISHERS,
        description="the publisher ids its lists may show; null removes the admin's list",
        examples=[["pub-ville-se", "pub-jva"]],
    )


class WidgetQuery(_Strict):
    """The allow-list of one widget, or of every widget with one."""

    widget_id: WidgetId | None = Field(
        default=None,
        description="one widget (default: every widget with a list)",
        examples=["widget-42"],
    )


class WidgetRule(BaseModel):
    """A widget's allow-list as /rank applies it."""

    widget_id: str = Field(examples=["widget-42"])
    publishers: list[str] | None = Field(
        description="the publishers its lists may show; null: not restricted",
        examples=[["pub-ville-se", "pub-jva"]],
    )
    source: Literal["admin", "file", "none"] = Field(
        description="admin: set by /admin/widgets/set; file: RECSYS_WIDGETS; none: no list",
        examples=["admin"],
    )
    not_in_catalog: list[str] = Field(
        default_factory=list,
        description="listed publishers with no offer in the live catalog (a typo, or none yet)",
        examples=[["pub-jva"]],
    )


class WidgetList(BaseModel):
    """Allow-lists, by widget id."""

    widgets: list[WidgetRule] = Field(
        examples=[
            [
                {
                    "widget_id": "widget-42",
                    "publishers": ["pub-ville-se"],
                    "source": "admin",
                    "not_in_catalog": [],
                }
            ]
        ]
    )


class ErrorDetail(BaseModel):
    """What went wrong (`serving.web`: the one error shape of every endpoint)."""

    code: str = Field(
        description="stable: invalid_request, forbidden, not_found, body_too_large, "
        "action_failed, unavailable, internal_error...",
        examples=["invalid_request"],
    )
    message: str = Field(
        description="for people; starts with the field's path when one is named",
        examples=["filters.departments.0: unknown department 'Loire'"],
    )
    field: str | None = Field(
        description="dotted path of the first refused field, or null",
        examples=["filters.departments.0"],
    )
    details: list[dict] | None = Field(
        default=None,
        description="a refused body's validation errors (without the refused values)",
        examples=[[{"loc": ["body", "filters", "departments", 0], "msg": "unknown department"}]],
    )


class ErrorBody(BaseModel):
    """The body of every answer of status 400 or more."""

    error: ErrorDetail = Field(
        examples=[
            {"code": "not_found", "message": "offer_id: unknown offer 'm-1'", "field": "offer_id"}
        ]
    )


class AdminResult(BaseModel):
    """Outcome of an admin action; on failure the previous state keeps serving."""

    ok: bool = Field(examples=[True])
    message: str = Field(examples=["catalog merged: 12 added, 3 updated"])
    model_version: str = Field(examples=["7"])
    catalog_version: str | None = Field(examples=["c-20260115T0600-10424"])
    catalog_size: int = Field(examples=[10424])
    added: int = Field(default=0, examples=[12])
    updated: int = Field(default=0, examples=[3])
    removed: int = Field(default=0, examples=[0])
    rejected: int = Field(default=0, examples=[0])
    seconds: float = Field(examples=[1.8])


MAX_AUDIENCE = 100_000


class AudienceRequest(_Strict):
    """An audience for an offer of the catalog (`offer_id`) or a `need`; audited."""

    requester: str = Field(
        min_length=1,
        max_length=200,
        description="who asks (audited)",
        examples=["mission-locale-42"],
    )
    offer_id: str | None = Field(default=None, min_length=1, max_length=128, examples=["m-981"])
    need: Need | None = Field(default=None, examples=[None])
    # min_count before k: k's check reads it.
    min_count: int = Field(
        default=MIN_COUNT,
        ge=MIN_COUNT,
        description="refuse audiences smaller than this",
        examples=[20],
    )
    k: int = Field(
        default=100, ge=1, le=MAX_AUDIENCE, description="people to return at most", examples=[100]
    )

    @model_validator(mode="after")
    def _one_target(self) -> AudienceRequest:
        if (self.offer_id is None) == (self.need is None):
            raise ValueError("give exactly one of offer_id or need")
        return self

    @field_validator("k")
    @classmethod
    def _not_below_minimum(cls, value: int, info: ValidationInfo) -> int:
        minimum = info.data.get("min_count", MIN_COUNT)
        if value < minimum:
            raise ValueError(f"{value} is below min_count {minimum}: such an audience is refused")
        return value


class AudienceRow(BaseModel):
    """One person to call, by pseudonym."""

    person: str = Field(
        description="pseudonymous id (salted hash of the person's id)",
        examples=["9c1185a5c5e9fc54612808977ee8f548"],
    )
    score: float = Field(
        description="predicted propensity to answer (higher first)", examples=[0.31]
    )
    distance_band: str = Field(examples=["<5 km"])
    reasons: list[str] = Field(examples=[["environnement", "près de chez vous"]])


class AudienceResponse(BaseModel):
    """The audience, best first, with its totals; `request_id` is the audit row's."""

    request_id: str = Field(examples=["aud-2f7c"])
    model_version: str = Field(examples=["7"])
    eligible: int = Field(
        description="consenting eligible people the audience is the top of", examples=[1250]
    )
    people: list[AudienceRow] = Field(
        examples=[
            [
                {
                    "person": "9c1185a5c5e9fc54612808977ee8f548",
                    "score": 0.31,
                    "distance_band": "<5 km",
                    "reasons": ["environnement"],
                }
            ]
        ]
    )
    totals: dict[str, dict[str, int]] = Field(
        description="counts by department and age band",
        examples=[{"department": {"42": 100}, "age_band": {"18-20": 60, "21-25": 40}}],
    )
