"""Health rules: a system's status from its current values and its thresholds.

`error` when the system is down or breaches an error threshold, `warning` on a warning threshold,
low availability or stale data, else `healthy`. Every status carries the reasons behind it, so
the page never shows a colour without words.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from lib.config import Thresholds
from lib.sources.base import Snapshot

# Data older than this many scrape intervals is stale.
STALE_AFTER_INTERVALS = 3


class Status(Enum):
    """A system's health, with the text and icon the page shows."""

    HEALTHY = ("healthy", "✅")
    WARNING = ("warning", "⚠️")
    ERROR = ("error", "❌")

    @property
    def label(self) -> str:
        return self.value[0]

    @property
    def icon(self) -> str:
        return self.value[1]


@dataclass(frozen=True)
class Verdict:
    """A status and the sentences that explain it."""

    status: Status
    reasons: tuple[str, ...]


def judge(
    snapshot: Snapshot, thresholds: Thresholds, now: float, scrape_interval: float
) -> Verdict:
    """Return the status of one system from its snapshot."""
    errors: list[str] = []
    warnings: list[str] = []
    values = snapshot.values

    if snapshot.last_scrape_at is None:
        warnings.append("No data received yet: the first scrape has not finished.")
    elif values.get("up") == 0 or snapshot.last_error:
        errors.append("Down: the last scrape failed.")
    elif snapshot.last_success_at is not None:
        age = now - snapshot.last_success_at
        if age > STALE_AFTER_INTERVALS * scrape_interval:
            warnings.append(f"Stale: the last successful scrape was {age:.0f} s ago.")

    _check(values.get("error_rate"), thresholds.error_rate_warning, thresholds.error_rate_error,
           "Error rate", lambda v: f"{v * 100:.1f}%", warnings, errors)
    _check(values.get("p95_latency_ms"), thresholds.p95_latency_ms_warning,
           thresholds.p95_latency_ms_error, "p95 latency", lambda v: f"{v:.0f} ms",
           warnings, errors)
    availability = snapshot.availability
    if availability is not None and availability < thresholds.availability_warning:
        warnings.append(
            f"Availability {availability * 100:.2f}% is below "
            f"{thresholds.availability_warning * 100:.2f}%."
        )
    cost = values.get("cost_per_hour")
    budget = thresholds.cost_per_hour_budget
    if budget > 0 and cost is not None and not math.isnan(cost) and cost > budget:
        warnings.append(f"AI cost {cost:.2f} USD/h is over the budget of {budget:.2f} USD/h.")

    if errors:
        return Verdict(Status.ERROR, tuple(errors + warnings))
    if warnings:
        return Verdict(Status.WARNING, tuple(warnings))
    return Verdict(Status.HEALTHY, ())


def _check(
    value: float | None,
    warning: float,
    error: float,
    name: str,
    fmt: Callable[[float], str],
    warnings: list[str],
    errors: list[str],
) -> None:
    if value is None or math.isnan(value):
        return
    if value >= error:
        errors.append(f"{name} {fmt(value)} is at or above the error threshold {fmt(error)}.")
    elif value >= warning:
        warnings.append(f"{name} {fmt(value)} is at or above the warning threshold {fmt(warning)}.")
