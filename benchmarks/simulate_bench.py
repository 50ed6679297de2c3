"""Simulator throughput: wall time, events per second and peak memory per preset.

Each preset runs in a fresh child process, so that its peak RSS (resource.getrusage) is its
own. The reference is a trivial numpy baseline measured in the same child: drawing as many
rows of uniform random numbers as the simulation wrote events, one float per event column.
The ratio says how many times slower than "just generating random rows" the generative
story is.

    .venv/bin/python benchmarks/simulate_bench.py            # tiny and demo
    .venv/bin/python benchmarks/simulate_bench.py --large    # and large
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SEED = 42


def run_one(preset: str) -> dict[str, float]:
    """Simulate `preset` into a temporary folder; time it and the numpy baseline."""
    from recsys.schema import EVENT_SCHEMA
    from recsys.simulation import get_preset, simulate

    config = get_preset(preset)
    with tempfile.TemporaryDirectory() as folder:
        began = time.perf_counter()
        manifest = simulate(config, SEED, Path(folder))
        wall = time.perf_counter() - began
    events = manifest["counts"]["events"]
    rng = np.random.default_rng(SEED)
    began = time.perf_counter()
    rng.random((events, len(EVENT_SCHEMA)))
    baseline = time.perf_counter() - began
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {
        "preset": preset,
        "events": events,
        "people": manifest["counts"]["people"],
        "offers": manifest["counts"]["offers"],
        "wall_s": wall,
        "events_per_s": events / wall,
        "peak_rss_mib": peak_kib / 1024,
        "baseline_s": baseline,
        "ratio": wall / baseline,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", action="store_true", help="also run the large preset")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: run one preset
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(args.child)))
        return
    presets = ["tiny", "demo", *(["large"] if args.large else [])]
    header = (
        f"{'preset':<7}{'people':>10}{'offers':>9}{'events':>12}{'wall s':>9}"
        f"{'events/s':>12}{'peak MiB':>10}{'numpy s':>9}{'ratio':>8}"
    )
    print(header)
    for preset in presets:
        child = subprocess.run(
            [sys.executable, __file__, "--child", preset],
            check=True,
            capture_output=True,
            text=True,
        )
        r = json.loads(child.stdout.strip().splitlines()[-1])
        print(
            f"{r['preset']:<7}{r['people']:>10,}{r['offers']:>9,}{r['events']:>12,}"
            f"{r['wall_s']:>9.1f}{r['events_per_s']:>12,.0f}{r['peak_rss_mib']:>10,.0f}"
            f"{r['baseline_s']:>9.3f}{r['ratio']:>8,.0f}"
        )


if __name__ == "__main__":
    main()
