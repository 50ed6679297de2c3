"""The offline evaluation harness every model goes through (DOMAIN.md section 7).

All models are scored on the same temporal split and the same candidate sets: offers open to
applications during the evaluated window, eligible for the person, minus what they already
applied to before the cutoff. Relevance is an apply in the window. Every user with an apply
in the window is evaluated; a user a model cannot serve (no scores, no candidates) counts as
zero, never dropped. On simulated data an `oracle` row ranks by the simulator's true utility.

By default the lists measured are the lists served (`recsys.policy.ListPolicy`: the cold-start
blend with the rules, the pool, the publisher and programme caps, ties by offer id), one list
per cut-off k since the caps depend on k; `policy=None` measures the model's own order (top-k
of its scores), for diagnosis. The oracle knows everyone: under the served policy its lists
get the caps, never the blend.

The `redirect` segment (`recsys.redirects`: people refused, or aged out of a programme, who
applied again in the window) is ranked twice through the same policy: `redirect` is the plain
list, `redirect:after` the list continued in the programmes they may join
(`recsys.paths.continuation`, what `/rank` with `after` serves), both scored against what
they applied to next.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys import counterfactual, metrics, rules, schema, taxonomy
from recsys.arrays import OfferArrays, ProfileArrays
from recsys.candidates import candidate_mask, open_during
from recsys.dataset import OfferBatch, UserBatch
from recsys.eligibility import eligible_matrix
from recsys.featureset import FeatureSet
from recsys.filters import FilterColumns
from recsys.geo import haversine_km
from recsys.models.base import Recommender
from recsys.policy import ListPolicy, ModelScores, exclude, group_codes, tie_keys
from recsys.ranking import PAD, top_k
from recsys.redirects import Redirects, redirects

logger = logging.getLogger(__name__)

ORACLE = "oracle"
REDIRECT, REDIRECT_AFTER = "redirect", "redirect:after"  # the plain and path-aware lists
DEFAULT_KS: tuple[int, ...] = (5, 10, 20)


@dataclass
class EvaluationResult:
    """Metrics per model, overall and by segment, with what they were computed on."""

    models: dict[str, dict[str, float]]
    segments: dict[str, dict[str, dict[str, float]]]
    split: dict[str, str]
    data: dict[str, Any]
    recommendations: dict[str, np.ndarray] = field(repr=False, default_factory=dict)
    user_ids: np.ndarray = field(repr=False, default_factory=lambda: np.array([], dtype=str))
    scores: dict[str, np.ndarray] = field(repr=False, default_factory=dict)
    offer_ids: np.ndarray = field(repr=False, default_factory=lambda: np.array([], dtype=str))

    def to_json(self) -> dict[str, Any]:
        """The JSON document `recsys evaluate --json` writes (metric names as `name@k`)."""
        return {
            "models": self.models,
            "segments": self.segments,
            "split": self.split,
            "data": self.data,
        }

    def lists(self) -> pd.DataFrame:
        """Every evaluated person's list of the longest cut-off, for each model: one row per
        listed offer with `person`, `rank` (1 first), `offer`, `score` (the score the list
        was made from) and `model`."""
        frames = []
        for name, recommended in self.recommendations.items():
            person, slot = np.nonzero(recommended != PAD)
            frames.append(
                pd.DataFrame(
                    {
                        "person": self.user_ids[person].astype(str),
                        "rank": slot + 1,
                        "offer": self.offer_ids[recommended[person, slot]].astype(str),
                        "score": self.scores[name][person, slot],
                        "model": name,
                    }
                )
            )
        columns = ["person", "rank", "offer", "score", "model"]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)

    def table(self, metric_names: Iterable[str] | None = None) -> pd.DataFrame:
        """Models × metrics, in the order the models were given."""
        frame = pd.DataFrame(self.models).T
        if metric_names is not None:
            frame = frame[[name for name in metric_names if name in frame.columns]]
        return frame

    def segment_table(self, metric: str = "ndcg@10") -> pd.DataFrame:
        """Segments × models for one metric, with the segment's user count."""
        rows = {
            segment: {name: values.get(metric, np.nan) for name, values in by_model.items()}
            for segment, by_model in self.segments.items()
        }
        frame = pd.DataFrame(rows).T
        frame.insert(
            0,
            "users",
            [
                int(next(iter(by_model.values())).get("users_evaluated", 0))
                for by_model in self.segments.values()
            ],
        )
        return frame


@dataclass
class _Slots:
    """Per-user lists of one model at one cut-off, with the slot-level facts metrics need."""

    recommended: np.ndarray  # (n_users, k) offer index, -1 empty
    distance_km: np.ndarray  # (n_users, k) NaN where unknown or empty
    eligible: np.ndarray  # (n_users, k) bool, True on empty slots
    scores: np.ndarray  # (n_users, k) the score each listed offer was ranked by, NaN empty

    @staticmethod
    def concat(parts: list[_Slots]) -> _Slots:
        return _Slots(*(np.vstack([getattr(p, f) for p in parts]) for f in _SLOT_FIELDS))


_SLOT_FIELDS = ("recommended", "distance_km", "eligible", "scores")


def _to_seconds(stamp: pd.Timestamp) -> int:
    return int(pd.Timestamp(stamp).tz_convert("UTC").timestamp())


def _evaluation_users(feature_set: FeatureSet) -> tuple[UserBatch, np.ndarray, np.ndarray]:
    """Everyone with an apply in the window, known to the feature set or not.

    Visitors first seen in the window without a profile are encoded from an empty profile
    (the front would send nothing about them either) and stay in every mean. Returns the
    batch, each user's row in the feature set (-1 when unknown) and their ids.
    """
    target_users = pd.unique(feature_set.targets["user_key"].astype(str))
    rows = pd.Index(feature_set.user_ids).get_indexer(target_users)
    return feature_set.user_batch(target_users), rows, target_users


def _relevant_lists(
    feature_set: FeatureSet, user_ids: np.ndarray, offer_row: pd.Series
) -> list[np.ndarray]:
    targets = feature_set.targets
    offer_index = offer_row.reindex(targets["offer_id"].astype(str)).to_numpy()
    frame = pd.DataFrame({"user": targets["user_key"].astype(str).to_numpy(), "offer": offer_index})
    frame = frame.dropna().astype({"offer": int}).drop_duplicates()
    grouped = frame.groupby("user")["offer"].apply(lambda s: np.sort(s.to_numpy()))
    return [grouped.get(user, np.array([], dtype=int)) for user in user_ids]


def _restrict(relevant: list[np.ndarray], keep: np.ndarray) -> list[np.ndarray]:
    return [items[keep[items]] for items in relevant]


def _slots(
    recommended: np.ndarray,
    scores: np.ndarray,
    hard_rules: np.ndarray,
    users: ProfileArrays,
    offers: OfferArrays,
) -> _Slots:
    filled = recommended >= 0
    safe = np.where(filled, recommended, 0)
    distance = haversine_km(
        users.lat[:, None], users.lon[:, None], offers.lat[safe], offers.lon[safe]
    )
    distance = np.where(filled, distance, np.nan)
    eligible = np.where(filled, np.take_along_axis(hard_rules, safe, axis=1), True)
    listed = np.where(filled, np.take_along_axis(scores, safe, axis=1), np.nan)
    return _Slots(recommended, distance, eligible, listed)


@dataclass(frozen=True)
class _Lister:
    """Makes each cut-off's lists from scores: the served policy, or the raw top-k."""

    policy: ListPolicy | None
    ks: tuple[int, ...]
    publisher: np.ndarray
    programme: np.ndarray
    keys: np.ndarray

    def lists(
        self,
        scores: np.ndarray,
        mask: np.ndarray,
        known: np.ndarray,
        blends_rules: bool,
        rule_scores: Callable[[], np.ndarray],
    ) -> tuple[dict[int, np.ndarray], np.ndarray]:
        """({k: (n_users, k) offer indices}, the scores they were made from)."""
        policy = self.policy
        if policy is None:  # the model's own order: one top-k, its prefixes
            top = top_k(scores, self.ks[-1], mask)
            return {k: top[:, :k] for k in self.ks}, scores
        served = policy.served_scores(ModelScores(scores, mask), known, blends_rules, rule_scores)
        lists = {
            k: policy.lists(served, mask, k, self.publisher, self.programme, self.keys)
            for k in self.ks
        }
        return lists, served


def _accuracy(
    slots: dict[int, _Slots], relevant: list[np.ndarray], users: np.ndarray | slice
) -> dict[str, float]:
    """`metrics.ranking_metrics` of each cut-off's own lists, in its key order (metric, then
    k; the user counts from the longest lists)."""
    per_k = {
        k: metrics.ranking_metrics(at_k.recommended[users], relevant, [k])
        for k, at_k in slots.items()
    }
    ks = list(per_k)
    values: dict[str, float] = {}
    for key in per_k[ks[0]]:
        metric, _, cut = key.partition("@")
        if cut:
            values.update({f"{metric}@{k}": per_k[k][f"{metric}@{k}"] for k in ks})
        else:
            values[key] = per_k[ks[-1]][key]
    return values


def _beyond_accuracy(
    slots: dict[int, _Slots],
    offers: OfferArrays,
    is_new: np.ndarray,
    publisher_codes: np.ndarray,
) -> dict[str, float]:
    values: dict[str, float] = {}
    n_publishers = int(publisher_codes.max()) + 1 if len(publisher_codes) else 0
    for k, at_k in slots.items():
        top = at_k.recommended
        filled = top >= 0
        values[f"coverage@{k}"] = metrics.catalog_coverage(top, len(offers))
        values[f"new_offer_share@{k}"] = metrics.new_offer_share(top, is_new, k)
        distance = at_k.distance_km[filled]
        values[f"mean_distance_km@{k}"] = (
            float(np.nanmean(distance)) if np.isfinite(distance).any() else float("nan")
        )
        n_filled = int(filled.sum())
        values[f"ineligible_rate@{k}"] = (
            float((~at_k.eligible[filled]).sum() / n_filled) if n_filled else 0.0
        )
        programme_share = metrics.exposure_share(top, offers.programme, len(taxonomy.PROGRAMMES), k)
        for programme, share in zip(taxonomy.PROGRAMMES, programme_share, strict=True):
            values[f"exposure.{programme}@{k}"] = float(share)
        values[f"gini_programme@{k}"] = metrics.gini(programme_share)
        publisher_share = metrics.exposure_share(top, publisher_codes, n_publishers, k)
        values[f"gini_publisher@{k}"] = metrics.gini(publisher_share)
        values[f"top_publisher_share@{k}"] = float(publisher_share.max()) if n_publishers else 0.0
    return values


def _segments(
    users: UserBatch,
    history_rows: np.ndarray,
    history_count: np.ndarray,
    offers: OfferArrays,
    is_new: np.ndarray,
    regions: np.ndarray,
) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """Segment name -> (user mask, offer mask restricting relevance or None)."""
    profile = users.arrays
    warm = history_count > 0
    has_profile = history_rows >= 0
    segments: dict[str, tuple[np.ndarray, np.ndarray | None]] = {
        "warm": (warm, None),
        "cold": (~warm & has_profile, None),
        "cold_quiz_only": (~warm & profile.has_quiz, None),
        "anonymous": (~has_profile, None),
        "new_offers": (np.ones(len(users), dtype=bool), is_new),
    }
    # The age bands of the whole project (`schema.CANDIDATE_AGE_BANDS`, the encoder's too).
    band = np.searchsorted(schema.CANDIDATE_AGE_BAND_EDGES, profile.age, side="right")
    for code, name in enumerate(schema.CANDIDATE_AGE_BANDS):
        segments[f"age:{name}"] = (~np.isnan(profile.age) & (band == code), None)
    segments["age:unknown"] = (np.isnan(profile.age), None)
    for code, programme in enumerate(taxonomy.PROGRAMMES):
        segments[f"programme:{programme}"] = (
            np.ones(len(users), dtype=bool),
            offers.programme == code,
        )
    for region in sorted({r for r in regions if isinstance(r, str) and r}):
        segments[f"region:{region}"] = (regions == region, None)
    return segments


def _redirect_lists(
    redirect: Redirects,
    index: np.ndarray,
    mask: np.ndarray,
    hard_rules: np.ndarray,
    profiles: ProfileArrays,
    offers: OfferArrays,
    columns: Callable[[], FilterColumns],
    lister: _Lister,
    raw: dict[str, tuple[np.ndarray, np.ndarray, bool]],
    rule_scores: Callable[[], np.ndarray],
    out: dict[str, dict[str, dict[int, list[_Slots]]]],
) -> None:
    """The plain and path-aware lists of the redirect segment's members among the batch
    `index` (positions of the evaluated users), appended to `out[variant][model][k]`."""
    chosen = np.flatnonzero(np.isin(redirect.members, index))
    if not len(chosen):
        return
    local = redirect.members[chosen] - index[0]
    plain = mask[local]  # a copy: fancy indexing
    plain[np.arange(len(chosen)), redirect.offer[chosen]] = False
    after = plain & redirect.narrowed(chosen, offers, columns())
    people = profiles.take(local)
    rules = hard_rules[local]

    def local_rules() -> np.ndarray:
        return rule_scores()[local]

    for name, (scores, known, blends) in raw.items():
        for variant, candidates in ((REDIRECT, plain), (REDIRECT_AFTER, after)):
            lists, served = lister.lists(
                scores[local], candidates, known[local], blends, local_rules
            )
            for k, recommended in lists.items():
                out[variant][name][k].append(_slots(recommended, served, rules, people, offers))


def _with_logged_visitors(
    feature_set: FeatureSet, user_ids: np.ndarray, logged: pd.DataFrame
) -> tuple[UserBatch, np.ndarray, np.ndarray]:
    """`_evaluation_users`' users followed by the logs' other visitors (batch, feature-set
    rows, ids)."""
    visitors = pd.unique(logged["user_key"].astype(str))
    extra = visitors[~np.isin(visitors, user_ids)]
    ids = np.concatenate([np.asarray(user_ids, dtype=object), extra.astype(object)])
    rows = pd.Index(feature_set.user_ids).get_indexer(ids)
    return feature_set.user_batch(ids), rows, ids


COUNTERFACTUAL_POSITIONS = 20  # θ reported in the JSON, positions 1..20


def _estimated_applications(
    logged: pd.DataFrame,
    slots: dict[str, dict[int, _Slots]],
    user_ids: np.ndarray,
    offer_row: pd.Series,
) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """IPS and SNIPS applications per 1,000 logged lists of each model's lists at each k
    ({model: {metric@k: value}}), and what they were estimated from (for `data`)."""
    list_id = pd.factorize(logged["requestId"].astype(str))[0]
    n_lists = int(list_id.max()) + 1 if len(list_id) else 0
    offer = offer_row.reindex(logged["offer_id"].astype(str)).fillna(-1).to_numpy(np.int64)
    position = logged["position"].to_numpy(np.int64)
    clicked = logged["clicked"].to_numpy(bool)
    prints = counterfactual.LoggedLists(
        list_id=list_id.astype(np.int64),
        user=pd.Index(user_ids.astype(str)).get_indexer(logged["user_key"].astype(str)),
        offer=offer,
        position=position,
        applied=logged["applied"].to_numpy(bool),
        n_lists=n_lists,
    )
    theta = counterfactual.position_propensities(
        pd.factorize(logged["offer_id"].astype(str))[0], position, clicked
    )
    values: dict[str, dict[str, float]] = {}
    for name, by_k in slots.items():
        values[name] = {}
        for k, at_k in by_k.items():
            found = counterfactual.estimate(prints, at_k.recommended, theta)
            for key in ("ips", "ips_se", "snips", "snips_se"):
                values[name][f"{key}@{k}"] = 1000.0 * found[key]
            values[name][f"ips_coverage@{k}"] = found["coverage"]
    summary = {
        "model": "position-based: P(apply | shown at r) = theta_r * gamma(visitor, offer)",
        "lists": n_lists,
        "prints": len(logged),
        "visitors": int(logged["user_key"].nunique()),
        "clicks": int(clicked.sum()),
        "applications": int(prints.applied.sum()),
        "logged_applications_per_1000": 1000.0 * float(prints.applied.sum()) / max(n_lists, 1),
        "propensities": [float(t) for t in theta[1 : COUNTERFACTUAL_POSITIONS + 1]],
    }
    return values, summary


def evaluate(
    feature_set: FeatureSet,
    models: dict[str, Recommender],
    ks: tuple[int, ...] = DEFAULT_KS,
    truth_dir: Path | None = None,
    batch_size: int = 1024,
    progress: Callable[[int, int], None] | None = None,
    policy: ListPolicy | None = ListPolicy(),  # noqa: B008 (frozen: shared safely)
    at: int | None = None,
    estimate_applications: bool = False,
) -> EvaluationResult:
    """Score every model on the feature set's evaluated window and compute all metrics.

    Args:
        feature_set: a loaded feature set (its targets are the window's applies).
        models: trained models by display name (baselines included).
        ks: cut-offs.
        truth_dir: the simulator's ground truth; adds the `oracle` row when given.
        batch_size: users scored at once (bounds memory to batch × catalog floats).
        progress: called with (users done, users total) after each batch.
        policy: how lists are made from scores (the served policy by default); None: the
            model's own order.
        at: epoch seconds: rank everyone at this one instant (the offers open then, as a
            service ranking at that instant offers them) instead of over the window.
        estimate_applications: also make the lists of every visitor the window's logs
            served and estimate, from those logs, the applications each model's lists would
            have generated (`recsys.counterfactual`: `ips@k`, `snips@k` and their standard
            errors, applications per 1,000 logged lists; `ips_coverage@k`). Needs the feature
            set's logged prints; the accuracy metrics stay over the users with an apply.
    """
    if not models and truth_dir is None:
        raise ValueError("models: give at least one model to evaluate")
    ks = tuple(sorted(set(ks)))
    users, history_rows, user_ids = _evaluation_users(feature_set)
    n_evaluated = len(users)
    logged = feature_set.logged() if estimate_applications else None
    if estimate_applications and logged is None:
        raise ValueError(
            f"feature set {feature_set.path}: no logged prints to estimate applications "
            "from; rebuild it with `recsys features --force`"
        )
    if logged is not None and not logged["clicked"].any():
        logged = None  # no list led to a click (no prints, as on public benchmark data)
    if logged is not None:  # the logs' visitors without an apply are listed after the others
        users, history_rows, user_ids = _with_logged_visitors(feature_set, user_ids, logged)
    offer_batch = OfferBatch(
        np.asarray(feature_set.offer_ids, dtype=object),
        feature_set.offer_features,
        feature_set.offer_arrays,
    )
    window_start = _to_seconds(feature_set.window_start)
    window_end = _to_seconds(feature_set.window_end)
    window_offers, clock = offer_batch.arrays, at
    if at is None:
        window_offers = open_during(offer_batch.arrays, window_start, window_end)
        clock = window_start
    offer_row = pd.Series(np.arange(len(offer_batch)), index=offer_batch.ids.astype(str))
    relevant = _relevant_lists(feature_set, user_ids, offer_row)
    is_new = feature_set.is_new_offer
    history = feature_set.applies
    known = history_rows >= 0
    history_count = np.zeros(len(users), dtype=np.int64)
    history_count[known] = np.diff(feature_set.interactions.indptr)[history_rows[known]]
    lister = _Lister(policy, ks, *group_codes(offer_batch.arrays), tie_keys(offer_batch.ids))

    truth = None
    names = list(models)
    if truth_dir is not None:
        from recsys.simulation.truth import expected_utility, load_truth

        truth = load_truth(truth_dir)
        names.append(ORACLE)

    slots: dict[str, dict[int, list[_Slots]]] = {name: {k: [] for k in ks} for name in names}
    overrides = policy is not None and policy.rules_remote_overrides
    redirect = redirects(
        user_ids,
        feature_set.history(),
        feature_set.targets,
        offer_batch.ids,
        offer_batch.arrays,
        users.arrays,
        feature_set.window_start,
    )
    # What the continuation's filters read: made when a member of the segment first needs it.
    filter_columns = functools.cache(functools.partial(FilterColumns.of, feature_set.offers))
    redirect_slots: dict[str, dict[str, dict[int, list[_Slots]]]] = {
        variant: {name: {k: [] for k in ks} for name in names}
        for variant in (REDIRECT, REDIRECT_AFTER)
    }

    for start in range(0, len(users), batch_size):
        index = np.arange(start, min(start + batch_size, len(users)))
        batch = users.take(index)
        rows = history_rows[index]
        # Rows of unknown users (-1) are zeroed: they applied to nothing before the cutoff.
        applied = (sp.diags((rows >= 0).astype(np.float32)) @ history[np.maximum(rows, 0)]).tocsr()
        # Hard rules alone (age, programme, place, status), to audit what was recommended.
        hard_rules = eligible_matrix(window_offers, batch.arrays, clock)
        mask = exclude(candidate_mask(window_offers, batch.arrays, clock), applied)

        # The same for every model of the batch: computed once, when a model first needs it.
        rule_scores = functools.cache(
            functools.partial(rules.incumbent_scores, batch.arrays, offer_batch.arrays, overrides)
        )
        # Each row's scores, whom it knows and whether it blends the rules itself.
        raw: dict[str, tuple[np.ndarray, np.ndarray, bool]] = {}
        for name, model in models.items():
            scores = np.asarray(model.score(batch, offer_batch), dtype=float)
            raw[name] = (scores, model.knows(batch.ids), model.blends_rules)
        if truth is not None:
            # Anonymous keys are no simulated person: the oracle cannot serve them either.
            ids = batch.ids.astype(str)
            person = np.isin(ids, truth.people.ids)
            utility = np.full((len(batch), len(offer_batch)), np.nan)
            if person.any():
                utility[person] = expected_utility(truth, ids[person], offer_batch.ids.astype(str))
            raw[ORACLE] = (utility, np.ones(len(batch), dtype=bool), False)
        for name, (scores, known_users, blends) in raw.items():
            lists, served = lister.lists(scores, mask, known_users, blends, rule_scores)
            for k, recommended in lists.items():
                slots[name][k].append(
                    _slots(recommended, served, hard_rules, batch.arrays, offer_batch.arrays)
                )
        _redirect_lists(
            redirect,
            index,
            mask,
            hard_rules,
            batch.arrays,
            offer_batch.arrays,
            filter_columns,
            lister,
            raw,
            rule_scores,
            redirect_slots,
        )
        if progress is not None:
            progress(int(index[-1]) + 1, len(users))

    every = {
        name: {k: _Slots.concat(parts) for k, parts in by_k.items()} for name, by_k in slots.items()
    }
    estimated = (
        _estimated_applications(logged, every, user_ids, offer_row)
        if logged is not None
        else ({}, {})
    )
    evaluated = slice(0, n_evaluated)
    merged = {
        name: {
            k: _Slots(*(getattr(s, f)[evaluated] for f in _SLOT_FIELDS)) for k, s in by_k.items()
        }
        for name, by_k in every.items()
    }
    users, history_rows, user_ids = (
        users.take(np.arange(n_evaluated)),
        history_rows[evaluated],
        user_ids[evaluated],
    )
    known, history_count = known[evaluated], history_count[evaluated]
    relevant = relevant[evaluated]
    publisher_codes = pd.factorize(offer_batch.arrays.publisher_ids)[0]
    regions = feature_set.profiles["region"].to_numpy(dtype=object)
    user_regions = np.where(known, regions[np.where(known, history_rows, 0)], None)
    segments = _segments(
        users, history_rows, history_count, offer_batch.arrays, is_new, user_regions
    )

    results: dict[str, dict[str, float]] = {}
    by_segment: dict[str, dict[str, dict[str, float]]] = {name: {} for name in segments}
    for name, model_slots in merged.items():
        values = _accuracy(model_slots, relevant, slice(None))
        values.update(_beyond_accuracy(model_slots, offer_batch.arrays, is_new, publisher_codes))
        values.update(estimated[0].get(name, {}))
        results[name] = values
        for segment, (user_mask, offer_mask) in segments.items():
            segment_relevant = [relevant[i] for i in np.flatnonzero(user_mask)]
            if offer_mask is not None:
                segment_relevant = _restrict(segment_relevant, offer_mask)
            by_segment[segment][name] = _accuracy(model_slots, segment_relevant, user_mask)
    if len(redirect.members):
        for variant, by_name in redirect_slots.items():
            by_segment[variant] = {
                name: _accuracy(
                    {k: _Slots.concat(parts) for k, parts in by_k.items()},
                    redirect.relevant,
                    slice(None),
                )
                for name, by_k in by_name.items()
            }
    by_segment = {
        segment: values
        for segment, values in by_segment.items()
        if next(iter(values.values()), {}).get("users_evaluated", 0) > 0
    }
    split = {key: str(value) for key, value in feature_set.split.to_dict().items()}
    data = {
        "fingerprint": feature_set.manifest.get("data_fingerprint"),
        "window_start": str(feature_set.window_start),
        "window_end": str(feature_set.window_end),
        "users_evaluated": len(users),
        "users_known": int(known.sum()),
        "users_warm": int((history_count > 0).sum()),
        "offers": len(offer_batch),
        "new_offers": int(is_new.sum()),
        "target_applies": int(sum(len(items) for items in relevant)),
        "redirect": redirect.counts,
    }
    data["policy"] = "raw" if policy is None else {"served": policy.to_dict()}
    if estimate_applications:
        data["counterfactual"] = estimated[1] if logged is not None else {"lists": 0}
    longest = {name: by_k[ks[-1]] for name, by_k in merged.items()}
    return EvaluationResult(
        results,
        by_segment,
        split,
        data,
        {name: s.recommended for name, s in longest.items()},
        user_ids,
        {name: s.scores for name, s in longest.items()},
        offer_batch.ids.astype(str),
    )
