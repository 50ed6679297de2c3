"""Tiny, deterministic training data shared by every model test.

Frames go through the real `recsys.arrays` builders, so the arrays a model sees are the ones
production builds; the encoded feature matrices are simple hand-made one-hots (plus optional
noise) so that these fixtures do not depend on the feature encoder.

Layout of the checkerboard (`checkerboard_data`): two groups of six users and six offers.
Group A likes "sport" offers around Paris, group B "culture-loisirs" offers around Lyon; each
user interacted with every offer of their own group but one (the held-out offer, a different
one per user), and with nothing of the other group. A model that learns anything from
co-occurrence, features or quiz answers must rank the held-out offer above the six offers of
the other group.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import scipy.sparse as sp

from recsys import schema, taxonomy
from recsys.arrays import OfferArrays, ProfileArrays, offer_arrays, profile_arrays
from recsys.dataset import OfferBatch, TrainingData, UserBatch

FLOAT32_RTOL = 8 * float(np.finfo(np.float32).eps)  # ~1e-6: a few float32 roundings
FLOAT64_RTOL = 1e-9  # far above float64's rounding, far below any real difference

CUTOFF = pd.Timestamp("2024-06-01", tz="UTC")
PARIS = (48.8566, 2.3522)
LYON = (45.7640, 4.8357)
GROUP_SIZE = 6  # users per group and offers per group in the checkerboard
OFFER_NOISE_COLUMNS = 3

_OFFER_DEFAULTS: dict[str, Any] = {
    "clientId": None,
    "publisherId": None,
    "publisherName": None,
    "organizationName": "Association test",
    "title": "Mission test",
    "description": "Une mission pour tester.",
    "schedule": "2 heures par semaine",
    "domain": "solidarite-insertion",
    "activities": ["accueil-de-public"],
    "type": taxonomy.BENEVOLAT,
    "snu": False,
    "snuPlaces": None,
    "places": 5,
    "remote": "no",
    "openToMinors": True,
    "reducedMobilityAccessible": None,
    "closeToTransport": None,
    "startAt": pd.Timestamp("2024-07-01", tz="UTC"),
    "endAt": None,
    "postedAt": pd.Timestamp("2024-01-15", tz="UTC"),
    "createdAt": pd.Timestamp("2024-01-15", tz="UTC"),
    "updatedAt": pd.Timestamp("2024-01-15", tz="UTC"),
    "deletedAt": None,
    "compensationAmount": None,
    "compensationAmountMax": None,
    "compensationUnit": None,
    "compensationType": None,
    "statusCode": taxonomy.STATUS_ACCEPTED,
    "city": "Paris",
    "postalCode": "75001",
    "departmentCode": "75",
    "departmentName": "Paris",
    "region": "Île-de-France",
    "lat": PARIS[0],
    "lon": PARIS[1],
    "tags": [],
}

_PROFILE_DEFAULTS: dict[str, Any] = {
    "age": 20,
    "lat": PARIS[0],
    "lon": PARIS[1],
    "postalCode": "75001",
    "departmentCode": "75",
    "region": "Île-de-France",
    "mobility": None,
    "radiusKm": None,
    "disability": False,
    "hasQuiz": True,
    "quizDomains": [],
    "quizActivities": [],
    "quizRhythm": None,
    "quizMotivations": [],
    "contactConsent": False,
    "consentAt": None,
}


def _frame(n: int, defaults: dict[str, Any], columns: dict[str, Any], kind: str) -> pd.DataFrame:
    table_schema = schema.SCHEMAS[kind]
    unknown = sorted(set(columns) - set(table_schema.names))
    if unknown:
        raise ValueError(f"{kind}: unknown column(s) {unknown}")
    data: dict[str, list[Any]] = {}
    for field in table_schema:
        value = columns.get(field.name, defaults.get(field.name))
        is_list_column = pa.types.is_list(field.type)
        if is_list_column:
            # A list column takes one list (broadcast) or a sequence of per-row lists.
            per_row = isinstance(value, Sequence | np.ndarray) and any(
                isinstance(v, list | tuple | np.ndarray) for v in value
            )
        else:
            per_row = isinstance(value, Sequence | np.ndarray | pd.Series) and not isinstance(
                value, str
            )
        if per_row:
            if len(value) != n:
                raise ValueError(f"{kind}.{field.name}: {len(value)} values for {n} rows")
            data[field.name] = [list(v) if is_list_column and v is not None else v for v in value]
        else:
            copied = is_list_column and value is not None  # each row its own list
            data[field.name] = [list(value) if copied else value for _ in range(n)]
    return pd.DataFrame(data, columns=table_schema.names)


def make_offers_frame(n: int, **columns: Any) -> pd.DataFrame:
    """A canonical offers table of `n` rows (every column of schema.OFFER_SCHEMA).

    Each keyword is a column: a scalar (or, for list columns, one list) is broadcast to every
    row, a sequence of length `n` gives one value per row. Ids default to o0, o1, ...
    """
    defaults = dict(_OFFER_DEFAULTS)
    defaults["id"] = [f"o{i}" for i in range(n)]
    defaults["clientId"] = [f"c{i}" for i in range(n)]
    defaults["publisherId"] = [f"p{i % 3}" for i in range(n)]
    defaults["publisherName"] = [f"Publisher {i % 3}" for i in range(n)]
    frame = _frame(n, defaults, columns, "offers")
    schema.conform(frame, "offers")  # fail here, not in a model test, on a malformed fixture
    return frame


def make_profiles_frame(n: int, **columns: Any) -> pd.DataFrame:
    """A canonical profiles table of `n` rows (every column of schema.PROFILE_SCHEMA).

    Same broadcasting rules as `make_offers_frame`; ids default to u0, u1, ...
    """
    defaults = dict(_PROFILE_DEFAULTS)
    defaults["userId"] = [f"u{i}" for i in range(n)]
    frame = _frame(n, defaults, columns, "profiles")
    schema.conform(frame, "profiles")
    return frame


def offer_features(arrays: OfferArrays, rng: np.random.Generator | None = None) -> sp.csr_matrix:
    """Domain, programme and remote one-hots, then OFFER_NOISE_COLUMNS noise columns.

    Noise is uniform in [0, 0.1) when `rng` is given, zero otherwise: small enough that the
    domain dominates a cosine, large enough that no two offers have identical features.
    """
    n = len(arrays)
    blocks = [
        _one_hot(arrays.domain, len(taxonomy.DOMAINS)),
        _one_hot(arrays.programme, len(taxonomy.PROGRAMMES)),
        _one_hot(arrays.remote, len(taxonomy.REMOTE_VALUES)),
    ]
    noise = (
        rng.uniform(0.0, 0.1, size=(n, OFFER_NOISE_COLUMNS))
        if rng is not None
        else np.zeros((n, OFFER_NOISE_COLUMNS))
    )
    return sp.csr_matrix(np.hstack([*blocks, noise]))


def user_features(arrays: ProfileArrays) -> sp.csr_matrix:
    """Quiz domains and activities multi-hot, then a constant bias column."""
    dense = np.hstack(
        [
            arrays.quiz_domains.astype(float),
            arrays.quiz_activities.astype(float),
            np.ones((len(arrays), 1)),
        ]
    )
    return sp.csr_matrix(dense)


def _one_hot(codes: np.ndarray, width: int) -> np.ndarray:
    out = np.zeros((len(codes), width))
    known = codes >= 0
    out[np.flatnonzero(known), codes[known]] = 1.0
    return out


def offer_batch(frame: pd.DataFrame, rng: np.random.Generator | None = None) -> OfferBatch:
    """An OfferBatch from a canonical offers table, features from `offer_features`."""
    arrays = offer_arrays(frame)
    return OfferBatch(arrays.ids, offer_features(arrays, rng), arrays)


def user_batch(frame: pd.DataFrame) -> UserBatch:
    """A UserBatch from a canonical profiles table, features from `user_features`."""
    arrays = profile_arrays(frame)
    return UserBatch(arrays.ids, user_features(arrays), arrays)


def training_data(
    users: UserBatch,
    offers: OfferBatch,
    interactions: np.ndarray,
    applies: np.ndarray | None = None,
) -> TrainingData:
    """TrainingData from dense matrices; applies default to where interactions are positive."""
    weights = np.asarray(interactions, dtype=float)
    applied = (weights > 0) if applies is None else np.asarray(applies)
    return TrainingData(
        users=users,
        offers=offers,
        interactions=sp.csr_matrix(weights),
        applies=sp.csr_matrix(applied.astype(float)),
        cutoff=CUTOFF,
    )


def _group_offers(prefix: str, n: int, offset: int = 0) -> pd.DataFrame:
    """n offers alternating between group A (sport, Paris) and group B (culture, Lyon) halves:
    the first n/2 are group A, the rest group B; small jitter keeps coordinates distinct."""
    half = n // 2
    is_a = np.arange(n) < half
    jitter = 0.01 * (np.arange(n) % half)
    return make_offers_frame(
        n,
        id=[f"{prefix}{offset + i}" for i in range(n)],
        domain=np.where(is_a, "sport", "culture-loisirs").tolist(),
        activities=[["animation-sportive"] if a else ["atelier-creatif"] for a in is_a],
        type=[taxonomy.SERVICE_CIVIQUE if i % 2 else taxonomy.BENEVOLAT for i in range(n)],
        lat=np.where(is_a, PARIS[0], LYON[0]) + jitter,
        lon=np.where(is_a, PARIS[1], LYON[1]) + jitter,
        city=np.where(is_a, "Paris", "Lyon").tolist(),
        postalCode=np.where(is_a, "75001", "69001").tolist(),
        departmentCode=np.where(is_a, "75", "69").tolist(),
    )


def _group_profiles(ids: list[str | None], is_a: np.ndarray) -> pd.DataFrame:
    n = len(ids)
    return make_profiles_frame(
        n,
        userId=ids,
        lat=np.where(is_a, PARIS[0], LYON[0]),
        lon=np.where(is_a, PARIS[1], LYON[1]),
        postalCode=np.where(is_a, "75001", "69001").tolist(),
        departmentCode=np.where(is_a, "75", "69").tolist(),
        quizDomains=[["sport"] if a else ["art-culture"] for a in is_a],
        quizActivities=[["transmettre-animer"] if a else ["creer-communiquer"] for a in is_a],
    )


@dataclass(frozen=True)
class Checkerboard:
    """The checkerboard case: training data and, per training user, the expected winner.

    `candidates[u]` lists offer indices (into `data.offers`) to rank for user u: the held-out
    offer of the user's own group first, then the six offers of the other group.
    """

    data: TrainingData
    held_out: np.ndarray  # (n_users,) offer index the user did not interact with
    candidates: np.ndarray  # (n_users, 1 + GROUP_SIZE) offer indices, held-out first


def checkerboard_data() -> Checkerboard:
    """Two groups × two groups, one held-out own-group offer per user (see module docstring)."""
    n = 2 * GROUP_SIZE
    group = np.arange(n) // GROUP_SIZE  # same for users and offers: 0 = A, 1 = B
    held_out = group * GROUP_SIZE + np.arange(n) % GROUP_SIZE
    interactions = (group[:, None] == group[None, :]).astype(float)
    interactions[np.arange(n), held_out] = 0.0
    users = user_batch(_group_profiles([f"u{i}" for i in range(n)], group == 0))
    offers = offer_batch(_group_offers("o", n), np.random.default_rng(0))
    other = np.array([np.flatnonzero(group != g) for g in group])
    candidates = np.column_stack([held_out, other])
    return Checkerboard(training_data(users, offers, interactions), held_out, candidates)


def stranger_users() -> UserBatch:
    """Users no model saw in training: a group-A-like one, a group-B-like one, an anonymous one
    (id None) with group A's profile. All have quiz answers and coordinates."""
    ids: list[str | None] = ["stranger-a", "stranger-b", None]
    return user_batch(_group_profiles(ids, np.array([True, False, True])))


def new_offers() -> OfferBatch:
    """Offers posted after the cutoff, absent from training: two of group A, two of group B;
    the last has no coordinates."""
    frame = _group_offers("new-", 4)
    frame["postedAt"] = CUTOFF + pd.Timedelta(days=3)
    frame.loc[3, ["lat", "lon"]] = np.nan
    return offer_batch(frame, np.random.default_rng(1))


def random_data(rng: np.random.Generator, n_users: int = 20, n_offers: int = 15) -> TrainingData:
    """Random profiles, offers and decayed interaction weights; every user and every offer has
    at least one interaction (density about 0.3)."""
    domains = rng.choice(["sport", "culture-loisirs", "education", "sante"], size=n_offers)
    offers = offer_batch(
        make_offers_frame(
            n_offers,
            domain=domains.tolist(),
            type=rng.choice(list(taxonomy.PROGRAMMES), size=n_offers).tolist(),
            remote=rng.choice(["no", "no", "possible", "full"], size=n_offers).tolist(),
            lat=PARIS[0] + rng.uniform(-2.0, 2.0, size=n_offers),
            lon=PARIS[1] + rng.uniform(-2.0, 2.0, size=n_offers),
        ),
        rng,
    )
    quiz = rng.choice(list(taxonomy.QUIZ_DOMAINS), size=n_users)
    users = user_batch(
        make_profiles_frame(
            n_users,
            lat=PARIS[0] + rng.uniform(-1.0, 1.0, size=n_users),
            lon=PARIS[1] + rng.uniform(-1.0, 1.0, size=n_users),
            quizDomains=[[q] for q in quiz],
        )
    )
    mask = rng.random((n_users, n_offers)) < 0.3
    mask[np.arange(n_users), rng.integers(0, n_offers, size=n_users)] = True
    mask[rng.integers(0, n_users, size=n_offers), np.arange(n_offers)] = True
    weights = np.where(mask, rng.uniform(0.1, 1.0, size=mask.shape), 0.0)
    applies = mask & (rng.random(mask.shape) < 0.5)
    return training_data(users, offers, weights, applies)


def assert_scores_close(found: Any, expected: Any, rtol: float, step: float = 0.0) -> None:
    """Scores of one formula computed along two paths agree to `rtol`, at each row's scale.

    Two paths (a batch's BLAS product and a lone person's compiled loop, float32 and float64
    sums, another CPU's vector width or fused multiply-adds) differ by a few roundings of the
    terms they add. That error is relative to the terms, so to the row's magnitude, not to
    each result: a score that cancels to near zero keeps the absolute error of its terms.
    Each row therefore also gets an absolute tolerance of `rtol` times its largest finite
    |score|; NaN must match NaN, infinities must match exactly. `step` is the rounding step of
    scores that were rounded for output: equal scores a rounding apart can land a step apart.
    """
    found = np.atleast_2d(np.asarray(found, dtype=float))
    expected = np.atleast_2d(np.asarray(expected, dtype=float))
    assert found.shape == expected.shape, (found.shape, expected.shape)
    for i, (got, want) in enumerate(zip(found, expected, strict=True)):
        finite = np.abs(want[np.isfinite(want)])
        scale = float(finite.max()) if finite.size else 0.0
        np.testing.assert_allclose(
            got, want, rtol=rtol, atol=rtol * scale + step, equal_nan=True, err_msg=f"row {i}"
        )


def random_offers_frame(rng: np.random.Generator, n: int, now: pd.Timestamp) -> pd.DataFrame:
    """`n` offers in metropolitan France drawn to exercise eligibility around `now`: every
    programme and remote value, minors yes/no/missing, some SNU, full, refused, ended, not yet
    posted or open-ended, a tenth without coordinates, a fifth with one to three more
    addresses (a fifth of those unplaced)."""
    posted = now + pd.to_timedelta(rng.integers(-60, 5, n), unit="D")
    ends = now + pd.to_timedelta(rng.integers(-5, 60, n), unit="D")
    return make_offers_frame(
        n,
        type=rng.choice(list(taxonomy.PROGRAMMES), n).tolist(),
        remote=rng.choice(list(taxonomy.REMOTE_VALUES), n).tolist(),
        openToMinors=rng.choice([True, False, None], n).tolist(),
        snu=rng.random(n) < 0.2,
        places=rng.choice([0, 3, None], n).tolist(),
        lat=np.where(rng.random(n) < 0.1, np.nan, rng.uniform(43, 50, n)),
        lon=np.where(rng.random(n) < 0.1, np.nan, rng.uniform(-1, 7, n)),
        addresses=[_more_addresses(rng) if rng.random() < 0.2 else None for _ in range(n)],
        postedAt=list(posted),
        endAt=[None if i % 7 == 0 else e for i, e in enumerate(ends)],
        statusCode=rng.choice(["ACCEPTED", "ACCEPTED", "REFUSED"], n).tolist(),
    )


def _more_addresses(rng: np.random.Generator) -> list[dict[str, Any]]:
    """One to three more addresses, some without coordinates."""
    return [
        {
            "city": None,
            "postalCode": None,
            "departmentCode": None,
            "lat": None if unplaced else float(rng.uniform(43, 50)),
            "lon": None if unplaced else float(rng.uniform(-1, 7)),
            "locationSource": None,
        }
        for unplaced in rng.random(int(rng.integers(1, 4))) < 0.2
    ]
