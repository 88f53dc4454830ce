"""Altair charts of breakdown frames (lib.breakdowns): one line per label group.

Like lib.charts, every builder is a pure function of its arguments and never imports Streamlit.
"""

from __future__ import annotations

import altair as alt
import pandas as pd

from lib.charts import (
    ALTAIR_MAX_ROWS,
    MAX_POINTS_PER_LINE,
    TIME_AXIS_TITLE,
    _as_utc,
    _plottable,
    _range_subtitle,
    _shift_text,
    _time_axis,
    _time_scale,
    _value_axis,
    _value_axis_format,
    downsample,
)
from lib.compare import format_change, with_change
from lib.format import format_value

BREAKDOWN_COLUMNS = ("timestamp", "series", "value")


def breakdown_chart(
    df: pd.DataFrame,
    *,
    title: str,
    unit: str,
    previous: pd.DataFrame | None = None,
    max_points: int = MAX_POINTS_PER_LINE,
    height: int = 200,
) -> alt.LayerChart:
    """Build a line chart with one line per `series` of a breakdown frame, coloured from
    Tableau 10 (the palette of the system colours).

    The subtitle states `df.attrs["time_range"]`. `unit` is a unit that
    lib.format.format_value formats, for example "req/s", "USD/h", "s" or "count".
    `previous` is an earlier period already moved onto the current axis. It is drawn dashed,
    and the tooltip gives the change in percent.

    Raises:
        ValueError: if a column is missing or the frame has no time range.
    """
    subtitle = _range_subtitle(df, None)
    data = _rows(df, unit, max_points, 2 if previous is not None else 1)
    earlier = None
    if previous is not None:
        earlier = _rows(previous, unit, max_points, 2)
        data = _add_change(data, earlier, unit)
        shift = previous.attrs.get("shifted_by")
        if shift:
            subtitle += f" · dashed: {_shift_text(float(shift))}"

    divisor, axis_title, axis_format = _value_axis(unit, data["value"])
    data["plot_value"] = _plottable(data["value"] / divisor)
    time_range = df.attrs.get("time_range")
    base = alt.Chart(data).encode(
        x=alt.X("timestamp:T", title=TIME_AXIS_TITLE, scale=_time_scale(time_range),
                axis=_time_axis(time_range)),
        y=alt.Y("plot_value:Q", title=axis_title, axis=_value_axis_format(axis_format)),
        color=alt.Color("series:N", title=None, scale=alt.Scale(scheme="tableau10"),
                        legend=alt.Legend(orient="bottom", columns=3, labelLimit=220)),
    )
    tooltip = [
        alt.Tooltip("time_text:N", title=TIME_AXIS_TITLE),
        alt.Tooltip("series:N", title="Series"),
        alt.Tooltip("value_text:N", title="Value"),
    ]
    layers: list[alt.Chart] = []
    if earlier is not None:
        earlier["plot_value"] = _plottable(earlier["value"] / divisor)
        layers.append(
            base.mark_line(strokeWidth=1.5, strokeDash=[5, 4], opacity=0.8,
                           invalid="break-paths-show-domains")
            .properties(data=earlier[["timestamp", "series", "plot_value"]])
        )
        tooltip += [alt.Tooltip("previous_text:N", title="Previous period"),
                    alt.Tooltip("change_text:N", title="Change")]

    hover = alt.selection_point(name="hover", nearest=True, on="pointerover",
                                clear="pointerout", fields=["timestamp"], empty=False)
    lines = base.mark_line(strokeWidth=2, invalid="break-paths-show-domains")
    points = (
        base.mark_point(filled=True, size=40)
        .encode(opacity=alt.when(hover).then(alt.value(1)).otherwise(alt.value(0)),
                tooltip=tooltip)
        .add_params(hover)
    )
    chart_title = alt.TitleParams(text=title, subtitle=subtitle, anchor="start")
    # Streamlit's default autosize ("fit") fits the whole chart, legend included, into
    # `height`, so a legend of three rows left the plot a few pixels. "fit-x" fits only the
    # width and keeps `height` for the plot.
    return alt.LayerChart(layer=[*layers, lines, points], title=chart_title, height=height,
                          autosize=alt.AutoSizeParams(type="fit-x", contains="padding"))


def _rows(df: pd.DataFrame, unit: str, max_points: int, datasets: int) -> pd.DataFrame:
    missing = [column for column in BREAKDOWN_COLUMNS if column not in df.columns]
    if missing:
        raise ValueError(
            f"A breakdown frame needs the columns {', '.join(BREAKDOWN_COLUMNS)}, "
            f"missing {missing}."
        )
    line_count = max(1, df["series"].nunique()) * datasets
    per_line = max(1, min(max_points, ALTAIR_MAX_ROWS // line_count))
    # downsample() treats each distinct `signal` as one line.
    frame = df[list(BREAKDOWN_COLUMNS)].assign(signal=df["series"])
    data = downsample(frame, per_line).drop(columns=["signal"])
    values = pd.to_numeric(data["value"], errors="coerce").astype("float64")
    timestamps = _as_utc(data["timestamp"])
    data = data.assign(
        timestamp=timestamps,
        time_text=timestamps.dt.strftime("%Y-%m-%d %H:%M:%S"),
        value=values,
        value_text=[format_value(value, unit) for value in values],
    )
    data.attrs = {}  # the subtitle states the range, and Streamlit cannot serialise it
    return data


def _add_change(data: pd.DataFrame, earlier: pd.DataFrame, unit: str) -> pd.DataFrame:
    changed = with_change(data, earlier, ["series"])
    changed["previous_text"] = [format_value(value, unit) for value in changed["previous_value"]]
    changed["change_text"] = [format_change(change) for change in changed["change_percent"]]
    changed = changed.drop(columns=["previous_value", "change_percent"])
    changed.attrs = {}
    return changed
