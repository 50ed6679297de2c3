"""Audience at scale: one offer against 500,000 known people, streamed, with bounded memory.

    OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=2 python benchmarks/audience_bench.py \
        [--people 500000] [--repeats 3] [--work DIR]

Builds the demo preset (simulation, features, the hybrid trained on its test window), then a
panel of `--people` consenting known people: the demo's 50,000 people under their own ids
(the model knows the histories of those who have one) and copies of them under new ids,
moved by a few kilometres, for the rest. It times, per audience:

* a national offer (fully remote: every person is eligible and scored by the model);
* a need around Lyon (40 km: eligibility first, then the model on the people inside only);
* the reference, measured in the same run on the same panel: the `nearest` baseline of
  `recsys.audience_evaluation` (the same eligibility, distances and streaming top-k, no
  model), so the ratio is what the propensity score costs on top of a scan of the people.

Memory: the peak of Python allocations (tracemalloc, numpy's included) while drawing, at a
fifth of the people and at all of them: with the streaming top-k it does not grow with them.
Panel building (encoding profiles, engagement) happens once per profile load and is timed
apart.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _prepare(work: Path) -> tuple[object, object, pd.DataFrame, pd.DataFrame]:
    """Demo data, its feature set and a hybrid trained on it (reused when present)."""
    from features.build import build_feature_set
    from features.config import FeatureConfig
    from recsys.audience import ENGAGEMENT_COLUMNS
    from recsys.featureset import load_feature_set
    from recsys.models import create_model
    from recsys.models.hybrid import HybridModel
    from recsys.simulation.config import get_preset
    from recsys.simulation.simulator import read_manifest, simulate

    data, features, model_dir = work / "demo", work / "features", work / "hybrid"
    if read_manifest(data) is None:
        print("simulating the demo preset ...", flush=True)
        simulate(get_preset("demo"), 42, data)
    if not (features / "test" / "manifest.json").is_file():
        print("building features ...", flush=True)
        build_feature_set(data, features, FeatureConfig())
    feature_set = load_feature_set(features, "test")
    if (model_dir / "config.json").is_file():
        model = HybridModel.load(model_dir)
    else:
        print("training the hybrid ...", flush=True)
        model = create_model("hybrid", {"learned_params": {"embedding_size": 32, "epochs": 20}})
        model.train(feature_set.training_data())
        model.save(model_dir)
    profiles = pd.read_parquet(data / "profiles.parquet")
    events = pd.read_parquet(data / "events.parquet", columns=ENGAGEMENT_COLUMNS)
    return feature_set, model, profiles, events


def _panel_profiles(profiles: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """`n` consenting people: the demo's own, then jittered copies under new ids."""
    rng = np.random.default_rng(seed)
    copies = rng.integers(0, len(profiles), max(0, n - len(profiles)))
    extra = profiles.iloc[copies].reset_index(drop=True)
    extra["userId"] = [f"bench_{i:07d}" for i in range(len(extra))]
    extra["lat"] = extra["lat"] + rng.normal(0, 0.03, len(extra))
    extra["lon"] = extra["lon"] + rng.normal(0, 0.04, len(extra))
    out = pd.concat([profiles, extra], ignore_index=True).head(n)
    out["contactConsent"] = True
    out["consentAt"] = pd.NaT
    return out


def _time(function, repeats: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - started)
    return best, result


def _peak_mb(function) -> float:
    tracemalloc.start()
    tracemalloc.reset_peak()
    function()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=500_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()

    from recsys import taxonomy
    from recsys.audience import (
        AudienceConfig,
        Need,
        People,
        PropensityScorer,
        Targets,
        build_audience,
        engagement,
        learned_model,
        need_targets,
        offer_facts,
        rank_audiences,
    )
    from recsys.audience_evaluation import nearest_scorer
    from recsys.eligibility import eligible

    work = args.work or Path(tempfile.gettempdir()) / "audience-bench"
    feature_set, model, profiles, events = _prepare(work)
    config = AudienceConfig()
    at = int(feature_set.window_start.timestamp())
    facts = offer_facts(feature_set.offers)
    catalog = feature_set.offer_batch()

    def build(n: int) -> People:
        frame = _panel_profiles(profiles, n, 7)
        return People.build(
            frame,
            feature_set.user_encoder,
            lambda ids: engagement(events, facts, ids, at, config),
            at,
        )

    started = time.perf_counter()
    people = build(args.people)
    built = time.perf_counter() - started
    print(f"panel of {len(people):,} consenting people built in {built:.1f} s")

    open_to_adults = eligible(
        catalog.arrays, age=25, disability=False, lat=None, lon=None, radius_km=20, at=at
    )
    remote = np.flatnonzero(
        open_to_adults
        & (catalog.arrays.remote == taxonomy.REMOTE_VALUES.index("full"))
        & (catalog.arrays.programme == taxonomy.PROGRAMMES.index(taxonomy.BENEVOLAT))
    )
    national = Targets(catalog.take(remote[:1]), at)
    need = Need(
        title="bench",
        domains=["solidarite-insertion"],
        place={"lat": 45.76, "lon": 4.84},
        radius_km=40,
        start=pd.Timestamp(at, unit="s", tz="UTC"),
    )
    local = need_targets(need, feature_set.offer_encoder, at)
    scorer = PropensityScorer(learned_model(model), config)

    def draw(targets: Targets, panel: People = people) -> object:
        return build_audience(panel, targets, scorer, args.k, "bench-salt")

    def reference(targets: Targets, panel: People = people) -> object:
        return rank_audiences(panel, targets, nearest_scorer, args.k, config.chunk_size)

    print(f"\n{args.people:,} people, k = {args.k}, best of {args.repeats}:")
    print(f"{'audience':<34} {'seconds':>8} {'eligible':>9} {'reference s':>12} {'ratio':>6}")
    for name, targets in (("national offer (remote)", national), ("need, Lyon 40 km", local)):
        seconds, drawn = _time(lambda t=targets: draw(t), args.repeats)
        ref_seconds, _ = _time(lambda t=targets: reference(t), args.repeats)
        print(
            f"{name:<34} {seconds:>8.2f} {drawn.eligible:>9,} {ref_seconds:>12.2f} "
            f"{seconds / ref_seconds:>6.1f}"
        )

    small = build(args.people // 5)
    peak_small = _peak_mb(lambda: draw(national, small))
    peak_full = _peak_mb(lambda: draw(national, people))
    print(
        f"\npeak memory while drawing the national audience: {peak_small:.0f} MB at "
        f"{len(small):,} people, {peak_full:.0f} MB at {len(people):,} "
        f"(ratio {peak_full / peak_small:.2f}; chunks of {config.chunk_size:,} people)"
    )


if __name__ == "__main__":
    main()
