"""The incumbent engine: the shared model tests plus its scores computed by hand."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest

from recsys import rules, taxonomy
from recsys.arrays import OfferArrays, ProfileArrays, offer_arrays, profile_arrays
from recsys.geo import EARTH_RADIUS_KM, unit_vectors
from recsys.models import create_model
from recsys.rules import (
    distances_km,
    geo_scores,
    incumbent_scores,
    offer_tags,
    taxonomy_scores,
)
from tests.fixtures import PARIS, make_offers_frame, make_profiles_frame, offer_batch, user_batch
from tests.model_mixin import ModelTests

KM_PER_DEGREE_LAT = EARTH_RADIUS_KM * np.pi / 180  # along a meridian, haversine is R·Δφ


class TestIncumbent(ModelTests):
    model_name = "incumbent"
    params: ClassVar = {}
    learns_users = False
    blends_rules = True


class TestIncumbentLocal(ModelTests):
    model_name = "incumbent_local"
    params: ClassVar = {}
    learns_users = False
    blends_rules = True


def _profile(**columns):
    defaults = {
        "lat": PARIS[0],
        "lon": PARIS[1],
        "mobility": "bike",  # radius 10 km
        "quizDomains": ["sport"],
        "quizActivities": ["transmettre-animer", "agir-terrain"],
        "quizRhythm": "quelques-heures-par-semaine",
        "quizMotivations": [],
    }
    return make_profiles_frame(1, **{**defaults, **columns})


def _three_offers():
    """A: sport, animation-sportive, bénévolat 2 h/week, on site 5 km north.
    B: culture, ramassage-dechets, Service Civique (full time), full remote, no coordinates.
    C: sport, secourisme, bénévolat 2 h/week, remote "local", 30 km north."""
    return make_offers_frame(
        3,
        domain=["sport", "culture-loisirs", "sport"],
        activities=[["animation-sportive"], ["ramassage-dechets"], ["secourisme"]],
        type=[taxonomy.BENEVOLAT, taxonomy.SERVICE_CIVIQUE, taxonomy.BENEVOLAT],
        remote=["no", "full", "local"],
        lat=[PARIS[0] + 5 / KM_PER_DEGREE_LAT, np.nan, PARIS[0] + 30 / KM_PER_DEGREE_LAT],
        lon=[PARIS[1], np.nan, PARIS[1]],
    )


# Taxonomy part (weights domain 1.5, activity 1.5, rhythm 1.2; motivations not answered):
#   A: domain 1/1 → 1; activity 1 of the user's 2 → 0.5 + 0.5·0.5 = 0.75; rhythm → 1
#      (1.5·1 + 1.5·0.75 + 1.2·1) / 4.2 = 3.825 / 4.2
#   B: domain 0 → 0.5; activity agir-terrain 1/2 → 0.75; rhythm full time ≠ → 0.5
#      (1.5·0.5 + 1.5·0.75 + 1.2·0.5) / 4.2 = 2.475 / 4.2
#   C: domain → 1; activity secourir-proteger 0/2 → 0.5; rhythm → 1
#      (1.5·1 + 1.5·0.5 + 1.2·1) / 4.2 = 3.45 / 4.2
TAXONOMY = np.array([3.825, 2.475, 3.45]) / 4.2
# Geography, radius 10 km: A 1 − 5/10 = 0.5; B full remote 0.9 (no coordinates: 0.1 without
# the override); C local 0.95 (30 km: max(0, 1 − 3) = 0 without the override).
GEO = np.array([0.5, 0.9, 0.95])
GEO_LOCAL = np.array([0.5, 0.1, 0.0])


def _taxonomy(profiles: ProfileArrays, offers: OfferArrays) -> np.ndarray:
    return taxonomy_scores(profiles, offer_tags(offers))


def _geo(profiles: ProfileArrays, offers: OfferArrays, remote_overrides: bool = True) -> np.ndarray:
    distance = distances_km(profiles, unit_vectors(offers.lat, offers.lon))
    return geo_scores(profiles, offers.remote, distance, remote_overrides)


def test_hand_computed_engine_scores() -> None:
    profiles = profile_arrays(_profile())
    offers = offer_arrays(_three_offers())
    np.testing.assert_allclose(_taxonomy(profiles, offers)[0], TAXONOMY)
    np.testing.assert_allclose(_geo(profiles, offers)[0], GEO)
    total = incumbent_scores(profiles, offers)[0]
    # (0.3·taxonomy + 0.3·geo) / 0.6: A 0.705357, B 0.744643, C 0.885714.
    assert total == pytest.approx((TAXONOMY + GEO) / 2)
    assert total == pytest.approx([0.705357, 0.744643, 0.885714], abs=1e-6)


def test_remote_overrides_make_the_difference_between_the_two_engines() -> None:
    users = user_batch(_profile())
    offers = offer_batch(_three_offers())
    literal = create_model("incumbent").score(users, offers)[0]
    local = create_model("incumbent_local").score(users, offers)[0]
    assert local == pytest.approx((TAXONOMY + GEO_LOCAL) / 2)  # 0.705357, 0.344643, 0.410714
    # The literal engine ranks the two remote offers above the on-site match 5 km away;
    # without the overrides the on-site match comes first.
    assert list(np.argsort(-literal)) == [2, 1, 0]
    assert list(np.argsort(-local)) == [0, 2, 1]


def test_full_remote_offer_with_coordinates_is_scored_by_distance_without_overrides() -> None:
    profiles = profile_arrays(_profile())
    offers = offer_arrays(
        make_offers_frame(1, remote="full", lat=PARIS[0] + 2 / KM_PER_DEGREE_LAT, lon=PARIS[1])
    )
    assert _geo(profiles, offers, remote_overrides=True)[0, 0] == pytest.approx(0.9)
    assert _geo(profiles, offers, remote_overrides=False)[0, 0] == pytest.approx(0.8)


def test_without_quiz_the_taxonomy_part_is_neutral() -> None:
    profiles = profile_arrays(
        _profile(hasQuiz=False, quizDomains=[], quizActivities=[], quizRhythm=None)
    )
    offers = offer_arrays(_three_offers())
    np.testing.assert_array_equal(_taxonomy(profiles, offers)[0], [0.5, 0.5, 0.5])


def test_dont_know_skips_the_taxonomy_and_motivations_count() -> None:
    profiles = profile_arrays(
        _profile(
            quizDomains=[taxonomy.DONT_KNOW],
            quizActivities=[taxonomy.DONT_KNOW],
            quizRhythm=taxonomy.DONT_KNOW,
            quizMotivations=["indemnisation", "etre-utile"],
        )
    )
    offers = offer_arrays(
        make_offers_frame(2, compensationAmount=[620.0, None], type=taxonomy.SERVICE_CIVIQUE)
    )
    # Only motivations are answered, and only indemnisation is observable: paid 1, unpaid 0.5.
    np.testing.assert_allclose(_taxonomy(profiles, offers)[0], [1.0, 0.5])


def test_visitor_without_coordinates_gets_the_no_location_score() -> None:
    profiles = profile_arrays(_profile(lat=None, lon=None, postalCode=None, departmentCode=None))
    offers = offer_arrays(_three_offers())
    np.testing.assert_allclose(_geo(profiles, offers)[0], [0.1, 0.9, 0.95])
    np.testing.assert_allclose(_geo(profiles, offers, False)[0], [0.1, 0.1, 0.1])


def test_chunked_scores_equal_one_block() -> None:
    rng = np.random.default_rng(3)
    profiles = profile_arrays(
        make_profiles_frame(
            7,
            lat=PARIS[0] + rng.uniform(-0.2, 0.2, 7),
            lon=PARIS[1] + rng.uniform(-0.2, 0.2, 7),
            quizDomains=[["sport"], [], ["education"], ["sport", "numerique"], [], ["sport"], []],
        )
    )
    offers = offer_arrays(_three_offers())
    one_block = incumbent_scores(profiles, offers)
    by_two_users = incumbent_scores(profiles, offers, max_cells=6)  # chunks of 2, 2, 2, 1
    np.testing.assert_array_equal(by_two_users, one_block)
    assert len(np.unique(one_block.round(9), axis=0)) > 1  # users really differ


def _taxonomy_per_offer(user_tags: np.ndarray, tags: np.ndarray) -> np.ndarray:
    """The engine's formula computed offer by offer, as `taxonomy_scores` computed it before
    its look-up tables: the reference the tables must reproduce."""
    out = np.full((len(user_tags), len(tags)), rules.TAXONOMY_BASE)
    for u, user in enumerate(user_tags.tolist()):
        for o, tag in enumerate(tags.tolist()):
            weighted = total = 0.0
            for weight, block in rules._TAG_BLOCKS:
                chosen = (user & block).bit_count()
                if chosen:
                    overlap = (user & tag & block).bit_count()
                    score = 0.5 + 0.5 * min(overlap / chosen, 1.0)
                    weighted, total = weighted + weight * score, total + weight
            if total:
                out[u, o] = weighted / total
    return out


def test_taxonomy_tables_give_the_formula_for_every_tag() -> None:
    """Random visitors (some with nothing answered) against random tags over all 22 bits."""
    rng = np.random.default_rng(11)
    n_bits = max(mask.bit_length() for _, mask in rules._TAG_BLOCKS)
    tags = rng.integers(0, 1 << n_bits, 300).astype(np.uint32)
    frame = make_profiles_frame(
        40,
        quizDomains=[
            list(rng.choice(taxonomy.QUIZ_DOMAINS, rng.integers(0, 4))) for _ in range(40)
        ],
        quizActivities=[
            list(rng.choice(taxonomy.QUIZ_ACTIVITIES, rng.integers(0, 3))) for _ in range(40)
        ],
        quizRhythm=rng.choice([None, *taxonomy.RHYTHMS], 40).tolist(),
        quizMotivations=[
            list(rng.choice(taxonomy.MOTIVATIONS, rng.integers(0, 3))) for _ in range(40)
        ],
    )
    for column in ("quizDomains", "quizActivities", "quizMotivations"):  # the first: no answer
        frame.at[0, column] = []
    frame.at[0, "quizRhythm"] = None
    profiles = profile_arrays(frame)
    expected = _taxonomy_per_offer(rules._profile_tags(profiles), tags)
    assert (expected == rules.TAXONOMY_BASE).all(axis=1).any()  # someone answered nothing
    np.testing.assert_allclose(taxonomy_scores(profiles, tags), expected, rtol=1e-15)
