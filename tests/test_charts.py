from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import altair as alt
import numpy as np
import pandas as pd
import pytest

from lib.charts import (
    ALTAIR_MAX_ROWS,
    DEFAULT_SYSTEMS,
    MAX_POINTS_PER_LINE,
    SystemStyle,
    downsample,
    latency_chart,
    signal_chart,
    sparkline,
)
from lib.timerange import TimeRange

START = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
SYSTEM_IDS = [system.id for system in DEFAULT_SYSTEMS]
SYSTEM_NAMES = ["AutoMatrix", "RelayCore", "NeuroWeaver"]
SYSTEM_COLOURS = ["#4C78A8", "#F58518", "#54A24B"]


def make_frame(
    signals: dict[str, str],
    systems: list[str] = SYSTEM_IDS,
    points: int = 61,
    step_seconds: float = 60,
    values: Any = None,
) -> pd.DataFrame:
    """Build a signal frame over a TimeRange, one row per time, system and signal."""
    time_range = TimeRange.between(
        START.timestamp(),
        START.timestamp() + max(points - 1, 1) * step_seconds,
        15.0,
        label="test",
    )
    timestamps = pd.date_range(START, periods=points, freq=pd.Timedelta(seconds=step_seconds))
    parts = []
    for system in systems:
        for signal, unit in signals.items():
            line_values = np.linspace(1.0, 2.0, points) if values is None else values
            parts.append(
                pd.DataFrame(
                    {
                        "timestamp": timestamps,
                        "system": system,
                        "signal": signal,
                        "value": line_values,
                        "unit": unit,
                    }
                )
            )
    frame = pd.concat(parts, ignore_index=True)
    frame.attrs["time_range"] = time_range
    return frame


def dataset(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return spec["datasets"][spec["data"]["name"]]


def line_layer(spec: dict[str, Any]) -> dict[str, Any]:
    return spec["layer"][0]


def point_layer(spec: dict[str, Any]) -> dict[str, Any]:
    return spec["layer"][1]


RPS = {"requests_per_second": "req/s"}
LATENCY = {"average_latency_ms": "ms", "p95_latency_ms": "ms"}


def test_signal_chart_encodings() -> None:
    spec = signal_chart(make_frame(RPS), "requests_per_second", title="Requests").to_dict()
    encoding = line_layer(spec)["encoding"]

    assert line_layer(spec)["mark"]["type"] == "line"
    assert encoding["x"]["field"] == "timestamp"
    assert encoding["x"]["type"] == "temporal"
    assert encoding["x"]["scale"]["type"] == "utc"
    assert encoding["x"]["title"] == "Time (UTC)"
    assert encoding["y"]["type"] == "quantitative"
    assert encoding["y"]["title"] == "req/s"
    assert encoding["color"]["field"] == "system_name"


def test_signal_chart_colour_scale_fixed() -> None:
    spec = signal_chart(make_frame(RPS), "requests_per_second", title="Requests").to_dict()
    scale = line_layer(spec)["encoding"]["color"]["scale"]

    assert scale["domain"] == SYSTEM_NAMES
    assert scale["range"] == SYSTEM_COLOURS


def test_colour_scale_same_for_subset() -> None:
    only_relaycore = make_frame(RPS, systems=["relaycore"])

    spec = signal_chart(only_relaycore, "requests_per_second", title="Requests").to_dict()
    scale = line_layer(spec)["encoding"]["color"]["scale"]

    assert scale["domain"] == SYSTEM_NAMES
    assert scale["range"] == SYSTEM_COLOURS
    assert {row["system_name"] for row in dataset(spec)} == {"RelayCore"}


def test_colour_scale_same_on_latency_chart() -> None:
    spec = latency_chart(make_frame(LATENCY)).to_dict()
    scale = line_layer(spec)["encoding"]["color"]["scale"]

    assert scale["domain"] == SYSTEM_NAMES
    assert scale["range"] == SYSTEM_COLOURS


def test_colour_scale_from_given_systems() -> None:
    systems = [SystemStyle("automatrix", "Automation", "#000000")]
    frame = make_frame(RPS, systems=["automatrix"])

    spec = signal_chart(frame, "requests_per_second", title="R", systems=systems).to_dict()
    scale = line_layer(spec)["encoding"]["color"]["scale"]

    assert scale["domain"] == ["Automation"]
    assert scale["range"] == ["#000000"]


def test_colour_scale_unknown_system_grey() -> None:
    frame = make_frame(RPS, systems=["automatrix", "mystery"])

    spec = signal_chart(frame, "requests_per_second", title="Requests").to_dict()
    scale = line_layer(spec)["encoding"]["color"]["scale"]

    assert scale["domain"] == [*SYSTEM_NAMES, "mystery"]
    assert scale["range"] == [*SYSTEM_COLOURS, "#9D9D9D"]


def test_signal_chart_title_states_range() -> None:
    frame = make_frame(RPS)

    spec = signal_chart(frame, "requests_per_second", title="Requests per second").to_dict()

    assert spec["title"]["text"] == "Requests per second"
    assert spec["title"]["subtitle"] == frame.attrs["time_range"].describe()
    assert "step" in spec["title"]["subtitle"]
    assert "UTC" in spec["title"]["subtitle"]


def test_signal_chart_secondary_text_follows_background() -> None:
    spec = signal_chart(make_frame(RPS), "requests_per_second", title="R").to_dict()

    assert "luminance(background)" in spec["title"]["subtitleColor"]["expr"]
    encoding = line_layer(spec)["encoding"]
    for text_colour in (encoding["x"]["axis"]["labelColor"], encoding["y"]["axis"]["titleColor"],
                        encoding["color"]["legend"]["labelColor"]):
        assert "luminance(background)" in text_colour["expr"]


def test_chart_legends_below_plot() -> None:
    spec = latency_chart(make_frame(LATENCY)).to_dict()

    encoding = line_layer(spec)["encoding"]
    assert encoding["color"]["legend"]["orient"] == "bottom"
    assert encoding["strokeDash"]["legend"] is None


def test_signal_chart_range_description_parameter() -> None:
    frame = make_frame(RPS)
    frame.attrs.clear()

    spec = signal_chart(
        frame, "requests_per_second", title="R", range_description="last 1h · step 15s · UTC"
    ).to_dict()

    assert spec["title"]["subtitle"] == "last 1h · step 15s · UTC"


def test_signal_chart_without_range_rejected() -> None:
    frame = make_frame(RPS)
    frame.attrs.clear()

    with pytest.raises(ValueError, match="range_description"):
        signal_chart(frame, "requests_per_second", title="R")


def test_signal_chart_missing_column_rejected() -> None:
    frame = make_frame(RPS).drop(columns=["unit"])

    with pytest.raises(ValueError, match="unit"):
        signal_chart(frame, "requests_per_second", title="R")


def test_signal_chart_mixed_units_rejected() -> None:
    frame = make_frame(RPS)
    frame.loc[0, "unit"] = "1/s"

    with pytest.raises(ValueError, match="one unit"):
        signal_chart(frame, "requests_per_second", title="R")


def test_signal_chart_time_domain_is_range() -> None:
    frame = make_frame(RPS)
    time_range = frame.attrs["time_range"]

    spec = signal_chart(frame, "requests_per_second", title="R").to_dict()
    domain = line_layer(spec)["encoding"]["x"]["scale"]["domain"]

    assert domain == [time_range.start.isoformat(), time_range.end.isoformat()]
    assert domain[0].endswith("+00:00")


def test_signal_chart_keeps_only_signal() -> None:
    frame = make_frame({"requests_per_second": "req/s", "error_rate": "ratio"})

    spec = signal_chart(frame, "error_rate", title="Error rate").to_dict()

    assert {row["signal"] for row in dataset(spec)} == {"error_rate"}
    assert line_layer(spec)["encoding"]["y"]["axis"]["format"] == "~%"


def test_signal_chart_tooltip_fields() -> None:
    spec = signal_chart(make_frame(RPS), "requests_per_second", title="R").to_dict()
    tooltip = point_layer(spec)["encoding"]["tooltip"]

    assert [item["title"] for item in tooltip] == ["Time (UTC)", "System", "Value"]
    assert tooltip[0]["field"] == "time_text"
    assert tooltip[1]["field"] == "system_name"
    assert tooltip[2]["field"] == "value_text"


def test_signal_chart_tooltip_value_has_unit() -> None:
    frame = make_frame(RPS, systems=["automatrix"], points=2, values=[12.34, np.nan])

    rows = dataset(signal_chart(frame, "requests_per_second", title="R").to_dict())

    assert rows[0]["value_text"] == "12.3 req/s"
    assert rows[1]["value_text"] == "—"


def test_signal_chart_nan_kept_as_gap() -> None:
    frame = make_frame(RPS, systems=["automatrix"], points=3, values=[1.0, np.nan, 3.0])

    chart = signal_chart(frame, "requests_per_second", title="R")
    spec = chart.to_dict()

    # Streamlit sends Arrow, where only a null (not NaN) becomes a gap in the line.
    assert str(chart.data["plot_value"].dtype) == "Float64"
    assert [row["value"] for row in dataset(spec)] == [1.0, None, 3.0]
    assert [row["plot_value"] for row in dataset(spec)] == [1.0, None, 3.0]
    assert line_layer(spec)["mark"]["invalid"] == "break-paths-show-domains"


def test_signal_chart_infinity_plotted_as_gap() -> None:
    frame = make_frame(RPS, systems=["automatrix"], points=3, values=[1.0, np.inf, 3.0])

    rows = dataset(signal_chart(frame, "requests_per_second", title="R").to_dict())

    assert [row["plot_value"] for row in rows] == [1.0, None, 3.0]
    assert rows[1]["value_text"] == "∞ req/s"


def test_sparkline_nan_sent_as_null() -> None:
    trend = make_frame(RPS, systems=["automatrix"], points=3, values=[1.0, np.nan, 3.0])

    chart = sparkline(trend, colour="#4C78A8")

    assert str(chart.data["value"].dtype) == "Float64"
    assert [row["value"] for row in dataset(chart.to_dict())] == [1.0, None, 3.0]


def test_signal_chart_timestamps_serialised_utc() -> None:
    frame = make_frame(RPS, systems=["automatrix"], points=1)
    naive = frame.assign(timestamp=frame["timestamp"].dt.tz_localize(None))
    naive.attrs = frame.attrs

    for source in (frame, naive):
        rows = dataset(signal_chart(source, "requests_per_second", title="R").to_dict())
        assert rows[0]["timestamp"] == "2024-05-01T12:00:00+00:00"
        assert rows[0]["time_text"] == "2024-05-01 12:00:00"


@pytest.mark.parametrize(("points", "step_seconds", "expected"), [
    (61, 60, "%H:%M"),
    (1441, 60, "%H:%M"),
    (337, 1800, "%b %d"),
])
def test_time_axis_format_by_range(points: int, step_seconds: float, expected: str) -> None:
    frame = make_frame(RPS, systems=["automatrix"], points=points, step_seconds=step_seconds)

    spec = signal_chart(frame, "requests_per_second", title="R").to_dict()

    assert line_layer(spec)["encoding"]["x"]["axis"]["format"] == expected


def test_signal_chart_hover_shows_points() -> None:
    spec = signal_chart(make_frame(RPS), "requests_per_second", title="R").to_dict()
    parameter = spec["params"][0]

    assert parameter["select"]["nearest"] is True
    assert parameter["select"]["fields"] == ["timestamp"]
    assert point_layer(spec)["encoding"]["opacity"]["value"] == 0
    assert point_layer(spec)["encoding"]["opacity"]["condition"][0]["value"] == 1


def test_memory_chart_scaled_to_binary_unit() -> None:
    frame = make_frame({"memory_usage": "bytes"}, systems=["automatrix"], points=2,
                       values=[1.5 * 2**30, 2 * 2**30])

    spec = signal_chart(frame, "memory_usage", title="Memory").to_dict()
    rows = dataset(spec)

    assert line_layer(spec)["encoding"]["y"]["title"] == "GiB"
    assert line_layer(spec)["encoding"]["y"]["field"] == "plot_value"
    assert [row["plot_value"] for row in rows] == [1.5, 2.0]
    assert rows[0]["value_text"] == "1.50 GiB"


def test_latency_chart_dash_by_statistic() -> None:
    spec = latency_chart(make_frame(LATENCY)).to_dict()
    dash = line_layer(spec)["encoding"]["strokeDash"]

    assert dash["field"] == "statistic"
    assert dash["scale"]["domain"] == ["average", "p95"]
    assert dash["scale"]["range"] == [[1, 0], [6, 3]]
    assert dash["legend"] is None  # the title names the dashes
    assert "strokeDash" not in point_layer(spec)["encoding"]
    assert {row["statistic"] for row in dataset(spec)} == {"average", "p95"}


def test_latency_chart_excludes_other_signals() -> None:
    frame = make_frame({**LATENCY, "requests_per_second": "ms"})

    rows = dataset(latency_chart(frame).to_dict())

    assert {row["signal"] for row in rows} == {"average_latency_ms", "p95_latency_ms"}


def test_latency_chart_title_and_tooltip() -> None:
    frame = make_frame(LATENCY)

    spec = latency_chart(frame).to_dict()
    titles = [item["title"] for item in point_layer(spec)["encoding"]["tooltip"]]

    assert spec["title"]["text"] == "Latency"
    assert spec["title"]["subtitle"] == frame.attrs["time_range"].describe()
    assert titles == ["Time (UTC)", "System", "Statistic", "Value"]
    assert line_layer(spec)["encoding"]["y"]["title"] == "ms"


def test_signal_chart_caps_points_per_line() -> None:
    frame = make_frame(RPS, points=2000, step_seconds=1)

    rows = dataset(signal_chart(frame, "requests_per_second", title="R").to_dict())
    per_system = pd.Series([row["system"] for row in rows]).value_counts()

    assert len(rows) == 3 * MAX_POINTS_PER_LINE
    assert per_system.to_dict() == {system: MAX_POINTS_PER_LINE for system in SYSTEM_IDS}


def test_latency_chart_many_systems_within_row_limit() -> None:
    systems = [f"system{index}" for index in range(12)]
    frame = make_frame(LATENCY, systems=systems, points=1000, step_seconds=1)

    spec = latency_chart(frame).to_dict()  # raises MaxRowsError above Altair's limit

    assert len(dataset(spec)) <= ALTAIR_MAX_ROWS
    assert len(dataset(spec)) == 24 * (ALTAIR_MAX_ROWS // 24)


def test_uncapped_frame_hits_altair_limit() -> None:
    frame = make_frame(LATENCY, systems=SYSTEM_IDS, points=1000, step_seconds=1)

    with pytest.raises(alt.MaxRowsError):
        alt.Chart(frame).mark_line().to_dict()


def test_downsample_short_line_unchanged() -> None:
    frame = make_frame(RPS, points=10)

    result = downsample(frame, max_points=10)

    pd.testing.assert_frame_equal(result, frame)


def test_downsample_bucket_means() -> None:
    frame = make_frame(RPS, systems=["automatrix"], points=1000, step_seconds=1,
                       values=np.arange(1000, dtype=float))

    result = downsample(frame, max_points=500)

    assert len(result) == 500
    assert result["value"].iloc[0] == 0.5
    assert result["value"].iloc[-1] == 998.5
    assert result["timestamp"].iloc[0] == frame["timestamp"].iloc[0]
    assert result["timestamp"].iloc[-1] == frame["timestamp"].iloc[998]
    assert result["timestamp"].is_monotonic_increasing


def test_downsample_all_nan_bucket_stays_nan() -> None:
    values = np.ones(1000)
    values[10:12] = np.nan
    values[20] = np.nan
    frame = make_frame(RPS, systems=["automatrix"], points=1000, step_seconds=1, values=values)

    result = downsample(frame, max_points=500)

    assert np.isnan(result["value"].iloc[5])
    assert result["value"].iloc[10] == 1.0
    assert result["value"].isna().sum() == 1


def test_downsample_per_system_and_signal() -> None:
    frame = make_frame(LATENCY, points=800, step_seconds=1)

    result = downsample(frame, max_points=100)
    counts = result.groupby(["system", "signal"]).size()

    assert len(counts) == 6
    assert (counts == 100).all()
    assert set(result.columns) == set(frame.columns)


def test_downsample_keeps_attrs() -> None:
    frame = make_frame(RPS, points=800, step_seconds=1)

    result = downsample(frame, max_points=100)

    assert result.attrs["time_range"] == frame.attrs["time_range"]


def test_downsample_without_group_columns() -> None:
    timestamps = pd.date_range(START, periods=1000, freq="s")
    trend = pd.DataFrame({"timestamp": timestamps, "value": np.arange(1000, dtype=float)})

    result = downsample(trend, max_points=10)

    assert len(result) == 10
    assert result["value"].iloc[0] == 49.5


def test_downsample_empty_frame() -> None:
    frame = make_frame(RPS).iloc[0:0]

    result = downsample(frame)

    assert result.empty
    assert list(result.columns) == list(frame.columns)


def test_downsample_rejects_zero_points() -> None:
    with pytest.raises(ValueError, match="max_points"):
        downsample(make_frame(RPS), max_points=0)


def test_signal_chart_empty_frame() -> None:
    frame = make_frame(RPS).iloc[0:0]
    frame.attrs = make_frame(RPS).attrs

    spec = signal_chart(frame, "requests_per_second", title="R").to_dict()

    assert dataset(spec) == []
    assert line_layer(spec)["encoding"]["color"]["scale"]["domain"] == SYSTEM_NAMES


def test_sparkline_plain_line() -> None:
    trend = make_frame(RPS, systems=["relaycore"])

    spec = sparkline(trend, colour="#F58518").to_dict()

    assert spec["mark"]["type"] == "line"
    assert spec["mark"]["color"] == "#F58518"
    assert spec["encoding"]["x"]["axis"] is None
    assert spec["encoding"]["y"]["axis"] is None
    assert spec["encoding"]["y"]["scale"]["zero"] is True
    assert spec["height"] == 48
    assert "title" not in spec


def test_sparkline_caps_points() -> None:
    trend = make_frame(RPS, systems=["relaycore"], points=5000, step_seconds=1)

    spec = sparkline(trend, colour="#F58518", max_points=200).to_dict()

    assert len(dataset(spec)) == 200


def test_sparkline_missing_column_rejected() -> None:
    with pytest.raises(ValueError, match="value"):
        sparkline(pd.DataFrame({"timestamp": []}), colour="#F58518")
