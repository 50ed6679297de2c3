"""Load test of /rank: a real `bentoml serve`, a bounded load generator, error counts.

The generator (asyncio + httpx) sends a fixed number of requests at each concurrency level
(1, 8, 32 clients by default): a mix of known visitors, anonymous profiles (a place, an age,
quiz answers), lists with filters and exclusions, and known visitors whose request overrides
their stored profile. Every answer that is not a 200 with a well-formed list, and every
transport error or timeout, counts as an error.

Target (2 cores, a 10k-offer catalog): 0 errors over 20,000 requests at 32 clients, p99
under 100 ms. The machine may be shared: run it alone for figures that mean something.

    python benchmarks/load_test.py [--requests 20000] [--concurrency 1 8 32] [--offers 10000]
        [--model hybrid] [--server-log PATH]

A short form (500 requests, errors only, no timing) runs in the test suite
(tests/test_reliability_load.py) on the tiny test world.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import httpx
import numpy as np

from recsys import taxonomy

TARGET_ERRORS = 0
TARGET_P99_MS = 100.0


@dataclass
class LoadResult:
    """What one concurrency level gave: throughput, latency percentiles, errors by kind."""

    concurrency: int
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    kinds: Counter = field(default_factory=Counter)  # "200", "503", "ReadTimeout", ...

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds


def rank_bodies(
    n: int,
    rng: np.random.Generator,
    known_users: list[str],
    places: list[tuple[float, float]],
    offer_ids: list[str],
) -> list[dict[str, Any]]:
    """n /rank bodies, a quarter of each kind: known visitor; anonymous profile; filtered
    list with exclusions; known visitor with overriding profile fields."""
    bodies: list[dict[str, Any]] = []
    for i in range(n):
        lat, lon = places[int(rng.integers(len(places)))]
        lat, lon = lat + float(rng.normal(0, 0.05)), lon + float(rng.normal(0, 0.05))
        profile = {
            "age": int(rng.integers(15, 31)),
            "lat": round(lat, 5),
            "lon": round(lon, 5),
            "radius_km": float(rng.choice([5, 15, 30, 60])),
            "quiz": {"domains": [str(rng.choice(taxonomy.QUIZ_DOMAINS))]},
        }
        user = str(rng.choice(known_users))
        k = int(rng.choice([5, 10, 20]))
        kind = i % 4
        if kind == 0:
            bodies.append({"user_id": user, "k": k})
        elif kind == 1:
            bodies.append({"profile": profile, "k": k})
        elif kind == 2:
            bodies.append(
                {
                    "profile": profile,
                    "k": k,
                    "filters": {
                        "types": list(rng.choice(taxonomy.PROGRAMMES, 2, replace=False)),
                        "remote": ["no", "possible"],
                    },
                    "exclude_offer_ids": list(rng.choice(offer_ids, 3)),
                }
            )
        else:
            bodies.append({"user_id": user, "profile": {"age": profile["age"]}, "k": k})
    return bodies


def _well_formed(response: httpx.Response, k: int) -> bool:
    if response.status_code != 200:
        return False
    body = response.json()
    items = body.get("items")
    return isinstance(items, list) and len(items) <= k and bool(body.get("request_id"))


async def drive(base: str, bodies: list[dict[str, Any]], concurrency: int) -> LoadResult:
    """Send every body once over `concurrency` connections; time each answer."""
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    timings: list[float] = []
    kinds: Counter = Counter()

    async def client(http: httpx.AsyncClient) -> None:
        while True:
            try:
                body = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            started = time.perf_counter()
            try:
                response = await http.post("/rank", json=body)
                kind = str(response.status_code)
                if response.status_code == 200 and not _well_formed(response, body["k"]):
                    kind = "malformed"
            except httpx.HTTPError as error:
                kind = type(error).__name__
            timings.append(time.perf_counter() - started)
            kinds[kind] += 1

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    milliseconds = np.asarray(timings) * 1000.0
    return LoadResult(
        concurrency=concurrency,
        requests=len(bodies),
        seconds=seconds,
        p50_ms=float(np.percentile(milliseconds, 50)),
        p99_ms=float(np.percentile(milliseconds, 99)),
        errors=sum(count for kind, count in kinds.items() if kind != "200"),
        kinds=kinds,
    )


def main() -> None:
    # serving_bench sits next to this file (run as a script, its folder is on sys.path).
    import pandas as pd
    from serving_bench import LAT, LON, TRAIN_USERS, synthetic_offers, write_bundle

    from serving.process import running_servers

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000, help="per concurrency level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--offers", type=int, default=10_000)
    parser.add_argument("--model", default="hybrid", choices=["hybrid", "lightfm"])
    parser.add_argument("--server-log", type=Path, help="keep the server's log there")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="load-test-") as scratch:
        folder = Path(scratch)
        started = time.perf_counter()
        bundle = write_bundle(folder, args.model, rng)
        offers = synthetic_offers(args.offers, np.random.default_rng(1))
        offers.to_parquet(folder / "offers.parquet", index=False)
        print(f"trained a {args.model} bundle in {time.perf_counter() - started:.1f} s")
        env = {
            "RECSYS_MODEL_URI": str(bundle),
            "RECSYS_CATALOG": str(folder / "offers.parquet"),
            "RECSYS_PROFILES": str(folder / "profiles.parquet"),
            "RECSYS_EVENT_STORE_URL": f"sqlite:///{folder / 'events.db'}",
        }
        known = pd.read_parquet(folder / "profiles.parquet")["userId"].tolist()[:TRAIN_USERS]
        places = list(
            zip(rng.uniform(*LAT, 50).tolist(), rng.uniform(*LON, 50).tolist(), strict=True)
        )
        offer_ids = offers["id"].tolist()
        results = []
        log = args.server_log or folder / "server.log"
        with running_servers([(env, log)]) as (base,):
            warm = rank_bodies(100, rng, known, places, offer_ids)
            asyncio.run(drive(base, warm, 4))
            for concurrency in args.concurrency:
                bodies = rank_bodies(args.requests, rng, known, places, offer_ids)
                results.append(asyncio.run(drive(base, bodies, concurrency)))
                print(f"  {concurrency} clients done", flush=True)
            status = httpx.get(f"{base}/status", timeout=30).json()
    print(f"\n/rank over HTTP on loopback, {args.offers} offers, {args.model} model")
    print(f"{'clients':>7} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for r in results:
        print(
            f"{r.concurrency:>7} {r.requests:>9} {r.throughput:>8.1f} {r.p50_ms:>8.1f} "
            f"{r.p99_ms:>8.1f} {r.errors:>7}"
        )
        if r.errors:
            print(f"{'':>7} errors by kind: {dict(r.kinds)}")
    print(f"rank log: {status['rank_log_pending']} pending, {status['rank_log_dropped']} dropped")
    top = max(results, key=lambda r: r.concurrency)
    met = top.errors <= TARGET_ERRORS and top.p99_ms < TARGET_P99_MS
    print(
        f"target at {top.concurrency} clients (0 errors, p99 < {TARGET_P99_MS:.0f} ms): "
        f"{'met' if met else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
