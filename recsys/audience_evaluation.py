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
    - `oracle` (simulated data): the true expected applications of the pair in the window
      (`oracle_scorer`): the person's expected sessions in the window (from their arrival and
      true activity level) times the chance that the offer, shown, is clicked and applied to
      (true utility plus the pair's persistent noise); for a crisis offer, the crisis's answer
      model;
    - `oracle_utility` (simulated data): the true utility of the pair plus the log of the
      person's true activity level, blind to when the person comes and to the pair noise.
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
from recsys.arrays import to_epoch_seconds
from recsys.audience import (
    ENGAGEMENT_COLUMNS,
    TERM_WEIGHTS,
    Area,
    AudienceConfig,
    Engagement,
    People,
    PropensityScorer,
    Scorer,
    Targets,
    eligible_chunks,
    engagement,
    learned_model,
    offer_facts,
    rank_audiences,
)
from recsys.candidates import open_during
from recsys.featureset import FeatureSet
from recsys.models.base import Recommender

AUDIENCE_KS: tuple[int, ...] = (100, 1000)
HEADLINE = "recall@100"
BASELINES = ("nearest", "recent_domain", "random")
ORACLE = "oracle"
UTILITY_ORACLE = "oracle_utility"


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
    events = pd.read_parquet(data_dir / paths.EVENTS_FILE, columns=ENGAGEMENT_COLUMNS)
    facts = offer_facts(feature_set.offers)
    at = int(feature_set.window_start.timestamp())

    def engagement_of(ids: np.ndarray) -> Engagement:
        return engagement(events, facts, ids, at, config)

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


def utility_oracle_scorer(truth_dir: Path) -> Scorer:
    """The simulator's true utility of the pair plus the log of the person's true activity
    level (module docstring: `oracle_utility`)."""
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


def oracle_scorer(data_dir: Path, start: int, end: int) -> Scorer:
    """The log of the true expected applications of each pair in [start, end) (module
    docstring: `oracle`), from the simulated dataset in `data_dir`.

    An offer the simulator diffused: the person's expected sessions in the window
    (`diffusion.expected_sessions`, from their arrival, which `consentAt` records, and true
    activity level) times the chance that a shown offer is clicked and applied to,
    sigmoid(click intercept + τ) · sigmoid(apply intercept + slope · τ) with τ = U + the
    persistent pair noise. What it leaves out is the same for every person or drawn at random:
    which of the session's list shows the offer and where. A crisis offer: the crisis's
    answer model (`crisis.answer_probability`).
    """
    import json

    from scipy.special import expit

    from recsys.simulation.config import BehaviourRates, UtilityWeights
    from recsys.simulation.crisis import answer_probability
    from recsys.simulation.diffusion import expected_sessions
    from recsys.simulation.ids import pair_normal
    from recsys.simulation.truth import load_truth, utility

    truth = load_truth(data_dir)
    manifest = json.loads((data_dir / "manifest.json").read_text())
    simulated = manifest["config"]
    rates = BehaviourRates(**simulated["rates"])
    noise = UtilityWeights(**simulated["weights"]).noise
    crisis = manifest.get("crisis")
    crisis_ids = set(crisis["offers"]) if crisis else set()
    diffused = len(truth.offers) - len(crisis_ids)  # the pair noise's key space
    profiles = pd.read_parquet(data_dir / paths.PROFILES_FILE, columns=["userId", "consentAt"])
    arrival = pd.Series(
        to_epoch_seconds(profiles["consentAt"], -1), index=profiles["userId"].astype(str)
    )

    def score(
        people: People, rows: np.ndarray, targets: Targets, distances: np.ndarray
    ) -> np.ndarray:
        ids = people.users.ids[rows].astype(str)
        person = truth.person_index(ids)
        offer_ids = targets.offers.ids.astype(str)
        offer = truth.offer_index(offer_ids)
        sessions = expected_sessions(
            arrival.reindex(ids).to_numpy(), truth.people.activity_level[person], start, end
        )
        taste = utility(truth, person[:, None], offer[None, :])
        taste = taste + noise * pair_normal(
            person[:, None], offer[None, :], diffused, truth.noise_salt
        )
        shown = expit(rates.click_intercept + taste) * expit(
            rates.apply_intercept + rates.apply_slope * taste
        )
        expected = sessions[:, None] * shown
        answering = np.array([o in crisis_ids for o in offer_ids])
        if answering.any():
            expected[:, answering] = answer_probability(truth, crisis, person, offer[answering])
        with np.errstate(divide="ignore"):
            return np.log(expected)

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
        start, end = (
            int(feature_set.window_start.timestamp()),
            int(feature_set.window_end.timestamp()),
        )
        scorers[ORACLE] = (oracle_scorer(truth_dir.parent, start, end), targets)
        scorers[UTILITY_ORACLE] = (utility_oracle_scorer(truth_dir), targets)
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


FIT_L2 = 1.0  # ridge penalty of `fit_weights`, on standardised terms


def fit_weights(
    feature_set: FeatureSet,
    model: Recommender | None,
    config: AudienceConfig,
    people: People | None = None,
    l2: float = FIT_L2,
) -> AudienceConfig:
    """`config` with the term weights fitted on the feature set's window (use validation).

    A conditional logit: for each offer of the window, the people eligible for it are the
    choice set and those who applied are the choices; P(p | o) ∝ exp(Σ w_t · term_t(p, o)),
    the terms of `PropensityScorer` at unit weight (scales from `config`). Within-offer, as the
    audience ranks: what differs between offers (how many applied) cancels. The weights are
    kept >= 0 (each term lifts a person, as the reasons say), with a ridge penalty `l2` on
    standardised terms; a term the model cannot give (no model) keeps weight 0.
    """
    from scipy.optimize import minimize

    people = people if people is not None else panel(feature_set, config)
    targets, relevant, _ = evaluation_targets(feature_set, people)
    unit = replace(config, **{weight: 1.0 for weight in TERM_WEIGHTS.values()})
    scorer = PropensityScorer(learned_model(model), unit)
    prepared = scorer.prepare(targets)
    n = len(targets)
    wanted = np.concatenate([rows * n + j for j, rows in enumerate(relevant)] + [np.zeros(0)])
    blocks, groups, chosen, names = [], [], [], list(TERM_WEIGHTS)
    for rows, mask, distances in eligible_chunks(people, prepared, 4096):
        terms = scorer.terms(people, rows, prepared, distances)
        names = [name for name in TERM_WEIGHTS if name in terms]
        i, j = np.nonzero(mask)
        blocks.append(np.column_stack([np.broadcast_to(terms[n], mask.shape)[i, j] for n in names]))
        groups.append(j)
        chosen.append(np.isin(rows[i] * n + j, wanted))
    if not blocks or not np.concatenate(chosen).any():
        raise ValueError("fit: nobody eligible applied in the window; nothing to fit on")
    x, group, y = np.vstack(blocks), np.concatenate(groups), np.concatenate(chosen)
    order = np.argsort(group, kind="stable")
    x, group, y = x[order], group[order], y[order]
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    z = (x - x.mean(axis=0)) / scale
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    sizes = np.diff(np.r_[starts, len(group)])
    positive = np.flatnonzero(y)
    positive_group = np.searchsorted(starts, positive, side="right") - 1

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        s = z @ w
        top = np.maximum.reduceat(s, starts)
        e = np.exp(s - np.repeat(top, sizes))
        total = np.add.reduceat(e, starts)
        log_total = np.log(total) + top
        share = e / np.repeat(total, sizes)
        expected = np.add.reduceat(share[:, None] * z, starts)
        value = log_total[positive_group].sum() - s[positive].sum() + l2 * w @ w
        gradient = expected[positive_group].sum(axis=0) - z[positive].sum(axis=0) + 2 * l2 * w
        return float(value), gradient

    start = np.full(len(names), 0.1)
    fitted = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=[(0, None)] * len(names))
    weights = dict.fromkeys(TERM_WEIGHTS.values(), 0.0)
    for name, value in zip(names, fitted.x / scale, strict=True):
        weights[TERM_WEIGHTS[name]] = round(float(value), 4)
    return replace(config, **weights)


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
