"""Offline evaluation of audiences: for offers of a window, who among the consenting known
people applied to them, and where each method ranked them.

Protocol (DOMAIN.md section 7, reversed): the targets are the offers open during the
evaluated window (`recsys.candidates.open_during`) that at least one consenting known person
applied to in the window; for each, every consenting known person eligible at the window's
start is ranked (`recsys.audience.rank_audiences`, the code that serves audiences), and the
relevant people are those who applied to it in the window. Offers nobody consenting applied to
are excluded by rule and counted. Metrics are `recsys.metrics.ranking_metrics` with offers in
the place of users and people in the place of items: recall@k = relevant people in the top k /
relevant people; NDCG@k with binary gain and the ideal over min(|relevant|, k).

Methods, all through the same eligibility and top-k:
    - `audience`: the propensity score (`recsys.audience.PropensityScorer`);
    - `nearest`: the nearest eligible people first (unknown places last);
    - `recent_domain`: the people most active recently in the offer's domain (the decayed
      engagement in that domain), ties by row;
    - `random`: a seeded random order;
    - `oracle` (simulated data): the simulator's true utility of the pair plus the log of the
      person's true activity level (how often they come), what drew their applications.
Engagement is measured on the events strictly before the window's start.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys import config as paths
from recsys import metrics
from recsys.audience import (
    Area,
    AudienceConfig,
    Engagement,
    People,
    PropensityScorer,
    Scorer,
    Targets,
    engagement,
    learned_model,
    rank_audiences,
)
from recsys.candidates import open_during
from recsys.featureset import FeatureSet
from recsys.models.base import Recommender

AUDIENCE_KS: tuple[int, ...] = (100, 1000)
HEADLINE = "recall@100"
BASELINES = ("nearest", "recent_domain", "random")
ORACLE = "oracle"


@dataclass
class AudienceEvaluation:
    """Metrics per method, with what they were computed on."""

    methods: dict[str, dict[str, float]]
    data: dict[str, Any]

    def table(self) -> pd.DataFrame:
        """Methods × metrics (recall and NDCG at every k, offers evaluated)."""
        frame = pd.DataFrame(self.methods).T
        columns = [c for c in frame.columns if c.split("@")[0] in ("recall", "ndcg")]
        return frame[[*columns, "users_evaluated"]].rename(
            columns={"users_evaluated": "offers_evaluated"}
        )

    def ratio_to_best_baseline(self, metric: str = HEADLINE) -> float:
        """The audience's `metric` over the best baseline's (not the oracle's)."""
        best = max(self.methods[name][metric] for name in BASELINES if name in self.methods)
        return self.methods["audience"][metric] / best if best > 0 else float("inf")


def window_engagement(feature_set: FeatureSet, config: AudienceConfig) -> Any:
    """`engagement_of(ids)` over the feature set's canonical events before its window."""
    data_dir = Path(feature_set.manifest["data_dir"])
    events = pd.read_parquet(
        data_dir / paths.EVENTS_FILE,
        columns=["type", "createdAt", "missionId", "userId", "isBot"],
    )
    domains = feature_set.offers.set_index(feature_set.offers["id"].astype(str))["domain"]
    at = int(feature_set.window_start.timestamp())

    def engagement_of(ids: np.ndarray) -> Engagement:
        return engagement(events, domains, ids, at, config)

    return engagement_of


def panel(feature_set: FeatureSet, config: AudienceConfig) -> People:
    """The consenting known people of the feature set's data (its canonical profiles)."""
    data_dir = Path(feature_set.manifest["data_dir"])
    profiles = pd.read_parquet(data_dir / paths.PROFILES_FILE)
    at = int(feature_set.window_start.timestamp())
    engagement_of = window_engagement(feature_set, config)
    return People.build(profiles, feature_set.user_encoder, engagement_of, at)


def evaluation_targets(
    feature_set: FeatureSet,
    people: People,
    offer_ids: list[str] | None = None,
    area: Area | None = None,
) -> tuple[Targets, list[np.ndarray], dict[str, int]]:
    """The window's offers with a consenting applicant (or the given ones), as targets opened
    for the window, with each one's relevant people rows; `area` draws them as a need's."""
    start = int(feature_set.window_start.timestamp())
    end = int(feature_set.window_end.timestamp())
    applies = feature_set.targets
    person_row = pd.Index(people.users.ids.astype(str))
    rows = person_row.get_indexer(applies["user_key"].astype(str))
    pairs = pd.DataFrame({"offer": applies["offer_id"].astype(str).to_numpy(), "row": rows})
    consenting = pairs.loc[pairs["row"] >= 0].drop_duplicates()
    wanted = sorted(consenting["offer"].unique()) if offer_ids is None else list(offer_ids)
    batch = feature_set.offer_batch(np.asarray(wanted, dtype=object))
    batch = replace(batch, arrays=open_during(batch.arrays, start, end))
    grouped = consenting.groupby("offer")["row"].apply(lambda s: np.sort(s.to_numpy()))
    relevant = [grouped.get(o, np.zeros(0, np.int64)) for o in wanted]
    counts = {
        "window_applies": len(applies),
        "applies_by_consenting_known": int((pairs["row"] >= 0).sum()),
        "offers_with_applies": int(applies["offer_id"].nunique()),
    }
    return Targets(batch, start, area=area), relevant, counts


def nearest_scorer(
    people: People, rows: np.ndarray, targets: Targets, distances: np.ndarray
) -> np.ndarray:
    """Nearest first; an unknown distance last."""
    return -np.where(np.isnan(distances), np.inf, distances)


def recent_domain_scorer(
    people: People, rows: np.ndarray, targets: Targets, distances: np.ndarray
) -> np.ndarray:
    """The decayed engagement in each target's domain(s)."""
    block = people.engagement.by_domain[rows]
    out = np.zeros((len(rows), len(targets)))
    for j, domains in enumerate(targets.domains()):
        if len(domains):
            out[:, j] = block[:, domains].max(axis=1)
    return out


def random_scorer(seed: int) -> Scorer:
    """Uniform scores per (person, target), the same for a person whatever the chunk."""

    def score(
        people: People, rows: np.ndarray, targets: Targets, distances: np.ndarray
    ) -> np.ndarray:
        out = np.empty((len(rows), len(targets)))
        for j in range(len(targets)):
            out[:, j] = np.random.default_rng([seed, j]).random(len(people))[rows]
        return out

    return score


def oracle_scorer(truth_dir: Path) -> Scorer:
    """The simulator's true utility plus log activity level (module docstring)."""
    from recsys.simulation.truth import load_truth, utility

    truth = load_truth(truth_dir)

    def score(
        people: People, rows: np.ndarray, targets: Targets, distances: np.ndarray
    ) -> np.ndarray:
        person = truth.person_index(people.users.ids[rows].astype(str))
        offer = truth.offer_index(targets.offers.ids.astype(str))
        value = utility(truth, person[:, None], offer[None, :])
        return value + np.log(truth.people.activity_level[person])[:, None]

    return score


def evaluate_audiences(
    feature_set: FeatureSet,
    model: Recommender | None,
    config: AudienceConfig,
    truth_dir: Path | None = None,
    offer_ids: list[str] | None = None,
    ks: tuple[int, ...] = AUDIENCE_KS,
    seed: int = 42,
    people: People | None = None,
    baselines: bool = True,
    area: Area | None = None,
) -> AudienceEvaluation:
    """Every method on the window's offers (or `offer_ids`); see the module docstring.

    `baselines` False evaluates the audience's score alone (tuning); `area` draws every
    audience inside it, as for a need (the crisis scenario), instead of by each person's own
    radius."""
    people = people if people is not None else panel(feature_set, config)
    targets, relevant, counts = evaluation_targets(feature_set, people, offer_ids, area)
    propensity = PropensityScorer(learned_model(model), config)
    scorers: dict[str, tuple[Scorer, Targets]] = {
        "audience": (propensity, propensity.prepare(targets))
    }
    if baselines:
        scorers["nearest"] = (nearest_scorer, targets)
        scorers["recent_domain"] = (recent_domain_scorer, targets)
        scorers["random"] = (random_scorer(seed), targets)
    if baselines and truth_dir is not None:
        scorers[ORACLE] = (oracle_scorer(truth_dir), targets)
    k_max = max(ks)
    methods: dict[str, dict[str, float]] = {}
    pool = 0
    for name, (scorer, prepared) in scorers.items():
        ranked = rank_audiences(people, prepared, scorer, k_max, chunk_size=4096)
        recommended = np.full((len(ranked), k_max), metrics.PAD, dtype=np.int64)
        for j, one in enumerate(ranked):
            recommended[j, : len(one.rows)] = one.rows
        methods[name] = metrics.ranking_metrics(recommended, relevant, ks)
        pool = int(np.mean([one.eligible for one in ranked])) if ranked else 0
    eligible_relevant = _eligible_share(people, targets, relevant)
    data = {
        "window_start": str(feature_set.window_start),
        "window_end": str(feature_set.window_end),
        "people_consenting": len(people),
        "offers": len(targets),
        "mean_eligible_people_per_offer": pool,
        "relevant_people": int(sum(len(r) for r in relevant)),
        "relevant_eligible_share": eligible_relevant,
        **counts,
    }
    return AudienceEvaluation(methods, data)


def _eligible_share(people: People, targets: Targets, relevant: list[np.ndarray]) -> float:
    """Share of the relevant people eligible for their offer: the ceiling of any recall."""
    from recsys.audience import eligible_people

    total = sum(len(r) for r in relevant)
    if total == 0:
        return 0.0
    hits = 0
    for j, rows in enumerate(relevant):
        if len(rows):
            one = replace(targets, offers=targets.offers.take(np.array([j])))
            hits += int(eligible_people(people.users.arrays.take(rows), one)[:, 0].sum())
    return hits / total
