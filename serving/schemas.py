"""Request and response models of the ranking service (what its OpenAPI documents).

Fields are snake_case throughout the API; the event store and its export use the canonical
camelCase columns of `recsys.schema.EVENT_SCHEMA`. Vocabularies (programmes, domains, remote
values, event types) are closed lists from `recsys.taxonomy`, so a wrong value is refused with
a 400 that names the field and lists what is allowed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from recsys import taxonomy
from recsys.audience import MIN_COUNT, Need
from recsys.geo import PostalCode
from recsys.places import Source
from recsys.schema import Profile

Programme = Literal[taxonomy.PROGRAMMES]  # type: ignore[valid-type]
Domain = Literal[taxonomy.DOMAINS]  # type: ignore[valid-type]
Remote = Literal[taxonomy.REMOTE_VALUES]  # type: ignore[valid-type]
EventType = Literal[taxonomy.EVENT_TYPES]  # type: ignore[valid-type]
EventSource = Literal[taxonomy.EVENT_SOURCES]  # type: ignore[valid-type]
ApplyStatus = Literal[taxonomy.APPLY_STATUSES]  # type: ignore[valid-type]
Strategy = Literal["personalized", "cold_start", "rules_fallback"]

MAX_K = 100
MAX_EVENTS = 1000
MAX_CLOCK_SKEW = timedelta(days=1)  # events dated further in the future are refused


class _Strict(BaseModel):
    # Refused values stay out of error messages: BentoML logs them, and they may be a
    # minor's postal code or visitor id (the 400 answer never echoes them either).
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)


class RankFilters(_Strict):
    """Optional restrictions of a list; each is "any of these" (empty or absent = no filter)."""

    types: list[Programme] | None = Field(default=None, description="programmes (offer `type`)")
    domains: list[Domain] | None = Field(default=None, description="offer domains")
    remote: list[Remote] | None = Field(default=None, description="remote values")


class RankRequest(_Strict):
    """Who to rank for (a known `user_id`, a `profile`, or both: the profile's fields win)."""

    user_id: str | None = Field(default=None, min_length=1, max_length=128)
    profile: Profile | None = None
    k: int = Field(default=10, ge=1, le=MAX_K, description="list length")
    filters: RankFilters | None = None
    exclude_offer_ids: list[str] = Field(default_factory=list, max_length=1000)

    @model_validator(mode="after")
    def _one_person(self) -> RankRequest:
        inner = self.profile.user_id if self.profile is not None else None
        if self.user_id is not None and inner is not None and inner != self.user_id:
            raise ValueError("user_id and profile.user_id name different people")
        if self.user_id is None and inner is not None:
            self.user_id = inner
        return self


class RankedItem(BaseModel):
    """One recommended offer and why it was chosen."""

    offer_id: str
    rank: int = Field(description="1 for the first offer of the list")
    score: float = Field(description="the ranking score (higher first); comparable within a list")
    programme: str | None
    domain: str | None
    distance_km: float | None = Field(description="great-circle distance, null when unknown")
    reasons: list[str] = Field(description="short French texts, most telling first")
    reason_codes: list[str] = Field(
        description="the stable code of each reason, in the same order "
        "(`serving.explanations.REASONS`: near, remote_full, domain, activity, liked...)"
    )


class Location(BaseModel):
    """Where the visitor was placed, so the front can say "autour d'Arles"."""

    lat: float
    lon: float
    source: Source = Field(
        description="what placed the visitor (`recsys.places`), most precise first"
    )
    commune: str | None = Field(
        default=None, description="the commune (nearest the centroid for a postal code)"
    )


class RankResponse(BaseModel):
    """A ranked list; `request_id` tags the prints, clicks and applies it leads to."""

    request_id: str
    model_version: str
    catalog_version: str
    strategy: Strategy
    location: Location | None = Field(
        default=None, description="where the visitor was placed; null when unplaced"
    )
    items: list[RankedItem]
    experiment: str | None = Field(
        default=None, description="the online experiment the visitor is in (RECSYS_EXPERIMENT)"
    )
    arm: str | None = Field(
        default=None, description="the experiment's arm that made the list; null: unassigned"
    )


class SimilarRequest(_Strict):
    """Offers like `offer_id`, optionally only from other programmes (cross-programme links)."""

    offer_id: str = Field(min_length=1, max_length=128)
    k: int = Field(default=10, ge=1, le=MAX_K)
    other_programmes: bool = Field(
        default=False, description="only offers of a different programme than offer_id's"
    )


class SimilarItem(BaseModel):
    offer_id: str
    rank: int
    score: float = Field(description="cosine similarity to the given offer")
    programme: str | None
    domain: str | None
    distance_km: float | None = Field(description="distance from the given offer")


class SimilarResponse(BaseModel):
    offer_id: str
    model_version: str
    method: Literal["item_embeddings", "offer_features", "offer_attributes"]
    items: list[SimilarItem]


class Event(_Strict):
    """One diffusion signal from the front (print, click, apply, account)."""

    id: str = Field(min_length=1, max_length=128, description="unique event id (idempotency)")
    type: EventType
    created_at: datetime | None = Field(
        default=None, description="when it happened (UTC if no offset); default: on receipt"
    )
    mission_id: str | None = Field(default=None, min_length=1, max_length=128)
    request_id: str | None = Field(
        default=None, max_length=128, description="the /rank request_id the list came from"
    )
    position: int | None = Field(default=None, ge=1, le=32767, description="rank on the page")
    user_id: str | None = Field(default=None, max_length=128)
    user: str | None = Field(default=None, max_length=256, description="opaque visitor hash")
    to_publisher_id: str | None = Field(default=None, max_length=128)
    from_publisher_id: str | None = Field(default=None, max_length=128)
    source: EventSource | None = None
    source_id: str | None = Field(default=None, max_length=128)
    click_id: str | None = Field(default=None, max_length=128)
    client_event_id: str | None = Field(default=None, max_length=128)
    is_bot: bool = False
    status: ApplyStatus | None = None
    candidate_age: int | None = Field(
        default=None, ge=0, le=120, description="age in years; only its band is stored"
    )
    candidate_postal_code: PostalCode | None = None

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
    events: list[Event] = Field(min_length=1, max_length=MAX_EVENTS)


class EventsResponse(BaseModel):
    """How many events were new, and which ids had already been stored."""

    received: int
    stored: int
    duplicates: int
    duplicate_ids: list[str]


class ExperimentStatus(BaseModel):
    """The online experiment configured by RECSYS_EXPERIMENT (`serving.experiments`)."""

    name: str
    state: Literal["running", "scheduled", "ended", "stopped", "failed"]
    start: datetime | None
    end: datetime | None
    stopped_at: datetime | None
    error: str | None = Field(description="why the experiment does not run, if it failed")
    arms: dict[str, float] = Field(description="each arm's configured share of the visitors")
    arm_models: dict[str, str] = Field(description="the model version each arm serves")


class Status(BaseModel):
    """What the service is serving right now."""

    ready: bool
    model_version: str
    model_name: str | None
    similarity_method: str | None = Field(
        description="what /similar compares: item_embeddings (the model's) or offer_features"
    )
    model_uri: str
    model_error: str | None = Field(description="why the model is not served, if it is not")
    strategies: list[Strategy] = Field(description="strategies this state can answer with")
    catalog_version: str | None
    catalog_source: str | None
    catalog_size: int
    catalog_available: int = Field(description="offers open now (before age and place)")
    catalog_loaded_at: datetime | None
    catalog_error: str | None
    as_of: datetime | None = Field(
        description="the time lists are computed at (null: now); see RECSYS_AS_OF"
    )
    known_profiles: int
    rank_log_pending: int
    rank_log_dropped: int
    worker_pid: int = Field(
        description="the worker process that answered (RECSYS_WORKERS > 1: each has its state)"
    )
    experiment: ExperimentStatus | None = None


class CatalogUpdate(_Strict):
    """Take in offers without restarting: `merge` adds or replaces by id, `replace` swaps all."""

    path: str | None = Field(
        default=None, description="offers file on the server (default: RECSYS_CATALOG)"
    )
    mode: Literal["merge", "replace"] = "merge"


class ModelReload(_Strict):
    uri: str | None = Field(default=None, description="model to load (default: RECSYS_MODEL_URI)")


class ExperimentStop(_Strict):
    name: str | None = Field(
        default=None, description="the experiment to stop (checked when given; default: the one)"
    )


class AdminResult(BaseModel):
    """Outcome of an admin action; on failure the previous state keeps serving."""

    ok: bool
    message: str
    model_version: str
    catalog_version: str | None
    catalog_size: int
    added: int = 0
    updated: int = 0
    removed: int = 0
    rejected: int = 0
    seconds: float


MAX_AUDIENCE = 100_000


class AudienceRequest(_Strict):
    """An audience for an offer of the catalog (`offer_id`) or a `need`; audited."""

    requester: str = Field(min_length=1, max_length=200, description="who asks (audited)")
    offer_id: str | None = Field(default=None, min_length=1, max_length=128)
    need: Need | None = None
    k: int = Field(default=100, ge=1, le=MAX_AUDIENCE, description="people to return at most")
    min_count: int = Field(
        default=MIN_COUNT, ge=MIN_COUNT, description="refuse audiences smaller than this"
    )

    @model_validator(mode="after")
    def _one_target(self) -> AudienceRequest:
        if (self.offer_id is None) == (self.need is None):
            raise ValueError("give exactly one of offer_id or need")
        return self


class AudienceRow(BaseModel):
    """One person to call, by pseudonym."""

    person: str = Field(description="pseudonymous id (salted hash of the person's id)")
    score: float = Field(description="predicted propensity to answer (higher first)")
    distance_band: str
    reasons: list[str]


class AudienceResponse(BaseModel):
    """The audience, best first, with its totals; `request_id` is the audit row's."""

    request_id: str
    model_version: str
    eligible: int = Field(description="consenting eligible people the audience is the top of")
    people: list[AudienceRow]
    totals: dict[str, dict[str, int]] = Field(description="counts by department and age band")
