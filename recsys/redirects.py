"""The evaluation's redirect segment: people whose path had to turn, and where they went next.

DOMAIN.md section 4: someone refused, or too old for a programme, goes on in the other
programmes they may join. Offline, the segment is the people with such a *trigger* who
applied again in the evaluated window:

- a refusal: an apply whose status is REFUSED, before the window or in it;
- an age-out: an apply before the window to an offer whose age rules
  (`recsys.eligibility.admits_years`, the one owner of those rules) admitted the person then
  and no longer admit them at the window's start. Their age then is the apply's
  `candidateAge` (an apply without it cannot tell); their age at the window's start is the
  greater of their profile's age and that age plus the calendar years completed since the
  apply (a lower bound: a birthday may have fallen in between, so the segment misses some
  age-outs rather than inventing any).

A trigger counts when the person applied to another offer in the window after it; a person
with several keeps the latest such trigger. What they applied to next, the segment's
relevance, is their window's applies after the trigger, its offer aside.

`recsys.evaluation` ranks each member twice from the same scores, through the same list
policy: the plain list (the trigger's offer excluded, as the service's event store would
exclude an apply it recorded) and the path-aware list, whose candidates are narrowed by
`recsys.paths.continuation` for the trigger's outcome (`refused` or `too_old`): what `/rank`
with `after` serves.

Exports give an apply's status as last known, not as known at the cutoff: on real data a
refusal recorded after the cutoff may mark an apply before it (the simulator draws statuses
when people apply).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recsys import taxonomy
from recsys.arrays import OfferArrays, ProfileArrays
from recsys.eligibility import admits_years
from recsys.filters import FilterColumns, OfferFilters, filter_mask
from recsys.paths import continuation

REFUSED = "refused"
TOO_OLD = "too_old"
_REFUSED_STATUS = "REFUSED"


@dataclass(frozen=True)
class Redirects:
    """The segment's members, each with their trigger and what they applied to next."""

    members: np.ndarray  # (n,) positions into the evaluated users, ascending
    offer: np.ndarray  # (n,) the trigger's offer (row of the evaluated offers)
    outcome: np.ndarray  # (n,) object: REFUSED or TOO_OLD
    relevant: list[np.ndarray]  # per member, the offers applied to next (rows, ascending)
    counts: dict[str, float] = field(default_factory=dict)

    def narrowed(
        self, index: np.ndarray, offers: OfferArrays, columns: FilterColumns
    ) -> np.ndarray:
        """(len(index), n_offers) bool: the offers the continuation of members `index` (into
        `members`) may propose (`recsys.paths.continuation`, no other filter)."""
        out = np.zeros((len(index), len(offers)), dtype=bool)
        made: dict[tuple[str, int, bool], np.ndarray] = {}
        for slot, member in enumerate(index):
            row = int(self.offer[member])
            key = (str(self.outcome[member]), int(offers.programme[row]), bool(offers.snu[row]))
            if key not in made:
                outcome, code, snu = key
                update = continuation(outcome, taxonomy.PROGRAMMES[code], None, snu)
                mask = filter_mask(offers, columns, OfferFilters(**update))
                made[key] = np.ones(len(offers), dtype=bool) if mask is None else mask
            out[slot] = made[key]
        return out


def completed_years(since: pd.Series, until: pd.Timestamp) -> np.ndarray:
    """Calendar years completed between each time of `since` and `until` (0 when `until` is
    not a full year later): how much older, at least, a person has become."""
    since = pd.to_datetime(since, utc=True)
    until = pd.Timestamp(until).tz_convert("UTC")
    years = until.year - since.dt.year.to_numpy()
    before_anniversary = (until.month * 100 + until.day) < (
        since.dt.month.to_numpy() * 100 + since.dt.day.to_numpy()
    )
    return np.maximum(years - before_anniversary, 0)


def _rows(frame: pd.DataFrame, people: pd.Series, offer_row: pd.Series) -> pd.DataFrame:
    """`frame`'s applies of evaluated people on known offers, with `person` and `row`."""
    person = people.reindex(frame["user_key"].astype(str)).to_numpy()
    row = offer_row.reindex(frame["offer_id"].astype(str)).to_numpy()
    kept = ~(np.isnan(person) | np.isnan(row))
    return frame[kept].assign(person=person[kept].astype(np.int64), row=row[kept].astype(np.int64))


def _aged_out(
    past: pd.DataFrame,
    offers: OfferArrays,
    profiles: ProfileArrays,
    window_start: pd.Timestamp,
) -> np.ndarray:
    """(len(past),) bool: applies whose offer admitted the person then and no longer does."""
    then = pd.array(past["candidateAge"], dtype="Float64").to_numpy(dtype=float, na_value=np.nan)
    person, row = past["person"].to_numpy(), past["row"].to_numpy()
    now = np.fmax(profiles.age[person], then + completed_years(past["createdAt"], window_start))
    known = ~np.isnan(then)
    disability = profiles.disability[person]
    rules = (offers.programme[row], offers.snu[row], offers.open_to_minors[row])
    admitted_then = admits_years(*rules, np.where(known, np.floor(then), 0.0), disability)
    admitted_now = admits_years(*rules, np.where(known, np.floor(now), 0.0), disability)
    return known & admitted_then & ~admitted_now


def redirects(
    user_ids: np.ndarray,
    history: pd.DataFrame,
    targets: pd.DataFrame,
    offer_ids: np.ndarray,
    offers: OfferArrays,
    profiles: ProfileArrays,
    window_start: pd.Timestamp,
) -> Redirects:
    """The redirect segment of an evaluated window (module docstring).

    Args:
        user_ids: the evaluated people (user keys), in the evaluation's order.
        history: the applies before the window (`FeatureSet.history`).
        targets: the window's applies (`FeatureSet.targets`).
        offer_ids: the evaluated offers; `offers` their arrays, in the same order.
        profiles: the evaluated people's profiles, in `user_ids`' order.
        window_start: the window's start (the cutoff).
    """
    people = pd.Series(np.arange(len(user_ids)), index=np.asarray(user_ids).astype(str))
    offer_row = pd.Series(np.arange(len(offer_ids)), index=np.asarray(offer_ids).astype(str))
    past = _rows(history, people, offer_row)
    window = _rows(targets, people, offer_row)
    known_programme = offers.programme[past["row"].to_numpy()] >= 0
    aged = _aged_out(past, offers, profiles, window_start) & known_programme
    refused_past = (past["status"] == _REFUSED_STATUS).to_numpy() & known_programme
    refused_now = (window["status"] == _REFUSED_STATUS).to_numpy() & (
        offers.programme[window["row"].to_numpy()] >= 0
    )
    columns = ["person", "row", "createdAt"]
    triggers = pd.concat(
        [
            past.loc[refused_past, columns].assign(outcome=REFUSED),
            window.loc[refused_now, columns].assign(outcome=REFUSED),
            past.loc[aged & ~refused_past, columns].assign(outcome=TOO_OLD),
        ],
        ignore_index=True,
    )
    nexts = window[["person", "row", "createdAt"]]
    pairs = triggers.merge(nexts, on="person", suffixes=("", "_next"))
    pairs = pairs[
        (pairs["createdAt_next"] > pairs["createdAt"]) & (pairs["row_next"] != pairs["row"])
    ]
    # The latest trigger a later apply follows (ties: the smaller offer row, then refusal).
    chosen = (
        pairs[["person", "row", "createdAt", "outcome"]]
        .drop_duplicates()
        .sort_values(["person", "createdAt", "row", "outcome"], ascending=[True, False, True, True])
        .drop_duplicates("person")
    )
    pairs = pairs.merge(chosen, on=["person", "row", "createdAt", "outcome"])
    relevant = pairs.groupby("person")["row_next"].apply(lambda rows: np.unique(rows.to_numpy()))
    chosen = chosen.sort_values("person")
    outcome = chosen["outcome"].to_numpy(dtype=object)
    offer = chosen["row"].to_numpy(dtype=np.int64)
    lists = [relevant[p] for p in chosen["person"]]
    trigger_programme = offers.programme[offer]
    next_items = sum(len(items) for items in lists)
    other = sum(
        int((offers.programme[items] != code).sum())
        for items, code in zip(lists, trigger_programme, strict=True)
    )
    counts: dict[str, float] = {
        "people": len(chosen),
        "refused": int((outcome == REFUSED).sum()),
        "aged_out": int((outcome == TOO_OLD).sum()),
        "next_applies": next_items,
        "next_in_other_programme_share": other / next_items if next_items else float("nan"),
    }
    return Redirects(chosen["person"].to_numpy(dtype=np.int64), offer, outcome, lists, counts)
