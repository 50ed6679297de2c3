"""The coordinators' desk: audiences drawn from the served model, every request audited.

`AudienceDesk.draw` is what both `recsys audience` and `POST /admin/audience` call: it turns
an offer id (of the live catalog) or a need into targets, draws the audience with
`recsys.audience.build_audience`, and writes the audit row (`EventStore.record_audience`)
before anything is returned. A request that is refused (too small, unknown offer, bad need)
is audited too, with its reason. When the audit cannot be written the audience is not
returned (`AuditUnavailable`): no list of people leaves without a trace.

The panel of people (`recsys.audience.People`: consenting profiles, encoded, with their
engagement) is built on first use from the profiles the ranking engine loaded and the events
next to them (the model's data folder), and rebuilt when the model or the profiles change:
a withdrawn consent takes effect at the next profile load.
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy.exc import SQLAlchemyError

from recsys import config as paths
from recsys.audience import (
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
)
from recsys.bundle import RankerBundle
from recsys.dataset import OfferBatch
from serving.events import AudienceRecord, EventStore

logger = logging.getLogger(__name__)

EVENT_COLUMNS = ["type", "createdAt", "missionId", "userId", "isBot"]


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
        if self.k < 1:
            raise ValueError(f"k: expected a positive audience size, got {self.k}")

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
        self._people: tuple[tuple[Any, ...], People] | None = None
        self._lock = threading.Lock()

    def people(self, bundle: RankerBundle, version: str, profiles: pd.DataFrame, at: int) -> People:
        """The panel for this model and these profiles, built once (see the module docstring).

        Built at the time of its first request: consents and engagement are read as of
        then, and later requests reuse it until the model or the profiles change.
        """
        key = (version, id(profiles))
        with self._lock:
            if self._people is None or self._people[0] != key:
                events = _events_near(bundle)
                domains = bundle.catalog.set_index(bundle.catalog["id"].astype(str))["domain"]

                def engagement_of(ids: Any) -> Engagement:
                    if events is None:
                        return Engagement.none(len(ids))
                    return engagement(events, domains, ids, at, self.config)

                panel = People.build(profiles, bundle.user_encoder, engagement_of, at)
                self._people = (key, panel)
                logger.info("audience panel: %d consenting people", len(panel))
            return self._people[1]

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
    return pd.read_parquet(path, columns=EVENT_COLUMNS)


def audience_rows(audience: Audience) -> pd.DataFrame:
    """The rows as a flat table (reasons '; '-joined), for a CSV file."""
    frame = audience.rows.copy()
    frame["reasons"] = frame["reasons"].map("; ".join)
    return frame
