"""SQLite files of the alerts package: one connection per thread, WAL, a busy timeout."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BUSY_TIMEOUT_S = 10.0


class Database:
    """An SQLite file at `path` with `schema` applied once; safe to share between threads."""

    def __init__(self, path: str | Path, schema: str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        # Every statement of a schema uses IF NOT EXISTS, so concurrent openers do not conflict.
        self.connection().executescript(schema)

    def connection(self) -> sqlite3.Connection:
        """Return this thread's connection, opening it in WAL mode on first use."""
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            # Autocommit mode, so that transaction() alone decides where transactions begin.
            connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            connection.row_factory = sqlite3.Row
            connection.execute("PRAGMA journal_mode=WAL")
            # FULL, not NORMAL: an acknowledgement must survive a power cut once it is accepted.
            connection.execute("PRAGMA synchronous=FULL")
            self._local.connection = connection
        return connection

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run the block in one IMMEDIATE transaction, so that two writers never interleave."""
        connection = self.connection()
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    def close(self) -> None:
        """Close this thread's connection."""
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None
