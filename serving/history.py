"""What known visitors applied to since the model's training data: never recommended again.

The bundle carries the applications before its cutoff (`RankerBundle.applied_by_user`); the
applications the service received since are in the event store, under the visitor's
pseudonym (`serving.events.pseudonym`). `AppliedOffers` holds the latter per worker: loaded
from the store at start, added to as `/events` stores applies, and refreshed from the store
(`follow`) so that an apply received by another worker counts here too.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from serving.events import EventStore

logger = logging.getLogger(__name__)


class AppliedOffers:
    """Offer ids applied to, per stored visitor id (a pseudonym); safe across threads."""

    def __init__(self) -> None:
        self._offers: defaultdict[str, set[str]] = defaultdict(set)
        self._lock = threading.Lock()
        self._seen_until: datetime | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, pairs: Iterable[tuple[str | None, str | None]]) -> None:
        """Record (visitor id, offer id) pairs; pairs missing either are ignored."""
        with self._lock:
            for user_id, offer_id in pairs:
                if user_id and offer_id:
                    self._offers[user_id].add(offer_id)

    def of(self, user_id: str | None) -> frozenset[str]:
        """The offers `user_id` applied to (empty for None or an unseen id)."""
        if not user_id:
            return frozenset()
        with self._lock:
            return frozenset(self._offers.get(user_id, ()))

    def refresh(self, store: EventStore) -> int:
        """Add the applies the store received since the last refresh; how many were read."""
        rows, until = store.applies_since(self._seen_until)
        self.add(rows)
        if until is not None:
            self._seen_until = until
        return len(rows)

    def follow(self, store: EventStore, every_seconds: float) -> None:
        """Refresh now, then in a background thread every `every_seconds` until `close`."""
        self.refresh(store)

        def run() -> None:
            while not self._stop.wait(every_seconds):
                try:
                    self.refresh(store)
                except Exception:  # the store may be down: keep what is known, retry
                    logger.exception("applied offers: refresh failed, will retry")

        self._thread = threading.Thread(target=run, name="applied-offers", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
