"""The Monitor shared by all sessions, the cached reads every page uses, and the sidebar choices.

The entry point renders the sidebar on every run, so its widgets keep their values in
st.session_state while the viewer moves between pages.

Pages read data only through the `cached_*` functions. st.cache_data keeps each result for
`DATA_TTL_SECONDS` and lets one session compute it while the others wait. So any number of open
sessions cause one query per system and interval, not one per session.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
import streamlit as st

from lib.format import escape_markdown
from lib.monitor import Monitor, SystemHealth, TargetStatus, get_monitor
from lib.timerange import PRESETS, TimeRange

TIME_RANGE_KEY = "sidebar.time_range"
SYSTEMS_KEY = "sidebar.systems"
REFRESH_KEY = "sidebar.refresh_seconds"

# Shorter than the shortest auto-refresh the sidebar offers (10 s). An entry is stored a moment
# after its run starts, so with a TTL equal to the refresh, a 10 s refresh would get new data
# only every 20 s. All sessions within one refresh still share one query.
DATA_TTL_SECONDS = 8

DEFAULT_TIME_RANGE = "1h"
DEFAULT_REFRESH_SECONDS = 30
REFRESH_LABELS: dict[int | None, str] = {
    None: "Off",
    10: "10 s",
    30: "30 s",
    60: "1 min",
    300: "5 min",
}


@dataclass(frozen=True)
class Selection:
    """The sidebar choices: time range preset, system ids and refresh interval in seconds."""

    time_range: str
    systems: tuple[str, ...]
    refresh_seconds: int | None


def cached_monitor() -> Monitor:
    """Return the server process's Monitor; the first call builds it and starts the collector.

    get_monitor() keeps one per process, so tests and embedders that install another with
    set_monitor() are seen at once, which st.cache_resource would hide.
    """
    return get_monitor()


# The cached reads take the monitor's key, so that a different monitor in the same process
# never gets another one's results. `loading_history` is only part of the key: a result read
# while the history was still being written is not served once it is complete.
@st.cache_data(ttl=DATA_TTL_SECONDS, show_spinner=False, max_entries=64)
def cached_overview(
    systems: tuple[str, ...], time_range: str, monitor_key: str, loading_history: bool = False
) -> tuple[float, TimeRange, list[SystemHealth]]:
    """Return (now, range, each system's health) for the preset range ending now."""
    monitor = cached_monitor()
    now = monitor.now()
    chosen = monitor.time_range(time_range, now=now)
    return now, chosen, monitor.overview(systems, chosen, now=now)


@st.cache_data(ttl=DATA_TTL_SECONDS, show_spinner=False, max_entries=64)
def cached_platform_metrics(
    systems: tuple[str, ...],
    time_range: str,
    signals: tuple[str, ...],
    monitor_key: str,
    loading_history: bool = False,
) -> tuple[float, pd.DataFrame]:
    """Return (now, the long signal frame of `systems`) for the preset range ending now. The
    frame's attrs hold the range and each system's freshness."""
    monitor = cached_monitor()
    now = monitor.now()
    chosen = monitor.time_range(time_range, now=now)
    return now, monitor.platform_metrics(systems, chosen, signals)


@st.cache_data(ttl=DATA_TTL_SECONDS, show_spinner=False)
def cached_targets(monitor_key: str) -> tuple[float, list[TargetStatus]]:
    """Return (now, every configured endpoint with the collector's last view of it)."""
    monitor = cached_monitor()
    return monitor.now(), monitor.targets()


def clear_data_caches() -> None:
    """Clear the cached reads, for tests that change the data between renders."""
    cached_overview.clear()
    cached_platform_metrics.clear()
    cached_targets.clear()


def render_sidebar(monitor: Monitor) -> None:
    """Render the time range, systems and refresh widgets and the data source in the sidebar."""
    names = {system.id: system.display_name for system in monitor.systems()}

    with st.sidebar:
        st.segmented_control(
            "Time range",
            options=list(PRESETS),
            default=DEFAULT_TIME_RANGE,
            required=True,
            key=TIME_RANGE_KEY,
        )
        st.multiselect(
            "Systems",
            options=list(names),
            default=list(names),
            format_func=names.__getitem__,
            key=SYSTEMS_KEY,
        )
        st.selectbox(
            "Auto-refresh",
            options=list(REFRESH_LABELS),
            index=list(REFRESH_LABELS).index(default_refresh_seconds(monitor)),
            format_func=REFRESH_LABELS.__getitem__,
            key=REFRESH_KEY,
            help="Interval between automatic refreshes of the page's data. Off turns them off.",
        )
        st.caption(f"Source: {escape_markdown(monitor.source_label)}")


def default_refresh_seconds(monitor: Monitor) -> int:
    """Return the configured refresh interval if the sidebar offers it, else 30 seconds."""
    configured = monitor.settings.refresh_seconds
    if configured in REFRESH_LABELS:
        return int(configured)
    return DEFAULT_REFRESH_SECONDS


def current_selection(monitor: Monitor) -> Selection:
    """Return the sidebar choices, with the defaults for widgets not rendered yet.

    System ids missing from the monitor's configuration, such as ids chosen before the
    configuration changed, are dropped.
    """
    known = [system.id for system in monitor.systems()]
    chosen = st.session_state.get(SYSTEMS_KEY, known)
    time_range = st.session_state.get(TIME_RANGE_KEY) or DEFAULT_TIME_RANGE

    return Selection(
        time_range=time_range,
        systems=tuple(system for system in chosen if system in known),
        refresh_seconds=st.session_state.get(REFRESH_KEY, default_refresh_seconds(monitor)),
    )


def viewer_timezone() -> tzinfo:
    """Return the time zone of the viewer's browser, or UTC until the browser has sent it."""
    name = st.context.timezone
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC
