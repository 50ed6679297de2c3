"""Train/test splitters: pure functions of the data and explicit dates (or a seed).

The protocol of this project is temporal: learn from everything before a cutoff, test on the
applications after it, tune on a validation window just before the cutoff. `random_split`
exists only to reproduce published figures on public benchmarks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Self

import numpy as np
import pandas as pd

TIME_COLUMN = "createdAt"


def _times(events: pd.DataFrame, time_column: str) -> pd.Series:
    """The time column, checked: present, datetime, no null (a row must fall on one side)."""
    if time_column not in events.columns:
        raise ValueError(f"events: missing column {time_column!r}")
    times = events[time_column]
    if not pd.api.types.is_datetime64_any_dtype(times):
        raise ValueError(f"events.{time_column}: expected timestamps, got dtype {times.dtype}")
    if times.isna().any():
        raise ValueError(
            f"events.{time_column}: {int(times.isna().sum())} null timestamp(s) cannot be split"
        )
    if times.empty:
        raise ValueError("events: no rows to split")
    return times


def _timestamp(value: pd.Timestamp | str, name: str, times: pd.Series) -> pd.Timestamp:
    """`value` as a Timestamp comparable with `times`; naive vs aware is refused, not guessed."""
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name}: not a timestamp: {value!r}") from error
    if stamp is pd.NaT:
        raise ValueError(f"{name}: not a timestamp: {value!r}")
    data_tz = times.dt.tz
    if (stamp.tz is None) != (data_tz is None):
        raise ValueError(
            f"{name}: {stamp} is {'naive' if stamp.tz is None else 'timezone-aware'} but the "
            f"event times are {'naive' if data_tz is None else f'in {data_tz}'}; "
            "pass a timestamp of the same kind (e.g. pd.Timestamp('2024-05-01', tz='UTC'))"
        )
    return stamp


def temporal_split(
    events: pd.DataFrame,
    cutoff: pd.Timestamp,
    test_end: pd.Timestamp | None = None,
    time_column: str = TIME_COLUMN,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split events at `cutoff`: train strictly before it, test in [cutoff, test_end).

    Rows at or after `test_end` fall in neither part (they are the future of the test
    window); with `test_end=None`, train and test partition the input. Row order and index
    are kept so each part maps back to the input.

    Raises:
        ValueError: missing or null time column, cutoff with no event before it or none at or
            after it, or `test_end` not after `cutoff`.
    """
    times = _times(events, time_column)
    cutoff = _timestamp(cutoff, "cutoff", times)
    first, last = times.min(), times.max()
    if cutoff <= first:
        raise ValueError(f"cutoff: {cutoff} is not after the first event ({first}); train empty")
    if cutoff > last:
        raise ValueError(f"cutoff: {cutoff} is after the last event ({last}); test empty")
    in_train = (times < cutoff).to_numpy()
    in_test = ~in_train
    if test_end is not None:
        test_end = _timestamp(test_end, "test_end", times)
        if test_end <= cutoff:
            raise ValueError(f"test_end: {test_end} must be after cutoff {cutoff}")
        in_test &= (times < test_end).to_numpy()
    return events[in_train], events[in_test]


@dataclass(frozen=True)
class SplitDates:
    """The dates of one evaluation protocol, recorded with every artefact built on it.

    Tuning trains on [train_start, validation_start) and validates on [validation_start,
    cutoff); the final evaluation trains on everything before `cutoff` and tests on
    [cutoff, test_end).
    """

    train_start: pd.Timestamp
    validation_start: pd.Timestamp
    cutoff: pd.Timestamp
    test_end: pd.Timestamp

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, pd.Timestamp) or value is pd.NaT:
                raise ValueError(f"SplitDates.{field.name}: expected a Timestamp, got {value!r}")
        if not self.train_start <= self.validation_start < self.cutoff < self.test_end:
            raise ValueError(
                "SplitDates: expected train_start <= validation_start < cutoff < test_end, got "
                f"{self.train_start}, {self.validation_start}, {self.cutoff}, {self.test_end}"
            )

    def to_dict(self) -> dict[str, str]:
        """ISO strings, for JSON metadata and MLflow params."""
        return {name: value.isoformat() for name, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Self:
        """Rebuild from `to_dict` output, refusing missing or unknown keys."""
        expected = {field.name for field in fields(cls)}
        if set(values) != expected:
            raise ValueError(f"SplitDates: expected keys {sorted(expected)}, got {sorted(values)}")
        parsed: dict[str, pd.Timestamp] = {}
        for name in sorted(expected):
            try:
                parsed[name] = pd.Timestamp(values[name])
            except (TypeError, ValueError) as error:
                raise ValueError(f"SplitDates.{name}: not a timestamp: {values[name]!r}") from error
        return cls(**parsed)

    def test_split(
        self, events: pd.DataFrame, time_column: str = TIME_COLUMN
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(train, test): everything before the cutoff, and [cutoff, test_end)."""
        return temporal_split(events, self.cutoff, self.test_end, time_column)

    def validation_split(
        self, events: pd.DataFrame, time_column: str = TIME_COLUMN
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(train, validation) for tuning: before validation_start, then up to the cutoff."""
        return temporal_split(events, self.validation_start, self.cutoff, time_column)


def split_dates(
    events: pd.DataFrame,
    test_days: int = 42,
    validation_days: int = 28,
    time_column: str = TIME_COLUMN,
) -> SplitDates:
    """Protocol dates derived from the data: the last `test_days` test, the `validation_days`
    before them validate.

    Windows are whole days: `test_end` is the midnight after the last event (so the last
    event is tested), `cutoff = test_end - test_days`, `validation_start = cutoff -
    validation_days`; `train_start` is the first event.

    Raises:
        ValueError: non-positive window lengths, or data too short to leave training events
            before the validation window.
    """
    for name, days in (("test_days", test_days), ("validation_days", validation_days)):
        if isinstance(days, bool) or not isinstance(days, int | np.integer) or days < 1:
            raise ValueError(f"{name}: expected a positive number of days, got {days!r}")
    times = _times(events, time_column)
    first = times.min()
    test_end = times.max().floor("D") + pd.Timedelta(days=1)
    cutoff = test_end - pd.Timedelta(days=int(test_days))
    validation_start = cutoff - pd.Timedelta(days=int(validation_days))
    if validation_start <= first:
        raise ValueError(
            f"events: data from {first} to {times.max()} is too short for {validation_days} "
            f"validation and {test_days} test days with training events before them"
        )
    return SplitDates(first, validation_start, cutoff, test_end)


def random_split(
    interactions: pd.DataFrame, test_frac: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-interaction random split, for comparing with published results (e.g. MovieLens).

    Unfit for this domain: test interactions are scattered through time, so a model learns
    from the future it is asked to predict and offers that no longer exist look recommendable.
    Use `temporal_split` for every figure about this platform.

    Exactly round(test_frac · n) rows go to test, chosen by a seeded permutation; both parts
    keep the input's row order and index.

    Raises:
        ValueError: `test_frac` not in (0, 1), or too few rows for both parts to be non-empty.
    """
    if (
        isinstance(test_frac, bool)
        or not isinstance(test_frac, int | float)
        or not (0 < test_frac < 1)
    ):
        raise ValueError(f"test_frac: expected a number in (0, 1), got {test_frac!r}")
    n = len(interactions)
    n_test = round(test_frac * n)
    if not 0 < n_test < n:
        raise ValueError(
            f"interactions: {n} rows give {n_test} test rows at test_frac={test_frac}; "
            "both parts must be non-empty"
        )
    in_test = np.zeros(n, dtype=bool)
    in_test[np.random.default_rng(seed).permutation(n)[:n_test]] = True
    return interactions[~in_test], interactions[in_test]
