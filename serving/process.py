"""Running the service as a separate `bentoml serve` process.

The real server (supervisor, worker process, HTTP stack) is what a test over HTTP or a
throughput figure must exercise; these helpers start it on a free loopback port, wait until
it answers, and always stop its whole process group. `run_in_foreground` is what `recsys
serve` runs: the server as a child that follows the signals the command receives.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING

from recsys import config

if TYPE_CHECKING:
    import psutil

SERVICE = "serving.service:RankingService"


def serve_command(host: str, port: int) -> list[str]:
    """`bentoml serve` of the ranking service on host:port, from the project root."""
    return [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        SERVICE,
        "--host",
        host,
        "--port",
        str(port),
        "--working-dir",
        str(config.PROJECT_ROOT),
    ]


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_GRACE_SECONDS = 20.0
LOG_TAIL_LINES = 60  # `running_servers`: printed of each server's log when the caller fails


def run_in_foreground(command: list[str], env: dict[str, str], cwd: Path) -> int:
    """Run the server until it exits or this process is asked to stop; its exit code.

    A supervisor stops a service with SIGTERM, a terminal with SIGINT, both to this process
    alone. The server runs in a session of its own (a terminal's Ctrl-C reaches it once,
    through here) and each stop signal is handed to it; BentoML's supervisor then stops its
    workers. Its workers live in sessions of their own too: those still alive once the
    supervisor is gone (or past the grace period) are terminated, so no process outlives the
    command.
    """
    import psutil

    server = subprocess.Popen(command, env=env, cwd=cwd, start_new_session=True)
    descendants: dict[int, psutil.Process] = {}

    def stop(signum: int, _frame: object) -> None:
        with suppress(psutil.NoSuchProcess):
            for child in psutil.Process(server.pid).children(recursive=True):
                descendants[child.pid] = child
        with suppress(ProcessLookupError):
            server.send_signal(signum)

    previous = {signum: signal.signal(signum, stop) for signum in _STOP_SIGNALS}
    try:
        while True:
            try:
                code = server.wait()
                break
            except KeyboardInterrupt:  # a signal raced the handler's installation
                stop(signal.SIGINT, None)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if server.poll() is None:
            stop(signal.SIGTERM, None)
            try:
                server.wait(timeout=_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        _end(list(descendants.values()))
    return 0 if code in (-signal.SIGTERM, -signal.SIGINT) else code


def _end(processes: list[psutil.Process]) -> None:
    """Terminate the processes still alive, then kill those that outlive the grace period."""
    import psutil

    alive = [p for p in processes if p.is_running()]
    for process in alive:
        with suppress(psutil.NoSuchProcess):
            process.terminate()
    _, survivors = psutil.wait_procs(alive, timeout=_GRACE_SECONDS)
    for process in survivors:
        with suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(survivors, timeout=5)


def free_port() -> int:
    """A TCP port free on the loopback interface now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    env: dict[str, str], log: Path, port: int | None = None
) -> tuple[subprocess.Popen, str]:
    """Start one `bentoml serve` process in a session of its own; returns it and its base URL.

    `terminate` stops it cleanly, `kill` at once (a crash, for fault tests).

    `port` defaults to a free one; give the old port to restart a server in its place.
    """
    port = free_port() if port is None else port
    command = serve_command("127.0.0.1", port)
    environment = {
        "RECSYS_HOME": str(config.HOME),
        **os.environ,
        "OPENBLAS_NUM_THREADS": "1",
        "BENTOML_DO_NOT_TRACK": "true",
        # A BentoML home per server: its Prometheus multiprocess files (what /metrics sums)
        # are then this server's alone, whatever else runs on the machine.
        "BENTOML_HOME": str(log.parent / f"bentoml-home-{port}"),
        **env,
    }
    with log.open("a") as output:
        process = subprocess.Popen(
            command,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=config.PROJECT_ROOT,
            start_new_session=True,
        )
    return process, f"http://127.0.0.1:{port}"


def wait_until_up(process: subprocess.Popen, base: str, log: Path, deadline: float) -> None:
    """Return once `base` answers /healthz; raise if the process exits or time runs out."""
    import httpx

    while True:
        if process.poll() is not None:
            raise RuntimeError(f"server exited ({process.returncode}):\n{log.read_text()}")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"server not up at {base}:\n{log.read_text()}")
        time.sleep(0.25)


@contextmanager
def running_servers(
    configs: list[tuple[dict[str, str], Path]], timeout: float = 240.0
) -> Iterator[list[str]]:
    """`bentoml serve` processes (one per (env, log file)) on free loopback ports, started
    together (each start costs seconds); yields their base URLs once each answers /healthz.

    BentoML runs `__init__` before it serves anything, so an answering server has loaded
    its model and catalog. Every process group is terminated on exit, whatever happened;
    when the caller fails, the last lines of each log are printed to stderr first.
    """
    processes: list[subprocess.Popen] = []
    bases: list[str] = []
    try:
        for env, log in configs:
            log.write_text("")
            process, base = start_server(env, log)
            processes.append(process)
            bases.append(base)
        deadline = time.monotonic() + timeout
        for process, base, (_, log) in zip(processes, bases, configs, strict=True):
            wait_until_up(process, base, log, deadline)
        yield bases
    except Exception:
        for _, log in configs:  # what the servers said, beside the failure that stopped them
            if not log.is_file():
                continue
            lines = log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
            print(f"--- last lines of {log} ---", *lines, sep="\n", file=sys.stderr)
        raise
    finally:
        terminate(processes)


def terminate(processes: list[subprocess.Popen]) -> None:
    """SIGTERM every process group, then wait (`kill` after 20 s)."""
    running = [p for p in processes if p.poll() is None]
    for process in running:
        os.killpg(process.pid, signal.SIGTERM)
    for process in running:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            kill(process)


def kill(process: subprocess.Popen) -> None:
    """SIGKILL a server at once: its supervisor and every process below it.

    BentoML's supervisor starts its workers in sessions of their own, so killing the
    supervisor's process group would leave a worker serving on the inherited socket; the
    descendants are listed (psutil, a BentoML dependency) before anything is killed.
    """
    import psutil

    below: list[psutil.Process] = []
    with suppress(psutil.NoSuchProcess):
        below = psutil.Process(process.pid).children(recursive=True)
    process.kill()
    for victim in below:
        with suppress(psutil.NoSuchProcess):
            victim.kill()
    process.wait(timeout=10)
    psutil.wait_procs(below, timeout=10)
