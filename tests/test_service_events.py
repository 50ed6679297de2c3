"""The event store: idempotent inserts, logged rankings, age bands instead of ages, export as
the canonical table.

Run on SQLite always and on PostgreSQL (marked `postgres`, a fresh schema per run, dropped
afterwards; skipped only when the server does not answer).
"""

from __future__ import annotations

import multiprocessing
import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from pydantic import ValidationError
from typer.testing import CliRunner

from recsys import schema
from recsys.encoding import UserEncoderConfig
from recsys.loaders.events import load_events
from recsys.loaders.store import store as store_events
from serving.cli import app
from serving.events import (
    EventStore,
    Ranking,
    RankLog,
    _write_ahead_log,
    event_rows,
    export_events,
    pseudonym,
    without_exact_age,
)
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
    assert all("candidateAge" not in row for row in rows)  # banded before it reaches the store
    assert [row["candidateAgeBand"] for row in rows] == [None, None, "18-20", None]
    assert store.add_events(rows) == ["e1", "e2", "e3"]
    assert store.add_events(rows) == []  # a resent batch stores nothing
    assert store.add_events(event_rows([Event(id="e4", type="account")])) == ["e4"]
    frame = store.read_events()
    assert frame["id"].tolist() == ["e1", "e2", "e3", "e4"]  # by time, then id
    assert frame.columns.tolist() == schema.EVENT_SCHEMA.names
    first = frame.set_index("id").loc["e1"]
    assert (first["missionId"], first["requestId"], first["position"]) == ("o1", "r1", 1)
    assert first["createdAt"] == pd.Timestamp(WHEN)
    apply = frame.set_index("id").loc["e3"]
    assert (apply["status"], apply["candidateAgeBand"], apply["candidatePostalCode"]) == (
        "PENDING",
        "18-20",
        "75011",
    )
    assert frame["candidateAge"].isna().all() and str(frame["candidateAge"].dtype) == "Int16"
    assert "candidateAge" not in _stored_columns(store)
    direct = {"id": "e5", "type": "apply", "missionId": "o1", "createdAt": WHEN}
    assert store.add_events([{**direct, "candidateAge": 17}]) == ["e5"]  # a canonical row too
    assert store.read_events().set_index("id").loc["e5", "candidateAgeBand"] == "16-17"
    visitor = replace(_ranking("r3", ["o2"]), user_id="visitor-7")
    store.log_rankings([_ranking("r1", ["o1", "o2"]), _ranking("r2", []), visitor])
    store.log_rankings([_ranking("r1", ["o1", "o2"])])  # idempotent
    rankings = store.read_rankings()
    assert rankings[["requestId", "position", "missionId"]].values.tolist() == [
        ["r1", 1, "o1"],
        ["r1", 2, "o2"],
        ["r3", 1, "o2"],
    ]
    assert rankings["score"].tolist() == [1.0, 0.9, 1.0]
    assert rankings["strategy"].eq("cold_start").all() and rankings["modelVersion"].eq("m/v1").all()
    assert (rankings["createdAt"] == pd.Timestamp(WHEN)).all()
    assert rankings["userId"].iloc[:2].isna().all()
    assert rankings["userId"].iloc[2] == pseudonym("visitor-7", store.id_salt)
    assert store.last_admin_generation() == 0 and store.admin_actions(after=0) == []
    first = store.record_admin("catalog", {"path": "/data/offers.json", "mode": "merge"})
    second = store.record_admin("reload", {"uri": None})
    assert 0 < first < second == store.last_admin_generation()
    assert store.admin_actions(after=0) == [
        (first, "catalog", {"path": "/data/offers.json", "mode": "merge"}),
        (second, "reload", {"uri": None}),
    ]
    assert store.admin_actions(after=first) == [(second, "reload", {"uri": None})]


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
    assert count == 5 and table.schema.equals(schema.EVENT_SCHEMA)
    exported = table.to_pandas().set_index("id")
    assert exported["candidateAge"].isna().all()
    assert exported["candidateAgeBand"].dropna().to_dict() == {"e3": "18-20", "e5": "16-17"}
    assert exported.loc["e2", "clickId"] == "c1" and exported.loc["e2", "position"] == 1
    assert pd.isna(exported.loc["e4", "missionId"])
    assert len(pd.read_parquet(tmp_path / "out" / "rankings.parquet")) == 3


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
    assert count == 5
    table = pq.read_table(tmp_path / "events.parquet")
    assert table.schema.equals(schema.EVENT_SCHEMA)
    bands = table.to_pandas().set_index("id")["candidateAgeBand"]
    assert (bands["e3"], bands["e5"]) == ("18-20", "16-17")


def _stored_columns(store: EventStore) -> set[str]:
    """The events table's columns as the database has them."""
    inspector = sa.inspect(store.engine)
    return {c["name"] for c in inspector.get_columns(store.events.name, store.events.schema)}


def test_age_bands_keep_the_edges_of_the_age_rules_and_of_the_encoder() -> None:
    band = schema.candidate_age_band
    assert [band(age) for age in (0, 15, 16, 17, 18, 20, 21, 25, 26, 30, 31, 120)] == [
        "<16",
        "<16",
        "16-17",
        "16-17",
        "18-20",
        "18-20",
        "21-25",
        "21-25",
        "26-30",
        "26-30",
        "31+",
        "31+",
    ]
    assert band(None) is None
    # The encoder reads ages through these bands: drifting apart would need a decision.
    assert UserEncoderConfig().age_band_edges == schema.CANDIDATE_AGE_BAND_EDGES
    for bad in (-1, 121, 17.5, True, "17"):
        with pytest.raises(ValueError) as caught:
            band(bad)  # type: ignore[arg-type]
        # Names the field, does not repeat the value (it may be a real age).
        assert str(caught.value) == "candidateAge: expected whole years in 0-120"


def test_rows_keep_a_band_never_the_age() -> None:
    row = {"id": "x", "candidateAge": 29, "candidateAgeBand": "<16"}
    assert without_exact_age(row) == {"id": "x", "candidateAgeBand": "26-30"}  # the age wins
    assert without_exact_age({"id": "x", "candidateAgeBand": "31+"})["candidateAgeBand"] == "31+"
    assert without_exact_age({"id": "x"}) == {"id": "x", "candidateAgeBand": None}
    with pytest.raises(ValueError, match="candidateAgeBand"):
        without_exact_age({"id": "x", "candidateAgeBand": "17"})


def test_a_bad_age_stores_nothing(tmp_path: Path) -> None:
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    good = {"id": "a", "type": "apply", "missionId": "o1", "createdAt": WHEN, "candidateAge": 20}
    with pytest.raises(ValueError, match="candidateAge"):
        store.add_events([good, {**good, "id": "b", "candidateAge": 130}])
    assert store.read_events().empty
    store.close()


def _legacy_store(url: str, db_schema: str | None = None) -> None:
    """An events table as written before the age bands, holding exact ages."""
    metadata = sa.MetaData(schema=db_schema)
    names = [name for name in schema.EVENT_SCHEMA.names if name != "candidateAgeBand"]
    types = {"createdAt": sa.DateTime(timezone=True), "candidateAge": sa.SmallInteger()}
    table = sa.Table(
        "events",
        metadata,
        *[
            sa.Column(name, types.get(name, sa.String()), primary_key=name == "id")
            for name in names
        ],
        sa.Column("receivedAt", sa.DateTime(timezone=True), nullable=False),
    )
    ages = {"a15": 15, "a17": 17, "a25": 25, "a30": 30, "a44": 44, "none": None}
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        metadata.create_all(connection)
        connection.execute(
            table.insert(),
            [
                {
                    "id": key,
                    "type": "apply",
                    "createdAt": WHEN,
                    "receivedAt": WHEN,
                    "candidateAge": age,
                }
                for key, age in ages.items()
            ],
        )
    engine.dispose()


def _check_upgrade(url: str, db_schema: str | None = None) -> None:
    _legacy_store(url, db_schema)
    with pytest.raises(ValueError, match="still holds exact candidate ages"):
        EventStore(url, db_schema=db_schema, create=False)  # an export does not upgrade
    for _ in range(2):  # the second opening finds nothing left to do
        store = EventStore(url, db_schema=db_schema)
        assert "candidateAge" not in _stored_columns(store)
        bands = store.read_events().set_index("id")["candidateAgeBand"]
        assert len(bands) == 6 and bands.dropna().to_dict() == {
            "a15": "<16",
            "a17": "16-17",
            "a25": "21-25",
            "a30": "26-30",
            "a44": "31+",
        }
        store.close()
    EventStore(url, db_schema=db_schema, create=False).close()  # now readable for export


def test_a_store_from_before_the_bands_is_upgraded(tmp_path: Path) -> None:
    _check_upgrade(f"sqlite:///{tmp_path / 'events.db'}")


@pytest.mark.postgres
def test_a_postgres_store_from_before_the_bands_is_upgraded(pg_schema: str) -> None:
    _check_upgrade(POSTGRES_URL, pg_schema)


def test_an_export_ingested_back_keeps_the_bands(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    store = EventStore(url)
    store.add_events(event_rows(_events()))
    store.close()
    export_events(url, tmp_path / "export.parquet")
    loaded = load_events(tmp_path / "export.parquet")
    assert loaded.rejects.empty and not loaded.warnings
    table = loaded.table.set_index("id")
    assert table.loc["e3", "candidateAgeBand"] == "18-20" and table["candidateAge"].isna().all()
    # Into a raw table written before the column: its rows read as having no band.
    old = schema.conform(_platform_apply(), "events").drop_columns(["candidateAgeBand"])
    (tmp_path / "raw").mkdir()
    pq.write_table(old, tmp_path / "raw" / "events.parquet")
    report = store_events(loaded, tmp_path / "raw")
    merged = pd.read_parquet(report.table_path).set_index("id")
    assert report.added == 3 and report.total == 4
    assert (merged.loc["p1", "candidateAge"], merged.loc["e3", "candidateAgeBand"]) == (22, "18-20")
    assert pd.isna(merged.loc["p1", "candidateAgeBand"])
    # A band outside the list is dropped with a warning, the event kept.
    tampered = pd.read_parquet(tmp_path / "export.parquet")
    tampered.loc[tampered["id"] == "e3", "candidateAgeBand"] = "17"
    tampered.to_parquet(tmp_path / "tampered.parquet")
    reloaded = load_events(tmp_path / "tampered.parquet")
    assert reloaded.warnings == {"invalid_candidate_age_band": 1}
    assert reloaded.table["candidateAgeBand"].isna().all() and len(reloaded.table) == 3


def _platform_apply() -> pd.DataFrame:
    """One apply as a platform export gives it: an exact age, no band."""
    row = {name: None for name in schema.EVENT_SCHEMA.names}
    row.update(id="p1", type="apply", createdAt=pd.Timestamp(WHEN), missionId="o9", isBot=False)
    row.update(candidateAge=22)
    return pd.DataFrame([row])


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


def _open_store(url: str, schema: str | None, start: Any, outcome: Any) -> None:
    """A worker's start: wait for the signal, open the store, say how it went."""
    start.wait()
    try:
        EventStore(url, db_schema=schema)
        outcome.put("opened")
    except Exception as error:  # reported to the test, which names it
        outcome.put(f"{type(error).__name__}: {error}")


def _workers_open_together(url: str, schema: str | None, workers: int) -> list[str]:
    """`workers` processes opening one new store at the same instant: how each went."""
    context = multiprocessing.get_context("fork")  # the store's code is imported already
    start, outcome = context.Event(), context.Queue()
    processes = [
        context.Process(target=_open_store, args=(url, schema, start, outcome))
        for _ in range(workers)
    ]
    for process in processes:
        process.start()
    start.set()
    results = [outcome.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    return results


def test_workers_starting_together_all_open_a_new_store(tmp_path: Path) -> None:
    """Workers opening one new SQLite store at once all open it (each table's CREATE is
    `IF NOT EXISTS`: `create_all`'s check-then-create lost about one start in a hundred)."""
    for attempt in range(10):
        url = f"sqlite:///{tmp_path / f'events{attempt}.db'}"
        assert _workers_open_together(url, None, 4) == ["opened"] * 4
    store = EventStore(url)
    assert store.add_events(event_rows([Event(id="raced", type="account")])) == ["raced"]


def test_a_store_whose_every_table_another_worker_creates_first_is_opened(
    tmp_path: Path,
) -> None:
    """The worst interleaving of two starts: before each CREATE TABLE of this worker, the
    other one has just created that very table. `create_all`'s check-then-create failed on
    every table (three attempts, eight tables); this worker opens the store."""
    path = tmp_path / "events.db"
    created_first = []

    def other_worker_first(_connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().startswith("CREATE TABLE"):
            other = sqlite3.connect(path)
            with other:
                other.execute(
                    statement.replace("IF NOT EXISTS ", "").replace(
                        "CREATE TABLE", "CREATE TABLE IF NOT EXISTS", 1
                    )
                )
            other.close()
            created_first.append(statement.split("(")[0])

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", other_worker_first)
    try:
        store = EventStore(f"sqlite:///{path}")
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", other_worker_first)
    assert len(created_first) >= 8
    assert store.add_events(event_rows([Event(id="raced", type="account")])) == ["raced"]


class _LockedAtFirst:
    """A cursor whose first `locked` PRAGMA journal_mode=WAL calls find the database locked,
    as a process opening a new database together with others can be told at once."""

    def __init__(self, locked: int, message: str = "database is locked") -> None:
        self.locked, self.message, self.calls = locked, message, 0

    def execute(self, statement: str) -> None:
        assert statement == "PRAGMA journal_mode=WAL"
        self.calls += 1
        if self.calls <= self.locked:
            raise sqlite3.OperationalError(self.message)


def test_the_switch_to_wal_is_retried_while_the_database_is_locked() -> None:
    cursor = _LockedAtFirst(locked=3)
    _write_ahead_log(cursor)  # type: ignore[arg-type]
    assert cursor.calls == 4
    other = _LockedAtFirst(locked=1, message="disk I/O error")
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        _write_ahead_log(other)  # type: ignore[arg-type]
    assert other.calls == 1


@pytest.mark.skipif(not postgres_available(), reason="no PostgreSQL at 127.0.0.1:5432")
def test_workers_starting_together_all_open_a_new_postgres_store() -> None:
    """The same on PostgreSQL, where two identical CREATEs at one instant can still clash in
    its catalog: the clash is retried."""
    for _ in range(3):
        with postgres_schema() as schema:
            assert _workers_open_together(POSTGRES_URL, schema, 4) == ["opened"] * 4
