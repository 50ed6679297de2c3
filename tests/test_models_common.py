"""Helpers shared by the models: ids, npz-friendly sparse matrices, chunks, departments."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recsys import geo
from recsys.models._common import (
    lookup,
    nearest_department,
    row_chunks,
    sparse_from_arrays,
    sparse_to_arrays,
    unicode_ids,
)


def test_unicode_ids_refuse_missing_ids() -> None:
    ids = unicode_ids(np.array(["a", "b"], dtype=object))
    assert ids.dtype.kind == "U"
    with pytest.raises(ValueError, match="1 missing id"):
        unicode_ids(np.array(["a", None], dtype=object))


def test_lookup_marks_unknown_and_missing_ids() -> None:
    known = np.array(["u1", "u2", "u3"])
    query = np.array(["u3", "zz", None, np.nan, "u1"], dtype=object)
    np.testing.assert_array_equal(lookup(known, query), [2, -1, -1, -1, 0])
    np.testing.assert_array_equal(lookup(known[:0], query), [-1] * 5)


def test_sparse_round_trip() -> None:
    matrix = sp.csr_matrix(np.array([[0.0, 1.5], [2.0, 0.0], [0.0, 0.0]]))
    arrays = sparse_to_arrays("m", matrix)
    assert sorted(arrays) == ["m_data", "m_indices", "m_indptr", "m_shape"]
    np.testing.assert_array_equal(sparse_from_arrays("m", arrays).toarray(), matrix.toarray())


def test_row_chunks_bound_the_block_size() -> None:
    assert list(row_chunks(5, 3, cells=6)) == [slice(0, 2), slice(2, 4), slice(4, 5)]
    assert list(row_chunks(2, 10, cells=3)) == [slice(0, 1), slice(1, 2)]  # at least one row


def test_nearest_department() -> None:
    codes = geo.departments()["code"].to_numpy()
    found = nearest_department(
        np.array([48.8566, 45.7640, np.nan, 43.2965]), np.array([2.3522, 4.8357, 2.0, 5.3698])
    )
    assert found[2] == -1
    assert list(codes[found[[0, 1, 3]]]) == ["75", "69", "13"]
