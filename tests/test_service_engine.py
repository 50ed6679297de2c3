"""The ranking service's logic in process: exactness of the fast paths, strategies, admin swaps.

The fast paths (profile arrays and features without pandas, prepared model arrays, the
unit-vector geography test, cached eligibility masks, merged catalogs) are each checked equal
to the core functions they stand for, so what is served is what offline code computes.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys import geo, places, taxonomy
from recsys.arrays import NO_END, offer_arrays, profile_arrays, profile_row_arrays
from recsys.bundle import load_bundle, profiles_frame
from recsys.dataset import OfferBatch, UserBatch
from recsys.eligibility import eligible
from recsys.encoding import UserEncoder
from recsys.filters import one_of
from recsys.policy import ListPolicy
from recsys.schema import Profile, Quiz
from serving.catalog import Catalog, epoch_seconds
from serving.engine import Engine, UnknownOffer
from serving.events import pseudonym
from serving.explanations import reasons
from serving.loading import ModelLoadError, load_model
from serving.paths import redirect
from serving.profiles import ProfileStore, empty_row, request_row
from serving.schemas import RankedItem, RankFilters, RankRequest, SimilarRequest
from serving.scorer import Scorer
from serving.settings import Settings, batch_threads
from serving.state import ModelSlot
from tests.fixtures import (
    FLOAT32_RTOL,
    LYON,
    PARIS,
    assert_scores_close,
    make_offers_frame,
    make_profiles_frame,
    random_offers_frame,
)
from tests.service_fixtures import (
    catalog_offers,
    new_offer,
    train,
    training_profiles,
    write_bundle,
    write_world,
)

NOW = pd.Timestamp.now(tz="UTC").floor("s")
AT = epoch_seconds(NOW)


# --- Profiles: request rows, arrays and features without pandas ---------------------------------

QUIZ_LISTS = {
    "quizDomains": (*taxonomy.QUIZ_DOMAINS, taxonomy.DONT_KNOW),
    "quizActivities": (*taxonomy.QUIZ_ACTIVITIES, taxonomy.DONT_KNOW),
    "quizMotivations": (*taxonomy.MOTIVATIONS, taxonomy.DONT_KNOW),
}
POSTAL_CODES = ["75011", "69001", "13001", "2A004", "97411", "99999"]


@pytest.fixture(scope="module")
def user_encoder() -> UserEncoder:
    """Fitted on profiles that use every quiz value, mobility and a few places."""
    n = len(taxonomy.QUIZ_DOMAINS)
    frame = make_profiles_frame(
        n,
        quizDomains=[[d, taxonomy.DONT_KNOW] for d in taxonomy.QUIZ_DOMAINS],
        quizActivities=[[taxonomy.QUIZ_ACTIVITIES[i % 6]] for i in range(n)],
        quizMotivations=[[taxonomy.MOTIVATIONS[i % 6]] for i in range(n)],
        quizRhythm=[taxonomy.RHYTHMS[i % 5] for i in range(n)],
        mobility=[list(taxonomy.MOBILITY_RADIUS_KM)[i % 4] for i in range(n)],
        departmentCode=["75", "69", "13", "2A", "974", "75", "69", "13", "33"][:n],
        region=["Île-de-France", "Bretagne", "Occitanie"] * 3,
    )
    return UserEncoder().fit(frame)


def _sublist(values: tuple[str, ...]) -> st.SearchStrategy[list[str]]:
    return st.lists(st.sampled_from(values), max_size=3, unique=True)


canonical_rows = st.fixed_dictionaries(
    {
        "userId": st.one_of(st.none(), st.just("u1")),
        "age": st.one_of(
            st.none(),
            st.sampled_from([15, 16, 17.9, 18, 25, 26, 30.5, 31, 90]),
            st.integers(0, 120),
        ),
        "lat": st.one_of(st.none(), st.floats(41.0, 51.0)),
        "lon": st.one_of(st.none(), st.floats(-5.0, 9.0)),
        "postalCode": st.one_of(st.none(), st.sampled_from(POSTAL_CODES)),
        "departmentCode": st.one_of(st.none(), st.sampled_from(["75", "69", "13", "2A", "33"])),
        "region": st.one_of(st.none(), st.sampled_from(["Île-de-France", "Bretagne"])),
        "mobility": st.one_of(st.none(), st.sampled_from(list(taxonomy.MOBILITY_RADIUS_KM))),
        "radiusKm": st.one_of(st.none(), st.floats(1.0, 200.0)),
        "disability": st.booleans(),
        "hasQuiz": st.booleans(),
        "quizDomains": _sublist(QUIZ_LISTS["quizDomains"]),
        "quizActivities": _sublist(QUIZ_LISTS["quizActivities"]),
        "quizRhythm": st.one_of(st.none(), st.sampled_from((*taxonomy.RHYTHMS, "je-ne-sais-pas"))),
        "quizMotivations": _sublist(QUIZ_LISTS["quizMotivations"]),
    }
)


def _frame(row: dict[str, Any]) -> pd.DataFrame:
    return profiles_frame(pd.DataFrame([row]))


@settings(max_examples=60, deadline=None)
@given(row=canonical_rows)
def test_row_columns_equal_the_user_encoder(user_encoder: UserEncoder, row: dict) -> None:
    expected = np.flatnonzero(user_encoder.transform(_frame(row)).toarray()[0])
    np.testing.assert_array_equal(user_encoder.row_columns(row), expected)


def test_feature_matrix_of_many_rows_equals_the_user_encoder(user_encoder: UserEncoder) -> None:
    rows = [
        request_row(Profile(age=19, quiz=Quiz(domains=["sport"])), None, None),
        request_row(None, "x", None),
        request_row(Profile(age=40, postal_code="75011", disability=True), None, None),
    ]
    expected = user_encoder.transform(profiles_frame(pd.DataFrame(rows))).toarray()
    np.testing.assert_array_equal(user_encoder.transform_rows(rows).toarray(), expected)
    assert user_encoder.transform_rows([]).shape == (0, user_encoder.n_features)


def test_feature_matrix_of_a_lone_row_is_built_once(user_encoder: UserEncoder) -> None:
    """Each lone row gets the encoder's matrix; rows with the same features share one."""
    columns = user_encoder
    sporty = request_row(Profile(age=19, quiz=Quiz(domains=["sport"])), None, None)
    same = request_row(Profile(age=19, quiz=Quiz(domains=["sport"])), "someone", None)
    other = request_row(Profile(age=40, postal_code="75011", disability=True), None, None)
    for row in (sporty, other):
        expected = user_encoder.transform(profiles_frame(pd.DataFrame([row]))).toarray()
        np.testing.assert_array_equal(columns.transform_rows([row]).toarray(), expected)
    assert columns.transform_rows([same]) is columns.transform_rows([sporty])
    assert columns.transform_rows([other]) is not columns.transform_rows([sporty])


@settings(max_examples=60, deadline=None)
@given(row=canonical_rows)
def test_profile_row_arrays_equal_profile_arrays(row: dict) -> None:
    expected = profile_arrays(_frame(row))
    found = profile_row_arrays(row)
    for name in expected.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(found, name), getattr(expected, name), err_msg=name)
        assert getattr(found, name).dtype == getattr(expected, name).dtype, name


def test_request_fields_override_the_stored_profile() -> None:
    store = ProfileStore(training_profiles())
    stored = store.get("sport-lyon-0")
    assert stored is not None and stored["postalCode"] == "69001"
    profile = Profile(age=17, postal_code="75011", quiz=Quiz(domains=["sport"]))
    row = request_row(profile, "sport-lyon-0", stored)
    assert (row["age"], row["postalCode"], row["departmentCode"]) == (17, "75011", "75")
    assert row["region"] == "Île-de-France" and row["lat"] is None
    assert row["disability"] is False and row["hasQuiz"] is True  # disability: not given, kept
    assert row["quizDomains"] == ["sport"]
    arrays = profile_row_arrays(row)
    paris_11 = places.locate(postal_code="75011")
    assert (arrays.lat[0], arrays.lon[0]) == (paris_11.lat, paris_11.lon)
    assert arrays.radius_km[0] == taxonomy.DEFAULT_RADIUS_KM
    # Mobility without a radius replaces a stored radius by the mobility's.
    moved = request_row(Profile(mobility="bike"), None, {**stored, "radiusKm": 50.0})
    assert profile_row_arrays(moved).radius_km[0] == taxonomy.MOBILITY_RADIUS_KM["bike"]
    # Nothing known: unknown age and place, default radius.
    nobody = profile_row_arrays(request_row(None, None, None))
    assert math.isnan(nobody.age[0]) and math.isnan(nobody.lat[0])
    assert store.get("nobody") is None and empty_row("x")["quizDomains"] == []


# --- Catalog: eligibility split in cached and geographic parts ---------------------------------


def test_base_and_geography_masks_equal_the_core_eligibility() -> None:
    """The catalog composes the cached rules and the core's geography index into exactly
    `eligible` (the index alone: tests/test_geo_index.py)."""
    rng = np.random.default_rng(3)
    offers = random_offers_frame(rng, 400, NOW)
    catalog = Catalog._assemble(offers, offer_arrays(offers), "random")  # nothing pruned
    for _ in range(40):
        age = None if rng.random() < 0.2 else float(rng.integers(12, 80))
        disability = bool(rng.random() < 0.3)
        lat, lon = (None, None) if rng.random() < 0.2 else (rng.uniform(43, 50), rng.uniform(-1, 7))
        radius = float(rng.choice([0.5, 5.0, 20.0, 150.0, 1000.0]))
        expected = eligible(
            catalog.arrays,
            age=age,
            disability=disability,
            lat=lat,
            lon=lon,
            radius_km=radius,
            at=AT,
        )
        place = [math.nan, math.nan] if lat is None else [lat, lon]
        geography = catalog.geography.mask(*np.array([place]).T, np.array([radius]))
        np.testing.assert_array_equal(
            catalog.base_mask(age, disability, AT) & geography[0], expected
        )
        # A lone request's rows: the same offers, ascending (file order interleaves the
        # offers open anywhere with the others).
        rows = catalog.candidate_rows(*place, radius, age, disability, AT)
        np.testing.assert_array_equal(rows, np.flatnonzero(expected))


def test_built_catalogs_store_offers_open_anywhere_first_then_by_latitude() -> None:
    """Row order is `_storage_order`'s (closed offers left out), ids and arrays moved alike,
    and merged offers come after the kept ones."""
    offers = make_offers_frame(
        6,
        remote=["no", "full", "no", "possible", "no", "no"],
        lat=[48.8, 45.7, np.nan, 50.6, 43.3, 45.7],
        statusCode=["ACCEPTED"] * 5 + ["REFUSED"],
    )
    catalog = Catalog.build(offers, "order", at=AT)[0]
    assert catalog.arrays.ids.tolist() == ["o1", "o3", "o4", "o0", "o2"]
    assert catalog.row == {"o1": 0, "o3": 1, "o4": 2, "o0": 3, "o2": 4}
    np.testing.assert_array_equal(catalog.arrays.lat[:4], [45.7, 50.6, 43.3, 48.8])
    assert catalog.offers["id"].tolist() == catalog.arrays.ids.tolist()
    assert catalog.geography.rows.tolist() == [2, 3]  # located, on site, by latitude
    merged = catalog.merged(make_offers_frame(1, id="o9", lat=40.0), "update", at=AT)[0]
    assert merged.arrays.ids.tolist() == ["o1", "o3", "o4", "o0", "o2", "o9"]
    assert merged.geography.rows.tolist() == [5, 2, 3]


def test_cached_masks_follow_the_clock() -> None:
    """An offer ending at t is eligible at t and not at t + 1; one posted at t from t on."""
    t = AT + 1000
    offers = make_offers_frame(
        3,
        endAt=[pd.Timestamp(t, unit="s", tz="UTC"), None, None],
        postedAt=[NOW - pd.Timedelta(days=1), pd.Timestamp(t, unit="s", tz="UTC"), NOW],
    )
    catalog = Catalog.build(offers, "clock", at=AT)[0]
    assert catalog.base_mask(20, False, AT).tolist() == [True, False, True]
    assert catalog._cache[:2] == (AT, t)  # next change: offer 1 is posted at t
    assert catalog.base_mask(20, False, t).tolist() == [True, True, True]
    assert catalog.base_mask(20, False, t + 1).tolist() == [False, True, True]
    assert catalog._cache[1] == np.iinfo(np.int64).max  # nothing changes any more


def test_build_prunes_closed_offers_and_merge_equals_a_rebuild() -> None:
    base = catalog_offers(NOW)
    catalog, change = Catalog.build(base, "base", at=AT)
    assert {"ended", "refused"}.isdisjoint(catalog.row) and change.removed == 2
    assert len(catalog) == len(base) - 2 and "future" in catalog.row  # may open later
    closing = base[base["id"] == "paris-sport-0"].assign(statusCode="REFUSED")
    changed = base[base["id"] == "lyon-culture-1"].assign(title="Nouveau titre", places=1)
    update = pd.concat([closing, changed, new_offer(now=NOW)], ignore_index=True)
    merged, change = catalog.merged(update, "update", at=AT)
    assert (change.added, change.updated, change.removed) == (1, 1, 1)
    expected_ids = [i for i in catalog.arrays.ids if i not in ("paris-sport-0", "lyon-culture-1")]
    assert list(merged.arrays.ids) == [*expected_ids, "lyon-culture-1", "lyon-sport-new"]
    rebuilt = Catalog._assemble(merged.offers, offer_arrays(merged.offers), "rebuilt")
    for name in merged.arrays.__dataclass_fields__:
        np.testing.assert_array_equal(
            getattr(merged.arrays, name), getattr(rebuilt.arrays, name), err_msg=name
        )
    assert merged.arrays.places[merged.row["lyon-culture-1"]] == 1


# --- Scorers: prepared arrays give the model's own scores -------------------------------------


@pytest.fixture(scope="module", params=["lightfm", "hybrid", "popularity"])
def trained(request: pytest.FixtureRequest) -> tuple[Any, Any]:
    params = {"popularity": {}}.get(request.param)
    if params is None:
        from tests.service_fixtures import HYBRID_PARAMS, LIGHTFM_PARAMS

        params = HYBRID_PARAMS if request.param == "hybrid" else LIGHTFM_PARAMS
    return train(request.param, params)


def _people() -> list[tuple[str | None, Profile | None]]:
    return [
        ("sport-lyon-0", None),  # known, stored profile
        ("culture-paris-1", Profile(age=22)),  # known, one field overridden
        (None, Profile(age=19, lat=LYON[0], lon=LYON[1], quiz=Quiz(domains=["art-culture"]))),
        ("stranger", Profile(postal_code="75011", mobility="bike")),
    ]


def _query(user_id: str | None, row: dict, columns: UserEncoder) -> UserBatch:
    """One person as the engine hands them to the scorer."""
    return UserBatch(
        np.array([user_id], dtype=object), columns.transform_rows([row]), profile_row_arrays(row)
    )


def test_scorers_give_the_models_scores(trained: tuple[Any, Any]) -> None:
    model, feature_set = trained
    catalog = Catalog.build(catalog_offers(NOW), "test", at=AT)[0]
    scorer = Scorer(model, feature_set.offer_encoder)
    prepared = scorer.prepare(catalog)
    columns = feature_set.user_encoder
    store = ProfileStore(training_profiles())
    offers = catalog.offers
    batch = OfferBatch.encode(offers, feature_set.offer_encoder)
    rows = np.array([0, 3, 5, 8, 9, 13, len(catalog) - 1])
    for user_id, profile in _people():
        row = request_row(profile, user_id, store.get(user_id))
        frame = _frame(row)
        users = UserBatch.encode(frame, feature_set.user_encoder)
        expected = model.score(users, batch)[0]
        query = _query(user_id, row, columns)
        found = scorer.score(query, prepared, np.arange(len(catalog)))[0]
        # The served path sums a lone person's LightFM products in float64, `score` in float32
        # BLAS: they agree to float32's precision at the scale of the row (the hybrid then
        # standardises and blends those scores).
        assert_scores_close(found, expected, FLOAT32_RTOL)
        assert_scores_close(scorer.score(query, prepared, rows)[0], expected[rows], FLOAT32_RTOL)
    assert scorer.knows("sport-lyon-0") == (model.name != "popularity")
    assert not scorer.knows("stranger") and not scorer.knows(None)


def test_scorer_update_equals_prepare_on_the_merged_catalog(trained: tuple[Any, Any]) -> None:
    model, feature_set = trained
    catalog = Catalog.build(catalog_offers(NOW), "test", at=AT)[0]
    scorer = Scorer(model, feature_set.offer_encoder)
    merged, change = catalog.merged(new_offer(now=NOW), "update", at=AT)
    updated = scorer.update(scorer.prepare(catalog), merged, change)
    fresh = scorer.prepare(merged)
    for key in ("item_bias", "item_embedding", "popularity", "rule_tags"):
        if fresh.offers.find(key) is not None:
            np.testing.assert_allclose(updated.offers.find(key), fresh.offers.find(key), rtol=1e-12)
    similarity = (updated.similarity, fresh.similarity)
    if hasattr(fresh.similarity, "toarray"):
        similarity = (updated.similarity.toarray(), fresh.similarity.toarray())
    assert_scores_close(*similarity, FLOAT32_RTOL)
    columns = feature_set.user_encoder
    row = request_row(Profile(age=19, lat=LYON[0], lon=LYON[1]), None, None)
    query = _query(None, row, columns)
    every = np.arange(len(merged))
    assert_scores_close(
        scorer.score(query, updated, every), scorer.score(query, fresh, every), 1e-12
    )


# --- Engine: strategies, eligibility, diversity, reasons, admin --------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_world(tmp_path_factory.mktemp("world"))


@pytest.fixture
def engine(world: dict[str, Path]) -> Engine:
    return Engine.start(
        Settings(
            model_uri=str(world["bundle"]), catalog=world["catalog"], profiles=world["profiles"]
        )
    )


def _eligible_ids(
    engine: Engine,
    age: float | None,
    lat: float | None,
    lon: float | None,
    radius: float,
    disability: bool = False,
) -> set[str]:
    catalog = engine.state.catalog
    assert catalog is not None
    mask = eligible(
        catalog.arrays, age=age, disability=disability, lat=lat, lon=lon, radius_km=radius, at=AT
    )
    return set(catalog.arrays.ids[mask])


@pytest.mark.parametrize(
    ("profile", "expected_out"),
    [
        (Profile(age=17, postal_code="75011", radius_km=30), {"paris-adults", "marseille-onsite"}),
        (Profile(age=28, lat=PARIS[0], lon=PARIS[1]), {"paris-sport-1", "paris-culture-3"}),
        (Profile(age=28, lat=PARIS[0], lon=PARIS[1], disability=True), {"lyon-sport-0"}),
        (Profile(), {"future", "full", "ended", "refused"}),
    ],
)
def test_lists_hold_exactly_the_eligible_offers(
    engine: Engine, profile: Profile, expected_out: set[str]
) -> None:
    response = engine.rank(RankRequest(profile=profile, k=100), at=AT).response
    arrays = profile_row_arrays(request_row(profile, None, None))
    expected = _eligible_ids(
        engine,
        None if profile.age is None else profile.age,
        float(arrays.lat[0]),
        float(arrays.lon[0]),
        float(arrays.radius_km[0]),
        profile.disability,
    )
    assert {item.offer_id for item in response.items} == expected
    assert expected_out.isdisjoint(expected)
    assert [item.rank for item in response.items] == list(range(1, len(expected) + 1))


@pytest.fixture(scope="module", params=["hybrid", "lightfm", "response", "rules"])
def any_engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    """An engine serving the hybrid, LightFM (its cold start blends the rules in the engine),
    the response model or, without a model, the rules."""
    model = "hybrid" if request.param == "rules" else request.param
    paths = write_world(tmp_path_factory.mktemp(f"world-{request.param}"), model)
    uri = "/no/such/model" if request.param == "rules" else str(paths["bundle"])
    return Engine.start(
        Settings(model_uri=uri, catalog=paths["catalog"], profiles=paths["profiles"])
    )


def test_a_batch_ranks_each_request_as_alone(any_engine: Engine) -> None:
    """Requests ranked together (`serving.batching`) get the lists they get one by one."""
    quiz = Quiz(domains=["art-culture"], activities=["transmettre-animer"])
    batch = [
        RankRequest(user_id="sport-lyon-0", k=3),
        RankRequest(profile=Profile(age=20, lat=LYON[0], lon=LYON[1], quiz=quiz), k=10),
        RankRequest(user_id="culture-paris-1", profile=Profile(age=22), k=5),
        RankRequest(profile=Profile(age=17, postal_code="75011", radius_km=30), k=100),
        RankRequest(profile=Profile(), k=4, filters=RankFilters(remote=["full", "possible"])),
        RankRequest(
            profile=Profile(age=28, lat=PARIS[0], lon=PARIS[1]),
            k=6,
            exclude_offer_ids=["paris-culture-0", "paris-sport-1"],
        ),
        RankRequest(profile=Profile(age=8), k=5),  # too young for anything: an empty list
        RankRequest(user_id="stranger", k=1),
    ]
    together = any_engine.rank_batch(batch, at=AT)
    assert len(together) == len(batch)
    for request, answer in zip(batch, together, strict=True):
        response, log = answer.response, answer.ranking
        alone = any_engine.rank(request, at=AT).response
        assert response.strategy == alone.strategy
        assert [i.offer_id for i in response.items] == [i.offer_id for i in alone.items]
        assert [i.reasons for i in response.items] == [i.reasons for i in alone.items]
        found = [i.score for i in response.items]
        # Served scores are rounded to 6 decimals.
        assert_scores_close(found, [i.score for i in alone.items], FLOAT32_RTOL, step=1e-6)
        assert log.request_id == response.request_id
        assert log.offer_ids == [i.offer_id for i in response.items]
    strategies = [answer.response.strategy for answer in together]
    if any_engine.state.model is None:
        assert set(strategies) == {"rules_fallback"}
    else:
        assert strategies[0] == "personalized" and strategies[1] == "cold_start"
    assert together[6].response.items == []
    assert len(together[3].response.items) > 5  # k = 100: all eligible
    assert len({answer.response.request_id for answer in together}) == len(batch)


def test_the_answer_written_out_is_the_validated_response(any_engine: Engine) -> None:
    """`Answer.json` (what /rank writes, without building the models) is byte for byte
    what the validated `RankResponse` serialises to: known, cold, anonymous and unplaced
    people, an empty list, a page, display fields asked or not, a redirect after a refusal,
    and an experiment's arm."""
    quiz = Quiz(domains=["art-culture"], activities=["transmettre-animer"])
    paris = Profile(age=20, lat=PARIS[0], lon=PARIS[1], radius_km=30)
    batch = [
        RankRequest(user_id="sport-lyon-0", k=3),
        RankRequest(profile=Profile(age=20, lat=LYON[0], lon=LYON[1], quiz=quiz), k=10),
        RankRequest(profile=Profile(age=17, postal_code="75011", radius_km=30), k=4, offset=4),
        RankRequest(profile=Profile(), k=4, fields=["title", "places_left", "end_at"]),
        RankRequest(profile=paris, k=5, fields=[]),
        RankRequest(profile=Profile(age=8), k=5),
        redirect(
            any_engine.state.catalog,
            RankRequest(
                profile=paris, k=5, after={"offer_id": "paris-sport-1", "outcome": "refused"}
            ),
        ),
    ]
    answers = any_engine.rank_batch(batch, at=AT)
    answers.append(answers[0].tagged("hybrid-vs-rules", "treatment"))
    for answer in answers:
        assert answer.json() == answer.response.model_dump_json().encode()
    assert answers[-1].response.arm == answers[-1].ranking.arm == "treatment"
    chosen = answers[3].response.items[0].model_dump()
    assert set(chosen) - set(RankedItem.model_fields) == set()
    assert {"title", "places_left", "end_at"} <= set(chosen) and "city" not in chosen
    assert "title" not in answers[4].response.items[0].model_dump()
    assert answers[6].response.items[0].reasons[0].code == "after_refused"


def test_requests_carrying_their_instant_are_ranked_and_logged_at_it(engine: Engine) -> None:
    """RECSYS_CLOCK=request: each request of a batch is ranked at its own `at` and its list
    logged at it; the offer `future` (posted in five days) is listed from then on only."""
    profile = Profile(age=20, lat=PARIS[0], lon=PARIS[1], radius_km=30)
    later = (NOW + pd.Timedelta(days=10)).to_pydatetime()
    batch = [
        RankRequest(profile=profile, k=100, at=later),
        RankRequest(profile=profile, k=100),
        RankRequest(profile=profile, k=100, at=later.isoformat()),
    ]
    before = pd.Timestamp.now(tz="UTC")
    ranked = engine.rank_batch(batch, at=AT)
    listed = [[item.offer_id for item in answer.response.items] for answer in ranked]
    assert "future" in listed[0] and "future" not in listed[1] and listed[2] == listed[0]
    alone = engine.rank(batch[0]).response
    assert [item.offer_id for item in alone.items] == listed[0]
    assert ranked[0].ranking.created_at == later and ranked[2].ranking.created_at == later
    assert ranked[1].ranking.created_at >= before  # on the service's clock: when it was made


def test_known_users_get_their_history_and_strangers_their_quiz(engine: Engine) -> None:
    # Same place, same (empty) quiz: only their histories tell the two apart.
    sport = engine.rank(RankRequest(user_id="sport-lyon-0", k=3), at=AT).response
    culture = engine.rank(RankRequest(user_id="culture-lyon-0", k=3), at=AT).response
    assert sport.strategy == culture.strategy == "personalized"
    assert [i.offer_id.rsplit("-", 1)[0] for i in sport.items] == ["lyon-sport"] * 3
    assert [i.offer_id.rsplit("-", 1)[0] for i in culture.items] == ["lyon-culture"] * 3
    quiz = Profile(age=20, lat=LYON[0], lon=LYON[1], quiz=Quiz(domains=["art-culture"]))
    answer = engine.rank(RankRequest(profile=quiz, k=3), at=AT)
    anonymous, log = answer.response, answer.ranking
    assert anonymous.strategy == "cold_start"
    assert [i.domain for i in anonymous.items] == ["culture-loisirs"] * 3
    assert log.offer_ids == [i.offer_id for i in anonymous.items] and log.user_id is None
    assert anonymous.model_version == "local:bundle"


def test_a_model_trained_on_stored_events_knows_visitors_by_their_pseudonym(
    world: dict[str, Path],
) -> None:
    """The store keeps HMAC pseudonyms, so a model trained on its export knows those: a raw
    id from the front is still recognised through the configured salt, and only with it."""
    lists = {}
    for salt in ("pepper", "another-salt"):
        settings_ = Settings(
            model_uri=str(world["bundle"]),
            catalog=world["catalog"],
            profiles=world["profiles"],
            id_salt=salt,
        )
        engine = Engine.start(settings_)
        loaded = engine.state.model.loaded
        arrays = loaded.bundle.model.get_arrays()
        for key in ("hybrid.user_ids", "learned.user_ids"):  # as trained on the store's export
            arrays[key] = np.array([pseudonym(u, "pepper") for u in arrays[key]])
        loaded.bundle.model.set_arrays(arrays)
        engine.state = replace(engine.state, model=ModelSlot.of(loaded, engine.state.catalog))
        lists[salt] = engine.rank(RankRequest(user_id="sport-lyon-0", k=3), at=AT).response
    assert lists["pepper"].strategy == "personalized"
    assert [i.offer_id.rsplit("-", 1)[0] for i in lists["pepper"].items] == ["lyon-sport"] * 3
    assert lists["another-salt"].strategy == "cold_start"


def test_diversity_caps_programmes_unless_no_alternative(world: dict[str, Path]) -> None:
    settings_ = Settings(
        model_uri=str(world["bundle"]),
        catalog=world["catalog"],
        policy=ListPolicy(max_per_programme=0.5, max_per_publisher=1.0),
    )
    engine = Engine.start(settings_)
    profile = Profile(age=20, lat=PARIS[0], lon=PARIS[1])
    response = engine.rank(RankRequest(profile=profile, k=6), at=AT).response
    programmes = [item.programme for item in response.items]
    assert len(programmes) == 6 and max(programmes.count(p) for p in set(programmes)) == 3
    only = RankFilters(types=[taxonomy.BENEVOLAT])
    response = engine.rank(RankRequest(profile=profile, k=6, filters=only), at=AT).response
    assert [i.programme for i in response.items] == [taxonomy.BENEVOLAT] * 6  # cap gives way


def test_filters_and_exclusions(engine: Engine) -> None:
    profile = Profile(age=20, lat=PARIS[0], lon=PARIS[1])
    request = RankRequest(
        profile=profile,
        k=100,
        filters=RankFilters(domains=["culture-loisirs"], remote=["no"]),
        exclude_offer_ids=["paris-culture-0", "not-an-offer"],
    )
    response = engine.rank(request, at=AT).response
    assert {i.offer_id for i in response.items} == {
        "paris-culture-1",
        "paris-culture-2",
        "paris-culture-3",
    }


def test_reasons_are_short_and_hand_checkable(engine: Engine) -> None:
    catalog = engine.state.catalog
    assert catalog is not None
    person = profile_row_arrays(
        request_row(
            Profile(
                lat=LYON[0],
                lon=LYON[1],
                quiz=Quiz(domains=["art-culture"], activities=["creer-communiquer"]),
            ),
            None,
            None,
        )
    )
    rows = np.array([catalog.row["lyon-culture-1"], catalog.row["marseille-remote"]])
    # lyon-culture-1: Service Civique, paid, 0.02° north and east of Lyon's centre.
    distance = float(geo.haversine_km(LYON[0], LYON[1], LYON[0] + 0.02, LYON[1] + 0.02))
    assert round(distance) == 3
    distances, liked = np.array([distance, 280.0]), np.array([False, True])
    said = reasons(catalog, rows, person, np.zeros(2, dtype=np.int64), distances, liked, AT)
    assert said == [
        [
            ("near", "près de chez vous : 3 km"),
            ("domain", "correspond à votre intérêt : culture et loisirs"),
            ("activity", "activité qui vous correspond : créer et communiquer"),
            ("service_civique", "Service Civique indemnisé"),
        ],
        [("remote_full", "mission à distance"), ("liked", "apprécié par des profils proches")],
    ]


def test_rank_says_where_it_placed_the_visitor(engine: Engine) -> None:
    def located(**fields: Any) -> dict[str, Any] | None:
        request = RankRequest(profile=Profile(age=20, **fields), k=3)
        response = engine.rank(request, at=AT).response
        return None if response.location is None else response.location.model_dump()

    arles = located(postal_code="13200")
    assert arles is not None and (arles["source"], arles["commune"]) == ("postal_code", "Arles")
    assert geo.haversine_km(arles["lat"], arles["lon"], 43.5469, 4.6622) < 0.1
    assert located(city="St-Étienne")["commune"] == "Saint-Etienne"
    assert located(insee_code="2A004", postal_code="13200")["commune"] == "Ajaccio"
    assert located(lat=LYON[0], lon=LYON[1]) == {
        "lat": round(LYON[0], 4),
        "lon": round(LYON[1], 4),
        "source": "coordinates",
        "commune": None,
    }
    assert located() is None


@pytest.mark.parametrize(
    "profile",
    [
        Profile(age=40, postal_code="75011", radius_km=30),
        Profile(age=70, postal_code="75011", radius_km=30),
        Profile(age=40),  # no place: offers without a distance to speak of
        Profile(),
    ],
)
def test_every_served_item_says_why(engine: Engine, profile: Profile) -> None:
    response = engine.rank(RankRequest(profile=profile, k=100), at=AT).response
    assert response.items
    assert all(item.reasons for item in response.items), [
        item.offer_id for item in response.items if not item.reasons
    ]


def test_reasons_fall_back_on_the_domain(engine: Engine) -> None:
    """An offer with nothing else to say for this person (no place, no quiz, unpaid, not
    new) says its domain."""
    catalog = engine.state.catalog
    assert catalog is not None
    person = profile_row_arrays(request_row(Profile(age=40), None, None))
    rows = np.array([catalog.row["paris-sport-0"]])
    said = reasons(
        catalog,
        rows,
        person,
        np.zeros(1, dtype=np.int64),
        np.array([np.nan]),
        np.array([False]),
        AT,
    )
    assert said == [[("in_domain", "dans le domaine : sport")]]


def test_known_visitors_never_get_what_they_applied_to(engine: Engine) -> None:
    """The bundle's applies before the cutoff and the store's since are both excluded."""
    in_lyon = Profile(age=20, lat=LYON[0], lon=LYON[1], radius_km=30)
    request = RankRequest(user_id="sport-paris-0", profile=in_lyon, k=100)
    listed = {item.offer_id for item in engine.rank(request, at=AT).response.items}
    # applied_elsewhere: sport-paris-0 applied to lyon-sport-0 before the cutoff.
    assert "lyon-sport-0" not in listed
    assert "lyon-sport-1" in listed
    stranger = RankRequest(profile=in_lyon, k=100)
    assert "lyon-sport-0" in {i.offer_id for i in engine.rank(stranger, at=AT).response.items}
    stored = pseudonym("sport-paris-0", engine.settings.id_salt or "")
    engine.applied.add([(stored, "lyon-sport-1")])  # an apply the event store received
    for batch in ([request], [request, stranger]):  # alone, and within a batch
        response = engine.rank_batch(batch, at=AT)[0].response
        listed = {item.offer_id for item in response.items}
        assert listed and not listed & {"lyon-sport-0", "lyon-sport-1"}


def test_similar_offers(engine: Engine) -> None:
    response = engine.similar(SimilarRequest(offer_id="lyon-sport-1", k=3), at=AT)
    assert response.method == "item_embeddings"
    ids = [item.offer_id for item in response.items]
    assert len(ids) == 3 and "lyon-sport-1" not in ids
    assert all(i.startswith(("lyon-sport", "paris-sport")) for i in ids)
    scores = [item.score for item in response.items]
    assert scores == sorted(scores, reverse=True)
    other = engine.similar(
        SimilarRequest(offer_id="lyon-sport-1", k=20, other_programmes=True), at=AT
    )
    assert other.items and all(i.programme != taxonomy.SERVICE_CIVIQUE for i in other.items)
    assert {"future", "full", "lyon-sport-1"}.isdisjoint(i.offer_id for i in other.items)
    with pytest.raises(UnknownOffer, match="offer_id: unknown offer 'nope'"):
        engine.similar(SimilarRequest(offer_id="nope"))


def test_rules_fallback_when_no_model_loads(world: dict[str, Path]) -> None:
    engine = Engine.start(Settings(model_uri="/no/such/model", catalog=world["catalog"]))
    status = engine.status()
    assert status.ready and status.strategies == ["rules_fallback"]
    assert status.model_version == "rules" and "/no/such/model" in (status.model_error or "")
    response = engine.rank(RankRequest(user_id="sport-lyon-0", k=5), at=AT).response
    assert response.strategy == "rules_fallback" and len(response.items) == 5
    similar = engine.similar(SimilarRequest(offer_id="lyon-sport-1", k=3), at=AT)
    assert similar.method == "offer_attributes"
    assert all(item.domain == "sport" for item in similar.items)


def test_no_catalog_means_not_ready(tmp_path: Path) -> None:
    engine = Engine.start(Settings(model_uri=str(tmp_path / "none")))
    status = engine.status()
    assert not status.ready and "RECSYS_CATALOG is not set" in (status.catalog_error or "")
    from serving.engine import NotReady

    with pytest.raises(NotReady):
        engine.rank(RankRequest())


def test_live_catalog_update_and_failed_swaps_keep_serving(engine: Engine, tmp_path: Path) -> None:
    before = engine.state
    update = tmp_path / "update.parquet"
    new_offer(now=NOW).to_parquet(update, index=False)
    result = engine.update_catalog(str(update))
    assert result.ok and (result.added, result.updated) == (1, 0)
    assert result.catalog_size == len(before.catalog) + 1  # type: ignore[arg-type]
    scores = {}
    for user in ("sport-lyon-0", "culture-lyon-0"):
        response = engine.rank(RankRequest(user_id=user, k=10)).response
        scores[user] = {i.offer_id: i.score for i in response.items}["lyon-sport-new"]
    assert scores["sport-lyon-0"] > scores["culture-lyon-0"]  # scored from its features
    failed = engine.update_catalog(str(tmp_path / "missing.parquet"))
    assert not failed.ok and "does not exist" in failed.message
    assert failed.catalog_version == result.catalog_version
    assert "update failed" in (engine.status().catalog_error or "")
    reload = engine.reload_model("/no/such/model")
    assert not reload.ok and reload.model_version == "local:bundle"
    assert engine.rank(RankRequest(user_id="sport-lyon-0")).response.strategy == "personalized"
    replaced = engine.update_catalog(str(update), mode="replace")
    assert replaced.ok and replaced.catalog_size == 1


# --- Loading models -----------------------------------------------------------------------------


def test_load_model_from_bundle_or_model_folder(world: dict[str, Path], tmp_path: Path) -> None:
    loaded = load_model(str(world["bundle"]))
    assert loaded.version == "local:bundle" and loaded.bundle.model_name == "hybrid"
    shutil.copytree(world["bundle"], tmp_path / "model" / "artifacts" / "bundle")
    assert load_model(str(tmp_path / "model")).bundle.model_name == "hybrid"
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="no ranker bundle"):
        load_model(str(tmp_path / "empty"))
    assert load_bundle(world["bundle"]).model.name == "hybrid"


@pytest.mark.slow
def test_load_model_from_the_registry_alias(tmp_path: Path) -> None:
    import mlflow

    bundle = write_bundle(tmp_path / "bundle", "lightfm")
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # The suite-wide fixture gives the client's URIs back after the test.
    mlflow.set_tracking_uri(tracking)
    mlflow.set_registry_uri(tracking)
    _register_and_load(bundle, tracking)


def _register_and_load(bundle: Path, tracking: str) -> None:
    import mlflow

    class Stub(mlflow.pyfunc.PythonModel):
        def predict(self, context: Any, model_input: list[str]) -> list[str]:
            return model_input

    with mlflow.start_run():
        mlflow.pyfunc.log_model(
            name="model",
            python_model=Stub(),
            artifacts={"bundle": str(bundle)},
            registered_model_name="tiny-ranker",
        )
    mlflow.MlflowClient().set_registered_model_alias("tiny-ranker", "champion", "1")
    loaded = load_model("models:/tiny-ranker@champion", tracking)
    assert loaded.version == "tiny-ranker/v1" and loaded.bundle.model_name == "lightfm"
    with pytest.raises(ModelLoadError, match="models:/tiny-ranker@nope"):
        load_model("models:/tiny-ranker@nope", tracking)


def test_settings_refuse_malformed_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSYS_MAX_PER_PROGRAMME", "lots")
    with pytest.raises(ValueError, match="RECSYS_MAX_PER_PROGRAMME: expected a number"):
        Settings.from_env()
    monkeypatch.setenv("RECSYS_MAX_PER_PROGRAMME", "0.4")
    monkeypatch.setenv("RECSYS_RULES_REMOTE_OVERRIDES", "maybe")
    with pytest.raises(ValueError, match="RECSYS_RULES_REMOTE_OVERRIDES: expected true or false"):
        Settings.from_env()
    monkeypatch.setenv("RECSYS_RULES_REMOTE_OVERRIDES", "yes")
    monkeypatch.setenv("RECSYS_AS_OF", "yesterday")
    with pytest.raises(ValueError, match="RECSYS_AS_OF: expected an ISO date or time"):
        Settings.from_env()
    monkeypatch.setenv("RECSYS_AS_OF", "2025-03-01T12:00:00")
    for name, value, expected in (
        ("RECSYS_MAX_BATCH", "0", "a whole number"),
        ("RECSYS_BATCH_THREADS", "two", "a whole number"),
        ("RECSYS_ACCESS_LOG_ALL", "maybe", "true or false"),
        ("RECSYS_ADMIN_SYNC_SECONDS", "soon", "a number"),
    ):
        monkeypatch.setenv(name, value)
        with pytest.raises(ValueError, match=f"{name}: expected {expected}"):
            Settings.from_env()
        monkeypatch.delenv(name)
    loaded = Settings.from_env()
    assert loaded.policy.max_per_programme == 0.4 and loaded.policy.rules_remote_overrides
    assert loaded.as_of == epoch_seconds(pd.Timestamp("2025-03-01T12:00:00", tz="UTC"))
    assert (loaded.max_batch, loaded.batch_threads) == (32, None)
    monkeypatch.setenv("RECSYS_BATCH_THREADS", "3")
    assert Settings.from_env().batch_threads == 3


def test_batch_threads_follow_the_catalog_size_unless_set() -> None:
    assert batch_threads(None, 10_000) == 1 and batch_threads(None, 100_000) == 2
    assert batch_threads(3, 10_000) == 3 and batch_threads(1, 100_000) == 1


def test_open_ended_offers_never_expire_from_the_cache() -> None:
    offers = make_offers_frame(1, endAt=None)
    catalog = Catalog.build(offers, "open", at=AT)[0]
    assert catalog.arrays.end_at[0] == NO_END
    assert catalog.base_mask(None, False, AT).tolist() == [True]


def test_the_clock_of_a_bundle_snapshot_is_its_cutoff(world: dict[str, Path]) -> None:
    """Without RECSYS_CATALOG the bundle's snapshot is ranked at the instant it describes;
    RECSYS_AS_OF moves the clock (here before any offer was posted: nothing to rank)."""
    engine = Engine.start(Settings(model_uri=str(world["bundle"])))
    bundle = load_bundle(world["bundle"])
    status = engine.status()
    assert status.as_of == bundle.cutoff.to_pydatetime()
    assert status.catalog_source == "bundle local:bundle" and status.catalog_available == 20
    early = NOW - pd.Timedelta(days=60)
    past = Engine.start(
        Settings(
            model_uri=str(world["bundle"]), catalog=world["catalog"], as_of=epoch_seconds(early)
        )
    )
    assert past.rank(RankRequest(k=100)).response.items == []
    assert past.status().as_of == early.to_pydatetime()


@settings(max_examples=50, deadline=None)
@given(
    column=st.lists(st.integers(-1, 14), max_size=40),
    codes=st.lists(st.integers(0, 14), max_size=5),
)
def test_one_of_equals_isin(column: list[int], codes: list[int]) -> None:
    values = np.array(column, dtype=np.int16)
    np.testing.assert_array_equal(one_of(values, codes, 15), np.isin(values, codes))
