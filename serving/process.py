"""Running the service as a separate `bentoml serve` process, for tests and benchmarks.

The real server (supervisor, worker process, HTTP stack) is what a test over HTTP or a
throughput figure must exercise; these helpers start it on a free loopback port, wait until
it answers, and always stop its whole process group.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from recsys import config

SERVICE = "serving.service:RankingService"


def free_port() -> int:
    """A TCP port free on the loopback interface now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_servers(
    configs: list[tuple[dict[str, str], Path]], timeout: float = 240.0
) -> Iterator[list[str]]:
    """`bentoml serve` processes (one per (env, log file)) on free loopback ports, started
    together (each start costs seconds); yields their base URLs once each answers /healthz.

    BentoML runs `__init__` before it serves anything, so an answering server has loaded
    its model and catalog. Every process group is terminated on exit, whatever happened.
    """
    import httpx

    processes: list[subprocess.Popen] = []
    bases: list[str] = []
    try:
        for env, log in configs:
            port = free_port()
            command = [
                sys.executable,
                "-m",
                "bentoml",
                "serve",
                SERVICE,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--working-dir",
                str(config.PROJECT_ROOT),
            ]
            environment = {
                **os.environ,
                "OPENBLAS_NUM_THREADS": "1",
                "BENTOML_DO_NOT_TRACK": "true",
                **env,
            }
            with log.open("w") as output:
                processes.append(
                    subprocess.Popen(
                        command,
                        env=environment,
                        stdout=output,
                        stderr=subprocess.STDOUT,
                        cwd=config.PROJECT_ROOT,
                        start_new_session=True,
                    )
                )
            bases.append(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + timeout
        for process, base, (_, log) in zip(processes, bases, configs, strict=True):
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"server exited ({process.returncode}):\n{log.read_text()}")
                try:
                    if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"server not up after {timeout}s:\n{log.read_text()}")
                time.sleep(0.25)
        yield bases
    finally:
        _terminate(processes)


def _terminate(processes: list[subprocess.Popen]) -> None:
    """SIGTERM every process group, then wait (SIGKILL after 20 s)."""
    running = [p for p in processes if p.poll() is None]
    for process in running:
        os.killpg(process.pid, signal.SIGTERM)
    for process in running:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
