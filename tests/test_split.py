"""Splitters: partitions, boundaries, determinism and clear errors."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.split import SplitDates, random_split, split_dates, temporal_split


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


@pytest.fixture
def events() -> pd.DataFrame:
    times = ["2024-01-01", "2024-02-10", "2024-03-01", "2024-03-01", "2024-03-20", "2024-04-30"]
    return pd.DataFrame(
        {"id": list("abcdef"), "createdAt": pd.to_datetime(times, utc=True)},
        index=[10, 11, 12, 13, 14, 15],
    )


def test_temporal_split_boundaries(events: pd.DataFrame) -> None:
    train, test = temporal_split(events, utc("2024-03-01"))
    # Events exactly at the cutoff belong to test.
    assert train["id"].tolist() == ["a", "b"]
    assert test["id"].tolist() == ["c", "d", "e", "f"]
    assert train.index.tolist() == [10, 11]  # index kept to map back to the input


def test_temporal_split_with_test_end(events: pd.DataFrame) -> None:
    train, test = temporal_split(events, utc("2024-03-01"), test_end=utc("2024-04-30"))
    assert train["id"].tolist() == ["a", "b"]
    assert test["id"].tolist() == ["c", "d", "e"]  # "f" at test_end is excluded


def test_temporal_split_errors(events: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="train empty"):
        temporal_split(events, utc("2024-01-01"))
    with pytest.raises(ValueError, match="test empty"):
        temporal_split(events, utc("2024-05-01"))
    with pytest.raises(ValueError, match="test_end"):
        temporal_split(events, utc("2024-03-01"), test_end=utc("2024-03-01"))
    with pytest.raises(ValueError, match="missing column 'postedAt'"):
        temporal_split(events, utc("2024-03-01"), time_column="postedAt")
    with pytest.raises(ValueError, match="naive"):
        temporal_split(events, pd.Timestamp("2024-03-01"))
    with_null = events.assign(createdAt=events["createdAt"].where(events["id"] != "c"))
    with pytest.raises(ValueError, match="null"):
        temporal_split(with_null, utc("2024-03-01"))


def test_split_dates_from_data(events: pd.DataFrame) -> None:
    dates = split_dates(events, test_days=14, validation_days=28)
    # Last event 2024-04-30 → test_end is the midnight after it, 2024-05-01; cutoff 14 days
    # earlier, 2024-04-17; validation starts 28 days before that, 2024-03-20.
    assert dates == SplitDates(
        train_start=utc("2024-01-01"),
        validation_start=utc("2024-03-20"),
        cutoff=utc("2024-04-17"),
        test_end=utc("2024-05-01"),
    )
    train, test = dates.test_split(events)
    assert test["id"].tolist() == ["f"]
    assert len(train) == 5
    fit, validation = dates.validation_split(events)
    assert fit["id"].tolist() == ["a", "b", "c", "d"]
    assert validation["id"].tolist() == ["e"]


def test_split_dates_round_trip_and_errors(events: pd.DataFrame) -> None:
    dates = split_dates(events)
    assert dates.to_dict()["cutoff"] == "2024-03-20T00:00:00+00:00"  # 2024-05-01 - 42 days
    assert SplitDates.from_dict(dates.to_dict()) == dates
    with pytest.raises(ValueError, match="too short"):
        split_dates(events, test_days=100, validation_days=30)
    with pytest.raises(ValueError, match="test_days"):
        split_dates(events, test_days=0)
    with pytest.raises(ValueError, match="expected keys"):
        SplitDates.from_dict({"cutoff": "2024-01-01"})
    with pytest.raises(ValueError, match="validation_start < cutoff"):
        SplitDates(utc("2024-01-01"), utc("2024-03-01"), utc("2024-02-01"), utc("2024-04-01"))


def test_random_split_partitions_and_is_seeded() -> None:
    interactions = pd.DataFrame({"user": range(100), "item": range(100, 200)})
    train, test = random_split(interactions, 0.2, seed=7)
    assert len(test) == 20
    assert sorted(train.index.tolist() + test.index.tolist()) == list(range(100))
    again_train, again_test = random_split(interactions, 0.2, seed=7)
    pd.testing.assert_frame_equal(again_test, test)
    pd.testing.assert_frame_equal(again_train, train)
    _, other = random_split(interactions, 0.2, seed=8)
    assert other.index.tolist() != test.index.tolist()


@pytest.mark.parametrize("frac", [0, 1, -0.1, 1.5])
def test_random_split_rejects_fraction(frac: float) -> None:
    with pytest.raises(ValueError, match="test_frac"):
        random_split(pd.DataFrame({"a": range(10)}), frac, seed=0)


def test_random_split_rejects_too_few_rows() -> None:
    with pytest.raises(ValueError, match="both parts"):
        random_split(pd.DataFrame({"a": range(2)}), 0.1, seed=0)


# Whole-minute offsets from a fixed origin, so collisions with the cutoff are frequent.
ORIGIN = utc("2024-01-01")
offsets = st.lists(st.integers(0, 60), min_size=2, max_size=40)


@settings(max_examples=60, deadline=None)
@given(minutes=offsets, data=st.data())
def test_temporal_split_partitions_random_times(minutes: list[int], data: st.DataObject) -> None:
    events = pd.DataFrame({"createdAt": ORIGIN + pd.to_timedelta(minutes, unit="min")})
    first, last = min(minutes), max(minutes)
    if first == last:
        with pytest.raises(ValueError):
            temporal_split(events, ORIGIN + pd.Timedelta(minutes=first))
        return
    cutoff = ORIGIN + pd.Timedelta(minutes=data.draw(st.integers(first + 1, last)))
    train, test = temporal_split(events, cutoff)
    # A partition: every row exactly once.
    assert sorted(train.index.tolist() + test.index.tolist()) == list(range(len(events)))
    assert (train["createdAt"] < cutoff).all()
    assert (test["createdAt"] >= cutoff).all()
    assert len(train) > 0 and len(test) > 0


@settings(max_examples=40, deadline=None)
@given(minutes=offsets)
def test_split_dates_windows_hold_on_random_times(minutes: list[int]) -> None:
    days = [m * 1440 for m in minutes]  # spread the offsets as days
    events = pd.DataFrame({"createdAt": ORIGIN + pd.to_timedelta(days, unit="min")})
    try:
        dates = split_dates(events, test_days=10, validation_days=5)
    except ValueError:
        assert max(minutes) - min(minutes) < 15  # only refused when the span is too short
        return
    train, test = dates.test_split(events)
    assert len(train) + len(test) == len(events)  # test_end is past the last event
    assert (test["createdAt"] >= dates.cutoff).all()
    assert (train["createdAt"] < dates.cutoff).all()
    assert dates.test_end - dates.cutoff == pd.Timedelta(days=10)
    assert dates.cutoff - dates.validation_start == pd.Timedelta(days=5)
