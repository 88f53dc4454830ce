"""The signal catalog: what each golden signal means, its unit, and which metrics feed it.

Both backends compute the same catalog. The embedded store sums each system's series at scrape
time (see `aggregate`) and evaluates rates from those sums; the Prometheus backend sends the
PromQL in `promql`. Metric names per system come from `MetricNames`, so a system whose metrics
are named differently needs configuration, not code.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Signal:
    """One golden signal: id, title for charts, unit as shown, and its meaning."""

    name: str
    title: str
    unit: str
    meaning: str


SIGNALS: dict[str, Signal] = {
    s.name: s
    for s in (
        Signal("requests_per_second", "Requests per second", "req/s",
               "rate of http_requests_total"),
        Signal("error_rate", "Error rate", "ratio",
               "rate of 5xx responses / rate of all responses; 0 when there is no traffic"),
        Signal("average_latency_ms", "Average latency", "ms",
               "rate of the duration sum / rate of the duration count"),
        Signal("p95_latency_ms", "p95 latency", "ms",
               "0.95 quantile of the duration histogram, interpolated as histogram_quantile"),
        Signal("active_connections", "Requests in flight", "count", "http_requests_in_flight"),
        Signal("cpu_usage", "CPU", "cores", "rate of process_cpu_seconds_total"),
        Signal("memory_usage", "Memory (RSS)", "bytes", "process_resident_memory_bytes"),
        Signal("cost_per_hour", "AI cost per hour", "USD/h", "3600 x rate of the cost counter"),
        Signal("up", "Up", "ratio", "share of successful scrapes in each step (1 = always up)"),
    )
}
GOLDEN_SIGNALS = tuple(SIGNALS)


@dataclass(frozen=True)
class MetricNames:
    """The metric names that feed the catalog for one system."""

    requests: str = "http_requests_total"
    duration: str = "http_request_duration_seconds"
    in_flight: str = "http_requests_in_flight"
    cpu: str = "process_cpu_seconds_total"
    memory: str = "process_resident_memory_bytes"
    start_time: str = "process_start_time_seconds"
    cost: str = "ai_cost_usd_total"
    error_label: str = "code"
    error_pattern: str = "5.."

    @classmethod
    def for_prefix(cls, prefix: str) -> MetricNames:
        """Return the default names, with the cost counter under the system's prefix."""
        return cls(cost=f"{prefix}ai_cost_usd_total")


def aggregate(
    names: MetricNames, samples: Iterable[tuple[str, tuple[tuple[str, str], ...], float]]
) -> tuple[dict[str, float | None], dict[str, float] | None]:
    """Sum one scrape's samples (name, labels, value; counters already reset-corrected) into the
    per-system values the store keeps, and the latency histogram's buckets by `le`."""
    error_re = re.compile(names.error_pattern)
    sums: dict[str, float] = {}
    buckets: dict[str, float] = {}
    columns = {
        names.requests: "requests",
        names.duration + "_sum": "duration_sum",
        names.duration + "_count": "duration_count",
        names.cpu: "cpu_seconds",
        names.cost: "cost_usd",
        names.memory: "memory_bytes",
        names.in_flight: "in_flight",
    }
    bucket_name = names.duration + "_bucket"
    start_times: list[float] = []

    for name, labels, value in samples:
        column = columns.get(name)
        if column is not None:
            sums[column] = sums.get(column, 0.0) + value
            if column == "requests" and _label_matches(labels, names.error_label, error_re):
                sums["errors"] = sums.get("errors", 0.0) + value
        elif name == bucket_name:
            le = dict(labels).get("le")
            if le is not None:
                key = _canonical_le(le)
                buckets[key] = buckets.get(key, 0.0) + value
        elif name == names.start_time:
            start_times.append(value)

    if "requests" in sums:
        sums.setdefault("errors", 0.0)
    values: dict[str, float | None] = dict(sums)
    values["start_time"] = max(start_times) if start_times else None
    return values, (buckets or None)


def _label_matches(
    labels: tuple[tuple[str, str], ...], label: str, pattern: re.Pattern[str]
) -> bool:
    for key, value in labels:
        if key == label:
            return pattern.fullmatch(value) is not None
    return False


@functools.lru_cache(maxsize=4096)
def _canonical_le(le: str) -> str:
    # Cached: a histogram repeats the same few bounds in every series and every scrape.
    value = float(le)
    return "+Inf" if math.isinf(value) else repr(value)


def histogram_quantile(q: float, bounds: np.ndarray, counts: np.ndarray) -> float:
    """Return the q-quantile of a cumulative histogram as Prometheus's histogram_quantile does:
    linear interpolation inside the bucket holding the rank, 0 as the lower edge of the first
    bucket, and the highest finite bound when the rank falls into the +Inf bucket.

    `bounds` are the upper bounds in ascending order with +Inf last; `counts` are cumulative.
    Returns NaN without a +Inf bucket or without observations.
    """
    if len(bounds) < 2 or not math.isinf(bounds[-1]) or np.isnan(counts).any():
        return math.nan
    if not 0 <= q <= 1:
        return math.inf if q > 1 else -math.inf
    # Prometheus repairs cumulative counts that dip because of scrape timing.
    counts = np.maximum.accumulate(counts)
    total = float(counts[-1])
    if total <= 0:
        return math.nan
    rank = q * total
    index = int(np.searchsorted(counts, rank, side="left"))
    if index >= len(bounds) - 1:
        return float(bounds[-2])
    upper = float(bounds[index])
    if index == 0:
        if upper <= 0:
            return float(upper)
        lower, below = 0.0, 0.0
    else:
        lower, below = float(bounds[index - 1]), float(counts[index - 1])
    in_bucket = float(counts[index]) - below
    if in_bucket <= 0:
        return upper
    return lower + (upper - lower) * (rank - below) / in_bucket


def histogram_quantiles(q: float, bounds: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Return `histogram_quantile(q, bounds, row)` for every row of `counts` at once.

    The same rules as the scalar version apply row by row; this one runs in numpy so that a
    chart's few hundred points cost one pass instead of one Python call each.
    """
    rows = counts.shape[0]
    if rows == 0 or len(bounds) < 2 or not math.isinf(bounds[-1]) or not 0 <= q <= 1:
        return np.array([histogram_quantile(q, bounds, row) for row in counts], dtype=float)
    result = np.full(rows, np.nan)
    usable = ~np.isnan(counts).any(axis=1)
    if not usable.any():
        return result
    cumulative = np.maximum.accumulate(counts[usable], axis=1)
    total = cumulative[:, -1]
    rank = q * total
    # The first bucket whose cumulative count reaches the rank, as searchsorted(side="left").
    index = (cumulative < rank[:, None]).sum(axis=1)
    inf_bucket = index >= len(bounds) - 1
    safe = np.minimum(index, len(bounds) - 2)
    upper = bounds[safe]
    lower = np.where(safe > 0, bounds[np.maximum(safe - 1, 0)], 0.0)
    rows_at = np.arange(len(safe))
    below = np.where(safe > 0, cumulative[rows_at, np.maximum(safe - 1, 0)], 0.0)
    in_bucket = cumulative[rows_at, safe] - below
    with np.errstate(invalid="ignore", divide="ignore"):
        value = lower + (upper - lower) * (rank - below) / in_bucket
    value = np.where(in_bucket <= 0, upper, value)
    value = np.where((safe == 0) & (upper <= 0), upper, value)
    value = np.where(inf_bucket, bounds[-2], value)
    value = np.where(total <= 0, np.nan, value)
    result[usable] = value
    return result
