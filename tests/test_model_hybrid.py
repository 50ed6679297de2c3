"""Hybrid: the shared model contract, each term of the blend by hand, and its two ends (rules
for visitors without history, the learned model for heavy histories)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.stats import rankdata

from recsys import taxonomy
from recsys.arrays import OfferArrays, ProfileArrays
from recsys.dataset import OfferBatch, UserBatch
from recsys.eligibility import offer_distances_km
from recsys.geo import EARTH_RADIUS_KM, unit_vectors
from recsys.models import create_model
from recsys.models._common import lookup
from recsys.models.hybrid import (
    HybridConfig,
    HybridModel,
    freshness,
    geo_affinity,
    history_location,
    history_weight,
)
from recsys.rules import (
    distances_km,
    incumbent_scores,
    offer_tags,
    rule_scores,
    search_radius_km,
)
from tests.fixtures import (
    FLOAT32_RTOL,
    LYON,
    PARIS,
    assert_scores_close,
    checkerboard_data,
    make_offers_frame,
    make_profiles_frame,
    new_offers,
    offer_batch,
    random_data,
    stranger_users,
    training_data,
    user_batch,
)
from tests.model_mixin import ModelTests

LEARNED = {"embedding_size": 8, "epochs": 10}
NO_EXTRAS = {"geo_weight": 0.0, "popularity_weight": 0.0, "freshness_weight": 0.0}  # blend only
DAY = 86_400
REMOTE_FULL = taxonomy.REMOTE_VALUES.index("full")
REMOTE_POSSIBLE = taxonomy.REMOTE_VALUES.index("possible")


class TestHybrid(ModelTests):
    model_name = "hybrid"
    params: ClassVar[dict[str, Any]] = {"learned_params": LEARNED}
    has_item_embeddings = True
    blends_rules = True


class TestHybridOverALS(ModelTests):
    model_name = "hybrid"
    params: ClassVar[dict[str, Any]] = {
        "learned": "als",
        "learned_params": {"embedding_size": 2, "epochs": 10},
    }
    blends_rules = True


def _ranks(scores: np.ndarray) -> np.ndarray:
    """Rank of each offer per row, ties sharing the best rank: equal ranks = equal orders."""
    return rankdata(-scores, method="min", axis=1)


@contextmanager
def _configured(model: HybridModel, **values: float) -> Iterator[None]:
    """Score-time knobs changed for the block only (they need no retraining)."""
    saved = {name: getattr(model.config, name) for name in values}
    for name, value in values.items():
        setattr(model.config, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(model.config, name, value)


@pytest.fixture(scope="module")
def trained() -> HybridModel:
    model = HybridModel(HybridConfig(learned_params=LEARNED))
    model.train(checkerboard_data().data)
    return model


def test_history_weight_by_hand() -> None:
    np.testing.assert_allclose(history_weight(np.array([0, 1, 3, 9]), 3.0), [0, 0.25, 0.5, 0.75])
    np.testing.assert_array_equal(history_weight(np.array([0, 1, 40]), 0.0), [0.0, 1.0, 1.0])
    np.testing.assert_allclose(history_weight(np.array([0, 3]), 3.0, floor=0.2), [0.2, 0.6])


def _affinity(profiles: ProfileArrays, offers: OfferArrays, share: float = 0.5) -> np.ndarray:
    """`geo_affinity` of every (visitor, offer), one call each."""
    distance = distances_km(profiles, unit_vectors(offers.lat, offers.lon))
    radius = search_radius_km(profiles)
    return np.array(
        [
            [
                geo_affinity(d / r, code == REMOTE_FULL, code == REMOTE_POSSIBLE, share)
                for d, code in zip(row, offers.remote, strict=True)
            ]
            for row, r in zip(distance, radius, strict=True)
        ]
    )


def test_geo_affinity_by_hand() -> None:
    strangers = stranger_users()  # row 0 in Paris, radius 20 km (the default)
    offers = offer_batch(
        make_offers_frame(
            4,
            remote=["no", "full", "no", "possible"],
            lat=[np.nan, PARIS[0], LYON[0], LYON[0]],
            lon=[np.nan, PARIS[1], LYON[1], LYON[1]],
        )
    )
    affinity = _affinity(strangers.arrays, offers.arrays, 0.25)
    paris_lyon_km = 391.5  # great-circle distance between the fixtures' two points, ±1 km
    on_site_lyon = -np.log1p(paris_lyon_km / 20.0)
    assert affinity[0, 0] == pytest.approx(-np.log(2.0))  # no coordinates: at the radius
    assert affinity[0, 1] == pytest.approx(-np.log(2.0))  # fully remote: at the radius
    assert affinity[0, 2] == pytest.approx(on_site_lyon, abs=3e-3)
    assert affinity[0, 3] == pytest.approx(0.25 * on_site_lyon, abs=1e-3)


def _blend_by_formula(model: HybridModel, users: UserBatch, offers: OfferBatch) -> np.ndarray:
    """The module docstring's blend, term by term, over whole (visitor, offer) arrays: what
    the compiled `_blend` replaced, kept here as its reference."""
    state, config = model._state, model.config
    rows = lookup(state.user_ids, users.ids)
    known = rows >= 0
    profiles = model._located(users, rows)
    # The distance eligibility measures: haversine to the nearest address.
    distance = offer_distances_km(offers.arrays, profiles.lat[:, None], profiles.lon[:, None])
    remote = offers.arrays.remote
    rules = rule_scores(profiles, offer_tags(offers.arrays), remote, distance, False)
    out = (rules - state.rules_stats[0]) / state.rules_stats[1]
    w = history_weight(np.where(known, state.history[rows], 0.0), config.blend_halfpoint)
    mean = np.where(known, state.learned_mean[rows], state.cold_learned_stats[0])[:, None]
    std = np.where(known, state.learned_std[rows], state.cold_learned_stats[1])[:, None]
    blended = np.flatnonzero(w > 0)  # the learned model scores these only, in one product
    learned = model.learned.score(users.take(blended), offers)
    learned_z = np.nan_to_num((learned - mean[blended]) / std[blended], nan=0.0)
    weight = w[blended, None]
    out[blended] = (1 - weight) * out[blended] + weight * learned_z
    radius = search_radius_km(profiles)[:, None]
    unknown = np.isnan(distance) | (remote == REMOTE_FULL)
    affinity = -np.log1p(np.where(unknown, 1.0, distance / radius))
    affinity = np.where((remote == REMOTE_POSSIBLE) & ~unknown, 0.5 * affinity, affinity)
    out += config.geo_weight * affinity
    popularity, fresh = model.prepare_offers(offers).arrays["offer_terms"].T
    located = np.isfinite(profiles.lat) & np.isfinite(profiles.lon)
    return out + popularity + np.where(located[:, None], fresh, 0.0)


def test_compiled_blend_gives_the_formula(trained: HybridModel) -> None:
    """Known and unknown visitors, one without coordinates (placed at their history) and
    one unplaced, offers on site, remote (near visitors and far) or unplaced: the compiled
    pass gives the formula."""
    board = checkerboard_data().data
    frame = make_profiles_frame(3, userId=[board.users.ids[0], "stranger", None])
    frame.loc[0, ["lat", "lon", "postalCode", "departmentCode"]] = None
    frame.loc[2, ["lat", "lon", "postalCode", "departmentCode"]] = None
    users = UserBatch.concat([board.users.take(np.arange(1, 6)), user_batch(frame)])
    mixed = offer_batch(
        make_offers_frame(
            6,
            remote=["full", "possible", "possible", "local", "full", "full"],
            lat=[LYON[0], LYON[0], np.nan, PARIS[0] + 0.05, np.nan, PARIS[0] + 0.05],
            lon=[LYON[1], LYON[1], np.nan, PARIS[1], np.nan, PARIS[1]],
        )
    )
    offers = OfferBatch.concat([board.offers, new_offers(), mixed])
    assert np.isin([REMOTE_FULL, REMOTE_POSSIBLE], offers.arrays.remote).all()
    with _configured(trained, remote_distance_share=0.5):
        expected = _blend_by_formula(trained, users, offers)
        assert_scores_close(trained.score(users, offers), expected, 1e-12)
        rows = np.array([7, 0, 3, len(offers) - 1])
        subset = trained.score_prepared(users, trained.prepare_offers(offers), rows)
    assert_scores_close(subset, expected[:, rows], 1e-12)


def _address(lat: float | None, lon: float | None) -> dict[str, Any]:
    fields = {"city": None, "postalCode": None, "departmentCode": None, "locationSource": None}
    return {**fields, "lat": lat, "lon": lon}


def test_an_offer_is_as_near_as_its_nearest_address(trained: HybridModel) -> None:
    """Offers with several addresses (one unplaced, one whose own point is unplaced, remote
    ones): the compiled pass gives the formula with eligibility's distance to the nearest
    address, and an offer in Paris and Lyon scores for a visitor near Lyon as an offer in
    Lyon alone does, for Paris as one in Paris."""
    lyon, paris = _address(*LYON), _address(*PARIS)
    offers = offer_batch(
        make_offers_frame(
            7,
            remote=["no", "no", "no", "possible", "full", "no", "no"],
            lat=[PARIS[0], LYON[0], PARIS[0], PARIS[0], PARIS[0], np.nan, PARIS[0]],
            lon=[PARIS[1], LYON[1], PARIS[1], PARIS[1], PARIS[1], np.nan, PARIS[1]],
            addresses=[
                [paris, lyon],
                None,
                None,
                [paris, _address(None, None), lyon],
                [paris, lyon],
                [_address(None, None), lyon],
                [paris, _address(LYON[0] + 0.3, LYON[1]), _address(LYON[0] - 0.2, LYON[1])],
            ],
        )
    )
    assert [p is not None for p in offers.arrays.more_points] == [1, 0, 0, 1, 1, 1, 1]
    frame = make_profiles_frame(
        4,
        userId=["near-lyon", "near-paris", None, "nowhere"],
        lat=[LYON[0] + 0.05, PARIS[0] + 0.05, LYON[0] - 0.15, np.nan],
        lon=[LYON[1], PARIS[1], LYON[1], np.nan],
        radiusKm=[10.0, 30.0, 20.0, 20.0],
    )
    users = UserBatch.concat([checkerboard_data().data.users.take(np.arange(2)), user_batch(frame)])
    with _configured(trained, remote_distance_share=0.5):
        expected = _blend_by_formula(trained, users, offers)
        scores = trained.score(users, offers)
        subset = trained.score_prepared(users, trained.prepare_offers(offers), np.array([6, 0, 3]))
    assert_scores_close(scores, expected, 1e-12)
    assert_scores_close(subset, expected[:, [6, 0, 3]], 1e-12)
    near_lyon, near_paris = 2, 3
    assert scores[near_lyon, 0] == pytest.approx(scores[near_lyon, 1], rel=1e-12)
    assert scores[near_lyon, 0] > scores[near_lyon, 2]  # Paris alone is 390 km away
    assert scores[near_paris, 0] == pytest.approx(scores[near_paris, 2], rel=1e-12)
    assert scores[near_lyon, 5] == pytest.approx(scores[near_lyon, 1], rel=1e-12)


def test_fully_remote_offers_at_the_edge_of_the_radius(trained: HybridModel) -> None:
    """The compiled pass skips the distance of a fully remote offer beyond a visitor's
    radius (its place score is 0 there): just inside the edge it still counts, and on both
    sides the pass gives the formula."""
    frame = make_profiles_frame(
        2, userId=["stranger", None], lat=PARIS[0], lon=PARIS[1], radiusKm=[30.0, 0.5]
    )
    users = user_batch(frame)
    degrees_per_km = np.degrees(1.0 / EARTH_RADIUS_KM)
    kilometres = np.array([29.999, 30.001, 0.4999, 0.5001, 300.0])
    offers = offer_batch(
        make_offers_frame(
            len(kilometres), remote="full", lat=PARIS[0] + kilometres * degrees_per_km, lon=PARIS[1]
        )
    )
    with _configured(trained, geo_weight=0.0):
        expected = _blend_by_formula(trained, users, offers)
        scores = trained.score(users, offers)
    assert_scores_close(scores, expected, 1e-12)
    # Inside the 30 km radius the place score lifts the offer; past it, it does not.
    assert scores[0, 0] > scores[0, 1] == pytest.approx(scores[0, 4])
    assert scores[1, 2] > scores[1, 3] == pytest.approx(scores[1, 4])


def test_user_without_history_gets_exactly_the_rules_ranking(trained: HybridModel) -> None:
    offers = checkerboard_data().data.offers
    strangers = stranger_users()
    rules = incumbent_scores(strangers.arrays, offers.arrays, remote_overrides=False)
    with _configured(trained, **NO_EXTRAS):
        hybrid = trained.score(strangers, offers)
    np.testing.assert_array_equal(_ranks(hybrid), _ranks(rules))


def test_known_user_with_empty_history_gets_the_rules_ranking() -> None:
    board = checkerboard_data()
    interactions = board.data.interactions.toarray()
    interactions[0] = 0.0
    data = type(board.data)(
        board.data.users,
        board.data.offers,
        type(board.data.interactions)(interactions),
        board.data.applies,
        board.data.cutoff,
    )
    model = HybridModel(HybridConfig(learned_params=LEARNED, **NO_EXTRAS))
    model.train(data)
    first = data.users.take(np.array([0]))
    rules = incumbent_scores(first.arrays, data.offers.arrays, remote_overrides=False)
    np.testing.assert_array_equal(_ranks(model.score(first, data.offers)), _ranks(rules))


def test_heavy_history_follows_the_learned_model() -> None:
    """Half-point 0 gives w = 1 to anyone with a history: the learned order, untouched."""
    data = checkerboard_data().data
    model = HybridModel(HybridConfig(learned_params=LEARNED, blend_halfpoint=0.0, **NO_EXTRAS))
    model.train(data)
    learned = model.learned.score(data.users, data.offers)
    np.testing.assert_array_equal(_ranks(model.score(data.users, data.offers)), _ranks(learned))


def test_blend_is_the_weighted_mean_of_its_two_ends(trained: HybridModel) -> None:
    """Checkerboard users have 5 interactions: half-point 5 gives w = 1/2 exactly."""
    users, offers = checkerboard_data().data.users, checkerboard_data().data.offers
    with _configured(trained, blend_halfpoint=0.0, **NO_EXTRAS):
        learned_end = trained.score(users, offers)
    with _configured(trained, blend_halfpoint=1e12, **NO_EXTRAS):
        rules_end = trained.score(users, offers)
    with _configured(trained, blend_halfpoint=5.0, **NO_EXTRAS):
        blend = trained.score(users, offers)
    assert_scores_close(blend, 0.5 * learned_end + 0.5 * rules_end, FLOAT32_RTOL)


def test_cold_weight_brings_the_learned_model_to_strangers(trained: HybridModel) -> None:
    """At cold_weight 1 a stranger is ranked by LightFM from the profile features alone."""
    strangers, offers = stranger_users(), checkerboard_data().data.offers
    with _configured(trained, cold_weight=1.0, **NO_EXTRAS):
        hybrid = trained.score(strangers, offers)
    np.testing.assert_array_equal(_ranks(hybrid), _ranks(trained.learned.score(strangers, offers)))


def test_freshness_by_hand() -> None:
    cutoff = 1_000 * DAY
    posted = np.array([cutoff - 30 * DAY, cutoff, cutoff + 5 * DAY])
    np.testing.assert_allclose(freshness(posted, cutoff, 15.0), [-np.log(3.0), 0.0, 0.0])


def test_history_location_by_hand() -> None:
    offers = offer_batch(
        make_offers_frame(
            3, lat=[48.0, 44.0, 40.0], lon=[2.0, 6.0, 0.0], remote=["no", "possible", "full"]
        )
    ).arrays
    weights = sp.csr_matrix(np.array([[1.0, 3.0, 5.0], [0.0, 0.0, 2.0]]))
    lat, lon = history_location(weights, offers)
    # Row 0: (1·48 + 3·44) / 4 and (1·2 + 3·6) / 4, the fully remote offer left out.
    np.testing.assert_allclose(lat, [45.0, np.nan])
    np.testing.assert_allclose(lon, [5.0, np.nan])


def test_geography_applies_to_everyone(trained: HybridModel) -> None:
    offers = new_offers()
    for users in (checkerboard_data().data.users, stranger_users()):
        with _configured(trained, **NO_EXTRAS):
            blend = trained.score(users, offers)
        with _configured(trained, **{**NO_EXTRAS, "geo_weight": 2.0}):
            with_geo = trained.score(users, offers)
        geo = _affinity(users.arrays, offers.arrays, trained.config.remote_distance_share)
        np.testing.assert_allclose(with_geo - blend, 2.0 * geo, rtol=1e-9, atol=1e-9)


def test_popularity_by_hand_and_average_for_new_offers() -> None:
    data = random_data(np.random.default_rng(3))  # every offer posted before the cutoff
    model = HybridModel(HybridConfig(learned_params=LEARNED, **NO_EXTRAS))
    model.train(data)
    popularity = np.log1p(np.asarray(data.interactions.sum(axis=0)).ravel())
    expected = (popularity - popularity.mean()) / popularity.std()
    blend = model.score(data.users, data.offers)
    with _configured(model, popularity_weight=0.5):
        with_popularity = model.score(data.users, data.offers)
        fresh = model.score(data.users, new_offers())
    diff = with_popularity - blend
    np.testing.assert_allclose(diff, np.broadcast_to(0.5 * expected, diff.shape), atol=1e-9)
    with _configured(model, **NO_EXTRAS):
        np.testing.assert_allclose(fresh, model.score(data.users, new_offers()), atol=1e-12)


def test_freshness_counts_for_located_visitors_only(trained: HybridModel) -> None:
    offers = checkerboard_data().data.offers  # posted 2024-01-15, 138 days before the cutoff
    nowhere = user_batch(
        make_profiles_frame(
            1, userId=["nowhere"], lat=None, lon=None, postalCode=None, departmentCode=None
        )
    )
    assert np.isnan(nowhere.arrays.lat).all()
    for users, expected in ((stranger_users(), -np.log1p(138 / 15)), (nowhere, 0.0)):
        with _configured(trained, **NO_EXTRAS):
            blend = trained.score(users, offers)
        with _configured(trained, **{**NO_EXTRAS, "freshness_weight": 1.0}):
            fresh = trained.score(users, offers)
        np.testing.assert_allclose(fresh - blend, expected, atol=1e-9)


def test_unlocated_user_is_placed_at_their_history() -> None:
    """Group A users without coordinates are placed at their Paris offers' mean position."""
    board = checkerboard_data()
    frame = make_profiles_frame(12, lat=None, lon=None, postalCode=None, departmentCode=None)
    users = user_batch(frame)
    assert np.isnan(users.arrays.lat).all()
    data = training_data(
        users, board.data.offers, board.data.interactions.toarray(), board.data.applies.toarray()
    )
    model = HybridModel(HybridConfig(learned_params=LEARNED, **NO_EXTRAS))
    model.train(data)
    with _configured(model, geo_weight=1.0):
        with_geo = model.score(users, data.offers)
    home_lat, home_lon = history_location(data.interactions, data.offers.arrays)
    assert home_lat[0] == pytest.approx(PARIS[0], abs=0.05)
    placed = replace(users.arrays, lat=home_lat, lon=home_lon)
    expected = _affinity(placed, data.offers.arrays) + model.score(users, data.offers)
    np.testing.assert_allclose(with_geo, expected, atol=1e-9)


def test_saved_folder_holds_both_models(trained: HybridModel, tmp_path: Path) -> None:
    trained.save(tmp_path)
    with np.load(tmp_path / "arrays.npz", allow_pickle=False) as stored:
        prefixes = {key.split(".")[0] for key in stored.files}
    assert prefixes == {"learned", "hybrid"}
    loaded = HybridModel.load(tmp_path)
    assert loaded.learned.name == "lightfm"
    assert loaded.learned.config == trained.learned.config
    assert loaded.learned.config.embedding_size == LEARNED["embedding_size"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"learned": "hybrid"}, "learned"),
        ({"learned": "nope"}, "learned"),
        ({"learned_params": {"not_a_parameter": 1}}, "not_a_parameter"),
        ({"geo_weight": -1.0}, "geo_weight"),
        ({"blend_halfpoint": -0.5}, "blend_halfpoint"),
        ({"cold_weight": 1.5}, "cold_weight"),
        ({"freshness_days": 0.0}, "freshness_days"),
    ],
)
def test_config_refuses_bad_values(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        create_model("hybrid", params)
