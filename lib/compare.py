"""Previous-period comparison: the same range one day or one week earlier, moved onto today's axis.

`previous_period` fetches the earlier range and shifts its timestamps forward by the same amount,
so that each earlier point sits on the current point it is compared with. `with_change` adds the
earlier value and the change in percent to the current rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from lib.timerange import TimeRange

COMPARISONS: dict[str, float | None] = {
    "none": None,
    "1 day earlier": 86400.0,
    "1 week earlier": 7 * 86400.0,
}


def previous_period(
    fetch: Callable[[TimeRange], pd.DataFrame], time_range: TimeRange, shift_seconds: float
) -> pd.DataFrame:
    """Return `fetch` of the range `shift_seconds` earlier, with timestamps moved forward by
    `shift_seconds` so that they equal the current range's points."""
    if shift_seconds <= 0:
        raise ValueError(f"A previous period lies in the past; got a shift of {shift_seconds!r} s.")
    previous = fetch(time_range.shifted(shift_seconds))
    return shift_forward(previous, shift_seconds, time_range)


def shift_forward(
    frame: pd.DataFrame, shift_seconds: float, time_range: TimeRange | None = None
) -> pd.DataFrame:
    """Return `frame` with its timestamps `shift_seconds` later and `attrs["time_range"]` set to
    `time_range` (the current range), keeping the shift in `attrs["shifted_by"]`."""
    shifted = frame.copy()
    shifted["timestamp"] = shifted["timestamp"] + pd.Timedelta(seconds=shift_seconds)
    shifted.attrs = dict(frame.attrs)
    if time_range is not None:
        shifted.attrs["time_range"] = time_range
    shifted.attrs["shifted_by"] = shift_seconds
    return shifted


def with_change(
    current: pd.DataFrame, previous: pd.DataFrame, keys: Sequence[str]
) -> pd.DataFrame:
    """Return `current` with `previous_value` and `change_percent` (NaN where either value is
    missing or the previous one is 0), matched on timestamp and `keys`."""
    columns = ["timestamp", *keys]
    earlier = previous[[*columns, "value"]].rename(columns={"value": "previous_value"})
    merged = current.merge(earlier, on=columns, how="left", validate="one_to_one")
    before = merged["previous_value"].astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        change = (merged["value"].astype(float) - before) / before.abs() * 100.0
    merged["change_percent"] = change.where(np.isfinite(change))
    merged.attrs = dict(current.attrs)
    return merged


def format_change(change_percent: float) -> str:
    """Format a change for a tooltip: +12.5 %, -3.0 %, or n/a."""
    if change_percent != change_percent:  # NaN
        return "n/a"
    return f"{change_percent:+.1f} %"
