"""Export page: download the golden signals of chosen systems over the sidebar's range."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from app_pages.state import cached_monitor, current_selection
from lib.export import (
    FORMATS,
    MAX_EXPORT_ROWS,
    MIME_TYPES,
    ExportTooLarge,
    file_name,
    plan_export,
    render,
    signals_export,
)
from lib.format import escape_markdown
from lib.monitor import Monitor
from lib.signals import SIGNALS
from lib.timerange import TimeRange

RESOLUTION_LABELS = {
    "displayed": "As displayed (the chart's step)",
    "finest": f"Finest the source holds (up to {MAX_EXPORT_ROWS:,} rows)",
}


def show_export() -> None:
    """Render the Export page: choices, the planned size, and one download button."""
    monitor = cached_monitor()
    selection = current_selection(monitor)
    names = {system.id: system.display_name for system in monitor.systems()}

    st.title("Export")
    st.caption("The file holds the same values as the charts for the sidebar's time range, "
               "with timestamps in UTC (ISO 8601) and a header naming the source, range, step "
               "and signal definitions.")
    systems = st.multiselect("Systems", options=list(names), default=list(selection.systems),
                             format_func=names.__getitem__, key="export.systems")
    signals = st.multiselect("Signals", options=list(SIGNALS), default=list(SIGNALS),
                             format_func=lambda name: SIGNALS[name].title, key="export.signals")
    file_format = st.radio("Format", options=list(FORMATS), horizontal=True,
                           format_func=str.upper, key="export.format")
    wide = st.checkbox("Wide layout: one column per system and signal",
                       disabled=file_format != "csv", key="export.wide")
    resolution = st.radio("Resolution", options=list(RESOLUTION_LABELS),
                          format_func=RESOLUTION_LABELS.__getitem__, key="export.resolution")

    now = monitor.clock()
    time_range = monitor.time_range(selection.time_range, now=now)
    planned, rows = plan_export(monitor, systems, signals, time_range, resolution, now)
    st.caption(f"{escape_markdown(planned.describe())} · {rows:,} rows")
    if not systems or not signals:
        st.info("Choose at least one system and one signal.")
        return
    if rows > MAX_EXPORT_ROWS:
        st.warning(str(ExportTooLarge(rows, MAX_EXPORT_ROWS)))
        return

    st.download_button(
        "Download",
        data=_builder(monitor, systems, signals, time_range, resolution, file_format,
                      wide and file_format == "csv", now),
        file_name=file_name(systems, planned, file_format, wide and file_format == "csv"),
        mime=MIME_TYPES[file_format],
        on_click="ignore",
        type="primary",
        icon=":material/download:",
        key="export.download",
    )


def _builder(
    monitor: Monitor,
    systems: list[str],
    signals: list[str],
    time_range: TimeRange,
    resolution: str,
    file_format: str,
    wide: bool,
    now: float,
) -> Callable[[], bytes]:
    def build() -> bytes:
        export = signals_export(monitor, systems, signals, time_range,
                                "finest" if resolution == "finest" else "displayed", now=now)
        return render(export, file_format, wide=wide)

    return build


if __name__ == "__main__":  # Streamlit runs each page script as __main__
    show_export()
