"""`recsys.attribution`: hand-built lists and events, each rule checked by hand."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from recsys.attribution import DEFAULT_WINDOW, attribute

T0 = pd.Timestamp("2025-03-01 12:00", tz="UTC")
DAY = pd.Timedelta(days=1)


def _lists() -> pd.DataFrame:
    """L1 (u1: o1, o2) at T0; L2 (u1: o2, o3) a day later; L3 and L4 (u2: o1) at T0 + 2 days,
    the same instant; L5 (u3: o4) and L6 (u4: o4) at T0."""
    rows = [
        ("L1", T0, "u1", ["o1", "o2"]),
        ("L2", T0 + DAY, "u1", ["o2", "o3"]),
        ("L3", T0 + 2 * DAY, "u2", ["o1"]),
        ("L4", T0 + 2 * DAY, "u2", ["o1"]),
        ("L5", T0, "u3", ["o4"]),
        ("L6", T0, "u4", ["o4"]),
    ]
    return pd.DataFrame(
        [
            {"requestId": rid, "createdAt": at, "userId": user, "missionId": offer, "position": i}
            for rid, at, user, offers in rows
            for i, offer in enumerate(offers, start=1)
        ]
    )


def _event(id_: str, type_: str, user: str | None, offer: str, at: pd.Timestamp, **more) -> dict:
    return {
        "id": id_,
        "type": type_,
        "userId": user,
        "missionId": offer,
        "createdAt": at,
        "requestId": more.get("requestId"),
        "clickId": more.get("clickId"),
        "isBot": more.get("isBot", False),
    }


def _events() -> pd.DataFrame:
    h = pd.Timedelta(hours=1)
    return pd.DataFrame(
        [
            _event("a1", "apply", "u1", "o1", T0 + 3 * DAY, requestId="L1"),  # chain
            _event("a2", "apply", "u1", "o3", T0 + 3 * DAY, requestId="L1"),  # L1 lacks o3
            _event("c1", "click", "u1", "o2", T0 + DAY + h, requestId="L2", clickId="c1"),
            _event("a3", "apply", None, "o2", T0 + DAY + 2 * h, clickId="c1"),  # via the click
            _event("a5", "apply", "u2", "o1", T0 + 2 * DAY + h),  # L3 and L4 tie: L4
            _event("a5", "apply", "u2", "o1", T0 + 2 * DAY + h),  # the same event resent
            _event("a7", "apply", "u2", "o1", T0 + 3 * DAY),  # u2 applied to o1 already
            _event("a8", "apply", "u1", "o2", T0 + DAY, isBot=True),
            _event("a9", "apply", "u1", "o2", T0 - h),  # before any list
            _event("a10", "apply", "u3", "o4", T0 + 7 * DAY + pd.Timedelta(seconds=1)),
            _event("a11", "apply", "u4", "o4", T0 + 7 * DAY),  # the window's edge: in
            _event("a12", "apply", "u1", "o9", T0 + DAY, requestId="nowhere"),
            _event("p1", "print", "u1", "o1", T0, requestId="L1"),
        ]
    )


def test_applies_follow_the_chain_then_the_window() -> None:
    credited = attribute(_events(), _lists()).set_index("id")
    got = {
        key: (row.requestId, None if pd.isna(row.position) else int(row.position), row.method)
        for key, row in credited.iterrows()
    }
    assert got == {
        "a1": ("L1", 1, "request"),
        "a2": ("L2", 2, "window"),
        "a3": ("L2", 1, "click"),
        "a5": ("L4", 1, "window"),
        "a9": (None, None, None),
        "a10": (None, None, None),
        "a11": ("L6", 1, "window"),
        "a12": (None, None, None),
    }
    assert credited.index.is_unique  # a5 once; a7 (a second apply) and a8 (a bot) not at all


def test_clicks_are_credited_by_their_request() -> None:
    credited = attribute(_events(), _lists(), kind="click")
    assert credited[["id", "requestId", "method"]].values.tolist() == [["c1", "L2", "request"]]


def test_the_window_is_configurable() -> None:
    assert timedelta(days=7) == DEFAULT_WINDOW
    short = attribute(_events(), _lists(), window=timedelta(days=1)).set_index("id")
    assert short.loc["a2", "requestId"] is None  # L2 is two days before
    assert short.loc["a5", "requestId"] == "L4"  # an hour: still in
    assert short.loc["a11", "requestId"] is None
    with pytest.raises(ValueError, match="window: must be positive"):
        attribute(_events(), _lists(), window=timedelta(0))


def test_nothing_to_attribute() -> None:
    empty_lists = _lists().iloc[:0]
    credited = attribute(_events(), empty_lists)
    assert credited["method"].isna().all() and len(credited) == 8
    assert attribute(_events().iloc[:0], _lists()).empty
    no_clicks = _events()[_events()["type"] != "click"]  # a3 names a click never received
    credited = attribute(no_clicks, _lists()).set_index("id")
    assert credited.loc["a3", "method"] is None and credited.loc["a1", "requestId"] == "L1"
