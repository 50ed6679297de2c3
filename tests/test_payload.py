"""The display columns of a catalog (`serving.payload`): JSON-ready values, None where missing."""

from __future__ import annotations

import pandas as pd

from serving.catalog import Catalog
from serving.payload import DISPLAY_FIELDS, display, display_columns
from tests.fixtures import make_offers_frame

AT = int(pd.Timestamp("2026-01-01", tz="UTC").timestamp())


def test_display_columns_hold_json_ready_values_and_none_where_missing() -> None:
    """Dates print as `Timestamp.isoformat` does (microseconds only when there are some),
    `places` as ints, missing values of every type as None."""
    offers = make_offers_frame(
        3,
        title=["Jardin", None, "Lecture"],
        places=[3, None, 12],
        lat=[45.43, None, 48.85],
        startAt=[
            pd.Timestamp("2026-01-10 09:00", tz="UTC"),
            pd.Timestamp("2026-01-10 09:00:00.250", tz="UTC"),
            None,
        ],
        endAt=None,
        postedAt=pd.Timestamp("2025-12-01", tz="UTC"),
    )
    catalog = Catalog.build(offers, "display", at=AT)[0]
    columns = display_columns(catalog)
    order = [catalog.row[f"o{i}"] for i in range(3)]  # the catalog stores by latitude
    by_offer = {field: [values[row] for row in order] for field, values in columns.items()}
    assert by_offer["title"] == ["Jardin", None, "Lecture"]
    assert by_offer["places_left"] == [3, None, 12]
    assert all(type(value) is int for value in by_offer["places_left"][::2])
    assert by_offer["lat"] == [45.43, None, 48.85]
    assert by_offer["start_at"] == [
        "2026-01-10T09:00:00+00:00",
        "2026-01-10T09:00:00.250000+00:00",
        None,
    ]
    assert by_offer["start_at"][:2] == [
        stamp.isoformat() for stamp in offers["startAt"].iloc[:2].map(pd.Timestamp)
    ]
    assert by_offer["end_at"] == [None, None, None]
    assert set(columns) == set(DISPLAY_FIELDS)
    shown = display(catalog, [order[0]], [["title", "places_left"]], [-1])
    assert shown == [{"title": "Jardin", "places_left": 3}]
