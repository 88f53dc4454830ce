"""Exact per-tick totals of the simulated traffic, kept in a bounded ring, and their summaries.

The simulator records, for every 1 s tick, the same numbers that it adds to the exporter's
counters, so a `Truth` over (start, end] equals the counter increases over that window.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from exporters.metrics import MICROSECONDS, NANO_USD, NANOSECONDS

IntArray = npt.NDArray[np.int64]
Int32Array = npt.NDArray[np.int32]


def histogram_quantile(quantile: float, buckets: Sequence[tuple[float, float]]) -> float:
    """Estimate a quantile from cumulative histogram buckets as Prometheus does.

    `buckets` are (upper bound, cumulative count) pairs sorted by bound and ending with +Inf.
    The result interpolates linearly inside the bucket that contains the rank, with 0 as the
    lower bound of the first bucket. A rank in the +Inf bucket returns the largest finite bound.
    Returns NaN when the histogram is empty, like Prometheus's histogram_quantile.
    """
    if not 0.0 <= quantile <= 1.0:
        raise ValueError(f"Quantile {quantile!r} is outside 0..1.")
    if len(buckets) < 2 or not math.isinf(buckets[-1][0]):
        raise ValueError("Buckets need at least one finite bound and a final +Inf bucket.")

    total = buckets[-1][1]
    if total <= 0:
        return math.nan

    rank = quantile * total
    index = next(i for i, (_, count) in enumerate(buckets) if count >= rank)
    if index == len(buckets) - 1:
        return buckets[-2][0]

    upper, count = buckets[index]
    lower, below = (0.0, 0.0) if index == 0 else buckets[index - 1]
    if index == 0 and upper <= 0:
        return upper
    in_bucket = count - below
    if in_bucket == 0:
        # Only a 0 quantile reaches an empty bucket. Prometheus then computes 0/0, which is NaN.
        return math.nan
    return lower + (upper - lower) * (rank - below) / in_bucket


@dataclass(frozen=True)
class Truth:
    """Exact totals of one system over the ticks in (start, end], in seconds, USD and counts.

    `buckets` are the cumulative request-duration bucket counts as (upper bound in seconds,
    count) pairs ending with +Inf. `duration_sum` is in seconds and `cpu_seconds` in CPU
    seconds. The summaries divide by `end - start`, the window length in seconds.
    """

    system: str
    start: float
    end: float
    requests: int
    errors: int
    duration_sum: float
    duration_count: int
    buckets: tuple[tuple[float, int], ...]
    cost_usd: float
    cpu_seconds: float

    @property
    def seconds(self) -> float:
        """Window length in seconds."""
        return self.end - self.start

    @property
    def rps(self) -> float:
        """Mean HTTP requests per second."""
        return self.requests / self.seconds

    @property
    def error_rate(self) -> float:
        """Share of responses with a 5xx code, 0 when there was no traffic."""
        if self.requests == 0:
            return 0.0
        return self.errors / self.requests

    @property
    def avg_latency_ms(self) -> float:
        """Mean request duration in milliseconds, NaN when there was no traffic."""
        if self.duration_count == 0:
            return math.nan
        return 1000.0 * self.duration_sum / self.duration_count

    @property
    def p95_latency_ms(self) -> float:
        """0.95 quantile of request duration in milliseconds, as histogram_quantile computes it."""
        return self.latency_quantile_ms(0.95)

    def latency_quantile_ms(self, quantile: float) -> float:
        """Return a request-duration quantile in milliseconds from the truth buckets."""
        return 1000.0 * histogram_quantile(quantile, self.buckets)

    @property
    def cost_per_hour(self) -> float:
        """Mean AI spend in US dollars per hour."""
        return 3600.0 * self.cost_usd / self.seconds

    @property
    def cpu_cores(self) -> float:
        """Mean CPU use in cores (CPU seconds per second)."""
        return self.cpu_seconds / self.seconds


@dataclass(frozen=True)
class TickTotals:
    """Per-tick totals of one block of consecutive ticks, starting at `first_tick` (epoch s).

    Counts are int32 because one tick of one system never reaches 2**31 requests. Durations are
    in nanoseconds, cost in nano-US dollars and CPU time in microseconds, all int64.
    """

    first_tick: int
    requests: Int32Array
    errors: Int32Array
    bucket_counts: Int32Array
    duration_ns: IntArray
    cost_nano_usd: IntArray
    cpu_microseconds: IntArray

    @property
    def last_tick(self) -> int:
        """Timestamp of the last tick in the block."""
        return self.first_tick + len(self.requests) - 1


class TruthRecorder:
    """Ring of `TickTotals` blocks covering at most `retention` seconds of the newest ticks.

    Memory is 92 bytes per tick, so the default of 8 days takes about 64 MB per system.
    """

    def __init__(self, system: str, bucket_bounds: Sequence[float], retention: float) -> None:
        self.system = system
        self.bucket_bounds = tuple(bucket_bounds)
        self.retention = retention
        self._blocks: deque[TickTotals] = deque()

    @property
    def first_tick(self) -> int | None:
        """Oldest tick still recorded, or None before the first block."""
        return self._blocks[0].first_tick if self._blocks else None

    @property
    def block_count(self) -> int:
        """Number of blocks held now."""
        return len(self._blocks)

    def record(self, totals: TickTotals) -> None:
        """Append a block and drop blocks that lie wholly outside the retention window."""
        self._blocks.append(totals)
        horizon = totals.last_tick - self.retention
        while self._blocks and self._blocks[0].last_tick <= horizon:
            self._blocks.popleft()

    def totals(self, start: float, end: float) -> Truth:
        """Sum the ticks k with start < k <= end into a `Truth`.

        Raises ValueError when part of the window is no longer recorded.
        """
        first = math.floor(start) + 1
        last = math.floor(end)
        oldest = self.first_tick
        if oldest is None or first < oldest:
            raise ValueError(
                f"Truth for {self.system} from {start!r} is not recorded. The oldest kept tick is "
                f"{oldest!r}. Raise truth_retention or request a later window."
            )

        requests = errors = duration_ns = cost = cpu = 0
        buckets = np.zeros(len(self.bucket_bounds), dtype=np.int64)
        for block in self._blocks:
            begin = max(first, block.first_tick) - block.first_tick
            stop = min(last, block.last_tick) - block.first_tick + 1
            if stop <= begin:
                continue
            requests += int(block.requests[begin:stop].sum(dtype=np.int64))
            errors += int(block.errors[begin:stop].sum(dtype=np.int64))
            buckets += block.bucket_counts[begin:stop].sum(axis=0, dtype=np.int64)
            duration_ns += int(block.duration_ns[begin:stop].sum())
            cost += int(block.cost_nano_usd[begin:stop].sum())
            cpu += int(block.cpu_microseconds[begin:stop].sum())

        cumulative = np.cumsum(buckets).tolist()
        return Truth(
            system=self.system,
            start=start,
            end=end,
            requests=requests,
            errors=errors,
            duration_sum=duration_ns / NANOSECONDS,
            duration_count=requests,
            buckets=tuple(zip(self.bucket_bounds, cumulative, strict=True)),
            cost_usd=cost / NANO_USD,
            cpu_seconds=cpu / MICROSECONDS,
        )
