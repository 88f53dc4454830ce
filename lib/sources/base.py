"""The interface every metric source implements, and the frame shape it returns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from lib.signals import SIGNALS
from lib.timerange import TimeRange

FRAME_COLUMNS = ("timestamp", "system", "signal", "value", "unit")


@dataclass(frozen=True)
class Snapshot:
    """Current values of one system: signal name -> value (NaN = no data), plus facts the health
    rules need. Times are epoch seconds."""

    system: str
    values: dict[str, float]
    availability: float | None
    process_start_time: float | None
    last_scrape_at: float | None
    last_success_at: float | None
    last_error: str | None
    # Warnings the source returned with the values, such as Prometheus's response warnings.
    warnings: Sequence[str] = ()


class Source(Protocol):
    """A place the app reads signals from."""

    label: str

    def signals(
        self, systems: Sequence[str], time_range: TimeRange, signals: Sequence[str]
    ) -> pd.DataFrame:
        """Return a long frame (FRAME_COLUMNS) of `signals` for `systems` at the range's points."""
        ...

    def snapshot(self, system: str, time_range: TimeRange, now: float) -> Snapshot:
        """Return current values of `system` and its availability over `time_range`."""
        ...


def signal_frame(
    system: str, signal: str, points: np.ndarray, values: np.ndarray
) -> pd.DataFrame:
    """Return one system's one signal as a long frame."""
    return pd.DataFrame(
        {
            "timestamp": pd.to_datetime(points, unit="s", utc=True),
            "system": system,
            "signal": signal,
            "value": values.astype(float),
            "unit": SIGNALS[signal].unit,
        }
    )


def empty_frame() -> pd.DataFrame:
    """Return a frame with the right columns and dtypes but no rows."""
    return pd.DataFrame(
        {
            "timestamp": pd.Series([], dtype="datetime64[ns, UTC]"),
            "system": pd.Series([], dtype=object),
            "signal": pd.Series([], dtype=object),
            "value": pd.Series([], dtype=float),
            "unit": pd.Series([], dtype=object),
        }
    )
