"""Descriptive figures of a dataset for analysts: counts, funnel, position bias, shares.

The notebooks and the HTML report both call these functions, so a number read in a notebook
is the number printed in a report. Every function takes the canonical tables
(`recsys.schema`) as DataFrames and returns a small DataFrame or a JSON-able dict. Bots are
left out of every rate (as they are of learning); counts say how many there were.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys import config, taxonomy
from recsys.geo import haversine_km

FUNNEL_STEPS: tuple[str, ...] = ("print", "click", "apply")
TOP_PUBLISHERS = 10
MANIFEST_FILE = "manifest.json"


@dataclass(frozen=True)
class Dataset:
    """The three canonical tables of a dataset folder, and its simulation manifest if any."""

    offers: pd.DataFrame
    events: pd.DataFrame
    profiles: pd.DataFrame
    manifest: dict[str, Any] | None
    folder: Path


def read_dataset(folder: Path | str) -> Dataset:
    """Read a dataset folder written by `recsys simulate` or `recsys ingest`.

    Raises:
        FileNotFoundError: naming the folder and the missing table.
    """
    folder = Path(folder)
    names = (config.OFFERS_FILE, config.EVENTS_FILE, config.PROFILES_FILE)
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"dataset folder {folder}: missing {', '.join(missing)} "
            "(simulate with `recsys simulate` or ingest exports first)"
        )
    manifest_path = folder / MANIFEST_FILE
    manifest = json.loads(manifest_path.read_text("utf-8")) if manifest_path.is_file() else None
    offers, events, profiles = (pd.read_parquet(folder / name) for name in names)
    return Dataset(offers, events, profiles, manifest, folder)


def programme_label(programme: str) -> str:
    """French label of a programme (the raw value when unknown)."""
    return taxonomy.PROGRAMME_LABELS_FR.get(programme, programme)


def domain_label(domain: str) -> str:
    """French label of a domain (the raw value when unknown)."""
    return taxonomy.DOMAIN_LABELS_FR.get(domain, domain)


def _human(events: pd.DataFrame) -> pd.DataFrame:
    return events[~events["isBot"].fillna(False).astype(bool)]


def event_counts(events: pd.DataFrame) -> pd.DataFrame:
    """Events by type (rows, in `taxonomy.EVENT_TYPES` order): all, bots, humans."""
    bots = events["isBot"].fillna(False).astype(bool)
    frame = pd.DataFrame(
        {
            "all": events["type"].value_counts(),
            "bots": events.loc[bots, "type"].value_counts(),
        }
    )
    order = [kind for kind in taxonomy.EVENT_TYPES if kind in frame.index]
    order += sorted(set(frame.index) - set(order))
    frame = frame.reindex(order).fillna(0).astype(int)
    frame["humans"] = frame["all"] - frame["bots"]
    frame.index.name = "type"
    return frame


def offer_counts(offers: pd.DataFrame, column: str) -> pd.DataFrame:
    """Offers by `type` (programme), `domain`, `region` or any column: count, share, label.

    Programme and domain values carry their French label; rows are sorted by count.
    """
    if column not in offers.columns:
        raise ValueError(f"column: offers have no column {column!r}")
    counts = offers[column].fillna("(inconnu)").value_counts()
    frame = pd.DataFrame({"offers": counts, "share": counts / max(len(offers), 1)})
    labeller = {"type": programme_label, "domain": domain_label}.get(column, str)
    frame.insert(0, "label", [labeller(value) for value in frame.index])
    frame.index.name = column
    return frame


def funnel(
    events: pd.DataFrame, offers: pd.DataFrame | None = None, by: str | None = None
) -> pd.DataFrame:
    """Prints, clicks and applies (humans only) with the step rates, overall or by group.

    `click_rate` = clicks / prints, `apply_rate` = applies / clicks, `apply_per_print` =
    applies / prints. Counts, not chained journeys: a search landing is a click without a
    print, so the rates are ratios of totals. `by` is an event column (`source`) or
    `programme` (the offer's type, which needs `offers`).
    """
    human = _human(events)
    human = human[human["type"].isin(FUNNEL_STEPS)]
    if by is None:
        keys = pd.Series("all", index=human.index, name="group")
    elif by == "programme":
        if offers is None:
            raise ValueError("offers: needed to group the funnel by programme")
        programme = offers.drop_duplicates("id").set_index("id")["type"]
        keys = human["missionId"].map(programme).fillna("(inconnu)").map(programme_label)
    elif by in human.columns:
        keys = human[by].fillna("(inconnu)")
    else:
        raise ValueError(f"by: expected None, 'programme' or an event column, got {by!r}")
    table = pd.crosstab(keys.rename(by or "group"), human["type"])
    table = table.reindex(columns=list(FUNNEL_STEPS), fill_value=0)
    table.columns = ["prints", "clicks", "applies"]
    table.columns.name = None
    with np.errstate(divide="ignore", invalid="ignore"):
        table["click_rate"] = table["clicks"] / table["prints"].replace(0, np.nan)
        table["apply_rate"] = table["applies"] / table["clicks"].replace(0, np.nan)
        table["apply_per_print"] = table["applies"] / table["prints"].replace(0, np.nan)
    return table.sort_values("prints", ascending=False)


def position_bias(events: pd.DataFrame, max_position: int = 20) -> pd.DataFrame:
    """Click-through rate by rank on the page (humans only), 1 to `max_position`.

    `ctr` = clicks at the position / prints at the position; `relative_ctr` divides by the
    first position's, the usual read of how much lower slots are seen.
    """
    if max_position < 1:
        raise ValueError(f"max_position: expected at least 1, got {max_position}")
    human = _human(events)
    placed = human[human["type"].isin(("print", "click")) & human["position"].notna()]
    placed = placed[(placed["position"] >= 1) & (placed["position"] <= max_position)]
    table = pd.crosstab(placed["position"].astype(int), placed["type"])
    table = table.reindex(
        index=range(1, max_position + 1), columns=["print", "click"], fill_value=0
    )
    table.columns = ["prints", "clicks"]
    table.columns.name = None
    table.index.name = "position"
    table["ctr"] = table["clicks"] / table["prints"].replace(0, np.nan)
    first = table["ctr"].iloc[0]
    table["relative_ctr"] = table["ctr"] / first if first and np.isfinite(first) else np.nan
    return table


def open_offers(offers: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.Series:
    """Accepted offers one could apply to at some point in [start, end): the catalog then."""
    return (
        (offers["statusCode"] == taxonomy.STATUS_ACCEPTED)
        & (offers["postedAt"] < end)
        & (offers["endAt"].isna() | (offers["endAt"] >= start))
        & (offers["deletedAt"].isna() | (offers["deletedAt"] >= start))
    )


def window_applies(events: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Human applies (any status) created in [start, end)."""
    human = _human(events)
    inside = (human["createdAt"] >= start) & (human["createdAt"] < end)
    return human[(human["type"] == "apply") & inside]


def _shares(catalog: pd.Series, applied: pd.Series, index: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "offers_open": catalog.value_counts().reindex(index, fill_value=0),
            "applies": applied.value_counts().reindex(index, fill_value=0),
        }
    )
    frame["catalog_share"] = frame["offers_open"] / max(int(frame["offers_open"].sum()), 1)
    frame["apply_share"] = frame["applies"] / max(int(frame["applies"].sum()), 1)
    return frame


def programme_shares(
    offers: pd.DataFrame, events: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp
) -> pd.DataFrame:
    """Per programme: share of the open catalog and of the window's applies.

    What a fair exposure is judged against: a programme's share of recommendation slots next
    to its share of what could be applied to and of what people did apply to.
    """
    opened = offers[open_offers(offers, start, end)]
    programme = offers.drop_duplicates("id").set_index("id")["type"]
    applied = window_applies(events, start, end)["missionId"].map(programme).dropna()
    index = list(taxonomy.PROGRAMMES)
    index += sorted(set(opened["type"].dropna()) - set(index))
    frame = _shares(opened["type"], applied, index)
    frame.insert(0, "label", [programme_label(value) for value in frame.index])
    frame.index.name = "programme"
    return frame


def publisher_shares(
    offers: pd.DataFrame,
    events: pd.DataFrame,
    start: pd.Timestamp,
    end: pd.Timestamp,
    top: int = TOP_PUBLISHERS,
) -> pd.DataFrame:
    """The `top` publishers of the open catalog: their catalog share and share of applies."""
    name = offers["publisherName"].fillna(offers["publisherId"]).fillna("(inconnu)")
    opened = open_offers(offers, start, end)
    publisher = pd.Series(name.to_numpy(), index=offers["id"]).groupby(level=0).first()
    applied = window_applies(events, start, end)["missionId"].map(publisher).dropna()
    index = name[opened].value_counts().index.tolist()
    frame = _shares(name[opened], applied, index).head(top)
    frame.index.name = "publisher"
    return frame


def apply_distances_km(
    offers: pd.DataFrame,
    events: pd.DataFrame,
    profiles: pd.DataFrame,
    start: pd.Timestamp,
    end: pd.Timestamp,
) -> pd.Series:
    """Distance from each applicant to the offer they applied to in [start, end), in km.

    Only known people with coordinates and offers with a place count (remote offers and
    anonymous visitors have no distance).
    """
    applies = window_applies(events, start, end)
    people = profiles.drop_duplicates("userId").set_index("userId")
    places = offers.drop_duplicates("id").set_index("id")
    person, offer = applies["userId"], applies["missionId"]
    km = np.asarray(
        haversine_km(
            person.map(people["lat"]).to_numpy(dtype=float, na_value=np.nan),
            person.map(people["lon"]).to_numpy(dtype=float, na_value=np.nan),
            offer.map(places["lat"]).to_numpy(dtype=float, na_value=np.nan),
            offer.map(places["lon"]).to_numpy(dtype=float, na_value=np.nan),
        ),
        dtype=float,
    )
    return pd.Series(km[np.isfinite(km)], name="distance_km")


def applicant_radius_km(
    events: pd.DataFrame, profiles: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp
) -> pd.Series:
    """The declared search radius of each person who applied in [start, end) (one per person)."""
    people = window_applies(events, start, end)["userId"].dropna().unique()
    radius = profiles.drop_duplicates("userId").set_index("userId")["radiusKm"]
    values = radius.reindex(people).to_numpy(dtype=float)
    return pd.Series(values[np.isfinite(values)], name="radius_km")


def _stats(values: pd.Series) -> dict[str, float | int | None]:
    if values.empty:
        return {"mean": None, "median": None, "n": 0}
    return {"mean": float(values.mean()), "median": float(values.median()), "n": len(values)}


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-able rows (numpy scalars as Python ones, NaN as None), the index first."""
    return json.loads(frame.reset_index().to_json(orient="records"))


def dataset_summary(dataset: Dataset, start: pd.Timestamp, end: pd.Timestamp) -> dict[str, Any]:
    """What the report's exposure and data sections need, for the evaluated window [start, end).

    Keys: `folder`, `events_by_type` (rows of event_counts), `funnel` (overall), `programmes`
    and `publishers` (catalog and apply shares), `radius_km` and `apply_distance_km` (mean,
    median, n), `new_offer_share` (open offers posted in the window / open offers).
    """
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    offers, events, profiles = dataset.offers, dataset.events, dataset.profiles
    opened = open_offers(offers, start, end)
    new = opened & (offers["postedAt"] >= start)
    overall = funnel(events)
    steps = overall.iloc[0] if len(overall) else pd.Series(dtype=float)
    return {
        "folder": str(dataset.folder),
        "window": {"start": str(start), "end": str(end)},
        "events_by_type": _records(event_counts(events)),
        "funnel": {key: (None if pd.isna(value) else float(value)) for key, value in steps.items()},
        "programmes": _records(programme_shares(offers, events, start, end)),
        "publishers": _records(publisher_shares(offers, events, start, end)),
        "radius_km": _stats(applicant_radius_km(events, profiles, start, end)),
        "apply_distance_km": _stats(apply_distances_km(offers, events, profiles, start, end)),
        "offers_open": int(opened.sum()),
        "new_offer_share": float(new.sum() / opened.sum()) if opened.any() else None,
    }
