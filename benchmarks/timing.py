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


def measure_interleaved(actions: dict[str, Callable[[], object]], repeat: int,
                        warmup: int = 1) -> dict[str, Timing]:
    """Time each action `repeat` times in turns (A, B, C, A, B, C ...), so that a change in the
    machine's load during the measurement affects every action alike."""
    for _ in range(warmup):
        for action in actions.values():
            action()
    runs: dict[str, list[float]] = {name: [] for name in actions}
    for _ in range(repeat):
        for name, action in actions.items():
            started = time.perf_counter()
            action()
            runs[name].append(time.perf_counter() - started)
    return {name: Timing(tuple(values)) for name, values in runs.items()}


def ratio(value: Timing, baseline: Timing) -> float:
    """Return the ratio of the two medians."""
    return value.median / baseline.median if baseline.median > 0 else float("inf")
