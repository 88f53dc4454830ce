"""Per-label breakdowns of one system's own metrics: rates, gauges, quantiles and totals by label.

A breakdown frame is long: one row per evaluation point and group, with the columns timestamp
(UTC), series (the group's label values joined by " / "), one column per grouping label, and
value. Quantile frames also carry a `quantile` column. `frame.attrs` contains the time range, the
metric, the grouping labels and the kind.

A source that can break metrics down implements `BreakdownSource`. The embedded store evaluates
each series like Prometheus and sums by label (`sum by (labels) (rate(metric[window]))`);
`breakdown_promql` writes the same query for a Prometheus-compatible backend.
"""

from __future__ import annotations

import calendar
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from lib.promql import quote
from lib.signals import histogram_quantile
from lib.timerange import TimeRange

BreakdownKind = Literal["rate", "gauge", "quantile", "increase"]
BREAKDOWN_KINDS: tuple[str, ...] = ("rate", "gauge", "quantile", "increase")
DEFAULT_QUANTILES: tuple[float, ...] = (0.5, 0.95, 0.99)
ALL_SERIES = "all"
SERIES_SEPARATOR = " / "
# The current rate behind a month-end projection is the rate over this many seconds.
PROJECTION_RATE_WINDOW = 3600.0


@runtime_checkable
class BreakdownSource(Protocol):
    """A source that evaluates one metric grouped by labels."""

    def breakdown(
        self,
        system: str,
        metric: str,
        by: Sequence[str],
        kind: BreakdownKind,
        time_range: TimeRange,
        quantiles: Sequence[float] = DEFAULT_QUANTILES,
    ) -> pd.DataFrame:
        """Return the breakdown frame of `metric` grouped by the labels `by`.

        `rate` is per second at each point over the range's window. `gauge` is the last value
        at each point. `quantile` reads the histogram `metric` (named without `_bucket`) and
        returns one line per group and quantile. `increase` returns one row per group at the
        range's end with the increase from its start.
        """
        ...


def breakdown_promql(
    metric: str,
    by: Sequence[str],
    kind: BreakdownKind,
    job: str,
    window: str,
    quantile: float | None = None,
    extra_matchers: str = "",
) -> str:
    """Return the PromQL that a Prometheus-compatible source sends for one breakdown.

    `window` is a PromQL duration such as "5m"; for `increase` it is the whole range.
    `extra_matchers` are further label matchers without braces, such as `cluster="prod"`.
    """
    matchers = f"job={quote(job)}" + (f",{extra_matchers}" if extra_matchers else "")
    selector = f"{metric}{{{matchers}}}"
    grouping = ", ".join(by)
    match kind:
        case "rate":
            return f"sum by ({grouping}) (rate({selector}[{window}]))"
        case "increase":
            return f"sum by ({grouping}) (increase({selector}[{window}]))"
        case "gauge":
            return f"sum by ({grouping}) ({selector})"
        case "quantile":
            if quantile is None:
                raise ValueError("A quantile breakdown needs the quantile, e.g. 0.95.")
            buckets = f"{metric}_bucket{{{matchers}}}"
            labels = ", ".join((*by, "le"))
            return (
                f"histogram_quantile({quantile:g}, "
                f"sum by ({labels}) (rate({buckets}[{window}])))"
            )
    raise ValueError(f"Unknown breakdown kind {kind!r}. Use one of {BREAKDOWN_KINDS}.")


@dataclass(frozen=True)
class SeriesSamples:
    """One stored series: its labels and its samples sorted by time."""

    labels: dict[str, str]
    ts: np.ndarray
    values: np.ndarray


def group_samples(rows: Iterable[tuple[str, float, float]]) -> list[SeriesSamples]:
    """Split store rows (labels json, ts, value), ordered by series and time, into series."""
    series: list[SeriesSamples] = []
    current: str | None = None
    times: list[float] = []
    values: list[float] = []
    for labels, ts, value in rows:
        if labels != current:
            if current is not None:
                series.append(_series(current, times, values))
            current, times, values = labels, [], []
        times.append(ts)
        values.append(math.nan if value is None else value)
    if current is not None:
        series.append(_series(current, times, values))
    return series


def _series(labels: str, times: list[float], values: list[float]) -> SeriesSamples:
    return SeriesSamples(json.loads(labels), np.array(times, dtype=float),
                         np.array(values, dtype=float))


def group_key(labels: dict[str, str], by: Sequence[str]) -> tuple[str, ...]:
    """Return the values of the labels `by`; a missing label is the empty string."""
    return tuple(labels.get(name, "") for name in by)


def series_name(key: tuple[str, ...]) -> str:
    """Return the text that names a group in legends and tables."""
    return SERIES_SEPARATOR.join(key) if key else ALL_SERIES


def rates_at(
    series: SeriesSamples, points: np.ndarray, window: float, slack: float
) -> np.ndarray:
    """Return the per-second increase of one reset-corrected counter over (t - window, t].

    As in the embedded signals, the left sample is the last at or before t - window and must lie
    within `slack` of it, and the right sample is the last at or before t inside the window.
    """
    increase, elapsed = _window_increase(series, points, window, slack)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate: np.ndarray = increase / elapsed
    return rate


def _window_increase(
    series: SeriesSamples, points: np.ndarray, window: float, slack: float
) -> tuple[np.ndarray, np.ndarray]:
    present = ~np.isnan(series.values)
    ts, values = series.ts[present], series.values[present]
    nan = np.full(len(points), np.nan)
    if not len(ts):
        return nan, nan
    right = np.searchsorted(ts, points, side="right") - 1
    left = np.searchsorted(ts, points - window, side="right") - 1
    safe_left, safe_right = np.clip(left, 0, None), np.clip(right, 0, None)
    valid = (left >= 0) & (right > left)
    valid &= ts[safe_right] > points - window
    valid &= ts[safe_left] >= points - window - slack
    increase = np.where(valid, values[safe_right] - values[safe_left], np.nan)
    elapsed = np.where(valid, ts[safe_right] - ts[safe_left], np.nan)
    return increase, elapsed


def gauge_at(series: SeriesSamples, points: np.ndarray, lookback: float) -> np.ndarray:
    """Return the last value at or before each point, NaN when older than `lookback`."""
    if not len(series.ts):
        return np.full(len(points), np.nan)
    index = np.searchsorted(series.ts, points, side="right") - 1
    safe = np.clip(index, 0, None)
    valid = (index >= 0) & (points - series.ts[safe] <= lookback)
    return np.where(valid, series.values[safe], np.nan)


def increase_between(series: SeriesSamples, start: float, end: float) -> float:
    """Return the increase of one reset-corrected counter from `start` to `end`.

    The baseline is the last sample at or before `start`, or else the series's first sample in
    the range, so that totals from before the range never count.
    """
    present = ~np.isnan(series.values)
    ts, values = series.ts[present], series.values[present]
    right = int(np.searchsorted(ts, end, side="right")) - 1
    if right < 0:
        return math.nan
    left = int(np.searchsorted(ts, start, side="right")) - 1
    baseline = values[left] if left >= 0 else values[0]
    return float(values[right] - baseline)


def sum_by(
    series: Sequence[SeriesSamples], by: Sequence[str], values: Sequence[np.ndarray]
) -> dict[tuple[str, ...], np.ndarray]:
    """Sum per-series arrays into groups; a point is NaN only where every member is NaN."""
    grouped: dict[tuple[str, ...], list[np.ndarray]] = {}
    for member, array in zip(series, values, strict=True):
        grouped.setdefault(group_key(member.labels, by), []).append(array)
    sums: dict[tuple[str, ...], np.ndarray] = {}
    for key, arrays in grouped.items():
        stacked = np.vstack(arrays)
        total = np.nansum(stacked, axis=0)
        sums[key] = np.where(np.isnan(stacked).all(axis=0), np.nan, total)
    return dict(sorted(sums.items()))


def quantiles_by(
    buckets: Sequence[SeriesSamples],
    by: Sequence[str],
    points: np.ndarray,
    window: float,
    slack: float,
    quantiles: Sequence[float],
) -> dict[tuple[tuple[str, ...], float], np.ndarray]:
    """Return histogram_quantile of the bucket increases over each window, per group and q.

    `buckets` are the `_bucket` series, whose `le` label is the upper bound.
    """
    increases = [_window_increase(member, points, window, slack)[0] for member in buckets]
    by_le = [*by, "le"]
    summed = sum_by(buckets, by_le, increases)
    groups: dict[tuple[str, ...], dict[float, np.ndarray]] = {}
    for key, counts in summed.items():
        groups.setdefault(key[:-1], {})[float(key[-1])] = counts

    result: dict[tuple[tuple[str, ...], float], np.ndarray] = {}
    for key, per_bound in sorted(groups.items()):
        bounds = np.array(sorted(per_bound), dtype=float)
        matrix = np.column_stack([per_bound[bound] for bound in bounds])
        for q in quantiles:
            result[(key, q)] = np.array(
                [histogram_quantile(q, bounds, row) for row in matrix], dtype=float
            )
    return result


def quantile_label(q: float) -> str:
    """Return p50, p95, p99.9 for 0.5, 0.95, 0.999."""
    return f"p{q * 100:g}"


def breakdown_frame(
    points: np.ndarray,
    groups: dict[tuple[str, ...], np.ndarray],
    by: Sequence[str],
) -> pd.DataFrame:
    """Return the long breakdown frame of per-group arrays at `points` (epoch seconds)."""
    frames = []
    timestamps = pd.to_datetime(points, unit="s", utc=True)
    for key, values in groups.items():
        frame = pd.DataFrame({"timestamp": timestamps, "series": series_name(key)})
        for name, value in zip(by, key, strict=True):
            frame[name] = value
        frame["value"] = values.astype(float)
        frames.append(frame)
    if not frames:
        return _empty_breakdown(by)
    return pd.concat(frames, ignore_index=True)


def quantile_frame(
    points: np.ndarray,
    groups: dict[tuple[tuple[str, ...], float], np.ndarray],
    by: Sequence[str],
) -> pd.DataFrame:
    """Return the long frame of per-group quantiles; `series` names the group and quantile."""
    frames = []
    timestamps = pd.to_datetime(points, unit="s", utc=True)
    for (key, q), values in groups.items():
        label = quantile_label(q)
        name = f"{series_name(key)} {label}" if key else label
        frame = pd.DataFrame({"timestamp": timestamps, "series": name})
        for label_name, value in zip(by, key, strict=True):
            frame[label_name] = value
        frame["quantile"] = label
        frame["value"] = values.astype(float)
        frames.append(frame)
    if not frames:
        empty = _empty_breakdown(by)
        empty.insert(len(empty.columns) - 1, "quantile", pd.Series([], dtype=object))
        return empty
    return pd.concat(frames, ignore_index=True)


def _empty_breakdown(by: Sequence[str]) -> pd.DataFrame:
    columns: dict[str, pd.Series] = {
        "timestamp": pd.Series([], dtype="datetime64[ns, UTC]"),
        "series": pd.Series([], dtype=object),
    }
    for name in by:
        columns[name] = pd.Series([], dtype=object)
    columns["value"] = pd.Series([], dtype=float)
    return pd.DataFrame(columns)


# -- tables and figures built from breakdowns ---------------------------------------------------


def top_n(
    source: BreakdownSource,
    system: str,
    metric: str,
    by: Sequence[str],
    time_range: TimeRange,
    n: int = 10,
) -> pd.DataFrame:
    """Return the `n` largest groups by their increase over the range, largest first.

    Columns: the grouping labels, `total` (increase over the range), `per_second` (total divided
    by the range's duration) and `share` (of the sum over every group, 0..1).
    """
    totals = source.breakdown(system, metric, by, "increase", time_range)
    table = totals[[*by, "value"]].rename(columns={"value": "total"})
    table = table.dropna(subset=["total"])
    grand_total = float(table["total"].sum())
    table["per_second"] = table["total"] / time_range.duration
    table["share"] = table["total"] / grand_total if grand_total > 0 else 0.0
    table = table.sort_values("total", ascending=False, kind="stable").head(n)
    return table.reset_index(drop=True)


def error_share(
    source: BreakdownSource,
    system: str,
    metric: str,
    time_range: TimeRange,
    by: str = "provider",
    status_label: str = "status",
    error_values: Sequence[str] = ("error",),
) -> pd.DataFrame:
    """Return the share of requests whose `status_label` is an error, per `by` group and point.

    The share is 0 where a group had no requests in the window, as the error_rate signal does,
    and NaN where there is no data.
    """
    rates = source.breakdown(system, metric, (by, status_label), "rate", time_range)
    if rates.empty:
        return _empty_breakdown((by,))
    errors = rates[rates[status_label].isin(error_values)]
    total = rates.groupby(["timestamp", by], sort=True)["value"].sum(min_count=1)
    failed = errors.groupby(["timestamp", by], sort=True)["value"].sum(min_count=1)
    failed = failed.reindex(total.index).fillna(0.0).where(total.notna())
    share = (failed / total).where(total != 0, 0.0).where(total.notna())
    frame = share.rename("value").reset_index()
    frame.insert(1, "series", frame[by])
    return frame[["timestamp", "series", by, "value"]]


def error_share_table(
    source: BreakdownSource,
    system: str,
    metric: str,
    time_range: TimeRange,
    by: str = "provider",
    status_label: str = "status",
    error_values: Sequence[str] = ("error",),
) -> pd.DataFrame:
    """Return per `by` group the requests and errors over the range and their ratio."""
    totals = source.breakdown(system, metric, (by, status_label), "increase", time_range)
    totals = totals.dropna(subset=["value"])
    requests = totals.groupby(by, sort=True)["value"].sum()
    errors = totals[totals[status_label].isin(error_values)].groupby(by)["value"].sum()
    errors = errors.reindex(requests.index).fillna(0.0)
    share = (errors / requests).where(requests > 0, 0.0)
    table = pd.DataFrame({"requests": requests, "errors": errors, "error_share": share})
    return table.reset_index().sort_values("error_share", ascending=False, kind="stable")


@dataclass(frozen=True)
class MonthCost:
    """AI cost of the calendar month (UTC) so far and projected to its end, in US dollars.

    `covered_since` is the first moment of this month that the source has data for, later than
    `month_start` when collection began during the month.
    """

    month_start: datetime
    month_end: datetime
    now: datetime
    so_far_usd: float
    rate_usd_per_hour: float
    projected_usd: float
    covered_since: datetime | None


def month_bounds(now: float) -> tuple[datetime, datetime]:
    """Return the start and end (exclusive) of the UTC calendar month containing `now`."""
    moment = datetime.fromtimestamp(now, UTC)
    start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    days = calendar.monthrange(moment.year, moment.month)[1]
    return start, start + timedelta(days=days)


def explicit_range(start: float, end: float, step: float, window: float, label: str) -> TimeRange:
    """Return a TimeRange with exactly these bounds, without the preset step rules."""
    return TimeRange(datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC),
                     step, window, label)


def month_cost(
    source: BreakdownSource,
    system: str,
    metric: str,
    now: float,
    rate_window: float = PROJECTION_RATE_WINDOW,
) -> MonthCost:
    """Return the cost counter's increase this month and its projection to the month's end.

    The projection adds the rate over the last `rate_window` seconds (or over the data there is,
    if shorter), held until the month ends, to the cost so far.
    """
    start, end = month_bounds(now)
    month = explicit_range(start.timestamp(), now, max(now - start.timestamp(), 1.0),
                           max(now - start.timestamp(), 1.0), "this month")
    totals = source.breakdown(system, metric, (), "increase", month)
    so_far = float(totals["value"].sum()) if not totals.empty else math.nan

    recent = explicit_range(now - rate_window, now, rate_window, rate_window, "last hour")
    increase = source.breakdown(system, metric, (), "increase", recent)
    # With less than `rate_window` of data, the rate is over the time that has data.
    recent_start = max(increase.attrs.get("covered_since") or now - rate_window,
                       now - rate_window)
    per_hour = math.nan
    if not increase.empty and now > recent_start:
        per_hour = float(increase["value"].sum()) * 3600.0 / (now - recent_start)
    remaining_hours = (end.timestamp() - now) / 3600.0
    covered = totals.attrs.get("covered_since")
    return MonthCost(
        month_start=start,
        month_end=end,
        now=datetime.fromtimestamp(now, UTC),
        so_far_usd=so_far,
        rate_usd_per_hour=per_hour,
        projected_usd=so_far + per_hour * remaining_hours,
        covered_since=datetime.fromtimestamp(covered, UTC) if covered is not None else None,
    )
