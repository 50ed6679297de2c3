"""Closed-loop replay of trained models: `recsys replay`.

The simulation and the draws live in the core (`recsys.simulation.replay`); this module adds
what needs the feature and training stages: a policy backed by a model that is built from the
events it has seen (history and its own replayed lists) through the feature stage, trained,
and asked for lists, plus the run over policies and repeats and the JSON/plot outputs.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.build import build_feature_set
from features.config import FeatureConfig
from features.interactions import ANON_PREFIX
from recsys.arrays import profile_arrays
from recsys.bundle import applied_by_user, applied_pairs, save_bundle
from recsys.config import EVENTS_FILE, OFFERS_FILE, PROFILES_FILE
from recsys.dataset import OfferBatch, UserBatch
from recsys.featureset import load_feature_set
from recsys.models import MODEL_CLASSES, create_model
from recsys.models.base import Recommender
from recsys.policy import ListPolicy, ModelScores
from recsys.rules import incumbent_scores
from recsys.schema import write_table
from recsys.simulation.applications import NO_APPLY
from recsys.simulation.replay import (
    OfferOraclePolicy,
    OraclePolicy,
    Outcome,
    ProfileOraclePolicy,
    Replay,
    ReplayPolicy,
    Requests,
    RunResult,
    make_lists,
)
from recsys.simulation.replay_summary import plot_cumulative, projection, ratio, summarise
from training.replay_http import ServicePolicy

# The policies that read the simulator's truth instead of learning: the ceilings.
ORACLES: dict[str, Callable[[Any], ReplayPolicy]] = {
    OraclePolicy.name: OraclePolicy,
    OfferOraclePolicy.name: OfferOraclePolicy,
    ProfileOraclePolicy.name: ProfileOraclePolicy,
}
GATE_FIGURE = "applications_per_1000_lists"  # what `replay_gate` judges by
SERVED_OFFERS = "offers.parquet"  # in `--serving-dir`: the catalog of a replay over HTTP
# Training as of the replayed instant: the feature stage's test window is the last day
# before it (its events are left out), the validation window the day before.
REFIT_FEATURES = FeatureConfig(test_days=1, validation_days=1)


class ModelPolicy:
    """A model of `recsys.models` making the service's lists: its scores over the core's
    candidates through the core list policy (`recsys.policy`: cold-start blend, pool, caps),
    retrained on what it has seen.

    Its exclusions are the service's (`serving.ranking`): what the visitor, by the key the
    request carries (the `userId`, else the anonymous visitor's key), applied to in the
    model's data (`recsys.bundle.applied_pairs`, what a bundle keeps) or on the lists it made
    since (`observe`, what a front reports to /events); not what the simulated person applied
    to unseen (in a session without their `userId`), which no service can know.

    Args:
        name: model name (`recsys.models.MODEL_CLASSES`).
        offers: the simulated offers table, rows in the replay's offer order.
        profiles: the profiles table of the dataset.
        workdir: where each refit writes its dataset and feature set.
        params: model parameters (defaults when None).
        bundle: where to write the model as first trained (on what was recorded before the
            replay's start), as a ranker bundle a service can serve; None: not written.
    """

    learns = True

    def __init__(
        self,
        name: str,
        offers: pd.DataFrame,
        profiles: pd.DataFrame,
        workdir: Path,
        params: dict[str, Any] | None = None,
        bundle: Path | None = None,
    ) -> None:
        self.name = name
        self._params = params
        self._bundle = bundle
        self._offers_frame = offers.reset_index(drop=True)
        self._folder = Path(workdir) / name
        self._folder.mkdir(parents=True, exist_ok=True)
        write_table(self._offers_frame, "offers", self._folder / OFFERS_FILE)
        write_table(profiles, "profiles", self._folder / PROFILES_FILE)
        self._policy = ListPolicy()
        self._model: Recommender | None = None
        self._offers: OfferBatch | None = None
        self._user_encoder = None
        self._applied: dict[str, frozenset[str]] = {}  # the model data's, by user key
        self._reported: defaultdict[str, set[str]] = defaultdict(set)  # applied on its lists
        self.fit_seconds: list[float] = []

    def refit(self, now: int, events: pd.DataFrame) -> None:
        started = time.perf_counter()
        write_table(events, "events", self._folder / EVENTS_FILE)
        features = build_feature_set(self._folder, self._folder / "features", REFIT_FEATURES)
        feature_set = load_feature_set(features)
        model = create_model(self.name, self._params)
        model.train(feature_set.training_data())
        self._offers = OfferBatch.encode(self._offers_frame, feature_set.offer_encoder)
        self._user_encoder = feature_set.user_encoder
        self._applied = applied_by_user(applied_pairs(feature_set))
        self._model = model
        if self._bundle is not None:
            save_bundle(model, feature_set, self._bundle)
            self._bundle = None  # the first model only
        # A model whose trained state is empty (the rules engines) learned nothing from the
        # events: refitting it would give the same lists, so it is fitted once.
        self.learns = bool(model.get_arrays())
        self.fit_seconds.append(time.perf_counter() - started)

    def lists(self, requests: Requests) -> np.ndarray:
        if self._model is None or self._offers is None or self._user_encoder is None:
            raise RuntimeError(f"{self.name}: refit before asking for lists")
        frame = requests.profiles
        keys = _user_keys(requests)
        users = UserBatch(keys, self._user_encoder.transform(frame), profile_arrays(frame))
        offers = self._offers.take(requests.columns)
        masks = requests.candidates(self._excluded(requests, keys))
        values = np.asarray(self._model.score(users, offers), dtype=np.float64)
        served = self._policy.served_scores(
            ModelScores(values, masks),
            self._model.knows(keys),
            self._model.blends_rules,
            lambda: incumbent_scores(
                users.arrays, offers.arrays, self._policy.rules_remote_overrides
            ),
        )
        return make_lists(self._policy, served, masks, requests)

    def _excluded(self, requests: Requests, keys: np.ndarray) -> list[np.ndarray]:
        """Each request's excluded columns: what its visitor applied to, as recorded."""
        columns = pd.Index(self._offers_frame["id"].to_numpy(dtype=object)[requests.columns])
        out = []
        for key in keys.tolist():
            done = self._applied.get(key, frozenset()) | self._reported.get(key, set())
            found = columns.get_indexer(list(done)) if done else np.zeros(0, dtype=np.int64)
            out.append(found[found >= 0])
        return out

    def observe(self, requests: Requests, outcome: Outcome) -> None:
        """Keep the applications drawn on the lists (what a front reports to the service,
        which never lists those offers to the visitor again); the rest of what the visitors
        did reaches the model through `refit`."""
        keys = _user_keys(requests)
        ids = self._offers_frame["id"].to_numpy(dtype=object)
        applied = outcome.status != NO_APPLY
        for r, offer in zip(
            outcome.request[applied].tolist(), outcome.offer[applied].tolist(), strict=True
        ):
            self._reported[keys[r]].add(str(ids[offer]))


def _user_keys(requests: Requests) -> np.ndarray:
    """The key of each request's visitor, as the feature stage keys them and a front sends
    them: the `userId`, else the anonymous visitor's key (`ANON_PREFIX` + their hash)."""
    ids = requests.profiles["userId"].to_numpy(dtype=object)
    return np.where(requests.identified, ids, ANON_PREFIX + ids.astype(str)).astype(object)


def make_policy(
    name: str, replay: Replay, workdir: Path, bundle: Path | None = None
) -> ReplayPolicy:
    """The policy called `name`: one of the `ORACLES`, or a model of `recsys.models` (its
    first model written to `bundle` as a ranker bundle when given).

    Raises:
        ValueError: naming the known policies when `name` is none of them.
    """
    if name in ORACLES:
        return ORACLES[name](replay.world)
    _check_policy(name)
    return ModelPolicy(name, replay.world.offers.frame, replay.profiles, workdir, bundle=bundle)


def write_serving(replay: Replay, folder: Path) -> Path:
    """Write the offers as the replay ranks them (`SERVED_OFFERS` in `folder`), the catalog a
    service behind `recsys replay --url` serves (RECSYS_CATALOG); its path.

    They are the offers as they stand at the replay's start (`Replay.offers_at_start`; the
    dataset's `offers.parquet` carries every withdrawal of its own diffusion, later ones
    included), so that the service's candidates are the ones the replay in process ranks.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / SERVED_OFFERS
    write_table(replay.offers_at_start(), "offers", path)
    return path


def parse_policies(text: str) -> list[str]:
    """Comma-separated policy names, checked, in order, without repeats.

    Raises:
        ValueError: empty list or unknown name.
    """
    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if not names:
        raise ValueError("--policies: give at least one policy")
    for name in names:
        _check_policy(name)
    return names


def _check_policy(name: str) -> None:
    """Raises ValueError naming the known policies when `name` is none of them."""
    if name not in ORACLES and name not in MODEL_CLASSES:
        known = ", ".join([*sorted(MODEL_CLASSES), *ORACLES])
        raise ValueError(f"--policies: unknown policy {name!r}; expected any of {known}")


def run_replay(
    data: Path,
    policies: Sequence[str | ReplayPolicy],
    weeks: int,
    repeats: int,
    retrain_weeks: int,
    say: Callable[[str], None] = lambda message: None,
    workdir: Path | None = None,
    serving: Path | None = None,
    url: str | None = None,
) -> tuple[Replay, list[RunResult]]:
    """Replay `weeks` weeks of a simulated dataset once per policy and repeat.

    Policies are names (`make_policy`) or ready `ReplayPolicy` objects; each repeat builds
    name policies afresh, so no model carries over between repeats. `serving`, when given,
    receives what a service needs to serve these policies to `recsys replay --url`: the
    offers (`write_serving`) and, for each model policy, its model as trained at the
    replay's start in the first repeat (`serving/<policy>`, a ranker bundle). `url`, when
    given, replaces the policies by the service there (`training.replay_http.ServicePolicy`).
    """
    if repeats < 1:
        raise ValueError(f"--repeats: expected at least 1, got {repeats}")
    replay = Replay(data, weeks, say)
    if serving is not None:
        write_serving(replay, serving)
    service = None if url is None else ServicePolicy(url, replay)
    if service is not None:
        policies = [service]
    results: list[RunResult] = []
    scratch = Path(tempfile.mkdtemp(prefix="replay-")) if workdir is None else Path(workdir)
    try:
        for repeat in range(repeats):
            for entry in policies:
                if isinstance(entry, str):
                    first = serving is not None and repeat == 0
                    bundle = serving / entry if first else None
                    policy = make_policy(entry, replay, scratch / f"r{repeat}", bundle)
                else:
                    policy = entry
                results.append(replay.run(policy, repeat, retrain_weeks, say))
    finally:
        if service is not None:
            service.close()
            say(
                f"service: lists per arm {dict(service.arms)}; {service.unlisted} listed offers "
                "withdrawn by the replay left out"
            )
        if workdir is None:
            shutil.rmtree(scratch, ignore_errors=True)
    return replay, results


def replay_gate(
    data: Path,
    model: str,
    params: dict[str, Any],
    baselines: dict[str, dict[str, Any]],
    weeks: int,
    say: Callable[[str], None] = lambda message: None,
) -> tuple[float, dict[str, float]]:
    """What a promotion on applications is judged by (`promotion.metric: replay`): the
    applications per 1,000 served lists of `model` with `params`, and of each baseline (name
    -> its parameters), in one closed-loop replay of the last `weeks` weeks of a simulated
    dataset, every learning policy trained at the replay's start on what was recorded before
    it (and retrained every `weeks`, so once). Repeat 0: the same seeds for every policy,
    so the figures pair.

    Raises:
        ValueError: `data` is no simulation (a replay needs its world and truth).
    """
    try:
        replay = Replay(data, weeks, say)
    except ValueError as error:
        raise ValueError(f"promotion.metric replay needs simulated data: {error}") from None
    offers, profiles = replay.world.offers.frame, replay.profiles

    def figure(name: str, model_params: dict[str, Any], folder: Path) -> float:
        policy = ModelPolicy(name, offers, profiles, folder, model_params)
        return replay.run(policy, 0, weeks, say).figures()[GATE_FIGURE]

    with tempfile.TemporaryDirectory(prefix="replay-gate-") as scratch:
        mine = figure(model, params, Path(scratch) / "candidate")
        theirs = {
            name: figure(name, values, Path(scratch) / "baselines")
            for name, values in baselines.items()
        }
    return mine, theirs


def report(
    replay: Replay,
    results: Sequence[RunResult],
    traffic: float | None,
    seconds: float,
) -> dict[str, Any]:
    """The JSON document `recsys replay --json` writes."""
    summary = summarise(results)
    names = list(summary)
    ratios = {
        f"{a}/{b}": ratio(results, a, b)
        for a in names
        for b in names
        if a != b and any(r.policy == b and r.applications for r in results)
    }
    # The same ratios within each segment: people with a history, without one, and the
    # anonymous sessions among the latter.
    segments = {
        f"{a}/{b} {segment}": ratio(results, a, b, figure=f"applications_{segment}")
        for segment in ("known", "without_history", "anonymous")
        for a in names
        for b in names
        if a != b and any(r.policy == b and r.figures()[f"applications_{segment}"] for r in results)
    }
    return {
        "data": str(replay.data_dir),
        "seed": replay.seed,
        "weeks": replay.weeks,
        "replay_start": pd.Timestamp(replay.t_start, unit="s").date().isoformat(),
        "repeats": max(r.repeat for r in results) + 1,
        "seconds": seconds,
        "policies": summary,
        "ratios": ratios,
        "segment_ratios": segments,
        "projection": projection(summary, replay.weeks, traffic),
    }


def format_report(document: dict[str, Any]) -> str:
    """A short table per policy for the terminal."""
    rows = []
    for policy, figures in document["policies"].items():

        def cell(name: str, digits: int = 1, figures: dict[str, Any] = figures) -> str:
            f = figures[name]
            return f"{f['mean']:.{digits}f} [{f['low']:.{digits}f}, {f['high']:.{digits}f}]"

        projected = document["projection"][policy]
        rows.append(
            {
                "policy": policy,
                "applications": cell("applications"),
                "per 1000 lists": cell("applications_per_1000_lists", 2),
                "click-through": cell("click_through", 4),
                "new-offer share": cell("new_offer_share", 3),
                "gini publisher": cell("gini_publisher", 3),
                "6-month projection": f"{projected['mean']:.0f} "
                f"[{projected['low']:.0f}, {projected['high']:.0f}]",
            }
        )
    with pd.option_context("display.width", 250, "display.max_columns", 20):
        return pd.DataFrame(rows).set_index("policy").to_string()


def write_outputs(document: dict[str, Any], json_path: Path | None, plot_path: Path | None) -> None:
    """The JSON document and the PNG of cumulative applications, where asked."""
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(document, indent=1) + "\n")
    if plot_path is not None:
        plot_cumulative(document["policies"], plot_path)
