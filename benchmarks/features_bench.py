"""Time the feature build on a dataset folder, against reading its events as a reference.

Usage:
    python benchmarks/features_bench.py [DATA_DIR]   # default: data/simulated/demo

Prints the build's wall time, events per second, peak RSS, and the ratio to the time to just
read `events.parquet` with pandas, measured in the same run (so the ratio holds across
machines). The build runs first, so the peak RSS is the build's own.
"""

from __future__ import annotations

import argparse
import logging
import resource
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from features.build import build_feature_set
from features.config import FeatureConfig
from recsys import config as paths


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", type=Path, default=paths.SIMULATED_DIR / "demo")
    args = parser.parse_args(argv)
    events_path = args.data / paths.EVENTS_FILE
    if not events_path.is_file():
        print(
            f"error: {events_path} not found (run `recsys simulate --preset demo` first)",
            file=sys.stderr,
        )
        return 1
    logging.basicConfig(level=logging.WARNING)
    n_events = pq.ParquetFile(events_path).metadata.num_rows

    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        build_feature_set(
            args.data,
            Path(scratch) / "features",
            FeatureConfig(),
            progress=lambda message: print(f"  [{time.perf_counter() - started:6.1f}s] {message}"),
        )
        build_seconds = time.perf_counter() - started
    peak_mb = _peak_rss_mb()

    started = time.perf_counter()
    pd.read_parquet(events_path)
    read_seconds = time.perf_counter() - started

    print(f"dataset            {args.data} ({n_events:,} events)")
    print(f"build (2 windows)  {build_seconds:8.2f} s   {n_events / build_seconds:12,.0f} events/s")
    print(f"peak RSS (build)   {peak_mb:8.0f} MB")
    print(
        f"reference: read    {read_seconds:8.2f} s   (pandas.read_parquet of events, all columns)"
    )
    print(f"ratio build/read   {build_seconds / read_seconds:8.1f} x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
