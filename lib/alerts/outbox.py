"""The durable outbox: acknowledgement changes waiting to reach Alertmanager.

Every acknowledge, extend or remove request is written here first, in its own committed
transaction, and only then sent. A request that fails stays `pending` and is retried with
backoff, by the page's process right away and by each process's `Deliverer` thread later, also
after an app restart. Entries of one alert are delivered in the order they were made.

Several processes may share the file. Before sending, a process takes a lease on the entry, so
two processes never send the same entry at the same time. An attempt is counted before the
request goes out, so after a crash or a timeout the next attempt treats the outcome as uncertain
and looks for the silence before creating another one.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from lib.alerts.database import Database

OUTBOX_FILE = "alert-outbox.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('acknowledge', 'extend', 'remove')),
    labels TEXT NOT NULL,
    created_by TEXT NOT NULL,
    comment TEXT NOT NULL,
    requested_at REAL NOT NULL,
    expires_at REAL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    lease_until REAL NOT NULL DEFAULT 0,
    last_error TEXT,
    silence_id TEXT,
    delivered_at REAL
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (state, alert_id, id);
"""


class Action(StrEnum):
    ACKNOWLEDGE = "acknowledge"
    EXTEND = "extend"
    REMOVE = "remove"


@dataclass(frozen=True)
class OutboxEntry:
    """One requested change of an alert's acknowledgement. Times are epoch seconds."""

    id: int
    alert_id: str
    action: Action
    labels: Mapping[str, str]
    created_by: str
    comment: str
    requested_at: float
    expires_at: float | None
    state: str
    attempts: int
    next_attempt_at: float
    last_error: str | None
    silence_id: str | None


class Outbox:
    """The outbox table in `path` (`alert-outbox.sqlite`)."""

    def __init__(self, path: str | Path) -> None:
        self.db = Database(path, _SCHEMA)

    def add(
        self,
        alert_id: str,
        action: Action,
        labels: Mapping[str, str],
        created_by: str,
        comment: str,
        requested_at: float,
        expires_at: float | None,
    ) -> int:
        """Store a request durably and return its id."""
        with self.db.transaction() as connection:
            cursor = connection.execute(
                "INSERT INTO outbox (alert_id, action, labels, created_by, comment, requested_at, "
                "expires_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (alert_id, action.value, json.dumps(dict(labels), sort_keys=True), created_by,
                 comment, requested_at, expires_at, requested_at),
            )
            assert cursor.lastrowid is not None
            return cursor.lastrowid

    def pending(self, alert_id: str | None = None) -> list[OutboxEntry]:
        """Return the pending entries, of one alert or of all, oldest first."""
        query = "SELECT * FROM outbox WHERE state = 'pending'"
        params: tuple[str, ...] = ()
        if alert_id is not None:
            query += " AND alert_id = ?"
            params = (alert_id,)
        rows = self.db.connection().execute(query + " ORDER BY id", params).fetchall()
        return [_entry(row) for row in rows]

    def entries(self) -> list[OutboxEntry]:
        """Return every entry, oldest first."""
        rows = self.db.connection().execute("SELECT * FROM outbox ORDER BY id").fetchall()
        return [_entry(row) for row in rows]

    def get(self, entry_id: int) -> OutboxEntry:
        row = self.db.connection().execute(
            "SELECT * FROM outbox WHERE id = ?", (entry_id,)
        ).fetchone()
        if row is None:
            raise KeyError(f"outbox entry {entry_id} not found")
        return _entry(row)

    def claim(self, entry_id: int, now: float, lease_seconds: float) -> OutboxEntry | None:
        """Take the lease on a pending entry and count an attempt.

        Return the entry as it was before this attempt, or None when it is delivered, failed or
        leased by another process.
        """
        with self.db.transaction() as connection:
            row = connection.execute(
                "SELECT * FROM outbox WHERE id = ? AND state = 'pending' AND lease_until <= ?",
                (entry_id, now),
            ).fetchone()
            if row is None:
                return None
            connection.execute(
                "UPDATE outbox SET lease_until = ?, attempts = attempts + 1 WHERE id = ?",
                (now + lease_seconds, entry_id),
            )
            return _entry(row)

    def mark_delivered(self, entry_id: int, silence_id: str | None, now: float) -> None:
        with self.db.transaction() as connection:
            connection.execute(
                "UPDATE outbox SET state = 'delivered', silence_id = ?, delivered_at = ?, "
                "lease_until = 0, last_error = NULL WHERE id = ?",
                (silence_id, now, entry_id),
            )

    def mark_retry(self, entry_id: int, error: str, next_attempt_at: float) -> None:
        with self.db.transaction() as connection:
            connection.execute(
                "UPDATE outbox SET last_error = ?, next_attempt_at = ?, lease_until = 0 "
                "WHERE id = ?",
                (error, next_attempt_at, entry_id),
            )

    def mark_failed(self, entry_id: int, error: str) -> None:
        with self.db.transaction() as connection:
            connection.execute(
                "UPDATE outbox SET state = 'failed', last_error = ?, lease_until = 0 WHERE id = ?",
                (error, entry_id),
            )

    def prune(self, before: float) -> int:
        """Delete delivered and failed entries requested before `before`; return how many."""
        with self.db.transaction() as connection:
            return connection.execute(
                "DELETE FROM outbox WHERE state != 'pending' AND requested_at < ?", (before,)
            ).rowcount

    def close(self) -> None:
        self.db.close()


def _entry(row: sqlite3.Row) -> OutboxEntry:
    return OutboxEntry(
        id=row["id"],
        alert_id=row["alert_id"],
        action=Action(row["action"]),
        labels=json.loads(row["labels"]),
        created_by=row["created_by"],
        comment=row["comment"],
        requested_at=row["requested_at"],
        expires_at=row["expires_at"],
        state=row["state"],
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        last_error=row["last_error"],
        silence_id=row["silence_id"],
    )
