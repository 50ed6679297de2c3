"""The tests every model must pass, written once (LensKit style).

A model's test module inherits the mixin and names the model::

    class TestPopularity(ModelTests):
        model_name = "popularity"
        params: ClassVar = {}

(`ClassVar` keeps ruff's RUF012 quiet about a mutable class attribute.)

Class attributes state what the model promises, and the mixin holds it to that:

- `unknown_user_scores`: "finite" when users absent from training are scored from their
  profile (the fixture's strangers have quiz answers and coordinates), "nan" when the model
  cannot score them at all.
- `solves_checkerboard`: False for models that by design ignore the training history of the
  user (popularity, the quiz engine); they carry their own exact hand-computed test instead.
- `scores_new_offers`: True when offers absent from training get finite scores.
- `deterministic`: training twice with the same config gives the same scores.
- `rtol`: relative precision of the model's arithmetic, for the tests that compute the same
  scores along two paths (batch and one by one, prepared and direct): float32 models sum in
  other orders there; see `tests.fixtures.assert_scores_close`.
- `learns_users`: the model keeps per-user state, so `knows` holds for the training users
  with a history (and for no stranger); False for popularity and the quiz engine.
- `has_item_embeddings`: `item_embeddings` gives one learned vector per prepared offer.
- `blends_rules`: the model's score already blends the rules engine for visitors without
  history (the hybrid), so the list policy serves it as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pytest

from recsys.dataset import OfferBatch, PreparedOffers, UserBatch
from recsys.models import create_model, model_class
from recsys.models.base import ARRAYS_FILE, CONFIG_FILE, Recommender
from tests.fixtures import (
    FLOAT32_RTOL,
    Checkerboard,
    assert_scores_close,
    checkerboard_data,
    new_offers,
    random_data,
    stranger_users,
)


class ModelTests:
    """Mixin: subclass, set `model_name` (and `params`, promises) and every test applies."""

    model_name: ClassVar[str]
    params: ClassVar[dict[str, Any]] = {}
    unknown_user_scores: ClassVar[Literal["finite", "nan"]] = "finite"
    solves_checkerboard: ClassVar[bool] = True
    scores_new_offers: ClassVar[bool] = True
    deterministic: ClassVar[bool] = True
    rtol: ClassVar[float] = FLOAT32_RTOL
    learns_users: ClassVar[bool] = True
    has_item_embeddings: ClassVar[bool] = False
    blends_rules: ClassVar[bool] = False

    def make_model(self) -> Recommender:
        return create_model(self.model_name, dict(self.params))

    @pytest.fixture(scope="class")
    def board(self) -> Checkerboard:
        return checkerboard_data()

    @pytest.fixture(scope="class")
    def trained(self, board: Checkerboard) -> Recommender:
        model = self.make_model()
        model.train(board.data)
        return model

    @pytest.fixture(scope="class")
    def all_users(self, board: Checkerboard) -> UserBatch:
        """Training users followed by the strangers."""
        return UserBatch.concat([board.data.users, stranger_users()])

    @pytest.fixture(scope="class")
    def all_offers(self, board: Checkerboard) -> OfferBatch:
        """Training offers followed by the new offers."""
        return OfferBatch.concat([board.data.offers, new_offers()])

    def test_registered_under_its_name(self, trained: Recommender) -> None:
        assert type(trained) is model_class(self.model_name)
        assert trained.name == self.model_name

    def test_known_users_get_finite_scores(self, trained: Recommender, board: Checkerboard) -> None:
        scores = trained.score(board.data.users, board.data.offers)
        assert scores.shape == (len(board.data.users), len(board.data.offers))
        assert np.issubdtype(scores.dtype, np.floating)
        assert np.isfinite(scores).all()

    def test_unknown_users(self, trained: Recommender, board: Checkerboard) -> None:
        strangers = stranger_users()
        scores = trained.score(strangers, board.data.offers)
        assert scores.shape == (len(strangers), len(board.data.offers))
        if self.unknown_user_scores == "finite":
            assert np.isfinite(scores).all()
        else:
            assert np.isnan(scores).all()

    @pytest.mark.parametrize("which", ["few", "most", "all"])
    def test_prepared_scores_equal_score(
        self, trained: Recommender, all_users: UserBatch, all_offers: OfferBatch, which: str
    ) -> None:
        """What the service computes (prepare once, score candidate rows) is `score`."""
        n = len(all_offers)
        rows = {"few": np.array([n - 1, 0]), "most": np.arange(n)[::-1], "all": None}[which]
        expected = trained.score(all_users, all_offers if rows is None else all_offers.take(rows))
        found = trained.score_prepared(all_users, trained.prepare_offers(all_offers), rows)
        assert_scores_close(found, expected, self.rtol)

    def test_prepared_parts_concatenate(
        self, trained: Recommender, board: Checkerboard, all_users: UserBatch
    ) -> None:
        """A catalog update prepares the new offers only and appends them: same scores."""
        parts = [board.data.offers, new_offers()]
        joined = PreparedOffers.concat([trained.prepare_offers(part) for part in parts])
        taken = trained.prepare_offers(OfferBatch.concat(parts)).take(np.arange(len(joined)))
        expected = trained.score(all_users, OfferBatch.concat(parts))
        for prepared in (joined, taken):
            found = trained.score_prepared(all_users, prepared)
            assert_scores_close(found, expected, self.rtol)

    def test_new_offers(self, trained: Recommender, board: Checkerboard) -> None:
        fresh = new_offers()
        scores = trained.score(board.data.users, fresh)
        assert scores.shape == (len(board.data.users), len(fresh))
        if self.scores_new_offers:
            assert np.isfinite(scores).all()

    def test_save_load_gives_identical_scores(
        self,
        trained: Recommender,
        all_users: UserBatch,
        all_offers: OfferBatch,
        tmp_path: Path,
    ) -> None:
        trained.save(tmp_path)
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted([ARRAYS_FILE, CONFIG_FILE])
        with np.load(tmp_path / ARRAYS_FILE, allow_pickle=False) as stored:
            for key in stored.files:
                assert stored[key].dtype != object, key
        loaded = type(trained).load(tmp_path)
        assert loaded.config == trained.config
        np.testing.assert_array_equal(
            loaded.score(all_users, all_offers), trained.score(all_users, all_offers)
        )

    def test_batch_equals_one_by_one(
        self, trained: Recommender, all_users: UserBatch, all_offers: OfferBatch
    ) -> None:
        batch = trained.score(all_users, all_offers)
        rows = [
            trained.score(all_users.take(np.array([u])), all_offers) for u in range(len(all_users))
        ]
        assert_scores_close(np.vstack(rows), batch, self.rtol)

    def test_offer_subset_equals_columns(
        self, trained: Recommender, all_users: UserBatch, all_offers: OfferBatch
    ) -> None:
        order = np.arange(len(all_offers))[::-2]  # a reversed subset mixing old and new offers
        full = trained.score(all_users, all_offers)
        subset = trained.score(all_users, all_offers.take(order))
        assert_scores_close(subset, full[:, order], self.rtol)

    def test_empty_batches(
        self, trained: Recommender, all_users: UserBatch, all_offers: OfferBatch
    ) -> None:
        none = np.array([], dtype=np.int64)
        assert trained.score(all_users, all_offers.take(none)).shape == (len(all_users), 0)
        assert trained.score(all_users.take(none), all_offers).shape == (0, len(all_offers))

    def test_config_round_trips(self, trained: Recommender) -> None:
        config = trained.config
        values = config.to_dict()
        assert type(config).from_dict(values) == config
        assert type(config).from_dict({}) == type(config)()

    def test_config_rejects_unknown_key(self, trained: Recommender) -> None:
        with pytest.raises(ValueError, match="not_a_parameter"):
            type(trained.config).from_dict({"not_a_parameter": 1})

    def test_checkerboard_held_out_ranks_first(
        self, trained: Recommender, board: Checkerboard
    ) -> None:
        if not self.solves_checkerboard:
            pytest.skip(f"{self.model_name} ignores history by design; see its exact test")
        scores = trained.score(board.data.users, board.data.offers)
        picked = np.take_along_axis(scores, board.candidates, axis=1)
        held_out, others = picked[:, 0], picked[:, 1:]
        assert (held_out[:, None] > others).all(), picked

    def test_training_is_deterministic(self) -> None:
        if not self.deterministic:
            pytest.skip(f"{self.model_name} trains with thread-level nondeterminism")
        data = random_data(np.random.default_rng(7))
        first, second = self.make_model(), self.make_model()
        first.train(data)
        second.train(data)
        np.testing.assert_array_equal(
            first.score(data.users, data.offers), second.score(data.users, data.offers)
        )

    def test_train_accepts_progress(self, board: Checkerboard) -> None:
        """Every model takes a progress callback; those with epochs report them in order."""
        calls: list[tuple[int, int]] = []
        self.make_model().train(
            board.data, progress=lambda done, total: calls.append((done, total))
        )
        assert all(0 <= done <= total for done, total in calls), calls
        assert [done for done, _ in calls] == sorted(done for done, _ in calls)

    def test_knows_the_users_it_learned(self, trained: Recommender, board: Checkerboard) -> None:
        history = np.diff(board.data.interactions.indptr) > 0
        known = trained.knows(board.data.users.ids)
        assert known.dtype == bool and known.shape == (len(board.data.users),)
        np.testing.assert_array_equal(known, history if self.learns_users else False)
        assert not trained.knows(stranger_users().ids).any()
        assert not trained.knows(np.array([None, "never-seen"], dtype=object)).any()

    def test_item_embeddings(self, trained: Recommender, all_offers: OfferBatch) -> None:
        prepared = trained.prepare_offers(all_offers)
        vectors = trained.item_embeddings(prepared)
        if not self.has_item_embeddings:
            assert vectors is None
            return
        assert vectors.ndim == 2 and vectors.shape[0] == len(all_offers)
        assert np.isfinite(vectors).all()
        rows = np.array([len(all_offers) - 1, 0])
        np.testing.assert_array_equal(trained.item_embeddings(prepared.take(rows)), vectors[rows])

    def test_states_whether_it_blends_the_rules(self, trained: Recommender) -> None:
        assert type(trained).blends_rules is self.blends_rules
