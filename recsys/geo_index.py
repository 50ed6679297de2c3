"""The geography rule of eligibility, indexed: which offers lie within a person's radius,
without measuring the distance to every offer.

`recsys.eligibility` states the rule (an offer open anywhere passes; an on-site one passes
when one of its addresses lies within the radius; a person without a place keeps every
offer) and computes it over the whole catalog, the reference. A ranking request needs it for
one or a few people against a hundred thousand offers, where measuring every distance costs
more than the rest of the request. `GeographyIndex` gives the same answer from a latitude
index built once per set of offers:

* every placed address of the offers geography can exclude is listed once, sorted by
  latitude (an offer with three addresses appears three times);
* a point within r of a person lies within r / R radians of latitude of them, so a binary
  search bounds the band worth testing;
* only that band gets the great-circle test, on unit vectors: d ≤ r ⇔ p·q ≥ cos(r / R).

At 100k offers and a 30 km radius that is a few thousand products instead of 100k
distances. The band is widened by a hair so that rounding at its edges never drops an
address the exact test would keep. The exact test and the haversine of `eligibility` agree
but for an address within rounding of the edge: the cosine's rounding (1e-16) over the
angle, R²·1e-16 / d, a few micrometres at a kilometre, less farther.
`tests/test_geo_index.py` checks the index against `eligibility.geography_mask` on random
catalogs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from recsys.arrays import OfferArrays
from recsys.eligibility import remote_anywhere
from recsys.geo import EARTH_RADIUS_KM, unit_vectors

_BAND_MARGIN_DEGREES = 1e-6  # about 0.1 m of latitude


@dataclass(frozen=True, eq=False)
class GeographyIndex:
    """The placed addresses of a set of offers' on-site offers, by latitude."""

    anywhere: np.ndarray  # bool (n_offers,): offers geography never excludes
    rows: np.ndarray  # int64: the offer of each indexed address
    lat: np.ndarray  # float64: each address's latitude, ascending
    xyz: np.ndarray  # float64 (n_addresses, 3): their unit vectors, C-contiguous

    @classmethod
    def build(cls, offers: OfferArrays) -> GeographyIndex:
        """The index of `offers`: each on-site offer's own point, then its other addresses
        (`OfferArrays.more_points`), unplaced ones left out, by latitude (ties by row)."""
        anywhere = remote_anywhere(offers.remote)
        onsite = ~anywhere
        own = np.flatnonzero(onsite & np.isfinite(offers.lat) & np.isfinite(offers.lon))
        rows, lat, lon = [own], [offers.lat[own]], [offers.lon[own]]
        for row, points in enumerate(offers.more_points):
            if points is not None and onsite[row]:
                rows.append(np.full(len(points), row, dtype=np.int64))
                lat.append(points[:, 0])
                lon.append(points[:, 1])
        all_rows, all_lat, all_lon = (np.concatenate(parts) for parts in (rows, lat, lon))
        order = np.lexsort((all_rows, all_lat))
        return cls(
            anywhere=anywhere,
            rows=all_rows[order].astype(np.int64),
            lat=all_lat[order],
            xyz=np.ascontiguousarray(unit_vectors(all_lat[order], all_lon[order])),
        )

    def __len__(self) -> int:
        """The number of offers indexed (not of addresses)."""
        return len(self.anywhere)

    def mask(self, lat: np.ndarray, lon: np.ndarray, radius_km: np.ndarray) -> np.ndarray:
        """The geography rule for people at (lat, lon) with their radii, (n_people, n_offers)
        bool: `eligibility.geography_mask` of each person.

        A person without a place keeps every offer; one whose radius spans the Earth keeps
        every offer but the on-site ones without any placed address.
        """
        lat, lon, radius_km = (np.asarray(x, dtype=float) for x in (lat, lon, radius_km))
        out = np.ones((len(lat), len(self)), dtype=bool)
        placed = np.flatnonzero(np.isfinite(lat) & np.isfinite(lon))
        if len(placed) == 0:
            return out
        out[placed] = self.anywhere
        within = self._within(lat[placed], lon[placed], radius_km[placed] / EARTH_RADIUS_KM)
        for person, rows in zip(placed.tolist(), within, strict=True):
            out[person, rows] = True
        return out

    def kept_rows(
        self,
        lat: float,
        lon: float,
        radius_km: float,
        among: np.ndarray,
        among_rows: np.ndarray,
        anywhere_rows: np.ndarray,
    ) -> np.ndarray:
        """The rows, ascending, of a set of offers that the geography rule keeps for one
        person: `np.flatnonzero(among & self.mask(...)[0])` without a pass over every offer.

        The set comes three ways, which the caller keeps ready: as a bool mask over the
        offers (`among`), its rows (`among_rows`) and those of them open anywhere
        (`anywhere_rows`). A lone request needs rows, not a mask, and passes of masks over
        a hundred thousand offers were a tenth of its time.
        """
        if not (math.isfinite(lat) and math.isfinite(lon)):
            return among_rows
        (band,) = self._within(
            np.array([lat], dtype=float),
            np.array([lon], dtype=float),
            np.array([radius_km / EARTH_RADIUS_KM]),
        )
        near = np.unique(band[among[band]])  # sorted, each offer once
        rows = np.concatenate([anywhere_rows, near])
        if len(near) and len(anywhere_rows) and near[0] < anywhere_rows[-1]:  # runs interleave
            rows.sort(kind="stable")  # a merge of the two sorted runs
        return rows

    def _within(self, lat: np.ndarray, lon: np.ndarray, angles: np.ndarray) -> list[np.ndarray]:
        """For each person, the offers (one row per address, so maybe repeated) with an
        indexed address within `angles` (radians) of them: the band found by binary search,
        then the exact test on unit vectors. An angle of π or more (a radius spanning the
        Earth) reaches every address."""
        reach = np.degrees(angles) + _BAND_MARGIN_DEGREES
        starts = np.searchsorted(self.lat, lat - reach, side="left")
        stops = np.searchsorted(self.lat, lat + reach, side="right")
        thresholds = np.where(angles < math.pi, np.cos(np.minimum(angles, math.pi)), -np.inf)
        return [
            self.rows[start:stop][self.xyz[start:stop] @ point >= threshold]
            for point, threshold, start, stop in zip(
                unit_vectors(lat, lon), thresholds, starts.tolist(), stops.tolist(), strict=True
            )
        ]
