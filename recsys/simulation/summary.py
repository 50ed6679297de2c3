"""Figures that describe a simulated dataset at a glance (what `make run` prints)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from recsys import taxonomy
from recsys.config import EVENTS_FILE, OFFERS_FILE
from recsys.schema import read_table
from recsys.simulation.simulator import read_manifest

NEW_OFFER_WINDOW_DAYS = 30


def summarise(directory: Path) -> dict[str, Any]:
    """Counts by programme, domain and event type, apply rates and the share of new offers.

    `human_events_by_programme` counts prints, clicks, applies and accounts (bots excluded)
    by the programme of the offer they concern.

    Rates use human events only (bots excluded, as for learning). The share of new offers is
    (offers posted in the last 30 days of the simulation) / (offers open at some point of
    those 30 days).

    Raises:
        ValueError: when `directory` holds no finished simulation.
    """
    manifest = read_manifest(directory)
    if manifest is None:
        raise ValueError(f"directory: {directory} holds no finished simulation (no manifest)")
    offers = read_table(Path(directory) / OFFERS_FILE)
    events = pd.read_parquet(Path(directory) / EVENTS_FILE, columns=["type", "isBot", "missionId"])
    human = events.loc[~events["isBot"], "type"].value_counts()
    programme = events["missionId"].map(offers.set_index("id")["type"])
    by_programme = (
        events.loc[~events["isBot"]]
        .groupby([programme[~events["isBot"]], "type"])
        .size()
        .unstack(fill_value=0)
        .reindex(columns=list(taxonomy.EVENT_TYPES), fill_value=0)
    )
    prints, clicks, applies = (int(human.get(kind, 0)) for kind in ("print", "click", "apply"))

    window_end = pd.Timestamp(manifest["end"], tz="UTC") + pd.Timedelta(days=1)
    window_start = window_end - pd.Timedelta(days=NEW_OFFER_WINDOW_DAYS)
    accepted = offers["statusCode"] == taxonomy.STATUS_ACCEPTED
    open_in_window = (
        accepted
        & (offers["postedAt"] < window_end)
        & (offers["endAt"].isna() | (offers["endAt"] >= window_start))
        & (offers["deletedAt"].isna() | (offers["deletedAt"] > window_start))
    )
    new = open_in_window & (offers["postedAt"] >= window_start)
    return {
        "manifest": manifest,
        "offers_by_programme": offers["type"].value_counts().to_dict(),
        "offers_by_domain": offers["domain"].value_counts().to_dict(),
        "events_by_type": events["type"].value_counts().to_dict(),
        "human_events_by_programme": {
            name: {kind: int(n) for kind, n in row.items()} for name, row in by_programme.iterrows()
        },
        "bot_events": int(events["isBot"].sum()),
        "applies_per_print": applies / prints if prints else float("nan"),
        "applies_per_click": applies / clicks if clicks else float("nan"),
        "new_offer_share_last_month": (
            int(new.sum()) / int(open_in_window.sum()) if open_in_window.any() else float("nan")
        ),
    }
