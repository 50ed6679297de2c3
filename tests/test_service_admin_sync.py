"""`serving.admin_sync`: an admin call made on one worker reaches the others.

Two engines stand for two worker processes; they share one event store, as the workers of a
service do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from serving.admin_sync import AdminSync
from serving.engine import Engine
from serving.events import EventStore
from serving.settings import Settings
from tests.service_fixtures import catalog_offers, new_offer, write_world


class Worker:
    """An engine and its sync, applying recorded calls as the service does."""

    def __init__(self, world: dict[str, Path], store: EventStore) -> None:
        settings = Settings(
            model_uri=str(world["bundle"]), catalog=world["catalog"], profiles=world["profiles"]
        )
        self.engine = Engine.start(settings)
        self.sync = AdminSync(store, self.apply)
        self.applied: list[str] = []

    def apply(self, action: str, arguments: dict[str, Any]) -> None:
        if action == "catalog":
            result = self.engine.update_catalog(arguments["path"], arguments["mode"])
        else:
            result = self.engine.reload_model(arguments["uri"])
        assert result.ok, result.message
        self.applied.append(action)

    def catalog_version(self) -> str:
        catalog = self.engine.state.catalog
        assert catalog is not None
        return catalog.version


def test_a_call_on_one_worker_reaches_the_others(tmp_path: Path) -> None:
    world = write_world(tmp_path / "world")
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    first, second = Worker(world, store), Worker(world, store)
    update = tmp_path / "update.parquet"
    new_offer().to_parquet(update, index=False)

    assert first.engine.update_catalog(str(update), "merge").ok  # the call, on one worker
    first.sync.record("catalog", {"path": str(update), "mode": "merge"})
    assert first.catalog_version() != second.catalog_version()
    assert second.sync.poll() == 1 and second.applied == ["catalog"]
    assert second.catalog_version() == first.catalog_version()
    assert "lyon-sport-new" in second.engine.state.catalog.row
    assert first.sync.poll() == 0 and first.applied == []  # its own call, not applied twice
    assert second.sync.poll() == 0  # nothing new

    later = Worker(world, store)  # started after the call: its configuration is its state
    assert later.sync.poll() == 0 and "lyon-sport-new" not in later.engine.state.catalog.row

    replacement = tmp_path / "replacement.parquet"
    catalog_offers().head(5).to_parquet(replacement, index=False)
    assert second.engine.update_catalog(str(replacement), "replace").ok
    second.sync.record("catalog", {"path": str(replacement), "mode": "replace"})
    assert second.engine.reload_model(str(world["bundle"])).ok
    second.sync.record("reload", {"uri": str(world["bundle"])})
    assert first.sync.poll() == 2 and first.applied == ["catalog", "reload"]
    assert later.sync.poll() == 2
    assert first.catalog_version() == second.catalog_version() == later.catalog_version()
    assert len(first.engine.state.catalog) == len(pd.read_parquet(replacement)) == 5
    store.close()
