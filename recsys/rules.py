"""The platform's quiz-matching rules (engine version m4, DOMAIN.md §5), shared infrastructure.

The incumbent baseline (`recsys.models.incumbent`), the hybrid's rule part, the service's
rules fallback and the list policy's cold-start blend (`recsys.policy`) all score with these
functions. Written from the engine's description, on the arrays every stage shares:

- Per taxonomy t the visitor answered: `s_t = base + (1 − base)·min(Σ user·offer / Σ user, 1)`
  with base 0.5, user and offer being 0/1 vectors over the taxonomy's values. Taxonomies and
  weights: quiz domains 1.5 and activity types 1.5 (offers tagged through
  `taxonomy.DOMAIN_TO_QUIZ` / `ACTIVITY_TO_QUIZ`), rhythm 1.2 (the offer's rhythm from
  `arrays.offer_rhythm`), motivations 1.0 restricted to the two an offer shows in its data
  ("indemnisation" ↔ paid, "a-distance" ↔ remote possible or full). The engine's other
  taxonomies (team, interaction, autonomy, unforeseen at 0.6; the remaining motivations) need
  the language-model tagging of offers that the API does not export, so they are left out.
- A taxonomy answered "je ne sais pas encore" or not answered is skipped; the taxonomy part is
  the weighted mean of the answered ones. A visitor who answered none (no quiz, or "don't
  know" everywhere) gets the neutral base 0.5 for every offer, so that geography alone ranks
  their offers, as the engine does for an empty match.
- Geography: `max(0, 1 − d / radius)` with d the great-circle distance and the radius from
  mobility (`ProfileArrays.radius_km`; `taxonomy.DEFAULT_RADIUS_KM` when missing). With the
  remote overrides (the engine as in production), `remote = full` scores 0.9 and `local` 0.95
  whatever the distance; otherwise an offer without coordinates scores 0.1, and so does every
  offer for a visitor without coordinates (the distance is unknown either way).
- Total: `(0.3·taxonomy + 0.3·geography) / 0.6`.

Without the remote overrides (`incumbent_local`), remote offers are scored by distance like any
other: a full-remote offer with coordinates by its distance, one without coordinates 0.1. The
literal overrides let remote offers fill a top-10 at any distance; this variant is the
stronger baseline where distance matters.

The engine's age-band gate is not applied here: eligibility (`recsys.eligibility`) is applied
to every model alike by candidate selection, before scoring.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from recsys import taxonomy
from recsys.arrays import OfferArrays, ProfileArrays
from recsys.eligibility import with_other_addresses
from recsys.geo import pairwise_km, unit_vectors
from recsys.models._common import CHUNK_CELLS, row_chunks

TAXONOMY_BASE = 0.5
DOMAIN_WEIGHT = 1.5
ACTIVITY_WEIGHT = 1.5
RHYTHM_WEIGHT = 1.2
MOTIVATION_WEIGHT = 1.0
TAXONOMY_SHARE = 0.3
GEO_SHARE = 0.3
REMOTE_FULL_SCORE = 0.9
REMOTE_LOCAL_SCORE = 0.95
NO_LOCATION_SCORE = 0.1

_FULL = taxonomy.REMOTE_VALUES.index("full")
_LOCAL = taxonomy.REMOTE_VALUES.index("local")
_POSSIBLE = taxonomy.REMOTE_VALUES.index("possible")
# The motivations an offer shows in its exported data, in this order.
_OBSERVABLE_MOTIVATIONS = [
    taxonomy.MOTIVATIONS.index("indemnisation"),
    taxonomy.MOTIVATIONS.index("a-distance"),
]


def _blocks() -> list[tuple[float, int]]:
    """(weight, bit mask) of each taxonomy in the packed tags, in `_tag_matrix`' order."""
    widths = [
        (DOMAIN_WEIGHT, len(taxonomy.QUIZ_DOMAINS)),
        (ACTIVITY_WEIGHT, len(taxonomy.QUIZ_ACTIVITIES)),
        (RHYTHM_WEIGHT, len(taxonomy.RHYTHMS)),
        (MOTIVATION_WEIGHT, len(_OBSERVABLE_MOTIVATIONS)),
    ]
    ends = np.cumsum([width for _, width in widths])
    if ends[-1] > 32:
        raise ValueError(f"taxonomy tags: {ends[-1]} values do not fit the 32 bits of a tag")
    return [
        (weight, ((1 << width) - 1) << int(end - width))
        for (weight, width), end in zip(widths, ends, strict=True)
    ]


_TAG_BLOCKS = _blocks()
MAX_TABLE_BITS = 9  # consecutive taxonomies share a look-up table of at most 2^9 entries
TAG_TABLES_CACHED = 1024  # visitors' tags whose look-up tables are kept (12 KB each)
DIRECT_OFFERS = 16  # up to this many offers, `taxonomy_scores` applies the formula directly


def _lowest_bit(mask: int) -> int:
    return (mask & -mask).bit_length() - 1


@dataclass(frozen=True)
class _Tables:
    """The layout of `taxonomy_scores`' look-up tables, fixed by the taxonomies.

    Every value each block's bits can take, in place in a tag, block after block; and the
    groups of consecutive blocks that share a table, each with the position (in those
    values) of its blocks' parts at each of its table's indices.
    """

    values: np.ndarray  # uint32 (m,)
    block: np.ndarray  # intp (m,): the block of each value
    masks: np.ndarray  # uint32 (n_blocks,)
    weights: np.ndarray  # float (n_blocks,)
    groups: list[tuple[np.ndarray, int, int]]  # (positions (blocks, 2^width), shift, width)

    @classmethod
    def of(cls, blocks: list[tuple[float, int]]) -> _Tables:
        lows = [_lowest_bit(mask) for _, mask in blocks]
        widths = [mask.bit_length() - low for (_, mask), low in zip(blocks, lows, strict=True)]
        offsets = np.cumsum([0, *(1 << width for width in widths)])
        runs: list[tuple[list[int], int, int]] = []  # (blocks, lowest bit, width)
        for index, (low, width) in enumerate(zip(lows, widths, strict=True)):
            if runs and runs[-1][2] + width <= MAX_TABLE_BITS:
                members, start, span = runs[-1]
                runs[-1] = ([*members, index], start, span + width)
            else:
                runs.append(([index], low, width))
        groups = []
        for members, start, span in runs:
            at = np.arange(1 << span)
            positions = [
                offsets[b] + ((at >> (lows[b] - start)) & ((1 << widths[b]) - 1)) for b in members
            ]
            groups.append((np.array(positions, dtype=np.intp), start, span))
        return cls(
            values=np.concatenate(
                [
                    np.arange(1 << width, dtype=np.uint32) << np.uint32(low)
                    for low, width in zip(lows, widths, strict=True)
                ]
            ),
            block=np.repeat(np.arange(len(blocks)), [1 << width for width in widths]),
            masks=np.array([mask for _, mask in blocks], dtype=np.uint32),
            weights=np.array([weight for weight, _ in blocks]),
            groups=groups,
        )


_TABLES = _Tables.of(_TAG_BLOCKS)
# Where each look-up table's bits sit in a tag: `(tag >> shift) & mask` indexes the table.
TABLE_SHIFTS = np.array([shift for _, shift, _ in _TABLES.groups], dtype=np.uint32)
TABLE_MASKS = np.array([(1 << width) - 1 for _, _, width in _TABLES.groups], dtype=np.uint32)


def _one_hot(codes: np.ndarray, width: int) -> np.ndarray:
    out = np.zeros((len(codes), width), dtype=bool)
    known = np.flatnonzero(codes >= 0)
    out[known, codes[known]] = True
    return out


def _packed(columns: list[np.ndarray]) -> np.ndarray:
    """Bool columns side by side, packed into one uint32 per row (column i is bit i)."""
    matrix = np.column_stack(columns).astype(np.uint32)
    return np.bitwise_or.reduce(matrix << np.arange(matrix.shape[1], dtype=np.uint32), axis=1)


def offer_tags(offers: OfferArrays) -> np.ndarray:
    """Each offer's values in the matched taxonomies as bits of one uint32 (n_offers,).

    Quiz domains, activity types, rhythm (one-hot) and the two observable motivations
    (paid; remote possible or full), in `_TAG_BLOCKS`' order. It depends on the offer alone,
    so the service packs it once per catalog; a request then reads 4 bytes per candidate
    and counts shared values with `np.bitwise_count`.
    """
    motivations = [offers.paid, np.isin(offers.remote, [_POSSIBLE, _FULL])]
    return _packed(
        [
            offers.quiz_domains,
            offers.quiz_activities,
            _one_hot(offers.rhythm, len(taxonomy.RHYTHMS)),
            *motivations,
        ]
    )


def _profile_tags(profiles: ProfileArrays) -> np.ndarray:
    """The visitors' chosen values, packed as `offer_tags`."""
    return _packed(
        [
            profiles.quiz_domains,
            profiles.quiz_activities,
            _one_hot(profiles.rhythm, len(taxonomy.RHYTHMS)),
            profiles.motivations[:, _OBSERVABLE_MOTIVATIONS],
        ]
    )


def taxonomy_tables(profiles: ProfileArrays) -> np.ndarray:
    """Each visitor's taxonomy part for every value of each table's bits, (n_users,
    n_tables, 2^MAX_TABLE_BITS): an offer's part is then the sum over the tables of
    `tables[u, g, (tag >> TABLE_SHIFTS[g]) & TABLE_MASKS[g]]` (`taxonomy_scores`).

    A taxonomy's term depends on the offer only through that taxonomy's bits of its tag, so
    each visitor's terms are tabulated over every value those bits can take (consecutive
    taxonomies share a table), and scoring an offer takes a few look-ups where computing the
    formula per offer took some forty numpy passes. Entries past a table's width stay 0.
    The tables depend on the visitor's own tag alone, and few tags recur: they are built once
    per tag (`_tag_tables`).
    """
    tables = [_tag_tables(tag) for tag in _profile_tags(profiles).tolist()]
    if not tables:
        return np.zeros((0, len(_TABLES.groups), 1 << MAX_TABLE_BITS))
    return np.stack(tables)


@functools.lru_cache(maxsize=TAG_TABLES_CACHED)
def _tag_tables(tag: int) -> np.ndarray:
    """`taxonomy_tables` of a visitor whose tag is `tag`, (n_tables, 2^MAX_TABLE_BITS),
    read-only since it is shared."""
    tables = _TABLES
    chosen = np.bitwise_count(np.uint32(tag) & tables.masks).astype(float)  # (n_blocks,)
    answered = chosen > 0
    # Each block's term for every value of its bits, all blocks at once: (m,).
    overlap = np.bitwise_count(np.uint32(tag) & tables.values).astype(float)
    ratio = np.minimum(overlap / np.maximum(chosen, 1.0)[tables.block], 1.0)
    score = TAXONOMY_BASE + (1.0 - TAXONOMY_BASE) * ratio
    terms = np.where(answered[tables.block], tables.weights[tables.block] * score, 0.0)
    total_weight = float((answered * tables.weights).sum())
    # No answer: the terms are 0, and the first table holds the neutral base.
    scale = 1.0 / total_weight if total_weight > 0 else 1.0
    out = np.zeros((len(tables.groups), 1 << MAX_TABLE_BITS))
    for g, (positions, _, width) in enumerate(tables.groups):
        out[g, : 1 << width] = np.take(terms, positions).sum(axis=0) * scale
    if total_weight <= 0:
        out[0] += TAXONOMY_BASE
    out.flags.writeable = False
    return out


def direct_taxonomy_scores(user_tags: np.ndarray, offer_tags: np.ndarray) -> np.ndarray:
    """The engine's taxonomy part from the formula itself, a few passes per taxonomy over
    (n_users, n_offers): what the look-up tables tabulate, cheaper when offers are few and
    people many (an audience), since the tables cost per person.

    Per taxonomy answered: `weight · (base + (1 − base) · min(shared / chosen, 1))`, summed
    and divided by the answered weights; `base` when nothing is answered.
    """
    people = np.asarray(user_tags, dtype=np.uint32)[:, None]
    offers = np.asarray(offer_tags, dtype=np.uint32)[None, :]
    total = np.zeros((people.shape[0], offers.shape[1]))
    answered_weight = np.zeros((people.shape[0], 1))
    for mask, weight in zip(_TABLES.masks, _TABLES.weights, strict=True):
        chosen = np.bitwise_count(people & mask).astype(float)
        shared = np.bitwise_count(people & offers & mask)
        ratio = np.minimum(shared / np.maximum(chosen, 1.0), 1.0)
        answered = chosen > 0
        total += np.where(answered, weight * (TAXONOMY_BASE + (1.0 - TAXONOMY_BASE) * ratio), 0.0)
        answered_weight += answered * weight
    scale = np.where(answered_weight > 0, answered_weight, 1.0)
    return np.where(answered_weight > 0, total / scale, TAXONOMY_BASE)


def taxonomy_scores(profiles: ProfileArrays, tags: np.ndarray) -> np.ndarray:
    """The engine's taxonomy part, shape (n_users, n_offers), in [0.5, 1].

    Args:
        profiles: the visitors.
        tags: `offer_tags` of the offers.
    """
    if len(tags) <= DIRECT_OFFERS:
        return direct_taxonomy_scores(_profile_tags(profiles), tags)
    # Visitors sharing a tag share their scores: computed once per distinct tag, then gathered.
    unique, inverse = np.unique(_profile_tags(profiles), return_inverse=True)
    if len(unique) == 0:
        return np.zeros((len(profiles), len(tags)))
    tables = np.stack([_tag_tables(tag) for tag in unique.tolist()])
    out = np.take(tables[:, 0], (tags >> TABLE_SHIFTS[0]) & TABLE_MASKS[0], axis=1)
    for g in range(1, len(TABLE_SHIFTS)):
        out += np.take(tables[:, g], (tags >> TABLE_SHIFTS[g]) & TABLE_MASKS[g], axis=1)
    return out[inverse.ravel()]


def distances_km(profiles: ProfileArrays, offer_xyz: np.ndarray) -> np.ndarray:
    """Great-circle distance of every (visitor, offer) pair, NaN where either is unplaced.

    `offer_xyz` are the offers' `geo.unit_vectors`, prepared once per set of offers.
    """
    return pairwise_km(unit_vectors(profiles.lat, profiles.lon), offer_xyz)


def search_radius_km(profiles: ProfileArrays) -> np.ndarray:
    """The visitors' radius, `taxonomy.DEFAULT_RADIUS_KM` where missing or not positive."""
    return np.where(
        np.isfinite(profiles.radius_km) & (profiles.radius_km > 0),
        profiles.radius_km,
        taxonomy.DEFAULT_RADIUS_KM,
    )


def geo_scores(
    profiles: ProfileArrays,
    remote: np.ndarray,
    distance: np.ndarray,
    remote_overrides: bool = True,
) -> np.ndarray:
    """The engine's geographic part, shape (n_users, n_offers), in [0, 1].

    `max(0, 1 − d / radius)` with `distance` from `distances_km`; NO_LOCATION_SCORE where
    either side has no coordinates; with `remote_overrides`, full-remote offers (`remote`,
    the offers' `OfferArrays.remote`) score REMOTE_FULL_SCORE and local ones
    REMOTE_LOCAL_SCORE whatever the distance.
    """
    radius = search_radius_km(profiles)
    score = np.maximum(0.0, 1.0 - distance / radius[:, None])
    score = np.where(np.isnan(distance), NO_LOCATION_SCORE, score)
    if remote_overrides:
        score = np.where((remote == _FULL)[None, :], REMOTE_FULL_SCORE, score)
        score = np.where((remote == _LOCAL)[None, :], REMOTE_LOCAL_SCORE, score)
    return score


def rule_scores(
    profiles: ProfileArrays,
    tags: np.ndarray,
    remote: np.ndarray,
    distance: np.ndarray,
    remote_overrides: bool = True,
) -> np.ndarray:
    """The engine's total `(0.3·taxonomy + 0.3·geography) / 0.6` from the offers' prepared
    parts (`offer_tags`, remote codes, `distances_km`), (n_users, n_offers)."""
    return (
        TAXONOMY_SHARE * taxonomy_scores(profiles, tags)
        + GEO_SHARE * geo_scores(profiles, remote, distance, remote_overrides)
    ) / (TAXONOMY_SHARE + GEO_SHARE)


def incumbent_scores(
    profiles: ProfileArrays,
    offers: OfferArrays,
    remote_overrides: bool = True,
    max_cells: int = CHUNK_CELLS,
) -> np.ndarray:
    """`rule_scores` of every (visitor, offer), shape (n_users, n_offers).

    Computed in user chunks of at most `max_cells` (user, offer) pairs so that thousands of
    users × tens of thousands of offers stay within a bounded memory.
    """
    tags, xyz = offer_tags(offers), unit_vectors(offers.lat, offers.lon)
    several = np.flatnonzero([points is not None for points in offers.more_points])
    out = np.empty((len(profiles), len(offers)))
    for rows in row_chunks(len(profiles), len(offers), max_cells):
        chunk = profiles.take(np.arange(rows.start, rows.stop))
        distance = distances_km(chunk, xyz)
        if len(several):  # offers with other addresses: as near as the nearest
            distance[:, several] = with_other_addresses(
                distance[:, several],
                offers.more_points[several],
                chunk.lat[:, None],
                chunk.lon[:, None],
            )
        out[rows] = rule_scores(chunk, tags, offers.remote, distance, remote_overrides)
    return out
