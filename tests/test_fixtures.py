"""The shared fixtures are what the model tests claim they are."""

from __future__ import annotations

import numpy as np
import pytest

from recsys import schema
from tests.fixtures import (
    GROUP_SIZE,
    checkerboard_data,
    make_offers_frame,
    make_profiles_frame,
    new_offers,
    random_data,
    stranger_users,
)


def test_frames_have_every_canonical_column_and_broadcast() -> None:
    offers = make_offers_frame(2, domain=["sport", "sante"], activities=["animation"])
    profiles = make_profiles_frame(2, quizDomains=[["sport"], []])
    assert list(offers.columns) == schema.OFFER_SCHEMA.names
    assert list(profiles.columns) == schema.PROFILE_SCHEMA.names
    assert offers["domain"].tolist() == ["sport", "sante"]
    assert offers["activities"].tolist() == [["animation"], ["animation"]]
    assert profiles["quizDomains"].tolist() == [["sport"], []]


def test_frames_refuse_unknown_columns_and_wrong_lengths() -> None:
    with pytest.raises(ValueError, match=r"unknown column\(s\) \['colour'\]"):
        make_offers_frame(1, colour="red")
    with pytest.raises(ValueError, match=r"profiles\.age: 3 values for 2 rows"):
        make_profiles_frame(2, age=[18, 19, 20])


def test_checkerboard_layout() -> None:
    board = checkerboard_data()
    weights = board.data.interactions.toarray()
    n = 2 * GROUP_SIZE
    assert weights.shape == (n, n)
    assert (weights.sum(axis=1) == GROUP_SIZE - 1).all()
    assert (weights[np.arange(n), board.held_out] == 0).all()
    group = np.arange(n) // GROUP_SIZE
    # Nothing across groups; candidates are the held-out offer then the other group's offers.
    assert (weights[group[:, None] != group[None, :]] == 0).all()
    assert (group[board.candidates[:, 0]] == group).all()
    assert (group[board.candidates[:, 1:]] != group[:, None]).all()
    assert board.data.offers.features.shape[0] == n


def test_strangers_and_new_offers_are_absent_from_training() -> None:
    board = checkerboard_data()
    assert not set(board.data.users.ids) & set(stranger_users().ids)
    fresh = new_offers()
    assert not set(board.data.offers.ids) & set(fresh.ids)
    assert fresh.features.shape[1] == board.data.offers.features.shape[1]
    assert (fresh.arrays.posted_at > board.data.cutoff.timestamp()).all()


def test_random_data_gives_everyone_an_interaction() -> None:
    data = random_data(np.random.default_rng(0), n_users=9, n_offers=5)
    weights = data.interactions.toarray()
    assert (weights.sum(axis=1) > 0).all()
    assert (weights.sum(axis=0) > 0).all()
    assert (data.applies.toarray() <= (weights > 0)).all()
