"""Fixtures of the training tests: a tiny simulated dataset, its feature set, MLflow stores.

Test modules load this file with `pytest_plugins = ["tests.training_fixtures"]`. The dataset
and feature set are built once per session under pytest's base temp folder (and reused if
already there); each test gets a fresh MLflow SQLite store copied from a migrated template,
since creating MLflow's tables takes seconds.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import mlflow
import psycopg
import pytest
import yaml

from recsys import config
from training import tracking

TINY_SEED = 7
POSTGRES = "postgresql://postgres@127.0.0.1:5432"


def _shared_folder(factory: pytest.TempPathFactory, name: str) -> Path:
    return factory.getbasetemp() / name


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The simulator's `tiny` preset (600 people, 300 offers), canonical tables + truth."""
    from recsys.simulation import get_preset, read_manifest, simulate

    out = _shared_folder(tmp_path_factory, "tiny-data")
    if read_manifest(out) is None:
        simulate(get_preset("tiny"), TINY_SEED, out)
    return out


@pytest.fixture(scope="session")
def tiny_features(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The feature set (test and validation windows) of the tiny dataset."""
    from features.build import build_feature_set

    out = _shared_folder(tmp_path_factory, "tiny-features")
    return build_feature_set(tiny_dataset, out, reuse=True)


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, fully migrated MLflow SQLite database to copy."""
    database = _shared_folder(tmp_path_factory, "mlflow-template") / "mlflow.db"
    if not database.is_file():
        database.parent.mkdir(parents=True, exist_ok=True)
        mlflow.MlflowClient(f"sqlite:///{database}").search_experiments()
    return database


@pytest.fixture
def mlflow_store(
    mlflow_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A fresh SQLite tracking store in `tmp_path`, made the project's default for the test."""
    database = tmp_path / "mlflow.db"
    shutil.copyfile(mlflow_template, database)
    uri = f"sqlite:///{database}"
    yield from _use_tracking_uri(uri, monkeypatch)


def _use_tracking_uri(uri: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setattr(config, "MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    tracking.configure(uri)
    yield uri
    while mlflow.active_run() is not None:
        mlflow.end_run()


@pytest.fixture
def make_experiment(tmp_path: Path) -> Callable[..., Path]:
    """Write an experiment file into `tmp_path`: `make_experiment(features, **values)`."""
    return lambda features, **values: write_experiment(tmp_path, features, **values)


def write_experiment(folder: Path, features: Path, **values: Any) -> Path:
    """An experiment file for the tiny feature set: LightFM, a few epochs, two baselines."""
    document: dict[str, Any] = {
        "name": "lightfm-tiny",
        "model": "lightfm",
        "params": {"embedding_size": 8, "epochs": 5},
        "features": {"data": str(features.parent / "absent-data"), "out": str(features)},
        "evaluation": {"ks": [5, 10, 20], "baselines": ["popularity", "incumbent"]},
        "promotion": {"margin": 0.0, "must_beat": ["incumbent"]},
    }
    document.update(values)
    path = folder / f"{document['name']}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), "utf-8")
    return path


def postgres_available() -> bool:
    """Whether the PostgreSQL server of the `postgres` tests answers."""
    try:
        with psycopg.connect(f"{POSTGRES}/postgres", connect_timeout=3):
            return True
    except psycopg.Error:
        return False


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database (URL), dropped after the test.

    Skips only when no server answers; CI has one, so there the test always runs.
    """
    if not postgres_available():
        pytest.skip(f"no PostgreSQL server at {POSTGRES}")
    name = f"recsys_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{POSTGRES}/{name}"
    finally:
        with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def mlflow_server(
    postgres_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A real `mlflow server` on loopback: PostgreSQL backend, served artifacts in tmp_path."""
    port = _free_port()
    log = (tmp_path / "mlflow-server.log").open("w")
    command = [
        str(Path(sys.executable).with_name("mlflow")),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        tracking.sqlalchemy_url(postgres_database),
        "--artifacts-destination",
        str(tmp_path / "served-artifacts"),
        "--serve-artifacts",
    ]
    # Own process group: the server forks uvicorn workers, all stopped together below.
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(url, server, tmp_path / "mlflow-server.log")
        yield from _use_tracking_uri(url, monkeypatch)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()


def _wait_for(url: str, server: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"mlflow server exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"mlflow server not up after {timeout} s: {log.read_text()[-2000:]}")
