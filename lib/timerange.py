"""Time ranges, query steps and rate windows, shared by both backends and every chart.

A range is evaluated at the points start, start + step, ..., end, as Prometheus's
`/api/v1/query_range` does. The step grows with the range so that one line holds at most
`MAX_POINTS + 1` points, and the end is aligned down to a multiple of the step so that two viewers
of the same preset ask for the same points (which lets caches serve both).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

PRESETS: dict[str, float] = {"1h": 3600.0, "6h": 6 * 3600.0, "24h": 86400.0, "7d": 7 * 86400.0}
MAX_POINTS = 360
# Steps a human reads easily, in seconds; the smallest that keeps a line within MAX_POINTS wins.
NICE_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400)
# Rates need at least four scrapes in their window, as Grafana's $__rate_interval assumes, so that
# one missed scrape does not empty it.
MIN_SCRAPES_PER_WINDOW = 4


@dataclass(frozen=True)
class TimeRange:
    """An evaluation range: UTC start and end, step and rate window in seconds."""

    start: datetime
    end: datetime
    step: float
    window: float
    label: str

    @classmethod
    def preset(
        cls, name: str, now: float | None = None, scrape_interval: float = 15.0
    ) -> TimeRange:
        """Return the range `name` (1h, 6h, 24h, 7d) ending at `now` (epoch seconds)."""
        if name not in PRESETS:
            raise ValueError(f"unknown time range {name!r}; choose one of {', '.join(PRESETS)}")
        end = time.time() if now is None else now
        return cls.between(end - PRESETS[name], end, scrape_interval, label=f"last {name}")

    @classmethod
    def between(
        cls, start: float, end: float, scrape_interval: float = 15.0, label: str | None = None
    ) -> TimeRange:
        """Return a range from `start` to `end` (epoch seconds) with the step rules applied."""
        if end <= start:
            raise ValueError(f"time range end {end} must be after its start {start}")
        span = end - start
        step = choose_step(span, scrape_interval)
        aligned_end = math.floor(end / step) * step
        aligned_start = aligned_end - math.ceil(span / step) * step
        window = max(step, MIN_SCRAPES_PER_WINDOW * scrape_interval)
        return cls(
            start=datetime.fromtimestamp(aligned_start, UTC),
            end=datetime.fromtimestamp(aligned_end, UTC),
            step=step,
            window=window,
            label=label or _custom_label(aligned_start, aligned_end),
        )

    @property
    def start_s(self) -> float:
        return self.start.timestamp()

    @property
    def end_s(self) -> float:
        return self.end.timestamp()

    @property
    def duration(self) -> float:
        return self.end_s - self.start_s

    def points(self) -> list[float]:
        """Return the evaluation timestamps (epoch seconds), both ends included."""
        start = self.start_s
        count = round((self.end_s - start) / self.step)
        return [start + i * self.step for i in range(count + 1)]

    def shifted(self, seconds: float) -> TimeRange:
        """Return the same range moved `seconds` back in time (for previous-period overlays)."""
        delta = timedelta(seconds=seconds)
        return TimeRange(self.start - delta, self.end - delta, self.step, self.window, self.label)

    def describe(self) -> str:
        """Return e.g. 'last 6h · step 1m · rate window 1m · UTC' for subtitles and exports."""
        return (
            f"{self.label} · step {format_seconds(self.step)} · "
            f"rate window {format_seconds(self.window)} · UTC"
        )


def choose_step(span: float, scrape_interval: float) -> float:
    """Return the smallest nice step that keeps `span` within MAX_POINTS and is not finer than
    the scrape interval."""
    floor = max(span / MAX_POINTS, scrape_interval)
    for step in NICE_STEPS:
        if step >= floor:
            return float(step)
    return float(math.ceil(floor / 86400) * 86400)


def format_seconds(seconds: float) -> str:
    """Format a step or window: 15s, 5m, 2h, 1d."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _custom_label(start: float, end: float) -> str:
    fmt = "%Y-%m-%d %H:%M"
    first = datetime.fromtimestamp(start, UTC).strftime(fmt)
    last = datetime.fromtimestamp(end, UTC).strftime(fmt)
    return f"{first} to {last} UTC"
