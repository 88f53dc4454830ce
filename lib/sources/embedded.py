"""Signals from the embedded store, with Prometheus's semantics.

Each point t of a range is evaluated like an instant query at t: a rate is the increase of the
reset-corrected per-system sum between the last row at or before t - window and the last row at
or before t, divided by the time between them; a gauge is the value of the last row at or before
t, unless that scrape failed or is older than the lookback (Prometheus's 5 minutes).

The store is itself the last good data of every system: when a target's last scrape failed, its
snapshot holds the values at its last successful scrape, marked stale with the collector's reason.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import pandas as pd

from lib.breakdowns import (
    DEFAULT_QUANTILES,
    BreakdownKind,
    breakdown_frame,
    gauge_at,
    group_samples,
    increase_between,
    quantile_frame,
    quantiles_by,
    rates_at,
    sum_by,
)
from lib.format import format_duration
from lib.signals import histogram_quantiles
from lib.sources.base import FRESHNESS_ATTR, Freshness, Snapshot, long_frame
from lib.store import ROLLUP_RESOLUTIONS, SAMPLE_ROLLUP, AggregateSeries, Store, TargetRecord
from lib.timerange import TimeRange

LOOKBACK_S = 300.0
RATE_SIGNALS = {
    "requests_per_second": ("requests", 1.0),
    "cpu_usage": ("cpu_seconds", 1.0),
    "cost_per_hour": ("cost_usd", 3600.0),
}
GAUGE_SIGNALS = {"active_connections": "in_flight", "memory_usage": "memory_bytes"}
# Current values on the Overview use this many scrape intervals, like a dashboard's 1m rate.
CURRENT_WINDOW_SCRAPES = 4


class EmbeddedSource:
    """Reads the store that the embedded collector writes."""

    # Reads are CPU work on a local file, so the Monitor runs the systems' fetches one after
    # another: concurrent threads would only take the interpreter lock from each other.
    concurrent_fetches = False

    def __init__(self, store: Store, scrape_interval: float, memo_size: int = 64) -> None:
        self.store = store
        self.scrape_interval = scrape_interval
        self.label = f"embedded store ({store.path})"
        # Each system's evaluated frame, keyed by its query and the store's latest write for it.
        # A refresh before the next scrape is written gets the same frame again, as
        # VictoriaMetrics's result cache serves a repeated range. A memo_size of 0 turns it off.
        self._memo: OrderedDict[tuple[object, ...], pd.DataFrame] = OrderedDict()
        self._memo_size = memo_size
        self._memo_lock = threading.Lock()

    def signals(
        self, systems: Sequence[str], time_range: TimeRange, signals: Sequence[str]
    ) -> pd.DataFrame:
        """Return a long frame of `signals` for `systems` at the points of `time_range`."""
        frames = [self._system_frame(system, time_range, signals) for system in systems]
        if len(frames) == 1:
            # A shallow copy: the memo keeps its own attributes, and copy-on-write keeps its
            # values from a caller's changes.
            frame = frames[0].copy(deep=False)
        else:
            frame = pd.concat(frames, ignore_index=True) if frames else long_frame([])
        frame.attrs = {"time_range": time_range}
        records = self._records()
        frame.attrs[FRESHNESS_ATTR] = {
            system: target_freshness(system, records.get(system), time_range.end_s,
                                     self.scrape_interval)
            for system in systems
        }
        return frame

    def _system_frame(
        self, system: str, time_range: TimeRange, signals: Sequence[str]
    ) -> pd.DataFrame:
        """Return the long frame of one system's `signals`, evaluated or from the memo."""
        key = None
        if self._memo_size:
            key = (system, tuple(signals), time_range.start_s, time_range.end_s,
                   time_range.step, time_range.window, self.store.latest_write(system))
            with self._memo_lock:
                cached = self._memo.get(key)
                if cached is not None:
                    self._memo.move_to_end(key)
                    return cached
        points = np.array(time_range.points(), dtype=float)
        resolution = pick_resolution(time_range.step, self.scrape_interval)
        series = self.store.aggregate_series(
            system, time_range.start_s - time_range.window - 2 * max(resolution, 1.0),
            time_range.end_s, resolution,
        )
        evaluator = Evaluator(series, self.scrape_interval)
        frame = long_frame([
            (system, signal, points,
             evaluator.evaluate(signal, points, time_range.window, time_range.step))
            for signal in signals
        ])
        if key is not None:
            with self._memo_lock:
                self._memo[key] = frame
                while len(self._memo) > self._memo_size:
                    self._memo.popitem(last=False)
        return frame

    def snapshot(self, system: str, time_range: TimeRange, now: float) -> Snapshot:
        """Return the latest values of `system` and its availability over `time_range`.

        When the last scrape failed, the values are those at the last successful scrape, except
        `up`, which is 0 as it is now.
        """
        record = self._records().get(system)
        freshness = target_freshness(system, record, now, self.scrape_interval)
        at = now
        if freshness.stale and freshness.data_at is not None:
            at = min(now, freshness.data_at)
        window = CURRENT_WINDOW_SCRAPES * self.scrape_interval
        recent = self.store.aggregate_series(system, at - window - LOOKBACK_S, now, 0)
        evaluator = Evaluator(recent, self.scrape_interval)
        point = np.array([at])
        values = {
            signal: float(evaluator.evaluate(signal, point, window, self.scrape_interval)[0])
            for signal in (*RATE_SIGNALS, *GAUGE_SIGNALS, "error_rate", "average_latency_ms",
                           "p95_latency_ms")
        }
        values["up"] = float(evaluator.evaluate("up", np.array([now]), window,
                                                self.scrape_interval)[0])
        start_times = recent.columns["start_time"]
        known = start_times[~np.isnan(start_times)]
        return Snapshot(
            system=system,
            values=values,
            availability=self.availability(system, time_range),
            process_start_time=float(known[-1]) if len(known) else None,
            last_scrape_at=record.last_scrape_at if record else None,
            last_success_at=record.last_success_at if record else None,
            last_error=record.last_error if record else None,
            freshness=freshness,
        )

    def _records(self) -> dict[str, TargetRecord]:
        return {record.system: record for record in self.store.targets()}

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

        Steps finer than 5 minutes read every scrape from `samples`; coarser steps read the
        5-minute roll-up `samples_5m`, which is also kept longer.
        """
        rollup = time_range.step >= SAMPLE_ROLLUP
        spacing = float(SAMPLE_ROLLUP) if rollup else self.scrape_interval
        slack = 1.5 * spacing
        points = np.array(time_range.points(), dtype=float)
        name = f"{metric}_bucket" if kind == "quantile" else metric
        reach = LOOKBACK_S if kind == "gauge" else time_range.window + 2 * spacing
        if kind == "increase":
            reach = 2 * spacing
        rows = self.store.series_samples(
            system, name, time_range.start_s - reach, time_range.end_s, rollup
        )
        if kind == "increase" and rollup and rows:
            rows = self._with_raw_edges(system, name, rows, time_range.end_s)
        series = group_samples(rows)

        if kind == "rate":
            values = [rates_at(s, points, time_range.window, slack) for s in series]
            frame = breakdown_frame(points, sum_by(series, by, values), by)
        elif kind == "gauge":
            lookback = max(LOOKBACK_S, 2 * spacing)
            values = [gauge_at(s, points, lookback) for s in series]
            frame = breakdown_frame(points, sum_by(series, by, values), by)
        elif kind == "quantile":
            groups = quantiles_by(series, by, points, time_range.window, slack, quantiles)
            frame = quantile_frame(points, groups, by)
        elif kind == "increase":
            end = np.array([time_range.end_s])
            values = [np.array([increase_between(s, time_range.start_s, time_range.end_s)])
                      for s in series]
            frame = breakdown_frame(end, sum_by(series, by, values), by)
            inside = [float(s.ts[s.ts >= time_range.start_s - slack].min()) for s in series
                      if (s.ts >= time_range.start_s - slack).any()]
            frame.attrs["covered_since"] = max(min(inside), time_range.start_s) if inside \
                else None
        else:
            raise ValueError(f"unknown breakdown kind {kind!r}")

        frame.attrs.update(time_range=time_range, metric=metric, by=tuple(by), kind=kind)
        return frame

    def _with_raw_edges(
        self, system: str, name: str, rows: list[tuple[str, float, float]], end: float
    ) -> list[tuple[str, float, float]]:
        """Add the raw samples of the first roll-up bucket and of the 5 minutes before `end`
        to roll-up `rows`.

        A roll-up bucket keeps its last sample, so without the raw ones an increase would miss
        the first bucket's own increase and end at the last bucket before `end`. Raw samples
        past their retention are absent, and then the roll-up alone counts.
        """
        first = min(ts for _, ts, _ in rows)
        head = self.store.series_samples(system, name, first - SAMPLE_ROLLUP, first, False)
        tail = self.store.series_samples(system, name, end - SAMPLE_ROLLUP, end, False)
        merged = {(labels, ts): value for labels, ts, value in rows}
        merged.update({(labels, ts): value for labels, ts, value in (*head, *tail)})
        return [(labels, ts, value) for (labels, ts), value in sorted(merged.items())]

    def availability(self, system: str, time_range: TimeRange) -> float | None:
        """Return the share of successful scrapes in the range, None without scrapes."""
        counts = self.store.scrape_counts(
            system, time_range.start_s, time_range.end_s + self.scrape_interval
        )
        if counts is None:
            return None
        scrapes, ups = counts
        return float(ups / scrapes) if scrapes > 0 else None


def target_freshness(
    system: str, record: TargetRecord | None, now: float, scrape_interval: float | None = None
) -> Freshness:
    """Return the freshness of `system` from the collector's record of its target: fresh while
    the last scrape succeeded, stale since the last success while it fails, no data before the
    first success.

    With `scrape_interval`, a last scrape older than `scrape_overdue(scrape_interval)` is stale
    too: the record says nothing new because no collector writes it (stopped, or still loading
    history), not because the target is well.
    """
    if record is None:
        return Freshness.no_data(system, now, "The first scrape has not finished yet.")
    if record.last_success_at is None:
        reason = record.last_error or "The first scrape has not finished yet."
        return Freshness.no_data(system, now, reason)
    if record.health != "up":
        reason = record.last_error or "The last scrape failed."
        return Freshness.stale_since(system, now, record.last_success_at, reason)
    last_scrape = record.last_scrape_at or record.last_success_at
    if scrape_interval is not None and now - last_scrape > scrape_overdue(scrape_interval):
        reason = (
            f"No scrape for {format_duration(now - last_scrape)}: the collector is not running "
            "or is still loading history. What to check: the process that runs it (the app, "
            "or python -m lib.collect) and its log."
        )
        return Freshness.stale_since(system, now, record.last_success_at, reason)
    return Freshness.fresh(system, now, record.last_success_at)


def scrape_overdue(scrape_interval: float) -> float:
    """Return how long after the last scrape (seconds) the next one counts as overdue: three
    intervals, and at least ten seconds more than one, for cycles delayed by slow targets."""
    return max(3 * scrape_interval, scrape_interval + 10.0)


def pick_resolution(step: float, scrape_interval: float) -> int:
    """Return the coarsest store resolution (seconds, 0 = every scrape) that is not coarser than
    the step, so that each point still gets its own row."""
    chosen = 0
    for resolution in ROLLUP_RESOLUTIONS:
        if resolution <= step and resolution > scrape_interval:
            chosen = resolution
    return chosen


class Evaluator:
    """Evaluates catalog signals over one system's aggregates rows."""

    def __init__(self, series: AggregateSeries, scrape_interval: float) -> None:
        self.series = series
        # A window's left row may sit up to one row spacing before the window's start.
        self.slack = 1.5 * max(series.resolution, scrape_interval)
        self.lookback = max(LOOKBACK_S, 2.0 * series.resolution)

    def evaluate(
        self, signal: str, points: np.ndarray, window: float, step: float
    ) -> np.ndarray:
        """Return `signal` at `points` (epoch seconds); NaN where there is no data."""
        columns = self.series.columns
        if signal in RATE_SIGNALS:
            column, scale = RATE_SIGNALS[signal]
            return self._rate(columns[column], points, window) * scale
        if signal in GAUGE_SIGNALS:
            return self._gauge(columns[GAUGE_SIGNALS[signal]], points)
        if signal == "error_rate":
            errors, requests = self._deltas(columns["errors"], columns["requests"], points, window)
            with np.errstate(invalid="ignore", divide="ignore"):
                no_traffic = np.where(requests == 0, 0.0, np.nan)
                return np.where(requests > 0, errors / requests, no_traffic)
        if signal == "average_latency_ms":
            total, count = self._deltas(
                columns["duration_sum"], columns["duration_count"], points, window
            )
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(count > 0, 1000.0 * total / count, np.nan)
        if signal == "p95_latency_ms":
            return self._quantile(0.95, points, window) * 1000.0
        if signal == "up":
            return self._up(points, step)
        raise KeyError(f"unknown signal {signal!r}")

    def _window_rows(
        self, present: np.ndarray, points: np.ndarray, window: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return (left, right, valid): indexes into the rows where `present` is true, of the last
        row at or before t - window and at or before t, for each point t."""
        ts = self.series.ts[present]
        right = np.searchsorted(ts, points, side="right") - 1
        left = np.searchsorted(ts, points - window, side="right") - 1
        valid = (left >= 0) & (right > left)
        safe_left = np.clip(left, 0, None)
        safe_right = np.clip(right, 0, None)
        if len(ts):
            valid &= ts[safe_right] > points - window
            valid &= ts[safe_left] >= points - window - self.slack
        else:
            valid &= False
        return safe_left, safe_right, valid

    def _rate(self, values: np.ndarray, points: np.ndarray, window: float) -> np.ndarray:
        present = ~np.isnan(values)
        left, right, valid = self._window_rows(present, points, window)
        ts, kept = self.series.ts[present], values[present]
        if not len(ts):
            return np.full(len(points), np.nan)
        elapsed = ts[right] - ts[left]
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = (kept[right] - kept[left]) / elapsed
        return np.where(valid, rate, np.nan)

    def _deltas(
        self, numerator: np.ndarray, denominator: np.ndarray, points: np.ndarray, window: float
    ) -> tuple[np.ndarray, np.ndarray]:
        present = ~np.isnan(denominator) & ~np.isnan(numerator)
        left, right, valid = self._window_rows(present, points, window)
        top, bottom = numerator[present], denominator[present]
        if not len(top):
            nan = np.full(len(points), np.nan)
            return nan, nan
        return (
            np.where(valid, top[right] - top[left], np.nan),
            np.where(valid, bottom[right] - bottom[left], np.nan),
        )

    def _gauge(self, values: np.ndarray, points: np.ndarray) -> np.ndarray:
        ts = self.series.ts
        if not len(ts):
            return np.full(len(points), np.nan)
        index = np.searchsorted(ts, points, side="right") - 1
        safe = np.clip(index, 0, None)
        valid = (index >= 0) & (points - ts[safe] <= self.lookback)
        return np.where(valid, values[safe], np.nan)

    def _quantile(self, q: float, points: np.ndarray, window: float) -> np.ndarray:
        buckets = self.series.buckets
        if buckets.shape[1] == 0:
            return np.full(len(points), np.nan)
        present = ~np.isnan(buckets).any(axis=1)
        left, right, valid = self._window_rows(present, points, window)
        kept = buckets[present]
        result = np.full(len(points), np.nan)
        chosen = np.flatnonzero(valid)
        deltas = kept[right[chosen]] - kept[left[chosen]]
        result[chosen] = histogram_quantiles(q, self.series.bucket_bounds, deltas)
        return result

    def _up(self, points: np.ndarray, step: float) -> np.ndarray:
        ts = self.series.ts
        if not len(ts):
            return np.full(len(points), np.nan)
        right = np.searchsorted(ts, points, side="right") - 1
        left = np.searchsorted(ts, points - step, side="right") - 1
        safe_right = np.clip(right, 0, None)
        scrapes = np.where(left >= 0, self.series.scrapes[safe_right] - self.series.scrapes[
            np.clip(left, 0, None)], np.nan)
        ups = np.where(left >= 0, self.series.ups[safe_right] - self.series.ups[
            np.clip(left, 0, None)], np.nan)
        fresh = (right >= 0) & (points - ts[safe_right] <= max(step, self.lookback))
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(scrapes > 0, ups / scrapes, np.nan)
        # With no scrape inside the step, the last scrape's own result is used (as an instant
        # query of `up` would return it).
        share = np.where(np.isnan(share) & fresh, self.series.up[safe_right], share)
        return np.where(fresh, share, math.nan)
