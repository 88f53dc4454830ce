"""Repeat a measurement and summarise it as a median with its spread."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Timing:
    """Seconds of several runs of one measurement."""

    runs: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def low(self) -> float:
        return min(self.runs)

    @property
    def high(self) -> float:
        return max(self.runs)

    def describe(self) -> str:
        """Format as 'median ms (min-max, n runs)'."""
        return (
            f"{self.median * 1000:.2f} ms ({self.low * 1000:.2f}-{self.high * 1000:.2f}, "
            f"n={len(self.runs)})"
        )


def measure(action: Callable[[], object], repeat: int, warmup: int = 1,
            clock: Callable[[], float] = time.perf_counter) -> Timing:
    """Run `action` `warmup` times unmeasured, then `repeat` times, timing each run with `clock`
    (wall time by default; pass time.thread_time or time.process_time for CPU time)."""
    for _ in range(warmup):
        action()
    runs = []
    for _ in range(repeat):
        started = clock()
        action()
        runs.append(clock() - started)
    return Timing(tuple(runs))


def ratio(value: Timing, baseline: Timing) -> float:
    """Return the ratio of the two medians."""
    return value.median / baseline.median if baseline.median > 0 else float("inf")
