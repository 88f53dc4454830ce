"""Overview page: one card per system with its status, key values and request-rate trend."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Literal

import streamlit as st

from app_pages.components import loading_notice
from app_pages.state import (
    Selection,
    cached_monitor,
    cached_overview,
    current_selection,
    viewer_timezone,
)
from lib.charts import sparkline
from lib.errors import MonitorError
from lib.format import (
    describe_freshness,
    escape_markdown,
    format_bytes,
    format_cores,
    format_cost_per_hour,
    format_duration,
    format_latency_ms,
    format_percent,
    format_rate,
    format_relative_time,
    format_timestamp,
)
from lib.health import Status
from lib.monitor import Monitor, SystemHealth

CARDS_PER_ROW = 3
BadgeColour = Literal["green", "orange", "red", "gray"]
STATUS_BADGE_COLOURS: dict[Status, BadgeColour] = {
    Status.HEALTHY: "green",
    Status.WARNING: "orange",
    Status.ERROR: "red",
}
# Material icons ship with Streamlit, so they show where the viewer has no emoji font.
STATUS_BADGE_ICONS: dict[Status, str] = {
    Status.HEALTHY: ":material/check_circle:",
    Status.WARNING: ":material/warning:",
    Status.ERROR: ":material/error:",
}
FALLBACK_COLOUR = "#9D9D9D"


def show_overview() -> None:
    """Render the Overview page, refreshed at the sidebar's interval."""
    monitor = cached_monitor()
    selection = current_selection(monitor)

    st.title("Overview")
    if not selection.systems:
        st.info("Select at least one system in the sidebar.")
        return

    refreshing_cards = st.fragment(_render_cards, run_every=selection.refresh_seconds)
    refreshing_cards(monitor, selection)


def _render_cards(monitor: Monitor, selection: Selection) -> None:
    loading = monitor.loading_history()
    loading_notice(loading)
    try:
        now, time_range, healths = cached_overview(
            selection.systems, selection.time_range, monitor.key, loading
        )
    except MonitorError as error:
        st.error(f"Could not read the systems' health: {escape_markdown(str(error))}")
        return

    updated = format_timestamp(now, viewer_timezone())
    st.caption(escape_markdown(f"{time_range.describe()} · updated {updated}"))
    colours = {system.id: system.colour for system in monitor.systems()}
    firing = _firing_counts(monitor)
    for row in _chunks(healths, CARDS_PER_ROW):
        for column, health in zip(st.columns(CARDS_PER_ROW), row, strict=False):
            with column, st.container(border=True):
                _render_card(health, colours.get(health.system, FALLBACK_COLOUR), now)
                _render_firing(firing, health.system)


def _firing_counts(monitor: Monitor) -> Counter[str] | None:
    """Return firing alerts per system, None when the alerts cannot be read."""
    if monitor.alerts is None:
        return None
    try:
        return monitor.alerts.firing_counts()
    except MonitorError:
        return None


def _render_firing(firing: Counter[str] | None, system: str) -> None:
    if firing is None:
        st.caption("Firing alerts: could not be read.")
        return
    st.caption(f"Firing alerts: {firing[system]}")


def _render_card(health: SystemHealth, colour: str, now: float) -> None:
    st.subheader(escape_markdown(health.display_name))
    # The status lines vary in number between refreshes. In a container of their own they keep
    # the elements below at the same place in the card, so Streamlit updates the trend chart in
    # place instead of drawing a new one, which shows blank for a moment.
    with st.container():
        # The badge shows the status as a word and an icon, so colour is never the only cue.
        st.badge(health.status.label.capitalize(),
                 icon=STATUS_BADGE_ICONS.get(health.status, health.status.icon),
                 color=STATUS_BADGE_COLOURS.get(health.status, "gray"))
        stale = describe_freshness(health.freshness, health.display_name, now)
        if stale:
            st.warning(escape_markdown(stale), icon=":material/history:")
        else:
            st.caption("Fresh data.")
        for reason in health.reasons:
            st.caption(escape_markdown(reason))

    st.metric("Requests", format_rate(health.requests_per_second))
    if health.trend.empty or health.trend["value"].isna().all():
        st.caption("No request rate data in this time range.")
    else:
        st.altair_chart(sparkline(health.trend, colour=colour), width="stretch")

    left, right = st.columns(2)
    left.metric("Error rate", format_percent(health.error_rate))
    right.metric("Availability", format_percent(health.availability),
                 help="Share of successful scrapes in the selected time range.")
    left.metric("Average latency", format_latency_ms(health.average_latency_ms))
    right.metric("p95 latency", format_latency_ms(health.p95_latency_ms))
    left.metric("Process uptime", format_duration(health.process_uptime_seconds),
                help="Time since the process last started, from process_start_time_seconds.")
    right.metric("Memory", format_bytes(health.memory_usage))

    cpu = format_cores(health.cpu_usage)
    cost = format_cost_per_hour(health.cost_per_hour)
    st.caption(escape_markdown(f"CPU {cpu} · AI cost {cost}"))
    if health.last_success_at is None:
        st.caption("No successful scrape yet.")
    else:
        st.caption(escape_markdown(
            "Last successful scrape: "
            f"{format_timestamp(health.last_success_at, viewer_timezone())} "
            f"({format_relative_time(health.last_success_at, now)})"
        ))
    if health.last_error and not stale:
        st.warning(f"Last scrape failed: {escape_markdown(health.last_error)}",
                   icon=":material/warning:")
    for warning in health.warnings:
        st.warning(f"The source warned: {escape_markdown(warning)}", icon=":material/info:")


def _chunks(healths: Sequence[SystemHealth], size: int) -> list[Sequence[SystemHealth]]:
    return [healths[index:index + size] for index in range(0, len(healths), size)]


if __name__ == "__main__":  # Streamlit runs each page script as __main__
    show_overview()
