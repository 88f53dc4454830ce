"""Targets page: every scraped /metrics endpoint and the result of its last scrape."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app_pages.state import (
    Selection,
    cached_monitor,
    cached_targets,
    current_selection,
    viewer_timezone,
)
from lib.collector import BACKOFF_AFTER_FAILURES
from lib.errors import MonitorError
from lib.format import (
    escape_markdown,
    format_endpoint,
    format_relative_time,
    format_timestamp,
)
from lib.monitor import TargetStatus

# Each state is shown as an icon and a word, so colour is never the only cue.
STATE_LABELS = {"up": "✅ up", "down": "❌ down", "unknown": "❔ unknown"}
BACKING_OFF_LABEL = "❌ down, retried less often"


def show_targets() -> None:
    """Render the Targets page, refreshed at the sidebar's interval."""
    monitor = cached_monitor()
    selection = current_selection(monitor)

    st.title("Targets")
    if not selection.systems:
        st.info("Select at least one system in the sidebar.")
        return

    refreshing_table = st.fragment(_render_targets, run_every=selection.refresh_seconds)
    refreshing_table(selection)


def _render_targets(selection: Selection) -> None:
    try:
        now, all_statuses = cached_targets(cached_monitor().key)
        statuses = [status for status in all_statuses if status.system in selection.systems]
    except MonitorError as error:
        st.error(f"Could not read the targets: {escape_markdown(str(error))}")
        return

    if not statuses:
        st.info("No targets are configured for the selected systems.")
        return

    counts = {state: sum(status.health == state for status in statuses) for state in STATE_LABELS}
    st.caption(
        f"Targets: {len(statuses)} ({counts['up']} up, {counts['down']} down, "
        f"{counts['unknown']} unknown) · updated "
        f"{escape_markdown(format_timestamp(now, viewer_timezone()))}"
    )
    st.dataframe(
        _targets_table(statuses, now),
        hide_index=True,
        width="stretch",
        column_config={
            "Scrape duration": st.column_config.NumberColumn(format="%.1f ms"),
            "Samples": st.column_config.NumberColumn(format="%d"),
            "Failures in a row": st.column_config.NumberColumn(format="%d"),
        },
    )


def _targets_table(statuses: list[TargetStatus], now: float) -> pd.DataFrame:
    rows = [
        {
            "Endpoint": format_endpoint(status.url),
            "System": status.display_name,
            "State": _state_label(status),
            "Last scrape": format_timestamp(status.last_scrape_at, viewer_timezone()),
            "Age": format_relative_time(status.last_scrape_at, now),
            "Scrape duration": (
                None if status.scrape_duration_seconds is None
                else status.scrape_duration_seconds * 1000
            ),
            "Samples": status.samples,
            "Failures in a row": status.consecutive_failures,
            "Next try": format_relative_time(status.next_scrape_at, now),
            "Last error": status.last_error or "",
        }
        for status in statuses
    ]
    table = pd.DataFrame(rows)
    if not table.empty:
        table["Samples"] = table["Samples"].astype("Int64")
    return table


def _state_label(status: TargetStatus) -> str:
    if status.health == "down" and status.consecutive_failures >= BACKOFF_AFTER_FAILURES:
        return BACKING_OFF_LABEL
    return STATE_LABELS.get(status.health, status.health)


if __name__ == "__main__":  # Streamlit runs each page script as __main__
    show_targets()
