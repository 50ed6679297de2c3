"""Ranking requests: the service's side of the list policy, over one `ServingState`.

The hot path of `rank_batch` (numpy over prepared arrays only, no pandas, no disk), for the
requests that arrived together (one or many, `serving.batching`):

1. the people: stored profile (known `user_id`) with the request's fields over it
   (`serving.profiles`), as arrays and encoded features (`recsys.arrays.profile_row_arrays`,
   `UserEncoder.transform_rows`);
2. candidates, one row per request: the core's eligibility (`Catalog.candidate_rows` for a
   lone request, `Catalog.base_mask` ∧ `Catalog.geography.mask` for a batch) and the
   request's filters; then the policy's exclusions (`recsys.policy.exclude`);
3. the model's scores of the offers someone in the batch may get, one product for all, and
   the policy's served scores (`ListPolicy.served_scores`): `personalized` for people the
   model knows, `cold_start` (the rules blended in) for the others; `rules_fallback` (no
   model could be loaded): the rules engine alone (`recsys.rules`);
4. the policy's pool and caps (`ListPolicy.order_pool`), k offers kept;
5. distances and reasons for those k only (`serving.explanations`).

Each list comes out as an `Answer`: the answer's fields as plain JSON values, which the
service writes out as they are (`Answer.json`), and its log entry. Building the pydantic
models of a ten-item answer and serialising them cost more CPU than the answer's reasons
(docs/benchmarks.md); `Answer.response` is the same answer as a validated `RankResponse`
for in-process callers, and a test holds the two equal over every kind of request.

Offline evaluation makes its lists with the same policy (`recsys.evaluation`), so a person's
list here is the list evaluated for them.
"""

from __future__ import annotations

import functools
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
from pydantic import TypeAdapter

from recsys import places
from recsys.arrays import ProfileArrays, concat_rows, profile_row_arrays, row_placement
from recsys.dataset import UserBatch
from recsys.eligibility import nearest_addresses, pair_distances_km, with_other_addresses
from recsys.policy import ListPolicy, ModelScores, exclude, exclude_rows
from recsys.ranking import PAD, top_k
from recsys.rules import distances_km, rule_scores
from serving.catalog import Catalog
from serving.events import Ranking, pseudonym
from serving.explanations import LIKED_Z, reasons
from serving.filtering import filters_hold
from serving.history import AppliedOffers
from serving.paths import bridged
from serving.payload import display
from serving.profiles import ProfileStore, request_row
from serving.schemas import (
    RankRequest,
    RankResponse,
    SimilarItem,
    SimilarRequest,
    SimilarResponse,
    Strategy,
)
from serving.settings import Settings
from serving.state import ServingState, UnknownOffer

_JSON = TypeAdapter(dict[str, Any])  # JSON values out as pydantic's models write them


@dataclass
class Answer:
    """A ranked list as /rank answers it (`fields`: `RankResponse`'s fields, as JSON
    values), and its log entry."""

    fields: dict[str, Any]
    ranking: Ranking

    def json(self) -> bytes:
        """The answer's JSON body, as `RankResponse` serialises it."""
        return _JSON.dump_json(self.fields)

    @functools.cached_property
    def response(self) -> RankResponse:
        """The answer as a validated `RankResponse` (in-process callers, tests)."""
        return RankResponse.model_validate(self.fields)

    def tagged(self, experiment: str, arm: str) -> Answer:
        """The same answer made by `arm` of `experiment`: said in the answer and logged."""
        fields = {**self.fields, "experiment": experiment, "arm": arm}
        return Answer(fields, replace(self.ranking, experiment=experiment, arm=arm))


def _excluded_rows(
    state: ServingState, settings: Settings, applied: AppliedOffers, request: RankRequest
) -> np.ndarray:
    """Catalog rows of the offers the list must not hold (the policy's exclusions): the
    request's exclusions, and what the visitor already applied to, before the model's data
    (the bundle's, as offline evaluation excludes it) and since (the event store's)."""
    excluded = set(request.exclude_offer_ids)
    user_id = request.user_id
    if user_id is not None:
        stored = pseudonym(user_id, settings.id_salt or "")
        excluded |= applied.of(stored)
        if state.model is not None:
            for key in (user_id, stored):
                excluded |= state.model.applied.get(key, frozenset())
    catalog = state.catalog
    return np.array([catalog.row[o] for o in excluded if o in catalog.row], dtype=np.int64)


def _candidates(
    state: ServingState,
    people: ProfileArrays,
    requests: Sequence[RankRequest],
    at: int,
    excluded: list[np.ndarray],
) -> np.ndarray:
    """(n_requests, n_offers) bool: the offers each person may be recommended, after their
    request's filters and the policy's exclusions (`excluded`, catalog rows per request)."""
    catalog = state.catalog
    mask = catalog.geography.mask(people.lat, people.lon, people.radius_km)
    for i, (age, disability) in enumerate(
        zip(people.age.tolist(), people.disability.tolist(), strict=True)
    ):
        mask[i] &= catalog.base_mask(age, disability, at)
    for i, request in enumerate(requests):
        held = filters_hold(catalog, request.filters)
        if held is not None:
            mask[i] &= held
    return exclude(mask, excluded)


def _request_rows(
    state: ServingState,
    people: ProfileArrays,
    request: RankRequest,
    at: int,
    excluded: np.ndarray,
) -> np.ndarray:
    """`_candidates` of a lone request as its catalog rows, ascending, without masks over
    the whole catalog (`Catalog.candidate_rows`)."""
    catalog = state.catalog
    rows = catalog.candidate_rows(
        float(people.lat[0]),
        float(people.lon[0]),
        float(people.radius_km[0]),
        float(people.age[0]),
        bool(people.disability[0]),
        at,
    )
    held = filters_hold(catalog, request.filters)
    if held is not None:
        rows = rows[held[rows]]
    return exclude_rows(rows, excluded)


def _rules(
    catalog: Catalog, people: ProfileArrays, columns: np.ndarray, policy: ListPolicy
) -> np.ndarray:
    """The rules engine's scores of catalog rows `columns`, from the catalog's prepared rule
    tags, (n_people, n_columns)."""
    remote = catalog.arrays.remote[columns]
    distance = distances_km(people, np.take(catalog.xyz, columns, axis=0))
    several = np.flatnonzero(catalog.more_addresses[columns])  # usually none
    if len(several):  # offers with other addresses: as near as the nearest
        distance[:, several] = with_other_addresses(
            distance[:, several],
            catalog.arrays.more_points[columns[several]],
            people.lat[:, None],
            people.lon[:, None],
        )
    tags = np.take(catalog.rule_tags, columns, axis=0)
    return rule_scores(people, tags, remote, distance, policy.rules_remote_overrides)


def _model_user_id(state: ServingState, settings: Settings, user_id: str | None) -> str | None:
    """The id the model knows this visitor by: as given, or as the event store keeps it.

    A model trained on the store's exported events knows visitors by their pseudonyms
    (`serving.events.pseudonym`, keyed by RECSYS_ID_SALT) while the front sends raw ids.
    """
    scorer = state.model.scorer
    if user_id is None or scorer.knows(user_id):
        return user_id
    hashed = pseudonym(user_id, settings.id_salt or "")
    return hashed if scorer.knows(hashed) else user_id


def _score(
    state: ServingState,
    settings: Settings,
    rows: list[dict],
    people: ProfileArrays,
    columns: np.ndarray,
    masks: np.ndarray,
) -> tuple[list[Strategy], np.ndarray, ModelScores | None]:
    """(strategy of each person, served scores of catalog rows `columns`, the model's own
    scores and their statistics over each person's candidates `masks`, or None without a
    model)."""
    catalog, model, policy = state.catalog, state.model, settings.policy
    if model is None or model.prepared is None:
        strategies: list[Strategy] = ["rules_fallback"] * len(rows)
        return strategies, _rules(catalog, people, columns, policy), None
    ids = np.array([_model_user_id(state, settings, row["userId"]) for row in rows], dtype=object)
    users = UserBatch(ids, model.loaded.bundle.user_encoder.transform_rows(rows), people)
    learned = ModelScores(model.scorer.score(users, model.prepared, columns), masks)
    known = model.scorer.model.knows(ids)
    strategies = ["personalized" if k else "cold_start" for k in known.tolist()]
    served = policy.served_scores(
        learned,
        known,
        model.scorer.model.blends_rules,
        lambda: _rules(catalog, people, columns, policy),
    )
    return strategies, served, learned


def _items(
    catalog: Catalog,
    people: ProfileArrays,
    owner: np.ndarray,
    rows: np.ndarray,
    ranks: np.ndarray,
    scores: np.ndarray,
    personalized: list[bool],
    at: int,
    learned_z: np.ndarray | None,
    fields: list[list[str] | None],
) -> list[dict]:
    """The `RankedItem` fields of every listed offer of the batch: item i is catalog row
    `rows[i]` at rank `ranks[i]` in the list of person `owner[i]`, whose request asked for
    the display fields `fields[owner[i]]` (None: all)."""
    a = catalog.arrays
    distances, nearest = nearest_addresses(a, rows, people.lat[owner], people.lon[owner])
    liked = np.zeros(len(rows), dtype=bool)
    if learned_z is not None:
        liked = np.array(personalized, dtype=bool) & (learned_z >= LIKED_Z)
    said = reasons(catalog, rows, people, owner, distances, liked, at)
    shown = display(
        catalog, rows.tolist(), [fields[person] for person in owner.tolist()], nearest.tolist()
    )
    return [
        {
            "offer_id": offer_id,
            "rank": rank,
            "score": round(score, 6),
            "programme": programme,
            "domain": domain,
            "distance_km": None if math.isnan(distance) else round(distance, 1),
            "reasons": [{"code": code, "text": text} for code, text in why],
            **shown,
        }
        for offer_id, rank, score, programme, domain, distance, why, shown in zip(
            a.ids[rows].tolist(),
            ranks.tolist(),
            scores.astype(float).tolist(),
            catalog.programme[rows].tolist(),
            catalog.domain[rows].tolist(),
            distances.tolist(),
            said,
            shown,
            strict=True,
        )
    ]


def rank_batch(
    state: ServingState,
    settings: Settings,
    profiles: ProfileStore,
    applied: AppliedOffers,
    requests: Sequence[RankRequest],
    at: int | None = None,
) -> list[Answer]:
    """Ranked lists for requests that arrived together, each as it would be ranked alone.

    Eligibility and scoring run once for the whole batch, over the offers any of its people
    may get: per request, numpy's call overheads cost more than the arithmetic below a few
    tens of thousands of offers, and the learned part is then one matrix product instead of
    one per person.

    Requests carrying their own instant (`RankRequest.at`, RECSYS_CLOCK=request) are ranked
    at it, those of one instant together, and their lists logged at it; the others at `at`,
    else the state's clock.

    Raises:
        NotReady: no catalog is loaded.
    """
    catalog = state.ready_catalog()
    policy = settings.policy
    at = state.now() if at is None else at
    instants = [at if request.at is None else request.instant() for request in requests]
    if len(set(instants)) > 1:
        return _by_instant(state, settings, profiles, applied, requests, instants)
    at = instants[0]
    rows = [request_row(r.profile, r.user_id, profiles.get(r.user_id)) for r in requests]
    wheres = [row_placement(row) for row in rows]
    people = concat_rows([profile_row_arrays(r, w) for r, w in zip(rows, wheres, strict=True)])
    excluded = [_excluded_rows(state, settings, applied, request) for request in requests]
    if len(requests) == 1:  # a request alone: its candidates are the columns
        columns = _request_rows(state, people, requests[0], at, excluded[0])
        masks = np.ones((1, len(columns)), dtype=bool)
    else:
        masks = _candidates(state, people, requests, at, excluded)
        columns = np.flatnonzero(masks.any(axis=0))
        masks = masks[:, columns]
    strategies, scores, learned = _score(state, settings, rows, people, columns, masks)
    pool_size = min(len(columns), max(policy.paged_pool_size(r.k, r.offset) for r in requests))
    pools = top_k(scores, pool_size, masks, catalog.tie_key[columns])
    chosen = []
    for pool, request in zip(pools, requests, strict=True):
        pool = pool[: policy.paged_pool_size(request.k, request.offset)]
        pool = pool[pool != PAD]
        offers = columns[pool]
        order = policy.order_page(
            catalog.publisher_code[offers],
            catalog.programme_code[offers],
            request.k,
            request.offset,
        )
        chosen.append(pool[order])
    lengths = np.array([len(positions) for positions in chosen], dtype=np.int64)
    owner = np.repeat(np.arange(len(requests)), lengths)
    positions = np.concatenate(chosen)
    ends = np.cumsum(lengths)
    personalized = [strategies[i] == "personalized" for i in owner.tolist()]
    items = _items(
        catalog,
        people,
        owner,
        columns[positions],
        np.arange(len(owner))
        - np.repeat(ends - lengths, lengths)
        + 1
        + np.repeat([r.offset for r in requests], lengths),
        scores[owner, positions],
        personalized,
        at,
        learned.z(owner, positions) if learned is not None and any(personalized) else None,
        [request.fields for request in requests],
    )
    created_at = next((r.at for r in requests if r.at is not None), None) or datetime.now(UTC)
    out = []
    for request, strategy, end, length, where in zip(
        requests, strategies, ends.tolist(), lengths.tolist(), wheres, strict=True
    ):
        listed = items[end - length : end]
        bridged(request, listed)
        request_id = uuid.uuid4().hex
        fields = {
            "request_id": request_id,
            "model_version": state.model_version,
            "catalog_version": catalog.version,
            "strategy": strategy,
            "location": _location(where),
            "items": listed,
            "experiment": None,
            "arm": None,
        }
        ranking = Ranking(
            request_id=request_id,
            created_at=created_at,
            model_version=state.model_version,
            catalog_version=catalog.version,
            strategy=strategy,
            user_id=request.user_id,
            offer_ids=[item["offer_id"] for item in listed],
            scores=[item["score"] for item in listed],
            offset=request.offset,
            context=None if request.context is None else request.context.model_dump(),
        )
        out.append(Answer(fields, ranking))
    return out


def _by_instant(
    state: ServingState,
    settings: Settings,
    profiles: ProfileStore,
    applied: AppliedOffers,
    requests: Sequence[RankRequest],
    instants: list[int],
) -> list[Answer]:
    """`rank_batch` of the requests of each instant apart, answers in the requests' order."""
    groups: dict[int, list[int]] = {}
    for index, instant in enumerate(instants):
        groups.setdefault(instant, []).append(index)
    out: list[Answer | None] = [None] * len(requests)
    for instant, indexes in groups.items():
        ranked = rank_batch(
            state, settings, profiles, applied, [requests[i] for i in indexes], instant
        )
        for index, answer in zip(indexes, ranked, strict=True):
            out[index] = answer
    return out  # type: ignore[return-value]


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


def similar(state: ServingState, request: SimilarRequest, at: int | None = None) -> SimilarResponse:
    """Open offers most like `request.offer_id` (cosine of the model's item vectors, else of
    the encoded offer features, else of the offers' attributes).

    Raises:
        NotReady: no catalog.
        UnknownOffer: the offer is not in the live catalog.
    """
    catalog = state.ready_catalog()
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
    a = catalog.arrays
    origin = (a.lat[source], a.lon[source])
    if request.profile is None:
        mask = catalog.base_mask(None, False, at).copy()
    else:  # only what the person may join, measured from them when they are placed
        person = profile_row_arrays(request_row(request.profile, None, None))
        age = None if np.isnan(person.age[0]) else float(person.age[0])
        mask = (
            catalog.base_mask(age, bool(person.disability[0]), at)
            & catalog.geography.mask(person.lat, person.lon, person.radius_km)[0]
        )
        if not np.isnan(person.lat[0]):
            origin = (person.lat[0], person.lon[0])
    mask[source] = False
    if request.other_programmes:
        mask &= catalog.programme_code != catalog.programme_code[source]
    chosen = top_k(similarity.astype(np.float64), request.k, mask, catalog.tie_key)
    chosen = chosen[chosen != PAD]
    distances = pair_distances_km(a, chosen, origin[0], origin[1])
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
