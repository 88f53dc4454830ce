"""Signals from a server that speaks the Prometheus HTTP query API.

Prometheus, VictoriaMetrics, Thanos Query and Mimir all serve `/api/v1/query_range` and
`/api/v1/query`. Each catalog signal is one PromQL query for all the systems of a call, whose
result is split back into systems by its `job` label (see `lib.promql.grouped`). All queries of
one call run concurrently on a thread pool over the shared httpx client, so a page refresh costs
about its slowest query. Every failure becomes a `QueryError` that names the server and the
query. A failed query is the failure of every system in it, and only of those: the others keep
their data, and a query rejected as invalid runs again per group of systems, so that one
system's bad metric name does not blank the others.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
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
from lib.promql import GroupedQuery, SystemQueries, duration, grouped
from lib.signals import GOLDEN_SIGNALS, MetricNames
from lib.sources.base import Snapshot, empty_frame, long_frame
from lib.sources.embedded import CURRENT_WINDOW_SCRAPES
from lib.timerange import TimeRange

log = logging.getLogger(__name__)

# Prometheus rejects a bad query with 400, a failed evaluation with 422, an overloaded or timed
# out query with 503, and an internal failure with 500, each with a JSON error body.
ERROR_STATUSES = (400, 422, 500, 503)
# The statuses of a query that is wrong in itself rather than a server in trouble.
INVALID_QUERY_STATUSES = (400, 422)
MAX_WORKERS = 16


class RejectedQuery(QueryError):
    """The server rejected a query as invalid or could not evaluate it (HTTP 400 or 422)."""


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
        """Run one query per signal for all `systems` concurrently (see `lib.promql.grouped`);
        return each system's frame, or the QueryError of its first failed query."""
        points = np.array(time_range.points(), dtype=float)
        started = time.monotonic()
        window, step = time_range.window, time_range.step

        def send(query: str, system: str | None) -> SeriesResult:
            return self._query_range_series(system, query, time_range)

        futures = {
            signal: self._submit_grouped(systems, _signal_of(signal, window, step), send)
            for signal in signals
        }
        by_signal = {signal: _collect(parts) for signal, parts in futures.items()}
        keys = [round(float(p), 3) for p in points]
        outcomes: dict[str, pd.DataFrame | QueryError] = {}
        for system in systems:
            parts: list[tuple[str, str, np.ndarray, np.ndarray]] = []
            warnings: list[str] = []
            for signal in signals:
                result = by_signal[signal][system]
                if isinstance(result, QueryError):
                    outcomes[system] = result
                    break
                found = result.points
                values = np.fromiter((found.get(key, math.nan) for key in keys), float, len(keys))
                parts.append((system, signal, points, values))
                warnings.extend(result.warnings)
            else:
                # One frame per system in one step costs a fraction of one frame per signal.
                frame = long_frame(parts)
                frame.attrs["time_range"] = time_range
                frame.attrs["warnings"] = _unique(warnings)
                outcomes[system] = frame
        failed = sum(isinstance(outcome, QueryError) for outcome in outcomes.values())
        # DEBUG: a page refresh sends these, and failures are reported by LastGood.
        log.debug(
            "%d range queries to %s for %d systems in %.3f s, %d systems failed",
            sum(len(parts) for parts in futures.values()), self.url, len(systems),
            time.monotonic() - started, failed,
        )
        return outcomes

    # -- current values ------------------------------------------------------------------------

    def snapshot(self, system: str, time_range: TimeRange, now: float) -> Snapshot:
        """Return the values of `system` at `now` and its availability over `time_range`."""
        outcome = self.snapshots([system], time_range, now)[system]
        if isinstance(outcome, QueryError):
            raise outcome
        return outcome

    def snapshots(
        self, systems: Sequence[str], time_range: TimeRange, now: float
    ) -> dict[str, Snapshot | QueryError]:
        """Return each system's values at `now` and its availability over `time_range`, or the
        QueryError of its first failed query. Each value is one query for all `systems`."""
        window = CURRENT_WINDOW_SCRAPES * self.scrape_interval
        interval = self.scrape_interval

        def at(moment: float) -> Callable[[str, str | None], SeriesResult]:
            return lambda query, system: self._query_series(system, query, moment)

        builders: dict[str, Callable[[SystemQueries], str]] = {
            signal: _signal_of(signal, window, interval) for signal in GOLDEN_SIGNALS
        }
        builders["_start_time"] = SystemQueries.process_start
        builders["_last_scrape"] = SystemQueries.last_scrape
        futures = {key: self._submit_grouped(systems, build, at(now))
                   for key, build in builders.items()}
        futures["_availability"] = self._submit_grouped(
            systems, lambda q: q.up_share(time_range.duration), at(time_range.end_s)
        )
        by_key = {key: _collect(parts) for key, parts in futures.items()}

        outcomes: dict[str, Snapshot | QueryError] = {}
        results: dict[str, dict[str, QueryResult]] = {}
        for system in systems:
            parts = {key: by_key[key][system] for key in by_key}
            error = next((r for r in parts.values() if isinstance(r, QueryError)), None)
            if error is not None:
                outcomes[system] = error
            else:
                results[system] = {k: r for k, r in parts.items() if isinstance(r, QueryResult)}

        # The latest successful scrape needs a query of its own only for a system that is down.
        down = [s for s, own in results.items() if _is_down(own)]
        last_success: dict[str, QueryResult | QueryError] = {}
        if down:
            span = max(time_range.duration, interval)
            last_success = _collect(self._submit_grouped(
                down, lambda q: q.last_success(span, interval), at(now)
            ))

        for system, own in results.items():
            found = last_success.get(system)
            if isinstance(found, QueryError):
                outcomes[system] = found
                continue
            outcomes[system] = self._snapshot(system, own, found)
        return {system: outcomes[system] for system in systems}

    def _snapshot(
        self, system: str, results: Mapping[str, QueryResult], last_success: QueryResult | None
    ) -> Snapshot:
        values = {key: _single(result) for key, result in results.items()}
        up = values["up"]
        last_scrape = values["_last_scrape"]
        return Snapshot(
            system=system,
            values={signal: _or_nan(values[signal]) for signal in GOLDEN_SIGNALS},
            availability=values["_availability"],
            process_start_time=values["_start_time"],
            last_scrape_at=last_scrape,
            last_success_at=(
                _single(last_success) if last_success is not None
                else last_scrape if up == 1 else None
            ),
            last_error=(
                f"the source's last scrape of job {self._queries(system).job!r} failed (up = 0)"
                if up == 0 else None
            ),
            warnings=_unique(w for result in results.values() for w in result.warnings),
        )

    # -- one query for several systems ---------------------------------------------------------

    def _submit_grouped(
        self,
        systems: Sequence[str],
        build: Callable[[SystemQueries], str],
        send: Callable[[str, str | None], SeriesResult],
    ) -> list[Future[dict[str, QueryResult | QueryError]]]:
        """Start the grouped queries of `build` for `systems` (usually one) on the pool."""
        queries = {system: self._queries(system) for system in systems}
        return [self._pool.submit(self._run_grouped, query, send)
                for query in grouped(queries, build)]

    def _run_grouped(
        self, query: GroupedQuery, send: Callable[[str, str | None], SeriesResult]
    ) -> dict[str, QueryResult | QueryError]:
        """Run `query` and split its series by job into its systems' results.

        A query that the server rejects as invalid or cannot evaluate (HTTP 400 or 422) runs again
        arm by arm, so that one system's bad metric name or matcher fails that system alone. Any
        other failure is the failure of every system in the query.
        """
        systems = query.systems
        only = systems[0] if len(systems) == 1 else None
        try:
            result = send(query.promql, only)
        except RejectedQuery as error:
            if len(query.arms) > 1:
                log.info("the server rejected a query for %s; running it again per group of "
                         "systems", ", ".join(systems))
                outcomes: dict[str, QueryResult | QueryError] = {}
                for arm in query.arms:
                    outcomes.update(self._run_grouped(GroupedQuery((arm,)), send))
                return outcomes
            return {system: _for_system(error, system) for system in systems}
        except QueryError as error:
            return {system: _for_system(error, system) for system in systems}

        points: dict[str, dict[float, float]] = {system: {} for system in systems}
        for labels, samples in result.series:
            # A query for one system takes every series, with or without a job label.
            owner = only or query.system_of(labels.get("job"))
            if owner is None:
                continue
            merged = points[owner]
            for ts, value in samples.items():
                merged[ts] = merged.get(ts, 0.0) + value
        return {system: QueryResult(points[system], result.warnings) for system in systems}

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

    def _query(self, system: str | None, query: str, at: float) -> QueryResult:
        """Run an instant query and merge its series into one (for a rule's expression)."""
        result = self._query_series(system, query, at)
        points: dict[float, float] = {}
        for _, samples in result.series:
            for ts, value in samples.items():
                points[ts] = points.get(ts, 0.0) + value
        return QueryResult(points, result.warnings)

    def _query_range_series(
        self, system: str | None, query: str, time_range: TimeRange
    ) -> SeriesResult:
        params = _range_params(query, time_range)
        body = self._request_body(system, "/api/v1/query_range", query, params)
        return _parse_series(self.url, query, system, body, "matrix")

    def _query_series(self, system: str | None, query: str, at: float) -> SeriesResult:
        params = {"query": query, "time": _format_time(at)}
        body = self._request_body(system, "/api/v1/query", query, params)
        return _parse_series(self.url, query, system, body, "vector")

    def _request_body(
        self, system: str | None, path: str, query: str, params: dict[str, str]
    ) -> dict[str, Any]:
        """Send one query and return the server's successful JSON response. `system` is the
        system the query serves, None when it serves several."""
        log_name = system or "several systems"
        try:
            response = fetch(
                self.client, self.url + path, policy=self._policy, headers=self._headers,
                auth=self._auth, method="POST", data=params, accept_statuses=ERROR_STATUSES,
            )
        except FetchError as error:
            # DEBUG, as is the rejection below: the callers (LastGood for the pages, the rule
            # evaluator's task) report a failing source at WARNING once per five minutes, and a
            # refresh sends several queries.
            log.debug("query for %s on %s failed: %s", log_name, self.url, error.detail)
            raise QueryError(self.url, query, f"the server {error.detail}", system) from error

        log.debug("query for %s took %.3f s: %s", log_name, response.duration, query)
        body = _decode(self.url, query, system, response.body, response.content_type)
        if body.get("status") == "error":
            kind = body.get("errorType") or f"HTTP {response.status_code}"
            message = body.get("error") or "no error message"
            log.debug("query for %s on %s was rejected: %s", log_name, self.url, message)
            detail = f"the server rejected it ({kind}): {message}"
            if response.status_code in INVALID_QUERY_STATUSES:
                raise RejectedQuery(self.url, query, detail, system)
            raise QueryError(self.url, query, detail, system)
        return body


def combine(frames: Sequence[pd.DataFrame], time_range: TimeRange) -> pd.DataFrame:
    """Concatenate per-system frames, keeping the union of their warnings in `attrs`."""
    warnings = _unique(w for frame in frames for w in frame.attrs.get("warnings", ()))
    frame = pd.concat(frames, ignore_index=True) if frames else empty_frame()
    frame.attrs["time_range"] = time_range
    frame.attrs["warnings"] = warnings
    return frame


def _decode(
    server: str, query: str, system: str | None, body: bytes, content_type: str
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
    server: str, query: str, system: str | None, body: Mapping[str, Any], expected: str
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


def _parse_series(
    server: str, query: str, system: str | None, body: Mapping[str, Any], expected: str
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


def _collect(
    futures: Sequence[Future[dict[str, QueryResult | QueryError]]],
) -> dict[str, QueryResult | QueryError]:
    """Wait for grouped queries and merge their results, which name disjoint systems."""
    merged: dict[str, QueryResult | QueryError] = {}
    for future in futures:
        merged.update(future.result())
    return merged


def _for_system(error: QueryError, system: str) -> QueryError:
    """Return `error` as the error of `system`, one of the systems its query served."""
    if error.system == system:
        return error
    copy = type(error)(error.server, error.query, error.detail, system)
    copy.__cause__ = error.__cause__
    return copy


def _signal_of(signal: str, window: float, step: float) -> Callable[[SystemQueries], str]:
    """Return the builder of `signal`'s expression for `lib.promql.grouped`."""
    return lambda queries: queries.signal(signal, window, step)


def _is_down(results: Mapping[str, QueryResult]) -> bool:
    """Return whether the system's share of successful scrapes is below 1."""
    up = _single(results["up"])
    return up is not None and up < 1


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
