"""Scoring one person against catalog rows with the served model, from arrays prepared per catalog.

The Recommender protocol scores a `UserBatch` against an `OfferBatch`; called per request it
would redo, for every offer, work that only depends on the offer (encoding, LightFM's item
representations). A `Scorer` does that work once per catalog (`prepare`, or `update` for the
offers an update added) and keeps it as row-aligned arrays, so that a request costs one
product over the candidate rows. The model files are not touched: the precomputation uses
their public methods and `get_arrays()`.

* `LightFMScorer`: item biases and embeddings from `LightFMModel.item_representations` (once);
  a person's representation from `get_arrays()`'s embeddings (identity column when the model
  knows them, plus their profile's feature columns, the row normalised to sum to 1 as
  `recsys.models.lightfm_model.feature_matrix` does).
* `HybridScorer`: the blend of `recsys.models.hybrid` with its own stored arrays and public
  helpers (`history_weight`, `geo_affinity`), the learned part through the scorer above.
* `GenericScorer`: any other model, through `model.score` on the candidate rows.

Each is tested equal to `model.score` (tests/test_service_engine.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from recsys import taxonomy
from recsys.arrays import OfferArrays, ProfileArrays, profile_arrays
from recsys.bundle import profiles_frame
from recsys.dataset import OfferBatch, UserBatch
from recsys.encoding import OfferEncoder, UserEncoder
from recsys.models.base import Recommender
from recsys.models.hybrid import freshness, geo_affinity, history_weight
from recsys.models.incumbent import incumbent_scores
from serving.catalog import Catalog, CatalogChange, take_offers
from serving.profiles import FeatureColumns, empty_row, row_arrays

# Row-aligned arrays prepared from a catalog (values: ndarray, CSR, or a nested Prepared).
Prepared = dict[str, Any]


@dataclass(frozen=True)
class UserQuery:
    """One person as scoring sees them: id (None when anonymous), arrays, feature columns."""

    user_id: str | None
    arrays: ProfileArrays  # one row
    columns: np.ndarray  # int64 encoder columns set to 1
    n_features: int

    def batch(self) -> UserBatch:
        """The person as a one-row `UserBatch` (for `Recommender.score`)."""
        features = sp.csr_matrix(
            (np.ones(len(self.columns), np.float32), self.columns, [0, len(self.columns)]),
            shape=(1, self.n_features),
        )
        return UserBatch(np.array([self.user_id], dtype=object), features, self.arrays)


def take_rows(prepared: Prepared, rows: np.ndarray) -> Prepared:
    """Every row-aligned array of `prepared` indexed by `rows` (nested dicts included)."""
    return {
        key: take_rows(value, rows) if isinstance(value, dict) else value[rows]
        for key, value in prepared.items()
    }


def concat_rows(first: Prepared, second: Prepared) -> Prepared:
    """`first`'s rows followed by `second`'s, key by key."""
    out: Prepared = {}
    for key, value in first.items():
        other = second[key]
        if isinstance(value, dict):
            out[key] = concat_rows(value, other)
        elif sp.issparse(value):
            out[key] = sp.vstack([value, other], format="csr")
        else:
            out[key] = np.concatenate([value, other])
    return out


class Scorer:
    """Any model, through `model.score` on the candidate rows; base of the fast scorers."""

    similarity_method = "offer_features"

    def __init__(self, model: Recommender, offer_encoder: OfferEncoder) -> None:
        self.model = model
        self.offer_encoder = offer_encoder
        self._known = self._known_users(model)

    @staticmethod
    def _known_users(model: Recommender) -> frozenset[str]:
        """Users the model holds state for: `<name>.user_ids` (a composite's own), else
        `user_ids`; none for models without per-user state (popularity, rules)."""
        arrays = model.get_arrays()
        ids = arrays.get(f"{model.name}.user_ids", arrays.get("user_ids"))
        return frozenset(str(u) for u in ids) if ids is not None else frozenset()

    @property
    def blends_rules(self) -> bool:
        """Whether the model's score already blends the rules engine for cold visitors (the
        hybrid), so that the service serves that score as it was evaluated."""
        return self.model.name == "hybrid"

    def knows(self, user_id: str | None) -> bool:
        """Whether the model learned something about this person (a history)."""
        return user_id is not None and user_id in self._known

    def _batch(self, offers: pd.DataFrame, arrays: OfferArrays) -> OfferBatch:
        return OfferBatch(
            arrays.ids, self.offer_encoder.transform(offers.reset_index(drop=True)), arrays
        )

    def _rows(self, batch: OfferBatch) -> Prepared:
        """Row-aligned arrays of these offers (subclasses add theirs)."""
        features = batch.features.tocsr().astype(np.float32)
        return {"features": features, "similarity": normalize(features, norm="l2")}

    def prepare(self, catalog: Catalog) -> Prepared:
        """Everything per offer a request needs, for the whole catalog."""
        return self._rows(self._batch(catalog.offers, catalog.arrays))

    def update(self, prepared: Prepared, catalog: Catalog, change: CatalogChange) -> Prepared:
        """`prepare` for an updated catalog, computing the new offers' rows only."""
        kept = len(change.kept_rows)
        new = np.arange(kept, len(catalog))
        fresh = self._rows(self._batch(catalog.offers.iloc[kept:], catalog.arrays.take(new)))
        return concat_rows(take_rows(prepared, change.kept_rows), fresh)

    def score(
        self, user: UserQuery, prepared: Prepared, catalog: Catalog, rows: np.ndarray
    ) -> np.ndarray:
        """Scores of `rows` (catalog rows) for `user`, float64; NaN where the model cannot."""
        offers = OfferBatch(
            catalog.arrays.ids[rows], prepared["features"][rows], take_offers(catalog.arrays, rows)
        )
        return np.asarray(self.model.score(user.batch(), offers), dtype=float)[0]


class LightFMScorer(Scorer):
    """LightFM: item representations once per catalog, one product per request."""

    similarity_method = "item_embeddings"

    def __init__(self, model: Recommender, offer_encoder: OfferEncoder) -> None:
        super().__init__(model, offer_encoder)
        arrays = model.get_arrays()
        self._user_index = {str(u): i for i, u in enumerate(arrays["user_ids"])}
        self._user_embeddings = arrays["user_embeddings"].astype(np.float64)
        self._user_biases = arrays["user_biases"].astype(np.float64)
        self._n_identity = len(arrays["user_ids"])

    def _rows(self, batch: OfferBatch) -> Prepared:
        rows = super()._rows(batch)
        biases, embeddings = self.model.item_representations(batch)
        rows["item_bias"] = np.asarray(biases, dtype=np.float64)
        rows["item_embedding"] = np.ascontiguousarray(embeddings, dtype=np.float64)
        rows["similarity"] = normalize(embeddings, norm="l2").astype(np.float32)
        return rows

    def user_vector(self, user: UserQuery) -> tuple[float, np.ndarray]:
        """(bias, embedding) of the person: identity (if known) and features, averaged."""
        columns = self._n_identity + user.columns
        identity = self._user_index.get(user.user_id) if user.user_id is not None else None
        if identity is not None:
            columns = np.concatenate([[identity], columns])
        if len(columns) == 0:
            return 0.0, np.zeros(self._user_embeddings.shape[1])
        weight = 1.0 / len(columns)
        embedding = self._user_embeddings[columns].sum(axis=0) * weight
        return float(self._user_biases[columns].sum() * weight), embedding

    def score(
        self, user: UserQuery, prepared: Prepared, catalog: Catalog, rows: np.ndarray
    ) -> np.ndarray:
        bias, vector = self.user_vector(user)
        embeddings, biases = prepared["item_embedding"], prepared["item_bias"]
        if 3 * len(rows) < len(biases):  # few candidates: gather them, then multiply
            return np.take(embeddings, rows, axis=0) @ vector + biases[rows] + bias
        return (embeddings @ vector + biases)[rows] + bias


class HybridScorer(Scorer):
    """`recsys.models.hybrid`'s blend over prepared arrays, learned part by its own scorer.

    Mirrors `HybridModel.score` term by term with the model's stored arrays and public
    helpers (`history_weight`, `geo_affinity`, `freshness`); the terms that depend on the
    offer only (popularity, freshness) are computed once per catalog. `check_against_model`
    compares it with `model.score` whenever a model is loaded, and the service falls back to
    the exact generic path if they ever disagree (the hybrid evolving faster than this
    mirror).
    """

    def __init__(self, model: Recommender, offer_encoder: OfferEncoder) -> None:
        super().__init__(model, offer_encoder)
        self.inner = scorer_for(model.learned, offer_encoder)  # type: ignore[attr-defined]
        self.similarity_method = self.inner.similarity_method
        arrays = {
            key.removeprefix("hybrid."): value
            for key, value in model.get_arrays().items()
            if key.startswith("hybrid.")
        }
        self._arrays = arrays
        self._warm = {str(u): i for i, u in enumerate(arrays["user_ids"])}
        self._rules_mean, self._rules_std = (float(x) for x in arrays["rules_stats"])
        self._config = model.config

    def _rows(self, batch: OfferBatch) -> Prepared:
        config, arrays = self._config, self._arrays
        learned = self.inner._rows(batch)
        cutoff = int(arrays["cutoff"])
        known = pd.Index(arrays["offer_ids"].astype(str)).get_indexer(batch.ids.astype(str))
        unseen = (known < 0) | (batch.arrays.posted_at >= cutoff)
        popularity = np.where(unseen, 0.0, arrays["popularity"].astype(float)[known])
        fresh = freshness(batch.arrays.posted_at, cutoff, config.freshness_days)
        return {
            "features": learned["features"],
            "similarity": learned["similarity"],
            "popularity": config.popularity_weight * popularity,
            "freshness": config.freshness_weight * fresh,
            "learned": learned,
        }

    def score(
        self, user: UserQuery, prepared: Prepared, catalog: Catalog, rows: np.ndarray
    ) -> np.ndarray:
        config, arrays = self._config, self._arrays
        offers = take_offers(catalog.scoring_arrays, rows)
        warm = self._warm.get(user.user_id) if user.user_id is not None else None
        person = user.arrays
        if warm is not None and (np.isnan(person.lat[0]) or np.isnan(person.lon[0])):
            home = slice(warm, warm + 1)  # placed where their history is
            person = replace(person, lat=arrays["home_lat"][home], lon=arrays["home_lon"][home])
        rules = incumbent_scores(person, offers, remote_overrides=False)[0]
        out = (rules - self._rules_mean) / self._rules_std
        history = np.array([arrays["history"][warm] if warm is not None else 0.0])
        w = float(history_weight(history, config.blend_halfpoint, config.cold_weight)[0])
        if w > 0:
            learned = self.inner.score(user, prepared["learned"], catalog, rows)
            if warm is not None:
                mean, std = arrays["learned_mean"][warm], arrays["learned_std"][warm]
            else:
                mean, std = arrays["cold_learned_stats"]
            learned_z = np.nan_to_num((learned - mean) / std, nan=0.0)
            out = (1.0 - w) * out + w * learned_z
        if config.geo_weight > 0:
            geo = geo_affinity(person, offers, config.remote_distance_share)[0]
            out = out + config.geo_weight * geo
        out = out + prepared["popularity"][rows]
        if np.isfinite(person.lat[0]) and np.isfinite(person.lon[0]):
            out = out + prepared["freshness"][rows]
        return out


def scorer_for(model: Recommender, offer_encoder: OfferEncoder) -> Scorer:
    """The fastest exact scorer for this model."""
    if model.name == "lightfm":
        return LightFMScorer(model, offer_encoder)
    if model.name == "hybrid":
        return HybridScorer(model, offer_encoder)
    return Scorer(model, offer_encoder)


def check_against_model(
    scorer: Scorer,
    catalog: Catalog,
    prepared: Prepared,
    user_encoder: UserEncoder,
    sample: int = 64,
) -> str | None:
    """None when `scorer` gives `model.score`'s scores on a sample of offers and people, else
    what differs (then the service uses the generic, exact path).

    The people: a user the model knows (if any), someone unknown, and an anonymous quiz
    profile placed at the first offer.
    """
    if type(scorer) is Scorer or len(catalog) == 0:
        return None
    rows = np.unique(np.linspace(0, len(catalog) - 1, min(sample, len(catalog))).astype(int))
    a = catalog.arrays
    quiz = {
        **empty_row(None),
        "age": 20,
        "lat": a.lat[0],
        "lon": a.lon[0],
        "hasQuiz": True,
        "quizDomains": [taxonomy.QUIZ_DOMAINS[0]],
    }
    people = [empty_row(user) for user in sorted(scorer._known)[:1]]
    people += [empty_row("someone-unknown"), quiz]
    columns = FeatureColumns(user_encoder)
    offers = OfferBatch(a.ids[rows], prepared["features"][rows], a.take(rows))
    for row in people:
        frame = profiles_frame(pd.DataFrame([row]))
        users = UserBatch(
            frame["userId"].to_numpy(dtype=object),
            user_encoder.transform(frame),
            profile_arrays(frame),
        )
        expected = np.asarray(scorer.model.score(users, offers), dtype=float)[0]
        query = UserQuery(row["userId"], row_arrays(row), columns.columns(row), columns.n_features)
        found = scorer.score(query, prepared, catalog, rows)
        if not np.allclose(found, expected, rtol=1e-6, atol=1e-8, equal_nan=True):
            worst = float(np.nanmax(np.abs(found - expected)))
            return (
                f"{type(scorer).__name__} differs from {scorer.model.name}.score for user "
                f"{row['userId']!r} (max difference {worst:.3g})"
            )
    return None
