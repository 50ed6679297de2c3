"""Helpers the models share: id lookup, sparse matrices in npz files, chunking, departments.

Kept private to `recsys.models` so that each model file reads as its maths only.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys import geo

# Upper bound on the cells of a dense (users × offers) block built at once: 4M float64 = 32 MB.
CHUNK_CELLS = 4_000_000


def unicode_ids(ids: np.ndarray) -> np.ndarray:
    """Ids as a numpy unicode array, the only string form `np.load(allow_pickle=False)` reads.

    Raises:
        ValueError: when an id is missing (None or NaN): training rows must be identified.
    """
    values = pd.Series(ids, dtype=object)
    if values.isna().any():
        raise ValueError(f"ids: {int(values.isna().sum())} missing id(s) in training data")
    return values.astype(str).to_numpy(dtype=str)


# {id: position} of the id arrays looked up, by id(array), dropped when the array is collected.
_POSITIONS: dict[int, tuple[weakref.ref, dict[Any, int]]] = {}


def _positions(known: np.ndarray) -> dict[Any, int]:
    """{id: position in `known`}, built once per array: a model looks up the same state
    arrays on every request, and building the table costs far more than looking up the one
    visitor of a request (a dict, not a pd.Index: pandas converts the query for each call,
    which alone costs more than the lookup). A model's state arrays are never modified after
    training or loading."""
    key = id(known)
    entry = _POSITIONS.get(key)
    if entry is not None and entry[0]() is known:
        return entry[1]
    positions = {value: i for i, value in reversed(list(enumerate(known.tolist())))}
    _POSITIONS[key] = (weakref.ref(known, lambda _: _POSITIONS.pop(key, None)), positions)
    return positions


def lookup(known: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Position of each `query` id in `known` (the first, if repeated), -1 where unknown
    (None and NaN included)."""
    positions = _positions(np.asarray(known))
    return np.fromiter(
        (positions.get(value, -1) for value in np.asarray(query, dtype=object).tolist()),
        dtype=np.int64,
        count=len(query),
    )


def with_history(known: np.ndarray, history: sp.csr_matrix, query: np.ndarray) -> np.ndarray:
    """Bool per `query` id: in `known` (the rows of `history`) with at least one entry."""
    rows = lookup(known, query)
    found = rows >= 0
    found[found] = np.diff(history.indptr)[rows[found]] > 0
    return found


def sparse_to_arrays(prefix: str, matrix: sp.spmatrix) -> dict[str, np.ndarray]:
    """A CSR matrix as four plain arrays `<prefix>_data/_indices/_indptr/_shape` for npz."""
    csr = sp.csr_matrix(matrix)
    return {
        f"{prefix}_data": csr.data,
        f"{prefix}_indices": csr.indices,
        f"{prefix}_indptr": csr.indptr,
        f"{prefix}_shape": np.asarray(csr.shape, dtype=np.int64),
    }


def sparse_from_arrays(prefix: str, arrays: dict[str, np.ndarray]) -> sp.csr_matrix:
    """Inverse of `sparse_to_arrays`."""
    shape = tuple(int(x) for x in arrays[f"{prefix}_shape"])
    return sp.csr_matrix(
        (arrays[f"{prefix}_data"], arrays[f"{prefix}_indices"], arrays[f"{prefix}_indptr"]),
        shape=shape,
    )


def require_trained(state: Any, model_name: str) -> None:
    """Refuse to score with a model that was neither trained nor loaded."""
    if state is None:
        raise RuntimeError(f"{model_name}: call train() or load() before score()")


def check_width(matrix: sp.spmatrix, expected: int, what: str) -> None:
    """Refuse features encoded with another encoder than the one seen in training."""
    if matrix.shape[1] != expected:
        raise ValueError(
            f"{what}: {matrix.shape[1]} feature columns, the model was trained on {expected}"
        )


def row_chunks(n_rows: int, n_cols: int, cells: int = CHUNK_CELLS) -> Iterator[slice]:
    """Row slices such that each (rows × n_cols) dense block stays under `cells` cells."""
    step = max(1, cells // max(n_cols, 1))
    for start in range(0, n_rows, step):
        yield slice(start, min(start + step, n_rows))


def nearest_department(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Index into `geo.departments()` of the nearest prefecture, -1 where coordinates are NaN.

    ProfileArrays and OfferArrays carry coordinates, not department codes; the nearest
    prefecture is the department for nearly every point (`geo` places unknown visitors there).
    """
    table = geo.departments()
    dep_lat = table["lat"].to_numpy(dtype=float)
    dep_lon = table["lon"].to_numpy(dtype=float)
    lat = np.asarray(lat, dtype=float)
    lon = np.asarray(lon, dtype=float)
    out = np.full(len(lat), -1, dtype=np.int16)
    located = np.flatnonzero(~(np.isnan(lat) | np.isnan(lon)))
    for rows in row_chunks(len(located), len(dep_lat)):
        index = located[rows]
        distances = geo.haversine_km(
            lat[index, None], lon[index, None], dep_lat[None, :], dep_lon[None, :]
        )
        out[index] = distances.argmin(axis=1)
    return out
