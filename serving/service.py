"""The BentoML service: HTTP around `serving.engine.Engine` and the event store.

`__init__` loads everything once (model bundle from the registry, catalog, profiles, event
store); each endpoint is a typed method whose pydantic models BentoML publishes in its OpenAPI
(`/docs.json`). BentoML also serves `/healthz` (alive), `/readyz` (ready once a catalog is
loaded: `__is_ready__`) and `/metrics` (Prometheus: BentoML's request metrics and the business
metrics of `serving.metrics`). In a Bento built by `recsys bento`, the baked champion is the
default model (`baked_model`). `GET /status` comes from a small FastAPI
app mounted beside the APIs, because BentoML APIs answer POST only.

Personal data stays out of the logs: refused values are not repeated in validation errors
(`serving.schemas`), and the access log omits the client address (`AccessLogFilter`, which
also keeps only failed requests and admin calls unless RECSYS_ACCESS_LOG_ALL is set).

Errors: a body over RECSYS_MAX_BODY_BYTES is refused with a 413 before it is parsed; bad
input is refused by pydantic with a 400 naming the field; an unknown offer in
/similar is a 404; a request while no catalog is loaded is a 503; admin calls without the
right X-Admin-Token header are 403; a failed admin action answers 422 with the reason, and
the previous state keeps serving.

Online experiments (RECSYS_EXPERIMENT, `serving.experiments`): each /rank request goes to its
arm's engine, its answer and its log entry carry the experiment and the arm, `/status` shows
the experiment, and `/admin/experiment/stop` stops it on every worker.

Run with `recsys serve` or `bentoml serve serving.service:RankingService` (configuration by
environment variables, `serving.settings`).

Throughput (docs/operations.md, "Load"): /rank and /similar are `async`. /rank hands its
request to `serving.batching.Batcher`, which ranks the requests waiting together on worker
threads (one, or two from 50,000 offers; RECSYS_MAX_BATCH requests at most; the batch sizes
are the `rank_batch_size` histogram of /metrics);
/similar is short and ranks on the event loop. BentoML would run a sync API on a pool of one
thread (`threads: 1`), handing each request to it and back, a third of the server's CPU per
request before batching. /events (database writes) and the admin calls
(seconds) stay off the loop; a successful admin call is recorded for the other workers
(`serving.admin_sync`). The state loaded at start-up is frozen out of the garbage
collector (`_settle_heap`): each full collection walked its few hundred thousand long-lived
objects, a 100-250 ms pause of every request every second or two under load, and full
collections are made rarer (`GC_THRESHOLDS`).
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import hmac
import json
import logging
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

import anyio
import bentoml
import pyarrow
from bentoml.exceptions import BentoMLException, InvalidArgument, NotFound, ServiceUnavailable
from fastapi import FastAPI
from fastapi.responses import Response
from sqlalchemy.exc import SQLAlchemyError

from recsys import config, logs
from recsys.audience import AudienceTooSmall
from recsys.bundle import BUNDLE_FILE
from recsys.paths import NoPath, programme_answers
from serving.admin_sync import AdminSync
from serving.audience import (
    AudienceAudit,
    AudienceDesk,
    AudienceQuery,
    AuditUnavailable,
    UnknownTarget,
)
from serving.batching import Batcher
from serving.bento import BAKED_MODEL_ARGUMENT
from serving.engine import Engine, NotReady, UnknownOffer
from serving.events import EventStore, RankLog, event_rows, pseudonym
from serving.experiments import STOP_ACTION, Experiment, stop_experiment
from serving.metrics import business_metrics
from serving.paths import redirect
from serving.public_page import PublicPage
from serving.ranking import Answer
from serving.schemas import (
    AdminResult,
    AudienceRequest,
    AudienceResponse,
    AudienceRow,
    CatalogUpdate,
    EligibilityRequest,
    EligibilityResponse,
    EventsRequest,
    EventsResponse,
    ExperimentStop,
    ModelReload,
    ProgrammeEligibility,
    RankRequest,
    RankResponse,
    SimilarRequest,
    SimilarResponse,
    Status,
    WidgetList,
    WidgetQuery,
    WidgetRule,
    WidgetUpdate,
)
from serving.settings import (
    REQUEST_CLOCK,
    Settings,
    access_log_all,
    batch_threads,
    cors_origins,
    max_body_bytes,
    trace_rank,
    widgets_file,
    workers,
)
from serving.web import PublicCors, WebConventions
from serving.widgets import NoPublisher, WidgetRules

logger = logging.getLogger(__name__)

ADMIN_HEADER = "X-Admin-Token"
# The collector's thresholds, full collections 10 times rarer than Python's (700, 10, 10): once
# the loaded state is frozen (`_settle_heap`), what a full collection walks is mostly what
# BentoML keeps of each request until its traffic timeout (a timer, a future, a context) and
# frees by reference counting, so each walk finds next to nothing and pauses every request.
GC_THRESHOLDS = (700, 10, 100)
WIDGETS_ACTION = "widgets"  # a widget allow-list saved: every worker reads them again
# What `_carry_out` does (and `_apply_recorded` for the widgets), and `serving.admin_sync`
# records.
ADMIN_ACTIONS = ("catalog", "reload", STOP_ACTION, WIDGETS_ACTION)

status_app = FastAPI(
    title="ranking status", docs_url=None, redoc_url=None, openapi_url=None
)  # serves GET /status only


class BodyLimit:
    """ASGI middleware: a request body over `max_bytes` is answered 413 before any parsing.

    BentoML 1.4 has no request-size setting, and Starlette none either; this reads the body
    (declared length first, then the chunks as they come, so a chunked body is cut off at
    the limit too) and replays it to the application.
    """

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        messages = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._refuse(send)
                return
            if message["type"] != "http.request" or not message.get("more_body", False):
                break

        async def replay() -> dict:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Any) -> None:
        body = json.dumps(
            {"error": f"request body: larger than {self.max_bytes} bytes (or length malformed)"}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


@bentoml.service(
    name="ranking",
    workers=workers(),
    traffic={"timeout": 120},
    tracing={"excluded_urls": [] if trace_rank() else ["/rank$"]},
)
@bentoml.asgi_app(status_app, path="/")
class RankingService:
    """Ranks engagement offers for a person; records what was shown and what people did."""

    def __init__(self) -> None:
        self.settings = Settings.from_env(default_model=baked_model())
        self.widgets = WidgetRules.load(widgets_file())
        self.engine = Engine.start(self.settings)
        self.experiment: Experiment | None = None
        if self.settings.experiment is not None:
            self.experiment = Experiment.start(self.settings.experiment, self.engine)
        self.store: EventStore | None = None
        self.rank_log: RankLog | None = None
        self.admin_sync: AdminSync | None = None
        self.store_error: str | None = None
        if self.settings.id_salt is None:
            logger.warning("RECSYS_ID_SALT is not set: visitor ids hashed without a secret salt")
        try:
            self.store = EventStore(
                self.settings.event_store_url,
                db_schema=self.settings.event_schema,
                prefix=self.settings.event_table_prefix,
                id_salt=self.settings.id_salt or "",
            )
            if self.experiment is not None:
                self.experiment.attach(self.store)
            self.rank_log = RankLog(self.store, self.settings.rank_log_flush_seconds)
            self.widgets = self.widgets.with_admin(self.store.read_widgets())
            self.admin_sync = AdminSync(
                self.store, self._apply_recorded, self.settings.admin_sync_seconds
            )
            self.admin_sync.start()
            self.engine.applied.follow(self.store, self.settings.admin_sync_seconds)
        except Exception as error:  # ranking must not depend on the event database
            self.store_error = f"{type(error).__name__}: {error}"
            logger.error("event store unavailable, events refused: %s", self.store_error)
            business_metrics().store_error("open")
        self.audiences = AudienceDesk(self.store, self.settings.id_salt or "")
        if self.experiment is not None and self.experiment.error is not None:
            logger.error("experiment not run: %s", self.experiment.error)
        self.batcher = Batcher(self._rank_batch, self.settings.max_batch)
        self._fit_batch_threads()
        business_metrics().serving(self._status())
        _settle_heap()

    def _fit_batch_threads(self) -> None:
        catalog = self.engine.state.catalog
        size = len(catalog) if catalog is not None else 0
        self.batcher.threads = batch_threads(self.settings.batch_threads, size)

    def _carry_out(self, action: str, arguments: dict[str, Any]) -> AdminResult:
        """An admin action on this worker (`catalog`: path and mode, for every arm of the
        experiment too; `reload`: uri; `experiment_stop`: name and time), then the loaded state
        settled (`_settle_heap`) and the batch threads fitted to the catalog.

        The admin endpoints and the calls other workers recorded (`serving.admin_sync`) both
        come through here.
        """
        try:
            if action == STOP_ACTION:
                return self._stop_experiment(arguments)
            if action == "catalog":
                result = self.engine.update_catalog(arguments["path"], arguments["mode"])
                if result.ok and self.experiment is not None:
                    for engine in self.experiment.other_engines(self.engine):
                        arm = engine.update_catalog(arguments["path"], arguments["mode"])
                        if not arm.ok:
                            logger.error("catalog update of an experiment arm: %s", arm.message)
                return result
            return self.engine.reload_model(arguments["uri"])
        finally:
            business_metrics().serving(self._status())
            _settle_heap()
            self._fit_batch_threads()

    def _stop_experiment(self, arguments: dict[str, Any]) -> AdminResult:
        """Stop the experiment named in `arguments` (from `at`): every request unassigned."""
        ok, message = stop_experiment(self.experiment, arguments)
        return self.engine.admin_result(ok, message)

    def _apply_recorded(self, action: str, arguments: dict[str, Any]) -> None:
        """Carry out an admin call another worker recorded (`serving.admin_sync`)."""
        if action not in ADMIN_ACTIONS:
            logger.error("admin sync: unknown action %r ignored", action)
            return
        if action == WIDGETS_ACTION:
            self._read_widgets()
            logger.info("admin sync: widget allow-lists read again (%s)", arguments)
            return
        logger.info("admin sync: %s", self._carry_out(action, arguments).message)

    def _record(self, action: str, arguments: dict[str, Any]) -> None:
        """Record a successful admin call for the other workers; a failure is logged only
        (this worker serves the new state; the others keep theirs until it is repeated)."""
        if self.admin_sync is None:
            return
        try:
            self.admin_sync.record(action, arguments)
        except SQLAlchemyError as error:
            logger.error("admin call not recorded for the other workers: %s", error)
            business_metrics().store_error("admin_sync")

    def _rank_batch(self, requests: list[RankRequest]) -> list[Answer]:
        business_metrics().batch_sizes.observe(len(requests))
        if self.experiment is None:
            return self.engine.rank_batch(requests)
        return self.experiment.rank_batch(requests, self.engine)

    def __is_ready__(self) -> bool:
        """Ready once a catalog is loaded: the model, or at least the rules, can rank it."""
        return self.engine.state.catalog is not None

    @bentoml.api(route="/rank", output_spec=RankResponse)
    async def rank(self, request: RankRequest, /) -> Response:
        """The k best eligible offers for a known visitor or a profile, with reasons.

        The answer is a `RankResponse`, written from the ranker's fields (`Answer.json`)."""
        self._check_instant(request)
        try:
            request = self.widgets.narrowed(redirect(self.engine.state.catalog, request))
        except UnknownOffer as error:
            raise NotFound(str(error)) from error
        except (NoPath, NoPublisher) as error:
            raise InvalidArgument(str(error)) from error
        try:
            answer = await self.batcher.submit(request)
        except NotReady as error:
            raise ServiceUnavailable(str(error)) from error
        if self.rank_log is not None:
            self.rank_log.put(answer.ranking)
        business_metrics().ranked(answer.ranking.strategy, answer.ranking.arm, self.rank_log)
        return Response(answer.json(), media_type="application/json")

    def _check_instant(self, request: RankRequest) -> None:
        """Refuse a request's instant (`at`) unless RECSYS_CLOCK=request, and one before the
        service's own instant (RECSYS_AS_OF, else now): the catalog leaves out the offers
        closed by then, so a list made earlier would miss them.

        Raises:
            InvalidArgument: naming `at`.
        """
        instant = request.instant()
        if instant is None:
            return
        if not self.settings.request_clock:
            raise InvalidArgument(
                f"at: this service makes its lists at its own clock (RECSYS_CLOCK="
                f"{self.settings.clock}); a request may carry its instant only with "
                f"RECSYS_CLOCK={REQUEST_CLOCK}"
            )
        floor = self.engine.state.now()
        if instant < floor:
            raise InvalidArgument(
                f"at: {request.at.isoformat()} precedes the service's instant "
                f"{datetime.fromtimestamp(floor, UTC).isoformat()} (RECSYS_AS_OF, else now), "
                "whose catalog leaves out the offers closed by then"
            )

    @bentoml.api(route="/eligibility")
    def eligibility(self, request: EligibilityRequest, /) -> EligibilityResponse:
        """Which programmes a person may join, each with the reason in plain French."""
        answers = programme_answers(request.age, request.disability)
        return EligibilityResponse(
            age=request.age,
            disability=request.disability,
            programmes=[ProgrammeEligibility(**dataclasses.asdict(a)) for a in answers],
        )

    @bentoml.api(route="/similar")
    async def similar(self, request: SimilarRequest, /) -> SimilarResponse:
        """Open offers like a given one (404 when the offer is not in the live catalog)."""
        try:
            return self.engine.similar(request)
        except NotReady as error:
            raise ServiceUnavailable(str(error)) from error
        except UnknownOffer as error:
            raise NotFound(str(error)) from error

    @bentoml.api(route="/events")
    def events(self, request: EventsRequest, /) -> EventsResponse:
        """Store prints, clicks, applies; idempotent on the event id."""
        if self.store is None:
            raise ServiceUnavailable(f"event store unavailable: {self.store_error}")
        catalog = self.engine.state.catalog
        publishers = None
        if catalog is not None:
            publishers = _Publishers(catalog.row, catalog.arrays.publisher_ids)
        rows = event_rows(request.events, publishers)
        try:
            stored = set(self.store.add_events(rows))
        except SQLAlchemyError as error:
            logger.error("events not stored: %s", error)
            business_metrics().store_error("events")
            raise ServiceUnavailable("event store unavailable, retry later") from error
        salt = self.settings.id_salt or ""
        self.engine.applied.add(  # at once on this worker; the others read the store
            (pseudonym(row.get("userId"), salt), row.get("missionId"))
            for row in rows
            if row["id"] in stored and row.get("type") == "apply" and not row.get("isBot")
        )
        seen: set[str] = set()
        duplicates = []  # already stored before, or repeated within this batch
        for row in rows:
            if row["id"] not in stored or row["id"] in seen:
                duplicates.append(row["id"])
            seen.add(row["id"])
        return EventsResponse(
            received=len(rows),
            stored=len(stored),
            duplicates=len(duplicates),
            duplicate_ids=duplicates,
        )

    def _status(self) -> Status:
        log = self.rank_log
        status = self.engine.status(
            rank_log_pending=log.pending if log else 0, rank_log_dropped=log.dropped if log else 0
        )
        if self.experiment is not None:
            status.experiment = self.experiment.status()
        return status

    @bentoml.api(route="/status")
    def status(self) -> Status:
        """Model version, strategies available, catalog size and version (also GET /status)."""
        return self._status()

    @status_app.get("/status")
    def status_get(self) -> dict[str, Any]:
        return self._status().model_dump(mode="json")

    def _authorize(self, ctx: bentoml.Context) -> None:
        expected = self.settings.admin_token
        given = ctx.request.headers.get(ADMIN_HEADER, "")
        if expected is None or not hmac.compare_digest(given.encode(), expected.encode()):
            raise BentoMLException("admin token refused", error_code=HTTPStatus.FORBIDDEN)

    async def _admin(
        self, action: str, arguments: dict[str, Any], ctx: bentoml.Context
    ) -> AdminResult:
        """An admin call: authorised, carried out off the loop, recorded for the other workers
        when it succeeded, answered 422 when it failed."""
        self._authorize(ctx)
        result = await anyio.to_thread.run_sync(self._carry_out, action, arguments)
        if result.ok:
            await anyio.to_thread.run_sync(self._record, action, arguments)
        else:
            ctx.response.status_code = HTTPStatus.UNPROCESSABLE_ENTITY
        return result

    @bentoml.api(route="/admin/catalog")
    async def admin_catalog(self, update: CatalogUpdate, /, ctx: bentoml.Context) -> AdminResult:
        """Take in new or changed offers without restarting (X-Admin-Token header)."""
        return await self._admin("catalog", {"path": update.path, "mode": update.mode}, ctx)

    @bentoml.api(route="/admin/reload")
    async def admin_reload(self, reload: ModelReload, /, ctx: bentoml.Context) -> AdminResult:
        """Load a model (default: RECSYS_MODEL_URI) and serve it (X-Admin-Token header)."""
        return await self._admin("reload", {"uri": reload.uri}, ctx)

    @bentoml.api(route="/admin/audience")
    async def admin_audience(
        self, request: AudienceRequest, /, ctx: bentoml.Context
    ) -> AudienceResponse:
        """The consenting people most likely to answer an offer or a need (X-Admin-Token);
        every request is audited (`recsys audience log`)."""
        self._authorize(ctx)
        state = self.engine.state
        if state.model is None or state.catalog is None:
            raise ServiceUnavailable("audiences need a loaded model and catalog")
        query = AudienceQuery(
            requester=request.requester,
            channel="http",
            offer_id=request.offer_id,
            need=request.need,
            k=request.k,
            min_count=request.min_count,
        )
        loaded = state.model.loaded
        try:
            request_id, audience = await anyio.to_thread.run_sync(
                functools.partial(
                    self.audiences.draw,
                    query,
                    loaded.bundle,
                    loaded.version,
                    state.catalog.offers,
                    self.engine.profiles.frame,
                    state.now(),
                )
            )
        except UnknownTarget as error:
            raise NotFound(str(error)) from error
        except AuditUnavailable as error:
            raise ServiceUnavailable(str(error)) from error
        except (AudienceTooSmall, ValueError) as error:
            raise BentoMLException(
                str(error), error_code=HTTPStatus.UNPROCESSABLE_ENTITY
            ) from error
        rows = audience.rows
        return AudienceResponse(
            request_id=request_id,
            model_version=loaded.version,
            eligible=audience.eligible,
            people=[
                AudienceRow(
                    person=row.person,
                    score=float(row.score),
                    distance_band=row.distanceBand,
                    reasons=list(row.reasons),
                )
                for row in rows.itertuples(index=False)
            ],
            totals=audience.totals,
        )

    def _read_widgets(self) -> None:
        """Take the widget allow-lists saved in the event store (the file's stay under them)."""
        if self.store is not None:
            self.widgets = self.widgets.with_admin(self.store.read_widgets())

    def _widget_rule(self, rules: WidgetRules, widget: str) -> WidgetRule:
        publishers, source = rules.rule(widget)
        catalog = self.engine.state.catalog
        missing: list[str] = []
        if publishers is not None and catalog is not None:
            present = set(catalog.arrays.publisher_ids.tolist())
            missing = [p for p in publishers if p not in present]
        listed = list(publishers) if publishers is not None else None
        return WidgetRule(
            widget_id=widget, publishers=listed, source=source, not_in_catalog=missing
        )

    @bentoml.api(route="/admin/widgets/set")
    async def admin_widgets_set(self, update: WidgetUpdate, /, ctx: bentoml.Context) -> WidgetRule:
        """Set (or, with `publishers: null`, remove) a widget's publisher allow-list: saved in
        the event store, kept across restarts, applied by every worker (X-Admin-Token)."""
        self._authorize(ctx)
        if self.store is None:
            raise ServiceUnavailable(
                f"event store unavailable, widget lists cannot be saved: {self.store_error}"
            )
        publishers = None if update.publishers is None else list(dict.fromkeys(update.publishers))
        try:
            await anyio.to_thread.run_sync(self.store.set_widget, update.widget_id, publishers)
            await anyio.to_thread.run_sync(self._read_widgets)
        except SQLAlchemyError as error:
            logger.error("widget list not saved: %s", type(error).__name__)
            business_metrics().store_error("widgets")
            raise ServiceUnavailable("event store unavailable, retry later") from error
        await anyio.to_thread.run_sync(
            self._record, WIDGETS_ACTION, {"widget_id": update.widget_id}
        )
        return self._widget_rule(self.widgets, update.widget_id)

    @bentoml.api(route="/admin/widgets/get")
    async def admin_widgets_get(self, query: WidgetQuery, /, ctx: bentoml.Context) -> WidgetList:
        """One widget's publisher allow-list, or every widget's, as saved (X-Admin-Token)."""
        self._authorize(ctx)
        rules = self.widgets
        if self.store is not None:  # what is saved, even if this worker has not read it yet
            try:
                rules = rules.with_admin(await anyio.to_thread.run_sync(self.store.read_widgets))
            except SQLAlchemyError as error:
                logger.error("widget lists not read, this worker's shown: %s", error)
                business_metrics().store_error("widgets")
        names = [query.widget_id] if query.widget_id is not None else sorted(rules.publishers)
        return WidgetList(widgets=[self._widget_rule(rules, name) for name in names])

    @bentoml.api(route="/admin/experiment/stop")
    async def admin_experiment_stop(
        self, stop: ExperimentStop, /, ctx: bentoml.Context
    ) -> AdminResult:
        """Stop the online experiment on every worker, for good (X-Admin-Token header)."""
        name = stop.name or (self.experiment.name if self.experiment is not None else None)
        at = datetime.now(UTC).isoformat()
        return await self._admin(STOP_ACTION, {"name": name, "at": at}, ctx)

    @bentoml.on_shutdown
    def shutdown(self) -> None:
        self.batcher.close()
        self.engine.applied.close()
        if self.admin_sync is not None:
            self.admin_sync.close()
        if self.rank_log is not None:
            self.rank_log.close()
        if self.store is not None:
            self.store.close()


def baked_model() -> str | None:
    """The champion a Bento carries, as a folder: the Bento's build argument `baked_model`
    (bentofile.yaml, written by `recsys bento`), relative to the Bento's code; None when
    serving from source or from a Bento built without a model."""
    relative = getattr(bentoml.use_arguments(), BAKED_MODEL_ARGUMENT, None)
    if not relative:
        return None
    folder = config.PROJECT_ROOT / str(relative)
    return str(folder) if (folder / BUNDLE_FILE).is_file() else None


def _settle_heap() -> None:
    """Collect, then freeze what survives out of the cyclic garbage collector.

    What is alive here is the loaded state (model, catalog, profiles, modules), which lives
    until an admin call replaces it; frozen, the collector no longer walks it on each full
    collection. Objects frozen earlier are unfrozen first, so that a replaced model or catalog
    caught in reference cycles is collected rather than kept forever.
    """
    gc.set_threshold(*GC_THRESHOLDS)
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class AccessLogFilter(logging.Filter):
    """BentoML's access-log lines without the client's IP address, and only for failed
    requests and admin calls unless `every_request` (RECSYS_ACCESS_LOG_ALL).

    The address is personal data (often a minor's), and BentoML takes it from
    X-Forwarded-For when a proxy sets it; the rest of the line (method, path, status,
    latency) stays for operations. A line per successful request cost a seventh of the event
    loop's time under load (formatting and writing it), and /metrics counts and times those
    requests anyway.
    """

    def __init__(self, every_request: bool) -> None:
        super().__init__()
        self.every_request = every_request

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if not isinstance(args, tuple) or not args:
            return True
        if not self.every_request and len(args) >= 3 and _routine(str(args[1]), str(args[2])):
            return False
        record.args = ("-", *args[1:])
        return True


def _routine(request: str, response: str) -> bool:
    """Whether an access-log line is of a successful request other than an admin call
    (`request` is "scheme=..,method=..,path=..", `response` "status=..,..")."""
    status = response.split(",", 1)[0].removeprefix("status=")
    return status.isdigit() and int(status) < 400 and "path=/admin/" not in request


# Outermost first: CORS headers on every answer (errors too), then the error shape and
# X-Request-Id (`serving.web`), the public page (`serving.public_page`), the body limit, the
# audit of malformed audience requests (`serving.audience.AudienceAudit`).
RankingService.add_asgi_middleware(PublicCors, origins=cors_origins())
RankingService.add_asgi_middleware(WebConventions)
RankingService.add_asgi_middleware(PublicPage)
RankingService.add_asgi_middleware(BodyLimit, max_bytes=max_body_bytes())
RankingService.add_asgi_middleware(AudienceAudit, path="/admin/audience")
logging.getLogger("bentoml.access").addFilter(AccessLogFilter(access_log_all()))
logs.configure(default_level="INFO")
# Arrow's default allocator (mimalloc) keeps what the start-up's Parquet reads freed, about
# 70 MB per worker for the demo champion; the system allocator gives it back
# (docs/benchmarks.md, "Memory per worker").
pyarrow.set_memory_pool(pyarrow.system_memory_pool())
# uvicorn's own access log repeats BentoML's with the client's address: kept out.
logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


class _Publishers:
    """`dict.get`-like view: an offer id's publisher in the live catalog."""

    def __init__(self, row: dict[str, int], publisher_ids: Any) -> None:
        self._row = row
        self._publisher_ids = publisher_ids

    def __bool__(self) -> bool:
        return bool(self._row)

    def get(self, offer_id: str) -> str | None:
        index = self._row.get(offer_id)
        return None if index is None else str(self._publisher_ids[index])
