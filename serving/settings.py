"""The ranking service's settings, read from environment variables once at start-up.

Embedded defaults (the champion from the local MLflow store, events in a SQLite file under
`data/`) let `recsys serve` run on a fresh checkout; production switches every location by
environment variable only (a PostgreSQL URL for events, a remote tracking server for models).

Variables (docs/serving.md has the table with their meaning):
RECSYS_MODEL_URI (default models:/engagement-ranker@champion; a registry URI, an MLflow
model folder or a bundle folder), MLFLOW_TRACKING_URI, RECSYS_CATALOG (offers file; default:
the bundle's catalog snapshot), RECSYS_PROFILES (known visitors; default: the feature set's
profiles.parquet), RECSYS_EVENT_STORE_URL (default sqlite:///data/events.db),
RECSYS_EVENT_SCHEMA, RECSYS_EVENT_TABLE_PREFIX, RECSYS_ADMIN_TOKEN (unset: admin refused),
RECSYS_MAX_PER_PROGRAMME and RECSYS_MAX_PER_PUBLISHER (shares of a list one group may fill
when alternatives exist), RECSYS_COLD_START_RULES_WEIGHT, RECSYS_RULES_REMOTE_OVERRIDES (the
list policy's knobs, defaults in `recsys.policy.ListPolicy`), RECSYS_RANK_LOG_FLUSH_SECONDS
(0.5), RECSYS_AS_OF
(an ISO time to rank at instead of now; default now, or the bundle's cutoff when the catalog
is the bundle's snapshot), RECSYS_ID_SALT (secret salt of the visitor-id hashes the event store
keeps; unset: hashed without a secret, with a warning), RECSYS_MAX_BODY_BYTES (1 MiB: larger
request bodies are refused with 413 before they are parsed), RECSYS_WORKERS (1: worker
processes, each with its own state), RECSYS_TRACE_RANK (false: /rank is left out of BentoML's
OpenTelemetry tracing), RECSYS_MAX_BATCH (32: at most this many waiting /rank requests are
ranked together, `serving.batching`), RECSYS_BATCH_THREADS (threads ranking batches, 1 to 64;
unset or 0: `batch_threads`, by catalog size), RECSYS_ACCESS_LOG_ALL (false: the access log
has a line for failed requests and admin calls only), RECSYS_ADMIN_SYNC_SECONDS (1: how often
a worker applies the admin calls other workers recorded, `serving.admin_sync`),
RECSYS_EXPERIMENT (unset: no online experiment; a YAML or JSON file, or inline JSON,
`serving.experiments`), RECSYS_CLOCK (`service`: lists are made at the service's instant, now
or RECSYS_AS_OF, and a /rank request carrying `at` is refused; `request`: a request may carry
its instant `at`, at which its list is made, logged and assigned to an experiment's arm, as a
replay in simulated time needs, `SERVICE_CLOCK` and `REQUEST_CLOCK`).

RECSYS_MAX_BODY_BYTES, RECSYS_WORKERS, RECSYS_TRACE_RANK and RECSYS_ACCESS_LOG_ALL shape the
BentoML service itself, whose decorator BentoML reads when it imports `serving.service`, before
`__init__` runs: `max_body_bytes()`, `workers()`, `trace_rank()` and `access_log_all()` read
them there, and `Settings.from_env` reads them too so that `recsys serve` refuses a
malformed value before it starts the server.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from recsys import config
from recsys.policy import ListPolicy
from serving.experiments import ExperimentConfig, load_experiment

DEFAULT_MODEL_URI = f"models:/{config.REGISTERED_MODEL_NAME}@champion"
DEFAULT_EVENT_STORE_URL = f"sqlite:///{(config.DATA_DIR / 'events.db').as_posix()}"
DEFAULT_MAX_BODY_BYTES = 1 << 20
DEFAULT_WORKERS = 1
MAX_WORKERS = 64
DEFAULT_MAX_BATCH = 32
Number = TypeVar("Number", int, float)
LARGE_CATALOG = 50_000  # offers from which /rank batches run on two threads
SERVICE_CLOCK = "service"  # RECSYS_CLOCK: lists at the service's instant (now or RECSYS_AS_OF)
REQUEST_CLOCK = "request"  # RECSYS_CLOCK: a /rank request may carry its instant (`at`)
CLOCKS = (SERVICE_CLOCK, REQUEST_CLOCK)


def _bounded(
    name: str, default: Number, low: Number, high: Number, parse: Callable[[str], Number], kind: str
) -> Number:
    """The variable parsed by `parse` (float or int) within [low, high], else `default` when
    unset; ValueError naming the variable and the `kind` of value expected."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = parse(raw)
    except ValueError:
        raise ValueError(f"{name}: expected {kind}, got {raw!r}") from None
    if not (low <= value <= high) or math.isnan(value):
        raise ValueError(f"{name}: expected {kind} in [{low}, {high}], got {raw!r}")
    return value


def _float(name: str, default: float, low: float, high: float) -> float:
    return _bounded(name, default, low, high, float, "a number")


def _int(name: str, default: int, low: int, high: int) -> int:
    return _bounded(name, default, low, high, int, "a whole number")


def _flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name}: expected true or false, got {raw!r}")


def _instant(name: str) -> int | None:
    """An ISO timestamp (UTC when no offset) as epoch seconds."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        stamp = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise ValueError(f"{name}: expected an ISO date or time, got {raw!r}") from None
    stamp = stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp
    return int(stamp.timestamp())


def _choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    """One of `choices` (case and surrounding spaces ignored), else `default` when unset."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(choices)}, got {raw!r}")
    return value


def _path(name: str) -> Path | None:
    raw = os.environ.get(name)
    return Path(raw) if raw else None


@dataclass(frozen=True)
class Settings:
    """Everything the service reads from the environment (see the module docstring)."""

    model_uri: str = DEFAULT_MODEL_URI
    tracking_uri: str = config.MLFLOW_TRACKING_URI
    catalog: Path | None = None
    profiles: Path | None = None
    event_store_url: str = DEFAULT_EVENT_STORE_URL
    event_schema: str | None = None
    event_table_prefix: str = ""
    admin_token: str | None = None
    policy: ListPolicy = field(default_factory=ListPolicy)  # caps and cold-start blend
    rank_log_flush_seconds: float = 0.5
    as_of: int | None = None  # epoch seconds to rank at; None: now
    id_salt: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    workers: int = DEFAULT_WORKERS
    trace_rank: bool = False
    access_log_all: bool = False
    admin_sync_seconds: float = 1.0
    max_batch: int = DEFAULT_MAX_BATCH
    batch_threads: int | None = None  # None: `batch_threads(catalog size)`
    experiment: ExperimentConfig | None = None  # RECSYS_EXPERIMENT, `serving.experiments`
    clock: str = SERVICE_CLOCK  # RECSYS_CLOCK: whose instant a list is made at (`CLOCKS`)

    @classmethod
    def from_env(cls, default_model: str | None = None) -> Settings:
        """Read the variables; ValueError naming the variable on a malformed value.

        Each default is the field's (or the list policy's) own, read from the class;
        `default_model` replaces the model's where RECSYS_MODEL_URI is unset (a Bento's baked
        champion, `serving.service.baked_model`).
        """
        policy = ListPolicy(
            max_per_programme=_float(
                "RECSYS_MAX_PER_PROGRAMME", ListPolicy.max_per_programme, 0.01, 1.0
            ),
            max_per_publisher=_float(
                "RECSYS_MAX_PER_PUBLISHER", ListPolicy.max_per_publisher, 0.01, 1.0
            ),
            cold_start_rules_weight=_float(
                "RECSYS_COLD_START_RULES_WEIGHT", ListPolicy.cold_start_rules_weight, 0.0, 1.0
            ),
            rules_remote_overrides=_flag(
                "RECSYS_RULES_REMOTE_OVERRIDES", ListPolicy.rules_remote_overrides
            ),
        )
        return cls(
            model_uri=os.environ.get("RECSYS_MODEL_URI") or default_model or cls.model_uri,
            tracking_uri=os.environ.get("MLFLOW_TRACKING_URI") or cls.tracking_uri,
            catalog=_path("RECSYS_CATALOG"),
            profiles=_path("RECSYS_PROFILES"),
            event_store_url=os.environ.get("RECSYS_EVENT_STORE_URL") or cls.event_store_url,
            event_schema=os.environ.get("RECSYS_EVENT_SCHEMA") or None,
            event_table_prefix=os.environ.get("RECSYS_EVENT_TABLE_PREFIX", cls.event_table_prefix),
            admin_token=os.environ.get("RECSYS_ADMIN_TOKEN") or None,
            policy=policy,
            rank_log_flush_seconds=_float(
                "RECSYS_RANK_LOG_FLUSH_SECONDS", cls.rank_log_flush_seconds, 0.01, 60.0
            ),
            as_of=_instant("RECSYS_AS_OF"),
            id_salt=os.environ.get("RECSYS_ID_SALT") or None,
            max_body_bytes=max_body_bytes(),
            workers=workers(),
            trace_rank=trace_rank(),
            access_log_all=access_log_all(),
            admin_sync_seconds=_float(
                "RECSYS_ADMIN_SYNC_SECONDS", cls.admin_sync_seconds, 0.05, 3600.0
            ),
            max_batch=_int("RECSYS_MAX_BATCH", cls.max_batch, 1, 1024),
            batch_threads=_int("RECSYS_BATCH_THREADS", 0, 0, 64) or None,
            experiment=load_experiment(os.environ.get("RECSYS_EXPERIMENT")),
            clock=_choice("RECSYS_CLOCK", cls.clock, CLOCKS),
        )

    @property
    def request_clock(self) -> bool:
        """Whether a /rank request may carry its own instant (RECSYS_CLOCK=request)."""
        return self.clock == REQUEST_CLOCK


def max_body_bytes() -> int:
    """RECSYS_MAX_BODY_BYTES: read apart from `Settings` because the HTTP middleware that
    enforces it is declared with the service class, before `__init__` reads the settings."""
    return int(_float("RECSYS_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, 1024, 1 << 30))


def cors_origins() -> list[str]:
    """RECSYS_CORS_ORIGINS: origins whose browser pages may call the public endpoints,
    comma-separated, or `*` for any; unset or empty: no cross-origin call (`serving.web`).
    Read apart from `Settings` for the same reason as `max_body_bytes`."""
    value = os.environ.get("RECSYS_CORS_ORIGINS", "")
    return [origin.strip() for origin in value.split(",") if origin.strip()]


def widgets_file() -> str | None:
    """RECSYS_WIDGETS: the per-widget publisher allow-lists (`serving.widgets`), or None."""
    return os.environ.get("RECSYS_WIDGETS") or None


def workers() -> int:
    """RECSYS_WORKERS: how many worker processes serve (1 to 64, default 1).

    One by default, although a second one nearly doubles throughput on 2 idle cores: each
    worker holds its own model and catalog, an admin call reaches only the worker that
    accepted it, and the kernel may hand most keep-alive connections to one worker
    (docs/operations.md, "Load").
    """
    return _int("RECSYS_WORKERS", DEFAULT_WORKERS, 1, MAX_WORKERS)


def access_log_all() -> bool:
    """RECSYS_ACCESS_LOG_ALL: an access-log line for every request, not only for failed
    requests and admin calls (read at import, where the service installs its log filter)."""
    return _flag("RECSYS_ACCESS_LOG_ALL", False)


def trace_rank() -> bool:
    """RECSYS_TRACE_RANK: whether /rank gets an OpenTelemetry span like the other endpoints.

    Off by default: a span costs about 0.3 ms of the ~2 ms a /rank request takes, and BentoML
    keeps each request's span alive for the traffic timeout (120 s), which the garbage
    collector then walks through; nothing exports spans unless a tracing exporter is configured.
    """
    return _flag("RECSYS_TRACE_RANK", False)


def batch_threads(setting: int | None, catalog_size: int) -> int:
    """Threads ranking /rank batches: RECSYS_BATCH_THREADS, else 1, or 2 from LARGE_CATALOG
    offers on (`serving.batching`: numpy dominates a batch there, Python below)."""
    if setting is not None:
        return setting
    return 2 if catalog_size >= LARGE_CATALOG else 1
