"""The project's main model: a learned model for people with a history, the rules for the rest.

For a visitor u with n training interactions (distinct offers interacted with) and an offer o:

    hybrid(u, o) = (1 − w) · rules_z(u, o) + w · learned_z(u, o)
                   + geo_weight · geo(u, o)
                   + popularity_weight · popularity_z(o)
                   + freshness_weight · fresh(o) · [u is located]
    w = cold_weight + (1 − cold_weight) · n / (n + blend_halfpoint)

- `rules_z` is the incumbent engine without its remote overrides (`incumbent_local`: quiz
  match and distance within the visitor's radius), standardised by one global mean and
  standard deviation measured on training users. An affine map keeps the engine's order:
  with `cold_weight`, `geo_weight`, `popularity_weight` and `freshness_weight` at 0, a
  visitor without history gets exactly the engine's ranking.
- `learned_z` is the learned model's score standardised per user, by the mean and standard
  deviation of that user's scores over the training offers (computed once at training), so
  that the learned model (LightFM by default) and the rules speak on the same scale; a
  visitor without history uses the average of those statistics. Unlike a normalisation over
  the offers being scored, a score never depends on which other offers are in the batch.
- `geo` is the gravity-model decay −log(1 + d / radius) of the distance d between visitor
  and offer (its nearest address, as eligibility measures it:
  `recsys.eligibility.offer_distances_km`) relative to the visitor's radius (0 on the spot,
  −0.69 at the radius, −2.4 at ten radii). The engine's own geography is linear and flat
  beyond the radius, so it cannot tell an offer 30 km away from one across France; this
  term can. A fully remote offer counts as at the radius wherever the visitor is; where
  remote is possible, only `remote_distance_share` of the distance term is kept; an unknown
  distance counts as at the radius.
- `popularity_z` is the offer's log training popularity (time-decayed interaction weights),
  standardised over the offers posted before the cutoff: a proxy of its quality. An offer
  posted after the cutoff has had no chance to be seen, so it gets the average (0), not the
  bottom.
- `fresh` = −log(1 + age / freshness_days), the age of the offer at the cutoff in days (0
  for an offer posted since): people apply to offers soon after they are posted, when lists
  sorted by date show them. It counts only for a visitor the model can place: a fresh offer
  is worth showing when it is near, and for a visitor of unknown whereabouts the national
  popularity is the better guess.

A visitor whose profile gives no coordinates but who has a history is placed at the
interaction-weighted mean position of the offers they interacted with (fully remote ones
aside), for the rules and the geography alike. Rule scores depend on the profile's
coordinates only, so the engine is fed the better input, not changed.

The defaults were tuned on the validation window of the simulator's demo preset. The
learned model is asked only about the visitors whose weight w is positive. The hybrid holds
its learned model and saves both into one folder: the learned model's arrays prefixed
`learned.`, its own `hybrid.`, and one config.json whose `learned_params` is the learned
model's config.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numba
import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys import taxonomy
from recsys.arrays import OfferArrays, ProfileArrays
from recsys.dataset import OfferBatch, PreparedOffers, TrainingData, UserBatch
from recsys.geo import EARTH_RADIUS_KM, unit_vectors
from recsys.models import MODEL_CLASSES, create_model, model_class
from recsys.models._common import lookup, require_trained, row_chunks, unicode_ids
from recsys.models.base import ModelConfig, Recommender
from recsys.rules import (
    GEO_SHARE,
    NO_LOCATION_SCORE,
    TABLE_MASKS,
    TABLE_SHIFTS,
    TAXONOMY_SHARE,
    incumbent_scores,
    offer_tags,
    search_radius_km,
    taxonomy_tables,
)

logger = logging.getLogger(__name__)

LEARNED_PREFIX = "learned."
OWN_PREFIX = "hybrid."
RULES_SAMPLE_USERS = 2000  # training users whose rule scores set the global standardisation
MIN_SPREAD = 1e-9  # a standard deviation below this is rounding noise around a constant
DAY_SECONDS = 86_400
_FULL = taxonomy.REMOTE_VALUES.index("full")
_POSSIBLE = taxonomy.REMOTE_VALUES.index("possible")


@dataclass
class HybridConfig(ModelConfig):
    """The blend's knobs (see the module docstring) and the learned model to blend.

    `learned` names a registered model and `learned_params` its config (validated here);
    the learned model's seed defaults to the hybrid's. Every knob but `learned`,
    `learned_params` and `seed` acts at scoring time only.
    """

    learned: str = "lightfm"
    learned_params: dict[str, Any] = field(default_factory=dict)
    blend_halfpoint: float = 3.0
    cold_weight: float = 0.0
    geo_weight: float = 3.0
    remote_distance_share: float = 0.5
    popularity_weight: float = 0.8
    freshness_weight: float = 1.0
    freshness_days: float = 15.0

    def __post_init__(self) -> None:
        if self.learned == HybridModel.name or self.learned not in MODEL_CLASSES:
            choices = sorted(set(MODEL_CLASSES) - {HybridModel.name})
            raise ValueError(f"HybridConfig.learned: {self.learned!r} is not one of {choices}")
        if not isinstance(self.learned_params, dict):
            raise ValueError(
                f"HybridConfig.learned_params: expected a mapping, got {self.learned_params!r}"
            )
        model_class(self.learned).config_class.from_dict(self.learned_params)
        for name in ("blend_halfpoint", "geo_weight", "popularity_weight", "freshness_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"HybridConfig.{name}: must be >= 0, got {getattr(self, name)}")
        for name in ("cold_weight", "remote_distance_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(
                    f"HybridConfig.{name}: must be within [0, 1], got {getattr(self, name)}"
                )
        if self.freshness_days <= 0:
            raise ValueError(f"HybridConfig.freshness_days: must be > 0, got {self.freshness_days}")


def history_weight(n_interactions: np.ndarray, halfpoint: float, floor: float = 0.0) -> np.ndarray:
    """w = floor + (1 − floor) · n / (n + halfpoint): `floor` without history, → 1 as n grows.

    A half-point of 0 gives w = 1 to anyone with a history.
    """
    n = np.asarray(n_interactions, dtype=float)
    share = np.divide(n, n + halfpoint, out=np.zeros_like(n), where=n > 0)
    return floor + (1.0 - floor) * share


@numba.njit(cache=True, nogil=True)
def geo_affinity(ratio: float, fully_remote: bool, partly_remote: bool, share: float) -> float:
    """Gravity decay −log(1 + d / radius) of one (visitor, offer), from ratio = d / radius,
    remote-aware (module docstring): fully remote offers and unknown distances (NaN ratio)
    score −log 2, as at the radius; where remote is possible, `share` of the decay is kept.

    Compiled (numba) for `_blend`, callable from Python alike. Compiled code is cached and
    the cache only sees this file change: every constant from elsewhere comes as an argument.
    """
    if math.isnan(ratio) or fully_remote:
        return -math.log(2.0)
    affinity = -math.log(1.0 + ratio)
    return share * affinity if partly_remote else affinity


@numba.njit(cache=True, nogil=True)
def _blend(
    user_xyz: np.ndarray,
    radius: np.ndarray,
    located: np.ndarray,
    tables: np.ndarray,
    weight: np.ndarray,
    learned: np.ndarray,
    learned_row: np.ndarray,
    learned_stats: np.ndarray,
    offer_xyz: np.ndarray,
    more_count: np.ndarray,
    more_xyz: np.ndarray,
    tags: np.ndarray,
    remote: np.ndarray,
    offer_terms: np.ndarray,
    rows: np.ndarray,
    constants: np.ndarray,
    table_shifts: np.ndarray,
    table_masks: np.ndarray,
    remote_codes: np.ndarray,
    out: np.ndarray,
) -> None:
    """The blend of the module docstring into `out[i, j]`, visitor i and offer `rows[j]`.

    One pass per pair instead of some forty numpy passes over (visitor, offer) arrays: a
    request scores tens of thousands of candidates, and the passes, not the arithmetic, were
    most of its time. The rules are the engine's (`incumbent`) without its remote overrides:
    distance as `geo.pairwise_km` to the offer's nearest address (NaN where either side is
    unplaced): its own point `offer_xyz[o]` and its other addresses, the next `more_count[j]`
    rows of `more_xyz` for the j-th offer scored (in the order of `rows`); taxonomy part from
    `incumbent.taxonomy_tables` (indexed by `incumbent.TABLE_SHIFTS` / `TABLE_MASKS`).
    Visitor i with learned_row[i] >= 0 blends in the learned score `learned[learned_row[i]]`
    standardised by learned_stats[i] (mean, std) with weight[i]; offer_terms[o] holds the
    offer's weighted popularity and freshness, the latter for located visitors only.

    `constants` (`_blend_constants`): twice the Earth's radius; the standardised rules as one
    affine map of their taxonomy and place parts (two slopes, an offset); the place score of
    an unknown distance; the geography weight; the share of it kept where remote is
    possible. `remote_codes`: the codes of fully and partly remote offers. They are
    arguments, not globals, because numba's cache would keep a global's value from another
    file after that file changed.
    """
    two_radii, match_slope, place_slope, offset = constants[:4]
    no_location, geo_weight, share = constants[4:7]
    full_code, possible_code = remote_codes[0], remote_codes[1]
    several = more_xyz.shape[0] > 0  # most lists: no candidate with other addresses
    for i in range(out.shape[0]):
        ux, uy, uz, reach = user_xyz[i, 0], user_xyz[i, 1], user_xyz[i, 2], radius[i]
        blended, w, fresh = learned_row[i], weight[i], 1.0 if located[i] else 0.0
        mean, std = learned_stats[i, 0], learned_stats[i, 1]
        # The squared chord past which an offer is surely beyond the radius (by a margin far
        # above rounding): a fully remote offer there has place 0 and the remote affinity,
        # whatever its distance, and skips the arcsine. Remote offers are most candidates.
        half_angle = reach / two_radii
        past_reach = (
            (2.0 * math.sin(half_angle)) ** 2 * (1.0 + 1e-9)
            if half_angle < math.pi / 2
            else math.inf
        )
        more = 0  # the first row of `more_xyz` of offer j
        for j in range(rows.shape[0]):
            o = rows[j]
            dx, dy, dz = ux - offer_xyz[o, 0], uy - offer_xyz[o, 1], uz - offer_xyz[o, 2]
            squared = dx * dx + dy * dy + dz * dz
            if several:  # the chord grows with d: the nearest address has the least
                for a in range(more, more + more_count[j]):
                    dx, dy, dz = ux - more_xyz[a, 0], uy - more_xyz[a, 1], uz - more_xyz[a, 2]
                    other = dx * dx + dy * dy + dz * dz
                    if other < squared or math.isnan(squared):
                        squared = other
                more += more_count[j]
            if math.isnan(squared):  # either side unplaced: the distance is unknown
                ratio, place = math.nan, no_location
            elif squared > past_reach and remote[o] == full_code:
                ratio, place = math.inf, 0.0
            else:  # distance / radius
                ratio = two_radii * math.asin(min(math.sqrt(squared) / 2.0, 1.0)) / reach
                place = max(0.0, 1.0 - ratio)
            tag = tags[o]
            match = 0.0
            for g in range(table_shifts.shape[0]):
                match += tables[i, g, (tag >> table_shifts[g]) & table_masks[g]]
            score = match_slope * match + place_slope * place + offset
            if blended >= 0:
                z = (learned[blended, j] - mean) / std
                # A pair the learned model cannot score (NaN) counts as the user's average.
                score = (1.0 - w) * score + w * (0.0 if math.isnan(z) else z)
            if geo_weight > 0:
                code = remote[o]
                affinity = geo_affinity(ratio, code == full_code, code == possible_code, share)
                score += geo_weight * affinity
            out[i, j] = score + offer_terms[o, 0] + fresh * offer_terms[o, 1]


def _blend_constants(rules_stats: np.ndarray, config: HybridConfig) -> np.ndarray:
    """`_blend`'s scalar constants, in its order."""
    mean, std = float(rules_stats[0]), float(rules_stats[1])
    # The engine's total, then its standardisation, as one affine map of its two parts.
    to_z = 1.0 / ((TAXONOMY_SHARE + GEO_SHARE) * std)
    return np.array(
        [
            2.0 * EARTH_RADIUS_KM,
            TAXONOMY_SHARE * to_z,
            GEO_SHARE * to_z,
            -mean / std,
            NO_LOCATION_SCORE,
            config.geo_weight,
            config.remote_distance_share,
        ]
    )


def _other_addresses(
    more_points: np.ndarray, more_count: np.ndarray, columns: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The other addresses of offers `columns` as `_blend` reads them: how many each has
    and their unit vectors, one offer's after the other's in the order of `columns`. Most
    offers have one address: only the others are gathered."""
    counts = more_count[columns]
    if not counts.any():
        return counts, np.zeros((0, 3))
    several = columns[np.flatnonzero(counts)].tolist()
    points = np.vstack([more_points[row] for row in several])
    return counts, np.ascontiguousarray(unit_vectors(points[:, 0], points[:, 1]))


def freshness(posted_at: np.ndarray, cutoff: int, days: float) -> np.ndarray:
    """−log(1 + age / days) with the age in days at `cutoff`, 0 for offers posted since."""
    age_days = np.maximum(cutoff - np.asarray(posted_at, dtype=np.int64), 0) / DAY_SECONDS
    return -np.log1p(age_days / days)


def history_location(
    interactions: sp.spmatrix, offers: OfferArrays
) -> tuple[np.ndarray, np.ndarray]:
    """Interaction-weighted mean position of each row's located offers, NaN without any.

    Fully remote offers say nothing of where the person lives and are left out.
    """
    located = np.flatnonzero(np.isfinite(offers.lat) & np.isfinite(offers.lon))
    located = located[offers.remote[located] != _FULL]
    weights = sp.csr_matrix(interactions)[:, located]
    total = np.asarray(weights.sum(axis=1)).ravel()
    safe_total = np.where(total > 0, total, 1.0)
    lat = np.where(total > 0, (weights @ offers.lat[located]) / safe_total, np.nan)
    lon = np.where(total > 0, (weights @ offers.lon[located]) / safe_total, np.nan)
    return lat, lon


def _spread(values: np.ndarray) -> float:
    """Standard deviation to divide by; 1 for (numerically) constant values, left unscaled."""
    std = float(np.std(values))
    return std if std > MIN_SPREAD else 1.0


@dataclass(frozen=True)
class _Blend:
    user_ids: np.ndarray  # unicode: users with a history and a usable learned score
    history: np.ndarray  # float (n_users,): training interactions of each
    learned_mean: np.ndarray  # float (n_users,): mean learned score over training offers
    learned_std: np.ndarray  # float (n_users,): its standard deviation (> MIN_SPREAD)
    cold_learned_stats: np.ndarray  # float (2,): mean of those means and of those deviations
    home_lat: np.ndarray  # float (n_users,): where their history is, NaN when unknown
    home_lon: np.ndarray  # float (n_users,)
    offer_ids: np.ndarray  # unicode: training offers
    popularity: np.ndarray  # float (n_offers,): standardised log popularity
    rules_stats: np.ndarray  # float (2,): mean and standard deviation of the rule scores
    cutoff: np.ndarray  # int64 (): the training cutoff, epoch seconds


class HybridModel(Recommender):
    """Learned model and rules engine blended by the visitor's amount of history."""

    name = "hybrid"
    config_class = HybridConfig
    config: HybridConfig
    blends_rules = True

    def __init__(self, config: HybridConfig | None = None) -> None:
        super().__init__(config)
        params = {"seed": self.config.seed, **self.config.learned_params}
        self.learned = create_model(self.config.learned, params)
        self._state: _Blend | None = None

    @property
    def checkpoints(self) -> bool:
        return self.learned.checkpoints

    def train(
        self,
        data: TrainingData,
        progress: Callable[[int, int], None] | None = None,
        checkpoint: Callable[[int], None] | None = None,
    ) -> None:
        """Train the learned model, then measure what the blend standardises with.

        `progress(done, total)` is forwarded to the learned model, and `checkpoint(epochs)`
        when it `checkpoints` (LightFM: see its `train`); at a checkpoint the blend is measured
        first, so the hybrid scores as trained so far.
        """
        started = time.perf_counter()
        hooks: dict[str, Callable[[int], None]] = {}
        if checkpoint is not None and self.learned.checkpoints:

            def measured(epochs: int) -> None:
                self._measure(data)
                checkpoint(epochs)

            hooks["checkpoint"] = measured
        self.learned.train(data, progress=progress, **hooks)
        self._measure(data)
        logger.info(
            "fitted hybrid (%s) in %.1fs: %d of %d users with a learned score",
            self.config.learned,
            time.perf_counter() - started,
            len(self._state.user_ids),
            len(data.users),
        )

    def _measure(self, data: TrainingData) -> None:
        """The statistics the blend needs, from the data and the trained learned model."""
        history = data.interactions.getnnz(axis=1)
        warm = np.flatnonzero(history > 0)
        mean, std = self._learned_stats(data.users.take(warm), data.offers)
        usable = np.isfinite(mean) & (std > MIN_SPREAD)  # NaN compares False
        if not usable.any():
            raise ValueError(
                f"hybrid: the learned model {self.config.learned!r} scores no training user"
            )
        warm = warm[usable]
        home_lat, home_lon = history_location(data.interactions[warm], data.offers.arrays)
        cutoff = int(pd.Timestamp(data.cutoff).timestamp())
        popularity = np.log1p(np.asarray(data.interactions.sum(axis=0), dtype=float).ravel())
        seen = data.offers.arrays.posted_at < cutoff
        reference = popularity[seen] if seen.any() else popularity
        self._state = _Blend(
            user_ids=unicode_ids(data.users.ids[warm]),
            history=history[warm].astype(float),
            learned_mean=mean[usable],
            learned_std=std[usable],
            cold_learned_stats=np.array([mean[usable].mean(), std[usable].mean()]),
            home_lat=home_lat,
            home_lon=home_lon,
            offer_ids=unicode_ids(data.offers.ids),
            popularity=(popularity - reference.mean()) / _spread(reference),
            rules_stats=self._rules_stats(data),
            cutoff=np.array(cutoff, dtype=np.int64),
        )

    def _learned_stats(self, users: UserBatch, offers: OfferBatch) -> tuple[np.ndarray, np.ndarray]:
        """Per-user mean and standard deviation of the learned scores over `offers`."""
        mean = np.full(len(users), np.nan)
        std = np.full(len(users), np.nan)
        for rows in row_chunks(len(users), len(offers)):
            scores = self.learned.score(users.take(np.arange(rows.start, rows.stop)), offers)
            scored = np.flatnonzero(np.isfinite(scores).any(axis=1))
            mean[rows.start + scored] = np.nanmean(scores[scored], axis=1)
            std[rows.start + scored] = np.nanstd(scores[scored], axis=1)
        return mean, std

    def _rules_stats(self, data: TrainingData) -> np.ndarray:
        """Mean and standard deviation of the rule scores of a user sample × training offers."""
        rng = np.random.default_rng(self.config.seed)
        n_sample = min(len(data.users), RULES_SAMPLE_USERS)
        sample = np.sort(rng.choice(len(data.users), size=n_sample, replace=False))
        rules = incumbent_scores(
            data.users.arrays.take(sample), data.offers.arrays, remote_overrides=False
        )
        return np.array([rules.mean(), _spread(rules)])

    def _located(self, users: UserBatch, rows: np.ndarray) -> ProfileArrays:
        """The profiles, placed at their history's position where they give no coordinates."""
        state, profiles = self._state, users.arrays
        fill = (rows >= 0) & (np.isnan(profiles.lat) | np.isnan(profiles.lon))
        if not fill.any():
            return profiles
        lat, lon = profiles.lat.copy(), profiles.lon.copy()
        lat[fill] = state.home_lat[rows[fill]]
        lon[fill] = state.home_lon[rows[fill]]
        return replace(profiles, lat=lat, lon=lon)

    def score(self, users: UserBatch, offers: OfferBatch) -> np.ndarray:
        """The blend of the module docstring, (n_users, n_offers), finite everywhere."""
        return self.score_prepared(users, self.prepare_offers(offers))

    def prepare_offers(self, offers: OfferBatch) -> PreparedOffers:
        """The blend's offer-only terms: rule tags, weighted popularity and freshness, and
        the learned model's own preparation (`inner`)."""
        require_trained(self._state, self.name)
        state, config = self._state, self.config
        cutoff = int(state.cutoff)
        offer_rows = lookup(state.offer_ids, offers.ids)
        unseen = (offer_rows < 0) | (offers.arrays.posted_at >= cutoff)
        popularity = np.where(unseen, 0.0, state.popularity[offer_rows])
        fresh = freshness(offers.arrays.posted_at, cutoff, config.freshness_days)
        return PreparedOffers(
            offers,
            {
                "rule_tags": offer_tags(offers.arrays),
                "xyz": unit_vectors(offers.arrays.lat, offers.arrays.lon),
                # How many other addresses each offer has (`OfferArrays.more_points`): a
                # request gathers the few it scores (`_other_addresses`).
                "more_count": np.array(
                    [0 if points is None else len(points) for points in offers.arrays.more_points],
                    dtype=np.int64,
                ),
                # (n_offers, 2): weighted popularity, weighted freshness (`_blend` reads
                # both of an offer at once).
                "offer_terms": np.column_stack(
                    [config.popularity_weight * popularity, config.freshness_weight * fresh]
                ),
            },
            inner=self.learned.prepare_offers(offers),
        )

    def score_prepared(
        self, users: UserBatch, prepared: PreparedOffers, rows: np.ndarray | None = None
    ) -> np.ndarray:
        """The blend against the prepared offers `rows` (module docstring)."""
        require_trained(self._state, self.name)
        state, config = self._state, self.config
        offers = prepared.offers.arrays
        columns = np.arange(len(offers)) if rows is None else np.asarray(rows, dtype=np.int64)
        user_rows = lookup(state.user_ids, users.ids)
        known = user_rows >= 0
        profiles = self._located(users, user_rows)
        history = np.where(known, state.history[user_rows], 0.0)
        w = history_weight(history, config.blend_halfpoint, config.cold_weight)
        blended = np.flatnonzero(w > 0)
        learned_row = np.full(len(users), -1, dtype=np.int64)
        learned = np.zeros((0, len(columns)))
        if len(blended):
            scored = users if len(blended) == len(users) else users.take(blended)
            learned = self.learned.score_prepared(scored, prepared.inner, rows)
            learned_row[blended] = np.arange(len(blended))
        learned_stats = np.column_stack(
            [
                np.where(known, state.learned_mean[user_rows], state.cold_learned_stats[0]),
                np.where(known, state.learned_std[user_rows], state.cold_learned_stats[1]),
            ]
        )
        out = np.empty((len(users), len(columns)))
        more_count, more_xyz = _other_addresses(
            offers.more_points, prepared.arrays["more_count"], columns
        )
        _blend(
            unit_vectors(profiles.lat, profiles.lon),
            search_radius_km(profiles),
            np.isfinite(profiles.lat) & np.isfinite(profiles.lon),
            taxonomy_tables(profiles),
            w,
            np.ascontiguousarray(learned, dtype=np.float64),
            learned_row,
            learned_stats,
            prepared.arrays["xyz"],
            more_count,
            more_xyz,
            prepared.arrays["rule_tags"],
            offers.remote,
            prepared.arrays["offer_terms"],
            columns,
            _blend_constants(state.rules_stats, config),
            TABLE_SHIFTS,
            TABLE_MASKS,
            np.array([_FULL, _POSSIBLE], dtype=np.int64),
            out,
        )
        return out

    def knows(self, user_ids: np.ndarray) -> np.ndarray:
        """Users with a history and a usable learned score: the blend weighs their learned
        score; anyone else gets the rules, popularity and freshness."""
        require_trained(self._state, self.name)
        return lookup(self._state.user_ids, user_ids) >= 0

    def item_embeddings(self, prepared: PreparedOffers) -> np.ndarray | None:
        """The learned model's vectors of the offers (its part of the preparation)."""
        return None if prepared.inner is None else self.learned.item_embeddings(prepared.inner)

    def get_arrays(self) -> dict[str, np.ndarray]:
        require_trained(self._state, self.name)
        arrays = {LEARNED_PREFIX + key: value for key, value in self.learned.get_arrays().items()}
        for item in fields(_Blend):
            arrays[OWN_PREFIX + item.name] = np.asarray(getattr(self._state, item.name))
        return arrays

    def set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        learned = {
            key.removeprefix(LEARNED_PREFIX): value
            for key, value in arrays.items()
            if key.startswith(LEARNED_PREFIX)
        }
        self.learned.set_arrays(learned)
        self._state = _Blend(
            **{item.name: arrays[OWN_PREFIX + item.name] for item in fields(_Blend)}
        )
