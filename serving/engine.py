"""The ranking service's logic, without HTTP: state, hot path, admin swaps.

`Engine` holds one `ServingState` (catalog, model and what was prepared from both) behind a
single reference. A request reads the reference once and works on that state to the end; an
admin action builds a complete new state, then replaces the reference, so a request never
sees half an update and a failed update leaves the previous state serving.

The hot path of `rank_batch` (numpy over prepared arrays only, no pandas, no disk), for
the requests that arrived together (one or many, `serving.batching`):

1. the people: stored profile (known `user_id`) with the request's fields over it, as arrays
   and encoder columns (`serving.profiles`);
2. candidates, one row per request: the core's eligibility (`Catalog.base_mask` ∧
   `Catalog.geography_mask`), request filters and exclusions;
3. scores of the offers someone in the batch may get, one product for all, by strategy:
   * `personalized` (the model learned about this person): the model's score;
   * `cold_start` (unknown or anonymous person): the model's score from profile features
     blended with the rules engine. The hybrid blends the rules itself (its score for a
     visitor without history), and that score is served as evaluated; for other models both
     are standardised over the candidates and mixed, `(1 − a) · z(model) + a · z(rules)`,
     a = RECSYS_COLD_START_RULES_WEIGHT;
   * `rules_fallback` (no model could be loaded): the incumbent rules engine alone
     (`recsys.models.incumbent`, without its remote overrides unless configured);
4. `recsys.ranking.top_k` over a pool of each person's candidates, then the greedy caps of
   `recsys.ranking.diversify` twice (publisher cap, then programme cap: the programme cap
   holds exactly, the publisher cap as far as the programme cap allows), k offers kept;
5. distances and reasons for those k only.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import numba
import numpy as np

from recsys import places, taxonomy
from recsys.arrays import ProfileArrays, concat_rows
from recsys.dataset import UserBatch
from recsys.eligibility import pair_distances_km, with_other_addresses
from recsys.models.incumbent import distances_km, rule_scores
from recsys.ranking import PAD, top_k
from serving.catalog import Catalog, CatalogError, read_offers
from serving.events import Ranking, pseudonym
from serving.history import AppliedOffers
from serving.loading import LoadedModel, ModelLoadError, load_model
from serving.profiles import FeatureColumns, ProfileStore, placement, request_row, row_arrays
from serving.schemas import (
    AdminResult,
    RankRequest,
    RankResponse,
    SimilarItem,
    SimilarRequest,
    SimilarResponse,
    Status,
    Strategy,
)
from serving.scorer import Prepared, Scorer
from serving.settings import Settings, group_cap

logger = logging.getLogger(__name__)

RULES_VERSION = "rules"
POOL_FACTOR = 5  # candidates kept before diversity re-ranking, per slot of the list
MIN_POOL = 50
NEW_OFFER_DAYS = 14
LIKED_Z = 0.5  # model score this many deviations above the candidates' mean: "apprécié..."
MAX_REASONS = 4

_PROGRAMME_CODE = {name: i for i, name in enumerate(taxonomy.PROGRAMMES)}
_DOMAIN_CODE = {name: i for i, name in enumerate(taxonomy.DOMAINS)}
_REMOTE_CODE = {name: i for i, name in enumerate(taxonomy.REMOTE_VALUES)}
_ON_SITE = taxonomy.REMOTE_VALUES.index("no")
_FULL_REMOTE = taxonomy.REMOTE_VALUES.index("full")
_POSSIBLE_REMOTE = taxonomy.REMOTE_VALUES.index("possible")
_SERVICE_CIVIQUE = taxonomy.PROGRAMMES.index(taxonomy.SERVICE_CIVIQUE)
_QUIZ_ACTIVITY_LABELS_FR = {
    "aider-accompagner": "aider et accompagner",
    "transmettre-animer": "transmettre et animer",
    "agir-terrain": "agir sur le terrain",
    "secourir-proteger": "secourir et protéger",
    "organiser-coordonner": "organiser et coordonner",
    "creer-communiquer": "créer et communiquer",
}
ACTIVITY_LABELS = [_QUIZ_ACTIVITY_LABELS_FR[name] for name in taxonomy.QUIZ_ACTIVITIES]
DOMAIN_LABELS = {name: label.lower() for name, label in taxonomy.DOMAIN_LABELS_FR.items()}


class NotReady(RuntimeError):
    """No catalog is loaded: nothing can be ranked yet."""


class UnknownOffer(LookupError):
    """An offer id that is not in the live catalog."""


@dataclass(frozen=True)
class ModelSlot:
    """A loaded model, its scorer, and the arrays it prepared for the state's catalog."""

    loaded: LoadedModel
    scorer: Scorer
    features: FeatureColumns
    prepared: Prepared | None
    applied: dict[str, frozenset[str]]  # before the model's cutoff, by the model's user ids


@dataclass(frozen=True)
class ServingState:
    """Everything a request reads; replaced whole by admin actions."""

    catalog: Catalog | None
    model: ModelSlot | None
    model_uri: str
    model_error: str | None = None
    catalog_error: str | None = None
    as_of: int | None = None  # the clock of the lists (epoch seconds); None: now

    def now(self) -> int:
        return _now() if self.as_of is None else self.as_of

    @property
    def model_version(self) -> str:
        return self.model.loaded.version if self.model is not None else RULES_VERSION


def _now() -> int:
    return int(time.time())


def _one_of(column: np.ndarray, codes: list[int], n_codes: int) -> np.ndarray:
    """`np.isin(column, codes)` for codes in [0, n_codes) and -1 (unknown, never chosen):
    a look-up per offer where `isin` sorts, a tenth of the time per filtered request."""
    allowed = np.zeros(n_codes + 1, dtype=bool)  # the last slot is -1's, False
    allowed[codes] = True
    return allowed[column]


def _filters_hold(
    catalog: Catalog, request: RankRequest, rows: np.ndarray | slice
) -> np.ndarray | None:
    """Where the request's filters (programmes, domains, remote) hold over catalog rows
    `rows`; None when it sets none."""
    filters = request.filters
    if filters is None:
        return None
    a = catalog.arrays
    held = None
    for values, codes, column in (
        (filters.types, _PROGRAMME_CODE, a.programme),
        (filters.domains, _DOMAIN_CODE, a.domain),
        (filters.remote, _REMOTE_CODE, a.remote),
    ):
        if values:
            match = _one_of(column[rows], [codes[v] for v in values], len(codes))
            held = match if held is None else held & match
    return held


def _pool_size(k: int) -> int:
    """Candidates kept before diversity re-ranking for a list of k."""
    return max(POOL_FACTOR * k, MIN_POOL)


@dataclass(frozen=True)
class _RowStats:
    """Each row's mean and standard deviation over its finite values where a mask holds
    (a NaN counts as the mean): what standardises a person's scores over their candidates.
    Rows are independent: a batch standardises as one row would."""

    mean: np.ndarray  # (n_rows, 1)
    std: np.ndarray  # (n_rows, 1), 1 where the values are (numerically) constant

    @classmethod
    def of(cls, values: np.ndarray, mask: np.ndarray) -> _RowStats:
        mean = np.empty((values.shape[0], 1))
        std = np.empty((values.shape[0], 1))
        _row_moments(np.ascontiguousarray(values, dtype=np.float64), mask, mean, std)
        return cls(mean, np.where(std > 1e-12, std, 1.0))

    def standardised(self, values: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """(x − mean) / std where x is finite and `mask` holds; elsewhere 0."""
        return np.where(np.isfinite(values) & mask, (values - self.mean) / self.std, 0.0)


@numba.njit(cache=True, nogil=True)
def _row_moments(values: np.ndarray, mask: np.ndarray, mean: np.ndarray, std: np.ndarray) -> None:
    """Each row's mean and (population) standard deviation over its finite values where
    `mask` holds, into `mean` and `std` (n_rows, 1); 0 and 0 for a row with none.

    Two compiled passes per row: with numpy, masking, the mean and the deviations took a
    dozen passes over a request's tens of thousands of candidates.
    """
    for i in range(values.shape[0]):
        count, total = 0, 0.0
        for j in range(values.shape[1]):
            if mask[i, j] and math.isfinite(values[i, j]):
                count += 1
                total += values[i, j]
        centre = total / count if count else 0.0
        squares = 0.0
        for j in range(values.shape[1]):
            if mask[i, j] and math.isfinite(values[i, j]):
                squares += (values[i, j] - centre) ** 2
        mean[i, 0] = centre
        std[i, 0] = math.sqrt(squares / count) if count else 0.0


def _standardised(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`_RowStats.standardised` of each row over its own finite values where `mask` holds."""
    return _RowStats.of(values, mask).standardised(values, mask)


@dataclass(frozen=True)
class _ModelScores:
    """The model's own scores of a batch's candidates, and their statistics per person over
    their candidates `masks` (measured when first needed: a list without personalised items
    needs none)."""

    values: np.ndarray  # (n_people, n_columns)
    masks: np.ndarray  # (n_people, n_columns) bool

    @functools.cached_property
    def stats(self) -> _RowStats:
        return _RowStats.of(self.values, self.masks)

    def z(self, people: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """Standardised score of column `positions[i]` for person `people[i]`: only the
        listed offers need it (NaN, a pair the model cannot score, compares False)."""
        mean, std = self.stats.mean[people, 0], self.stats.std[people, 0]
        return (self.values[people, positions] - mean) / std


def _slot(loaded: LoadedModel, catalog: Catalog | None) -> ModelSlot:
    """The model's scorer and, when there is a catalog, the model's preparation of it."""
    bundle = loaded.bundle
    scorer = Scorer(bundle.model, bundle.offer_encoder)
    prepared = scorer.prepare(catalog) if catalog is not None else None
    features = FeatureColumns(bundle.user_encoder)
    return ModelSlot(loaded, scorer, features, prepared, bundle.applied_by_user())


class Engine:
    """Loads once, ranks many times, swaps state atomically on admin requests."""

    def __init__(self, settings: Settings, state: ServingState, profiles: ProfileStore) -> None:
        self.settings = settings
        self.state = state
        self.profiles = profiles
        self.applied = AppliedOffers()  # received since the model's data (serving.history)
        self._admin = threading.Lock()

    # --- Start-up ------------------------------------------------------------------------

    @classmethod
    def start(cls, settings: Settings) -> Engine:
        """Load model, catalog and profiles; whatever fails is reported, never raised.

        Without a model the engine serves the rules; without a catalog it is not ready.
        """
        loaded: LoadedModel | None = None
        model_error = catalog_error = None
        try:
            loaded = load_model(settings.model_uri, settings.tracking_uri)
        except ModelLoadError as error:
            model_error = str(error)
            logger.warning("serving the rules fallback: %s", error)
        catalog, as_of = None, settings.as_of
        try:
            catalog, as_of = _initial_catalog(settings, loaded)
        except CatalogError as error:
            catalog_error = str(error)
            logger.error("no catalog: %s", error)
        model = None
        if loaded is not None:
            try:
                model = _slot(loaded, catalog)
            except Exception as error:  # a bundle whose encoder or model cannot score
                model_error = f"model {settings.model_uri}: cannot prepare: {error}"
                logger.exception("serving the rules fallback")
        state = ServingState(catalog, model, settings.model_uri, model_error, catalog_error, as_of)
        return cls(settings, state, _profiles(settings, loaded))

    # --- Ranking -----------------------------------------------------------------------------

    def rank(self, request: RankRequest, at: int | None = None) -> tuple[RankResponse, Ranking]:
        """A ranked list for the request, and its log entry: `rank_batch` of one.

        Raises:
            NotReady: no catalog is loaded.
        """
        return self.rank_batch([request], at)[0]

    def rank_batch(
        self, requests: Sequence[RankRequest], at: int | None = None
    ) -> list[tuple[RankResponse, Ranking]]:
        """Ranked lists for requests that arrived together, each as `rank` gives it alone.

        Eligibility and scoring run once for the whole batch, over the offers any of its
        people may get (`serving.batching` gathers the requests): per request, numpy's call
        overheads cost more than the arithmetic below a few tens of thousands of offers, and
        the learned part is then one matrix product instead of one per person.

        Raises:
            NotReady: no catalog is loaded.
        """
        state = self.state
        catalog = state.catalog
        if catalog is None:
            raise NotReady(f"no catalog loaded: {state.catalog_error}")
        at = state.now() if at is None else at
        rows = [request_row(r.profile, r.user_id, self.profiles.get(r.user_id)) for r in requests]
        wheres = [placement(row) for row in rows]
        people = concat_rows([row_arrays(r, w) for r, w in zip(rows, wheres, strict=True)])
        if len(requests) == 1:  # a request alone: its candidates are the columns
            columns = self._request_rows(state, people, requests[0], at)
            masks = np.ones((1, len(columns)), dtype=bool)
        else:
            masks = self._candidates(state, people, requests, at)
            columns = np.flatnonzero(masks.any(axis=0))
            masks = masks[:, columns]
        strategies, scores, learned = self._score(state, catalog, rows, people, columns, masks)
        pool_size = min(len(columns), max(_pool_size(r.k) for r in requests))
        pools = top_k(scores, pool_size, masks)
        chosen = []
        for pool, request in zip(pools, requests, strict=True):
            pool = pool[: _pool_size(request.k)]
            chosen.append(self._order(catalog, columns, pool[pool != PAD], request.k))
        lengths = np.array([len(positions) for positions in chosen], dtype=np.int64)
        owner = np.repeat(np.arange(len(requests)), lengths)
        positions = np.concatenate(chosen)
        ends = np.cumsum(lengths)
        personalized = [strategies[i] == "personalized" for i in owner.tolist()]
        items = self._items(
            catalog,
            people,
            owner,
            columns[positions],
            np.arange(len(owner)) - np.repeat(ends - lengths, lengths) + 1,
            scores[owner, positions],
            personalized,
            at,
            learned.z(owner, positions) if learned is not None and any(personalized) else None,
        )
        created_at = datetime.now(UTC)
        out = []
        for request, strategy, end, length, where in zip(
            requests, strategies, ends.tolist(), lengths.tolist(), wheres, strict=True
        ):
            listed = items[end - length : end]
            request_id = uuid.uuid4().hex
            response = RankResponse.model_validate(  # one pass in pydantic's core
                {
                    "request_id": request_id,
                    "model_version": state.model_version,
                    "catalog_version": catalog.version,
                    "strategy": strategy,
                    "location": _location(where),
                    "items": listed,
                }
            )
            ranking = Ranking(
                request_id=request_id,
                created_at=created_at,
                model_version=state.model_version,
                catalog_version=catalog.version,
                strategy=strategy,
                user_id=request.user_id,
                offer_ids=[item["offer_id"] for item in listed],
                scores=[item["score"] for item in listed],
            )
            out.append((response, ranking))
        return out

    def _candidates(
        self,
        state: ServingState,
        people: ProfileArrays,
        requests: Sequence[RankRequest],
        at: int,
    ) -> np.ndarray:
        """(n_requests, n_offers) bool: the offers each person may be recommended, after
        their request's filters and exclusions."""
        catalog = state.catalog
        mask = catalog.geography_mask(people.lat, people.lon, people.radius_km)
        for i, (age, disability) in enumerate(
            zip(people.age.tolist(), people.disability.tolist(), strict=True)
        ):
            mask[i] &= catalog.base_mask(age, disability, at)
        for i, request in enumerate(requests):
            held = _filters_hold(catalog, request, slice(None))
            if held is not None:
                mask[i] &= held
            for offer_id in self._excluded(state, request):
                row = catalog.row.get(offer_id)
                if row is not None:
                    mask[i, row] = False
        return mask

    def _excluded(self, state: ServingState, request: RankRequest) -> set[str]:
        """Offers the list must not hold: the request's exclusions, and what the visitor
        already applied to (before the model's data, as offline evaluation excludes it, and
        since, from the event store)."""
        excluded = set(request.exclude_offer_ids)
        user_id = request.user_id
        if user_id is None:
            return excluded
        stored = pseudonym(user_id, self.settings.id_salt or "")
        excluded |= self.applied.of(stored)
        model = state.model
        if model is not None:
            for key in (user_id, stored):
                excluded |= model.applied.get(key, frozenset())
        return excluded

    def _request_rows(
        self, state: ServingState, people: ProfileArrays, request: RankRequest, at: int
    ) -> np.ndarray:
        """`_candidates` of a lone request as its catalog rows, ascending, without masks
        over the whole catalog (`Catalog.candidate_rows`)."""
        catalog = state.catalog
        rows = catalog.candidate_rows(
            float(people.lat[0]),
            float(people.lon[0]),
            float(people.radius_km[0]),
            float(people.age[0]),
            bool(people.disability[0]),
            at,
        )
        held = _filters_hold(catalog, request, rows)
        if held is not None:
            rows = rows[held]
        excluded = [catalog.row[o] for o in self._excluded(state, request) if o in catalog.row]
        return rows[~np.isin(rows, excluded)] if excluded else rows

    def _rules(self, catalog: Catalog, people: ProfileArrays, columns: np.ndarray) -> np.ndarray:
        """The incumbent engine's scores of catalog rows `columns`, from the catalog's
        prepared rule tags, (n_people, n_columns)."""
        remote = catalog.arrays.remote[columns]
        distance = distances_km(people, np.take(catalog.xyz, columns, axis=0))
        several = np.flatnonzero(catalog.more_addresses[columns])  # usually none
        if len(several):
            distance[:, several] = with_other_addresses(
                distance[:, several],
                catalog.arrays.more_points[columns[several]],
                people.lat[:, None],
                people.lon[:, None],
            )
        tags = np.take(catalog.rule_tags, columns, axis=0)
        overrides = self.settings.rules_remote_overrides
        return rule_scores(people, tags, remote, distance, overrides)

    def _score(
        self,
        state: ServingState,
        catalog: Catalog,
        rows: list[dict],
        people: ProfileArrays,
        columns: np.ndarray,
        masks: np.ndarray,
    ) -> tuple[list[Strategy], np.ndarray, _ModelScores | None]:
        """(strategy of each person, scores of catalog rows `columns`, the model's own scores
        and their statistics over each person's candidates `masks`, or None without a model)."""
        model = state.model
        if model is None or model.prepared is None:
            return ["rules_fallback"] * len(rows), self._rules(catalog, people, columns), None
        scorer = model.scorer
        ids = [self._model_user_id(scorer, row["userId"]) for row in rows]
        users = UserBatch(np.array(ids, dtype=object), model.features.matrix(rows), people)
        values = scorer.score(users, model.prepared, columns)
        learned = _ModelScores(values, masks)
        known = np.array([scorer.knows(user_id) for user_id in ids])
        strategies: list[Strategy] = ["personalized" if k else "cold_start" for k in known]
        if scorer.blends_rules or known.all():  # the hybrid's own cold-start blend, as evaluated
            return strategies, values, learned
        weight = self.settings.cold_start_rules_weight
        rules_z = _standardised(self._rules(catalog, people, columns), masks) if weight > 0 else 0.0
        blended = (1.0 - weight) * learned.stats.standardised(values, masks) + weight * rules_z
        return strategies, np.where(known[:, None], values, blended), learned

    def _model_user_id(self, scorer: Scorer, user_id: str | None) -> str | None:
        """The id the model knows this visitor by: as given, or as the event store keeps it.

        A model trained on the store's exported events knows visitors by their pseudonyms
        (`serving.events.pseudonym`, keyed by RECSYS_ID_SALT) while the front sends raw ids.
        """
        if user_id is None or scorer.knows(user_id):
            return user_id
        hashed = pseudonym(user_id, self.settings.id_salt or "")
        return hashed if scorer.knows(hashed) else user_id

    def _order(self, catalog: Catalog, columns: np.ndarray, pool: np.ndarray, k: int) -> np.ndarray:
        """Positions (into `columns`) of the k offers to show, best first, diversified from
        the `pool` of best candidates (positions into `columns` too)."""
        if len(pool) == 0:
            return pool
        offers = columns[pool]
        by_publisher = capped(
            np.arange(len(pool)),
            catalog.publisher_code[offers],
            len(pool),
            group_cap(self.settings.max_per_publisher, k),
        )
        final = capped(
            by_publisher,
            catalog.programme_code[offers[by_publisher]],
            k,
            group_cap(self.settings.max_per_programme, k),
        )
        return pool[final]

    def _items(
        self,
        catalog: Catalog,
        people: ProfileArrays,
        owner: np.ndarray,
        rows: np.ndarray,
        ranks: np.ndarray,
        scores: np.ndarray,
        personalized: list[bool],
        at: int,
        learned_z: np.ndarray | None,
    ) -> list[dict]:
        """The `RankedItem` fields of every listed offer of the batch: item i is catalog row
        `rows[i]` at rank `ranks[i]` in the list of person `owner[i]`."""
        a = catalog.arrays
        distances = pair_distances_km(a, rows, people.lat[owner], people.lon[owner])
        liked = np.zeros(len(rows), dtype=bool)
        if learned_z is not None:
            liked = np.array(personalized, dtype=bool) & (learned_z >= LIKED_Z)
        said = reasons(catalog, rows, people, owner, distances, liked, at)
        return [
            {
                "offer_id": offer_id,
                "rank": rank,
                "score": round(score, 6),
                "programme": programme,
                "domain": domain,
                "distance_km": None if math.isnan(distance) else round(distance, 1),
                "reasons": why,
            }
            for offer_id, rank, score, programme, domain, distance, why in zip(
                a.ids[rows].tolist(),
                ranks.tolist(),
                scores.astype(float).tolist(),
                catalog.programme[rows].tolist(),
                catalog.domain[rows].tolist(),
                distances.tolist(),
                said,
                strict=True,
            )
        ]

    # --- Similar offers ------------------------------------------------------------------

    def similar(self, request: SimilarRequest, at: int | None = None) -> SimilarResponse:
        """Open offers most like `request.offer_id` (cosine of the model's item vectors,
        else of the encoded offer features, else of the offers' attributes).

        Raises:
            NotReady: no catalog.
            UnknownOffer: the offer is not in the live catalog.
        """
        state = self.state
        catalog = state.catalog
        if catalog is None:
            raise NotReady(f"no catalog loaded: {state.catalog_error}")
        source = catalog.row.get(request.offer_id)
        if source is None:
            raise UnknownOffer(
                f"offer_id: unknown offer {request.offer_id!r} (not in the live catalog)"
            )
        at = state.now() if at is None else at
        if state.model is not None and state.model.prepared is not None:
            vectors = state.model.prepared.similarity
            method = state.model.prepared.similarity_method
        else:
            vectors, method = catalog.attributes, "offer_attributes"
        if hasattr(vectors, "toarray"):  # sparse encoded features
            similarity = np.asarray((vectors @ vectors[source].T).toarray()).ravel()
        else:
            similarity = vectors @ vectors[source]
        mask = catalog.base_mask(None, False, at).copy()
        mask[source] = False
        if request.other_programmes:
            mask &= catalog.programme_code != catalog.programme_code[source]
        chosen = top_k(similarity.astype(np.float64), request.k, mask)
        chosen = chosen[chosen != PAD]
        a = catalog.arrays
        distances = pair_distances_km(a, chosen, a.lat[source], a.lon[source])
        return SimilarResponse(
            offer_id=request.offer_id,
            model_version=state.model_version,
            method=method,
            items=[
                SimilarItem(
                    offer_id=str(a.ids[row]),
                    rank=i + 1,
                    score=round(float(similarity[row]), 6),
                    programme=catalog.programme[row],
                    domain=catalog.domain[row],
                    distance_km=None if math.isnan(d) else round(float(d), 1),
                )
                for i, (row, d) in enumerate(zip(chosen, distances, strict=True))
            ],
        )

    # --- Status and admin ----------------------------------------------------------------

    def strategies(self) -> list[Strategy]:
        state = self.state
        if state.catalog is None:
            return []
        if state.model is None:
            return ["rules_fallback"]
        return ["personalized", "cold_start"]

    def status(self, rank_log_pending: int = 0, rank_log_dropped: int = 0) -> Status:
        state = self.state
        catalog = state.catalog
        return Status(
            ready=catalog is not None,
            model_version=state.model_version,
            model_name=state.model.loaded.bundle.model_name if state.model else None,
            similarity_method=(
                state.model.prepared.similarity_method
                if state.model is not None and state.model.prepared is not None
                else None
            ),
            model_uri=state.model_uri,
            model_error=state.model_error,
            strategies=self.strategies(),
            catalog_version=catalog.version if catalog else None,
            catalog_source=catalog.source if catalog else None,
            catalog_size=len(catalog) if catalog else 0,
            catalog_available=catalog.available_count(state.now()) if catalog else 0,
            as_of=None if state.as_of is None else datetime.fromtimestamp(state.as_of, UTC),
            catalog_loaded_at=catalog.loaded_at if catalog else None,
            catalog_error=state.catalog_error,
            known_profiles=len(self.profiles),
            rank_log_pending=rank_log_pending,
            rank_log_dropped=rank_log_dropped,
            worker_pid=os.getpid(),
        )

    def _result(self, ok: bool, message: str, started: float, **counts: int) -> AdminResult:
        state = self.state
        return AdminResult(
            ok=ok,
            message=message,
            model_version=state.model_version,
            catalog_version=state.catalog.version if state.catalog else None,
            catalog_size=len(state.catalog) if state.catalog else 0,
            seconds=round(time.perf_counter() - started, 3),
            **counts,
        )

    def reload_model(self, uri: str | None = None) -> AdminResult:
        """Load a model (default: the configured URI) and serve it; on failure keep the old."""
        uri = uri or self.settings.model_uri
        started = time.perf_counter()
        with self._admin:
            state = self.state
            try:
                loaded = load_model(uri, self.settings.tracking_uri)
                catalog, as_of = state.catalog, state.as_of
                if catalog is None and self.settings.catalog is None:
                    catalog, as_of = _initial_catalog(self.settings, loaded)
                slot = _slot(loaded, catalog)
            except (ModelLoadError, CatalogError) as error:
                self.state = replace(state, model_error=f"reload failed: {error}")
                logger.error("model reload failed, previous model kept: %s", error)
                return self._result(False, f"reload failed, previous model kept: {error}", started)
            except Exception as error:  # cannot prepare the catalog with this model
                message = f"model {uri}: cannot prepare: {type(error).__name__}: {error}"
                self.state = replace(state, model_error=f"reload failed: {message}")
                logger.exception("model reload failed, previous model kept")
                return self._result(
                    False, f"reload failed, previous model kept: {message}", started
                )
            self.profiles = _profiles(self.settings, loaded)
            self.state = ServingState(catalog, slot, uri, None, state.catalog_error, as_of)
        logger.info("model %s now served", loaded.version)
        return self._result(True, f"serving {loaded.version}", started)

    def update_catalog(self, path: str | None = None, mode: str = "merge") -> AdminResult:
        """Take in offers from a file: `merge` (add or replace by id) or `replace` (all).

        The new catalog and the model's arrays for it are built completely before the swap;
        only the added or changed offers are encoded in `merge` mode.
        """
        started = time.perf_counter()
        source = path or (str(self.settings.catalog) if self.settings.catalog else None)
        with self._admin:
            state = self.state
            try:
                if source is None:
                    raise CatalogError("catalog: no path given and RECSYS_CATALOG is not set")
                offers, rejected = read_offers(source)
                as_of = self.settings.as_of  # a file's offers are ranked now, unless told
                clock = _now() if as_of is None else as_of
                if mode == "replace" or state.catalog is None:
                    catalog, change = Catalog.build(offers, source, at=clock, rejected=rejected)
                else:
                    catalog, change = state.catalog.merged(
                        offers, source, at=clock, rejected=rejected
                    )
                model = state.model
                if model is not None and model.prepared is None:
                    model = _slot(model.loaded, catalog)  # first catalog: prepare and check
                elif model is not None:
                    if mode == "replace" or state.catalog is None:
                        prepared = model.scorer.prepare(catalog)
                    else:
                        prepared = model.scorer.update(model.prepared, catalog, change)
                    model = replace(model, prepared=prepared)
            except Exception as error:  # unreadable file, bad rows, encoder failure
                message = f"{type(error).__name__}: {error}"
                self.state = replace(state, catalog_error=f"update failed: {message}")
                logger.error("catalog update failed, previous catalog kept: %s", message)
                return self._result(
                    False, f"update failed, previous catalog kept: {message}", started
                )
            self.state = replace(
                state, catalog=catalog, model=model, catalog_error=None, as_of=as_of
            )
        logger.info("catalog %s now served (%d offers)", catalog.version, len(catalog))
        return self._result(
            True,
            f"serving catalog {catalog.version}",
            started,
            added=change.added,
            updated=change.updated,
            removed=change.removed,
            rejected=change.rejected,
        )


def _location(where: places.Placement | None) -> dict | None:
    """The `Location` fields of a placement (coordinates to about 10 m)."""
    if where is None:
        return None
    return {
        "lat": round(where.lat, 4),
        "lon": round(where.lon, 4),
        "source": where.source,
        "commune": where.commune,
    }


def capped(order: np.ndarray, group: np.ndarray, k: int, cap: int) -> np.ndarray:
    """`recsys.ranking.diversify` of one list (`group[i]` is the group of `order[i]`).

    The same greedy walk: take items best first unless their group already holds `cap` of
    the k slots; if fewer than k were taken, the skipped ones fill the rest in list order.
    The core function walks every user's list at once with numpy operations per step; for
    the single list of a request those dozens of calls per step cost more than the scoring,
    so this walks a Python list of at most a few hundred ints, and not at all when no group
    exceeds the cap (the usual case for publishers). Tests check it returns the core's lists.
    """
    groups = group.tolist()
    if max(Counter(groups).values(), default=0) <= cap:  # the walk would keep the order
        return np.asarray(order[:k], dtype=np.int64)
    taken: list[int] = []
    rest: list[int] = []
    counts: dict[int, int] = {}
    for item, code in zip(order.tolist(), groups, strict=True):
        if len(taken) == k:  # the list is full: the rest is never shown
            break
        if counts.get(code, 0) < cap:
            taken.append(item)
            counts[code] = counts.get(code, 0) + 1
        else:
            rest.append(item)
    return np.array(taken + rest[: k - len(taken)], dtype=np.int64)


def reasons(
    catalog: Catalog,
    rows: np.ndarray,
    people: ProfileArrays,
    owner: np.ndarray,
    distances: np.ndarray,
    liked: np.ndarray,
    at: int,
) -> list[list[str]]:
    """Short French reasons for showing offer `rows[i]` to person `owner[i]` of `people`,
    most telling first (at least one, at most MAX_REASONS); tests in the numpy part, strings
    in the loop."""
    a = catalog.arrays
    remote = a.remote[rows]
    known = ~np.isnan(distances)
    with np.errstate(invalid="ignore"):
        near = known & ((remote == _ON_SITE) | (distances <= people.radius_km[owner]))
    activities = a.quiz_activities[rows] & people.quiz_activities[owner]
    rhythm = people.rhythm[owner]
    age_seconds = at - a.posted_at[rows]
    columns = zip(
        near.tolist(),
        np.where(known, distances, 0.0).tolist(),
        remote.tolist(),
        catalog.domain[rows].tolist(),
        (a.quiz_domains[rows] & people.quiz_domains[owner]).any(axis=1).tolist(),
        np.where(activities.any(axis=1), activities.argmax(axis=1), -1).tolist(),
        liked.tolist(),
        ((rhythm >= 0) & (a.rhythm[rows] == rhythm)).tolist(),
        (a.programme[rows] == _SERVICE_CIVIQUE).tolist(),
        a.paid[rows].tolist(),
        ((age_seconds >= 0) & (age_seconds <= NEW_OFFER_DAYS * 86_400)).tolist(),
        strict=True,
    )
    out = []
    for (
        near_,
        km,
        remote_,
        domain,
        likes_domain,
        activity,
        liked_,
        rhythm,
        sc,
        paid,
        new,
    ) in columns:
        said: list[str] = []
        if near_:
            said.append(f"près de chez vous : {'moins d’1 km' if km < 1 else f'{km:.0f} km'}")
        elif remote_ == _FULL_REMOTE:
            said.append("mission à distance")
        elif remote_ == _POSSIBLE_REMOTE:
            said.append("télétravail possible")
        if domain is not None and likes_domain:
            said.append(f"correspond à votre intérêt : {DOMAIN_LABELS[domain]}")
        if activity >= 0:
            said.append(f"activité qui vous correspond : {ACTIVITY_LABELS[activity]}")
        if liked_:
            said.append("apprécié par des profils proches")
        if rhythm:
            said.append("au rythme que vous cherchez")
        if sc:
            said.append("Service Civique indemnisé")
        elif paid:
            said.append("mission indemnisée")
        if new:
            said.append("nouvelle mission")
        if not said:  # every item says why it is there: at least its domain, open to the person
            said.append(
                f"dans le domaine : {DOMAIN_LABELS[domain]}"
                if domain is not None
                else "ouverte à votre profil"
            )
        out.append(said[:MAX_REASONS])
    return out


def _initial_catalog(settings: Settings, loaded: LoadedModel | None) -> tuple[Catalog, int | None]:
    """The catalog to start with and the clock to rank it at.

    The configured file (ranked now, or at RECSYS_AS_OF), else the model bundle's snapshot,
    ranked at the instant it describes (the bundle's cutoff) unless RECSYS_AS_OF says
    otherwise: a snapshot of simulated or past data holds nothing open today.
    """
    if settings.catalog is not None:
        offers, rejected = read_offers(settings.catalog)
        at = _now() if settings.as_of is None else settings.as_of
        built = Catalog.build(offers, str(settings.catalog), at=at, rejected=rejected)[0]
        return built, settings.as_of
    if loaded is not None:
        as_of = settings.as_of
        if as_of is None:
            as_of = int(loaded.bundle.cutoff.timestamp())
        built = Catalog.build(loaded.bundle.catalog, f"bundle {loaded.version}", at=as_of)[0]
        return built, as_of
    raise CatalogError("catalog: RECSYS_CATALOG is not set and no model bundle holds one")


def _profiles(settings: Settings, loaded: LoadedModel | None) -> ProfileStore:
    """Known visitors: RECSYS_PROFILES, else the profiles next to the model's data."""
    path = settings.profiles
    if path is None and loaded is not None:
        data_dir = loaded.bundle.manifest.get("data_dir")
        candidate = Path(data_dir) / "profiles.parquet" if data_dir else None
        path = candidate if candidate is not None and candidate.is_file() else None
    if path is None:
        return ProfileStore()
    try:
        return ProfileStore.load(path)
    except Exception as error:  # a broken profile file must not stop ranking
        logger.error("profiles %s not loaded: %s", path, error)
        return ProfileStore()
