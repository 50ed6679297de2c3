"""The event store: idempotent inserts, logged rankings, export as the canonical table.

Run on SQLite always and on PostgreSQL (marked `postgres`, a fresh schema per run, dropped
afterwards; skipped only when the server does not answer).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from recsys import schema
from serving.cli import app
from serving.events import EventStore, Ranking, RankLog, event_rows, export_events
from serving.schemas import Event, EventsRequest
from tests.service_fixtures import POSTGRES_URL, postgres_available, postgres_schema

WHEN = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def _events() -> list[Event]:
    return [
        Event(
            id="e1",
            type="print",
            mission_id="o1",
            request_id="r1",
            position=1,
            created_at=WHEN,
            user_id="u1",
        ),
        Event(
            id="e2",
            type="click",
            mission_id="o1",
            request_id="r1",
            position=1,
            created_at=WHEN,
            click_id="c1",
        ),
        Event(
            id="e3",
            type="apply",
            mission_id="o1",
            status="PENDING",
            candidate_age=19,
            candidate_postal_code="75011",
            created_at=WHEN,
            is_bot=False,
        ),
        Event(id="e1", type="print", mission_id="o2", created_at=WHEN),  # same id, ignored
    ]


def _ranking(request_id: str, offers: list[str]) -> Ranking:
    return Ranking(
        request_id,
        WHEN,
        "m/v1",
        "cat1",
        "cold_start",
        None,
        offers,
        [1.0 - i / 10 for i in range(len(offers))],
    )


def _check_store(store: EventStore) -> None:
    rows = event_rows(_events(), {"o1": "pub-1"})
    assert rows[0]["toPublisherId"] == "pub-1" and rows[3]["toPublisherId"] is None
    assert store.add_events(rows) == ["e1", "e2", "e3"]
    assert store.add_events(rows) == []  # a resent batch stores nothing
    assert store.add_events(event_rows([Event(id="e4", type="account")])) == ["e4"]
    frame = store.read_events()
    assert frame["id"].tolist() == ["e1", "e2", "e3", "e4"]  # by time, then id
    first = frame.set_index("id").loc["e1"]
    assert (first["missionId"], first["requestId"], first["position"]) == ("o1", "r1", 1)
    assert first["createdAt"] == pd.Timestamp(WHEN)
    apply = frame.set_index("id").loc["e3"]
    assert (apply["status"], apply["candidateAge"], apply["candidatePostalCode"]) == (
        "PENDING",
        19,
        "75011",
    )
    store.log_rankings([_ranking("r1", ["o1", "o2"]), _ranking("r2", [])])
    store.log_rankings([_ranking("r1", ["o1", "o2"])])  # idempotent
    rankings = store.read_rankings()
    assert rankings[["requestId", "position", "missionId"]].values.tolist() == [
        ["r1", 1, "o1"],
        ["r1", 2, "o2"],
    ]
    assert rankings["score"].tolist() == [1.0, 0.9] and rankings["strategy"].eq("cold_start").all()


def test_sqlite_store_is_idempotent_and_exports_the_canonical_table(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sub' / 'events.db'}"
    store = EventStore(url)
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    _check_store(store)
    store.close()
    count = export_events(
        url, tmp_path / "out" / "events.parquet", rankings_out=tmp_path / "out" / "rankings.parquet"
    )
    table = pq.read_table(tmp_path / "out" / "events.parquet")
    assert count == 4 and table.schema.equals(schema.EVENT_SCHEMA)
    exported = table.to_pandas().set_index("id")
    assert exported.loc["e2", "clickId"] == "c1" and exported.loc["e2", "position"] == 1
    assert pd.isna(exported.loc["e4", "missionId"])
    assert len(pd.read_parquet(tmp_path / "out" / "rankings.parquet")) == 2


@pytest.fixture
def pg_schema() -> Iterator[str]:
    if not postgres_available():
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is unreachable")
    with postgres_schema() as name:
        yield name


@pytest.mark.postgres
def test_postgres_store_is_idempotent_and_exports(pg_schema: str, tmp_path: Path) -> None:
    store = EventStore(POSTGRES_URL, db_schema=pg_schema, prefix="t_")
    _check_store(store)
    store.close()
    count = export_events(
        POSTGRES_URL, tmp_path / "events.parquet", db_schema=pg_schema, prefix="t_"
    )
    assert count == 4
    assert pq.read_table(tmp_path / "events.parquet").schema.equals(schema.EVENT_SCHEMA)


def test_rank_log_writes_in_the_background_and_survives_a_broken_store(tmp_path: Path) -> None:
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    log = RankLog(store, flush_seconds=60)  # flushed by hand below
    log.put(_ranking("a", ["o1"]))
    log.put(_ranking("b", ["o2", "o3"]))
    assert log.pending == 2
    log.flush()
    assert log.pending == 0 and store.read_rankings()["requestId"].tolist() == ["a", "b", "b"]
    store.items.drop(store.engine)  # the database loses a table: writes fail
    log.put(_ranking("c", ["o4"]))
    log.flush()
    assert log.pending == 1 and log.dropped == 0  # kept for the next round
    store.items.create(store.engine)
    log.close()  # the last round writes it
    assert store.read_rankings()["requestId"].tolist() == ["c"]
    small = RankLog(store, flush_seconds=60, max_pending=2)
    for name in "xyz":
        small.put(_ranking(name, ["o1"]))
    assert small.pending == 2 and small.dropped == 1  # the oldest went
    small.close()


def test_events_are_validated_field_by_field() -> None:
    with pytest.raises(ValidationError, match="mission_id is required for a click event"):
        Event(id="x", type="click")
    with pytest.raises(ValidationError, match="status is only for apply events"):
        Event(id="x", type="print", mission_id="o", status="PENDING")
    with pytest.raises(ValidationError, match="is in the future"):
        Event(id="x", type="print", mission_id="o", created_at=datetime(2999, 1, 1, tzinfo=UTC))
    with pytest.raises(ValidationError, match="type"):
        Event(id="x", type="view", mission_id="o")
    with pytest.raises(ValidationError, match="events"):
        EventsRequest(events=[])
    naive = Event(id="x", type="print", mission_id="o", created_at=datetime(2025, 1, 1, 10))
    assert naive.created_at == datetime(2025, 1, 1, 10, tzinfo=UTC)


def test_export_command(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    store = EventStore(url)
    store.add_events(event_rows(_events()))
    store.close()
    runner = CliRunner()
    out = tmp_path / "data" / "events.parquet"
    result = runner.invoke(app, ["events", "export", "--store", url, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "3 events written" in result.output and len(pd.read_parquet(out)) == 3
    missing = f"sqlite:///{tmp_path / 'nowhere.db'}"
    result = runner.invoke(app, ["events", "export", "--store", missing, "--out", str(out)])
    assert result.exit_code == 1 and "no event store at" in result.output


def test_serve_command_refuses_bad_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["serve", "--catalog", str(tmp_path / "missing.parquet")])
    assert result.exit_code == 2 and "--catalog" in result.output
    monkeypatch.setenv("RECSYS_MAX_PER_PUBLISHER", "2")
    result = runner.invoke(app, ["serve"])
    assert result.exit_code == 2 and "RECSYS_MAX_PER_PUBLISHER" in result.output
