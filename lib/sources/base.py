"""The interface every metric source implements, and the frame shape it returns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

from lib.errors import MonitorError
from lib.signals import SIGNALS
from lib.timerange import TimeRange

FRAME_COLUMNS = ("timestamp", "system", "signal", "value", "unit")
# Key of the frame attribute that maps each system id to its Freshness.
FRESHNESS_ATTR = "freshness"


class FreshnessState(StrEnum):
    """Whether a system's data is current, the last good data, or absent."""

    FRESH = "fresh"
    STALE = "stale"
    NO_DATA = "no_data"


@dataclass(frozen=True)
class Freshness:
    """How current one system's data is. `data_at` is when the data shown was last known good
    and `checked_at` when that was judged (epoch seconds); `reason` says in plain words why
    the data is stale or absent."""

    system: str
    state: FreshnessState
    data_at: float | None
    checked_at: float
    reason: str | None = None

    @classmethod
    def fresh(cls, system: str, now: float, data_at: float | None = None) -> Freshness:
        return cls(system, FreshnessState.FRESH, now if data_at is None else data_at, now)

    @classmethod
    def stale_since(
        cls, system: str, now: float, data_at: float | None, reason: str
    ) -> Freshness:
        return cls(system, FreshnessState.STALE, data_at, now, reason)

    @classmethod
    def no_data(cls, system: str, now: float, reason: str) -> Freshness:
        return cls(system, FreshnessState.NO_DATA, None, now, reason)

    @property
    def stale(self) -> bool:
        """True when the data is not current: stale or absent."""
        return self.state is not FreshnessState.FRESH

    @property
    def age_seconds(self) -> float | None:
        """Age of the data when it was judged, None without data."""
        return self.age_at(self.checked_at)

    def age_at(self, now: float) -> float | None:
        """Return the age of the data at `now`, None without data."""
        if self.data_at is None:
            return None
        return max(0.0, now - self.data_at)


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
    # None when the source does not judge freshness itself; the facade then judges it.
    freshness: Freshness | None = None


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


@runtime_checkable
class GroupedSource(Protocol):
    """A source that reads several systems in one call and reports each system's failure apart,
    so that the facade can share one call among the systems' fetches."""

    def signals_by_system(
        self, systems: Sequence[str], time_range: TimeRange, signals: Sequence[str]
    ) -> Mapping[str, pd.DataFrame | MonitorError]:
        """Return each system's long frame of `signals`, or the error its queries ended in."""
        ...

    def snapshots(
        self, systems: Sequence[str], time_range: TimeRange, now: float
    ) -> Mapping[str, Snapshot | MonitorError]:
        """Return each system's current values, or the error its queries ended in."""
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


def long_frame(
    parts: Sequence[tuple[str, str, np.ndarray, np.ndarray]],
) -> pd.DataFrame:
    """Return one long frame of (system, signal, points, values) parts, built in one step,
    which costs a fraction of concatenating one frame per part."""
    if not parts:
        return empty_frame()
    lengths = [len(points) for _, _, points, _ in parts]
    return pd.DataFrame(
        {
            "timestamp": pd.to_datetime(
                np.concatenate([points for _, _, points, _ in parts]), unit="s", utc=True
            ),
            "system": np.repeat([system for system, _, _, _ in parts], lengths).astype(object),
            "signal": np.repeat([signal for _, signal, _, _ in parts], lengths).astype(object),
            "value": np.concatenate([values for _, _, _, values in parts]).astype(float),
            "unit": np.repeat(
                [SIGNALS[signal].unit for _, signal, _, _ in parts], lengths
            ).astype(object),
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
