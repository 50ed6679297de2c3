"""Which served list led to each click and application: the rules of DOMAIN §6, as pure
functions over an events table and a table of logged lists.

Rules, for each non-bot event of the kind attributed (`apply`, or `click`):

1. **Chain.** The event's `requestId`, when a logged list of that id holds the event's offer
   (`method` "request"). Else, for an apply, its `clickId`: the click it names (the click
   whose `clickId`, or else `id`, equals it) and that click's `requestId`, under the same
   condition (`method` "click"). A list that does not hold the offer did not lead to it.
2. **Window.** Else the latest list shown to the same visitor (`userId`, as both tables store
   it) that holds the offer, logged at most `window` before the event and not after it
   (`method` "window"); of lists logged at the same instant, the greatest `requestId`.
3. Else the event is not attributed (`requestId` null, `method` null).

No event is credited twice: each event id is credited once (the first row of an id kept),
and a visitor's second application to the same offer is a duplicate (the front reporting
an application again, a status change sent as a new event), not credited.

Tables: events with at least `id`, `type`, `createdAt`, `missionId`, `userId`, `requestId`,
`clickId`, `isBot` (the canonical events table, `recsys.schema`); lists with one row per
listed offer: `requestId`, `createdAt`, `userId`, `missionId`, `position` (the service's rank
log, `EventStore.read_rankings`), other columns carried along.
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd

DEFAULT_WINDOW = timedelta(days=7)
METHODS = ("request", "click", "window")
CREDIT_COLUMNS = ("id", "userId", "missionId", "createdAt", "requestId", "position", "method")


def _utc(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, utc=True).astype("datetime64[ns, UTC]")


def _targets(events: pd.DataFrame, kind: str) -> pd.DataFrame:
    """The non-bot events of `kind`, one per id, duplicates of an application removed."""
    chosen = events[(events["type"] == kind) & ~events["isBot"].fillna(False).astype(bool)]
    chosen = chosen.drop_duplicates("id").copy()
    chosen["createdAt"] = _utc(chosen["createdAt"])
    chosen = chosen.sort_values(["createdAt", "id"], kind="stable")
    if kind == "apply":
        known = chosen["userId"].notna()
        repeated = chosen[known].duplicated(["userId", "missionId"])
        chosen = chosen.drop(index=repeated[repeated].index)
    return chosen.reset_index(drop=True)


def _chained(targets: pd.DataFrame, request_ids: pd.Series, items: pd.DataFrame) -> pd.Series:
    """Each target's position in the list `request_ids` names when it holds the target's offer
    (NaN otherwise)."""
    keys = pd.DataFrame(  # object keys: ids that are all missing would be float
        {"requestId": request_ids.astype(object).to_numpy(), "missionId": targets["missionId"]}
    )
    found = keys.merge(
        items[["requestId", "missionId", "position"]], on=["requestId", "missionId"], how="left"
    )
    return pd.Series(found["position"].to_numpy(), index=targets.index)


def attribute(
    events: pd.DataFrame,
    lists: pd.DataFrame,
    kind: str = "apply",
    window: timedelta = DEFAULT_WINDOW,
) -> pd.DataFrame:
    """One row per attributable event of `kind` (see the module docstring for the rules):
    `CREDIT_COLUMNS`, `requestId` and `position` those of the credited list (null when none).

    Raises:
        ValueError: a window that is not positive.
    """
    if window <= timedelta(0):
        raise ValueError(f"window: must be positive, got {window}")
    targets = _targets(events, kind)
    items = lists.drop_duplicates(["requestId", "missionId"]).copy()
    items["createdAt"] = _utc(items["createdAt"])
    out = targets[["id", "userId", "missionId", "createdAt"]].copy()
    out["requestId"] = pd.Series([None] * len(out), dtype=object)
    out["position"] = float("nan")
    out["method"] = pd.Series([None] * len(out), dtype=object)

    def credit(mask: pd.Series, request_ids: pd.Series, positions: pd.Series, how: str) -> None:
        mask = mask & out["method"].isna()
        out.loc[mask, "requestId"] = request_ids[mask]
        out.loc[mask, "position"] = positions[mask]
        out.loc[mask, "method"] = how

    direct = targets["requestId"]
    positions = _chained(targets, direct, items)
    credit(positions.notna(), direct, positions, "request")

    if kind == "apply" and "clickId" in targets:
        clicks = events[events["type"] == "click"]
        by_click = pd.concat(
            [
                clicks.dropna(subset=["clickId"]).set_index("clickId")["requestId"],
                clicks.set_index("id")["requestId"],
            ]
        )
        by_click = by_click[~by_click.index.duplicated()]
        via = targets["clickId"].map(by_click)
        positions = _chained(targets, via, items)
        credit(positions.notna(), via, positions, "click")

    pending = out[out["method"].isna() & out["userId"].notna()]
    if len(pending) and len(items):
        shown = items.dropna(subset=["userId"]).sort_values(
            ["createdAt", "requestId"], kind="stable"
        )
        shown = shown.rename(columns={"requestId": "listId", "createdAt": "listedAt"})
        found = pd.merge_asof(
            pending[["userId", "missionId", "createdAt"]]
            .reset_index()
            .sort_values("createdAt", kind="stable"),
            shown[["userId", "missionId", "listedAt", "listId", "position"]],
            left_on="createdAt",
            right_on="listedAt",
            by=["userId", "missionId"],
            direction="backward",
            tolerance=pd.Timedelta(window),
        ).set_index("index")
        found = found.reindex(out.index)
        credit(found["listId"].notna(), found["listId"], found["position"], "window")
    out["position"] = out["position"].astype("Int64")
    return out[list(CREDIT_COLUMNS)]
