"""The coordinators' desk: audiences drawn from the served model, every request audited.

`AudienceDesk.draw` is what both `recsys audience` and `POST /admin/audience` call: it turns
an offer id (of the live catalog) or a need into targets, draws the audience with
`recsys.audience.build_audience`, and writes the audit row (`EventStore.record_audience`)
before anything is returned. A request that is refused (too small, unknown offer, bad need)
is audited too, with its reason. When the audit cannot be written the audience is not
returned (`AuditUnavailable`): no list of people leaves without a trace.

The panel of people (`recsys.audience.People`: consenting profiles, encoded, with their
engagement) is built on first use from the profiles the ranking engine loaded and the events
next to them (the model's data folder, before the model's cutoff), and rebuilt when the model
or the profiles change: a withdrawn consent takes effect at the next profile load. Each
request then adds what the live event store received since the cutoff (`live_engagement`):
someone who came yesterday counts as active yesterday, not as of the last training data.
The store holds visitor ids as their salted hashes, so its events are matched to the
people through `pseudonym`.

A request too malformed to reach `draw` (not JSON, an unknown field, an invalid radius, `k`
below `min_count`...) is audited too, by `AudienceAudit` around `POST /admin/audience`.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pandas as pd
from sqlalchemy.exc import SQLAlchemyError

from recsys import config as paths
from recsys.audience import (
    ENGAGEMENT_COLUMNS,
    MIN_COUNT,
    Audience,
    AudienceConfig,
    Engagement,
    Need,
    People,
    PropensityScorer,
    Targets,
    build_audience,
    engagement,
    learned_model,
    need_targets,
    offer_facts,
)
from recsys.bundle import RankerBundle
from recsys.dataset import OfferBatch
from recsys.privacy import pseudonym
from serving.events import AudienceRecord, EventStore
from serving.web import error_body, holding

logger = logging.getLogger(__name__)

ADMIN_HEADER = b"x-admin-token"


class UnknownTarget(LookupError):
    """The offer id is not in the catalog."""


class AuditUnavailable(RuntimeError):
    """The audit row could not be written, so the audience is withheld."""


@dataclass(frozen=True)
class AudienceQuery:
    """One request: who asks, through what, for which offer or need, how many."""

    requester: str
    channel: str  # "cli" or "http"
    offer_id: str | None = None
    need: Need | None = None
    k: int = 100
    min_count: int = MIN_COUNT

    def __post_init__(self) -> None:
        if (self.offer_id is None) == (self.need is None):
            raise ValueError("audience: give exactly one of an offer id or a need")
        if not self.requester.strip():
            raise ValueError("requester: say who asks (it is audited)")
        if self.min_count < MIN_COUNT:
            raise ValueError(f"min_count: at least {MIN_COUNT}, got {self.min_count}")
        if self.k < self.min_count:
            raise ValueError(
                f"k: {self.k} is below min_count {self.min_count}: such an audience is refused"
            )

    def criteria(self, at: int) -> dict[str, Any]:
        """What was asked, as audited (JSON-able)."""
        return {
            "offer_id": self.offer_id,
            "need": self.need.model_dump(mode="json") if self.need is not None else None,
            "k": self.k,
            "min_count": self.min_count,
            "at": datetime.fromtimestamp(at, tz=UTC).isoformat(),
        }


class AudienceDesk:
    """Draws audiences on one model, catalog and set of profiles; audits every request."""

    def __init__(
        self,
        store: EventStore | None,
        salt: str,
        config: AudienceConfig | None = None,
    ) -> None:
        self.store = store
        self.salt = salt
        self.config = config or AudienceConfig()
        # (model version, profiles) -> panel, the time its engagement is measured at, pseudonyms
        self._people: tuple[tuple[Any, ...], People, int, np.ndarray] | None = None
        self._lock = threading.Lock()

    def people(self, bundle: RankerBundle, version: str, profiles: pd.DataFrame, at: int) -> People:
        """The panel for this model and these profiles, with the live engagement at `at`.

        The panel and the data folder's engagement (events before the model's cutoff) are
        built once, at the first request, and reused until the model or the profiles change;
        the store's events since the cutoff are read at every request (`live_engagement`).
        """
        key = (version, id(profiles))
        cutoff = int(bundle.cutoff.timestamp())
        with self._lock:
            if self._people is None or self._people[0] != key:
                events = _events_near(bundle)
                facts = offer_facts(bundle.catalog)
                built_at = min(at, cutoff)

                def engagement_of(ids: Any) -> Engagement:
                    if events is None:
                        return Engagement.none(len(ids))
                    return engagement(events, facts, ids, built_at, self.config)

                panel = People.build(profiles, bundle.user_encoder, engagement_of, at)
                hashed = np.array([pseudonym(str(i), self.salt) for i in panel.users.ids])
                self._people = (key, panel, built_at, hashed)
                logger.info("audience panel: %d consenting people", len(panel))
            _, panel, built_at, hashed = self._people
        return self.live_engagement(panel, hashed, bundle, built_at, at)

    def live_engagement(
        self, panel: People, hashed: np.ndarray, bundle: RankerBundle, built_at: int, at: int
    ) -> People:
        """`panel` with its engagement brought to `at`: the folder's, decayed from `built_at`,
        plus the store's events in [cutoff, at) (matched by `hashed`, the people's pseudonyms).
        """
        cutoff = int(bundle.cutoff.timestamp())
        activity = panel.engagement.decayed(at - built_at, self.config.half_life_days)
        if self.store is not None and at > cutoff:
            since = datetime.fromtimestamp(cutoff, tz=UTC)
            try:
                events = self.store.engagement_events(since)
            except SQLAlchemyError as error:
                logger.error(
                    "audience: live events not read, engagement as of %s: %s", since, error
                )
                events = None
            if events is not None and len(events):
                live = engagement(
                    events, offer_facts(bundle.catalog), hashed, at, self.config, since=cutoff
                )
                activity = activity.merge(live)
        return replace(panel, engagement=activity)

    def draw(
        self,
        query: AudienceQuery,
        bundle: RankerBundle,
        version: str,
        catalog: pd.DataFrame,
        profiles: pd.DataFrame,
        at: int,
    ) -> tuple[str, Audience]:
        """The audience of `query`, audited; returns (request id, audience).

        Raises:
            UnknownTarget: the offer is not in `catalog` (audited as refused).
            recsys.audience.AudienceTooSmall: fewer than `query.min_count` people (audited).
            AuditUnavailable: the audit row could not be written (nothing is returned).
        """
        request_id = uuid.uuid4().hex
        record = {
            "request_id": request_id,
            "created_at": datetime.now(UTC),
            "requester": query.requester,
            "channel": query.channel,
            "criteria": query.criteria(at),
            "model_version": version,
        }
        try:
            targets = self._targets(query, bundle, catalog, at)
            people = self.people(bundle, version, profiles, at)
            scorer = PropensityScorer(learned_model(bundle.model), self.config)
            audience = build_audience(
                people, targets, scorer, query.k, self.salt, min_count=query.min_count
            )
        except (ValueError, LookupError) as error:
            self._audit(AudienceRecord(**record, status="refused", size=0, reason=str(error)))
            raise
        self._audit(
            AudienceRecord(
                **record, status="served", size=len(audience.rows), eligible=audience.eligible
            )
        )
        return request_id, audience

    def _targets(
        self, query: AudienceQuery, bundle: RankerBundle, catalog: pd.DataFrame, at: int
    ) -> Targets:
        if query.need is not None:
            return need_targets(query.need, bundle.offer_encoder, at)
        rows = catalog.loc[catalog["id"].astype(str) == query.offer_id]
        if rows.empty:
            raise UnknownTarget(f"offer_id: {query.offer_id} is not in the catalog")
        return Targets(OfferBatch.encode(rows.tail(1), bundle.offer_encoder), at)

    def _audit(self, record: AudienceRecord) -> None:
        if self.store is None:
            raise AuditUnavailable("audience: no event store to audit the request in")
        try:
            self.store.record_audience(record)
        except SQLAlchemyError as error:
            logger.error("audience audit not written: %s", error)
            message = "audience: the audit could not be written, retry later"
            raise AuditUnavailable(message) from error


def _events_near(bundle: RankerBundle) -> pd.DataFrame | None:
    """The canonical events of the model's data folder (engagement), None when absent."""
    data_dir = bundle.manifest.get("data_dir")
    path = Path(data_dir) / paths.EVENTS_FILE if data_dir else None
    if path is None or not path.is_file():
        logger.warning("audience: no events next to the model's data; engagement unknown")
        return None
    return pd.read_parquet(path, columns=ENGAGEMENT_COLUMNS)


def audience_rows(audience: Audience) -> pd.DataFrame:
    """The rows as a flat table (reasons '; '-joined), for a CSV file."""
    frame = audience.rows.copy()
    frame["reasons"] = frame["reasons"].map("; ".join)
    return frame


MALFORMED_BODY_CHARS = 2_000  # of a malformed request's body kept in its audit row


def malformed_record(body: bytes, reason: str, authorized: bool) -> AudienceRecord:
    """The audit row of a request refused before it could be read as an audience request.

    `requester` is the body's, when it is JSON naming one (else "unknown"); the criteria are
    what was sent (the body, cut to `MALFORMED_BODY_CHARS`) and whether the admin token was
    right.
    """
    text = body.decode("utf-8", "replace")
    try:
        values = json.loads(text)
    except ValueError:
        values = None
    named = values.get("requester") if isinstance(values, dict) else None
    requester = named.strip()[:200] if isinstance(named, str) and named.strip() else "unknown"
    return AudienceRecord(
        request_id=uuid.uuid4().hex,
        created_at=datetime.now(UTC),
        requester=requester,
        channel="http",
        criteria={"body": text[:MALFORMED_BODY_CHARS], "authorized": authorized},
        status="refused",
        size=0,
        reason=reason,
    )


class AudienceAudit:
    """ASGI middleware around `POST path`: a request refused before the endpoint runs (400:
    not JSON, an unknown field, an invalid value) is audited as refused, with the message
    naming the field, before the answer leaves; the endpoint audits everything else.

    The event store and the admin token (to record whether the caller had it) are the
    service's (`serving.settings`), read on first need.
    """

    def __init__(self, app: Any, path: str) -> None:
        self.app = app
        self.path = path
        self._store: EventStore | None = None
        self._token: str | None = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        messages, body = [], b""
        while True:
            message = await receive()
            messages.append(message)
            body += message.get("body", b"")
            if message["type"] != "http.request" or not message.get("more_body", False):
                break

        async def replay() -> dict:
            return messages.pop(0) if messages else await receive()

        async def audit(start: dict, answer: bytes) -> tuple[dict, bytes]:
            await anyio.to_thread.run_sync(self._audit, scope, body, answer)
            return start, answer

        reply = holding(send, lambda start: start["status"] == 400, audit)
        await self.app(scope, replay, reply)

    def _audit(self, scope: dict, body: bytes, answer: bytes) -> None:
        shaped = json.loads(error_body(400, answer) or answer)
        reason = shaped["error"]["message"] if isinstance(shaped.get("error"), dict) else None
        try:
            if self._store is None:
                self._open()
            given = dict(scope.get("headers") or []).get(ADMIN_HEADER, b"")
            token = self._token
            authorized = token is not None and hmac.compare_digest(given, token.encode())
            record = malformed_record(body, reason or "invalid request", authorized)
            self._store.record_audience(record)
        except SQLAlchemyError as error:
            logger.error("audience audit of a malformed request not written: %s", error)

    def _open(self) -> None:
        from serving.settings import Settings

        settings = Settings.from_env()
        self._token = settings.admin_token
        self._store = EventStore(
            settings.event_store_url,
            db_schema=settings.event_schema,
            prefix=settings.event_table_prefix,
            id_salt=settings.id_salt or "",
        )
