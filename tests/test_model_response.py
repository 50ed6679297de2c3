"""The response model: the shared model tests, the position-bias estimate recovering a known
bias, and the inverse-propensity labels and the quiz matches computed by hand."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest

from recsys.arrays import offer_arrays, profile_arrays
from recsys.models.response import ips_labels, position_propensities, profile_matches
from tests.fixtures import make_offers_frame, make_profiles_frame
from tests.model_mixin import ModelTests


class TestResponse(ModelTests):
    model_name = "response"
    params: ClassVar = {"max_iterations": 60}
    blends_rules = True


def test_position_bias_recovers_a_known_bias() -> None:
    """Offers of known appeal printed at random positions, clicks drawn from the
    position-based model with e(r) = 1 / log2(1 + r): the estimate finds e within the
    sampling error of 200,000 prints (a relative standard error near 2 % per position)."""
    rng = np.random.default_rng(3)
    n_prints, n_offers, positions = 200_000, 300, 10
    appeal = rng.uniform(0.05, 0.4, size=n_offers)
    offer = rng.integers(0, n_offers, size=n_prints)
    position = rng.integers(1, positions + 1, size=n_prints)
    truth = 1.0 / np.log2(1.0 + np.arange(1, positions + 1))
    clicked = rng.random(n_prints) < truth[position - 1] * appeal[offer]
    estimate = position_propensities(position, clicked, offer, max_position=positions)
    assert estimate[0] == 1.0
    np.testing.assert_allclose(estimate, truth, rtol=0.08)


def test_position_bias_is_not_fooled_by_where_good_offers_are_shown() -> None:
    """The better offers are shown higher (as a logging policy does): the raw click rate per
    position falls much faster than e, the per-offer relevance absorbs it."""
    rng = np.random.default_rng(4)
    n_prints, n_offers, positions = 200_000, 200, 5
    appeal = np.linspace(0.4, 0.05, n_offers)  # offer 0 is the best
    offer = rng.integers(0, n_offers, size=n_prints)
    # Position rises with the offer's rank, with noise: the good offers are mostly on top.
    position = np.clip((offer / n_offers * positions + rng.normal(0, 1.0, n_prints)), 0, 4)
    position = position.astype(np.int64) + 1
    truth = 1.0 / np.log2(1.0 + np.arange(1, positions + 1))
    clicked = rng.random(n_prints) < truth[position - 1] * appeal[offer]
    raw = np.array([clicked[position == r].mean() for r in range(1, positions + 1)])
    assert raw[-1] / raw[0] < 0.6 * truth[-1]  # the naive estimate is far off
    estimate = position_propensities(position, clicked, offer, max_position=positions)
    np.testing.assert_allclose(estimate, truth, rtol=0.1)


def test_ips_labels_by_hand() -> None:
    """Clicked prints get 1 / e(r), e clipped at 0.25 and positions past the table sharing
    its last entry; unclicked prints get 0."""
    propensity = np.array([1.0, 0.5, 0.2])
    clicked = np.array([True, True, True, False, True])
    position = np.array([1, 2, 3, 2, 7])
    labels = ips_labels(clicked, position, propensity, min_propensity=0.25)
    np.testing.assert_array_equal(labels, [1.0, 2.0, 4.0, 0.0, 4.0])


def test_position_bias_needs_a_click_on_top() -> None:
    with pytest.raises(ValueError, match="position 1"):
        position_propensities(np.array([1, 2]), np.array([False, True]), np.array([0, 0]), 2)


def testprofile_matches_by_hand() -> None:
    """Offer 0: sport, two activities (one "aider-accompagner", one "transmettre-animer"), a
    few hours a week; offer 1: environment, one "aider-accompagner" activity, the same
    rhythm. Person 0 ticked sport, "aider-accompagner" and a few hours a week; person 1 took
    no quiz (nothing matches)."""
    offers = offer_arrays(
        make_offers_frame(
            2,
            domain=["sport", "environnement"],
            activities=[["accueil-de-public", "animation"], ["accueil-de-public"]],
        )
    )
    profiles = profile_arrays(
        make_profiles_frame(
            2,
            hasQuiz=[True, False],
            quizDomains=[["sport"], []],
            quizActivities=[["aider-accompagner"], []],
            quizRhythm=["quelques-heures-par-semaine", None],
        )
    )
    u = np.array([0, 0, 1, 1])
    o = np.array([0, 1, 0, 1])
    expected = np.array(
        [
            [1.0, 0.5, 1.0],  # sport ticked; 1 of 2 activities; the rhythm
            [0.0, 1.0, 1.0],  # environment not ticked; its one activity; the rhythm
            [0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0],
        ]
    )
    np.testing.assert_array_equal(profile_matches(profiles, offers, u, o), expected)
