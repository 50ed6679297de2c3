"""Memory of the ranking service: RSS per worker after load, and where a worker's memory goes.

Two measures, each at 10k and 100k offers (`--offers`):

* **per worker**: a real `bentoml serve` with RECSYS_WORKERS workers (2, the production
  setting on 2 cores) ranks `--requests` /rank requests from 8 clients (the load test's mix of
  known visitors, anonymous profiles, filters), then each worker's RSS, USS (pages it alone
  holds) and PSS are read with psutil. Target: RSS <= 600 MB at 10k offers.
* **where it goes**: one fresh interpreter loads the service step by step as a worker does,
  printing the RSS after each step and what the step added: Python and the scientific
  libraries, the service's modules (BentoML, MLflow's client...), the engine (model, catalog,
  profiles), the first requests (numba's compiled loops and the caches they fill), 500 more.

The model is the bench's hybrid bundle (`bench_fixtures.write_bundle`, 3,000 known visitors)
ranking a synthetic catalog, or any served model with `--model-uri` (the champion of `make run`:
`--model-uri models:/engagement-ranker@champion` with MLFLOW_TRACKING_URI pointing at its
store; `--offers` then only sizes the synthetic catalog when `--catalog` is not given).

    python benchmarks/memory_bench.py [--offers 10000 100000] [--workers 2] [--requests 2000]
        [--model-uri URI] [--catalog PATH] [--profiles PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

TARGET_RSS_MB = 600.0
MB = 1 << 20

# Run in a fresh interpreter: each step's RSS after it, as a worker loads the service.
STEPS = r"""
import gc, json, os, sys, time
import psutil
me = psutil.Process()
rows = []
def step(name):
    gc.collect()
    rows.append((name, me.memory_info().rss))
step("python")
import numpy, scipy.sparse, pandas, pyarrow, sklearn, numba
step("numpy, scipy, pandas, pyarrow, scikit-learn, numba")
import serving.service
step("service modules (BentoML, FastAPI, SQLAlchemy...)")
from serving.engine import Engine
from serving.settings import Settings
engine = Engine.start(Settings.from_env())
step("engine: model, catalog, profiles")
from serving.schemas import RankRequest
bodies = [RankRequest.model_validate(b) for b in json.loads(open(sys.argv[1]).read())]
engine.rank_batch(bodies[:20])
step("first requests (compiled loops, caches)")
for start in range(20, len(bodies), 16):
    engine.rank_batch(bodies[start:start + 16])
step(f"{len(bodies) - 20} more requests")
print(json.dumps(rows))
"""


def worker_memory(supervisor: int) -> list[dict[str, float]]:
    """RSS, USS and PSS (MB) of each BentoML worker under the supervisor process."""
    import psutil

    found = []
    for child in psutil.Process(supervisor).children(recursive=True):
        try:
            command = " ".join(child.cmdline())
            if "_bentoml_impl.worker" not in command:
                continue
            full = child.memory_full_info()
        except psutil.NoSuchProcess:
            continue
        found.append(
            {"pid": child.pid, "rss": full.rss / MB, "uss": full.uss / MB, "pss": full.pss / MB}
        )
    return sorted(found, key=lambda row: row["pid"])


def breakdown(env: dict[str, str], bodies: Path) -> list[tuple[str, float]]:
    """(step, RSS in MB) after each step of `STEPS`, in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", STEPS, str(bodies)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return [(name, rss / MB) for name, rss in json.loads(done.stdout.strip().splitlines()[-1])]


def main() -> None:
    # load_test and bench_fixtures sit next to this file (its folder is on sys.path).
    import pandas as pd
    from bench_fixtures import LAT, LON, TRAIN_USERS, synthetic_offers, write_bundle
    from load_test import drive, rank_bodies

    from serving.process import start_server, terminate, wait_until_up

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--offers", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--model-uri", help="a served model instead of the bench's bundle")
    parser.add_argument("--catalog", type=Path, help="offers file instead of synthetic offers")
    parser.add_argument("--profiles", type=Path, help="profiles file (with --model-uri)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="memory-bench-") as scratch:
        folder = Path(scratch)
        env_model: dict[str, str] = {}
        known: list[str] = []
        if args.model_uri:
            env_model["RECSYS_MODEL_URI"] = args.model_uri
            if args.profiles:
                env_model["RECSYS_PROFILES"] = str(args.profiles)
                known = pd.read_parquet(args.profiles)["userId"].dropna().tolist()[:5000]
        else:
            bundle = write_bundle(folder, "hybrid", rng)
            env_model["RECSYS_MODEL_URI"] = str(bundle)
            env_model["RECSYS_PROFILES"] = str(folder / "profiles.parquet")
            known = pd.read_parquet(folder / "profiles.parquet")["userId"].tolist()[:TRAIN_USERS]
        places = list(
            zip(rng.uniform(*LAT, 50).tolist(), rng.uniform(*LON, 50).tolist(), strict=True)
        )
        print(f"{'offers':>8} {'step or worker':<52} {'RSS MB':>8} {'added':>8} {'USS MB':>8}")
        for size in args.offers:
            if args.catalog:
                catalog = args.catalog
                offer_ids = pd.read_parquet(catalog, columns=["id"])["id"].tolist()
            else:
                offers = synthetic_offers(size, np.random.default_rng(1))
                catalog = folder / f"offers-{size}.parquet"
                offers.to_parquet(catalog, index=False)
                offer_ids = offers["id"].tolist()
            env = {
                **env_model,
                "RECSYS_CATALOG": str(catalog),
                "RECSYS_EVENT_STORE_URL": f"sqlite:///{folder / f'events-{size}.db'}",
                "RECSYS_WORKERS": str(args.workers),
            }
            bodies = folder / "bodies.json"
            bodies.write_text(
                json.dumps(rank_bodies(520, rng, known or ["nobody"], places, offer_ids))
            )
            previous = 0.0
            for name, rss in breakdown(env, bodies):
                print(f"{size:>8} {name:<52} {rss:>8.0f} {rss - previous:>8.0f}")
                previous = rss
            log = folder / f"server-{size}.log"
            process, base = start_server(env, log)
            try:
                wait_until_up(process, base, log, time.monotonic() + 600)
                load = rank_bodies(args.requests, rng, known or ["nobody"], places, offer_ids)
                result = asyncio.run(drive(base, load, 8))
                workers = worker_memory(process.pid)
            finally:
                terminate([process])
            for worker in workers:
                verdict = "ok" if worker["rss"] <= TARGET_RSS_MB else "OVER"
                name = f"worker {worker['pid']}, {result.requests} requests, {result.errors} errors"
                print(
                    f"{size:>8} {name:<52} {worker['rss']:>8.0f} {'':>8} {worker['uss']:>8.0f}"
                    f"  PSS {worker['pss']:.0f}, target {TARGET_RSS_MB:.0f}: {verdict}"
                )


if __name__ == "__main__":
    main()
