"""Alerts page: firing alerts with their acknowledgements, the forms to change those, and the
alerts resolved in the sidebar's time range.

Every label value, summary and comment comes from outside the app, so it is shown in
dataframes and widget options (plain text) or escaped before any Markdown element.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import pandas as pd
import streamlit as st

from app_pages.access import logged_in_user
from app_pages.state import Selection, cached_monitor, current_selection, viewer_timezone
from lib.alerts.model import AckResult, Alert, AlertState
from lib.alerts.service import Alerts
from lib.auth import User, local_user
from lib.errors import AlertError, MonitorError
from lib.format import escape_markdown, format_duration, format_timestamp
from lib.monitor import Monitor

KEY = "alerts."
LAST_GOOD_KEY = KEY + "last_good"
FLASH_KEY = KEY + "flash"
EXPIRY_CHOICES: dict[str, float] = {
    "1 hour": 3600.0,
    "2 hours": 2 * 3600.0,
    "4 hours": 4 * 3600.0,
    "8 hours": 8 * 3600.0,
    "1 day": 86400.0,
    "3 days": 3 * 86400.0,
    "7 days": 7 * 86400.0,
}
DEFAULT_EXPIRY = "4 hours"
SEVERITY_ICONS = {"critical": "🔴", "warning": "🟠"}
STATE_LABELS = {
    AlertState.FIRING: "firing",
    AlertState.SILENCED: "acknowledged",
    AlertState.RESOLVED: "resolved",
}


def show_alerts() -> None:
    """Render the Alerts page."""
    monitor = cached_monitor()
    selection = current_selection(monitor)
    st.title("Alerts")
    _show_flash()
    if monitor.alerts is None:
        st.info("Alerts are not configured for this data source.")
        return

    service = monitor.alerts
    st.caption(escape_markdown(f"Source: {service.label}"))
    now = time.time()
    active = _read_active(service)
    _show_pending(service)
    systems, severities, states = _filters(monitor, active)

    shown = [a for a in active
             if a.system in systems and a.severity in severities and a.state in states]
    st.subheader(f"Firing ({len(shown)})")
    if shown:
        st.dataframe(_active_frame(shown, now), hide_index=True, width="stretch",
                     key=KEY + "active_table")
    else:
        st.caption("No firing alerts match the filters.")

    if shown:
        _actions(service, shown)
    if AlertState.RESOLVED in states:
        _resolved(monitor, service, selection, systems, severities, now)


def _read_active(service: Alerts) -> list[Alert]:
    """Return the firing alerts, or the last ones read in this session when the backend
    cannot be read. An operator can then still acknowledge, and the outbox delivers it later."""
    try:
        active = service.active()
    except MonitorError as error:
        st.error(escape_markdown(f"Could not read alerts from {service.label}: {error}"))
        last_good: tuple[float, list[Alert]] | None = st.session_state.get(LAST_GOOD_KEY)
        if last_good is None:
            return []
        read_at, active = last_good
        st.warning(escape_markdown(
            f"Showing the alerts as read at {format_timestamp(read_at, viewer_timezone())}."
        ))
        return active
    st.session_state[LAST_GOOD_KEY] = (time.time(), active)
    return active


def _show_pending(service: Alerts) -> None:
    pending = service.pending_deliveries()
    if not pending:
        return
    last_error = next((p.last_error for p in reversed(pending) if p.last_error), None)
    message = (f"{len(pending)} acknowledgement change(s) wait for delivery to Alertmanager. "
               "They are stored on disk and retried until Alertmanager accepts them.")
    if last_error:
        message += f" Last failure: {last_error}."
    st.warning(escape_markdown(message), icon=":material/schedule_send:")


def _filters(monitor: Monitor, active: Sequence[Alert]) -> tuple[set[str], set[str],
                                                                 set[AlertState]]:
    configured = [system.id for system in monitor.systems()]
    extra = sorted({a.system for a in active} - set(configured))
    names = {system.id: system.display_name for system in monitor.systems()}
    left, middle, right = st.columns(3)
    systems = left.multiselect("System", options=configured + extra, default=configured + extra,
                               format_func=lambda s: names.get(s, s), key=KEY + "systems")
    severity_options = sorted({"critical", "warning"} | {a.severity for a in active})
    severities = middle.multiselect("Severity", options=severity_options,
                                    default=severity_options, key=KEY + "severities")
    states = right.multiselect("State", options=list(STATE_LABELS), default=list(STATE_LABELS),
                               format_func=STATE_LABELS.__getitem__, key=KEY + "states")
    return set(systems), set(severities), set(states)


def _active_frame(alerts: Sequence[Alert], now: float) -> pd.DataFrame:
    rows = []
    for alert in alerts:
        ack = alert.acknowledgement
        rows.append({
            "Severity": f"{SEVERITY_ICONS.get(alert.severity, '⚪')} {alert.severity}",
            "System": alert.system,
            "Alert": alert.name,
            "Summary": alert.summary,
            "Firing for": format_duration(now - alert.started_at),
            "State": STATE_LABELS[alert.state],
            "Acknowledged by": ack.acknowledged_by if ack else "",
            "Acknowledged at": (
                format_timestamp(ack.acknowledged_at, viewer_timezone()) if ack else ""
            ),
            "Comment": ack.comment if ack else "",
            "Until": format_timestamp(ack.expires_at, viewer_timezone()) if ack else "",
            "Delivery": _delivery(alert),
        })
    return pd.DataFrame(rows)


def _delivery(alert: Alert) -> str:
    ack = alert.acknowledgement
    if ack is None:
        return ""
    if ack.pending:
        return "pending: kept and retried" + (f" ({ack.delivery_error})"
                                              if ack.delivery_error else "")
    return "delivered"


def _actions(service: Alerts, alerts: Sequence[Alert]) -> None:
    st.subheader("Acknowledge")
    user = logged_in_user()
    if user is not None and not user.can_acknowledge:
        st.info("You can read alerts. Acknowledging them needs the operator role.")
        return

    by_id = {alert.id: alert for alert in alerts}
    chosen = st.selectbox("Alert", options=list(by_id), format_func=lambda i: _title(by_id[i]),
                          key=KEY + "chosen")
    if chosen is None:
        return
    alert = by_id[chosen]
    st.dataframe(pd.DataFrame({"Label": list(alert.labels), "Value": list(alert.labels.values())}),
                 hide_index=True, key=KEY + "labels")

    if alert.acknowledgement is None:
        _acknowledge_form(service, alert, user)
    else:
        _change_forms(service, alert, user)


def _title(alert: Alert) -> str:
    return f"{alert.severity} · {alert.system} · {alert.name}: {alert.summary}"


def _acknowledge_form(service: Alerts, alert: Alert, user: User | None) -> None:
    with st.form(KEY + "ack_form", clear_on_submit=False):
        name = _name_input(user, "ack")
        comment = st.text_area("Comment (required)", key=KEY + "comment",
                               placeholder="What is being done, or why it can wait")
        expiry = st.selectbox("Acknowledged for", options=list(EXPIRY_CHOICES),
                              index=list(EXPIRY_CHOICES).index(DEFAULT_EXPIRY),
                              key=KEY + "expiry")
        submitted = st.form_submit_button("Acknowledge", type="primary")
    if submitted:
        author = user or local_user(name)
        _apply(lambda: service.acknowledge(alert, author, comment,
                                           time.time() + EXPIRY_CHOICES[expiry]),
               alert, "Acknowledged")


def _change_forms(service: Alerts, alert: Alert, user: User | None) -> None:
    ack = alert.acknowledgement
    assert ack is not None
    status = " (pending delivery)" if ack.pending else ""
    st.caption(escape_markdown(
        f"Acknowledged by {ack.acknowledged_by} at "
        f"{format_timestamp(ack.acknowledged_at, viewer_timezone())} "
        f"until {format_timestamp(ack.expires_at, viewer_timezone())}{status}."
    ))
    st.text(f"Comment: {ack.comment}")
    extend_column, remove_column = st.columns(2)
    with extend_column, st.form(KEY + "extend_form"):
        name = _name_input(user, "extend")
        expiry = st.selectbox("Extend to, from now", options=list(EXPIRY_CHOICES),
                              index=list(EXPIRY_CHOICES).index(DEFAULT_EXPIRY),
                              key=KEY + "extend_expiry")
        if st.form_submit_button("Extend"):
            author = user or local_user(name)
            _apply(lambda: service.extend(alert, author, time.time() + EXPIRY_CHOICES[expiry]),
                   alert, "Extended the acknowledgement of")
    with remove_column, st.form(KEY + "remove_form"):
        name = _name_input(user, "remove")
        if st.form_submit_button("Remove acknowledgement"):
            author = user or local_user(name)
            _apply(lambda: service.remove(alert, author), alert,
                   "Removed the acknowledgement of")


def _name_input(user: User | None, form: str) -> str:
    """Ask for a name when no user is logged in; return the typed name or ''."""
    if user is not None:
        return ""
    return st.text_input("Your name (auth is off)", key=f"{KEY}{form}_name")


def _apply(change: Callable[[], AckResult], alert: Alert, done: str) -> None:
    """Run `change`, then keep its outcome for the next run and rerun to show fresh data."""
    try:
        result: AckResult = change()
    except (AlertError, PermissionError) as error:
        st.error(escape_markdown(str(error)))
        return
    what = f"{alert.name} on {alert.system}"
    if result.delivered:
        st.session_state[FLASH_KEY] = ("toast", f"{done} {what}.")
    else:
        st.session_state[FLASH_KEY] = (
            "warning",
            f"{done} {what}, but it could not be delivered yet: {result.error}. "
            "The acknowledgement is kept and will be retried.",
        )
    st.rerun()


def _show_flash() -> None:
    flash: tuple[str, str] | None = st.session_state.pop(FLASH_KEY, None)
    if flash is None:
        return
    kind, message = flash
    st.toast(escape_markdown(message), icon="✅" if kind == "toast" else "⏳")
    if kind == "warning":
        st.warning(escape_markdown(message), icon=":material/schedule_send:")


def _resolved(monitor: Monitor, service: Alerts, selection: Selection, systems: set[str],
              severities: set[str], now: float) -> None:
    time_range = monitor.time_range(selection.time_range, now=now)
    st.subheader("Resolved")
    st.caption(escape_markdown(time_range.describe()))
    try:
        resolved = service.resolved(time_range.start_s, now)
    except MonitorError as error:
        st.error(escape_markdown(f"Could not read resolved alerts: {error}"))
        return
    resolved = [a for a in resolved if a.system in systems and a.severity in severities]
    if not service.keeps_history:
        st.caption("Alertmanager's API lists only alerts that still fire, so resolved alerts "
                   "are not shown in this mode.")
    elif not resolved:
        st.caption("No alerts resolved in this time range.")
        return
    rows = [{
        "Severity": alert.severity,
        "System": alert.system,
        "Alert": alert.name,
        "Summary": alert.summary,
        "Started": format_timestamp(alert.started_at, viewer_timezone()),
        "Resolved": format_timestamp(alert.resolved_at, viewer_timezone()),
        "Lasted": format_duration((alert.resolved_at or now) - alert.started_at),
    } for alert in resolved]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key=KEY + "resolved")


if __name__ == "__main__":  # Streamlit runs each page script as __main__
    show_alerts()
