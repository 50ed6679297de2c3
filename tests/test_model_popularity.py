"""Popularity: the shared model tests plus hand-computed shares, cells and new-offer priors."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest

from recsys import taxonomy
from recsys.models import create_model
from tests.fixtures import (
    LYON,
    PARIS,
    make_offers_frame,
    make_profiles_frame,
    offer_batch,
    training_data,
    user_batch,
)
from tests.model_mixin import ModelTests

MARSEILLE = (43.2965, 5.3698)


class TestPopularity(ModelTests):
    model_name = "popularity"
    params: ClassVar = {}
    learns_users = False
    solves_checkerboard = False  # every checkerboard offer is equally popular


class TestPopularityLocal(ModelTests):
    model_name = "popularity"
    params: ClassVar = {"by_department": True, "by_programme": True, "shrinkage": 2.0}
    learns_users = False
    solves_checkerboard = False


# Users u0, u1 in Paris, u2 in Lyon. Offers o0, o1 bénévolat in Paris, o2 Service Civique in
# Lyon. With apply_weight 1: pop = (1 + 1 + 1 apply, 0, 0.5 + 0.5) = (3, 0, 1), N = 4.
WEIGHTS = np.array([[1.0, 0.0, 0.5], [1.0, 0.0, 0.0], [0.0, 0.0, 0.5]])
APPLIES = np.array([[1, 0, 0], [0, 0, 0], [0, 0, 0]])


def _data():
    users = user_batch(
        make_profiles_frame(3, lat=[PARIS[0], PARIS[0], LYON[0]], lon=[PARIS[1], PARIS[1], LYON[1]])
    )
    offers = offer_batch(
        make_offers_frame(
            3,
            type=[taxonomy.BENEVOLAT, taxonomy.BENEVOLAT, taxonomy.SERVICE_CIVIQUE],
            lat=[PARIS[0], PARIS[0], LYON[0]],
            lon=[PARIS[1], PARIS[1], LYON[1]],
        )
    )
    return training_data(users, offers, WEIGHTS, APPLIES)


def _visitors(*points: tuple[float, float]):
    return user_batch(
        make_profiles_frame(
            len(points),
            userId=[f"v{i}" for i in range(len(points))],
            lat=[p[0] for p in points],
            lon=[p[1] for p in points],
            postalCode=None,
            departmentCode=None,
        )
    )


def _trained(**params):
    model = create_model("popularity", params)
    data = _data()
    model.train(data)
    return model, data


def test_global_share() -> None:
    model, data = _trained(shrinkage=5.0)  # shrinkage cancels out without cells
    scores = model.score(data.users, data.offers)
    np.testing.assert_allclose(scores, np.tile([0.75, 0.0, 0.25], (3, 1)))


def test_by_programme_ranks_within_programme_with_shrinkage() -> None:
    model, data = _trained(by_programme=True, shrinkage=2.0)
    scores = model.score(data.users.take(np.array([0])), data.offers)
    # bénévolat total 3: o0 (3 + 2·0.75)/(3 + 2) = 0.9, o1 0; Service Civique total 1:
    # o2 (1 + 2·0.25)/(1 + 2) = 0.5.
    np.testing.assert_allclose(scores[0], [0.9, 0.0, 0.5])


def test_by_department_shrinks_local_counts_to_the_national_share() -> None:
    model, data = _trained(by_department=True, shrinkage=2.0)
    visitors = _visitors(PARIS, LYON, MARSEILLE, (np.nan, np.nan))
    scores = model.score(visitors, data.offers)
    # Paris: counts (3, 0, 0.5), total 3.5 → ((3 + 1.5)/5.5, 0, (0.5 + 0.5)/5.5).
    np.testing.assert_allclose(scores[0], [4.5 / 5.5, 0.0, 1.0 / 5.5])
    # Lyon: counts (0, 0, 0.5), total 0.5 → (1.5/2.5, 0, 1/2.5).
    np.testing.assert_allclose(scores[1], [0.6, 0.0, 0.4])
    # Marseille (nobody trained there) and an unlocated visitor: the national share.
    np.testing.assert_allclose(scores[2], [0.75, 0.0, 0.25])
    np.testing.assert_allclose(scores[3], [0.75, 0.0, 0.25])


def test_empty_cells_without_shrinkage_take_the_national_share() -> None:
    model, data = _trained(by_department=True, by_programme=True, shrinkage=0.0)
    scores = model.score(_visitors(PARIS, MARSEILLE), data.offers)
    # Paris, bénévolat cell: counts (3, 0) of 3 → 1, 0; Service Civique cell: 0.5 of 0.5 → 1.
    np.testing.assert_allclose(scores[0], [1.0, 0.0, 1.0])
    # Marseille: every cell is empty → the national share.
    np.testing.assert_allclose(scores[1], [0.75, 0.0, 0.25])


def test_new_offers_get_a_scaled_cell_average() -> None:
    model, data = _trained(new_offer_factor=0.5)
    new = offer_batch(
        make_offers_frame(
            4,
            id=["n0", "n1", "n2", "n3"],
            type=[
                taxonomy.BENEVOLAT,
                taxonomy.SERVICE_CIVIQUE,
                taxonomy.RESERVE,
                taxonomy.BENEVOLAT,
            ],
            lat=[PARIS[0], PARIS[0], PARIS[0], np.nan],
            lon=[PARIS[1], PARIS[1], PARIS[1], np.nan],
        )
    )
    scores = model.score(data.users.take(np.array([0])), new)[0]
    # n0 bénévolat × Paris: mean(0.75, 0) · 0.5; n1 Service Civique has no Paris offer →
    # programme mean 0.25 · 0.5; n2 Réserve has no offer → all offers' mean 1/3 · 0.5;
    # n3 bénévolat without coordinates → programme mean 0.375 · 0.5.
    np.testing.assert_allclose(scores, [0.1875, 0.125, 1 / 6, 0.1875])


def test_training_without_interactions_is_refused() -> None:
    data = _data()
    empty = training_data(data.users, data.offers, np.zeros((3, 3)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="no positive weight"):
        create_model("popularity").train(empty)


def test_config_refuses_negative_shrinkage() -> None:
    with pytest.raises(ValueError, match="shrinkage: must be >= 0"):
        create_model("popularity", {"shrinkage": -1.0})
