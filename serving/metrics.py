"""The service's business metrics on /metrics (Prometheus), beside BentoML's request metrics.

    recsys_model_info{model_version, model_name}   1 for what is served (0 once replaced)
    recsys_lists_total{strategy, arm}              /rank lists answered, by strategy and experiment
                                                   arm (`none` outside an experiment)
    recsys_rank_log_pending                        ranked lists waiting to be written
    recsys_rank_log_dropped_total                  ranked lists dropped (queue full)
    recsys_event_store_errors_total{operation}     event-store failures (open, events, admin_sync)
    recsys_catalog_offers                          offers in the live catalog
    recsys_catalog_loaded_timestamp_seconds        when the live catalog was loaded
    rank_batch_size                                /rank requests ranked together

Metrics are `prometheus_client` objects (BentoML 1.4 deprecates `bentoml.metrics`, a lazy
alias of the same library). They are made in the worker process on first use: BentoML points
prometheus_client at its multiprocess directory there, after importing the service module, so
/metrics adds up every worker. Gauges of state take the largest value among live workers
(`livemax`), the pending count their sum (`livesum`). `docs/operations.md` has alert rules.
"""

from __future__ import annotations

import functools

from serving.events import RankLog
from serving.schemas import Status

EVENT_STORE_OPERATIONS = ("open", "events", "admin_sync", "widgets")
NO_ARM = "none"  # the arm label of a list served outside an experiment


class BusinessMetrics:
    """The metrics of one worker, updated by the service as it serves."""

    def __init__(self) -> None:
        import prometheus_client as prometheus

        self.model_info = prometheus.Gauge(
            "recsys_model_info",
            "The model served (1), by version and name",
            ["model_version", "model_name"],
            multiprocess_mode="livemax",
        )
        self.lists = prometheus.Counter(
            "recsys_lists",
            "/rank lists answered, by strategy and experiment arm",
            ["strategy", "arm"],
        )
        self.rank_log_pending = prometheus.Gauge(
            "recsys_rank_log_pending",
            "Ranked lists waiting to be written to the event store",
            multiprocess_mode="livesum",
        )
        self.rank_log_dropped = prometheus.Counter(
            "recsys_rank_log_dropped", "Ranked lists dropped unwritten (queue full)"
        )
        self.event_store_errors = prometheus.Counter(
            "recsys_event_store_errors", "Event-store failures, by operation", ["operation"]
        )
        self.catalog_offers = prometheus.Gauge(
            "recsys_catalog_offers", "Offers in the live catalog", multiprocess_mode="livemax"
        )
        self.catalog_loaded = prometheus.Gauge(
            "recsys_catalog_loaded_timestamp_seconds",
            "When the live catalog was loaded (Unix time)",
            multiprocess_mode="livemax",
        )
        self.batch_sizes = prometheus.Histogram(
            "rank_batch_size",
            "/rank requests ranked together (serving.batching)",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
        )
        for operation in EVENT_STORE_OPERATIONS:  # a zero is shown before the first error
            self.event_store_errors.labels(operation=operation)
        self._model: tuple[str, str] | None = None
        self._dropped = 0

    def serving(self, status: Status) -> None:
        """The loaded state (after start-up and each admin call): model and catalog."""
        model = (status.model_version, status.model_name or "rules")
        if model != self._model:
            if self._model is not None:
                self.model_info.labels(*self._model).set(0)
            self.model_info.labels(*model).set(1)
            self._model = model
        self.catalog_offers.set(status.catalog_size)
        if status.catalog_loaded_at is not None:
            self.catalog_loaded.set(status.catalog_loaded_at.timestamp())

    def ranked(self, strategy: str, arm: str | None, log: RankLog | None) -> None:
        """A /rank answer: its strategy and arm, and where the rank log stands."""
        self.lists.labels(strategy=strategy, arm=arm or NO_ARM).inc()
        if log is None:
            return
        self.rank_log_pending.set(log.pending)
        dropped = log.dropped
        if dropped > self._dropped:
            self.rank_log_dropped.inc(dropped - self._dropped)
            self._dropped = dropped

    def store_error(self, operation: str) -> None:
        """An event-store failure (`EVENT_STORE_OPERATIONS`)."""
        self.event_store_errors.labels(operation=operation).inc()


@functools.cache
def business_metrics() -> BusinessMetrics:
    """This worker's `BusinessMetrics`, made on first use (see the module docstring)."""
    return BusinessMetrics()
