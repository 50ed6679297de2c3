"""LightFM: the shared model contract, scoring through features, and fidelity to the library."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest
import scipy.sparse as sp
from lightfm import LightFM

from recsys.dataset import UserBatch
from recsys.models._common import lookup
from recsys.models.lightfm_model import LightFMConfig, LightFMModel, feature_matrix
from tests.fixtures import (
    FLOAT32_RTOL,
    assert_scores_close,
    checkerboard_data,
    new_offers,
    stranger_users,
)
from tests.model_mixin import ModelTests

PARAMS = {"embedding_size": 8, "epochs": 10, "learning_rate": 0.05}


class TestLightFM(ModelTests):
    model_name = "lightfm"
    params: ClassVar[dict[str, Any]] = PARAMS
    has_item_embeddings = True


class TestLightFMWithoutIdentity(ModelTests):
    model_name = "lightfm"
    params: ClassVar[dict[str, Any]] = {
        **PARAMS,
        "user_identity": False,
        "item_identity": False,
        "loss": "bpr",
    }
    learns_users = False  # no identity column: every user is scored from features alone
    has_item_embeddings = True


@pytest.fixture(scope="module")
def trained() -> LightFMModel:
    model = LightFMModel(LightFMConfig(**PARAMS))
    model.train(checkerboard_data().data)
    return model


def test_strangers_with_the_same_profile_get_the_same_scores(trained: LightFMModel) -> None:
    offers = checkerboard_data().data.offers
    scores = trained.score(stranger_users(), offers)  # rows: A-like, B-like, anonymous A-like
    assert np.isfinite(scores).all()
    np.testing.assert_allclose(scores[0], scores[2], rtol=1e-12)
    assert not np.array_equal(scores[0], scores[1])


def test_strangers_follow_their_features(trained: LightFMModel) -> None:
    """A sport-quiz stranger prefers group A's offers, an art-quiz one group B's."""
    board = checkerboard_data()
    scores = trained.score(stranger_users(), board.data.offers)
    group_a = np.arange(len(board.data.offers)) < 6
    assert scores[0, group_a].mean() > scores[0, ~group_a].mean()
    assert scores[1, ~group_a].mean() > scores[1, group_a].mean()


def test_new_offers_are_scored_from_features(trained: LightFMModel) -> None:
    board = checkerboard_data()
    scores = trained.score(board.data.users, new_offers())  # new-0, new-1 group A; 2, 3 group B
    assert np.isfinite(scores).all()
    group_a_users = np.arange(len(board.data.users)) < 6
    assert (scores[group_a_users, :2].min(axis=1) > scores[group_a_users, 2:].max(axis=1)).all()


def test_one_person_against_chosen_rows(trained: LightFMModel) -> None:
    """A lone person's scores of chosen offers (the compiled path of a request) are the dot
    products of the float32 vectors plus both biases, and agree with a batch's BLAS product."""
    board = checkerboard_data().data
    prepared = trained.prepare_offers(board.offers)
    rows = np.array([5, 0, 9, 2])
    person = board.users.take(np.array([2]))
    biases, vectors = trained.user_representations(person)
    item_vectors = prepared.arrays["item_embedding"][rows].astype(float)
    by_hand = (
        vectors.astype(np.float32).astype(float) @ item_vectors.T
        + biases[:, None]
        + prepared.arrays["item_bias"][rows]
    )
    alone = trained.score_prepared(person, prepared, rows)
    assert_scores_close(alone, by_hand, 1e-12)  # float64 sums of exact float32 products
    batch = trained.score_prepared(board.users.take(np.array([1, 2, 3])), prepared, rows)
    assert_scores_close(alone[0], batch[1], FLOAT32_RTOL)  # BLAS sums in float32


def test_scores_equal_lightfm_predict() -> None:
    """The numpy scoring reproduces the library's `predict` on the same inputs and seed."""
    data = checkerboard_data().data
    model = LightFMModel(LightFMConfig(**PARAMS, use_weights=False))
    model.train(data)
    state = model.get_arrays()
    user_features = feature_matrix(
        data.users.features, lookup(state["user_ids"], data.users.ids), len(state["user_ids"])
    )
    item_features = feature_matrix(
        data.offers.features, lookup(state["item_ids"], data.offers.ids), len(state["item_ids"])
    )
    library = LightFM(
        no_components=PARAMS["embedding_size"],
        learning_rate=PARAMS["learning_rate"],
        loss="warp",
        item_alpha=model.config.regularization,
        user_alpha=model.config.regularization,
        random_state=np.random.RandomState(model.config.seed),
    )
    library.fit(
        sp.coo_matrix((data.interactions > 0).astype(np.float32)),
        user_features=user_features,
        item_features=item_features,
        epochs=PARAMS["epochs"],
        num_threads=1,
    )
    users, offers = np.meshgrid(np.arange(len(data.users)), np.arange(len(data.offers)))
    expected = library.predict(
        users.ravel(order="F").astype(np.int32),
        offers.ravel(order="F").astype(np.int32),
        user_features=user_features,
        item_features=item_features,
    ).reshape(len(data.users), len(data.offers))
    np.testing.assert_allclose(model.score(data.users, data.offers), expected, atol=1e-5)


def test_only_interacting_users_get_an_identity_column() -> None:
    board = checkerboard_data()
    interactions = board.data.interactions.toarray()
    interactions[0] = 0.0
    data = type(board.data)(
        board.data.users,
        board.data.offers,
        sp.csr_matrix(interactions),
        board.data.applies,
        board.data.cutoff,
    )
    model = LightFMModel(LightFMConfig(**PARAMS))
    model.train(data)
    arrays = model.get_arrays()
    assert "u0" not in arrays["user_ids"]
    assert len(arrays["user_ids"]) == len(data.users) - 1
    n_columns = len(arrays["user_ids"]) + data.users.features.shape[1]
    assert arrays["user_embeddings"].shape == (n_columns, PARAMS["embedding_size"])


def test_features_of_another_width_are_refused(trained: LightFMModel) -> None:
    users = stranger_users()
    narrow = UserBatch(users.ids, users.features[:, :-1], users.arrays)
    with pytest.raises(ValueError, match=r"users\.features"):
        trained.score(narrow, checkerboard_data().data.offers)


def test_config_refuses_an_unknown_loss() -> None:
    with pytest.raises(ValueError, match="loss"):
        LightFMConfig.from_dict({"loss": "hinge"})


def test_few_rows_are_summed_as_scipy_sums_them(
    trained: LightFMModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The compiled path for a request's people (known, stranger, no feature at all) gives
    the representations of the scipy path used for larger batches."""
    users = checkerboard_data().data.users
    few = users.take(np.array([0, 7, 3]))
    empty = UserBatch(
        np.array(["nobody"], dtype=object),
        sp.csr_matrix((1, few.features.shape[1]), dtype=np.float32),
        few.arrays.take(np.array([0])),
    )
    for batch in (few, stranger_users(), empty):
        compiled_path = trained.user_representations(batch)
        monkeypatch.setattr("recsys.models.lightfm_model.FEW_ROWS", 0)
        scipy_path = trained.user_representations(batch)
        monkeypatch.undo()
        for found, expected in zip(compiled_path, scipy_path, strict=True):
            assert found.shape == expected.shape
            assert_scores_close(found, expected, 1e-12)
    assert not np.any(trained.user_representations(empty)[1])  # no feature, no identity: 0
