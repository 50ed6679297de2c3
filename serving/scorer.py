"""Scoring the people of a batch of requests against catalog rows with the served model.

The model's own protocol does the work: `Recommender.prepare_offers` once per catalog (and
for the offers an update adds), `Recommender.score_prepared` on the candidate rows of each
batch of requests (`serving.batching`), so that the service runs the very code that was
evaluated. Besides the model's part, a prepared catalog holds the unit vectors `/similar`
compares: the model's `item_embeddings` where it has some (LightFM, the hybrid's learned
part), else the encoded offer features.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from recsys.dataset import OfferBatch, PreparedOffers, UserBatch
from recsys.encoding import OfferEncoder
from recsys.models.base import Recommender
from serving.catalog import Catalog, CatalogChange

SimilarityMethod = Literal["item_embeddings", "offer_features"]


@dataclass(frozen=True)
class Prepared:
    """A catalog as the model prepared it, and the unit vectors `/similar` compares."""

    offers: PreparedOffers
    similarity: np.ndarray | sp.csr_matrix  # one unit row per offer
    similarity_method: SimilarityMethod


class Scorer:
    """The served model over a catalog prepared once: one `score_prepared` per batch."""

    def __init__(self, model: Recommender, offer_encoder: OfferEncoder) -> None:
        self.model = model
        self.offer_encoder = offer_encoder

    def knows(self, user_id: str | None) -> bool:
        """Whether the model learned something about this person (`Recommender.knows`)."""
        return bool(self.model.knows(np.array([user_id], dtype=object))[0])

    def _prepared(self, offers: OfferBatch) -> Prepared:
        prepared = self.model.prepare_offers(offers)
        embeddings = self.model.item_embeddings(prepared)
        if embeddings is not None:
            vectors = normalize(embeddings, norm="l2").astype(np.float32)
            return Prepared(prepared, vectors, "item_embeddings")
        features = normalize(offers.features.astype(np.float32), norm="l2")
        return Prepared(prepared, sp.csr_matrix(features), "offer_features")

    def prepare(self, catalog: Catalog) -> Prepared:
        """Everything per offer a request needs, for the whole catalog."""
        features = self.offer_encoder.transform(catalog.offers.reset_index(drop=True))
        return self._prepared(OfferBatch(catalog.arrays.ids, features, catalog.arrays))

    def update(self, prepared: Prepared, catalog: Catalog, change: CatalogChange) -> Prepared:
        """`prepare` for an updated catalog, preparing the offers it added only."""
        kept = len(change.kept_rows)
        new_rows = np.arange(kept, len(catalog))
        features = self.offer_encoder.transform(catalog.offers.iloc[kept:].reset_index(drop=True))
        fresh = self._prepared(
            OfferBatch(catalog.arrays.ids[kept:], features, catalog.arrays.take(new_rows))
        )
        similarity = (
            sp.vstack([prepared.similarity[change.kept_rows], fresh.similarity], format="csr")
            if sp.issparse(fresh.similarity)
            else np.concatenate([prepared.similarity[change.kept_rows], fresh.similarity])
        )
        offers = PreparedOffers.concat([prepared.offers.take(change.kept_rows), fresh.offers])
        return Prepared(offers, similarity, fresh.similarity_method)

    def score(self, users: UserBatch, prepared: Prepared, rows: np.ndarray) -> np.ndarray:
        """Scores of `rows` (catalog rows) for each of `users`, (n_users, n_rows) float64;
        NaN where the model cannot score."""
        return np.asarray(self.model.score_prepared(users, prepared.offers, rows), dtype=float)
