"""Events → user keys, weighted training signal, applies (targets, history), exposures and
logged lists.

Millions of prints are handled in Arrow (filters, string concatenation, hash joins: vectorised
C++), and only the clicks and applies, a small share of the events, become a pandas frame
with categorical codes for the matrices. Hashing every event's strings into pandas
categoricals would cost far more than the whole rest of the build.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import scipy.sparse as sp

from features.config import FeatureConfig

ANON_PREFIX = "anon:"
PRINT, CLICK, APPLY = 0, 1, 2
KINDS = ("print", "click", "apply")  # position = code above; "account" and others are dropped
MS_PER_DAY = 86_400_000

EVENT_COLUMNS = (
    "type",
    "createdAt",
    "missionId",
    "user",
    "userId",
    "clickId",
    "requestId",
    "isBot",
    "status",
    "position",
    "candidateAge",
    "source",
)


def to_ms(stamp: pd.Timestamp) -> int:
    """A timestamp as int64 milliseconds since epoch (the unit of the canonical tables)."""
    return int(stamp.value // 1_000_000)  # `value` is nanoseconds whatever the unit


def read_events(path: Path) -> pa.Table:
    """The event columns the stage needs, as an Arrow table.

    Raises:
        ValueError: a needed column is missing from the file.
    """
    present = set(pq.read_schema(path).names)
    missing = [name for name in EVENT_COLUMNS if name not in present]
    if missing:
        raise ValueError(f"events table {path} is missing column(s): {', '.join(missing)}")
    return pq.read_table(path, columns=list(EVENT_COLUMNS), read_dictionary=["type"])


def dictionary_codes(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(codes, names) of a string column: -1 for null, names as an object array.

    The chunks are combined first so that one dictionary is built: converting per-chunk
    dictionaries to pandas unifies them row by row, far slower than one hash pass.
    """
    encoded = column.cast(pa.large_string()).combine_chunks().dictionary_encode()
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    return codes, encoded.dictionary.to_numpy(zero_copy_only=False).astype(object)


def categorical(column: pa.ChunkedArray) -> pd.Categorical:
    """An Arrow string column as a pandas Categorical with object categories."""
    codes, names = dictionary_codes(column)
    return pd.Categorical.from_codes(codes, categories=pd.Index(names, dtype=object))


def _kinds(column: pa.ChunkedArray) -> np.ndarray:
    """PRINT/CLICK/APPLY code of each event type, -1 for any other type.

    Looked up once per distinct type of each dictionary-encoded chunk, not once per row.
    """
    parts = []
    for chunk in column.chunks:
        if not pa.types.is_dictionary(chunk.type):
            chunk = chunk.dictionary_encode()
        lookup = pc.index_in(chunk.dictionary, value_set=pa.array(KINDS))
        lookup = np.append(lookup.fill_null(-1).to_numpy(zero_copy_only=False), -1)
        parts.append(lookup[chunk.indices.fill_null(-1).to_numpy(zero_copy_only=False)])
    return np.concatenate(parts).astype(np.int8) if parts else np.zeros(0, np.int8)


def recode(values: pd.Series, index: pd.Index) -> np.ndarray:
    """Position in `index` of each value of a categorical column; -1 for null or absent.

    The lookup runs once per category, then one numpy gather maps every row.
    """
    column = values if isinstance(values.dtype, pd.CategoricalDtype) else values.astype("category")
    lookup = index.get_indexer(column.cat.categories.to_numpy(dtype=object))
    codes = column.cat.codes.to_numpy()
    out = np.full(len(codes), -1, dtype=np.int64)
    present = codes >= 0
    out[present] = lookup[codes[present]]
    return out


@dataclass(frozen=True)
class EventLog:
    """The non-bot prints, clicks and applies of a dataset, ready for any cutoff.

    Attributes:
        table: Arrow columns kind (int8, PRINT/CLICK/APPLY), ms (int64 createdAt), createdAt,
            missionId, user_key, requestId, status, position, candidateAge, source. `user_key`
            is `userId` when
            present, else "anon:" + the `user` hash: a hash-only visitor is a short-history
            user without a profile, and the prefix keeps the two id spaces apart.
        signal: the rows that can carry training signal (clicks, applies, and prints when
            they weigh anything) as pandas: kind, ms, createdAt, user_key, missionId and
            status as categoricals, candidateAge (float, NaN when not given).
        counts: what was read and dropped.
    """

    table: pa.Table
    signal: pd.DataFrame
    counts: dict[str, int]

    @property
    def created_at(self) -> pd.Series:
        return self.table["createdAt"].to_pandas()


def event_log(table: pa.Table, config: FeatureConfig) -> EventLog:
    """Bots out, user keys in, prints/clicks/applies only, duplicates by `clickId` dropped.

    A duplicate keeps its earliest copy, so a later event can never remove an earlier one
    (no leakage through deduplication).

    Raises:
        ValueError: an event without `createdAt`.
    """
    if table["createdAt"].null_count:
        raise ValueError(
            f"events.createdAt: {table['createdAt'].null_count} null timestamp(s); every "
            "event needs one to fall on one side of the cutoff"
        )
    counts = {"events_read": table.num_rows}
    if config.exclude_bots:
        bots = pc.fill_null(table["isBot"], False)
        counts["bot_events_excluded"] = int(pc.sum(bots).as_py() or 0)
        table = table.filter(pc.invert(bots))
    kind = _kinds(table["type"])
    known = kind >= 0
    counts["other_type_events_dropped"] = int((~known).sum())
    table, kind = table.filter(pa.array(known)), kind[known]
    ms = table["createdAt"].cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64()).to_numpy()
    keep = np.ones(table.num_rows, dtype=bool)
    if config.dedup_click_id:
        chained = np.flatnonzero((kind >= CLICK) & pc.is_valid(table["clickId"]).to_numpy())
        order = chained[np.argsort(ms[chained], kind="stable")]
        click = dictionary_codes(table["clickId"].take(pa.array(order)))[0]
        duplicate = order[pd.Series(click * 3 + kind[order]).duplicated().to_numpy()]
        counts["duplicate_click_ids_dropped"] = len(duplicate)
        keep[duplicate] = False
    user_key = pc.coalesce(
        table["userId"], pc.binary_join_element_wise(ANON_PREFIX, table["user"], "")
    )
    table = pa.table(
        {
            "kind": kind,
            "ms": ms,
            "createdAt": table["createdAt"],
            "missionId": table["missionId"],
            "user_key": user_key,
            "requestId": table["requestId"],
            "status": table["status"],
            "position": table["position"],
            "candidateAge": table["candidateAge"],
            "source": table["source"],
        }
    ).filter(pa.array(keep))
    kind = table["kind"].to_numpy()
    carries = (kind != PRINT) | (config.print_weight > 0)
    rows = table.filter(pa.array(carries))
    signal = pd.DataFrame(
        {
            "kind": rows["kind"].to_numpy(),
            "ms": rows["ms"].to_numpy(),
            "createdAt": rows["createdAt"].to_pandas(),
            "missionId": categorical(rows["missionId"]),
            "user_key": categorical(rows["user_key"]),
            "status": categorical(rows["status"]),
            "candidateAge": rows["candidateAge"].to_numpy(zero_copy_only=False).astype(float),
        }
    )
    return EventLog(table=table, signal=signal, counts=counts)


def signal_weights(
    kind: np.ndarray, status: pd.Series, ms: np.ndarray, cutoff_ms: int, config: FeatureConfig
) -> np.ndarray:
    """Weight of each event as training signal at `cutoff_ms` (type weight × time decay)."""
    weights = np.select(
        [kind == PRINT, kind == CLICK, kind == APPLY],
        [config.print_weight, config.click_weight, config.apply_weight],
        0.0,
    )
    statuses = pd.Index(config.unsuccessful_apply_statuses, dtype=object)
    unsuccessful = recode(status, statuses) >= 0
    weights[(kind == APPLY) & unsuccessful] = config.unsuccessful_apply_weight
    if config.half_life_days > 0:
        age_days = (cutoff_ms - ms) / MS_PER_DAY
        weights = weights * np.exp2(-age_days / config.half_life_days)
    return weights.astype(np.float32)


def pair_matrix(
    rows: np.ndarray, cols: np.ndarray, values: np.ndarray, shape: tuple[int, int]
) -> sp.csr_matrix:
    """Sum `values` per (row, col) into a float32 CSR matrix, without explicit zeros."""
    matrix = sp.coo_matrix((values.astype(np.float32), (rows, cols)), shape=shape).tocsr()
    matrix.sum_duplicates()
    matrix.eliminate_zeros()
    return matrix


def applies_between(
    signal: pd.DataFrame, start_ms: int, end_ms: int, offer_index: pd.Index
) -> tuple[pd.DataFrame, int]:
    """The applies of [start_ms, end_ms): user_key, offer_id, createdAt, status (plain
    strings) and candidateAge (Int16, null when not given), by time. A window's targets,
    and the history before it.

    Applies on an offer outside `offer_index` cannot be ranked and are dropped (counted).
    """
    ms = signal["ms"].to_numpy()
    in_window = (
        (signal["kind"].to_numpy() == APPLY)
        & (ms >= start_ms)
        & (ms < end_ms)
        & (signal["user_key"].cat.codes.to_numpy() >= 0)
    )
    window = signal[in_window]
    known = recode(window["missionId"], offer_index) >= 0
    window = window[known]
    frame = pd.DataFrame(
        {
            "user_key": window["user_key"].to_numpy(dtype=object),
            "offer_id": window["missionId"].to_numpy(dtype=object),
            "createdAt": window["createdAt"].to_numpy(),
            "status": window["status"].to_numpy(dtype=object),
            "candidateAge": pd.array(window["candidateAge"].to_numpy(), dtype="Int16"),
        }
    ).astype({"user_key": "str", "offer_id": "str", "status": "str"})
    frame = frame.sort_values(["createdAt", "user_key", "offer_id"], kind="stable")
    return frame.reset_index(drop=True), int((~known).sum())


def impressions(table: pa.Table, cutoff_ms: int) -> pa.Table:
    """Prints before `cutoff_ms` and what followed them: user_key, offer_id, position,
    requestId, createdAt, source, clicked, applied, in the log's order (what a response model learns
    from: each print is an exposure at a position, clicks and applies its outcomes).

    A print counts as clicked when a click (before the cutoff) by the same user on the same
    offer carries its `requestId`; a click without a `requestId` covers every print of that
    user and offer (it cannot be tied to one list, so none is claimed as non-converting). A
    clicked print counts as applied when the user applied to the offer before the cutoff.
    """
    train = table.filter(pc.less(table["ms"], cutoff_ms))
    kind = train["kind"]
    keys = ["user_key", "missionId"]
    prints = train.filter(pc.equal(kind, PRINT)).select(
        [*keys, "position", "requestId", "createdAt", "source"]
    )
    prints = prints.append_column("row", pa.array(np.arange(prints.num_rows)))
    prints = prints.filter(pc.is_valid(prints["user_key"]))
    clicks = train.filter(pc.equal(kind, CLICK)).select([*keys, "requestId"])
    tied = clicks.filter(pc.is_valid(clicks["requestId"])).group_by([*keys, "requestId"])
    tied = tied.aggregate([])
    tied = tied.append_column("tied", pa.array(np.ones(tied.num_rows, dtype=bool)))
    blanket = clicks.filter(pc.is_null(clicks["requestId"])).group_by(keys).aggregate([])
    blanket = blanket.append_column("blanket", pa.array(np.ones(blanket.num_rows, dtype=bool)))
    applies = train.filter(pc.equal(kind, APPLY)).select(keys).group_by(keys).aggregate([])
    applies = applies.append_column("apply", pa.array(np.ones(applies.num_rows, dtype=bool)))
    prints = prints.join(tied, keys=[*keys, "requestId"], join_type="left outer")
    prints = prints.join(blanket, keys=keys, join_type="left outer")
    prints = prints.join(applies, keys=keys, join_type="left outer")
    prints = prints.sort_by("row")  # joins do not keep row order
    clicked = pc.or_(pc.fill_null(prints["tied"], False), pc.fill_null(prints["blanket"], False))
    return pa.table(
        {
            "user_key": prints["user_key"],
            "offer_id": prints["missionId"],
            "position": prints["position"],
            "requestId": prints["requestId"],
            "createdAt": prints["createdAt"],
            "source": prints["source"],
            "clicked": clicked,
            "applied": pc.and_(clicked, pc.fill_null(prints["apply"], False)),
        }
    )


def logged_prints(
    table: pa.Table, start_ms: int, end_ms: int, sources: tuple[str, ...]
) -> pa.Table:
    """The window's prints of lists served by `sources`, each with its outcome: user_key,
    offer_id, requestId, position, source, clicked, applied, createdAt, in the log's order.

    What counterfactual estimators replay (`recsys.counterfactual`). A print is clicked
    (applied) when a click (an apply) of the window by the same user on the same offer
    carries its `requestId`: the chain print → click → apply of DOMAIN §6. Prints without a
    `requestId`, a position or a user key cannot be tied to a list and are left out.
    """
    window = table.filter(
        pc.and_(pc.greater_equal(table["ms"], start_ms), pc.less(table["ms"], end_ms))
    )
    window = window.filter(
        pc.and_(pc.is_valid(window["user_key"]), pc.is_valid(window["requestId"]))
    )
    keys = ["user_key", "missionId", "requestId"]
    prints = window.filter(
        pc.and_(
            pc.and_(pc.equal(window["kind"], PRINT), pc.is_valid(window["position"])),
            pc.is_in(window["source"], value_set=pa.array(sources, pa.string())),
        )
    ).select([*keys, "position", "source", "createdAt"])
    prints = prints.append_column("row", pa.array(np.arange(prints.num_rows)))
    for kind, name in ((CLICK, "clicked"), (APPLY, "applied")):
        chained = window.filter(pc.equal(window["kind"], kind)).select(keys).group_by(keys)
        chained = chained.aggregate([])
        chained = chained.append_column(name, pa.array(np.ones(chained.num_rows, dtype=bool)))
        prints = prints.join(chained, keys=keys, join_type="left outer")
    prints = prints.sort_by("row")  # joins do not keep row order
    return pa.table(
        {
            "user_key": prints["user_key"],
            "offer_id": prints["missionId"],
            "requestId": prints["requestId"],
            "position": prints["position"],
            "source": prints["source"],
            "clicked": pc.fill_null(prints["clicked"], False),
            "applied": pc.fill_null(prints["applied"], False),
            "createdAt": prints["createdAt"],
        }
    )


def exposures(shown: pa.Table) -> pa.Table:
    """The prints of `impressions` that no click followed: user_key, offer_id, position,
    requestId, createdAt, in the log's order."""
    return shown.filter(pc.invert(shown["clicked"])).select(
        ["user_key", "offer_id", "position", "requestId", "createdAt"]
    )
