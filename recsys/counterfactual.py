"""Counterfactual estimates of applications from logged lists: IPS and self-normalised IPS.

The question: how many applications would the lists of another policy have generated, had
they been served instead of the logged ones? The logs hold, for every served list
(`requestId`), the offers printed at their positions and whether each was clicked and
applied to (`features` writes them as `logged.parquet`, `FeatureSet.logged`).

Assumption (the position-based model, PBM): a visitor examines the offer at position r with
a probability θ_r that depends on the position only, and applies to an examined offer with a
probability γ(visitor, offer) that does not depend on where it was shown. Then

    P(apply | offer o printed at r) = θ_r · γ(u, o),

and a list π shows to u has E[applications] = Σ_{o ∈ π} θ_{q(o)} · γ(u, o), q(o) its rank.

θ is not known: `position_propensities` estimates it from the logged clicks by the PBM's EM
(Chuklin, Markov and de Rijke 2015; Wang et al. 2018), with one attractiveness per offer.
Only ratios of θ matter below, so θ_1 = 1.

Estimators, over N logged lists ℓ shown to user u(ℓ), with the target policy's list T_u for
that user (ranks q = 1..k; q(o) = 0 and θ_0 = 0 when T_u does not list o), and y = 1 for a
logged print followed by an apply:

- IPS: V = (1/N) Σ_ℓ Σ_{o ∈ ℓ} y_ℓo · θ_{q(o)} / θ_{r_ℓ(o)}. Unbiased under the PBM for the
  offers the log showed; an offer T_u lists but no logged list showed to u counts 0, so IPS
  is a lower bound, exact only when the log covers the target's lists.
- SNIPS: V_SN = [Σ y · θ_q / θ_r] / [Σ_{o ∈ ℓ ∩ T_u} θ_q] · (1/N) Σ_ℓ Σ_{q ≤ |T_u|} θ_q: the
  applications per unit of examination on the target's offers the log covers, times the
  examinations of a full target list. The denominator is the IPS estimate of a quantity
  whose value is known (the target's examination mass on the covered offers, the weights'
  expectation), hence self-normalised; it assumes that uncovered offers convert, per
  examination, as the covered ones do. With full coverage, SNIPS = IPS.
- `coverage`: the share of the target lists' examination mass the logged prints cover,
  (1/N) Σ_ℓ Σ_{o ∈ ℓ ∩ T_u} θ_q / ((1/N) Σ_ℓ Σ_{q ≤ |T_u|} θ_q): how much of each figure is
  measured rather than assumed.

Standard errors: the per-list contributions' for IPS, the delta method's for the ratio of
SNIPS (the target mass is fixed by the lists, not drawn from the logs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recsys.ranking import PAD

EM_ITERATIONS = 200
EM_TOLERANCE = 1e-9


def position_propensities(
    offer: np.ndarray,
    position: np.ndarray,
    clicked: np.ndarray,
    iterations: int = EM_ITERATIONS,
) -> np.ndarray:
    """θ of the position-based model, estimated by EM from logged prints and clicks.

    Each print of offer o at position r is clicked with probability θ_r · γ_o (examined,
    then attractive). EM over the (offer, position) cells: given the current θ and γ, an
    unclicked print was examined with probability θ(1 − γ) / (1 − θγ) and attractive with
    probability (1 − θ)γ / (1 − θγ); θ_r is then the mean examination over the prints at r,
    γ_o the mean attractiveness over the prints of o. Stops when θ moves by less than
    `EM_TOLERANCE`.

    Args:
        offer: int offer code per print (any non-negative codes).
        position: 1-based position per print.
        clicked: bool per print.

    Returns:
        θ indexed by position (length max position + 1), θ[0] = 0 (not shown), θ[1] = 1;
        positions without any print get the value of the nearest shown position above them.

    Raises:
        ValueError: arrays of different lengths, a position below 1, or no click at all.
    """
    offer = np.asarray(offer, dtype=np.int64)
    position = np.asarray(position, dtype=np.int64)
    clicked = np.asarray(clicked, dtype=bool)
    if not len(offer) == len(position) == len(clicked):
        raise ValueError("offer, position, clicked: expected one value per print each")
    if len(position) and position.min() < 1:
        raise ValueError("position: positions are 1-based")
    if not clicked.any():
        raise ValueError("clicked: no click in the logs, position bias cannot be estimated")
    n_positions = int(position.max()) + 1
    _, cell_offer, cell_position, prints, clicks = _cells(offer, position, clicked)
    n_offers = int(cell_offer.max()) + 1
    theta = np.full(n_positions, 0.5)
    gamma = np.full(n_offers, 0.5)
    per_position = np.bincount(cell_position, prints, n_positions)
    per_offer = np.bincount(cell_offer, prints, n_offers)
    for _ in range(iterations):
        t, g = theta[cell_position], gamma[cell_offer]
        unclicked = prints - clicks
        denominator = np.maximum(1.0 - t * g, 1e-12)
        examined = clicks + unclicked * t * (1.0 - g) / denominator
        attractive = clicks + unclicked * (1.0 - t) * g / denominator
        new_theta = np.bincount(cell_position, examined, n_positions)
        new_theta = np.divide(
            new_theta, per_position, out=np.zeros(n_positions), where=per_position > 0
        )
        gamma = np.divide(
            np.bincount(cell_offer, attractive, n_offers), per_offer, out=gamma, where=per_offer > 0
        )
        moved = np.abs(new_theta - theta).max()
        theta = new_theta
        if moved < EM_TOLERANCE:
            break
    # A position without prints takes the value of the next deeper one (the deepest has
    # prints: it is the maximum logged).
    filled = theta.copy()
    for r in range(n_positions - 2, 0, -1):
        if per_position[r] == 0:
            filled[r] = filled[r + 1]
    if per_position[1] == 0 or filled[1] <= 0:
        raise ValueError("position: no click at position 1 to scale the propensities by")
    out = filled / filled[1]
    out[0] = 0.0
    return out


def _cells(
    offer: np.ndarray, position: np.ndarray, clicked: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (offer, position) cells: (cell of each print, cell offer codes (dense),
    cell positions, prints per cell, clicks per cell)."""
    _, dense_offer = np.unique(offer, return_inverse=True)
    key = dense_offer * (int(position.max()) + 1) + position
    cells, cell_of_print = np.unique(key, return_inverse=True)
    width = int(position.max()) + 1
    prints = np.bincount(cell_of_print, minlength=len(cells)).astype(np.float64)
    clicks = np.bincount(cell_of_print, clicked.astype(np.float64), len(cells))
    return cell_of_print, cells // width, cells % width, prints, clicks


@dataclass(frozen=True)
class LoggedLists:
    """Logged prints, one row each, with integer codes ready for estimation.

    Attributes:
        list_id: code of the logged list (`requestId`) of each print, 0..n_lists − 1.
        user: row of the list's visitor among the users the target lists are made for.
        offer: row of the printed offer among the target lists' offers; −1 when the offer is
            unknown there (it can still carry an apply, never a weight).
        position: 1-based logged position.
        applied: the print led to an apply.
        n_lists: N, the logged lists (every list counts, whether or not it led to anything).
    """

    list_id: np.ndarray
    user: np.ndarray
    offer: np.ndarray
    position: np.ndarray
    applied: np.ndarray
    n_lists: int

    def __post_init__(self) -> None:
        sizes = {len(getattr(self, name)) for name in ("list_id", "user", "offer", "position")}
        if len(sizes | {len(self.applied)}) != 1:
            raise ValueError(
                "LoggedLists: list_id, user, offer, position, applied differ in length"
            )
        if len(self.list_id) and (self.list_id.min() < 0 or self.list_id.max() >= self.n_lists):
            raise ValueError(f"LoggedLists.list_id: codes must lie in [0, {self.n_lists})")
        if len(self.position) and self.position.min() < 1:
            raise ValueError("LoggedLists.position: positions are 1-based")

    def lists_of_users(self) -> np.ndarray:
        """The visitor row of each logged list (one per list code)."""
        users = np.full(self.n_lists, -1, dtype=np.int64)
        users[self.list_id] = self.user
        return users


def _theta(propensities: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """θ at each position, the deepest estimated one beyond the estimated range."""
    return propensities[np.minimum(positions, len(propensities) - 1)]


def target_ranks(logged: LoggedLists, recommended: np.ndarray) -> np.ndarray:
    """Rank (1-based) of each logged print's offer in its visitor's target list; 0 if absent."""
    recommended = np.asarray(recommended, dtype=np.int64)
    width = max(int(recommended.max(initial=0)), int(logged.offer.max(initial=0))) + 1
    user, slot = np.nonzero(recommended != PAD)
    keys = user * width + recommended[user, slot]
    order = np.argsort(keys)
    keys, ranks = keys[order], slot[order] + 1
    wanted = np.where(logged.offer >= 0, logged.user * width + logged.offer, -1)
    found = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
    if len(keys) == 0:
        return np.zeros(len(wanted), dtype=np.int64)
    return np.where(keys[found] == wanted, ranks[found], 0)


def estimate(
    logged: LoggedLists, recommended: np.ndarray, propensities: np.ndarray
) -> dict[str, float]:
    """IPS and SNIPS applications per list of the target lists `recommended` (module
    docstring), with their standard errors and the coverage.

    Args:
        logged: the logged prints (their `user` rows index `recommended`).
        recommended: (n_users, k) offer rows of the target lists, best first, −1 padded.
        propensities: θ by position, θ[0] = 0 (`position_propensities`).

    Returns:
        {"ips", "ips_se", "snips", "snips_se", "coverage", "lists"}: applications per logged
        list; NaN for SNIPS when the logs cover none of the target lists.
    """
    recommended = np.asarray(recommended, dtype=np.int64)
    n = logged.n_lists
    if n == 0:
        raise ValueError("logged: no logged list to estimate from")
    theta = np.asarray(propensities, dtype=np.float64)
    rank = target_ranks(logged, recommended)
    target_theta = _theta(theta, rank)
    weights = target_theta / _theta(theta, logged.position)
    rewards = np.bincount(logged.list_id, weights * logged.applied, n)  # A_ℓ
    covered = np.bincount(logged.list_id, target_theta, n)  # B_ℓ
    slots = theta[np.minimum(np.arange(1, recommended.shape[1] + 1), len(theta) - 1)]
    mass_per_user = (recommended != PAD) @ slots
    mass = mass_per_user[logged.lists_of_users()]  # M_ℓ
    ips = float(rewards.mean())
    ips_se = float(rewards.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    total_covered = covered.sum()
    mean_mass = float(mass.mean())
    if total_covered > 0:
        ratio = rewards.sum() / total_covered
        residual = rewards - ratio * covered
        ratio_se = np.sqrt((residual**2).sum() / max(n - 1, 1) / n) / covered.mean()
        snips, snips_se = float(ratio * mean_mass), float(ratio_se * mean_mass)
    else:
        snips = snips_se = float("nan")
    coverage = float(total_covered / mass.sum()) if mass.sum() > 0 else 0.0
    return {
        "ips": ips,
        "ips_se": ips_se,
        "snips": snips,
        "snips_se": snips_se,
        "coverage": coverage,
        "lists": float(n),
    }
