"""LightFM hybrid factorisation: users and offers embedded through their features.

A user's (offer's) representation is the sum of the embeddings of its feature columns, rows
normalised to sum to 1 as LightFM's own `Dataset` does. Users and offers seen in training
also get an identity column, so their history refines what the features say; anyone else,
a quiz-only visitor or an offer posted after the cutoff, is represented by features alone,
with no retraining.

Scoring reproduces `LightFM.predict` with numpy: the representations are the feature
matrices times the learned `user_embeddings` / `item_embeddings` (exactly what
`get_user_representations` computes), and the score is their dot product plus both biases,
for a whole batch at once instead of a library call per user.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, fields

import numba
import numpy as np
import scipy.sparse as sp
from lightfm import LightFM

from recsys.dataset import OfferBatch, PreparedOffers, TrainingData, UserBatch
from recsys.models._common import check_width, lookup, require_trained, unicode_ids
from recsys.models.base import ModelConfig, Recommender

logger = logging.getLogger(__name__)

LOSSES = ("warp", "bpr", "logistic")
# score_prepared gathers the candidate rows first when they are under 1/GATHER_SHARE of all.
GATHER_SHARE = 3
# Representations of at most this many rows are summed by a compiled loop, not scipy.
FEW_ROWS = 64


@dataclass
class LightFMConfig(ModelConfig):
    """LightFM hyper-parameters; `regularization` is both `user_alpha` and `item_alpha`.

    `max_sampled` bounds the negatives WARP draws per positive (its cost per step).
    `use_weights` passes the interaction weights as `sample_weight`, rescaled to mean 1 so
    that the learning rate keeps its meaning whatever the weighting scheme of the features.
    `logistic` treats every stored interaction as a positive, so it only makes sense on
    data that also holds negatives; `warp` is the loss for positives-only feedback.
    """

    embedding_size: int = 32
    epochs: int = 20
    learning_rate: float = 0.05
    regularization: float = 1e-6
    loss: str = "warp"
    max_sampled: int = 10
    user_identity: bool = True
    item_identity: bool = True
    use_weights: bool = True

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"LightFMConfig.loss: {self.loss!r} is not one of {LOSSES}")
        for name in ("embedding_size", "epochs", "max_sampled"):
            if getattr(self, name) < 1:
                raise ValueError(f"LightFMConfig.{name}: must be at least 1")


def feature_matrix(
    features: sp.spmatrix, identity_rows: np.ndarray, n_identity: int
) -> sp.csr_matrix:
    """[identity | features], rows normalised to sum to 1, as LightFM expects (float32 CSR).

    `identity_rows[i]` is row i's identity column, -1 for none (unknown user, new offer).
    The same function builds the training and the scoring matrices, so columns line up.
    """
    data, indices, indptr = _feature_entries(features, identity_rows, n_identity)
    return sp.csr_matrix(
        (data, indices, indptr),
        shape=(len(indptr) - 1, n_identity + features.shape[1]),
        dtype=np.float32,
    )


def _as_csr(features: sp.spmatrix) -> sp.csr_matrix:
    """The features as CSR, as given when they are (a copy costs 30 us per request)."""
    if sp.issparse(features) and features.format == "csr":
        return features
    return sp.csr_matrix(features)


def _feature_entries(
    features: sp.spmatrix, identity_rows: np.ndarray, n_identity: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The CSR (data, indices, indptr) of `feature_matrix`.

    Assembled from the CSR arrays rather than with `sp.hstack` and scikit-learn's
    `normalize`, whose checks cost ten times the work for the one-row matrix of a request.
    """
    features = _as_csr(features)
    n_rows = features.shape[0]
    has_identity = (identity_rows >= 0).astype(np.int64)
    row_nnz = np.diff(features.indptr) + has_identity
    indptr = np.concatenate([[0], np.cumsum(row_nnz)])
    row_of = np.repeat(np.arange(n_rows), row_nnz)
    starts = indptr[:-1]
    indices = np.empty(indptr[-1], dtype=np.int64)
    data = np.empty(indptr[-1], dtype=np.float32)
    identity_at = starts[has_identity > 0]
    indices[identity_at] = identity_rows[has_identity > 0]
    data[identity_at] = 1.0
    # Each row's feature entries follow its identity entry, in the features' own order.
    shift = np.repeat(starts + has_identity - features.indptr[:-1], np.diff(features.indptr))
    feature_at = np.arange(features.nnz) + shift
    indices[feature_at] = features.indices + n_identity
    data[feature_at] = features.data
    sums = np.bincount(row_of, weights=np.abs(data), minlength=n_rows)
    data /= np.where(sums > 0, sums, 1.0)[row_of].astype(np.float32)
    return data, indices, indptr


@numba.njit(cache=True, nogil=True)
def _few_representations(
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    identity_rows: np.ndarray,
    n_identity: int,
    biases: np.ndarray,
    embeddings: np.ndarray,
    out_biases: np.ndarray,
    out_embeddings: np.ndarray,
) -> None:
    """`feature_matrix(...) @ biases` and `@ embeddings` for the few rows of a request, from
    the features' CSR arrays, into `out_biases` / `out_embeddings`.

    The same arithmetic as the scipy path, in its order: a row's weights (its identity
    entry, 1, then its features) are divided in float32 by their float64 absolute sum, and
    each product is summed in float64 in entry order. Compiled because building the matrix,
    with scipy's checks, cost several times the arithmetic for one row.
    """
    width = embeddings.shape[1]
    for r in range(indptr.shape[0] - 1):
        identity = identity_rows[r]
        total = 1.0 if identity >= 0 else 0.0
        for e in range(indptr[r], indptr[r + 1]):
            total += abs(np.float64(data[e]))
        scale = np.float32(total if total > 0 else 1.0)
        bias, vector = 0.0, np.zeros(width)
        if identity >= 0:
            weight = np.float64(np.float32(1.0) / scale)
            bias += biases[identity] * weight
            for f in range(width):
                vector[f] += embeddings[identity, f] * weight
        for e in range(indptr[r], indptr[r + 1]):
            weight = np.float64(np.float32(data[e]) / scale)
            column = n_identity + indices[e]
            bias += biases[column] * weight
            for f in range(width):
                vector[f] += embeddings[column, f] * weight
        out_biases[r] = bias
        out_embeddings[r] = vector


@dataclass(frozen=True)
class _Embeddings:
    """The learned LightFM parameters and what lines their rows up with the features."""

    user_ids: np.ndarray  # unicode: the users with an identity column, in column order
    item_ids: np.ndarray  # unicode: the offers with an identity column, in column order
    user_embeddings: np.ndarray  # float32 (n identity users + n user features, d)
    user_biases: np.ndarray  # float32 (n identity users + n user features,)
    item_embeddings: np.ndarray  # float32 (n identity offers + n offer features, d)
    item_biases: np.ndarray  # float32 (n identity offers + n offer features,)
    n_user_features: int  # width of the encoded user features
    n_item_features: int  # width of the encoded offer features


class LightFMModel(Recommender):
    """LightFM with identity columns for training users and offers, features for everyone.

    Identity columns go to the users and offers with at least one training interaction:
    anyone else's identity embedding would only hold its random initialisation (or, for an
    offer, what being sampled as a negative taught it), so they are scored like strangers.
    Training is single-threaded (`num_threads=1`): LightFM's lock-free parallel updates are
    not reproducible, and a seed must give the same model twice.
    """

    name = "lightfm"
    config_class = LightFMConfig
    config: LightFMConfig

    def __init__(self, config: LightFMConfig | None = None) -> None:
        super().__init__(config)
        self._state: _Embeddings | None = None
        self._wide: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    @property
    def checkpoints(self) -> bool:
        return True

    def train(
        self,
        data: TrainingData,
        progress: Callable[[int, int], None] | None = None,
        checkpoint: Callable[[int], None] | None = None,
        checkpoint_every: int = 5,
    ) -> None:
        """Fit on `data.interactions` with the users' and offers' encoded features.

        `progress(done, total)` is called after each epoch (a CLI progress bar).
        `checkpoint(epochs)` is called every `checkpoint_every` epochs before the last, with
        the model usable as trained so far (tuning scores it there, and may stop the training
        by raising, e.g. Optuna's pruning); the arithmetic is the same with or without it.
        """
        config = self.config
        interactions = sp.coo_matrix(data.interactions)
        positive = interactions.data > 0
        if not positive.any():
            raise ValueError("interactions: no positive training interaction to learn from")
        rows, cols = interactions.row[positive], interactions.col[positive]
        weights = interactions.data[positive]
        shape = interactions.shape
        targets = sp.coo_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=shape)
        sample_weight = None
        if config.use_weights:
            scaled = (weights / weights.mean()).astype(np.float32)
            sample_weight = sp.coo_matrix((scaled, (rows, cols)), shape=shape)

        user_identity = _identity_columns(shape[0], rows, config.user_identity)
        item_identity = _identity_columns(shape[1], cols, config.item_identity)
        n_user_identity = int(user_identity.max()) + 1
        n_item_identity = int(item_identity.max()) + 1
        user_features = feature_matrix(data.users.features, user_identity, n_user_identity)
        item_features = feature_matrix(data.offers.features, item_identity, n_item_identity)

        model = LightFM(
            no_components=config.embedding_size,
            loss=config.loss,
            learning_rate=config.learning_rate,
            item_alpha=config.regularization,
            user_alpha=config.regularization,
            max_sampled=config.max_sampled,
            random_state=np.random.RandomState(config.seed),
        )
        user_ids = unicode_ids(data.users.ids[user_identity >= 0])
        item_ids = unicode_ids(data.offers.ids[item_identity >= 0])

        def keep_state() -> None:
            if not (
                np.isfinite(model.item_embeddings).all()
                and np.isfinite(model.user_embeddings).all()
            ):
                raise ValueError(
                    "lightfm: training diverged (non-finite embeddings); lower learning_rate"
                )
            self._set_state(
                _Embeddings(
                    user_ids=user_ids,
                    item_ids=item_ids,
                    user_embeddings=model.user_embeddings.copy(),
                    user_biases=model.user_biases.copy(),
                    item_embeddings=model.item_embeddings.copy(),
                    item_biases=model.item_biases.copy(),
                    n_user_features=data.users.features.shape[1],
                    n_item_features=data.offers.features.shape[1],
                )
            )

        started = time.perf_counter()
        for epoch in range(1, config.epochs + 1):
            model.fit_partial(
                targets,
                user_features=user_features,
                item_features=item_features,
                sample_weight=sample_weight,
                epochs=1,
                num_threads=1,
            )
            logger.debug("lightfm epoch %d/%d", epoch, config.epochs)
            if progress is not None:
                progress(epoch, config.epochs)
            if checkpoint is not None and epoch % checkpoint_every == 0 and epoch < config.epochs:
                keep_state()
                checkpoint(epoch)
        keep_state()
        logger.info(
            "fitted lightfm on %d positives (%d identity users, %d identity offers) in %.1fs",
            len(rows),
            n_user_identity,
            n_item_identity,
            time.perf_counter() - started,
        )

    def user_representations(self, users: UserBatch) -> tuple[np.ndarray, np.ndarray]:
        """(biases, embeddings) of users in float64: identity where known, features always."""
        return self._representations(users.features, users.ids, "user")

    def item_representations(self, offers: OfferBatch) -> tuple[np.ndarray, np.ndarray]:
        """(biases, embeddings) of offers in float64: identity where known, features always."""
        return self._representations(offers.features, offers.ids, "item")

    def _representations(
        self, features: sp.spmatrix, ids: np.ndarray, side: str
    ) -> tuple[np.ndarray, np.ndarray]:
        require_trained(self._state, self.name)
        state = self._state
        check_width(features, getattr(state, f"n_{side}_features"), f"{side}s.features")
        known = getattr(state, f"{side}_ids")
        biases, embeddings = self._wide[side]
        identity_rows = lookup(known, ids)
        if features.shape[0] <= FEW_ROWS:  # a request's people
            csr = _as_csr(features)
            out_biases = np.empty(csr.shape[0])
            out_embeddings = np.empty((csr.shape[0], embeddings.shape[1]))
            _few_representations(
                csr.indptr.astype(np.int64),
                csr.indices.astype(np.int64),
                csr.data.astype(np.float32),
                identity_rows,
                len(known),
                biases,
                embeddings,
                out_biases,
                out_embeddings,
            )
            return out_biases, out_embeddings
        matrix = feature_matrix(features, identity_rows, len(known))
        return matrix @ biases, matrix @ embeddings

    def _set_state(self, state: _Embeddings) -> None:
        """Keep the fitted state, and its parameters in float64 once (not on every request)."""
        self._state = state
        self._wide = {
            side: (
                getattr(state, f"{side}_biases").astype(np.float64),
                getattr(state, f"{side}_embeddings").astype(np.float64),
            )
            for side in ("user", "item")
        }

    def score(self, users: UserBatch, offers: OfferBatch) -> np.ndarray:
        """What `LightFM.predict` gives for every pair, computed as one matrix product."""
        return self.score_prepared(users, self.prepare_offers(offers))

    def prepare_offers(self, offers: OfferBatch) -> PreparedOffers:
        """The offers' representations (`item_bias`, `item_embedding`), once per offer set."""
        biases, embeddings = self.item_representations(offers)
        return PreparedOffers(
            offers,
            {
                "item_bias": biases,
                "item_embedding": np.ascontiguousarray(embeddings, dtype=np.float32),
            },
        )

    def score_prepared(
        self, users: UserBatch, prepared: PreparedOffers, rows: np.ndarray | None = None
    ) -> np.ndarray:
        user_biases, user_embeddings = self.user_representations(users)
        item_biases, item_embeddings = (
            prepared.arrays["item_bias"],
            prepared.arrays["item_embedding"],
        )
        # The vectors in float32, as LightFM's own `predict` multiplies them: at 100k offers,
        # gathering a request's candidate rows and multiplying them costs a third of the
        # same in float64. The biases are added in float64.
        users32 = user_embeddings.astype(np.float32)
        if rows is not None and len(users32) == 1:  # one person: a request alone
            rows = np.asarray(rows, dtype=np.int64)
            out = np.empty((1, len(rows)))
            _gathered_scores(item_embeddings, item_biases, rows, users32, user_biases, out)
            return out
        # (offers × d) @ (d × users), transposed: a product over the offers' contiguous rows,
        # several times faster than (users × d) @ (d × offers) for the few users of a request.
        if rows is None:
            product = (item_embeddings @ users32.T).T
        elif GATHER_SHARE * len(rows) < len(item_biases):  # few rows: gather, then multiply
            product = (np.take(item_embeddings, rows, axis=0) @ users32.T).T
            item_biases = item_biases[rows]
        else:  # most rows: one contiguous product costs less than gathering them
            product = (item_embeddings @ users32.T).T[:, rows]
            item_biases = item_biases[rows]
        return product.astype(np.float64) + user_biases[:, None] + item_biases[None, :]

    def item_embeddings(self, prepared: PreparedOffers) -> np.ndarray | None:
        """The offers' LightFM representations, as `prepare_offers` built them."""
        return prepared.arrays["item_embedding"]

    def knows(self, user_ids: np.ndarray) -> np.ndarray:
        """Users with an identity embedding (at least one training interaction)."""
        require_trained(self._state, self.name)
        return lookup(self._state.user_ids, user_ids) >= 0

    def get_arrays(self) -> dict[str, np.ndarray]:
        require_trained(self._state, self.name)
        return {f.name: np.asarray(getattr(self._state, f.name)) for f in fields(_Embeddings)}

    def set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        values = {f.name: arrays[f.name] for f in fields(_Embeddings)}
        values["n_user_features"] = int(values["n_user_features"])
        values["n_item_features"] = int(values["n_item_features"])
        self._set_state(_Embeddings(**values))


@numba.njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _gathered_scores(
    item_vectors: np.ndarray,
    item_biases: np.ndarray,
    rows: np.ndarray,
    user_vectors: np.ndarray,
    user_biases: np.ndarray,
    out: np.ndarray,
) -> None:
    """out[i, j] = user_vectors[i] · item_vectors[rows[j]] + user_biases[i] +
    item_biases[rows[j]], the float32 products summed in float64 (each product is exact).

    Compiled for one person against a request's candidate rows: gathering the rows into a
    new matrix and then calling BLAS took 1.5 to 3 times as long, and a batch of people is
    still one BLAS product. Reassociation lets the compiler sum in vector registers.
    """
    for i in range(user_vectors.shape[0]):
        for j in range(rows.shape[0]):
            o = rows[j]
            total = 0.0
            for f in range(item_vectors.shape[1]):
                total += np.float64(user_vectors[i, f]) * np.float64(item_vectors[o, f])
            out[i, j] = total + user_biases[i] + item_biases[o]


def _identity_columns(n: int, interacted: np.ndarray, enabled: bool) -> np.ndarray:
    """Identity column of each of n rows: consecutive for rows in `interacted`, else -1."""
    has_identity = np.zeros(n, dtype=bool)
    has_identity[interacted] = enabled
    return np.where(has_identity, np.cumsum(has_identity) - 1, -1)
