"""The evaluation harness on the tiny simulated dataset: nobody dropped, rules kept, oracle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsys.dataset import OfferBatch, TrainingData, UserBatch
from recsys.evaluation import ORACLE, evaluate
from recsys.featureset import FeatureSet, load_feature_set
from recsys.models import create_model
from recsys.models.base import Recommender

pytest_plugins = ["tests.training_fixtures"]


class _Fixed(Recommender):
    """Scores read from a table of (user, offer) pairs: 1 where listed, else `default`."""

    name = "fixed"

    def __init__(self, pairs: pd.DataFrame, default: float) -> None:
        super().__init__()
        self.pairs = set(zip(pairs["user_key"], pairs["offer_id"], strict=True))
        self.default = default

    def train(self, data: TrainingData, progress=None) -> None:
        """Nothing to learn."""

    def score(self, users: UserBatch, offers: OfferBatch) -> np.ndarray:
        scores = np.full((len(users), len(offers)), self.default)
        for row, user in enumerate(users.ids):
            for column, offer in enumerate(offers.ids):
                if (user, offer) in self.pairs:
                    scores[row, column] = 1.0
        return scores

    def get_arrays(self) -> dict[str, np.ndarray]:
        return {}

    def set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Nothing stored."""


@pytest.fixture(scope="module")
def feature_set(tiny_features: Path) -> FeatureSet:
    return load_feature_set(tiny_features)


def _models(feature_set: FeatureSet, *names: str) -> dict[str, Recommender]:
    """Popularity trained on the feature set, then the named extra models."""
    popularity = create_model("popularity")
    popularity.train(feature_set.training_data())
    extra = {
        "perfect": lambda: _Fixed(feature_set.targets, default=0.0),
        "silent": lambda: _Fixed(feature_set.targets.iloc[:0], default=np.nan),
        "incumbent_local": lambda: create_model("incumbent_local"),
    }
    return {"popularity": popularity, **{name: extra[name]() for name in names}}


@pytest.fixture(scope="module")
def result(feature_set: FeatureSet, tiny_dataset: Path):
    """The models' own order (`policy=None`)."""
    models = _models(feature_set, "perfect", "silent")
    truth = tiny_dataset / "truth"
    return evaluate(feature_set, models, truth_dir=truth, batch_size=7, policy=None)


@pytest.fixture(scope="module")
def served(feature_set: FeatureSet, tiny_dataset: Path):
    """The served policy (the default)."""
    models = _models(feature_set, "silent", "incumbent_local")
    return evaluate(feature_set, models, truth_dir=tiny_dataset / "truth", batch_size=7)


def test_every_user_with_an_apply_is_evaluated(result, feature_set: FeatureSet) -> None:
    users = feature_set.targets["user_key"].nunique()
    assert result.data["users_evaluated"] == users
    for name in ("popularity", "perfect", "silent", ORACLE):
        assert result.models[name]["users_evaluated"] == users
    assert len(result.recommendations["perfect"]) == users


def test_a_model_that_serves_nobody_scores_zero_and_keeps_everyone(result) -> None:
    silent = result.models["silent"]
    assert silent["users_without_recommendations"] == silent["users_evaluated"]
    for metric in ("ndcg@10", "recall@10", "precision@10", "map@10", "hit_rate@10"):
        assert silent[metric] == 0.0


def test_ranking_the_relevant_offers_first_beats_everything(result) -> None:
    perfect = result.models["perfect"]["ndcg@10"]
    assert perfect > result.models["popularity"]["ndcg@10"]
    assert perfect >= result.models[ORACLE]["ndcg@10"]
    # Anonymous visitors with no profile are in the mean; the perfect model knows them too.
    assert result.segments["anonymous"]["perfect"]["users_evaluated"] > 0


def test_no_recommended_offer_breaks_the_rules_or_repeats_an_apply(
    result, feature_set: FeatureSet
) -> None:
    for name, values in result.models.items():
        assert values["ineligible_rate@10"] == 0.0, name
    applied = feature_set.applies
    rows = pd.Index(feature_set.user_ids).get_indexer(result.user_ids)
    for name, recommended in result.recommendations.items():
        for row, items in zip(rows, recommended, strict=True):
            if row >= 0:
                taken = set(applied[row].indices)
                assert not taken & set(items[items >= 0].tolist()), name


def test_segments_and_json(result) -> None:
    document = result.to_json()
    assert set(document) == {"models", "segments", "split", "data"}
    assert {"warm", "cold", "new_offers"} <= set(document["segments"])
    warm = result.segments["warm"]["popularity"]["users_evaluated"]
    cold = result.segments["cold"]["popularity"]["users_evaluated"]
    anonymous = result.segments["anonymous"]["popularity"]["users_evaluated"]
    assert warm + cold + anonymous == result.data["users_evaluated"]
    table = result.table(["ndcg@10", "recall@10"])
    assert list(table.columns) == ["ndcg@10", "recall@10"]
    assert list(table.index) == ["popularity", "perfect", "silent", ORACLE]


def test_the_raw_policy_lists_the_models_own_top_k(result, feature_set: FeatureSet) -> None:
    """`policy=None`: a row of the raw lists is the top-k of the model's scores over the
    candidates, ties by offer position, the figures before the list policy existed."""
    assert result.data["policy"] == "raw"
    popularity = result.recommendations["popularity"]
    scores = result.scores["popularity"]
    for items, listed in zip(popularity, scores, strict=True):
        shown = listed[items >= 0]
        assert (shown[:-1] >= shown[1:]).all()


def test_served_lists_blend_the_rules_for_people_the_model_does_not_know(served) -> None:
    """A model that scores nobody serves cold people the rules (its standardised score is 0
    everywhere): the lists of the rules engine alone, made by the same policy."""
    assert served.data["policy"]["served"]["cold_start_rules_weight"] == 0.5
    silent = served.recommendations["silent"]
    rules_only = served.recommendations["incumbent_local"]
    np.testing.assert_array_equal(silent, rules_only)
    assert served.models["silent"]["users_without_recommendations"] == 0
    for name, values in served.models.items():
        assert values["ineligible_rate@10"] == 0.0, name


def test_lists_frame_names_person_rank_offer_score_model(served) -> None:
    frame = served.lists()
    assert list(frame.columns) == ["person", "rank", "offer", "score", "model"]
    first = frame[(frame["model"] == "popularity") & (frame["rank"] == 1)]
    assert len(first) == int((served.recommendations["popularity"][:, 0] >= 0).sum())
    assert set(frame["model"]) == {"popularity", "silent", "incumbent_local", ORACLE}


def test_estimated_applications_sit_beside_unchanged_accuracy(feature_set: FeatureSet) -> None:
    """The logs' other visitors get lists for the estimates, never a place in the accuracy."""
    models = _models(feature_set, "silent")
    plain = evaluate(feature_set, models, batch_size=7, policy=None)
    both = evaluate(feature_set, models, batch_size=7, policy=None, estimate_applications=True)
    assert both.data["users_evaluated"] == plain.data["users_evaluated"]
    for name, values in plain.models.items():
        assert {key: both.models[name][key] for key in values} == pytest.approx(values, nan_ok=True)
    logged = feature_set.logged()
    summary = both.data["counterfactual"]
    assert summary["lists"] == logged["requestId"].nunique()
    assert summary["logged_applications_per_1000"] == pytest.approx(
        1000 * logged["applied"].sum() / logged["requestId"].nunique()
    )
    assert both.models["silent"]["ips@10"] == 0.0  # lists nothing
    assert both.models["silent"]["ips_coverage@10"] == 0.0
    assert 0.0 < both.models["popularity"]["ips_coverage@10"] <= 1.0
    assert both.models["popularity"]["snips@10"] >= both.models["popularity"]["ips@10"]
