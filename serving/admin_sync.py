"""Admin calls reach every worker process.

With RECSYS_WORKERS > 1 each worker holds its own state, and an admin call (`/admin/catalog`,
`/admin/reload`) reaches the one worker that accepts its connection. That worker records the
call in the event store once it succeeded (`EventStore.record_admin`); every worker polls the
store (every RECSYS_ADMIN_SYNC_SECONDS) and applies the calls it has not applied yet, in the
order they were recorded. A worker counts the calls recorded before it started as applied:
its configuration is its starting state. Two calls made within one poll interval on two
workers may be applied in different orders by each; make admin calls one at a time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from serving.events import EventStore

logger = logging.getLogger(__name__)


class AdminSync:
    """Records this worker's admin calls and applies the other workers' ones.

    `apply(action, arguments)` carries out a call recorded by another worker.
    """

    def __init__(
        self,
        store: EventStore,
        apply: Callable[[str, dict[str, Any]], None],
        every_seconds: float = 1.0,
    ) -> None:
        self.store = store
        self.apply = apply
        self.every_seconds = every_seconds
        self.applied = store.last_admin_generation()
        self._own: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self, action: str, arguments: dict[str, Any]) -> int:
        """Record a call this worker carried out; its generation."""
        generation = self.store.record_admin(action, arguments)
        with self._lock:
            self._own.add(generation)
        return generation

    def poll(self) -> int:
        """Apply the calls other workers recorded since the last poll; how many there were."""
        with self._lock:
            applied = 0
            for generation, action, arguments in self.store.admin_actions(after=self.applied):
                if generation in self._own:
                    self._own.discard(generation)
                else:
                    logger.info(
                        "applying admin call %d (%s) from another worker", generation, action
                    )
                    self.apply(action, arguments)
                    applied += 1
                self.applied = generation
            return applied

    def start(self) -> None:
        """Poll in a background thread until `close`."""
        self._thread = threading.Thread(target=self._run, name="admin-sync", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every_seconds):
            try:
                self.poll()
            except Exception:  # the store may be down: this worker keeps its state, retries
                logger.exception("admin sync: poll failed, will retry")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
