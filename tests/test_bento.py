"""The Bento: built by `recsys bento` from a real MLflow registry, served by `bentoml serve <tag>`.

The registry (a SQLite store in the test's folder) holds two versions of a model trained on the
tiny world of `tests.service_fixtures`, logged as training logs them; version 1 is the
champion that the Bento bakes in. The Bento store is the test's own (BENTOML_HOME).
`bentoml containerize` needs a container engine and is skipped where none runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import mlflow
import pytest
import yaml
from mlflow import MlflowClient

from recsys import config
from serving.bento import BuiltBento, build
from serving.process import free_port, terminate, wait_until_up
from tests.service_fixtures import write_bundle
from training import tracking
from training.jobs import pyfunc_files

pytestmark = [pytest.mark.slow, pytest.mark.service]

TOKEN = "bento-admin-token"
NAME = config.REGISTERED_MODEL_NAME


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A tracking store with versions 1 (champion) and 2 of the tiny world's hybrid."""
    folder = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    tracking.configure(uri)
    try:
        experiment = tracking.ensure_experiment(tracking.TRAINING_EXPERIMENT)
        bundle = write_bundle(folder / "bundle", "hybrid")
        for attempt in range(2):
            scratch = folder / f"scratch-{attempt}"
            scratch.mkdir()
            with mlflow.start_run(experiment_id=experiment):
                mlflow.pyfunc.log_model(
                    name="model", registered_model_name=NAME, **pyfunc_files(bundle, scratch)
                )
        MlflowClient().set_registered_model_alias(NAME, "champion", "1")
        yield uri
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])


@pytest.fixture(scope="module")
def built(registry: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[BuiltBento, dict]:
    """The Bento of the registry's champion, in a Bento store of the test's own."""
    home = tmp_path_factory.mktemp("bentoml")
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true"}
    return build(f"models:/{NAME}@champion", registry, env=env), env


def test_the_bento_is_built_from_the_lock_and_serves_its_champion(
    registry: str, built: tuple[BuiltBento, dict], tmp_path: Path
) -> None:
    bento_built, env = built
    assert bento_built.model_version == f"{NAME}/v1"

    # What the Bento carries: the serve lock, Python 3.11, the baked champion.
    bento = Path(env["BENTOML_HOME"]) / "bentos" / Path(*bento_built.tag.split(":"))
    info = yaml.safe_load((bento / "bento.yaml").read_text())
    assert info["args"]["baked_model"] == "build/champion"
    assert info["image"]["python_version"] == "3.11"
    dockerfile = (bento / "env" / "docker" / "Dockerfile").read_text()
    assert "build-essential libgomp1" in dockerfile  # LightFM compiles at install
    packed = (bento / "env" / "python" / "requirements.txt").read_text()
    locked = (config.PROJECT_ROOT / "requirements" / "serve.txt").read_text()
    assert _pins(packed) == _pins(locked)
    assert not {"matplotlib", "optuna", "mlflow"} & set(_pins(packed))
    assert (bento / "src" / "build" / "champion" / "bundle.json").is_file()

    port = free_port()
    log = tmp_path / "bento.log"
    serve = [sys.executable, "-m", "bentoml", "serve", bento_built.tag, "--port", str(port)]
    serve += ["--host", "127.0.0.1"]
    server_env = {
        **env,
        "OPENBLAS_NUM_THREADS": "1",
        "MLFLOW_TRACKING_URI": registry,
        "RECSYS_HOME": str(tmp_path / "home"),
        "RECSYS_ADMIN_TOKEN": TOKEN,
    }
    server_env.pop("RECSYS_MODEL_URI", None)
    with log.open("w") as output:
        process = subprocess.Popen(
            serve,
            env=server_env,
            cwd=tmp_path,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(process, base, log, time.monotonic() + 240)
        with httpx.Client(base_url=base, timeout=30) as client:
            status = client.get("/status").json()
            assert status["model_version"] == f"{NAME}/v1" and status["model_name"] == "hybrid"
            answer = client.post("/rank", json={"user_id": "sport-paris-0", "k": 3})
            assert answer.status_code == 200, answer.text
            ranked = answer.json()
            assert ranked["strategy"] == "personalized" and len(ranked["items"]) == 3
            # The registry stays usable: another version is loaded on demand.
            reload = client.post(
                "/admin/reload",
                json={"uri": f"models:/{NAME}/2"},
                headers={"X-Admin-Token": TOKEN},
            )
            assert reload.status_code == 200 and reload.json()["ok"], reload.text
            assert client.get("/status").json()["model_version"] == f"{NAME}/v2"
    finally:
        terminate([process])
    assert (tmp_path / "home" / "data" / "events.db").is_file()  # under RECSYS_HOME


def test_containerize_where_a_container_engine_runs(built: tuple[BuiltBento, dict]) -> None:
    engine = shutil.which("docker") or shutil.which("podman")
    if engine is None:
        pytest.skip("no container engine (docker or podman) on this machine")
    if subprocess.run([engine, "info"], capture_output=True, check=False).returncode != 0:
        pytest.skip(f"{engine} is installed but its daemon does not answer")
    bento_built, env = built
    backend = ["--backend", Path(engine).name]
    command = [sys.executable, "-m", "bentoml", "containerize", bento_built.tag, *backend]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    image = bento_built.tag
    assert subprocess.run([engine, "image", "inspect", image], check=False).returncode == 0


def _pins(text: str) -> dict[str, str]:
    """name → version of a requirements file's `name==version` lines."""
    pins = {}
    for line in text.splitlines():
        requirement = line.split("#", 1)[0].split(";", 1)[0].strip()
        if "==" in requirement:
            name, version = requirement.split("==", 1)
            pins[name.strip().lower()] = version.strip()
    return pins


def test_a_worker_reads_the_registry_through_a_child_process(registry: str) -> None:
    """The MLflow client never enters the serving process (docs/benchmarks.md, "Memory per
    worker"), whose Arrow allocator gives freed memory back; a missing model names itself."""
    script = (
        "import sys, pyarrow\n"
        "import serving.service\n"
        "from serving.loading import ModelLoadError, load_model\n"
        f"loaded = load_model('models:/{NAME}@champion', sys.argv[1])\n"
        "try:\n"
        f"    load_model('models:/{NAME}@nowhere', sys.argv[1])\n"
        "except ModelLoadError as error:\n"
        "    missing = str(error)\n"
        "pool = pyarrow.default_memory_pool().backend_name\n"
        "print(loaded.version, 'mlflow' in sys.modules, pool)\n"
        "print(missing)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, registry],
        capture_output=True,
        text=True,
        check=True,
        cwd=config.PROJECT_ROOT,
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1"},
    )
    first, missing = done.stdout.strip().splitlines()[-2:]
    assert first == f"{NAME}/v1 False system"
    assert missing.startswith(f"model models:/{NAME}@nowhere: ") and "nowhere" in missing[30:]
