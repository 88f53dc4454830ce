"""Build the Altair charts of the pages from long-form signal frames.

A signal frame has the columns timestamp (UTC), system (id), signal, value (NaN for no data)
and unit, and `df.attrs["time_range"]` is the time range it covers. Every builder is a pure
function of its arguments and never imports Streamlit, so charts are tested through
`chart.to_dict()`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import altair as alt
import numpy as np
import pandas as pd

from lib.compare import format_change, with_change
from lib.format import format_value

# Maximum rows in one chart: Altair's default data transformer raises MaxRowsError above
# 5000 rows (altair.data_transformers "default", max_rows=5000).
ALTAIR_MAX_ROWS = 5000

# Maximum points drawn per line (one system and one signal). A time range's step normally keeps
# lines shorter than this, so downsampling is a guard against frames finer than the step.
MAX_POINTS_PER_LINE = 500

SIGNAL_COLUMNS = ("timestamp", "system", "signal", "value", "unit")
TIME_AXIS_TITLE = "Time (UTC)"

_GROUP_COLUMNS = ("system", "signal")
_FALLBACK_COLOUR = "#9D9D9D"  # for a system id that no SystemStyle describes
_BYTE_AXIS_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")
_LATENCY_SIGNALS = {"average_latency_ms": "average", "p95_latency_ms": "p95"}
_DASHES = {"average": [1, 0], "p95": [6, 3]}
# Colour of the subtitle, axis and legend text. Streamlit 1.67's Altair theme leaves subtitles
# to Vega's one grey, unreadable on the dark background, and draws axis and legend labels at
# 3.7:1 on the light one, under WCAG's 4.5:1 for small text. This expression picks a grey for
# the chart's actual background, above 7:1 on both Streamlit backgrounds.
SECONDARY_TEXT_COLOUR = alt.ExprRef(expr="luminance(background) < 0.5 ? '#C0C4CE' : '#4A4D57'")


class SystemDescription(Protocol):
    """A system as charts need it. lib.monitor's SystemInfo satisfies this protocol."""

    @property
    def id(self) -> str: ...

    @property
    def display_name(self) -> str: ...

    @property
    def colour(self) -> str: ...


class DescribedTimeRange(Protocol):
    """A time range as charts need it. lib.timerange's TimeRange satisfies this protocol."""

    @property
    def start(self) -> datetime: ...

    @property
    def end(self) -> datetime: ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class SystemStyle:
    """Display name and line colour of one system."""

    id: str
    display_name: str
    colour: str


DEFAULT_SYSTEMS: tuple[SystemStyle, ...] = (
    SystemStyle("automatrix", "AutoMatrix", "#4C78A8"),
    SystemStyle("relaycore", "RelayCore", "#F58518"),
    SystemStyle("neuroweaver", "NeuroWeaver", "#54A24B"),
)


def downsample(df: pd.DataFrame, max_points: int = MAX_POINTS_PER_LINE) -> pd.DataFrame:
    """Reduce every line of `df` to at most `max_points` rows by averaging equal time buckets.

    A line is the rows of one system and signal, or the whole frame when it has neither
    column. A line of `max_points` rows or fewer is kept as it is. Otherwise its time span is
    cut into `max_points` equal buckets, and each non-empty bucket becomes one row with the
    bucket's first timestamp and the mean of its values. A bucket of only NaN values stays
    NaN, so gaps in the data stay gaps. The mean keeps a line's level but flattens spikes
    shorter than a bucket. The result keeps `df.attrs`.

    Raises:
        ValueError: if `max_points` is less than 1.
    """
    if max_points < 1:
        raise ValueError(f"max_points must be at least 1, got {max_points!r}.")

    group_columns = [column for column in _GROUP_COLUMNS if column in df.columns]
    if group_columns:
        lines = [line for _, line in df.groupby(group_columns, sort=False, dropna=False)]
    else:
        lines = [df]

    reduced = [_downsample_line(line, max_points) for line in lines]
    result = pd.concat(reduced, ignore_index=True) if reduced else df.iloc[0:0].copy()
    result.attrs = dict(df.attrs)
    return result


def _downsample_line(line: pd.DataFrame, max_points: int) -> pd.DataFrame:
    if len(line) <= max_points:
        return line

    line = line.sort_values("timestamp", kind="stable")
    nanoseconds = line["timestamp"].astype("int64").to_numpy(dtype=np.float64)
    span = nanoseconds[-1] - nanoseconds[0]
    # The +1 keeps the last point in the bucket max_points - 1 instead of a bucket of its own.
    position = (nanoseconds - nanoseconds[0]) / (span + 1)
    buckets = np.floor(position * max_points).astype(np.int64)

    aggregations = {column: "first" for column in line.columns}
    aggregations["value"] = "mean"
    return line.groupby(buckets, sort=True).agg(aggregations).reset_index(drop=True)


def signal_chart(
    df: pd.DataFrame,
    signal: str,
    *,
    title: str,
    systems: Sequence[SystemDescription] = DEFAULT_SYSTEMS,
    range_description: str | None = None,
    max_points: int = MAX_POINTS_PER_LINE,
    height: int = 320,
    previous: pd.DataFrame | None = None,
) -> alt.LayerChart:
    """Build a line chart of one signal with one line per system.

    `title` heads the chart and the subtitle states the range and step, taken from
    `range_description` or else from `df.attrs["time_range"].describe()`. Each system keeps
    the colour that `systems` gives it on every chart.

    `previous` is an earlier period already moved onto the current axis (see lib.compare). It
    is drawn as dashed lines in the systems' colours, and the tooltip gives the change in
    percent against it.

    Raises:
        ValueError: if `df` lacks a signal frame column, or neither a range description nor
            `df.attrs["time_range"]` is given.
    """
    subtitle = _range_subtitle(df, range_description)
    frame = _require_columns(df)
    frame = frame[frame["signal"] == signal]
    earlier = None
    if previous is not None:
        earlier = _require_columns(previous)
        earlier = earlier[earlier["signal"] == signal]
        shift = previous.attrs.get("shifted_by")
        if shift:
            subtitle += f" · dashed: {_shift_text(float(shift))}"

    return _line_chart(
        frame,
        time_range=df.attrs.get("time_range"),
        title=title,
        subtitle=subtitle,
        systems=systems,
        max_points=max_points,
        height=height,
        previous=earlier,
    )


def _shift_text(seconds: float) -> str:
    if seconds % 604_800 == 0:
        weeks = int(seconds // 604_800)
        return "1 week earlier" if weeks == 1 else f"{weeks} weeks earlier"
    if seconds % 86_400 == 0:
        days = int(seconds // 86_400)
        return "1 day earlier" if days == 1 else f"{days} days earlier"
    return f"{seconds:g} s earlier"


def latency_chart(
    df: pd.DataFrame,
    *,
    title: str = "Latency",
    systems: Sequence[SystemDescription] = DEFAULT_SYSTEMS,
    range_description: str | None = None,
    max_points: int = MAX_POINTS_PER_LINE,
    height: int = 320,
) -> alt.LayerChart:
    """Build a chart of average and p95 latency, coloured by system and dashed by statistic.

    It draws the rows of signals average_latency_ms (solid) and p95_latency_ms (dashed).
    The title, subtitle and colours follow `signal_chart`.

    Raises:
        ValueError: as `signal_chart` does.
    """
    subtitle = _range_subtitle(df, range_description)
    frame = _require_columns(df)
    frame = frame[frame["signal"].isin(_LATENCY_SIGNALS)]

    return _line_chart(
        frame,
        time_range=df.attrs.get("time_range"),
        title=title,
        subtitle=subtitle,
        systems=systems,
        max_points=max_points,
        height=height,
        statistic_labels=_LATENCY_SIGNALS,
    )


def sparkline(
    trend: pd.DataFrame,
    *,
    colour: str,
    max_points: int = MAX_POINTS_PER_LINE,
    height: int = 48,
) -> alt.Chart:
    """Build a small line chart without axes, title or legend for an overview card.

    `trend` needs the columns timestamp and value. It is usually one system's requests per
    second over the selected range. The y scale starts at zero, so that small changes in a
    steady signal do not look like swings.
    """
    missing = [column for column in ("timestamp", "value") if column not in trend.columns]
    if missing:
        raise ValueError(f"A trend frame needs the columns timestamp and value, missing {missing}.")

    data = downsample(trend[["timestamp", "value"]], max_points)
    data = data.assign(
        timestamp=_as_utc(data["timestamp"]),
        value=_plottable(pd.to_numeric(data["value"], errors="coerce").astype("float64")),
    )
    data.attrs = {}  # the chart needs no time range, and Streamlit cannot serialise one

    chart: alt.Chart = (
        alt.Chart(data, height=height, config=alt.Config(view=alt.ViewConfig(strokeWidth=0)))
        .mark_line(color=colour, strokeWidth=1.5, invalid="break-paths-show-domains")
        .encode(
            x=alt.X("timestamp:T", axis=None, scale=alt.Scale(type="utc")),
            y=alt.Y("value:Q", axis=None, scale=alt.Scale(zero=True)),
        )
    )
    return chart


def _line_chart(
    frame: pd.DataFrame,
    *,
    time_range: DescribedTimeRange | None,
    title: str,
    subtitle: str,
    systems: Sequence[SystemDescription],
    max_points: int,
    height: int,
    statistic_labels: dict[str, str] | None = None,
    previous: pd.DataFrame | None = None,
) -> alt.LayerChart:
    unit = _single_unit(frame)
    lines_drawn = 2 if previous is not None else 1
    data = _chart_rows(frame, systems, max_points, lines_drawn)
    earlier = None
    if previous is not None:
        earlier = _chart_rows(previous, systems, max_points, lines_drawn)
        data = _add_change(data, earlier)
    divisor, axis_title, axis_format = _value_axis(unit, data["value"])
    data["plot_value"] = _plottable(data["value"] / divisor)
    data["value"] = _plottable(data["value"])

    if statistic_labels is not None:
        data["statistic"] = data["signal"].map(statistic_labels)

    base = alt.Chart(data).encode(
        x=alt.X("timestamp:T", title=TIME_AXIS_TITLE, scale=_time_scale(time_range),
                axis=_time_axis(time_range)),
        y=alt.Y("plot_value:Q", title=axis_title, axis=_value_axis_format(axis_format)),
        color=alt.Color("system_name:N", title="System",
                        scale=_colour_scale(systems, data["system_name"]),
                        legend=_legend()),
        detail=alt.Detail("signal:N"),
    )
    tooltip = [
        alt.Tooltip("time_text:N", title=TIME_AXIS_TITLE),
        alt.Tooltip("system_name:N", title="System"),
        alt.Tooltip("value_text:N", title="Value"),
    ]
    extra_layers: list[alt.Chart] = []
    if earlier is not None:
        tooltip.append(alt.Tooltip("previous_text:N", title="Previous period"))
        tooltip.append(alt.Tooltip("change_text:N", title="Change"))
        earlier["plot_value"] = _plottable(earlier["value"] / divisor)
        extra_layers.append(_previous_lines(earlier, base))
    dash = None
    if statistic_labels is not None:
        tooltip.insert(2, alt.Tooltip("statistic:N", title="Statistic"))
        statistics = list(statistic_labels.values())
        dash = alt.StrokeDash(
            "statistic:N",
            title="Statistic",
            scale=alt.Scale(domain=statistics, range=[_DASHES[name] for name in statistics]),
            # The chart's title names the dashes, and a second legend would not fit a phone.
            legend=None,
        )

    return _layer_with_hover(base, tooltip, dash, title, subtitle, height, extra_layers)


def _add_change(data: pd.DataFrame, earlier: pd.DataFrame) -> pd.DataFrame:
    """Return the current rows with the earlier value and the change in percent as text."""
    changed = with_change(data, earlier, ["system", "signal"])
    changed["previous_text"] = [
        format_value(value, unit)
        for value, unit in zip(changed["previous_value"], changed["unit"], strict=True)
    ]
    changed["change_text"] = [format_change(change) for change in changed["change_percent"]]
    changed = changed.drop(columns=["previous_value", "change_percent"])
    changed.attrs = {}
    return changed


def _previous_lines(earlier: pd.DataFrame, base: alt.Chart) -> alt.Chart:
    """Return the earlier period's dashed lines, encoded like the current lines of `base`."""
    layer: alt.Chart = (
        base.mark_line(strokeWidth=1.5, strokeDash=[5, 4], opacity=0.8,
                       invalid="break-paths-show-domains")
        .properties(data=earlier[["timestamp", "system_name", "signal", "plot_value"]])
    )
    return layer


def _layer_with_hover(
    base: alt.Chart,
    tooltip: list[alt.Tooltip],
    dash: alt.StrokeDash | None,
    title: str,
    subtitle: str,
    height: int,
    extra_layers: Sequence[alt.Chart] = (),
) -> alt.LayerChart:
    # Hovering anywhere near a time shows every line's point at that time. The tooltip is on
    # the points, because a line mark has no single datum to describe.
    hover = alt.selection_point(
        name="hover", nearest=True, on="pointerover", clear="pointerout",
        fields=["timestamp"], empty=False,
    )
    lines = base.mark_line(strokeWidth=2, invalid="break-paths-show-domains")
    if dash is not None:
        # Only the lines carry the dash, so that the legend shows dashed strokes, not points.
        lines = lines.encode(strokeDash=dash)
    points = (
        base.mark_point(filled=True, size=40)
        .encode(
            opacity=alt.when(hover).then(alt.value(1)).otherwise(alt.value(0)),
            tooltip=tooltip,
        )
        .add_params(hover)
    )

    # Colours are set on each axis and legend, not as chart config, so that callers may still
    # layer or concatenate the chart.
    chart_title = alt.TitleParams(text=title, subtitle=subtitle, anchor="start",
                                  subtitleColor=SECONDARY_TEXT_COLOUR)
    return alt.LayerChart(layer=[*extra_layers, lines, points], title=chart_title,
                          height=height)


def _require_columns(df: pd.DataFrame) -> pd.DataFrame:
    missing = [column for column in SIGNAL_COLUMNS if column not in df.columns]
    if missing:
        raise ValueError(
            f"A signal frame needs the columns {', '.join(SIGNAL_COLUMNS)}, missing {missing}."
        )
    return df


def _range_subtitle(df: pd.DataFrame, range_description: str | None) -> str:
    if range_description is not None:
        return range_description

    time_range = df.attrs.get("time_range")
    if time_range is None or not hasattr(time_range, "describe"):
        raise ValueError(
            "A chart must state its range and step: pass range_description or set "
            'df.attrs["time_range"] to a TimeRange.'
        )
    return str(time_range.describe())


def _single_unit(frame: pd.DataFrame) -> str:
    units = frame["unit"].dropna().unique()
    if len(units) > 1:
        raise ValueError(f"A chart draws values of one unit, got {sorted(units)!r}.")
    return str(units[0]) if len(units) else ""


def _chart_rows(
    frame: pd.DataFrame,
    systems: Sequence[SystemDescription],
    max_points: int,
    datasets: int = 1,
) -> pd.DataFrame:
    """Return the rows to draw: downsampled within the row budget, with display columns.

    `datasets` is the number of frames of this shape that one chart draws, such as 2 with a
    previous period, which share Altair's row limit.
    """
    line_count = max(1, frame.groupby(list(_GROUP_COLUMNS)).ngroups) * datasets
    points_per_line = min(max_points, ALTAIR_MAX_ROWS // line_count)
    if points_per_line < 1:
        raise ValueError(
            f"A chart of {line_count} lines exceeds Altair's limit of {ALTAIR_MAX_ROWS} rows "
            "even at one point per line. Select fewer systems or signals."
        )

    data = downsample(frame[list(SIGNAL_COLUMNS)], points_per_line)
    names = {system.id: system.display_name for system in systems}
    values = pd.to_numeric(data["value"], errors="coerce").astype("float64")
    timestamps = _as_utc(data["timestamp"])
    data = data.assign(
        timestamp=timestamps,
        time_text=timestamps.dt.strftime("%Y-%m-%d %H:%M:%S"),
        value=values,
        system_name=data["system"].map(lambda system_id: names.get(system_id, system_id)),
        value_text=[format_value(value, unit) for value, unit in zip(values, data["unit"],
                                                                      strict=True)],
    )
    data.attrs = {}  # the subtitle already states the range, and Streamlit cannot serialise it
    return data


def _plottable(values: pd.Series) -> pd.Series:
    """Return `values` with NaN and infinities as missing values of the nullable Float64 type.

    Streamlit sends chart data to the browser as Arrow, where NaN stays a number. Vega-Lite then
    computes an infinite extent and draws no line at all, whereas a missing value (Arrow null)
    becomes a gap in the line.
    """
    return values.where(np.isfinite(values)).astype("Float64")


def _as_utc(timestamps: pd.Series) -> pd.Series:
    """Return `timestamps` as UTC datetimes, reading naive ones as UTC already."""
    converted = pd.to_datetime(timestamps)
    if converted.dt.tz is None:
        return converted.dt.tz_localize("UTC")
    return converted.dt.tz_convert("UTC")


def _time_scale(time_range: DescribedTimeRange | None) -> alt.Scale:
    """Return a UTC time scale spanning the whole range, so charts of one range line up.

    The domain is given as ISO 8601 strings, because with epoch milliseconds Vega-Lite 6 in
    Streamlit 1.67 draws the axis without tick labels.
    """
    if time_range is None:
        return alt.Scale(type="utc")
    return alt.Scale(type="utc", domain=[_iso_utc(time_range.start), _iso_utc(time_range.end)])


def _time_axis(time_range: DescribedTimeRange | None) -> alt.Axis:
    """Return a time axis with 24-hour times for ranges up to a day, else month and day."""
    if time_range is None:
        return _axis()
    if (time_range.end - time_range.start).total_seconds() <= 86_400:
        return _axis("%H:%M")
    return _axis("%b %d")


def _iso_utc(moment: datetime) -> str:
    timestamp = pd.Timestamp(moment)
    if timestamp.tzinfo is None:
        return timestamp.tz_localize("UTC").isoformat()
    return timestamp.tz_convert("UTC").isoformat()


def _colour_scale(systems: Sequence[SystemDescription], names: Iterable[str]) -> alt.Scale:
    """Return the colour scale of all `systems`, whichever of them the chart shows.

    System names in the data that `systems` lacks are appended in grey.
    """
    domain = [system.display_name for system in systems]
    colours = [system.colour for system in systems]
    for name in sorted(set(names) - set(domain)):
        domain.append(name)
        colours.append(_FALLBACK_COLOUR)
    return alt.Scale(domain=domain, range=colours)


def _value_axis(unit: str, values: pd.Series) -> tuple[float, str, str | None]:
    """Return the divisor for the plotted values, the y axis title and its d3 number format.

    A format of None keeps Vega-Lite's default number format.
    """
    match unit:
        case "bytes":
            return _byte_axis(values)
        case "ratio":
            return 1.0, "%", "~%"
        case _:
            return 1.0, unit, None


def _value_axis_format(axis_format: str | None) -> alt.Axis:
    return _axis(axis_format)


def _axis(number_format: str | None = None) -> alt.Axis:
    """Return an axis in the secondary text colour, with Vega-Lite's default format for None."""
    if number_format is None:
        return alt.Axis(labelColor=SECONDARY_TEXT_COLOUR, titleColor=SECONDARY_TEXT_COLOUR)
    return alt.Axis(format=number_format, labelColor=SECONDARY_TEXT_COLOUR,
                    titleColor=SECONDARY_TEXT_COLOUR)


def _legend() -> alt.Legend:
    """Return the system legend: below the plot, untitled, in the secondary text colour.

    Below the plot, the legend leaves the plot the full width and never runs past the bottom of
    a short chart. Without a title and with 12 px labels, three system names fit one row on a
    390 px screen.
    """
    return alt.Legend(orient="bottom", title=None, labelFontSize=12, columnPadding=12,
                      labelColor=SECONDARY_TEXT_COLOUR, titleColor=SECONDARY_TEXT_COLOUR)


def _byte_axis(values: pd.Series) -> tuple[float, str, str | None]:
    finite = values[np.isfinite(values)]
    largest = float(finite.abs().max()) if len(finite) else 0.0
    exponent = 0 if largest < 1 else min(int(math.log(largest, 1024)), len(_BYTE_AXIS_UNITS) - 1)
    return float(1024**exponent), _BYTE_AXIS_UNITS[exponent], None
