"""Cross-system metrics page: the golden signals of the selected systems side by side."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import altair as alt
import pandas as pd
import streamlit as st

from app_pages.components import comparison_shift, download_menu, loading_notice
from app_pages.state import Selection, cached_monitor, cached_platform_metrics, current_selection
from lib.charts import latency_chart, signal_chart
from lib.compare import previous_period
from lib.errors import MonitorError
from lib.export import Export, frame_export, signal_definitions
from lib.format import describe_freshness, escape_markdown
from lib.monitor import Monitor, SystemInfo
from lib.signals import SIGNALS
from lib.sources.base import FRESHNESS_ATTR
from lib.timerange import TimeRange

CHART_SIGNALS = (
    "requests_per_second",
    "average_latency_ms",
    "p95_latency_ms",
    "error_rate",
    "cost_per_hour",
    "cpu_usage",
    "memory_usage",
)
CHARTS_PER_ROW = 2


def show_cross_system() -> None:
    """Render the Cross-system metrics page, refreshed at the sidebar's interval."""
    monitor = cached_monitor()
    selection = current_selection(monitor)

    st.title("Cross-system metrics")
    if not selection.systems:
        st.info("Select at least one system in the sidebar.")
        return

    shift = comparison_shift("cross_system.compare")
    refreshing_charts = st.fragment(_render_charts, run_every=selection.refresh_seconds)
    refreshing_charts(monitor, selection, shift)


def _render_charts(monitor: Monitor, selection: Selection, shift: float | None = None) -> None:
    loading = monitor.loading_history()
    loading_notice(loading)
    try:
        with st.spinner("Loading metrics…"):
            now, frame = cached_platform_metrics(
                selection.systems, selection.time_range, CHART_SIGNALS, monitor.key, loading
            )
            time_range: TimeRange = frame.attrs["time_range"]
            previous = None
            if shift:
                previous = previous_period(
                    lambda earlier: monitor.platform_metrics(selection.systems, earlier,
                                                             CHART_SIGNALS),
                    time_range, shift,
                )
    except MonitorError as error:
        st.error(f"Could not read the metrics: {escape_markdown(str(error))}")
        return

    systems = monitor.systems()
    # The notices vary in number between refreshes. In a container of their own they keep the
    # charts below at the same place on the page, so Streamlit updates each chart in place
    # instead of drawing a new one, which shows blank for a moment.
    with st.container():
        _render_notices(frame, systems, selection, now)

    # NOTE: the latency chart already uses dashes for p95, so it draws no previous period.
    charts: list[tuple[alt.LayerChart, tuple[str, ...]]] = [
        (signal_chart(frame, "requests_per_second", title=SIGNALS["requests_per_second"].title,
                      systems=systems, previous=previous), ("requests_per_second",)),
        (latency_chart(frame, title="Latency (average solid, p95 dashed)", systems=systems),
         ("average_latency_ms", "p95_latency_ms")),
        (signal_chart(frame, "error_rate", title=SIGNALS["error_rate"].title, systems=systems,
                      previous=previous), ("error_rate",)),
        (signal_chart(frame, "cost_per_hour", title=SIGNALS["cost_per_hour"].title,
                      systems=systems, previous=previous), ("cost_per_hour",)),
        (signal_chart(frame, "cpu_usage", title=SIGNALS["cpu_usage"].title, systems=systems,
                      previous=previous), ("cpu_usage",)),
        (signal_chart(frame, "memory_usage", title=SIGNALS["memory_usage"].title,
                      systems=systems, previous=previous), ("memory_usage",)),
    ]

    for start in range(0, len(charts), CHARTS_PER_ROW):
        columns = st.columns(CHARTS_PER_ROW)
        for column, (chart, signals) in zip(columns, charts[start:start + CHARTS_PER_ROW],
                                            strict=False):
            column.altair_chart(chart, width="stretch")
            with column:
                download_menu(_chart_export(monitor, selection, frame, signals, time_range, now),
                              f"cross-system_{signals[0]}", key=f"cross_system.{signals[0]}")


def _render_notices(
    frame: pd.DataFrame,
    systems: Sequence[SystemInfo],
    selection: Selection,
    now: float,
) -> None:
    for warning in frame.attrs.get("warnings", ()):
        st.warning(f"The source warned: {escape_markdown(warning)}", icon=":material/info:")
    names = {system.id: system.display_name for system in systems}
    freshness = frame.attrs.get(FRESHNESS_ATTR, {})
    # One line per system under the charts' legend: fresh, or stale with its age and reason.
    for system in selection.systems:
        stale = describe_freshness(freshness.get(system), names.get(system, system), now)
        if stale:
            st.warning(escape_markdown(stale), icon=":material/history:")
    fresh = [names.get(s, s) for s in selection.systems
             if s in freshness and not freshness[s].stale]
    if fresh:
        st.caption(escape_markdown(f"Fresh data: {', '.join(fresh)}."))


def _chart_export(
    monitor: Monitor,
    selection: Selection,
    frame: pd.DataFrame,
    signals: tuple[str, ...],
    time_range: TimeRange,
    now: float,
) -> Callable[[], Export]:
    def build() -> Export:
        shown = frame[frame["signal"].isin(signals)]
        return frame_export(shown, monitor, selection.systems,
                            signal_definitions(signals, monitor.source, selection.systems,
                                               time_range), time_range,
                            "displayed", now)

    return build


if __name__ == "__main__":  # Streamlit runs each page script as __main__
    show_cross_system()
