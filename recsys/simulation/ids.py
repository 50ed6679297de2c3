"""Deterministic opaque ids and pair noise from integer counters, vectorised.

Ids are hex strings of a 64-bit mix of (salt, counter): unique because the mix is a bijection,
opaque like the API's hashes, and built for millions of rows without a Python loop. The same
mix gives every (person, offer) pair a persistent noise draw, so that showing an offer twice
to the same person does not reroll their taste for it.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from scipy.special import ndtri

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def mix64(values: np.ndarray, salt: int) -> np.ndarray:
    """SplitMix64 finaliser of `values + salt`: a bijection of uint64, so distinct in, distinct out.

    Hand-written (a few lines) because numpy's generators draw streams, not a keyed hash of
    given integers, and the pair noise must be a pure function of (person, offer).
    """
    z = np.asarray(values).astype(np.uint64) + np.uint64(salt % 2**64) + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def uniform01(keys: np.ndarray) -> np.ndarray:
    """Map uint64 keys to floats in the open interval (0, 1)."""
    return ((keys >> np.uint64(11)).astype(np.float64) + 0.5) / float(2**53)


def pair_normal(people: np.ndarray, offers: np.ndarray, n_offers: int, salt: int) -> np.ndarray:
    """A standard normal draw fixed for each (person, offer) pair, broadcast like numpy."""
    keys = np.asarray(people, dtype=np.int64) * np.int64(n_offers) + np.asarray(offers)
    return ndtri(uniform01(mix64(keys, salt)))


def hex_ids(counters: np.ndarray, salt: int, prefix: str = "", width: int = 16) -> pa.StringArray:
    """Unique hex strings `prefix + <width hex digits>` for distinct counters, as an Arrow array.

    `width` (at most 16) digits of the mixed key are kept; 16 keeps the bijection (unique ids).
    """
    if not 1 <= width <= 16:
        raise ValueError(f"width: expected 1 to 16 hex digits, got {width}")
    keys = mix64(np.asarray(counters), salt)
    count = len(keys)
    octets = keys.astype("<u8").view(np.uint8).reshape(count, 8)
    digits = np.empty((count, 16), dtype=np.uint8)
    digits[:, 0::2] = _HEX[octets >> 4]
    digits[:, 1::2] = _HEX[octets & 15]
    head = np.frombuffer(prefix.encode(), dtype=np.uint8)
    size = len(head) + width
    chars = np.empty((count, size), dtype=np.uint8)
    chars[:, : len(head)] = head
    chars[:, len(head) :] = digits[:, :width]
    offsets = np.arange(0, count * size + 1, size, dtype=np.int64)
    return pa.LargeStringArray.from_buffers(
        count, pa.py_buffer(offsets), pa.py_buffer(chars.tobytes())
    ).cast(pa.string())
