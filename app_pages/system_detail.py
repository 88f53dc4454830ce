"""The layout every system detail page shares: month cost, then one chart per panel with its
top-N table beside it and a download menu under it."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import streamlit as st

from app_pages.components import comparison_shift, download_menu, loading_notice
from app_pages.state import Selection, cached_monitor, current_selection, viewer_timezone
from lib.breakdown_charts import breakdown_chart
from lib.breakdowns import BreakdownSource, month_cost
from lib.compare import previous_period
from lib.errors import MonitorError
from lib.export import Export, breakdown_export_frame, frame_export
from lib.format import escape_markdown, format_timestamp
from lib.monitor import Monitor
from lib.system_views import Panel, SystemView, panel_frame, panel_labels, panel_table
from lib.timerange import TimeRange

TABLE_NUMBER_FORMATS = {
    "count": "%.0f",
    "USD": "$%.2f",
}


def show_system(view: SystemView) -> None:
    """Render the detail page of `view.system`, refreshed at the sidebar's interval."""
    monitor = cached_monitor()
    selection = current_selection(monitor)

    st.title(view.title)
    if view.system not in monitor.settings.systems:
        st.info(f"{escape_markdown(view.title)} is not among the configured systems.")
        return
    shift = comparison_shift(f"{view.system}.compare")

    refreshing = st.fragment(_render_panels, run_every=selection.refresh_seconds)
    refreshing(monitor, view, selection, shift)


def _render_panels(
    monitor: Monitor, view: SystemView, selection: Selection, shift: float | None
) -> None:
    loading_notice(monitor.loading_history())
    now = monitor.clock()
    time_range = monitor.time_range(selection.time_range, now=now)
    try:
        source = monitor.breakdowns()
        if view.cost_metric:
            # The cost block's note comes and goes. In a container of its own it leaves the
            # charts below at their place, and Streamlit updates them in place.
            with st.container():
                _render_month_cost(source, view, now)
        updated = format_timestamp(now, viewer_timezone())
        st.caption(escape_markdown(f"{time_range.describe()} · updated {updated}"))
        for panel in view.panels:
            _render_panel(monitor, source, view, panel, time_range, shift, now)
    except MonitorError as error:
        st.error(f"Could not read {escape_markdown(view.title)}'s metrics: "
                 f"{escape_markdown(str(error))}")


def _render_month_cost(source: BreakdownSource, view: SystemView, now: float) -> None:
    assert view.cost_metric is not None
    cost = month_cost(source, view.system, view.cost_metric, now)
    so_far, rate, projected = st.columns(3)
    so_far.metric("AI cost this month", _usd(cost.so_far_usd),
                  help=f"Since {format_timestamp(cost.month_start.timestamp())} (UTC month).")
    rate.metric("Current rate", f"{_usd(cost.rate_usd_per_hour)}/h",
                help="Cost over the last hour.")
    projected.metric("Projected month total", _usd(cost.projected_usd),
                     help="Cost so far plus the current rate until the month ends.")
    if cost.covered_since and cost.covered_since > cost.month_start:
        st.caption(escape_markdown(
            "Data this month starts at "
            f"{format_timestamp(cost.covered_since.timestamp(), viewer_timezone())}; "
            "earlier cost is not included."
        ))


def _usd(value: float) -> str:
    return "no data" if value != value else f"${value:,.2f}"


def _render_panel(
    monitor: Monitor,
    source: BreakdownSource,
    view: SystemView,
    panel: Panel,
    time_range: TimeRange,
    shift: float | None,
    now: float,
) -> None:
    frame = panel_frame(source, view.system, panel, time_range)
    previous = None
    if shift:
        previous = previous_period(
            lambda earlier: panel_frame(source, view.system, panel, earlier), time_range, shift
        )

    chart_column, table_column = st.columns([3, 2]) if panel.table else (st.container(), None)
    with chart_column:
        if frame.empty or frame["value"].isna().all():
            st.subheader(escape_markdown(panel.title))
            st.caption("No data in this time range.")
        else:
            st.altair_chart(breakdown_chart(frame, title=panel.title, unit=panel.unit,
                                            previous=previous), width="stretch")
        download_menu(_panel_export(monitor, view, panel, frame, time_range, now),
                      f"{view.system}_{panel.signal}", key=f"{view.system}.{panel.signal}")
    if panel.table is not None and table_column is not None:
        with table_column:
            st.markdown(f"**{escape_markdown(panel.table.title)}**")
            table = panel_table(source, view.system, panel.table, time_range)
            st.dataframe(table, hide_index=True, width="stretch",
                         column_config=_table_columns(table, panel.table.unit),
                         key=f"{view.system}.{panel.signal}.table")


def _table_columns(table: pd.DataFrame, unit: str) -> dict[str, st.column_config.NumberColumn]:
    config = {}
    number_format = TABLE_NUMBER_FORMATS.get(unit, "%.4g")
    for column in table.columns:
        if column in ("Share", "Error share"):
            config[column] = st.column_config.NumberColumn(format="percent")
        elif column == "Per second":
            config[column] = st.column_config.NumberColumn(format="%.4g")
        elif pd.api.types.is_numeric_dtype(table[column]):
            config[column] = st.column_config.NumberColumn(format=number_format)
    return config


def _panel_export(
    monitor: Monitor,
    view: SystemView,
    panel: Panel,
    frame: pd.DataFrame,
    time_range: TimeRange,
    now: float,
) -> Callable[[], Export]:
    def build() -> Export:
        labels = panel_labels(panel)
        data = breakdown_export_frame(frame, view.system, panel.signal, panel.unit, labels)
        # A Prometheus source labels each target with its job, by default the system id.
        job = getattr(monitor.settings.target(view.system), "prometheus_job", view.system)
        definition = {"unit": panel.unit, "meaning": panel.title,
                      "promql": panel.promql(str(job), time_range.window)}
        return frame_export(data, monitor, [view.system], {panel.signal: definition},
                            time_range, "displayed", now, labels)

    return build
