"""`recsys serve` stops every process it started when it is asked to stop.

A supervisor (systemd, a container runtime, `make run` under a job control) sends SIGTERM to
the command it started, a terminal sends SIGINT; the BentoML server and its workers (which
live in sessions of their own) must not survive the command.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path

import psutil
import pytest

from recsys import config
from serving.process import free_port, wait_until_up
from tests.service_fixtures import catalog_offers

pytestmark = pytest.mark.service


def _start(tmp_path: Path, log: Path) -> tuple[subprocess.Popen, str]:
    catalog = tmp_path / "offers.parquet"
    catalog_offers().to_parquet(catalog)
    port = free_port()
    env = {
        **os.environ,
        "OPENBLAS_NUM_THREADS": "1",
        "BENTOML_DO_NOT_TRACK": "true",
        "RECSYS_MODEL_URI": str(tmp_path / "no-such-model"),  # rules only: a quick start
        "RECSYS_CATALOG": str(catalog),
        "RECSYS_EVENT_STORE_URL": f"sqlite:///{tmp_path / 'events.db'}",
        "RECSYS_WORKERS": "2",
    }
    command = [str(Path(sys.executable).parent / "recsys"), "serve", "--port", str(port)]
    with log.open("w") as output:
        process = subprocess.Popen(
            command, env=env, cwd=config.PROJECT_ROOT, stdout=output, stderr=subprocess.STDOUT
        )
    return process, f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_to_recsys_serve_stops_every_server_process(
    tmp_path: Path, signum: signal.Signals
) -> None:
    log = tmp_path / "serve.log"
    process, base = _start(tmp_path, log)
    below: list[psutil.Process] = []
    try:
        wait_until_up(process, base, log, time.monotonic() + 240)
        below = psutil.Process(process.pid).children(recursive=True)
        assert len(below) >= 2, "expected the server and its workers below recsys serve"
        process.send_signal(signum)  # to `recsys serve` alone, as a supervisor does
        assert process.wait(timeout=60) == 0, log.read_text()
        _, alive = psutil.wait_procs(below, timeout=30)
        assert not alive, f"still running after recsys serve exited: {alive}\n{log.read_text()}"
    finally:  # whatever failed, leave nothing running
        if process.poll() is None:
            process.kill()
        for leftover in below:
            with suppress(psutil.NoSuchProcess):
                leftover.kill()
