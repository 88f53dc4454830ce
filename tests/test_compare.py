"""The previous-period overlay lines up with the data exactly one day or one week earlier."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lib.breakdown_charts import breakdown_chart
from lib.breakdowns import breakdown_frame
from lib.charts import signal_chart
from lib.compare import COMPARISONS, format_change, previous_period, shift_forward, with_change
from lib.sources.embedded import EmbeddedSource
from lib.store import AggregateRow, Store
from lib.timerange import TimeRange

SCRAPE = 15.0
NOW = 1_700_600_400.0  # a multiple of 15 s
ORIGIN = NOW - 8 * 86400.0
# The request rate grows linearly, so every point of a period differs from a day or a week
# earlier: rate(t) = BASE + SLOPE * (t - ORIGIN) requests per second.
BASE = 5.0
SLOPE = 1e-5


def requests_total(t: float) -> float:
    """Return the counter value whose derivative is the linear rate."""
    elapsed = t - ORIGIN
    return BASE * elapsed + SLOPE * elapsed**2 / 2


def true_rate(t: float, window: float) -> float:
    """Return the average rate over (t - window, t], which is the rate at the window's middle."""
    return BASE + SLOPE * (t - window / 2 - ORIGIN)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> EmbeddedSource:
    store = Store(Path(tmp_path_factory.mktemp("compare")) / "metrics.sqlite")
    rows = []
    for end in (NOW - 7 * 86400, NOW - 86400, NOW):
        for ts in np.arange(end - 3600 - 600, end + SCRAPE, SCRAPE):
            rows.append(AggregateRow("relaycore", float(ts), True,
                                     {"requests": requests_total(float(ts)), "errors": 0.0},
                                     None))
    store.write_cycle([], [], rows, [])
    return EmbeddedSource(store, SCRAPE)


def fetch(source: EmbeddedSource, time_range: TimeRange) -> pd.DataFrame:
    return source.signals(["relaycore"], time_range, ["requests_per_second"])


@pytest.mark.parametrize("comparison", ["1 day earlier", "1 week earlier"])
def test_previous_period_aligns_with_shift(source: EmbeddedSource, comparison: str) -> None:
    shift = COMPARISONS[comparison]
    assert shift is not None
    time_range = TimeRange.between(NOW - 3600, NOW, SCRAPE)
    current = fetch(source, time_range)

    previous = previous_period(lambda earlier: fetch(source, earlier), time_range, shift)

    assert list(previous["timestamp"]) == list(current["timestamp"])
    for row in previous.itertuples(index=False):
        earlier = row.timestamp.timestamp() - shift
        assert row.value == pytest.approx(true_rate(earlier, time_range.window), rel=1e-9)
    assert previous.attrs["shifted_by"] == shift
    assert previous.attrs["time_range"] == time_range


@pytest.mark.parametrize("comparison", ["1 day earlier", "1 week earlier"])
def test_change_percent_against_shifted(source: EmbeddedSource, comparison: str) -> None:
    shift = COMPARISONS[comparison]
    assert shift is not None
    time_range = TimeRange.between(NOW - 3600, NOW, SCRAPE)
    current = fetch(source, time_range)
    previous = previous_period(lambda earlier: fetch(source, earlier), time_range, shift)

    changed = with_change(current, previous, ["system", "signal"])

    for row in changed.itertuples(index=False):
        t = row.timestamp.timestamp()
        now_rate = true_rate(t, time_range.window)
        then_rate = true_rate(t - shift, time_range.window)
        assert row.previous_value == pytest.approx(then_rate, rel=1e-9)
        assert row.change_percent == pytest.approx((now_rate - then_rate) / then_rate * 100)


def test_chart_draws_previous_dashed(source: EmbeddedSource) -> None:
    time_range = TimeRange.between(NOW - 3600, NOW, SCRAPE)
    current = fetch(source, time_range)
    previous = previous_period(lambda earlier: fetch(source, earlier), time_range, 86400.0)

    chart = signal_chart(current, "requests_per_second", title="Requests", previous=previous)

    dashed, lines, points = chart.layer
    assert dashed.mark.strokeDash == [5, 4]
    assert list(dashed.data["timestamp"]) == list(lines.data["timestamp"])
    assert "1 day earlier" in chart.title.subtitle
    tooltip_titles = [tooltip["title"] for tooltip in points.to_dict()["encoding"]["tooltip"]]
    assert tooltip_titles[-2:] == ["Previous period", "Change"]
    first = lines.data.iloc[-1]
    expected = (true_rate(NOW, time_range.window) / true_rate(NOW - 86400, time_range.window)
                - 1) * 100
    assert first["change_text"] == format_change(expected)


def test_breakdown_chart_draws_previous() -> None:
    time_range = TimeRange.between(NOW - 3600, NOW, SCRAPE)
    points = np.array(time_range.points())
    current = breakdown_frame(points, {("openai",): np.full(len(points), 2.0)}, ("provider",))
    current.attrs["time_range"] = time_range
    earlier = breakdown_frame(points - 86400, {("openai",): np.full(len(points), 1.0)},
                              ("provider",))
    previous = shift_forward(earlier, 86400.0, time_range)

    chart = breakdown_chart(current, title="Requests", unit="requests/s", previous=previous)

    dashed, lines, _ = chart.layer
    assert list(dashed.data["timestamp"]) == list(lines.data["timestamp"])
    assert set(lines.data["change_text"]) == {"+100.0 %"}


def test_previous_period_rejects_future() -> None:
    time_range = TimeRange.between(NOW - 3600, NOW, SCRAPE)
    with pytest.raises(ValueError, match="lies in the past"):
        previous_period(lambda earlier: pd.DataFrame(), time_range, -86400.0)


@pytest.mark.parametrize(("change", "text"), [(12.345, "+12.3 %"), (-3.0, "-3.0 %"),
                                              (float("nan"), "n/a")])
def test_format_change(change: float, text: str) -> None:
    assert format_change(change) == text


def test_breakdown_chart_keeps_plot_height() -> None:
    time_range = TimeRange.between(NOW - 3600, NOW, SCRAPE)
    points = np.array(time_range.points())
    # Eight series give a legend of three rows below the plot.
    groups = {(f"provider{i}",): np.full(len(points), float(i)) for i in range(8)}
    frame = breakdown_frame(points, groups, ("provider",))
    frame.attrs["time_range"] = time_range
    spec = breakdown_chart(frame, title="Requests", unit="requests/s").to_dict()
    # Streamlit fits a chart without its own autosize, legend included, into its height.
    assert spec["autosize"] == {"type": "fit-x", "contains": "padding"}
    assert spec["height"] == 200
