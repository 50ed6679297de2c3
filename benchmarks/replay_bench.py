"""Closed-loop replay speed: a 26-week replay of the demo preset, every policy, one repeat.

Target: under 10 minutes on 2 cores. The reference, measured in the same run, is a one-week
replay of the same policies (rebuilding the world and diffusing the history included), so
the ratio says what the 25 more weeks and their retraining cost. Wall and CPU seconds are
both printed: on a shared machine the wall time carries other processes' load.

    .venv/bin/python benchmarks/replay_bench.py                   # simulates demo (seed 42)
    .venv/bin/python benchmarks/replay_bench.py --data DIR        # an existing demo folder
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

POLICIES = ("hybrid", "incumbent_local", "incumbent", "popularity", "oracle")
TARGET_S = 600.0


def replay_seconds(data: Path, weeks: int, retrain_weeks: int) -> dict[str, float]:
    """Wall and CPU seconds of one replay of every policy: the set-up, then each policy."""
    from recsys.simulation.replay import Replay
    from training.replay import make_policy

    seconds: dict[str, float] = {}
    wall, cpu = time.perf_counter(), time.process_time()
    replay = Replay(data, weeks)
    seconds["set-up"] = time.perf_counter() - wall
    with tempfile.TemporaryDirectory() as scratch:
        for name in POLICIES:
            began = time.perf_counter()
            result = replay.run(make_policy(name, replay, Path(scratch)), 0, retrain_weeks)
            seconds[name] = time.perf_counter() - began
            seconds[f"{name} applications"] = result.applications
    seconds["wall"] = time.perf_counter() - wall
    seconds["cpu"] = time.process_time() - cpu
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="a demo dataset (simulated when absent)")
    parser.add_argument("--weeks", type=int, default=26)
    parser.add_argument("--retrain-weeks", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        data = args.data
        if data is None:
            from recsys.simulation import get_preset, simulate

            data = Path(folder) / "demo"
            simulate(get_preset("demo"), 42, data)
        reference = replay_seconds(data, 1, args.retrain_weeks)
        full = replay_seconds(data, args.weeks, args.retrain_weeks)
    print(f"{'step':<18}{'1 week s':>10}{f'{args.weeks} weeks s':>12}")
    for step in ("set-up", *POLICIES, "wall", "cpu"):
        print(f"{step:<18}{reference[step]:>10.1f}{full[step]:>12.1f}")
    print(
        f"{args.weeks}-week replay: {full['wall']:.0f} s wall ({full['cpu']:.0f} s CPU), "
        f"{full['wall'] / reference['wall']:.1f}x the one-week replay; target < {TARGET_S:.0f} s: "
        f"{'met' if full['wall'] < TARGET_S else 'missed'}"
    )
    print(
        "applications over the replay: "
        + ", ".join(f"{name} {int(full[f'{name} applications']):,}" for name in POLICIES)
    )


if __name__ == "__main__":
    main()
