"""Candidate selection: which offers may be ranked for whom, shared by evaluation and serving.

Candidates are the offers a person could still apply to (DOMAIN.md section 7): eligible for
them (age, programme, geography, status, places), open at the time of the request (or, in
offline evaluation, at some point of the test window), minus what they already applied to.
Scoring and ranking come after and never see an offer this module rules out.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import scipy.sparse as sp

from recsys.arrays import OfferArrays, ProfileArrays
from recsys.eligibility import eligible_matrix


def open_during(offers: OfferArrays, window_start: int, window_end: int) -> OfferArrays:
    """The offers as they stand for a window [window_start, window_end).

    An offer posted before the window ends is treated as posted at the window's start, so one
    eligibility check at `window_start` admits every offer a person could apply to during the
    window (people apply between posting and start), while anything ended, deleted or refused
    before the window opens stays out.
    """
    posted_in_time = offers.posted_at < window_end
    posted_at = np.where(
        posted_in_time, np.minimum(offers.posted_at, window_start), offers.posted_at
    )
    return replace(offers, posted_at=posted_at)


def candidate_mask(
    offers: OfferArrays,
    profiles: ProfileArrays,
    at: int,
    already_applied: sp.csr_matrix | None = None,
) -> np.ndarray:
    """Boolean (n_profiles, n_offers): eligible at `at` and not already applied to.

    Args:
        offers: the catalog (use `open_during` first for a window-based evaluation).
        profiles: the people to rank for.
        at: epoch seconds of the request (or the window's start).
        already_applied: optional (n_profiles, n_offers) sparse matrix, non-zero where the
            person already applied; those offers are excluded.
    """
    mask = eligible_matrix(offers, profiles, at)
    if already_applied is not None:
        if already_applied.shape != mask.shape:
            raise ValueError(
                f"already_applied has shape {already_applied.shape}, expected {mask.shape}"
            )
        rows, cols = already_applied.nonzero()
        mask[rows, cols] = False
    return mask
