"""A debiased response model: the probability that a shown offer leads to an application.

For a person u shown offer o at position r of a list, the position-based click model reads

    P(click | u, o, r) = e(r) · ρ(u, o),        P(apply | click, u, o) = α(u, o),

with e(r) the probability that a print at position r is examined (e(1) = 1), ρ the
probability that an examined offer is clicked and α the probability that a click becomes an
application. The model ranks by what an application at the top of the list is worth,
log ρ(u, o) + log α(u, o), learned from the print log (`TrainingData.impressions`):

1. **Position bias** (`position_propensities`): e(r) is estimated from the logs by
   intervention harvesting over offers: the same offer is printed at many positions (by
   distance or by date, in lists of different sources and places), and a position-based
   model with one relevance per offer, fitted by alternating maximisation of its Poisson
   likelihood, attributes the change of its click rate with the position to e(r).
   Search-engine landings (one offer's page, at "position 1" with its own click rate) are
   no list prints and are left out of the whole fit.
2. **Clicks, inverse-propensity weighted** (`ips_labels`): every print is an exposure, and its
   click is the outcome divided by the examination probability of its position (clipped at
   `min_propensity`). The expected label is then ρ(u, o) whatever the position the logging
   policy chose, and a logistic loss on it (soft labels) learns ρ without position bias
   (the unbiased pointwise estimator of Saito et al., 2020).
3. **Applications given a click**: a logistic model of α on the clicked prints.

Both ρ and α are logistic functions of the same features (`_Design`): every person feature
crossed with every offer feature (a bilinear form u · W · o), a per-offer intercept (what
the offer's own appeal adds, for offers printed before the cutoff), and pair terms:

- person features: quiz domains, quiz activities, rhythm, motivations, age band, disability,
  whether the person is located, whether they answered the quiz;
- offer features: domain, programme, quiz activities, rhythm, remote mode, paid, SNU,
  open to minors, log places;
- pair terms: the distance relative to the person's radius, log(1 + d / radius), on site and
  where remote is possible, beyond the radius, an unknown distance; and what the person's
  history says of the offer: the share of their interactions on the offer's domain, its
  programme, its publisher and its quiz activities, and whether they have a history.
  In training, a print's own interaction is left out of these shares (leave one out), so a
  click never explains itself; and how the offer answers the person's quiz
  (`profile_matches`: a ticked domain, the share of its activities ticked, the stated
  rhythm), one weight each across every domain, activity and rhythm.

The crosses are the interactions the issue names (quiz × domain and activity, age ×
programme, motivations × paid, rhythm × rhythm, distance against the radius, remote), learned
rather than hand-weighted; the whole fit is an L2-regularised L-BFGS over a few thousand
weights, the offers' intercepts included.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np
import scipy.sparse as sp
from scipy.optimize import minimize

from recsys import taxonomy
from recsys.arrays import OfferArrays, ProfileArrays
from recsys.dataset import Impressions, OfferBatch, PreparedOffers, TrainingData, UserBatch
from recsys.geo import haversine_km
from recsys.models._common import (
    lookup,
    require_trained,
    row_chunks,
    sparse_from_arrays,
    sparse_to_arrays,
    unicode_ids,
)
from recsys.models.base import ModelConfig, Recommender
from recsys.rules import search_radius_km

logger = logging.getLogger(__name__)

AGE_EDGES = np.array([18.0, 26.0, 36.0])  # bands [..18), [18..26), [26..36), [36..), unknown
N_DOMAINS = len(taxonomy.DOMAINS) + 1  # the last column: unknown domain
N_PROGRAMMES = len(taxonomy.PROGRAMMES) + 1
N_ACTIVITIES = len(taxonomy.QUIZ_ACTIVITIES)
N_RHYTHMS = len(taxonomy.RHYTHMS) + 1
N_REMOTE = len(taxonomy.REMOTE_VALUES)
_FULL = taxonomy.REMOTE_VALUES.index("full")
_POSSIBLE = taxonomy.REMOTE_VALUES.index("possible")
N_PAIR = 12  # pair terms, in `_pair_terms`' order
_STATE_PREFIX = "state_"


@dataclass
class ResponseConfig(ModelConfig):
    """Hyperparameters (chosen on the validation window: docs/evaluation.md).

    Attributes:
        l2: L2 penalty on the crossed and pair weights, per training print.
        offer_l2: L2 penalty on the offers' intercepts, per training print.
        max_position: positions beyond share the last one's examination probability.
        min_propensity: examination probabilities are clipped here before dividing by them.
        negative_share: share of the unclicked prints kept for the click model (weighted
            by its inverse), to bound the training time.
        pseudo_negatives: without a print log, each interaction counts as a click at the top
            of a list, and this many offers per interaction the person left alone count as
            unclicked prints at the top.
        max_iterations: L-BFGS iterations per model.
    """

    l2: float = 3e-3
    offer_l2: float = 1e-5
    max_position: int = 30
    min_propensity: float = 0.1
    negative_share: float = 0.3
    pseudo_negatives: int = 5
    max_iterations: int = 150


def position_propensities(
    position: np.ndarray,
    clicked: np.ndarray,
    offer: np.ndarray,
    max_position: int,
    iterations: int = 100,
) -> np.ndarray:
    """Examination probability of each position 1..max_position (index 0 = position 1 = 1).

    Position-based model clicks ~ Poisson(e(r) · rel(o)), fitted by alternating closed-form
    maximisations (rel(o) = clicks of o / Σ e(r) over its prints; e(r) = clicks at r /
    Σ rel(o) over its prints); positions past `max_position` count as `max_position`. Only
    offers printed at several positions inform e; a position never clicked gets the
    smallest estimated probability.
    """
    r = np.minimum(np.asarray(position, dtype=np.int64), max_position) - 1
    y = np.asarray(clicked, dtype=float)
    o = np.asarray(offer, dtype=np.int64)
    n_offers = int(o.max()) + 1 if len(o) else 0
    clicks_r = np.bincount(r, weights=y, minlength=max_position)
    clicks_o = np.bincount(o, weights=y, minlength=n_offers)
    e = np.ones(max_position)
    for _ in range(iterations):
        exposure_o = np.bincount(o, weights=e[r], minlength=n_offers)
        rel = np.divide(clicks_o, exposure_o, out=np.zeros(n_offers), where=exposure_o > 0)
        exposure_r = np.bincount(r, weights=rel[o], minlength=max_position)
        e = np.divide(clicks_r, exposure_r, out=np.zeros(max_position), where=exposure_r > 0)
        if e[0] <= 0:
            raise ValueError("position_propensities: no click at position 1 to anchor e(1) = 1")
        e = e / e[0]
    positive = e > 0
    return np.where(positive, e, e[positive].min())


def ips_labels(
    clicked: np.ndarray, position: np.ndarray, propensity: np.ndarray, min_propensity: float
) -> np.ndarray:
    """Each print's click divided by its position's examination probability, clipped below at
    `min_propensity` (positions past the table share its last entry): 0 for unclicked prints,
    1 / e(r) for clicked ones."""
    r = np.minimum(np.asarray(position, dtype=np.int64), len(propensity)) - 1
    return np.asarray(clicked, dtype=float) / np.maximum(propensity[r], min_propensity)


def _one_hot(codes: np.ndarray, width: int) -> np.ndarray:
    """(n, width) float; code −1 (or ≥ width − 1) goes to the last column (unknown)."""
    codes = np.asarray(codes, dtype=np.int64)
    codes = np.where((codes < 0) | (codes >= width - 1), width - 1, codes)
    out = np.zeros((len(codes), width))
    out[np.arange(len(codes)), codes] = 1.0
    return out


def user_features(profiles: ProfileArrays) -> np.ndarray:
    """The person side of the crosses, (n, p): a constant, then what the profile says."""
    n = len(profiles)
    age_band = np.where(
        np.isfinite(profiles.age), np.searchsorted(AGE_EDGES, profiles.age, side="right"), -1
    )
    located = np.isfinite(profiles.lat) & np.isfinite(profiles.lon)
    return np.column_stack(
        [
            np.ones(n),
            profiles.has_quiz.astype(float),
            profiles.quiz_domains.astype(float),
            profiles.quiz_activities.astype(float),
            _one_hot(profiles.rhythm, N_RHYTHMS),
            profiles.motivations.astype(float),
            _one_hot(age_band, len(AGE_EDGES) + 2),
            profiles.disability.astype(float),
            located.astype(float),
        ]
    )


def offer_features(offers: OfferArrays) -> np.ndarray:
    """The offer side of the crosses, (n, q): a constant, then the offer's attributes."""
    n = len(offers)
    activities = offers.quiz_activities.astype(float)
    mix = activities / np.maximum(activities.sum(axis=1, keepdims=True), 1.0)
    places = np.where(np.isfinite(offers.places), np.log1p(np.maximum(offers.places, 0)), 0.0)
    return np.column_stack(
        [
            np.ones(n),
            _one_hot(offers.domain, N_DOMAINS),
            _one_hot(offers.programme, N_PROGRAMMES),
            mix,
            _one_hot(offers.rhythm, N_RHYTHMS),
            _one_hot(offers.remote, N_REMOTE + 1)[:, :N_REMOTE],
            offers.paid.astype(float),
            offers.snu.astype(float),
            _one_hot(offers.open_to_minors.astype(np.int64), 3),
            places,
            ~np.isfinite(offers.places),
        ]
    )


@dataclass(frozen=True)
class _History:
    """What each known person's interactions say, as shares (rows sum to 1 where any)."""

    domain: np.ndarray  # (n, N_DOMAINS)
    programme: np.ndarray  # (n, N_PROGRAMMES)
    activity: np.ndarray  # (n, N_ACTIVITIES): mean quiz-activity mix
    publisher: sp.csr_matrix  # (n, n_publishers)


def _offer_codes(offers: OfferArrays, publishers: np.ndarray) -> dict[str, np.ndarray]:
    """The offer codes the history shares are read with (publisher −1 when unknown)."""
    activities = offers.quiz_activities.astype(float)
    return {
        "domain": np.where(offers.domain >= 0, offers.domain, N_DOMAINS - 1).astype(np.int64),
        "programme": np.where(offers.programme >= 0, offers.programme, N_PROGRAMMES - 1).astype(
            np.int64
        ),
        "activity": activities / np.maximum(activities.sum(axis=1, keepdims=True), 1.0),
        "publisher": lookup(publishers, offers.publisher_ids),
    }


def _history(weights: sp.csr_matrix, codes: dict[str, np.ndarray], n_pub: int) -> _History:
    """Shares of each row's interaction weights over domains, programmes, publishers and
    quiz activities of the offers interacted with."""
    total = np.asarray(weights.sum(axis=1)).ravel()
    scale = sp.diags(np.divide(1.0, total, out=np.zeros_like(total), where=total > 0))
    n_offers = weights.shape[1]

    def indicator(code: np.ndarray, width: int) -> sp.csr_matrix:
        valid = code >= 0
        return sp.csr_matrix(
            (np.ones(int(valid.sum())), (np.flatnonzero(valid), code[valid])),
            shape=(n_offers, width),
        )

    return _History(
        domain=np.asarray((scale @ weights @ indicator(codes["domain"], N_DOMAINS)).todense()),
        programme=np.asarray(
            (scale @ weights @ indicator(codes["programme"], N_PROGRAMMES)).todense()
        ),
        activity=np.asarray(scale @ weights @ codes["activity"]),
        publisher=sp.csr_matrix(scale @ weights @ indicator(codes["publisher"], n_pub)),
    )


def _pair_terms(
    users: ProfileArrays,
    offers: OfferArrays,
    u: np.ndarray,
    o: np.ndarray,
    shares: np.ndarray,
    has_history: np.ndarray,
) -> np.ndarray:
    """(len(u), N_PAIR) pair terms of the pairs (u[i], o[i]); `shares` (len(u), 4) are the
    history's domain, programme, publisher and activity shares of each pair's offer."""
    distance = haversine_km(users.lat[u], users.lon[u], offers.lat[o], offers.lon[o])
    ratio = distance / search_radius_km(users)[u]
    remote = offers.remote[o]
    known = np.isfinite(ratio) & (remote != _FULL)
    decay = np.where(known, np.log1p(np.where(known, ratio, 0.0)), 0.0)
    possible = remote == _POSSIBLE
    return np.column_stack(
        [
            np.where(possible, 0.0, decay),
            np.where(possible, decay, 0.0),
            (known & (ratio > 1.0)).astype(float),
            (~np.isfinite(ratio) & (remote != _FULL)).astype(float),
            shares,
            has_history.astype(float),
            profile_matches(users, offers, u, o),
        ]
    )


def profile_matches(
    users: ProfileArrays, offers: OfferArrays, u: np.ndarray, o: np.ndarray
) -> np.ndarray:
    """(len(u), 3) how the pairs' offers answer their people's quiz: any quiz domain of the
    offer ticked, the share of the offer's quiz activities ticked, the stated rhythm its own.

    The crosses can express each of these one cell at a time; one weight per match shares
    what every domain, activity and rhythm teaches, which first-visit profiles need (the
    crosses of a rarely printed domain learn little from a few thousand clicks).
    """
    domains = np.einsum(
        "ij,ij->i", users.quiz_domains[u].astype(float), offers.quiz_domains[o].astype(float)
    )
    activities = offers.quiz_activities[o].astype(float)
    ticked = np.einsum("ij,ij->i", users.quiz_activities[u].astype(float), activities)
    rhythm = (users.rhythm[u] >= 0) & (users.rhythm[u] == offers.rhythm[o])
    return np.column_stack(
        [
            (domains > 0).astype(float),
            ticked / np.maximum(activities.sum(axis=1), 1.0),
            rhythm.astype(float),
        ]
    )


@dataclass(frozen=True)
class _Samples:
    """Training pairs of one logistic model: rows of users and offers, labels, weights."""

    user: np.ndarray
    offer: np.ndarray
    label: np.ndarray
    weight: np.ndarray
    pair: np.ndarray  # (n, N_PAIR)


def _fit(
    samples: _Samples,
    users: np.ndarray,
    offers: np.ndarray,
    config: ResponseConfig,
    offer_intercepts: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """L-BFGS on the weighted soft-label logistic loss of s = u·W·o + b[o] + v·pair + c.

    Returns (W, b, v, c); b is all zeros without `offer_intercepts`.
    """
    p, q, n_offers = users.shape[1], offers.shape[1], offers.shape[0]
    u, o, y, w, pair = samples.user, samples.offer, samples.label, samples.weight, samples.pair
    total = float(w.sum())
    rows, row_of = np.unique(u, return_inverse=True)
    cols, col_of = np.unique(o, return_inverse=True)
    user_rows, offer_cols = users[rows], offers[cols]
    sizes = (p * q, len(cols) if offer_intercepts else 0, pair.shape[1], 1)
    bounds = np.cumsum(sizes)

    def unpack(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        return (
            theta[: bounds[0]].reshape(p, q),
            theta[bounds[0] : bounds[1]],
            theta[bounds[1] : bounds[2]],
            float(theta[bounds[2]]),
        )

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        W, b, v, c = unpack(theta)
        s = np.einsum("ij,ij->i", (user_rows @ W)[row_of], offer_cols[col_of]) + pair @ v + c
        if offer_intercepts:
            s = s + b[col_of]
        value = float(w @ (np.logaddexp(0.0, s) - y * s)) / total
        g = w * (1.0 / (1.0 + np.exp(-s)) - y) / total
        cells = sp.csr_matrix((g, (row_of, col_of)), shape=(len(rows), len(cols)))
        grad_W = user_rows.T @ (cells @ offer_cols)
        grad_b = np.bincount(col_of, weights=g, minlength=len(cols)) if offer_intercepts else b
        value += 0.5 * config.l2 * (float((W * W).sum()) + float(v @ v))
        value += 0.5 * config.offer_l2 * float(b @ b)
        return value, np.concatenate(
            [
                (grad_W + config.l2 * W).ravel(),
                grad_b + config.offer_l2 * b if offer_intercepts else b,
                pair.T @ g + config.l2 * v,
                [g.sum()],
            ]
        )

    result = minimize(
        loss,
        np.zeros(int(bounds[-1])),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": config.max_iterations},
    )
    W, b_cols, v, c = unpack(result.x)
    b = np.zeros(n_offers)
    if offer_intercepts:
        b[cols] = b_cols
    return W, b, v, c


@dataclass(frozen=True)
class _State:
    user_ids: np.ndarray  # unicode: people with a history
    offer_ids: np.ndarray  # unicode: training offers (the intercepts' rows)
    publishers: np.ndarray  # unicode: publisher ids of the history shares
    click_W: np.ndarray
    click_b: np.ndarray
    click_v: np.ndarray
    click_c: np.ndarray  # ()
    apply_W: np.ndarray
    apply_b: np.ndarray
    apply_v: np.ndarray
    apply_c: np.ndarray  # ()
    propensity: np.ndarray  # e(1..max_position)


class ResponseModel(Recommender):
    """P(click | examined) × P(apply | click) over crossed person × offer features, learned
    from the print log with inverse-propensity weights (module docstring)."""

    name = "response"
    config_class = ResponseConfig
    config: ResponseConfig
    blends_rules = True  # people without history are scored from their profile, not the rules

    def __init__(self, config: ResponseConfig | None = None) -> None:
        super().__init__(config)
        self._state: _State | None = None
        self._history: _History | None = None

    def train(self, data: TrainingData, progress: Callable[[int, int], None] | None = None) -> None:
        """Estimate the position bias, then fit the click and the apply models."""
        started = time.perf_counter()
        config = self.config
        rng = np.random.default_rng(config.seed)
        log = data.impressions() if data.impressions is not None else None
        if log is not None:  # a landing is one offer's page, not a list: no position
            log = _take(log, ~log.landing)
        if log is None or not log.clicked.any():
            log = _pseudo_impressions(data, config.pseudo_negatives, rng)
        publishers = np.unique(unicode_ids(data.offers.arrays.publisher_ids))
        codes = _offer_codes(data.offers.arrays, publishers)
        weights = sp.csr_matrix(data.interactions, dtype=np.float64)
        weights.eliminate_zeros()
        history = _history(weights, codes, len(publishers))
        propensity = position_propensities(
            log.position, log.clicked, log.offer, config.max_position
        )
        users = user_features(data.users.arrays)
        offers = offer_features(data.offers.arrays)

        keep = log.clicked | (rng.random(len(log)) < config.negative_share)
        click_weight = np.where(log.clicked, 1.0, 1.0 / config.negative_share)[keep]
        clicked = _samples(
            data,
            log,
            keep,
            history,
            codes,
            weights,
            ips_labels(log.clicked, log.position, propensity, config.min_propensity)[keep],
            click_weight,
        )
        click = _fit(clicked, users, offers, config, offer_intercepts=True)
        on_click = np.flatnonzero(log.clicked)
        applied = _samples(
            data,
            log,
            on_click,
            history,
            codes,
            weights,
            log.applied[on_click].astype(float),
            np.ones(len(on_click)),
        )
        apply = _fit(applied, users, offers, config, offer_intercepts=False)
        known = np.flatnonzero(weights.getnnz(axis=1) > 0)
        self._history = _History(
            domain=history.domain[known],
            programme=history.programme[known],
            activity=history.activity[known],
            publisher=history.publisher[known],
        )
        self._state = _State(
            user_ids=unicode_ids(data.users.ids[known]),
            offer_ids=unicode_ids(data.offers.ids),
            publishers=publishers,
            click_W=click[0],
            click_b=click[1],
            click_v=click[2],
            click_c=np.array(click[3]),
            apply_W=apply[0],
            apply_b=apply[1],
            apply_v=apply[2],
            apply_c=np.array(apply[3]),
            propensity=propensity,
        )
        logger.info(
            "fitted response in %.1fs: %d prints, %d clicks, %d applies, e(2..5) = %s",
            time.perf_counter() - started,
            len(log),
            int(log.clicked.sum()),
            int(log.applied.sum()),
            np.round(propensity[1:5], 3).tolist(),
        )

    def prepare_offers(self, offers: OfferBatch) -> PreparedOffers:
        """The offers' crossed features, both intercepts and history codes."""
        require_trained(self._state, self.name)
        state = self._state
        rows = lookup(state.offer_ids, offers.ids)
        codes = _offer_codes(offers.arrays, state.publishers)
        features = offer_features(offers.arrays)
        return PreparedOffers(
            offers,
            {
                "features": features,
                "intercepts": np.column_stack(
                    [
                        np.where(rows >= 0, state.click_b[rows], 0.0),
                        np.where(rows >= 0, state.apply_b[rows], 0.0),
                    ]
                ),
                "domain": codes["domain"],
                "programme": codes["programme"],
                "activity": codes["activity"],
                "publisher": codes["publisher"],
            },
        )

    def score(self, users: UserBatch, offers: OfferBatch) -> np.ndarray:
        """log P(click | examined) + log P(apply | click), (n_users, n_offers)."""
        return self.score_prepared(users, self.prepare_offers(offers))

    def score_prepared(
        self, users: UserBatch, prepared: PreparedOffers, rows: np.ndarray | None = None
    ) -> np.ndarray:
        """log P(click | examined) + log P(apply | click) against the prepared offers `rows`."""
        click, apply = self.logits(users, prepared, rows)
        return -np.logaddexp(0.0, -click) - np.logaddexp(0.0, -apply)

    def logits(
        self, users: UserBatch, prepared: PreparedOffers, rows: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The click model's and the apply model's logits, each (len(users), len(rows))."""
        require_trained(self._state, self.name)
        state, history = self._state, self._history
        part = prepared if rows is None else prepared.take(np.asarray(rows, dtype=np.int64))
        arrays = part.arrays
        n_offers = len(part.offers)
        profiles = users.arrays
        features = user_features(profiles)
        user_rows = lookup(state.user_ids, users.ids)
        known = user_rows >= 0
        click = features @ state.click_W @ arrays["features"].T
        apply = features @ state.apply_W @ arrays["features"].T
        click += arrays["intercepts"][:, 0] + float(state.click_c)
        apply += arrays["intercepts"][:, 1] + float(state.apply_c)
        for block in row_chunks(len(users), n_offers):
            index = np.arange(block.start, block.stop)
            u = np.repeat(index, n_offers)
            o = np.tile(np.arange(n_offers), len(index))
            shares = np.zeros((len(u), 4))
            mine = known[u]
            h = user_rows[u[mine]]
            om = o[mine]
            shares[mine, 0] = history.domain[h, arrays["domain"][om]]
            shares[mine, 1] = history.programme[h, arrays["programme"][om]]
            publisher = arrays["publisher"][om]
            found = publisher >= 0
            pub = np.zeros(len(h))
            pub[found] = np.asarray(history.publisher[h[found], publisher[found]]).ravel()
            shares[mine, 2] = pub
            shares[mine, 3] = np.einsum("ij,ij->i", history.activity[h], arrays["activity"][om])
            pair = _pair_terms(profiles, part.offers.arrays, u, o, shares, mine)
            click[block] += (pair @ state.click_v).reshape(len(index), n_offers)
            apply[block] += (pair @ state.apply_v).reshape(len(index), n_offers)
        return click, apply

    def examination(self, position: np.ndarray) -> np.ndarray:
        """The estimated probability that a print at each `position` is examined."""
        require_trained(self._state, self.name)
        propensity = self._state.propensity
        return propensity[np.minimum(np.asarray(position, dtype=np.int64), len(propensity)) - 1]

    def knows(self, user_ids: np.ndarray) -> np.ndarray:
        require_trained(self._state, self.name)
        return lookup(self._state.user_ids, user_ids) >= 0

    def get_arrays(self) -> dict[str, np.ndarray]:
        require_trained(self._state, self.name)
        arrays = {
            _STATE_PREFIX + item.name: np.asarray(getattr(self._state, item.name))
            for item in fields(_State)
        }
        history = self._history
        arrays["history_domain"] = history.domain
        arrays["history_programme"] = history.programme
        arrays["history_activity"] = history.activity
        arrays.update(sparse_to_arrays("history_publisher", history.publisher))
        return arrays

    def set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self._state = _State(
            **{item.name: arrays[_STATE_PREFIX + item.name] for item in fields(_State)}
        )
        self._history = _History(
            domain=arrays["history_domain"],
            programme=arrays["history_programme"],
            activity=arrays["history_activity"],
            publisher=sparse_from_arrays("history_publisher", arrays),
        )


def _samples(
    data: TrainingData,
    log: Impressions,
    index: np.ndarray,
    history: _History,
    codes: dict[str, np.ndarray],
    weights: sp.csr_matrix,
    label: np.ndarray,
    weight: np.ndarray,
) -> _Samples:
    """The prints `index` (positions or a mask) as training pairs, their history shares left
    one out: the pair's own interaction weight is taken out of the person's shares.

    Prints of the same person and offer have the same features: they become one pair, of
    their summed weight and weighted mean label (the same loss, fewer rows).
    """
    n_offers = len(data.offers)
    cell, inverse = np.unique(log.user[index] * n_offers + log.offer[index], return_inverse=True)
    weight_sum = np.bincount(inverse, weights=weight, minlength=len(cell))
    label = np.bincount(inverse, weights=weight * label, minlength=len(cell)) / weight_sum
    weight = weight_sum
    u, o = cell // n_offers, cell % n_offers
    total = np.asarray(weights.sum(axis=1)).ravel()[u]
    own = np.asarray(weights[u, o]).ravel()
    rest = total - own
    safe = np.where(rest > 0, rest, 1.0)
    domain = codes["domain"][o]
    programme = codes["programme"][o]
    publisher = codes["publisher"][o]
    activity = codes["activity"][o]
    pub_share = np.zeros(len(u))
    found = publisher >= 0
    pub_share[found] = np.asarray(history.publisher[u[found], publisher[found]]).ravel()
    # A share times the total is the weight on that code; take the pair's own weight out.
    shares = np.column_stack(
        [
            history.domain[u, domain] * total - own,
            history.programme[u, programme] * total - own,
            np.where(found, pub_share * total - own, 0.0),
            np.einsum("ij,ij->i", history.activity[u], activity) * total
            - own * np.einsum("ij,ij->i", activity, activity),
        ]
    )
    shares = np.where(rest[:, None] > 0, np.maximum(shares, 0.0) / safe[:, None], 0.0)
    pair = _pair_terms(data.users.arrays, data.offers.arrays, u, o, shares, rest > 0)
    return _Samples(user=u, offer=o, label=label, weight=weight, pair=pair)


def _take(log: Impressions, rows: np.ndarray) -> Impressions:
    """The prints `rows` (a mask or positions) of the log."""
    return Impressions(*(getattr(log, item.name)[rows] for item in fields(Impressions)))


def _pseudo_impressions(
    data: TrainingData, negatives: int, rng: np.random.Generator
) -> Impressions:
    """Without a print log: each interaction a click at the top of a list (an apply where the
    person applied), and `negatives` offers per interaction that the person left alone,
    drawn at random, unclicked prints at the top."""
    interactions = sp.coo_matrix(data.interactions)
    positive = interactions.data > 0
    u, o = interactions.row[positive], interactions.col[positive]
    applied = np.asarray(sp.csr_matrix(data.applies)[u, o]).ravel() > 0
    n_offers = data.interactions.shape[1]
    nu = np.repeat(u, negatives)
    no = rng.integers(0, n_offers, size=len(nu))
    seen = np.asarray(sp.csr_matrix(data.interactions)[nu, no]).ravel() > 0
    nu, no = nu[~seen], no[~seen]
    return Impressions(
        user=np.concatenate([u, nu]).astype(np.int64),
        offer=np.concatenate([o, no]).astype(np.int64),
        position=np.ones(len(u) + len(nu), dtype=np.int64),
        landing=np.zeros(len(u) + len(nu), dtype=bool),
        clicked=np.concatenate([np.ones(len(u), bool), np.zeros(len(nu), bool)]),
        applied=np.concatenate([applied, np.zeros(len(nu), bool)]),
    )


__all__ = [
    "ResponseConfig",
    "ResponseModel",
    "ips_labels",
    "position_propensities",
    "profile_matches",
]
