"""The signal catalog as PromQL: one expression per signal and system.

Each system's series are selected by its `job` label plus optional extra matchers. Every
expression sums over the system's series, so that several instances of one job read as one
system, as the embedded store sums a scrape's series. The semantics match
`lib/sources/embedded.py`: rates over the range's window, error rate 0 when there is no traffic,
p95 from the bucket rates summed by `le`, gauges summed, `up` averaged over one step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lib.signals import MetricNames


def quote(value: str) -> str:
    """Return `value` as a double-quoted PromQL string."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def duration(seconds: float) -> str:
    """Format seconds as a PromQL duration: whole seconds as `60s`, else milliseconds."""
    if seconds <= 0:
        raise ValueError(f"a PromQL duration must be positive, got {seconds!r} s")
    if float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{max(1, math.ceil(seconds * 1000))}ms"


@dataclass(frozen=True)
class SystemQueries:
    """Builds the PromQL of every catalog signal for one system.

    `job` selects the system's series; `extra_matchers` are further matchers without braces,
    such as `cluster="prod"`.
    """

    job: str
    names: MetricNames
    extra_matchers: str = ""

    def selector(self, metric: str, *matchers: str) -> str:
        """Return `metric{job="...",<extra>,<matchers>}`."""
        parts = [f"job={quote(self.job)}"]
        if self.extra_matchers:
            parts.append(self.extra_matchers)
        parts.extend(matchers)
        return f"{metric}{{{','.join(parts)}}}"

    def _rate(self, metric: str, window: float, *matchers: str) -> str:
        return f"sum(rate({self.selector(metric, *matchers)}[{duration(window)}]))"

    def signal(self, signal: str, window: float, step: float) -> str:
        """Return the PromQL of `signal` with rate window `window` and step `step` (seconds)."""
        names = self.names
        if signal == "requests_per_second":
            return self._rate(names.requests, window)
        if signal == "error_rate":
            errors = self._rate(
                names.requests, window, f"{names.error_label}=~{quote(names.error_pattern)}"
            )
            requests = self._rate(names.requests, window)
            # No 5xx series yet means no errors; no traffic at all means an error rate of 0.
            return f"({errors} or {requests} * 0) / ({requests} > 0) or {requests} * 0"
        if signal == "average_latency_ms":
            total = self._rate(names.duration + "_sum", window)
            count = self._rate(names.duration + "_count", window)
            return f"1000 * {total} / ({count} > 0)"
        if signal == "p95_latency_ms":
            buckets = self.selector(names.duration + "_bucket")
            return (
                f"1000 * histogram_quantile(0.95, sum by (le) "
                f"(rate({buckets}[{duration(window)}])))"
            )
        if signal == "active_connections":
            return f"sum({self.selector(names.in_flight)})"
        if signal == "cpu_usage":
            return self._rate(names.cpu, window)
        if signal == "memory_usage":
            return f"sum({self.selector(names.memory)})"
        if signal == "cost_per_hour":
            return f"3600 * {self._rate(names.cost, window)}"
        if signal == "up":
            return self.up_share(step)
        raise KeyError(f"unknown signal {signal!r}")

    def up_share(self, span: float) -> str:
        """Return the share of successful scrapes over the last `span` seconds."""
        return f"avg(avg_over_time({self.selector('up')}[{duration(span)}]))"

    def last_scrape(self) -> str:
        """Return the time of the latest scrape (Prometheus stores `up` for every scrape)."""
        return f"max(timestamp({self.selector('up')}))"

    def last_success(self, span: float, resolution: float) -> str:
        """Return the time of the latest successful scrape within the last `span` seconds."""
        up = self.selector("up")
        return (
            f"max(max_over_time((timestamp({up}) and {up} == 1)"
            f"[{duration(span)}:{duration(resolution)}]))"
        )

    def process_start(self) -> str:
        """Return the latest process start time among the system's instances."""
        return f"max({self.selector(self.names.start_time)})"
