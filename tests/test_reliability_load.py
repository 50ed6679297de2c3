"""The short form of benchmarks/load_test.py: 500 mixed /rank requests at 32 clients against a
real server on the tiny world, with no error (timing is the benchmark's business); the load
generator's own accounting, against a stub server that misbehaves on purpose; and the
settings that shape the server under load."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

import httpx
import numpy as np
import pytest

from benchmarks.load_test import drive, rank_bodies, worker_count
from serving.process import running_servers
from serving.settings import Settings
from tests.service_fixtures import CITIES, catalog_offers, training_profiles, write_world


@pytest.mark.service
def test_500_mixed_requests_at_32_clients_without_error(tmp_path: Path) -> None:
    world = write_world(tmp_path)
    env = {
        "RECSYS_MODEL_URI": str(world["bundle"]),
        "RECSYS_CATALOG": str(world["catalog"]),
        "RECSYS_PROFILES": str(world["profiles"]),
        "RECSYS_EVENT_STORE_URL": f"sqlite:///{tmp_path / 'events.db'}",
    }
    bodies = rank_bodies(
        500,
        np.random.default_rng(0),
        training_profiles()["userId"].tolist(),
        [place for place, *_ in CITIES.values()],
        catalog_offers()["id"].tolist(),
    )
    assert {frozenset(body) for body in bodies} >= {
        frozenset({"user_id", "k"}),
        frozenset({"profile", "k"}),
        frozenset({"profile", "k", "filters", "exclude_offer_ids"}),
    }
    with running_servers([(env, tmp_path / "server.log")]) as (base,):
        result = asyncio.run(drive(base, bodies, 32))
        status = httpx.get(f"{base}/status", timeout=30).json()
    assert result.requests == 500 and sum(result.kinds.values()) == 500
    assert result.errors == 0, dict(result.kinds)
    assert status["rank_log_dropped"] == 0


async def _stub_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers each POST as its body's `mode` says: a good list (sized or chunked, or sized
    and then closing the connection), a list too long or without request id, a 503, or no
    answer at all (the connection is dropped)."""
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            break
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        body = json.loads(await reader.readexactly(length))
        mode, k = body["mode"], body["k"]
        items = [{"offer_id": str(i)} for i in range(k + (mode == "too_many"))]
        answer = json.dumps({"items": items, "request_id": "" if mode == "no_id" else "r1"})
        content = answer.encode()
        if mode == "drop":
            writer.transport.abort()
            return
        status = b"503 Service Unavailable" if mode == "busy" else b"200 OK"
        if mode == "chunked":
            framing = b"Transfer-Encoding: chunked\r\n"
            content = b"%x\r\n%s\r\n0\r\n\r\n" % (len(content), content)
        else:
            framing = b"Content-Length: %d\r\n" % len(content)
        if mode == "close":
            framing += b"Connection: close\r\n"
        writer.write(b"HTTP/1.1 " + status + b"\r\n" + framing + b"\r\n" + content)
        await writer.drain()
        if mode == "close":
            writer.close()
            return
    writer.close()


def test_load_generator_counts_every_failure_and_carries_on() -> None:
    """Each answer that is not a well-formed list is one error of its kind, nothing is
    retried, and a client whose connection was closed or dropped opens a new one."""
    modes = ["ok", "chunked", "close", "ok", "too_many", "no_id", "busy", "drop", "ok"]

    async def run() -> object:
        server = await asyncio.start_server(_stub_server, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            bodies = [{"mode": mode, "k": 3} for mode in modes]
            return await drive(f"http://127.0.0.1:{port}", bodies, 1)

    result = asyncio.run(run())
    kinds = dict(result.kinds)
    dropped = {kind for kind in kinds if kind not in {"200", "malformed", "503"}}
    assert result.requests == len(modes) and sum(kinds.values()) == len(modes)
    assert kinds["200"] == 5 and kinds["malformed"] == 2 and kinds["503"] == 1
    assert len(dropped) == 1 and kinds[dropped.pop()] == 1  # the dropped connection
    assert result.errors == 4


def test_worker_count_and_rank_tracing_are_read_and_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RECSYS_WORKERS", raising=False)
    monkeypatch.delenv("RECSYS_TRACE_RANK", raising=False)
    defaults = Settings.from_env()
    assert defaults.workers == 1 and defaults.trace_rank is False
    monkeypatch.setenv("RECSYS_WORKERS", "0")
    with pytest.raises(ValueError, match=r"RECSYS_WORKERS: expected a whole number in \[1, 64\]"):
        Settings.from_env()
    monkeypatch.setenv("RECSYS_WORKERS", "two")
    with pytest.raises(ValueError, match="RECSYS_WORKERS: expected a whole number, got 'two'"):
        Settings.from_env()
    monkeypatch.setenv("RECSYS_WORKERS", "2")
    monkeypatch.setenv("RECSYS_TRACE_RANK", "yes")
    loaded = Settings.from_env()
    assert loaded.workers == 2 and loaded.trace_rank is True


def test_the_clock_setting_is_read_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECSYS_CLOCK", raising=False)
    assert Settings.from_env().clock == "service" and not Settings.from_env().request_clock
    monkeypatch.setenv("RECSYS_CLOCK", " Request ")
    assert Settings.from_env().request_clock
    monkeypatch.setenv("RECSYS_CLOCK", "simulated")
    with pytest.raises(
        ValueError, match="RECSYS_CLOCK: expected one of service, request, got 'simulated'"
    ):
        Settings.from_env()


def test_the_load_script_refuses_a_worker_count_out_of_bounds() -> None:
    """`--workers` is checked before a server is started, with the bound in the message."""
    assert worker_count("2") == 2
    for raw in ("0", "65", "two", "-1", ""):
        with pytest.raises(argparse.ArgumentTypeError, match=r"whole number in \[1, 64\]"):
            worker_count(raw)
