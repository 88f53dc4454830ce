"""The embedded alerts backend: rules evaluated by the app, state and acknowledgements in SQLite.

The process that runs the collector evaluates the rules after each scrape cycle
(`RuleEvaluator.evaluate`). Every other process only reads the same file. An alert is `pending`
while its condition is true for less than the rule's `for` time, then `firing`, and `resolved`
once the condition is false. Each firing episode is one row, kept as history.
An acknowledgement belongs to the alert's id (its label fingerprint), so, like an Alertmanager
silence, it also covers the alert's next episode until it expires.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from lib.alerts.database import Database
from lib.alerts.model import Acknowledgement, AckResult, Alert, AlertState, fingerprint
from lib.config import Settings
from lib.rules import AlertRule, rules_for

log = logging.getLogger(__name__)

ALERTS_FILE = "alerts.sqlite"
RESOLVED_LIMIT = 500
# A pending alert not evaluated for this long restarts its `for` time.
STALE_PENDING_S = 300.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS episodes (
    episode INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id TEXT NOT NULL,
    name TEXT NOT NULL,
    system TEXT NOT NULL,
    severity TEXT NOT NULL,
    labels TEXT NOT NULL,
    summary TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'firing', 'resolved')),
    pending_since REAL NOT NULL,
    started_at REAL,
    resolved_at REAL,
    evaluated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS episodes_state ON episodes (state, alert_id);
CREATE INDEX IF NOT EXISTS episodes_resolved ON episodes (resolved_at);
CREATE TABLE IF NOT EXISTS acknowledgements (
    alert_id TEXT PRIMARY KEY,
    acknowledged_by TEXT NOT NULL,
    acknowledged_at REAL NOT NULL,
    comment TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS acknowledgement_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id TEXT NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    at REAL NOT NULL,
    comment TEXT,
    expires_at REAL
);
"""

# Current values of one system: signal name -> value, NaN when there is no data.
ValuesOf = Callable[[str, float], Mapping[str, float]]


class EmbeddedAlerts:
    """Reads and writes alert state and acknowledgements in `path` (`alerts.sqlite`)."""

    def __init__(self, path: str | Path) -> None:
        self.db = Database(path, _SCHEMA)
        self.label = f"embedded rules ({self.db.path})"

    # -- reading -------------------------------------------------------------------------------

    def active(self, now: float) -> list[Alert]:
        """Return the firing alerts, marked silenced where an acknowledgement is in force."""
        rows = self.db.connection().execute(
            "SELECT * FROM episodes WHERE state = 'firing' ORDER BY started_at"
        ).fetchall()
        acks = self._acknowledgements(now)
        return [_alert(row, acks.get(row["alert_id"])) for row in rows]

    def resolved(self, start: float, end: float) -> list[Alert]:
        """Return the episodes resolved between `start` and `end`, latest first."""
        rows = self.db.connection().execute(
            "SELECT * FROM episodes WHERE state = 'resolved' AND resolved_at BETWEEN ? AND ? "
            "ORDER BY resolved_at DESC LIMIT ?",
            (start, end, RESOLVED_LIMIT),
        ).fetchall()
        return [_alert(row, None) for row in rows]

    def _acknowledgements(self, now: float) -> dict[str, Acknowledgement]:
        rows = self.db.connection().execute(
            "SELECT * FROM acknowledgements WHERE expires_at > ?", (now,)
        ).fetchall()
        return {
            row["alert_id"]: Acknowledgement(
                acknowledged_by=row["acknowledged_by"],
                acknowledged_at=row["acknowledged_at"],
                comment=row["comment"],
                expires_at=row["expires_at"],
            )
            for row in rows
        }

    # -- acknowledgements ----------------------------------------------------------------------

    def acknowledge(self, alert: Alert, ack: Acknowledgement) -> AckResult:
        """Store `ack` for `alert`, replacing an earlier acknowledgement."""
        with self.db.transaction() as connection:
            connection.execute(
                "INSERT OR REPLACE INTO acknowledgements VALUES (?, ?, ?, ?, ?)",
                (alert.id, ack.acknowledged_by, ack.acknowledged_at, ack.comment, ack.expires_at),
            )
            _log_action(connection, alert.id, "acknowledge", ack.acknowledged_by,
                        ack.acknowledged_at, ack.comment, ack.expires_at)
        log.info("alert %s acknowledged by %r until %s", alert.id, ack.acknowledged_by,
                 ack.expires_at)
        return AckResult(alert.id, delivered=True)

    def extend(self, alert: Alert, actor: str, expires_at: float, now: float) -> AckResult:
        """Move the expiry of `alert`'s acknowledgement to `expires_at`."""
        with self.db.transaction() as connection:
            updated = connection.execute(
                "UPDATE acknowledgements SET expires_at = ? WHERE alert_id = ? AND expires_at > ?",
                (expires_at, alert.id, now),
            ).rowcount
            if updated:
                _log_action(connection, alert.id, "extend", actor, now, None, expires_at)
        if not updated:
            return AckResult(alert.id, delivered=False,
                             error="the alert has no acknowledgement in force to extend")
        log.info("acknowledgement of alert %s extended by %r to %s", alert.id, actor, expires_at)
        return AckResult(alert.id, delivered=True)

    def remove(self, alert: Alert, actor: str, now: float) -> AckResult:
        """Delete `alert`'s acknowledgement."""
        with self.db.transaction() as connection:
            connection.execute("DELETE FROM acknowledgements WHERE alert_id = ?", (alert.id,))
            _log_action(connection, alert.id, "remove", actor, now, None, None)
        log.info("acknowledgement of alert %s removed by %r", alert.id, actor)
        return AckResult(alert.id, delivered=True)

    def close(self) -> None:
        self.db.close()


class RuleEvaluator:
    """Evaluates `rules` for every target and records the transitions in `alerts`."""

    def __init__(
        self,
        settings: Settings,
        alerts: EmbeddedAlerts,
        values_of: ValuesOf,
    ) -> None:
        self.settings = settings
        self.alerts = alerts
        self.values_of = values_of
        # The same rules, thresholds and `for` durations as the generated Prometheus rules.
        self.rules = {target.system: rules_for(target) for target in settings.targets}

    def evaluate(self, now: float | None = None) -> None:
        """Evaluate every rule at `now` and update pending, firing and resolved alerts."""
        now = time.time() if now is None else now
        values = {t.system: self.values_of(t.system, now) for t in self.settings.targets}

        with self.alerts.db.transaction() as connection:
            open_rows = {
                row["alert_id"]: row
                for row in connection.execute(
                    "SELECT * FROM episodes WHERE state IN ('pending', 'firing')"
                )
            }
            seen: set[str] = set()
            for target in self.settings.targets:
                for rule in self.rules[target.system]:
                    value = float(values[target.system].get(rule.signal, float("nan")))
                    labels = {"alertname": rule.name, "system": target.system,
                              "severity": rule.severity}
                    alert_id = fingerprint(labels)
                    if math.isnan(value) and alert_id in open_rows:
                        # No data (the app just started, or the rate window is still filling)
                        # says nothing about the condition, so an open alert stays as it is.
                        seen.add(alert_id)
                        continue
                    if rule.breached(value):
                        seen.add(alert_id)
                        summary = rule.format_summary(value)
                        self._on_breach(connection, open_rows.get(alert_id), alert_id, rule,
                                        labels, summary, now)
            for alert_id, row in open_rows.items():
                if alert_id not in seen:
                    _on_clear(connection, row, now)

    def _on_breach(
        self,
        connection: sqlite3.Connection,
        row: sqlite3.Row | None,
        alert_id: str,
        rule: AlertRule,
        labels: dict[str, str],
        summary: str,
        now: float,
    ) -> None:
        if row is None:
            connection.execute(
                "INSERT INTO episodes (alert_id, name, system, severity, labels, summary, state, "
                "pending_since, evaluated_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
                (alert_id, rule.name, labels["system"], rule.severity,
                 json.dumps(labels, sort_keys=True), summary, now, now),
            )
            row = connection.execute(
                "SELECT * FROM episodes WHERE episode = last_insert_rowid()"
            ).fetchone()
            assert row is not None

        pending_since = row["pending_since"]
        if row["state"] == "pending" and now - row["evaluated_at"] > STALE_PENDING_S:
            # Evaluation stopped for a while (the app was down), so the condition was not seen
            # to hold in between; the `for` time starts again.
            pending_since = now
            connection.execute("UPDATE episodes SET pending_since = ? WHERE episode = ?",
                               (now, row["episode"]))
        if row["state"] == "pending" and now - pending_since >= rule.for_seconds:
            connection.execute(
                "UPDATE episodes SET state = 'firing', started_at = ?, summary = ?, "
                "evaluated_at = ? WHERE episode = ?",
                (now, summary, now, row["episode"]),
            )
            log.warning("alert firing: %s %s (%s): %s", rule.name, labels["system"],
                        rule.severity, summary)
        else:
            connection.execute(
                "UPDATE episodes SET summary = ?, evaluated_at = ? WHERE episode = ?",
                (summary, now, row["episode"]),
            )


def _on_clear(connection: sqlite3.Connection, row: sqlite3.Row, now: float) -> None:
    if row["state"] == "pending":
        connection.execute("DELETE FROM episodes WHERE episode = ?", (row["episode"],))
        return
    connection.execute(
        "UPDATE episodes SET state = 'resolved', resolved_at = ?, evaluated_at = ? "
        "WHERE episode = ?",
        (now, now, row["episode"]),
    )
    log.info("alert resolved: %s %s (%s)", row["name"], row["system"], row["severity"])


def _alert(row: sqlite3.Row, ack: Acknowledgement | None) -> Alert:
    resolved = row["state"] == "resolved"
    if resolved:
        state = AlertState.RESOLVED
    elif ack is not None:
        state = AlertState.SILENCED
    else:
        state = AlertState.FIRING
    return Alert(
        id=row["alert_id"],
        system=row["system"],
        name=row["name"],
        severity=row["severity"],
        summary=row["summary"],
        state=state,
        started_at=row["started_at"],
        labels=json.loads(row["labels"]),
        acknowledgement=ack,
        resolved_at=row["resolved_at"],
    )


def _log_action(
    connection: sqlite3.Connection,
    alert_id: str,
    action: str,
    actor: str,
    at: float,
    comment: str | None,
    expires_at: float | None,
) -> None:
    connection.execute(
        "INSERT INTO acknowledgement_log (alert_id, action, actor, at, comment, expires_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (alert_id, action, actor, at, comment, expires_at),
    )
