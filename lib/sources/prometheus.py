"""Signals from a server that speaks the Prometheus HTTP query API.

Prometheus, VictoriaMetrics, Thanos Query and Mimir all serve `/api/v1/query_range` and
`/api/v1/query`. Each catalog signal is one PromQL expression per system (see `lib.promql`).
All queries of one call run concurrently on a thread pool over the shared httpx client, so a
page refresh costs about its slowest query. Every failure becomes a `QueryError` that names the
server and the query, and failures are kept per system so that one failing system does not
blank the others.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pandas as pd

from lib.breakdowns import (
    DEFAULT_QUANTILES,
    BreakdownKind,
    breakdown_frame,
    breakdown_promql,
    group_key,
    quantile_frame,
)
from lib.config import SourceSettings, TargetConfig
from lib.errors import FetchError, QueryError
from lib.http import FetchPolicy, fetch
from lib.promql import SystemQueries, duration
from lib.signals import GOLDEN_SIGNALS, MetricNames
from lib.sources.base import Snapshot, empty_frame, signal_frame
from lib.sources.embedded import CURRENT_WINDOW_SCRAPES
from lib.timerange import TimeRange

log = logging.getLogger(__name__)

# Prometheus rejects a bad query with 400, a failed evaluation with 422, an overloaded or timed
# out query with 503, and an internal failure with 500, each with a JSON error body.
ERROR_STATUSES = (400, 422, 500, 503)
MAX_WORKERS = 16


@dataclass(frozen=True)
class QueryResult:
    """One query's series merged into one: values by evaluation time, and the server's warnings."""

    points: dict[float, float]
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class SeriesResult:
    """One query's series kept apart: each series's labels with its values by evaluation time,
    and the server's warnings."""

    series: tuple[tuple[dict[str, str], dict[float, float]], ...]
    warnings: tuple[str, ...]


class PrometheusSource:
    """Reads the catalog's signals from a Prometheus-compatible server at `settings.url`."""

    def __init__(
        self,
        settings: SourceSettings,
        targets: Sequence[TargetConfig],
        client: httpx.Client,
        scrape_interval: float,
    ) -> None:
        self.url = settings.url.rstrip("/")
        self.client = client
        self.scrape_interval = scrape_interval
        self.label = f"Prometheus at {self.url}"
        self.queries = {
            t.system: SystemQueries(
                t.prometheus_job, MetricNames.for_prefix(t.metric_prefix), settings.extra_matchers
            )
            for t in targets
        }
        self._headers: dict[str, str] = {"Accept": "application/json"}
        if settings.bearer_token:
            self._headers["Authorization"] = f"Bearer {settings.bearer_token}"
        self._auth = (
            (settings.username, settings.password or "") if settings.username else None
        )
        self._policy = FetchPolicy(
            connect_timeout=min(2.0, settings.timeout),
            read_timeout=settings.timeout,
            deadline=settings.timeout,
        )
        self._pool = ThreadPoolExecutor(max_workers=MAX_WORKERS, thread_name_prefix="promql")

    # -- signals over a range ------------------------------------------------------------------

    def signals(
        self, systems: Sequence[str], time_range: TimeRange, signals: Sequence[str]
    ) -> pd.DataFrame:
        """Return a long frame of `signals` for `systems`; raise the first system's QueryError
        when any system's queries failed. `frame.attrs["warnings"]` lists the server's warnings.
        """
        results = self.signals_by_system(systems, time_range, signals)
        for outcome in results.values():
            if isinstance(outcome, QueryError):
                raise outcome
        frames = [frame for frame in results.values() if isinstance(frame, pd.DataFrame)]
        return combine(frames, time_range)

    def signals_by_system(
        self, systems: Sequence[str], time_range: TimeRange, signals: Sequence[str]
    ) -> dict[str, pd.DataFrame | QueryError]:
        """Run every query of every system concurrently; return each system's frame, or the
        QueryError of its first failed query."""
        points = np.array(time_range.points(), dtype=float)
        started = time.monotonic()
        futures = {
            (system, signal): self._pool.submit(
                self._query_range,
                system,
                self._queries(system).signal(signal, time_range.window, time_range.step),
                time_range,
            )
            for system in systems
            for signal in signals
        }
        outcomes: dict[str, pd.DataFrame | QueryError] = {}
        for system in systems:
            frames: list[pd.DataFrame] = []
            warnings: list[str] = []
            for signal in signals:
                try:
                    result = futures[(system, signal)].result()
                except QueryError as error:
                    outcomes[system] = error
                    break
                values = np.array([result.points.get(round(p, 3), math.nan) for p in points])
                frames.append(signal_frame(system, signal, points, values))
                warnings.extend(result.warnings)
            else:
                frame = combine(frames, time_range)
                frame.attrs["warnings"] = _unique(warnings)
                outcomes[system] = frame
        failed = sum(isinstance(outcome, QueryError) for outcome in outcomes.values())
        log.info(
            "%d range queries to %s for %d systems in %.3f s, %d systems failed",
            len(futures), self.url, len(systems), time.monotonic() - started, failed,
        )
        return outcomes

    # -- current values ------------------------------------------------------------------------

    def snapshot(self, system: str, time_range: TimeRange, now: float) -> Snapshot:
        """Return the values of `system` at `now` and its availability over `time_range`."""
        queries = self._queries(system)
        window = CURRENT_WINDOW_SCRAPES * self.scrape_interval
        instant = {
            signal: queries.signal(signal, window, self.scrape_interval)
            for signal in GOLDEN_SIGNALS
        }
        instant["_start_time"] = queries.process_start()
        instant["_last_scrape"] = queries.last_scrape()
        futures: dict[str, Future[QueryResult]] = {
            key: self._pool.submit(self._query, system, query, now)
            for key, query in instant.items()
        }
        availability_query = queries.up_share(time_range.duration)
        futures["_availability"] = self._pool.submit(
            self._query, system, availability_query, time_range.end_s
        )
        results = {key: _single(future.result()) for key, future in futures.items()}
        warnings = _unique(w for future in futures.values() for w in future.result().warnings)

        up = results["up"]
        last_scrape = results["_last_scrape"]
        last_success = last_scrape if up == 1 else None
        if up is not None and up < 1:
            span = max(time_range.duration, self.scrape_interval)
            found = _single(self._query(
                system, queries.last_success(span, self.scrape_interval), now
            ))
            last_success = found
        return Snapshot(
            system=system,
            values={signal: _or_nan(results[signal]) for signal in GOLDEN_SIGNALS},
            availability=results["_availability"],
            process_start_time=results["_start_time"],
            last_scrape_at=last_scrape,
            last_success_at=last_success,
            last_error=(
                f"the source's last scrape of job {queries.job!r} failed (up = 0)"
                if up == 0 else None
            ),
            warnings=warnings,
        )

    # -- per-label breakdowns ------------------------------------------------------------------

    def breakdown(
        self,
        system: str,
        metric: str,
        by: Sequence[str],
        kind: BreakdownKind,
        time_range: TimeRange,
        quantiles: Sequence[float] = DEFAULT_QUANTILES,
    ) -> pd.DataFrame:
        """Return `metric` of `system` grouped by the labels `by` (see lib.breakdowns).

        `rate`, `gauge` and `quantile` are range queries, one per quantile, run concurrently.
        `increase` is one instant query at the range's end over the range's duration.
        NOTE: for a series that begins inside the range, Prometheus's increase() extrapolates
        toward the range's start, where the embedded store counts from the first sample. The
        server does not report where a series begins, so `covered_since` is the range's start.
        """
        queries = self._queries(system)
        job, extra = queries.job, queries.extra_matchers
        if kind == "increase":
            query = breakdown_promql(metric, by, kind, job, duration(time_range.duration),
                                     extra_matchers=extra)
            result = self._query_series(system, query, time_range.end_s)
            end = np.array([time_range.end_s])
            frame = breakdown_frame(end, _grouped(result, by, end), by)
            frame.attrs["covered_since"] = time_range.start_s
            warnings = list(result.warnings)
        elif kind in ("rate", "gauge"):
            query = breakdown_promql(metric, by, kind, job, duration(time_range.window),
                                     extra_matchers=extra)
            result = self._query_range_series(system, query, time_range)
            points = np.array(time_range.points(), dtype=float)
            frame = breakdown_frame(points, _grouped(result, by, points), by)
            warnings = list(result.warnings)
        elif kind == "quantile":
            frame, warnings = self._quantile_breakdown(system, metric, by, time_range, quantiles)
        else:
            raise ValueError(f"unknown breakdown kind {kind!r}")

        frame.attrs.update(time_range=time_range, metric=metric, by=tuple(by), kind=kind,
                           warnings=_unique(warnings))
        return frame

    def _quantile_breakdown(
        self,
        system: str,
        metric: str,
        by: Sequence[str],
        time_range: TimeRange,
        quantiles: Sequence[float],
    ) -> tuple[pd.DataFrame, list[str]]:
        queries = self._queries(system)
        window = duration(time_range.window)
        futures = {
            q: self._pool.submit(
                self._query_range_series,
                system,
                breakdown_promql(metric, by, "quantile", queries.job, window, q,
                                 extra_matchers=queries.extra_matchers),
                time_range,
            )
            for q in quantiles
        }
        points = np.array(time_range.points(), dtype=float)
        per_quantile = {q: future.result() for q, future in futures.items()}
        groups: dict[tuple[tuple[str, ...], float], np.ndarray] = {}
        for q, result in per_quantile.items():
            for key, values in _grouped(result, by, points).items():
                groups[(key, q)] = values
        # Order as the embedded source does: by group, then by quantile as requested.
        order = {q: index for index, q in enumerate(quantiles)}
        ordered = dict(sorted(groups.items(), key=lambda item: (item[0][0], order[item[0][1]])))
        warnings = [w for result in per_quantile.values() for w in result.warnings]
        return quantile_frame(points, ordered, by), warnings

    # -- HTTP ----------------------------------------------------------------------------------

    def _queries(self, system: str) -> SystemQueries:
        try:
            return self.queries[system]
        except KeyError:
            known = ", ".join(self.queries)
            raise KeyError(f"unknown system {system!r}; configured systems are {known}") from None

    def _query_range(self, system: str, query: str, time_range: TimeRange) -> QueryResult:
        params = _range_params(query, time_range)
        return self._request(system, "/api/v1/query_range", query, params, "matrix")

    def _query(self, system: str, query: str, at: float) -> QueryResult:
        params = {"query": query, "time": _format_time(at)}
        return self._request(system, "/api/v1/query", query, params, "vector")

    def _query_range_series(
        self, system: str, query: str, time_range: TimeRange
    ) -> SeriesResult:
        params = _range_params(query, time_range)
        body = self._request_body(system, "/api/v1/query_range", query, params)
        return _parse_series(self.url, query, system, body, "matrix")

    def _query_series(self, system: str, query: str, at: float) -> SeriesResult:
        params = {"query": query, "time": _format_time(at)}
        body = self._request_body(system, "/api/v1/query", query, params)
        return _parse_series(self.url, query, system, body, "vector")

    def _request(
        self, system: str, path: str, query: str, params: dict[str, str], expected: str
    ) -> QueryResult:
        body = self._request_body(system, path, query, params)
        return _parse_result(self.url, query, system, body, expected)

    def _request_body(
        self, system: str, path: str, query: str, params: dict[str, str]
    ) -> dict[str, Any]:
        """Send one query and return the server's successful JSON response."""
        try:
            response = fetch(
                self.client, self.url + path, policy=self._policy, headers=self._headers,
                auth=self._auth, method="POST", data=params, accept_statuses=ERROR_STATUSES,
            )
        except FetchError as error:
            log.warning("query for %s on %s failed: %s", system, self.url, error.detail)
            raise QueryError(self.url, query, f"the server {error.detail}", system) from error

        log.debug("query for %s took %.3f s: %s", system, response.duration, query)
        body = _decode(self.url, query, system, response.body, response.content_type)
        if body.get("status") == "error":
            kind = body.get("errorType") or f"HTTP {response.status_code}"
            message = body.get("error") or "no error message"
            log.warning("query for %s on %s was rejected: %s", system, self.url, message)
            raise QueryError(self.url, query, f"the server rejected it ({kind}): {message}", system)
        return body


def combine(frames: Sequence[pd.DataFrame], time_range: TimeRange) -> pd.DataFrame:
    """Concatenate per-system frames, keeping the union of their warnings in `attrs`."""
    warnings = _unique(w for frame in frames for w in frame.attrs.get("warnings", ()))
    frame = pd.concat(frames, ignore_index=True) if frames else empty_frame()
    frame.attrs["time_range"] = time_range
    frame.attrs["warnings"] = warnings
    return frame


def _decode(
    server: str, query: str, system: str, body: bytes, content_type: str
) -> dict[str, Any]:
    """Return the response's JSON object, raising QueryError when it is not a Prometheus API
    response."""
    hint = "check that the source URL points at a Prometheus-compatible server"
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        kind = "an HTML page" if b"<" in body[:64] else "a response that is not JSON"
        shown = content_type or "no content type"
        raise QueryError(server, query, f"the server sent {kind} ({shown}); {hint}", system) \
            from None
    if not isinstance(data, dict) or data.get("status") not in ("success", "error"):
        raise QueryError(
            server, query, f"the server sent JSON that is not a Prometheus API response; {hint}",
            system,
        )
    return data


def _result_data(
    server: str, query: str, system: str, body: Mapping[str, Any], expected: str
) -> tuple[Mapping[str, Any], tuple[str, ...]]:
    """Return the response's `data` object and warnings, raising QueryError unless it contains a
    result of the `expected` type (matrix or vector)."""
    data = body.get("data")
    warnings = tuple(str(w) for w in body.get("warnings") or ())
    if not isinstance(data, dict) or data.get("resultType") != expected:
        got = data.get("resultType") if isinstance(data, dict) else None
        raise QueryError(
            server, query, f"the server returned a {got or 'missing'} result, not a {expected}",
            system,
        )
    return data, warnings


def _parse_result(
    server: str, query: str, system: str, body: Mapping[str, Any], expected: str
) -> QueryResult:
    data, warnings = _result_data(server, query, system, body, expected)
    points: dict[float, float] = {}
    try:
        for series in data.get("result") or ():
            # Each expression is an aggregation, so at most one series comes back; if a server
            # returns several, their values at one time are summed.
            samples = series["values"] if expected == "matrix" else [series["value"]]
            for ts, value in samples:
                key = round(float(ts), 3)
                points[key] = points.get(key, 0.0) + float(value)
    except (KeyError, TypeError, ValueError) as exc:
        raise QueryError(
            server, query, f"the server returned a malformed {expected} ({exc!r})", system
        ) from exc
    return QueryResult(points, warnings)


def _parse_series(
    server: str, query: str, system: str, body: Mapping[str, Any], expected: str
) -> SeriesResult:
    """Return each series of a matrix or vector result with its own labels."""
    data, warnings = _result_data(server, query, system, body, expected)
    parsed: list[tuple[dict[str, str], dict[float, float]]] = []
    try:
        for series in data.get("result") or ():
            labels = {str(name): str(value) for name, value in (series.get("metric") or {}).items()}
            samples = series["values"] if expected == "matrix" else [series["value"]]
            points = {round(float(ts), 3): float(value) for ts, value in samples}
            parsed.append((labels, points))
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise QueryError(
            server, query, f"the server returned a malformed {expected} ({exc!r})", system
        ) from exc
    return SeriesResult(tuple(parsed), warnings)


def _grouped(
    result: SeriesResult, by: Sequence[str], points: np.ndarray
) -> dict[tuple[str, ...], np.ndarray]:
    """Return each series's values at `points` (NaN where it has none), keyed and sorted by its
    values of the labels `by`.

    The queries aggregate `sum by (by)`, so each group is one series; should a server return a
    group twice, its values are summed, NaN only where every copy is NaN.
    """
    groups: dict[tuple[str, ...], np.ndarray] = {}
    for labels, samples in result.series:
        values = np.array([samples.get(round(float(p), 3), math.nan) for p in points])
        key = group_key(labels, by)
        if key in groups:
            previous = groups[key]
            both_missing = np.isnan(previous) & np.isnan(values)
            values = np.where(both_missing, math.nan, np.nansum([previous, values], axis=0))
        groups[key] = values
    return dict(sorted(groups.items()))


def _single(result: QueryResult) -> float | None:
    """Return the one value of an instant query, None when it returned nothing or NaN."""
    for value in result.points.values():
        return None if math.isnan(value) else value
    return None


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else value


def _range_params(query: str, time_range: TimeRange) -> dict[str, str]:
    return {
        "query": query,
        "start": _format_time(time_range.start_s),
        "end": _format_time(time_range.end_s),
        "step": f"{time_range.step:g}",
    }


def _format_time(seconds: float) -> str:
    return f"{seconds:.3f}"


def _unique(items: Any) -> list[str]:
    return list(dict.fromkeys(items))
