"""Which apply attempts become applies, with what status, and which offers fill up.

An attempt counts only if the offer is still open, the person never applied to it before and
the hard eligibility rules (`recsys.eligibility`, the very rules evaluation applies) accept the
pair; a few ineligible attempts are recorded anyway and refused. Accepted applicants take
places: an offer whose places are all taken is withdrawn (deleted) within days, so popular
small offers disappear from diffusion the way filled missions do.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np

from recsys import taxonomy
from recsys.arrays import NEVER_DELETED, NO_END, OfferArrays, ProfileArrays
from recsys.eligibility import eligible_matrix
from recsys.simulation.config import SimulationConfig
from recsys.simulation.offers import DAY, SimulatedOffers

# Status of applies by eligible people: (share over the year, share in the last month, when
# most are still pending). VALIDATED and CARRIED_OUT take a place.
STATUS_MIX: dict[str, tuple[float, float]] = {
    "PENDING": (0.30, 0.60),
    "VALIDATED": (0.38, 0.22),
    "CARRIED_OUT": (0.12, 0.02),
    "REFUSED": (0.08, 0.06),
    "CANCEL": (0.07, 0.05),
    "CANCELED": (0.05, 0.05),
}
_STATUS_CODES = np.array([taxonomy.APPLY_STATUSES.index(s) for s in STATUS_MIX])
_REFUSED = taxonomy.APPLY_STATUSES.index("REFUSED")
_TAKES_PLACE = np.isin(
    np.arange(len(taxonomy.APPLY_STATUSES)),
    [taxonomy.APPLY_STATUSES.index(s) for s in ("VALIDATED", "CARRIED_OUT")],
)
_PAIR_BLOCK = 128  # pairs per eligibility block (a block x block matrix, diagonal kept)
NO_APPLY = -1


class Applications:
    """The state of applications over the simulation: who applied where, places taken."""

    def __init__(
        self,
        config: SimulationConfig,
        offers: SimulatedOffers,
        catalogue: OfferArrays,
        visitors: ProfileArrays,
        true_age: np.ndarray,
        rng: np.random.Generator,
        t_end: int,
    ) -> None:
        self._offers = offers
        self._catalogue = _timeless(catalogue)
        self._visitors = visitors
        self._true_ages = replace(visitors, age=true_age.astype(float))
        self._rng = rng
        self._refused_share = config.rates.ineligible_apply_share
        self._late = t_end - 30 * DAY
        self._applied = np.zeros(0, dtype=np.int64)  # sorted person * n_offers + offer
        self._taken = np.zeros(len(catalogue), dtype=np.int64)
        self.filled_at = np.full(len(catalogue), -1, dtype=np.int64)

    def settle(
        self, person: np.ndarray, offer: np.ndarray, time: np.ndarray, week_end: int
    ) -> np.ndarray:
        """Status code (index into taxonomy.APPLY_STATUSES) of each attempt, NO_APPLY if none.

        Attempts come from one week; offers filled by them are withdrawn shortly after
        `week_end` (their `active_to` moves, so later weeks no longer show them).
        """
        status = np.full(len(person), NO_APPLY, dtype=np.int64)
        offers = self._offers
        still_open = (offers.active_from[offer] <= time) & (offers.active_to[offer] > time)
        key = person * len(self._catalogue) + offer
        order = np.flatnonzero(still_open)[np.argsort(time[still_open], kind="stable")]
        _, first = np.unique(key[order], return_index=True)
        candidates = np.sort(order[first])
        candidates = candidates[~np.isin(key[candidates], self._applied)]
        p, o = person[candidates], offer[candidates]

        ok = _pairwise_eligible(self._catalogue, self._visitors, p, o)
        # Where the profile gives no age, the rules assume a young adult: check the true age.
        unknown = ok & np.isnan(self._visitors.age[p])
        ok[unknown] = _pairwise_eligible(self._catalogue, self._true_ages, p[unknown], o[unknown])
        happens = ok | (self._rng.random(len(ok)) < self._refused_share)

        shares = np.array(list(STATUS_MIX.values()))
        cumulative = np.where(
            (time[candidates] >= self._late)[:, None],
            np.cumsum(shares[:, 1]),
            np.cumsum(shares[:, 0]),
        )
        draw = self._rng.random(len(ok))[:, None] * cumulative[:, -1:]
        drawn = _STATUS_CODES[np.minimum((cumulative < draw).sum(axis=1), len(_STATUS_CODES) - 1)]
        codes = np.where(ok, drawn, _REFUSED)
        status[candidates[happens]] = codes[happens]
        self._applied = np.union1d(self._applied, key[candidates[happens]])

        taken = o[happens & _TAKES_PLACE[codes]]
        self._taken += np.bincount(taken, minlength=len(self._taken))
        full = (self._taken >= offers.places) & (self.filled_at < 0)  # NaN places never fill
        withdrawn = week_end + (self._rng.random(int(full.sum())) * 3 * DAY).astype(np.int64)
        self.filled_at[full] = withdrawn
        offers.active_to[full] = np.minimum(offers.active_to[full], withdrawn)
        return status

    def fork(self, offers: SimulatedOffers, rng: np.random.Generator) -> Applications:
        """An independent copy of this state over `offers` (whose `active_to` it will move),
        drawing from `rng`: each replayed policy starts from the same state."""
        twin = copy.copy(self)
        twin._offers, twin._rng = offers, rng
        twin._applied = self._applied.copy()
        twin._taken = self._taken.copy()
        twin.filled_at = self.filled_at.copy()
        return twin

    def applied_offers(self, person: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(i, offer) pairs: every offer `person[i]` already applied to."""
        n = len(self._catalogue)
        person = np.asarray(person, dtype=np.int64)
        low = np.searchsorted(self._applied, person * n)
        high = np.searchsorted(self._applied, (person + 1) * n)
        count = high - low
        index = np.repeat(np.arange(len(person)), count)
        start = np.repeat(low - np.concatenate([[0], np.cumsum(count)[:-1]]), count)
        keys = self._applied[start + np.arange(int(count.sum()))]
        return index, keys - person[index] * n


def _timeless(catalogue: OfferArrays) -> OfferArrays:
    """The catalogue without its dates: `settle` checks openness at the apply time itself."""
    n = len(catalogue)
    return replace(
        catalogue,
        posted_at=np.zeros(n, dtype=np.int64),
        end_at=np.full(n, NO_END, dtype=np.int64),
        deleted_at=np.full(n, NEVER_DELETED, dtype=np.int64),
    )


def _pairwise_eligible(
    catalogue: OfferArrays, visitors: ProfileArrays, person: np.ndarray, offer: np.ndarray
) -> np.ndarray:
    """`eligibility.eligible_matrix` for pairs (person[i], offer[i]): evaluated on small blocks
    whose diagonal holds the pairs (the module offers no pairwise form)."""
    out = np.zeros(len(person), dtype=bool)
    for lo in range(0, len(person), _PAIR_BLOCK):
        p, o = person[lo : lo + _PAIR_BLOCK], offer[lo : lo + _PAIR_BLOCK]
        out[lo : lo + len(p)] = np.diagonal(eligible_matrix(catalogue.take(o), visitors.take(p), 0))
    return out
