"""Durable store of what the service showed and what people did with it.

Eight tables (SQLAlchemy Core, so one code path serves SQLite and PostgreSQL):

* `events`: the canonical events table (`recsys.schema.EVENT_SCHEMA` columns but
  `candidateAge`, camelCase, key `id`) plus `receivedAt`; inserts are idempotent
  (`INSERT ... ON CONFLICT (id) DO NOTHING`), so a front that resends a batch after a timeout
  stores nothing twice;
* `rank_requests` and `rank_items`: every ranking served (request id, time, model and catalog
  versions, strategy, person, and the online experiment and arm that made it, null when
  unassigned; then each offer with its position and score), so that a print tagged with a
  `requestId` joins to the list and position it came from; a `rank_requests` table from
  before the experiments gets their columns when the store opens (`_add_experiment_columns`);
  `rank_contexts`: where a list was shown, when the request said it;
* `admin_actions`: the admin calls that succeeded (catalog updates, model reloads, an
  experiment stopped), so that every worker process applies them (`serving.admin_sync`);
* `widget_publishers`: the widgets' publisher allow-lists set by `/admin/widgets/set`
  (`serving.widgets`), one row per widget, read by every worker at start-up and after a call;
* `experiments`: each online experiment's configuration as the service first ran it
  (`serving.experiments`), which the A/B report reads (arms, shares, dates);
* `audience_requests`: the audit of every audience request (`serving.audience`), served or
  refused: who asked, when, through which channel, the criteria (JSON), the size returned and
  the eligible pool, and why a refused one was refused.

SQLite runs in WAL mode (readers never block the writer, several worker processes can append);
PostgreSQL is chosen by the URL.

Personal data: visitor ids (`userId`, `user`, and the visitor of a logged list) are stored as
salted hashes (HMAC-SHA256 with RECSYS_ID_SALT, `pseudonym`), so one visitor keeps one id
across their events (what the models learn from) but the store does not hold the id the
front knows. A candidate's age (years, from the API) is replaced by its band
(`schema.candidate_age_band`: <16, 16-17, 18-20, 21-25, 26-30, 31+) before a row leaves
`event_rows` or enters `add_events`: the table has no `candidateAge` column, only
`candidateAgeBand`, and a table from before the bands is upgraded when the store opens (its
ages banded, the column dropped). The request models admit no IP address, user agent or birth
date, and SQL errors are logged without their parameters.

Rankings are written by a background thread in small batches (`RankLog`), off the request
path. `export_events` writes the events back as the canonical Parquet table that the feature
builders read.
"""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from recsys import schema
from recsys.audience import ENGAGEMENT_COLUMNS
from recsys.privacy import pseudonym

logger = logging.getLogger(__name__)

EVENT_COLUMNS = tuple(schema.EVENT_SCHEMA.names)
EXACT_AGE, AGE_BAND = "candidateAge", "candidateAgeBand"
STORED_COLUMNS = tuple(name for name in EVENT_COLUMNS if name != EXACT_AGE)
_TYPES: dict[str, sa.types.TypeEngine] = {
    "createdAt": sa.DateTime(timezone=True),
    "isBot": sa.Boolean(),
    "position": sa.SmallInteger(),
}
# API field (snake_case) -> canonical column (camelCase).
API_TO_COLUMN = {
    "id": "id",
    "type": "type",
    "created_at": "createdAt",
    "mission_id": "missionId",
    "to_publisher_id": "toPublisherId",
    "from_publisher_id": "fromPublisherId",
    "source": "source",
    "source_id": "sourceId",
    "user": "user",
    "user_id": "userId",
    "click_id": "clickId",
    "request_id": "requestId",
    "client_event_id": "clientEventId",
    "is_bot": "isBot",
    "status": "status",
    "position": "position",
    "candidate_age": "candidateAge",
    "candidate_postal_code": "candidatePostalCode",
}


PSEUDONYMISED = ("userId", "user")  # visitor ids, stored as salted hashes
APPLIES_OVERLAP = timedelta(minutes=1)  # `EventStore.applies_since`: late commits
SQLITE_BUSY_SECONDS = 30.0  # how long a SQLite statement waits for another process's lock
EXPERIMENT_COLUMNS = ("experiment", "arm")  # of `rank_requests`, added to older stores


def without_exact_age(row: dict[str, Any]) -> dict[str, Any]:
    """The row with `candidateAge` replaced by its band (`candidateAgeBand`).

    An age given wins over a band given with it; a band alone must be one of
    `schema.CANDIDATE_AGE_BANDS`.

    Raises:
        ValueError: naming candidateAge or candidateAgeBand (never repeating an age).
    """
    banded = {name: value for name, value in row.items() if name != EXACT_AGE}
    age = row.get(EXACT_AGE)
    if age is not None:
        banded[AGE_BAND] = schema.candidate_age_band(age)
    elif banded.setdefault(AGE_BAND, None) not in (None, *schema.CANDIDATE_AGE_BANDS):
        raise ValueError(
            f"candidateAgeBand: expected one of {', '.join(schema.CANDIDATE_AGE_BANDS)}"
        )
    return banded


@dataclass(frozen=True)
class Ranking:
    """One served list, as logged."""

    request_id: str
    created_at: datetime
    model_version: str
    catalog_version: str
    strategy: str
    user_id: str | None
    offer_ids: list[str]
    scores: list[float]
    experiment: str | None = None  # `serving.experiments`: null when unassigned
    arm: str | None = None
    offset: int = 0  # the list is positions offset + 1, offset + 2... of the ranking
    context: dict[str, Any] | None = None  # `serving.schemas.RankContext`, as sent


_CONTEXT_FIELDS = ("publisher_id", "widget_id", "source", "page")


def _context_row(request_id: str, context: dict[str, Any]) -> tuple:
    """A `rank_contexts` row: the named fields, the others as one JSON object."""
    extra = {name: value for name, value in context.items() if name not in _CONTEXT_FIELDS}
    named = tuple(context.get(name) for name in _CONTEXT_FIELDS)
    return (request_id, *named, json.dumps(extra, ensure_ascii=False) if extra else None)


@dataclass(frozen=True)
class AudienceRecord:
    """The audit of one audience request (`EventStore.record_audience`)."""

    request_id: str
    created_at: datetime
    requester: str
    channel: str  # "cli" or "http"
    criteria: dict[str, Any]
    status: str  # "served" or "refused"
    size: int  # people returned (0 when refused)
    eligible: int | None = None  # the consenting eligible pool, when it was measured
    model_version: str | None = None
    reason: str | None = None  # why a refused request was refused


class EventStore:
    """The tables on one database; `schema` and `prefix` isolate deployments (or tests).

    `id_salt` keys the hashes of visitor ids (`pseudonym`); the same salt must be kept for the
    life of the store, or one visitor's events stop joining up.
    """

    def __init__(
        self,
        url: str,
        db_schema: str | None = None,
        prefix: str = "",
        create: bool = True,
        id_salt: str = "",
    ) -> None:
        """Connect, and create the schema and tables unless `create` is False.

        Raises:
            ValueError: a schema on SQLite, or (with `create` False) a missing SQLite file or
                an events table from before the age bands (opening it with `create` upgrades
                it).
        """
        self.url = url
        self.id_salt = id_salt
        parsed = sa.engine.make_url(url)
        sqlite_file = parsed.database if parsed.get_backend_name() == "sqlite" else None
        if not create and sqlite_file is not None and not Path(sqlite_file).is_file():
            raise ValueError(f"no event store at {url}")
        self.engine: Engine = _engine(url)
        if db_schema and self.engine.dialect.name != "postgresql":
            raise ValueError(f"event store schema {db_schema!r}: schemas need PostgreSQL")
        metadata = sa.MetaData(schema=db_schema)
        self.events = sa.Table(
            f"{prefix}events",
            metadata,
            *[
                sa.Column(name, _TYPES.get(name, sa.String()), primary_key=name == "id")
                for name in STORED_COLUMNS
            ],
            sa.Column("receivedAt", sa.DateTime(timezone=True), nullable=False),
        )
        self.requests = sa.Table(
            f"{prefix}rank_requests",
            metadata,
            sa.Column("requestId", sa.String(), primary_key=True),
            sa.Column("createdAt", sa.DateTime(timezone=True), nullable=False),
            sa.Column("modelVersion", sa.String(), nullable=False),
            sa.Column("catalogVersion", sa.String(), nullable=False),
            sa.Column("strategy", sa.String(), nullable=False),
            sa.Column("userId", sa.String()),
            sa.Column("nItems", sa.Integer(), nullable=False),
            *[sa.Column(name, sa.String()) for name in EXPERIMENT_COLUMNS],
        )
        self.items = sa.Table(
            f"{prefix}rank_items",
            metadata,
            sa.Column("requestId", sa.String(), primary_key=True),
            sa.Column("position", sa.SmallInteger(), primary_key=True),
            sa.Column("missionId", sa.String(), nullable=False),
            sa.Column("score", sa.Float(), nullable=False),
        )
        self.contexts = sa.Table(  # where a list was shown (`Ranking.context`), when said
            f"{prefix}rank_contexts",
            metadata,
            sa.Column("requestId", sa.String(), primary_key=True),
            sa.Column("publisherId", sa.String()),
            sa.Column("widgetId", sa.String()),
            sa.Column("source", sa.String()),
            sa.Column("page", sa.String()),
            sa.Column("extra", sa.String()),  # JSON object of the other fields sent
        )
        self.admin = sa.Table(
            f"{prefix}admin_actions",
            metadata,
            sa.Column("generation", sa.Integer(), primary_key=True, autoincrement=True),
            sa.Column("createdAt", sa.DateTime(timezone=True), nullable=False),
            sa.Column("action", sa.String(), nullable=False),
            sa.Column("arguments", sa.String(), nullable=False),  # JSON object
        )
        self.widgets = sa.Table(
            f"{prefix}widget_publishers",
            metadata,
            sa.Column("widgetId", sa.String(), primary_key=True),
            sa.Column("updatedAt", sa.DateTime(timezone=True), nullable=False),
            sa.Column("publishers", sa.String(), nullable=False),  # JSON list
        )
        self.experiments = sa.Table(
            f"{prefix}experiments",
            metadata,
            sa.Column("name", sa.String(), primary_key=True),
            sa.Column("createdAt", sa.DateTime(timezone=True), nullable=False),
            sa.Column("config", sa.String(), nullable=False),  # JSON object
        )
        self.audiences = sa.Table(
            f"{prefix}audience_requests",
            metadata,
            sa.Column("requestId", sa.String(), primary_key=True),
            sa.Column("createdAt", sa.DateTime(timezone=True), nullable=False),
            sa.Column("requester", sa.String(), nullable=False),
            sa.Column("channel", sa.String(), nullable=False),
            sa.Column("criteria", sa.String(), nullable=False),  # JSON object
            sa.Column("status", sa.String(), nullable=False),  # served / refused
            sa.Column("size", sa.Integer(), nullable=False),
            sa.Column("eligible", sa.Integer()),
            sa.Column("modelVersion", sa.String()),
            sa.Column("reason", sa.String()),
        )
        # What SQLAlchemy would make of a timestamp for this driver (a string on SQLite).
        processor = self.requests.c.createdAt.type.bind_processor(self.engine.dialect)
        self._stamp = processor or (lambda value: value)
        if create:
            self._create(metadata, db_schema)
            self._band_stored_ages()
            self._add_experiment_columns()
        elif EXACT_AGE in self._stored_columns():
            where = parsed.render_as_string(hide_password=True)
            raise ValueError(
                f"event store at {where} still holds exact candidate ages: start the service "
                "on it once, which replaces them by their bands"
            )

    def _create(self, metadata: sa.MetaData, db_schema: str | None) -> None:
        """Create the schema and whatever tables are missing.

        Workers starting together on one database race here, so every statement is a
        `CREATE ... IF NOT EXISTS` (SQLite and PostgreSQL), one table at a time: a worker
        never fails on a table another one created since it looked (`create_all` checks
        first, then creates: docs/operations.md, "Event store"). PostgreSQL can still
        refuse two identical CREATEs running at the same instant (a unique violation in its
        catalog); the table then exists, so the statements are run again, at most once per
        table another worker can have created.
        """
        statements: list[sa.schema.ExecutableDDLElement] = []
        if db_schema:
            statements.append(sa.schema.CreateSchema(db_schema, if_not_exists=True))
        statements += [sa.schema.CreateTable(t, if_not_exists=True) for t in metadata.sorted_tables]
        for attempt in range(len(statements) + 1):
            try:
                for statement in statements:
                    with self.engine.begin() as connection:
                        connection.execute(statement)
                return
            except sa.exc.DBAPIError as error:
                if attempt == len(statements):
                    raise
                logger.info("event store tables created meanwhile by another process: %s", error)

    def _stored_columns(self, table: sa.Table | None = None) -> set[str]:
        """The columns a table (default: events) has in the database (none when it does not
        exist)."""
        inspector = sa.inspect(self.engine)
        table = self.events if table is None else table
        name, db_schema = table.name, table.schema
        if not inspector.has_table(name, schema=db_schema):
            return set()
        return {column["name"] for column in inspector.get_columns(name, schema=db_schema)}

    def _band_stored_ages(self) -> None:
        """Upgrade an events table from before the age bands: band its ages, drop the column.

        Every step is idempotent, so a crash midway is finished at the next start; when
        another process upgrading the same table at the same time makes a step fail, the
        table is checked again and the failure ignored if the ages are gone.
        """
        columns = self._stored_columns()
        if EXACT_AGE not in columns:
            return
        legacy = sa.Table(
            self.events.name,
            sa.MetaData(schema=self.events.schema),
            sa.Column(EXACT_AGE, sa.SmallInteger()),
            sa.Column(AGE_BAND, sa.String()),
        )
        age = legacy.c[EXACT_AGE]
        band = sa.case(
            *[
                (age < edge, label)
                for edge, label in zip(
                    schema.CANDIDATE_AGE_BAND_EDGES, schema.CANDIDATE_AGE_BANDS[:-1], strict=True
                )
            ],
            else_=schema.CANDIDATE_AGE_BANDS[-1],
        )
        quote = self.engine.dialect.identifier_preparer
        table = quote.format_table(self.events)
        try:
            with self.engine.begin() as connection:
                if AGE_BAND not in columns:
                    connection.exec_driver_sql(
                        f"ALTER TABLE {table} ADD COLUMN {quote.quote(AGE_BAND)} VARCHAR"
                    )
                banded = connection.execute(
                    sa.update(legacy).where(age.is_not(None)).values({AGE_BAND: band})
                ).rowcount
                connection.exec_driver_sql(
                    f"ALTER TABLE {table} DROP COLUMN {quote.quote(EXACT_AGE)}"
                )
        except sa.exc.DBAPIError:
            if EXACT_AGE in self._stored_columns():
                raise
            return
        logger.warning("event store upgraded: %d exact candidate ages replaced by bands", banded)

    def _add_experiment_columns(self) -> None:
        """Upgrade a `rank_requests` table from before the online experiments: add the
        `EXPERIMENT_COLUMNS` (null: the lists it holds were unassigned).

        Idempotent; a column another process added meanwhile is not an error.
        """
        missing = [c for c in EXPERIMENT_COLUMNS if c not in self._stored_columns(self.requests)]
        if not missing:
            return
        quote = self.engine.dialect.identifier_preparer
        table = quote.format_table(self.requests)
        for column in missing:
            try:
                with self.engine.begin() as connection:
                    connection.exec_driver_sql(
                        f"ALTER TABLE {table} ADD COLUMN {quote.quote(column)} VARCHAR"
                    )
            except sa.exc.DBAPIError:
                if column not in self._stored_columns(self.requests):
                    raise
        logger.warning("event store upgraded: rank_requests has the columns %s", missing)

    def _insert(self, table: sa.Table) -> Any:
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        elif self.engine.dialect.name == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:
            raise ValueError(f"event store: unsupported database {self.engine.dialect.name!r}")
        return insert(table)

    def add_events(self, rows: list[dict[str, Any]]) -> list[str]:
        """Insert canonical event rows; returns the ids stored (the others already were).

        An id repeated within `rows` is stored once, from its first row; visitor ids are
        stored as `pseudonym`s and a `candidateAge` as its band (`without_exact_age`).

        Raises:
            ValueError: a row's age or band is not one (nothing is stored).
        """
        received = datetime.now(UTC)
        unique: dict[str, dict[str, Any]] = {}
        for row in rows:
            hashed = {name: pseudonym(row.get(name), self.id_salt) for name in PSEUDONYMISED}
            stored = {**without_exact_age(row), **hashed, "receivedAt": received}
            unique.setdefault(row["id"], stored)
        if not unique:
            return []
        statement = (
            self._insert(self.events)
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(self.events.c.id)
        )
        with self.engine.begin() as connection:
            stored = connection.execute(statement, list(unique.values())).scalars().all()
        return list(stored)

    def log_rankings(self, rankings: Iterable[Ranking]) -> None:
        """Write served lists (idempotent on the request id).

        Plain tuples through the driver's `executemany` (`_insert_rows`): SQLAlchemy's
        per-row processing of a Core insert took a tenth of the service's CPU under load.
        """
        rankings = list(rankings)
        if not rankings:
            return
        stamp = self._stamp
        requests = [
            (
                r.request_id,
                stamp(r.created_at),
                r.model_version,
                r.catalog_version,
                r.strategy,
                pseudonym(r.user_id, self.id_salt),
                len(r.offer_ids),
                r.experiment,
                r.arm,
            )
            for r in rankings
        ]
        items = [
            (r.request_id, r.offset + i + 1, offer, float(score))
            for r in rankings
            for i, (offer, score) in enumerate(zip(r.offer_ids, r.scores, strict=True))
        ]
        contexts = [_context_row(r.request_id, r.context) for r in rankings if r.context]
        with self.engine.begin() as connection:
            self._insert_rows(connection, self.requests, requests, ["requestId"])
            if items:
                self._insert_rows(connection, self.items, items, ["requestId", "position"])
            if contexts:
                self._insert_rows(connection, self.contexts, contexts, ["requestId"])

    def _insert_rows(
        self, connection: sa.Connection, table: sa.Table, rows: list[tuple], key: list[str]
    ) -> None:
        """`INSERT ... ON CONFLICT (key) DO NOTHING` of tuples in the table's column order,
        already in the driver's form (the same statement on SQLite and PostgreSQL)."""
        quote = self.engine.dialect.identifier_preparer
        marker = "?" if self.engine.dialect.paramstyle == "qmark" else "%s"
        columns = ", ".join(quote.quote(column.name) for column in table.columns)
        markers = ", ".join([marker] * len(table.columns))
        conflict = ", ".join(quote.quote(name) for name in key)
        connection.exec_driver_sql(
            f"INSERT INTO {quote.format_table(table)} ({columns}) VALUES ({markers}) "
            f"ON CONFLICT ({conflict}) DO NOTHING",
            rows,
        )

    def read_events(self) -> pd.DataFrame:
        """Every stored event as the canonical events table (UTC timestamps), by `createdAt`.

        `candidateAge` is null throughout (the store keeps none), `candidateAgeBand` holds
        what is known of the age.
        """
        columns = [self.events.c[name] for name in STORED_COLUMNS]
        statement = sa.select(*columns).order_by(self.events.c.createdAt, self.events.c.id)
        with self.engine.connect() as connection:
            frame = pd.DataFrame(connection.execute(statement).all(), columns=list(STORED_COLUMNS))
        frame["createdAt"] = _utc(frame["createdAt"]).dt.floor("ms")  # the canonical unit
        frame["position"] = pd.array(frame["position"].tolist(), dtype="Int16")
        frame[EXACT_AGE] = pd.array([None] * len(frame), dtype="Int16")
        frame["isBot"] = frame["isBot"].astype("boolean")
        return frame[list(EVENT_COLUMNS)]

    def engagement_events(self, since: datetime) -> pd.DataFrame:
        """The non-bot prints, clicks and applies of known visitors created at or after
        `since` (`recsys.audience.ENGAGEMENT_COLUMNS`, UTC): what audiences read of the
        people's recent activity. `userId` is as stored: its salted hash."""
        e = self.events
        statement = sa.select(*[e.c[name] for name in ENGAGEMENT_COLUMNS]).where(
            e.c.createdAt >= since,
            e.c.userId.is_not(None),
            e.c.type.in_(("print", "click", "apply")),
            sa.or_(e.c.isBot.is_(None), e.c.isBot.is_(False)),
        )
        with self.engine.connect() as connection:
            frame = pd.DataFrame(connection.execute(statement).all(), columns=ENGAGEMENT_COLUMNS)
        frame["createdAt"] = _utc(frame["createdAt"])
        frame["isBot"] = frame["isBot"].astype("boolean")
        return frame

    def applies_since(
        self, after: datetime | None
    ) -> tuple[list[tuple[str, str]], datetime | None]:
        """(visitor id, offer id) of the non-bot applies received since `after` (all when
        None), and the latest reception time read (None when nothing was).

        A write committed late may carry an earlier reception time than one already read:
        the window reaches `APPLIES_OVERLAP` back, and the caller keeps pairs as a set.
        """
        e = self.events
        statement = sa.select(e.c.userId, e.c.missionId, e.c.receivedAt).where(
            e.c.type == "apply",
            e.c.userId.is_not(None),
            e.c.missionId.is_not(None),
            sa.or_(e.c.isBot.is_(None), e.c.isBot.is_(False)),
        )
        if after is not None:
            statement = statement.where(e.c.receivedAt >= after - APPLIES_OVERLAP)
        with self.engine.connect() as connection:
            rows = connection.execute(statement).all()
        latest = max((row.receivedAt for row in rows), default=None)
        return [(row.userId, row.missionId) for row in rows], latest

    def read_rankings(self) -> pd.DataFrame:
        """Every logged list item: requestId, createdAt, modelVersion, catalogVersion, strategy,
        userId, experiment, arm, position, missionId, score (experiment and arm null in a
        store not upgraded yet)."""
        r, i = self.requests, self.items
        stored = self._stored_columns(r)
        experiment = [
            r.c[name] if name in stored else sa.null().label(name) for name in EXPERIMENT_COLUMNS
        ]
        statement = (
            sa.select(
                r.c.requestId,
                r.c.createdAt,
                r.c.modelVersion,
                r.c.catalogVersion,
                r.c.strategy,
                r.c.userId,
                *experiment,
                i.c.position,
                i.c.missionId,
                i.c.score,
            )
            .select_from(r.join(i, r.c.requestId == i.c.requestId))
            .order_by(r.c.createdAt, r.c.requestId, i.c.position)
        )
        with self.engine.connect() as connection:
            rows = connection.execute(statement)
            frame = pd.DataFrame(rows.all(), columns=list(rows.keys()))
        frame["createdAt"] = _utc(frame["createdAt"])
        return frame

    def read_contexts(self) -> pd.DataFrame:
        """Every logged list context: requestId, publisherId, widgetId, source, page, extra
        (a JSON object, or null)."""
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(self.contexts).order_by(self.contexts.c.requestId))
            return pd.DataFrame(rows.all(), columns=list(rows.keys()))

    def record_admin(self, action: str, arguments: dict[str, Any]) -> int:
        """Record an admin action that succeeded, for the other workers (`serving.admin_sync`);
        its generation (increasing)."""
        statement = sa.insert(self.admin).values(
            createdAt=datetime.now(UTC), action=action, arguments=json.dumps(arguments)
        )
        with self.engine.begin() as connection:
            return int(connection.execute(statement).inserted_primary_key[0])

    def admin_actions(self, after: int) -> list[tuple[int, str, dict[str, Any]]]:
        """(generation, action, arguments) of the admin actions recorded after `after`, in
        order."""
        a = self.admin
        statement = (
            sa.select(a.c.generation, a.c.action, a.c.arguments)
            .where(a.c.generation > after)
            .order_by(a.c.generation)
        )
        with self.engine.connect() as connection:
            rows = connection.execute(statement).all()
        return [(int(g), str(action), json.loads(arguments)) for g, action, arguments in rows]

    def set_widget(self, widget_id: str, publishers: Sequence[str] | None) -> None:
        """Save a widget's publisher allow-list (`serving.widgets`); None removes it."""
        w = self.widgets
        with self.engine.begin() as connection:
            if publishers is None:
                connection.execute(sa.delete(w).where(w.c.widgetId == widget_id))
                return
            values = {"updatedAt": datetime.now(UTC), "publishers": json.dumps(list(publishers))}
            statement = (
                self._insert(w)
                .values(widgetId=widget_id, **values)
                .on_conflict_do_update(index_elements=["widgetId"], set_=values)
            )
            connection.execute(statement)

    def read_widgets(self) -> dict[str, tuple[str, ...]]:
        """Every saved widget allow-list, by widget id."""
        w = self.widgets
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(w.c.widgetId, w.c.publishers)).all()
        return {str(widget): tuple(json.loads(listed)) for widget, listed in rows}

    def record_experiment(self, name: str, config: dict[str, Any]) -> dict[str, Any]:
        """Record an experiment's configuration unless one is recorded under its name already;
        the configuration recorded (the first one, so that a change can be detected)."""
        statement = (
            self._insert(self.experiments)
            .values(name=name, createdAt=datetime.now(UTC), config=json.dumps(config))
            .on_conflict_do_nothing(index_elements=["name"])
        )
        with self.engine.begin() as connection:
            connection.execute(statement)
        return self.read_experiments()[name]

    def read_experiments(self) -> dict[str, dict[str, Any]]:
        """Every recorded experiment's configuration by name, the first recorded first (none
        when the table does not exist yet)."""
        if not sa.inspect(self.engine).has_table(
            self.experiments.name, schema=self.experiments.schema
        ):
            return {}
        x = self.experiments
        statement = sa.select(x.c.name, x.c.config).order_by(x.c.createdAt, x.c.name)
        with self.engine.connect() as connection:
            rows = connection.execute(statement).all()
        return {str(name): json.loads(config) for name, config in rows}

    def last_admin_generation(self) -> int:
        """The generation of the last admin action recorded, 0 when none was."""
        with self.engine.connect() as connection:
            last = connection.execute(sa.select(sa.func.max(self.admin.c.generation))).scalar()
        return int(last or 0)

    def record_audience(self, record: AudienceRecord) -> None:
        """Write the audit row of one audience request (served or refused)."""
        values = {
            "requestId": record.request_id,
            "createdAt": record.created_at,
            "requester": record.requester,
            "channel": record.channel,
            "criteria": json.dumps(record.criteria, sort_keys=True, ensure_ascii=False),
            "status": record.status,
            "size": record.size,
            "eligible": record.eligible,
            "modelVersion": record.model_version,
            "reason": record.reason,
        }
        with self.engine.begin() as connection:
            connection.execute(sa.insert(self.audiences).values(values))

    def read_audiences(self, limit: int | None = None) -> pd.DataFrame:
        """The audit of audience requests, newest first (`limit` rows at most)."""
        a = self.audiences
        statement = sa.select(*a.columns).order_by(a.c.createdAt.desc(), a.c.requestId)
        if limit is not None:
            statement = statement.limit(limit)
        with self.engine.connect() as connection:
            rows = connection.execute(statement)
            frame = pd.DataFrame(rows.all(), columns=list(rows.keys()))
        frame["createdAt"] = _utc(frame["createdAt"])
        return frame

    def drop(self) -> None:
        """Drop the eight tables (tests, and tearing down a deployment's prefix)."""
        for table in (
            self.audiences,
            self.experiments,
            self.widgets,
            self.admin,
            self.contexts,
            self.items,
            self.requests,
            self.events,
        ):
            table.drop(self.engine, checkfirst=True)

    def close(self) -> None:
        self.engine.dispose()


def _utc(values: pd.Series) -> pd.Series:
    """UTC timestamps from what the database returns: aware ones (PostgreSQL, SQLite rows
    written through the driver) and naive ones (SQLite rows written by SQLAlchemy), stored
    as UTC, possibly mixed in one table."""
    return pd.to_datetime(values, utc=True)


def _engine(url: str) -> Engine:
    """An engine; SQLite files get their folder, WAL mode and a busy timeout."""
    parsed = sa.engine.make_url(url)
    # hide_parameters: an SQL error's message (logged) must not carry visitors' data.
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True, hide_parameters=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(
        url, connect_args={"timeout": SQLITE_BUSY_SECONDS}, hide_parameters=True
    )

    @sa.event.listens_for(engine, "connect")
    def _pragmas(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        _write_ahead_log(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        # 64 MiB of page cache (default 2 MiB): the logged lists' keys are random ids, so each
        # batch touches pages all over the growing indexes and a small cache rereads them.
        cursor.execute("PRAGMA cache_size=-65536")
        cursor.close()

    return engine


def _write_ahead_log(cursor: sqlite3.Cursor) -> None:
    """Put the database in WAL mode (readers never block the writer), retried while it is
    locked: the switch takes its exclusive lock without waiting on the busy timeout, so
    workers opening one new database together can be told "database is locked" at once."""
    deadline = time.monotonic() + SQLITE_BUSY_SECONDS
    pause = 0.01
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(pause)
            pause = min(2 * pause, 0.5)


def event_rows(events: Iterable[Any], catalog_publishers: dict[str, str] | None = None) -> list:
    """API events (pydantic `serving.schemas.Event`) as canonical rows, ready to store.

    `toPublisherId` is filled from the catalog when the front left it out; a candidate's age
    becomes its band here (`without_exact_age`), so that no row carries it further.
    """
    now = datetime.now(UTC)
    rows = []
    for event in events:
        row = {API_TO_COLUMN[name]: value for name, value in event.model_dump().items()}
        if row["createdAt"] is None:
            row["createdAt"] = now
        stamp = row["createdAt"]
        row["createdAt"] = stamp.replace(microsecond=stamp.microsecond // 1000 * 1000)
        if row["toPublisherId"] is None and catalog_publishers and row["missionId"]:
            row["toPublisherId"] = catalog_publishers.get(row["missionId"])
        rows.append(without_exact_age(row))
    return rows


class RankLog:
    """Writes served lists to the store from a background thread, in batches.

    A request only puts its list on a bounded queue. When the store is down, lists wait (and
    are retried) up to the queue's size, then the oldest are dropped and counted, so that
    the service keeps ranking.
    """

    def __init__(
        self, store: EventStore, flush_seconds: float = 0.5, max_pending: int = 20_000
    ) -> None:
        self.store = store
        self.flush_seconds = flush_seconds
        self.dropped = 0
        self._queue: queue.Queue[Ranking] = queue.Queue(maxsize=max_pending)
        self._retry: list[Ranking] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rank-log", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        return self._queue.qsize() + len(self._retry)

    def put(self, ranking: Ranking) -> None:
        """Queue a list for writing; never blocks (drops the oldest when full)."""
        while True:
            try:
                self._queue.put_nowait(ranking)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass

    def _drain(self, limit: int) -> list[Ranking]:
        batch: list[Ranking] = []
        while len(batch) < limit:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _round(self, limit: int) -> None:
        """Write what failed last time and up to `limit` queued lists; keep failures."""
        with self._lock:
            batch = self._retry + self._drain(limit)
            if not batch:
                return
            try:
                self.store.log_rankings(batch)
            except Exception:  # the store may be down: keep serving, retry next round
                logger.exception("rank log: %d lists not written, will retry", len(batch))
                self._retry = batch[-self._queue.maxsize :]
                self.dropped += len(batch) - len(self._retry)
            else:
                self._retry = []

    def _run(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            self._round(1000)
        self._round(self._queue.maxsize)

    def flush(self) -> None:
        """Write everything queued so far, now (tests, shutdown)."""
        self._round(self._queue.maxsize)

    def close(self) -> None:
        """Write what is pending and stop the thread."""
        self._stop.set()
        self._thread.join(timeout=30)


def export_events(
    url: str,
    out: Path | str,
    db_schema: str | None = None,
    prefix: str = "",
    rankings_out: Path | str | None = None,
) -> int:
    """Write the stored events as the canonical events table (Parquet); returns the count.

    Visitor ids are exported as stored: their salted hashes. Ages too: `candidateAge` is null
    and `candidateAgeBand` gives the band (a column of its own rather than a band's
    representative age in `candidateAge`, which readers would take for an exact age; see
    `recsys.schema`).

    `rankings_out`, when given, also receives the logged lists (`EventStore.read_rankings`).
    """
    store = EventStore(url, db_schema=db_schema, prefix=prefix, create=False)
    try:
        frame = store.read_events()
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        schema.write_table(frame, "events", out)
        if rankings_out is not None:
            rankings_out = Path(rankings_out)
            rankings_out.parent.mkdir(parents=True, exist_ok=True)
            store.read_rankings().to_parquet(rankings_out, index=False)
    finally:
        store.close()
    return len(frame)
