"""Hard eligibility: which offers a person may be recommended at a given time.

One vectorised rule set over `OfferArrays`, numpy only, shared verbatim by offline evaluation
(`eligible_matrix`) and by the service's hot path (`eligible`), so that an offline figure
describes what is served and the rate of ineligible recommendations is zero by construction.
An offer is eligible when every rule below holds.

Availability at time `at` (DOMAIN.md section 4, "also"; section 2 for the fields):
    - `statusCode` is ACCEPTED: only accepted offers are diffused.
    - not deleted: `deletedAt` is missing or after `at`.
    - not ended: `endAt` is missing (an open-ended offer never ends) or at or after `at`.
    - posted: `postedAt` at or before `at`.
    - places left: `places` missing (unknown, kept) or above 0; 0 or less means full.

Age (DOMAIN.md section 4; bounds from `taxonomy.PROGRAMME_AGE_BOUNDS`, inclusive, on the age
in completed years):
    - Service Civique 16-25, up to 30 with a disability.
    - Sapeurs-pompiers volontaires 16-67; Réserve opérationnelle 17-72.
    - Bénévolat: adults; minors of 16-17 only where `openToMinors` is yes. A missing
      `openToMinors` counts as no for bénévolat: conservative, a minor is never shown an
      offer nobody said was open to minors.
    - SNU flag: the offer is also open to 15-17 year-olds (the SNU general-interest mission).
    - `openToMinors` no excludes anyone under 18, whatever the programme and the SNU flag.
    - An offer whose programme is not one of `taxonomy.PROGRAMMES` has no known age rule and
      is never eligible.
    - Unknown age: the person is taken for an adult young person and an offer passes when it
      admits every age from 18 to 25. With today's programmes that admits every known
      programme (Service Civique included: the platform's audience is young, and hiding its
      flagship programme from everyone who skipped the age question would cost more than
      showing it to the rare older visitor, whom the offer's own form then turns away).

Geography (DOMAIN.md section 5, the incumbent's radius; `taxonomy.REMOTE_IGNORES_DISTANCE`):
    - An offer whose `remote` is full, local or possible is eligible at any distance.
    - Otherwise (on site) one of its addresses must lie within `radius_km` of the person
      (great-circle; `offer_distances_km`, the nearest address; `nearest_addresses` says
      which).
    - An on-site offer without coordinates is excluded when the person's place is known:
      nothing proves it is near.
    - When the person's place is unknown, on-site offers are all kept: there is nothing to
      measure against, and ranking (not eligibility) is where distance then matters.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from recsys import taxonomy
from recsys.arrays import OfferArrays, ProfileArrays
from recsys.geo import haversine_km

_SERVICE_CIVIQUE = taxonomy.PROGRAMMES.index(taxonomy.SERVICE_CIVIQUE)
_BENEVOLAT = taxonomy.PROGRAMMES.index(taxonomy.BENEVOLAT)
_YES, _NO = 1, 0  # OfferArrays.open_to_minors: 1 yes, 0 no, -1 missing

# Lookup tables indexed by code + 1, so that the "unknown" code -1 lands on slot 0.
_AGE_LOWER = np.array(
    [np.inf] + [taxonomy.PROGRAMME_AGE_BOUNDS[p][0] for p in taxonomy.PROGRAMMES], dtype=float
)
_AGE_UPPER = np.array(
    [-np.inf] + [taxonomy.PROGRAMME_AGE_BOUNDS[p][1] for p in taxonomy.PROGRAMMES], dtype=float
)
_REMOTE_ANYWHERE = np.array(
    [False] + [value in taxonomy.REMOTE_IGNORES_DISTANCE for value in taxonomy.REMOTE_VALUES]
)
_UNKNOWN_AGE_PROBES = (float(taxonomy.ADULT_AGE), 25.0)  # rules are intervals: ends suffice

# Rows of profiles per block in `eligible_matrix`, sized so that one block's float
# temporaries stay around a few tens of megabytes.
_MATRIX_CELLS_PER_BLOCK = 2_000_000


def distances_km(offers: OfferArrays, lat: float | None, lon: float | None) -> np.ndarray:
    """Great-circle km from a place to every offer's nearest address; NaN where either side
    is unknown."""
    return offer_distances_km(offers, _nan_if_none(lat), _nan_if_none(lon))


def offer_distances_km(
    offers: OfferArrays, lat: float | np.ndarray, lon: float | np.ndarray
) -> np.ndarray:
    """Great-circle km from people to each offer's nearest address, NaN where unknown.

    `lat`, `lon` are scalars (result (n_offers,)) or (m, 1) columns (result (m, n_offers)).
    An offer is as near as the nearest of its addresses: its own point (`lat`, `lon`) and
    its other addresses (`more_points`).
    """
    return with_other_addresses(
        haversine_km(lat, lon, offers.lat, offers.lon), offers.more_points, lat, lon
    )


def with_other_addresses(
    distance: np.ndarray,
    more_points: np.ndarray,
    lat: float | np.ndarray,
    lon: float | np.ndarray,
) -> np.ndarray:
    """`distance` to each offer's own point (last axis: offers) lowered, in place, to the
    distance to its nearest other address (`OfferArrays.more_points` of those offers).

    `lat`, `lon`: a scalar person for (n_offers,) distances, (m, 1) columns for (m, n_offers).
    """
    many = [row for row, points in enumerate(more_points) if points is not None]
    if not many:
        return distance
    lat_column, lon_column = np.asarray(lat, dtype=float), np.asarray(lon, dtype=float)
    for row in many:
        points = more_points[row]
        nearest = haversine_km(
            lat_column[..., None], lon_column[..., None], points[:, 0], points[:, 1]
        ).min(axis=-1)
        shape = np.shape(distance[..., row])
        distance[..., row] = np.fmin(distance[..., row], np.reshape(nearest, shape))
    return distance


def pair_distances_km(
    offers: OfferArrays, rows: np.ndarray, lat: np.ndarray, lon: np.ndarray
) -> np.ndarray:
    """Great-circle km from person i at (lat[i], lon[i]) to offer `rows[i]`'s nearest address,
    for each i; NaN where unknown. What lists show and reasons say."""
    return nearest_addresses(offers, rows, lat, lon)[0]


def nearest_addresses(
    offers: OfferArrays, rows: np.ndarray, lat: np.ndarray, lon: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each i, the km from person i at (lat[i], lon[i]) to offer `rows[i]`'s nearest
    address, and which address that is: -1 for the offer's own point (`OfferArrays.lat`,
    `lon`: its first address), j >= 0 for its other address `more_points[rows[i]][j]`.

    NaN and -1 where the person or the offer is unplaced; the own point wins a tie. What a
    list shows of each offer (distance, reasons, the address displayed) comes from here.
    """
    rows = np.asarray(rows)
    lat, lon = np.broadcast_arrays(np.asarray(lat, dtype=float), np.asarray(lon, dtype=float))
    lat, lon = np.broadcast_to(lat, np.shape(rows)), np.broadcast_to(lon, np.shape(rows))
    out = np.array(haversine_km(lat, lon, offers.lat[rows], offers.lon[rows]), dtype=float)
    which = np.full(len(out), -1, dtype=np.int64)
    for i, row in enumerate(rows.tolist()):
        points = offers.more_points[row]
        if points is None:
            continue
        others = haversine_km(lat[i], lon[i], points[:, 0], points[:, 1])
        j = int(np.argmin(others))  # placed points only: NaN when the person is unplaced
        if others[j] < out[i] or (math.isnan(out[i]) and not math.isnan(others[j])):
            out[i], which[i] = others[j], j
    return out, which


def eligible(
    offers: OfferArrays,
    *,
    age: float | None,
    disability: bool,
    lat: float | None,
    lon: float | None,
    radius_km: float,
    at: int,
    distances_km: np.ndarray | None = None,
) -> np.ndarray:
    """Boolean mask over `offers`: what one person may be recommended at `at`.

    Args:
        offers: the catalog's column arrays.
        age: age in years; NaN or None when unknown (see the module docstring).
        disability: whether the person declared a disability (Service Civique to 30).
        lat, lon: the person's place in degrees; NaN or None when unknown.
        radius_km: how far an on-site offer may be (positive; inf for no limit).
        at: epoch seconds (UTC) of the request.
        distances_km: optional precomputed `distances_km(offers, lat, lon)`, to share the
            haversine with scoring.

    Raises:
        ValueError: on a non-positive or NaN radius, or distances of the wrong shape.
    """
    masks, _ = _person_masks(offers, age, disability, lat, lon, radius_km, at, distances_km)
    return np.logical_and.reduce([mask for _, mask in masks])


def _person_masks(
    offers: OfferArrays,
    age: float | None,
    disability: bool,
    lat: float | None,
    lon: float | None,
    radius_km: float,
    at: int,
    distances_km: np.ndarray | None,
) -> tuple[list[tuple[str, np.ndarray]], np.ndarray]:
    """One person's (rule, mask) pairs and distances, their inputs checked and normalised."""
    _check_radius(radius_km)
    lat, lon = _nan_if_none(lat), _nan_if_none(lon)
    if distances_km is None:
        distances_km = _distances(offers, lat, lon)
    elif np.shape(distances_km) != (len(offers),):
        raise ValueError(
            f"distances_km: shape {np.shape(distances_km)} does not match {len(offers)} offers"
        )
    masks = _rule_masks(
        offers,
        age=_nan_if_none(age),
        disability=bool(disability),
        lat=lat,
        lon=lon,
        radius_km=float(radius_km),
        at=int(at),
        distances=distances_km,
    )
    return masks, distances_km


def eligible_matrix(offers: OfferArrays, profiles: ProfileArrays, at: int) -> np.ndarray:
    """Boolean (n_profiles, n_offers): row i is `eligible(...)` for profile i at `at`.

    The same rules as `eligible`, broadcast over blocks of profiles so that the distance
    matrix never has to exist whole.

    Raises:
        ValueError: when a profile's radius is not a positive number.
    """
    bad = ~(profiles.radius_km > 0)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"radius_km: profile {profiles.ids[first]!r} has radius {profiles.radius_km[first]}"
            ", expected a positive number"
        )
    out = np.zeros((len(profiles), len(offers)), dtype=bool)
    block = max(1, _MATRIX_CELLS_PER_BLOCK // max(1, len(offers)))
    for start in range(0, len(profiles), block):
        rows = slice(start, start + block)
        lat = profiles.lat[rows, None]
        lon = profiles.lon[rows, None]
        masks = _rule_masks(
            offers,
            age=profiles.age[rows, None],
            disability=profiles.disability[rows, None],
            lat=lat,
            lon=lon,
            radius_km=profiles.radius_km[rows, None],
            at=int(at),
            distances=offer_distances_km(offers, lat, lon),
        )
        out[rows] = np.logical_and.reduce(
            [np.broadcast_to(mask, out[rows].shape) for _, mask in masks]
        )
    return out


def ineligibility_reasons(
    offers: OfferArrays,
    index: int,
    *,
    age: float | None,
    disability: bool,
    lat: float | None,
    lon: float | None,
    radius_km: float,
    at: int,
) -> list[str]:
    """Why offer `index` is not eligible for this person at `at`; empty when it is.

    Uses the very masks of `eligible`, so the list is empty exactly when `eligible` is True.

    Raises:
        ValueError: on an index out of range or a bad radius.
    """
    if not -len(offers) <= index < len(offers):
        raise ValueError(f"index: {index} is out of range for {len(offers)} offers")
    one = offers.take(np.array([index]))
    masks, distances = _person_masks(one, age, disability, lat, lon, radius_km, at, None)
    context = {
        "age": _nan_if_none(age),
        "radius_km": float(radius_km),
        "at": float(at),
        "distance": float(distances[0]),
    }
    return [_REASONS[name](one, context) for name, mask in masks if not bool(mask[0])]


# --- Rules -------------------------------------------------------------------------------------


def _rule_masks(
    offers: OfferArrays,
    *,
    age: float | np.ndarray,
    disability: bool | np.ndarray,
    lat: float | np.ndarray,
    lon: float | np.ndarray,
    radius_km: float | np.ndarray,
    at: int,
    distances: np.ndarray,
) -> list[tuple[str, np.ndarray]]:
    """Each rule's pass mask, named. Person fields are scalars or (m, 1) columns that
    broadcast against the (n,) offer arrays."""
    return [
        *_offer_rules(offers, at),
        ("age", _age_mask(offers, age, disability)),
        ("geography", _geography_mask(offers, lat, lon, radius_km, distances)),
    ]


def _offer_rules(offers: OfferArrays, at: int) -> list[tuple[str, np.ndarray]]:
    """The rules that read the offer alone (availability at `at`), whoever the person is."""
    return [
        *_lasting_rules(offers, at),
        ("posted", offers.posted_at <= at),
        ("places", ~(offers.places <= 0)),  # NaN (unknown) compares False: kept
    ]


def available(offers: OfferArrays, at: int) -> np.ndarray:
    """Offers open to someone at `at` (status, not deleted, not ended, posted, places left):
    the rules of `eligible` that do not depend on the person."""
    return np.logical_and.reduce([mask for _, mask in _offer_rules(offers, at)])


def _lasting_rules(offers: OfferArrays, at: int) -> list[tuple[str, np.ndarray]]:
    """The availability rules that, once broken at `at`, never hold again (refused, deleted,
    ended)."""
    return [
        ("status", offers.accepted),
        ("deleted", offers.deleted_at > at),
        ("ended", offers.end_at >= at),
    ]


def closed(offers: OfferArrays, at: int) -> np.ndarray:
    """Offers that can never become eligible again after `at` (refused, deleted, ended): what
    a live catalog drops."""
    return ~np.logical_and.reduce([mask for _, mask in _lasting_rules(offers, at)])


def _age_mask(
    offers: OfferArrays, age: float | np.ndarray, disability: bool | np.ndarray
) -> np.ndarray:
    years = np.floor(age)
    unknown = np.isnan(years)
    if not np.any(unknown):
        return _admits(offers, years, disability)
    assumed = np.logical_and.reduce(
        [_admits(offers, np.float64(probe), disability) for probe in _UNKNOWN_AGE_PROBES]
    )
    if np.ndim(years) == 0:
        return assumed
    known = _admits(offers, np.where(unknown, 0.0, years), disability)
    return np.where(unknown, assumed, known)


def _admits(
    offers: OfferArrays, years: float | np.ndarray, disability: bool | np.ndarray
) -> np.ndarray:
    """Whether each offer admits a person of `years` (completed years, no NaN)."""
    return admits_years(offers.programme, offers.snu, offers.open_to_minors, years, disability)


def admits_years(
    programme: np.ndarray,
    snu: np.ndarray,
    open_to_minors: np.ndarray,
    years: float | np.ndarray,
    disability: bool | np.ndarray = False,
) -> np.ndarray:
    """The age rules on bare arrays that broadcast together: programme codes (-1 unknown),
    SNU flags, `OfferArrays.open_to_minors` codes, completed years (no NaN) and the
    disability flag. `eligible` reaches them through `OfferArrays`; the simulator's
    incumbent gates its lists with them."""
    upper = _AGE_UPPER[programme + 1]
    disability_upper = np.where(
        programme == _SERVICE_CIVIQUE, float(taxonomy.SERVICE_CIVIQUE_DISABILITY_MAX_AGE), upper
    )
    upper = np.where(disability, disability_upper, upper)
    minor = years < taxonomy.ADULT_AGE
    in_programme = (_AGE_LOWER[programme + 1] <= years) & (years <= upper)
    benevolat_closed = (programme == _BENEVOLAT) & (open_to_minors != _YES)
    in_programme = in_programme & ~(minor & benevolat_closed)
    snu_low, snu_high = taxonomy.SNU_AGE_BOUNDS
    in_snu = snu & (programme >= 0) & (snu_low <= years) & (years <= snu_high)
    return (in_programme | in_snu) & ~(minor & (open_to_minors == _NO))


def remote_anywhere(remote: np.ndarray) -> np.ndarray:
    """Offers geography never excludes (`taxonomy.REMOTE_IGNORES_DISTANCE`), from their
    `OfferArrays.remote` codes; an unknown code (-1) is on site."""
    return _REMOTE_ANYWHERE[remote + 1]


def geography_mask(
    offers: OfferArrays, lat: float | None, lon: float | None, radius_km: float
) -> np.ndarray:
    """The geography rule alone (module docstring) for one person, over every offer: the
    reference of its indexed form, `recsys.geo_index.GeographyIndex`.

    Raises:
        ValueError: on a non-positive or NaN radius.
    """
    _check_radius(radius_km)
    lat, lon = _nan_if_none(lat), _nan_if_none(lon)
    return _geography_mask(offers, lat, lon, float(radius_km), _distances(offers, lat, lon))


def _geography_mask(
    offers: OfferArrays,
    lat: float | np.ndarray,
    lon: float | np.ndarray,
    radius_km: float | np.ndarray,
    distances: np.ndarray,
) -> np.ndarray:
    anywhere = remote_anywhere(offers.remote)
    place_unknown = np.isnan(lat) | np.isnan(lon)
    within = distances <= radius_km  # NaN (offer without coordinates) compares False
    return anywhere | place_unknown | within


# --- Helpers -----------------------------------------------------------------------------------


def _nan_if_none(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _distances(offers: OfferArrays, lat: float, lon: float) -> np.ndarray:
    if math.isnan(lat) or math.isnan(lon):
        return np.full(len(offers), np.nan)
    return offer_distances_km(offers, lat, lon)


def _check_radius(radius_km: float) -> None:
    if not radius_km > 0:  # also catches NaN
        raise ValueError(f"radius_km: expected a positive number of km, got {radius_km!r}")


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat(timespec="seconds")


def _age_rule(offer: OfferArrays) -> str:
    code = int(offer.programme[0])
    if code < 0:
        return "unknown programme"
    programme = taxonomy.PROGRAMMES[code]
    low, high = taxonomy.PROGRAMME_AGE_BOUNDS[programme]
    rule = f"{taxonomy.PROGRAMME_LABELS_FR[programme]} {low}-{high}"
    if programme == taxonomy.SERVICE_CIVIQUE:
        rule += f" ({taxonomy.SERVICE_CIVIQUE_DISABILITY_MAX_AGE} with a disability)"
    if programme == taxonomy.BENEVOLAT:
        rule = f"{taxonomy.PROGRAMME_LABELS_FR[programme]} adults, 16-17 if open to minors"
    if offer.snu[0]:
        rule += ", SNU {}-{}".format(*taxonomy.SNU_AGE_BOUNDS)
    minors = {1: "yes", 0: "no", -1: "missing"}[int(offer.open_to_minors[0])]
    return f"{rule}; openToMinors {minors}"


def _age_reason(offer: OfferArrays, context: dict[str, float]) -> str:
    age = context["age"]
    who = "unknown age (taken as 18-25)" if math.isnan(age) else f"age {math.floor(age)}"
    return f"{who} not admitted: {_age_rule(offer)}"


def _geography_reason(offer: OfferArrays, context: dict[str, float]) -> str:
    if math.isnan(context["distance"]):
        return "on-site offer without coordinates"
    return (
        f"on-site offer {context['distance']:.1f} km away, beyond the "
        f"{context['radius_km']:g} km radius"
    )


_REASONS: dict[str, Callable[[OfferArrays, dict[str, float]], str]] = {
    "status": lambda offer, _: "statusCode is not ACCEPTED",
    "deleted": lambda offer, c: (
        f"deleted at {_iso(int(offer.deleted_at[0]))}, not after {_iso(int(c['at']))}"
    ),
    "ended": lambda offer, c: f"ended at {_iso(int(offer.end_at[0]))}, before {_iso(int(c['at']))}",
    "posted": lambda offer, c: (
        f"posted at {_iso(int(offer.posted_at[0]))}, after {_iso(int(c['at']))}"
    ),
    "places": lambda offer, _: f"no places left (places {offer.places[0]:g})",
    "age": _age_reason,
    "geography": _geography_reason,
}


def admits_age(offers: OfferArrays, age: float | None, disability: bool) -> np.ndarray:
    """Whether each offer's age rules (programme bounds, minors, SNU, disability extension)
    admit a person of `age` (None: unknown, as in `eligible`), whatever the offer's dates and
    place: what a question about a programme, rather than an offer, is answered from."""
    return _age_mask(offers, _nan_if_none(age), disability)


@dataclass(frozen=True)
class AgeClasses:
    """Offers grouped by the three fields the age rules read (programme, SNU flag,
    `openToMinors`), so that `admits_age` over a whole catalog is the rules over one offer
    per class, then one gather.

    A catalog holds a few dozen classes however many offers it has: at 100k offers this
    takes the age rules from a dozen numpy passes over every offer (3 to 7 ms, each time a
    service's cache of `eligible` for one age is filled) to one pass (docs/benchmarks.md).
    `available(offers, at) & classes.admits(age, disability)` is `eligible` of a person
    whose place is unknown.
    """

    members: OfferArrays  # one offer of each class
    of_offer: np.ndarray  # intp (n_offers,): the class of each offer, an index into members

    @classmethod
    def of(cls, offers: OfferArrays) -> AgeClasses:
        fields = np.column_stack([offers.programme, offers.snu, offers.open_to_minors])
        _, first, classes = np.unique(
            fields.astype(np.int64), axis=0, return_index=True, return_inverse=True
        )
        return cls(offers.take(first), classes.reshape(-1).astype(np.intp))

    def admits(self, age: float | None, disability: bool) -> np.ndarray:
        """`admits_age` of the offers the classes were made of."""
        return admits_age(self.members, age, disability)[self.of_offer]
