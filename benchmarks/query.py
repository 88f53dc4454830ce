"""Query benchmark: what the Overview and the Cross-system page fetch, per backend and range.

Each backend is a function from (time range, now) to the frames the two pages draw, so a new
backend, such as the app's own Prometheus source, slots in as one more function. The servers
are read both through the app's Prometheus source and through plain HTTP with the PromQL below.
The raw measurement sends only the six golden-signal range queries, concurrently, and decodes
the JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import numpy as np
import pandas as pd

from app_pages.cross_system import CHART_SIGNALS
from lib.monitor import Monitor
from lib.sources.base import signal_frame
from lib.timerange import TimeRange, format_seconds

FetchFrames = Callable[[TimeRange, float], list[pd.DataFrame]]
RAW_SIGNALS = ("requests_per_second", "error_rate", "average_latency_ms", "p95_latency_ms",
               "cpu_usage", "memory_usage")
CURRENT_SIGNALS = ("requests_per_second", "error_rate", "average_latency_ms", "p95_latency_ms",
                   "active_connections", "cpu_usage", "memory_usage", "cost_per_hour", "up")
HTTP_WORKERS = 8


def promql(signal: str, window: float, step: float) -> str:
    """Return the PromQL of `signal` for every system (one series per `job`)."""
    w = format_seconds(window)
    rate = "sum by (job) (rate({}[" + w + "]))"
    queries = {
        "requests_per_second": rate.format("http_requests_total"),
        "error_rate": rate.format('http_requests_total{code=~"5.."}') + " / "
                      + rate.format("http_requests_total"),
        "average_latency_ms": f"1000 * {rate.format('http_request_duration_seconds_sum')} / "
                              f"{rate.format('http_request_duration_seconds_count')}",
        "p95_latency_ms": "1000 * histogram_quantile(0.95, sum by (job, le) "
                          f"(rate(http_request_duration_seconds_bucket[{w}])))",
        "active_connections": "sum by (job) (http_requests_in_flight)",
        "cpu_usage": rate.format("process_cpu_seconds_total"),
        "memory_usage": "sum by (job) (process_resident_memory_bytes)",
        "cost_per_hour": "3600 * " + rate.format('{__name__=~".+_ai_cost_usd_total"}'),
        "up": f"avg by (job) (avg_over_time(up[{format_seconds(step)}]))",
    }
    return queries[signal]


def monitor_fetcher(monitor: Monitor, systems: Sequence[str]) -> FetchFrames:
    """Return the fetch of both pages through the app's Monitor and whatever source it has."""
    def fetch(time_range: TimeRange, now: float) -> list[pd.DataFrame]:
        healths = monitor.overview(systems, time_range, now=now)
        cross = monitor.platform_metrics(systems, time_range, CHART_SIGNALS)
        return [health.trend for health in healths] + [cross]
    return fetch


@dataclass
class PromQLClient:
    """Sends PromQL to a Prometheus-compatible server at `url`, several queries at once."""

    url: str
    client: httpx.Client
    pool: ThreadPoolExecutor
    extra: dict[str, str]

    def range_query(self, query: str, time_range: TimeRange) -> list[dict[str, object]]:
        params = {"query": query, "start": str(time_range.start_s), "end": str(time_range.end_s),
                  "step": str(time_range.step), **self.extra}
        return self._get("/api/v1/query_range", params)

    def instant_query(self, query: str, at: float) -> list[dict[str, object]]:
        return self._get("/api/v1/query", {"query": query, "time": str(at), **self.extra})

    def _get(self, path: str, params: dict[str, str]) -> list[dict[str, object]]:
        response = self.client.get(self.url + path, params=params)
        response.raise_for_status()
        result: list[dict[str, object]] = response.json()["data"]["result"]
        return result


def raw_fetcher(promql_client: PromQLClient) -> FetchFrames:
    """Return the six golden-signal range queries, sent concurrently, with JSON decoding only."""
    def fetch(time_range: TimeRange, now: float) -> list[pd.DataFrame]:
        queries = [promql(s, time_range.window, time_range.step) for s in RAW_SIGNALS]
        futures = [promql_client.pool.submit(promql_client.range_query, q, time_range)
                   for q in queries]
        for future in futures:
            future.result()
        return []
    return fetch


def http_pages_fetcher(promql_client: PromQLClient, systems: Sequence[str]) -> FetchFrames:
    """Return the fetch of both pages from a PromQL server, as frames like the app's.

    It stands in for the app's Prometheus source: the Overview's request-rate trend, its
    current values and availability, and the Cross-system page's range queries, all concurrent.
    """
    def fetch(time_range: TimeRange, now: float) -> list[pd.DataFrame]:
        current_window = 4 * 15.0
        submit = promql_client.pool.submit
        ranged = {s: submit(promql_client.range_query,
                            promql(s, time_range.window, time_range.step), time_range)
                  for s in CHART_SIGNALS}
        current = [submit(promql_client.instant_query, promql(s, current_window, 15.0), now)
                   for s in CURRENT_SIGNALS]
        span = format_seconds(time_range.duration)
        availability = submit(promql_client.instant_query,
                              f"avg by (job) (avg_over_time(up[{span}]))", now)
        start_times = submit(promql_client.instant_query,
                             "max by (job) (process_start_time_seconds)", now)
        frames = []
        for signal, future in ranged.items():
            frames.extend(_frames(signal, future.result(), systems))
        for future in (*current, availability, start_times):
            future.result()
        return [pd.concat(frames, ignore_index=True)] if frames else []
    return fetch


def _frames(signal: str, result: list[dict[str, object]],
            systems: Sequence[str]) -> list[pd.DataFrame]:
    frames = []
    for series in result:
        metric = series["metric"]
        system = metric.get("job", "") if isinstance(metric, dict) else ""
        if system not in systems:
            continue
        values = np.array(series["values"], dtype=float).reshape(-1, 2)
        frames.append(signal_frame(system, signal, values[:, 0], values[:, 1]))
    return frames
