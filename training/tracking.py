"""MLflow plumbing shared by training, promotion, tuning and the run listing.

The embedded default is a SQLite store in `config.HOME` (`recsys.config.MLFLOW_TRACKING_URI`)
with artifacts in a folder next to it; setting `MLFLOW_TRACKING_URI` to a server URL switches
every command to that server, whose `--artifacts-destination` then holds the artifacts.
"""

from __future__ import annotations

import importlib.metadata
import logging
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import mlflow
from mlflow import MlflowClient

from recsys import config

logger = logging.getLogger(__name__)

TRAINING_EXPERIMENT = "engagement-ranker"
TUNING_EXPERIMENT = "engagement-ranker-tuning"
ARTIFACTS_FOLDER = "mlartifacts"
KIND_TAG = "recsys.kind"  # "train" or "tune": `recsys runs` lists training runs only
# What a model's numbers and the pyfunc's loading depend on (the `recsys` core's imports).
LIBRARIES = (
    "numpy",
    "scipy",
    "pandas",
    "pyarrow",
    "scikit-learn",
    "numba",
    "rectools-lightfm",
    "implicit",
    "pydantic",
    "mlflow",
)

_REMOTE_SCHEMES = {"http", "https", "databricks"}
# MLflow keys allow letters, digits, '_', '-', '.', ' ', '/' (and ':' except on Windows).
_BAD_KEY_CHARACTERS = re.compile(r"[^\w.\-/]")


def sqlalchemy_url(url: str) -> str:
    """A database URL SQLAlchemy can open with the installed driver.

    A bare `postgresql://` means psycopg2 to SQLAlchemy; this project ships psycopg 3, so the
    URL is pointed at it (`postgresql+psycopg://`) unless psycopg2 is importable.
    """
    scheme, sep, rest = url.partition("://")
    if sep and scheme in ("postgresql", "postgres"):
        try:
            import psycopg2  # noqa: F401
        except ImportError:
            return f"postgresql+psycopg://{rest}"
        return f"postgresql://{rest}"
    return url


def tracking_uri(uri: str | None = None) -> str:
    """The tracking URI in force: explicit, else the environment, else the embedded SQLite."""
    return sqlalchemy_url(uri or config.MLFLOW_TRACKING_URI)


def configure(uri: str | None = None) -> str:
    """Point the MLflow client (tracking and registry) at `tracking_uri(uri)`; returns it."""
    resolved = tracking_uri(uri)
    mlflow.set_tracking_uri(resolved)
    mlflow.set_registry_uri(resolved)
    return resolved


def artifact_root(uri: str) -> str | None:
    """Where a new experiment keeps its artifacts; None lets a tracking server decide.

    Without this, MLflow writes to `./mlruns` of whatever the working directory happens to
    be. A SQLite store keeps its artifacts next to the database file; another database
    (PostgreSQL used directly, without a server) uses `mlartifacts/` under `config.HOME`.
    """
    parsed = urlparse(uri)
    if parsed.scheme in _REMOTE_SCHEMES:
        return None
    if parsed.scheme == "sqlite":
        database = Path(uri.removeprefix("sqlite:///")).resolve()
        return (database.parent / ARTIFACTS_FOLDER).as_uri()
    if parsed.scheme in ("", "file"):
        return None  # a file store keeps artifacts inside its own folder
    return (config.HOME / ARTIFACTS_FOLDER).as_uri()


def ensure_experiment(name: str) -> str:
    """The id of experiment `name`, created with an explicit artifact location if missing."""
    client = MlflowClient()
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    root = artifact_root(mlflow.get_tracking_uri())
    location = f"{root}/{name}" if root is not None else None
    logger.info("creating MLflow experiment %s (artifacts: %s)", name, location or "server")
    return client.create_experiment(name, artifact_location=location)


def metric_key(name: str) -> str:
    """An evaluation metric name as an MLflow key: `ndcg@10` → `ndcg_at_10`.

    MLflow refuses '@' in keys; '+' (`age:31+`) reads `plus`; any other character it refuses
    (quotes in region names, ':' in segment names, which Windows stores cannot hold) becomes
    '_'.
    """
    return _BAD_KEY_CHARACTERS.sub("_", name.replace("@", "_at_").replace("+", "plus"))


def flatten(values: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Nested mappings as (`a.b.c`, value) pairs, for MLflow params."""
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from flatten(value, f"{name}.")
        else:
            yield name, value


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries a model's numbers depend on."""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions
