"""Serving latency and throughput, against the floors they are judged by.

1. In process: the latency of `Engine.rank` (eligibility, scoring, re-ranking, reasons) for
   catalogs of 1k, 10k and 100k offers, next to the raw numpy floor over the same arrays (one
   product of the item embeddings with a user vector, plus `argpartition` for the top 10).
2. Over HTTP: a real `bentoml serve` on loopback, a bounded load generator (a fixed number of
   requests, the asyncio client of load_test.py) at 1, 8 and 32 concurrent clients, /rank next
   to the service's trivial endpoint (POST /status) on the same server, for 10k and 100k offers.
   The two endpoints take turns in `--rounds` segments each and every segment counts (requests
   over seconds, percentiles of all answers): the machine's speed moves by half from one
   minute to the next, and a ratio of two loads run minutes apart measured that as much as
   the service. The server's CPU per request (its processes' CPU time over the requests
   sent) is printed beside: on a shared machine it moves far less than the rates do.

Targets (2 cores): in-process p99 ≤ 5 ms at 100k offers and within 3× the numpy floor; over
HTTP at 10k offers ≥ 0.7× the trivial endpoint's throughput at 8 and 32 clients, at 100k and
32 clients ≥ 0.5×. The machine may be shared: run it alone for figures that mean something.

    python benchmarks/serving_bench.py [--sizes 1000 10000 100000] [--model hybrid]
        [--requests 300] [--http-requests 400] [--rounds 4] [--no-http]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import psutil
from bench_fixtures import LAT, LON, TRAIN_USERS, synthetic_offers, write_bundle
from load_test import LoadResult, drive, tree_cpu_seconds  # the generator next door (on sys.path)

from recsys import taxonomy
from recsys.schema import Profile, Quiz
from serving.engine import Engine
from serving.process import running_servers
from serving.schemas import RankRequest
from serving.settings import Settings


def requests(n: int, rng: np.random.Generator) -> list[RankRequest]:
    """Half known visitors (stored profile), half anonymous quiz profiles."""
    out = []
    for i in range(n):
        if i % 2 == 0:
            out.append(RankRequest(user_id=f"u{rng.integers(TRAIN_USERS)}", k=10))
        else:
            profile = Profile(
                age=int(rng.integers(16, 30)),
                lat=float(rng.uniform(*LAT)),
                lon=float(rng.uniform(*LON)),
                radius_km=30.0,
                quiz=Quiz(domains=[str(rng.choice(taxonomy.QUIZ_DOMAINS))]),
            )
            out.append(RankRequest(profile=profile, k=10))
    return out


def percentiles(seconds: list[float]) -> tuple[float, float]:
    values = np.asarray(seconds) * 1000.0
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


def _timed(call: Callable[[], object], n: int) -> dict[str, tuple[float, float]]:
    """p50 and p99 (ms) of wall-clock and of this thread's CPU time over n calls.

    CPU time is what a request costs when the machine is shared: waiting for a core is
    counted in wall-clock time only.
    """
    wall, cpu = [], []
    for _ in range(n):
        started, started_cpu = time.perf_counter(), time.thread_time()
        call()
        cpu.append(time.thread_time() - started_cpu)
        wall.append(time.perf_counter() - started)
    return {"wall": percentiles(wall), "cpu": percentiles(cpu)}


def in_process(engine: Engine, batch: list[RankRequest]) -> dict[str, tuple[float, float]]:
    for request in batch[:20]:  # warm the mask cache and the allocator
        engine.rank(request).json()
    pending = iter(batch)
    return _timed(lambda: engine.rank(next(pending)).json(), len(batch))


def numpy_floor(
    engine: Engine, n_requests: int, rng: np.random.Generator
) -> dict[str, tuple[float, float]]:
    """One product of the catalog's item embeddings with a user vector, then argpartition."""
    slot = engine.state.model
    assert slot is not None and slot.prepared is not None and engine.state.catalog is not None
    prepared = slot.prepared.offers
    embeddings, biases = prepared.find("item_embedding"), prepared.find("item_bias")
    if embeddings is None or biases is None:
        raise SystemExit(
            f"the floor needs item embeddings; {slot.loaded.bundle.model_name} has none"
        )
    # In the embeddings' own dtype: a vector of another would convert the whole matrix.
    vectors = iter(rng.normal(size=(n_requests, embeddings.shape[1])).astype(embeddings.dtype))

    def floor() -> None:
        scores = embeddings @ next(vectors) + biases
        np.argpartition(-scores, 10)[:10]

    return _timed(floor, n_requests)


def load(base: str, path: str, bodies: list[dict], concurrency: int) -> tuple[LoadResult, float]:
    """Send every body once with `concurrency` clients; the load, and the CPU seconds the
    server's processes (this process's children) spent meanwhile.

    The generator of `load_test.py`: one connection per client and a client light enough
    (about 0.15 ms of CPU per request) not to take the 2 cores from the server it measures.
    """
    before = server_cpu_seconds()
    result = asyncio.run(drive(base, bodies, concurrency, path))
    return result, server_cpu_seconds() - before


def server_cpu_seconds() -> float:
    """CPU seconds of the processes this one started and theirs: the server's supervisor and
    workers (the generator runs here, so it is left out)."""
    return sum(tree_cpu_seconds(child.pid) for child in psutil.Process().children())


def pooled(parts: list[tuple[LoadResult, float]]) -> tuple[float, float, float, int, float]:
    """(requests/s, p50 ms, p99 ms, errors, server CPU ms per request) of several loads
    taken as one."""
    milliseconds = np.concatenate([part.milliseconds for part, _ in parts])
    requests = sum(part.requests for part, _ in parts)
    return (
        requests / sum(part.seconds for part, _ in parts),
        float(np.percentile(milliseconds, 50)),
        float(np.percentile(milliseconds, 99)),
        sum(part.errors for part, _ in parts),
        1000.0 * sum(cpu for _, cpu in parts) / requests,
    )


def alternated(
    base: str, bodies: list[dict], concurrency: int, rounds: int
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """/rank over `bodies` and the trivial endpoint as often, in `rounds` alternating
    segments, each pooled: both endpoints see the same minutes of the machine."""
    rank, trivial = [], []
    for segment in np.array_split(np.arange(len(bodies)), rounds):
        rank.append(load(base, "/rank", [bodies[i] for i in segment], concurrency))
        trivial.append(load(base, "/status", [{}] * len(segment), concurrency))
    return pooled(rank), pooled(trivial)


def http_bench(
    paths: dict[str, Path], catalog: Path, n_requests: int, rounds: int, rng: np.random.Generator
):
    env = {
        "RECSYS_MODEL_URI": str(paths["bundle"]),
        "RECSYS_CATALOG": str(catalog),
        "RECSYS_PROFILES": str(paths["profiles"]),
        "RECSYS_EVENT_STORE_URL": f"sqlite:///{catalog.parent / 'events.db'}",
    }
    bodies = [r.model_dump(mode="json", exclude_none=True) for r in requests(n_requests, rng)]
    rows = []
    log = catalog.parent / f"server-{catalog.stem}.log"
    with running_servers([(env, log)]) as (base,):
        load(base, "/rank", bodies[:50], 4)  # warm-up
        for concurrency in (1, 8, 32):
            rows.append((concurrency, *alternated(base, bodies, concurrency, rounds)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--model", default="hybrid", choices=["hybrid", "lightfm"])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--http-requests", type=int, default=400)
    parser.add_argument("--http-sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--rounds", type=int, default=4, help="alternating segments per load")
    parser.add_argument("--no-http", action="store_true")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds: expected at least 1, got {args.rounds}")
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="serving-bench-") as scratch:
        folder = Path(scratch)
        started = time.perf_counter()
        paths = {
            "bundle": write_bundle(folder, args.model, rng),
            "profiles": folder / "profiles.parquet",
        }
        print(f"trained a {args.model} bundle in {time.perf_counter() - started:.1f} s")
        catalogs = {}
        for n in sorted(set(args.sizes) | (set() if args.no_http else set(args.http_sizes))):
            catalogs[n] = folder / f"offers-{n}.parquet"
            synthetic_offers(n, np.random.default_rng(n)).to_parquet(catalogs[n], index=False)

        print("\nin process: Engine.rank vs numpy floor (ms; k = 10; cpu = thread CPU time)")
        print(
            f"{'offers':>8} {'clock':>5} {'rank p50':>9} {'rank p99':>9} {'floor p50':>10} "
            f"{'floor p99':>10} {'p50 ratio':>9} {'p99 ratio':>9}"
        )
        for n in args.sizes:
            started = time.perf_counter()
            engine = Engine.start(
                Settings(
                    model_uri=str(paths["bundle"]), catalog=catalogs[n], profiles=paths["profiles"]
                )
            )
            loaded = time.perf_counter() - started
            rank = in_process(engine, requests(args.requests, rng))
            floor = numpy_floor(engine, args.requests, rng)
            for clock in ("cpu", "wall"):
                (r50, r99), (f50, f99) = rank[clock], floor[clock]
                print(
                    f"{n:>8} {clock:>5} {r50:>9.2f} {r99:>9.2f} {f50:>10.3f} {f99:>10.3f} "
                    f"{r50 / f50:>9.1f} {r99 / f99:>9.1f}"
                )
            print(f"{'':>8} (start-up with this catalog: {loaded:.1f} s)")
        if args.no_http:
            return
        print("\nHTTP on loopback: /rank vs POST /status (requests/s; latency ms; server CPU ms")
        print("per request, and its ratio: trivial over /rank, what the throughput ratio tends")
        print("to when the server has the cores to itself)")
        print(
            f"{'offers':>8} {'clients':>7} {'rank rps':>9} {'rank p50':>9} {'rank p99':>9} "
            f"{'triv rps':>9} {'triv p99':>9} {'ratio':>6} {'errors':>6} {'rank cpu':>9} "
            f"{'triv cpu':>9} {'cpu ratio':>9}"
        )
        for n in args.http_sizes:
            for concurrency, rank, trivial in http_bench(
                paths, catalogs[n], args.http_requests, args.rounds, rng
            ):
                print(
                    f"{n:>8} {concurrency:>7} {rank[0]:>9.1f} {rank[1]:>9.2f} {rank[2]:>9.2f} "
                    f"{trivial[0]:>9.1f} {trivial[2]:>9.2f} {rank[0] / trivial[0]:>6.2f} "
                    f"{rank[3] + trivial[3]:>6} {rank[4]:>9.2f} {trivial[4]:>9.2f} "
                    f"{trivial[4] / rank[4]:>9.2f}"
                )


if __name__ == "__main__":
    main()
