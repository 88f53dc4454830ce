"""The embedded store: SQLite in WAL mode, one writer (the collector) and a reader per thread.

Tables:
- `series` and `samples`: every scraped sample. Counters are stored reset-corrected: the value is
  the increase since the series was first seen, so a rate is a plain difference of two samples.
- `samples_5m`: the last sample of each series in each 5-minute bucket, for long ranges.
- `aggregates`: one row per system and scrape with the per-system sums the signal catalog needs
  (requests, errors, latency histogram, CPU, memory, cost) and running counts of scrapes and
  successful scrapes. Failed scrapes get a row with `up = 0` and NULL sums.
- `aggregates_rollup`: the last aggregates row per system in each bucket of 1, 5 and 30 minutes,
  so that a 7-day chart reads a few hundred rows, not forty thousand.
- `targets`: the collector's last view of each endpoint, for the Targets page.
- `counter_state`: the reset-correction state, so that a restart continues each counter.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

import numpy as np

from lib.errors import StoreError

P = ParamSpec("P")
R = TypeVar("R")

ROLLUP_RESOLUTIONS = (60, 300, 1800)
SAMPLE_ROLLUP = 300
BUSY_TIMEOUT_S = 10.0

AGGREGATE_COLUMNS = (
    "requests", "errors", "duration_sum", "duration_count", "cpu_seconds", "cost_usd",
    "memory_bytes", "in_flight", "start_time",
)

_AGGREGATE_SELECT = ", ".join(("ts", "up", "scrapes", "ups", *AGGREGATE_COLUMNS, "buckets"))
# Decoded final rows kept per system and resolution: 8 days of 1-minute rows, which covers the
# longest preset (7d) with a day to spare, and takes about 2.5 MiB with 15 histogram buckets.
MAX_CACHED_ROWS = 12_000

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    system TEXT NOT NULL,
    name TEXT NOT NULL,
    labels TEXT NOT NULL,
    cumulative INTEGER NOT NULL,
    UNIQUE (system, name, labels)
);
CREATE TABLE IF NOT EXISTS samples (
    series_id INTEGER NOT NULL,
    ts REAL NOT NULL,
    value REAL,
    PRIMARY KEY (series_id, ts)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS samples_5m (
    series_id INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    ts REAL NOT NULL,
    value REAL,
    PRIMARY KEY (series_id, bucket)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS aggregates (
    system TEXT NOT NULL,
    ts REAL NOT NULL,
    up INTEGER NOT NULL,
    scrapes INTEGER NOT NULL,
    ups INTEGER NOT NULL,
    {", ".join(f"{c} REAL" for c in AGGREGATE_COLUMNS)},
    buckets TEXT,
    PRIMARY KEY (system, ts)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS aggregates_rollup (
    system TEXT NOT NULL,
    resolution INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    ts REAL NOT NULL,
    up INTEGER NOT NULL,
    scrapes INTEGER NOT NULL,
    ups INTEGER NOT NULL,
    {", ".join(f"{c} REAL" for c in AGGREGATE_COLUMNS)},
    buckets TEXT,
    PRIMARY KEY (system, resolution, bucket)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS targets (
    system TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    health TEXT NOT NULL,
    last_scrape_at REAL,
    last_success_at REAL,
    scrape_duration REAL,
    samples INTEGER,
    last_error TEXT,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    next_scrape_at REAL
);
CREATE TABLE IF NOT EXISTS counter_state (
    series_id INTEGER PRIMARY KEY,
    last_raw REAL NOT NULL,
    acc REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
SCHEMA_VERSION = "1"


@dataclass(frozen=True)
class AggregateRow:
    """One system's sums at one scrape; None where the metric was absent or the scrape failed."""

    system: str
    ts: float
    up: bool
    values: dict[str, float | None]
    buckets: dict[str, float] | None


@dataclass(frozen=True)
class AggregateSeries:
    """Aggregates rows of one system as numpy arrays sorted by time (NaN where absent).
    `buckets` has one column per `bucket_bounds` entry (cumulative counts, +Inf last)."""

    ts: np.ndarray
    up: np.ndarray
    scrapes: np.ndarray
    ups: np.ndarray
    columns: dict[str, np.ndarray]
    bucket_bounds: np.ndarray
    buckets: np.ndarray
    resolution: int


@dataclass(frozen=True)
class TargetRecord:
    """The collector's last view of one endpoint (times in epoch seconds)."""

    system: str
    url: str
    health: str
    last_scrape_at: float | None
    last_success_at: float | None
    scrape_duration: float | None
    samples: int | None
    last_error: str | None
    consecutive_failures: int
    next_scrape_at: float | None


def _translated(
    action: str,
) -> Callable[[Callable[Concatenate[Store, P], R]], Callable[Concatenate[Store, P], R]]:
    """Map sqlite3 errors raised by a Store method to StoreError, so that callers (and pages,
    which catch MonitorError) get one plain message instead of a driver exception."""

    def decorate(method: Callable[Concatenate[Store, P], R]) -> Callable[Concatenate[Store, P], R]:
        @functools.wraps(method)
        def wrapper(store: Store, /, *args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return method(store, *args, **kwargs)
            except sqlite3.Error as exc:
                raise StoreError(str(store.path), action, f"{type(exc).__name__}: {exc}") from exc

        return wrapper

    return decorate


class Store:
    """SQLite-backed metric store at `path`; safe to share between threads. Every sqlite3 error
    leaves it as StoreError."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._write_lock = threading.Lock()
        # Decoded final aggregates rows by (system, resolution); see `aggregate_series`.
        self._final_rows: dict[tuple[str, int], _FinalRows] = {}
        self._rows_lock = threading.Lock()
        self._create_schema()

    @_translated("create the tables of")
    def _create_schema(self) -> None:
        with self._write_lock:
            connection = self.connection()
            connection.executescript(_SCHEMA)
            connection.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                (SCHEMA_VERSION,),
            )
            connection.commit()

    @_translated("open")
    def connection(self) -> sqlite3.Connection:
        """Return this thread's connection, opening it in WAL mode on first use."""
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("PRAGMA cache_size=-32768")
            connection.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
            self._local.connection = connection
        return connection

    # -- writing (the collector) ------------------------------------------------------------

    @_translated("read the series of")
    def series_ids(self, system: str) -> dict[tuple[str, str], int]:
        """Return {(name, labels json): id} of one system's known series."""
        rows = self.connection().execute(
            "SELECT name, labels, id FROM series WHERE system = ?", (system,)
        )
        return {(name, labels): series_id for name, labels, series_id in rows}

    @_translated("add series to")
    def create_series(
        self, system: str, keys: Iterable[tuple[str, str, bool]]
    ) -> dict[tuple[str, str], int]:
        """Insert new series (name, labels json, cumulative) and return their ids."""
        connection = self.connection()
        with self._write_lock, connection:
            connection.executemany(
                "INSERT OR IGNORE INTO series (system, name, labels, cumulative) "
                "VALUES (?, ?, ?, ?)",
                [(system, name, labels, int(cumulative)) for name, labels, cumulative in keys],
            )
        return self.series_ids(system)

    @_translated("read the counter state of")
    def counter_states(self) -> dict[int, tuple[float, float]]:
        """Return {series id: (last raw value, accumulated increase)}."""
        rows = self.connection().execute("SELECT series_id, last_raw, acc FROM counter_state")
        return {series_id: (last_raw, acc) for series_id, last_raw, acc in rows}

    @contextlib.contextmanager
    def batched(self, max_delay: float = 1.0) -> Iterator[None]:
        """Commit the cycles that `write_cycle` writes in this block together, at most
        `max_delay` seconds after the first uncommitted one, and at the end of the block.

        Loading history writes thousands of cycles in a row, and a commit per cycle costs more
        than its rows. Readers get the history in steps of `max_delay`. If a write fails, the
        uncommitted cycles of the current step are rolled back with it and the error is raised.
        The steps before it stay stored.
        """
        connection = self.connection()
        # Per thread, like the connection: the longest a written cycle may stay uncommitted
        # (seconds), and when the open transaction began (time.monotonic()).
        self._local.batch_delay = max_delay
        self._local.batch_started = time.monotonic()
        try:
            yield
        finally:
            self._local.batch_delay = None
            with self._write_lock:
                if connection.in_transaction:
                    connection.commit()

    @_translated("write a scrape cycle to")
    def write_cycle(
        self,
        samples: Sequence[tuple[int, float, float]],
        counter_updates: Sequence[tuple[int, float, float]],
        aggregates: Sequence[AggregateRow],
        targets: Sequence[TargetRecord],
    ) -> None:
        """Write one scrape cycle in one transaction: samples (series id, ts, value), counter
        state (series id, last raw, acc), aggregates rows and target records. Inside `batched`,
        the transaction may stay open for the next cycles."""
        connection = self.connection()
        with self._write_lock:
            began = not connection.in_transaction
            try:
                self._write_cycle_rows(connection, samples, counter_updates, aggregates, targets)
            except BaseException:
                connection.rollback()
                raise
            delay: float | None = getattr(self._local, "batch_delay", None)
            now = time.monotonic()
            if began:
                self._local.batch_started = now
            if delay is None or now - self._local.batch_started >= delay:
                connection.commit()

    def _write_cycle_rows(
        self,
        connection: sqlite3.Connection,
        samples: Sequence[tuple[int, float, float]],
        counter_updates: Sequence[tuple[int, float, float]],
        aggregates: Sequence[AggregateRow],
        targets: Sequence[TargetRecord],
    ) -> None:
        connection.executemany(
            "INSERT OR REPLACE INTO samples (series_id, ts, value) VALUES (?, ?, ?)", samples
        )
        connection.executemany(
            "INSERT OR REPLACE INTO samples_5m (series_id, bucket, ts, value) "
            "VALUES (?, ?, ?, ?)",
            [(sid, int(ts // SAMPLE_ROLLUP), ts, value) for sid, ts, value in samples],
        )
        connection.executemany(
            "INSERT OR REPLACE INTO counter_state (series_id, last_raw, acc) VALUES (?, ?, ?)",
            counter_updates,
        )
        for row in aggregates:
            self._insert_aggregate(connection, row)
        connection.executemany(
            "INSERT OR REPLACE INTO targets (system, url, health, last_scrape_at, "
            "last_success_at, scrape_duration, samples, last_error, consecutive_failures, "
            "next_scrape_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (t.system, t.url, t.health, t.last_scrape_at, t.last_success_at,
                 t.scrape_duration, t.samples, t.last_error, t.consecutive_failures,
                 t.next_scrape_at)
                for t in targets
            ],
        )

    def _insert_aggregate(self, connection: sqlite3.Connection, row: AggregateRow) -> None:
        previous = connection.execute(
            "SELECT scrapes, ups FROM aggregates WHERE system = ? ORDER BY ts DESC LIMIT 1",
            (row.system,),
        ).fetchone()
        scrapes, ups = previous if previous else (0, 0)
        scrapes += 1
        ups += int(row.up)
        values = [row.values.get(column) for column in AGGREGATE_COLUMNS]
        buckets = json.dumps(row.buckets, separators=(",", ":")) if row.buckets else None
        base = [row.ts, int(row.up), scrapes, ups, *values, buckets]
        placeholders = ", ".join("?" * (len(base) + 1))
        connection.execute(f"INSERT OR REPLACE INTO aggregates VALUES ({placeholders})",
                           [row.system, *base])
        rollup_placeholders = ", ".join("?" * (len(base) + 3))
        connection.executemany(
            f"INSERT OR REPLACE INTO aggregates_rollup VALUES ({rollup_placeholders})",
            [[row.system, res, int(row.ts // res), *base] for res in ROLLUP_RESOLUTIONS],
        )

    @_translated("delete old samples from")
    def prune(self, now: float, raw_retention: float, rollup_retention: float) -> None:
        """Delete samples older than the retention periods (seconds before `now`)."""
        connection = self.connection()
        raw_cutoff = now - raw_retention
        rollup_cutoff = now - rollup_retention
        series_ids = [row[0] for row in connection.execute("SELECT id FROM series")]
        with self._write_lock, connection:
            # Deleting by series walks each series' primary-key range instead of scanning the
            # whole table, so a prune costs what it removes, not what the table holds.
            connection.executemany(
                "DELETE FROM samples WHERE series_id = ? AND ts < ?",
                [(series_id, raw_cutoff) for series_id in series_ids],
            )
            connection.executemany(
                "DELETE FROM samples_5m WHERE series_id = ? AND ts < ?",
                [(series_id, rollup_cutoff) for series_id in series_ids],
            )
            connection.execute("DELETE FROM aggregates WHERE ts < ?", (raw_cutoff,))
            connection.execute("DELETE FROM aggregates_rollup WHERE ts < ?", (rollup_cutoff,))

    # -- reading (the pages) ----------------------------------------------------------------

    @_translated("read the aggregates of")
    def aggregate_series(
        self, system: str, start: float, end: float, resolution: int
    ) -> AggregateSeries:
        """Return one system's aggregates rows with start <= ts <= end at `resolution` seconds
        (0 = every scrape), plus the last row before `start` so that the first point has a
        left neighbour.

        Reads from SQLite only the rows written since the last call for the same system and
        resolution. The collector writes in time order, so every row but the newest one (the
        open roll-up bucket) is final, and final rows stay decoded in memory. A refresh then
        reads and decodes a few rows instead of the whole range.
        NOTE: a collector whose clock jumps back writes into buckets that this process already
        keeps as final, and they show as they were until this process restarts.
        """
        key = (system, resolution)
        with self._rows_lock:
            cached = self._final_rows.get(key)
        if cached is not None:
            # A prune, here or in the collector's process, may have deleted cached rows.
            cached = cached.without_pruned(self._oldest_key(system, resolution))
        if cached is not None and cached.covers(start):
            newer = self._rows_from(system, resolution, cached.last_key, inclusive=False)
            series = self._extended(key, cached, start, newer)
            if series is not None:
                return _window(series, start, end)
        first_key, from_first_row = self._first_key(system, start, resolution)
        rows = self._rows_from(system, resolution, first_key, inclusive=True)
        series = self._extended(key, _FinalRows.empty(resolution, from_first_row), start, rows)
        if series is None:
            # The histogram's buckets changed within the rows: decode them all together.
            with self._rows_lock:
                self._final_rows.pop(key, None)
            series = _to_arrays([row[:-1] for row in rows], resolution)
        return _window(series, start, end)

    def _extended(
        self,
        key: tuple[str, int],
        final: _FinalRows,
        start: float,
        rows: list[tuple[object, ...]],
    ) -> AggregateSeries | None:
        """Add the final ones of `rows` (the rows after `final`, each with its key last) to
        `final` and keep the result. Return the rows from the last one before `start` through
        the newest, or None when the histogram buckets differ between them."""
        merged = final.extend(rows, key[1])
        if merged is None:
            return None
        final, newest = merged
        with self._rows_lock:
            self._final_rows[key] = final.trimmed()
        # Only the rows from the last one before `start` on are copied with the newest row.
        first = max(int(np.searchsorted(final.series.ts, start, side="left")) - 1, 0)
        return _concat(_sliced(final.series, slice(first, None)), newest)

    def _first_key(self, system: str, start: float, resolution: int) -> tuple[float, bool]:
        """Return the key (time, or bucket for roll-ups) from which a read of the range starting
        at `start` begins: the key of the last row before `start`, else the key of `start`
        itself. The flag is true when no row precedes `start`."""
        connection = self.connection()
        if resolution:
            first = start // resolution
            # A bucket's row is its last scrape, so bucket = ts // resolution. The condition on
            # `bucket` lets SQLite walk the primary key's range instead of every row.
            before = connection.execute(
                "SELECT bucket FROM aggregates_rollup WHERE system = ? AND resolution = ? "
                "AND bucket <= ? AND ts < ? ORDER BY bucket DESC LIMIT 1",
                (system, resolution, int(first), start),
            ).fetchone()
        else:
            first = start
            before = connection.execute(
                "SELECT ts FROM aggregates WHERE system = ? AND ts < ? ORDER BY ts DESC LIMIT 1",
                (system, start),
            ).fetchone()
        return (float(before[0]), False) if before else (float(first), True)

    def _oldest_key(self, system: str, resolution: int) -> float | None:
        """Return the key of the oldest stored row, None without rows."""
        if resolution:
            row = self.connection().execute(
                "SELECT bucket FROM aggregates_rollup WHERE system = ? AND resolution = ? "
                "ORDER BY bucket LIMIT 1", (system, resolution),
            ).fetchone()
        else:
            row = self.connection().execute(
                "SELECT ts FROM aggregates WHERE system = ? ORDER BY ts LIMIT 1", (system,)
            ).fetchone()
        return float(row[0]) if row else None

    def _rows_from(
        self, system: str, resolution: int, from_key: float, inclusive: bool
    ) -> list[tuple[object, ...]]:
        """Return the rows with a key at or after (`inclusive`) or after `from_key`, in order,
        each with its key last."""
        operator = ">=" if inclusive else ">"
        if resolution:
            query = (
                f"SELECT {_AGGREGATE_SELECT}, bucket FROM aggregates_rollup "  # noqa: S608
                f"WHERE system = ? AND resolution = ? AND bucket {operator} ? ORDER BY bucket"
            )
            return self.connection().execute(query, (system, resolution, from_key)).fetchall()
        query = (
            f"SELECT {_AGGREGATE_SELECT}, ts FROM aggregates "  # noqa: S608
            f"WHERE system = ? AND ts {operator} ? ORDER BY ts"
        )
        return self.connection().execute(query, (system, from_key)).fetchall()

    @_translated("read the latest write of")
    def latest_write(self, system: str) -> tuple[float, int] | None:
        """Return the time and running scrape count of one system's newest aggregates row, or
        None without rows. Every cycle's write changes it, so a changed value means that a range
        read may return something new."""
        row = self.connection().execute(
            "SELECT ts, scrapes FROM aggregates WHERE system = ? ORDER BY ts DESC LIMIT 1",
            (system,),
        ).fetchone()
        return (float(row[0]), int(row[1])) if row else None

    @_translated("read the scrape counts of")
    def scrape_counts(
        self, system: str, start: float, end: float
    ) -> tuple[float, float] | None:
        """Return (scrapes, successful scrapes) counted from the running totals
        of the last row before `start` and the last row at or before `end`, or None without rows.

        Two indexed lookups replace reading every row of the range. The row before `start` may
        come from the 1-minute roll-up once raw rows are pruned, because a bucket's row is the
        raw row of its last scrape, running totals included.
        """
        connection = self.connection()
        last = connection.execute(
            "SELECT ts, scrapes, ups FROM aggregates WHERE system = ? AND ts <= ? "
            "ORDER BY ts DESC LIMIT 1", (system, end),
        ).fetchone()
        if last is None or last[0] < start:
            return None
        before = connection.execute(
            "SELECT scrapes, ups FROM aggregates WHERE system = ? AND ts < ? "
            "ORDER BY ts DESC LIMIT 1", (system, start),
        ).fetchone() or connection.execute(
            "SELECT scrapes, ups FROM aggregates_rollup WHERE system = ? AND resolution = ? "
            "AND bucket <= ? AND ts < ? ORDER BY bucket DESC LIMIT 1",
            (system, ROLLUP_RESOLUTIONS[0], int(start // ROLLUP_RESOLUTIONS[0]), start),
        ).fetchone()
        if before is not None:
            return last[1] - before[0], last[2] - before[1]
        # NOTE: without a row before `start`, counting starts at the oldest raw row, so a range
        # reaching past the raw retention into a store with no older roll-up undercounts.
        first = connection.execute(
            "SELECT scrapes, ups, up FROM aggregates WHERE system = ? AND ts >= ? "
            "ORDER BY ts LIMIT 1", (system, start),
        ).fetchone()
        return last[1] - first[0] + 1, last[2] - first[1] + first[2]

    @_translated("read the targets of")
    def targets(self) -> list[TargetRecord]:
        """Return the collector's last view of every endpoint."""
        rows = self.connection().execute(
            "SELECT system, url, health, last_scrape_at, last_success_at, scrape_duration, "
            "samples, last_error, consecutive_failures, next_scrape_at FROM targets"
        ).fetchall()
        return [TargetRecord(*row) for row in rows]

    @_translated("read samples from")
    def series_samples(
        self, system: str, name: str, start: float, end: float, rollup: bool
    ) -> list[tuple[str, float, float]]:
        """Return (labels json, ts, value) of every series named `name`, ordered by series and
        time; `rollup` reads the 5-minute table."""
        table = "samples_5m" if rollup else "samples"
        rows = self.connection().execute(
            f"SELECT s.labels, x.ts, x.value FROM series s JOIN {table} x ON x.series_id = s.id "  # noqa: S608
            "WHERE s.system = ? AND s.name = ? AND x.ts >= ? AND x.ts <= ? "
            "ORDER BY s.id, x.ts",
            (system, name, start, end),
        ).fetchall()
        return [(labels, ts, value) for labels, ts, value in rows]

    def close(self) -> None:
        """Close this thread's connection."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None


def _to_arrays(rows: list[tuple[object, ...]], resolution: int) -> AggregateSeries:
    count = len(rows)
    width = 4 + len(AGGREGATE_COLUMNS)
    matrix = np.array(
        [[np.nan if v is None else v for v in row[:width]] for row in rows], dtype=float
    ).reshape(count, width)
    bucket_maps = [_bucket_map(str(row[width])) if row[width] else None for row in rows]
    keys = sorted({le for b in bucket_maps if b for le in b}, key=float)
    bounds = [float(le) for le in keys]
    bucket_matrix = np.full((count, len(bounds)), np.nan)
    for i, mapping in enumerate(bucket_maps):
        if not mapping:
            continue
        if len(mapping) == len(keys):
            # The common case: every bucket present, so a lookup per key needs no float().
            bucket_matrix[i] = [mapping[le] for le in keys]
        else:
            bucket_matrix[i] = [mapping.get(le, np.nan) for le in keys]
    return AggregateSeries(
        ts=matrix[:, 0],
        up=matrix[:, 1],
        scrapes=matrix[:, 2],
        ups=matrix[:, 3],
        columns={name: matrix[:, 4 + i] for i, name in enumerate(AGGREGATE_COLUMNS)},
        bucket_bounds=np.array(bounds, dtype=float),
        buckets=bucket_matrix,
        resolution=resolution,
    )


# Decoded bucket maps by their JSON text. Closed roll-up buckets never change, so a refresh
# decodes only the rows written since the last one.
_BUCKET_MAPS: dict[str, dict[str, float]] = {}
MAX_CACHED_BUCKET_MAPS = 10_000


def _bucket_map(text: str) -> dict[str, float]:
    mapping = _BUCKET_MAPS.get(text)
    if mapping is None:
        mapping = json.loads(text)
        if len(_BUCKET_MAPS) >= MAX_CACHED_BUCKET_MAPS:
            _BUCKET_MAPS.clear()
        _BUCKET_MAPS[text] = mapping
    return mapping


@dataclass(frozen=True)
class _FinalRows:
    """Decoded aggregates rows of one system and resolution that no later write changes, with
    their keys (times, or bucket numbers for roll-ups). `from_first_row` is true when no stored
    row precedes them."""

    keys: np.ndarray
    series: AggregateSeries
    from_first_row: bool

    @classmethod
    def empty(cls, resolution: int, from_first_row: bool) -> _FinalRows:
        return cls(np.empty(0), _to_arrays([], resolution), from_first_row)

    @property
    def last_key(self) -> float:
        """Return the key of the newest row, or minus infinity without rows."""
        return float(self.keys[-1]) if len(self.keys) else -math.inf

    def covers(self, start: float) -> bool:
        """Return True when these rows include the last row before `start`."""
        return self.from_first_row or (len(self.keys) > 0 and self.series.ts[0] < start)

    def extend(
        self, rows: list[tuple[object, ...]], resolution: int
    ) -> tuple[_FinalRows, AggregateSeries] | None:
        """Return these rows plus all but the newest of `rows` (each with its key last), and
        the newest row decoded apart. Return None when the histogram buckets differ."""
        if not rows:
            return self, _to_arrays([], resolution)
        final_rows = rows[:-1]
        final = _concat(self.series, _to_arrays([row[:-1] for row in final_rows], resolution))
        if final is None:
            return None
        _read_only(final)
        keys = np.concatenate([self.keys, np.array([row[-1] for row in final_rows], dtype=float)])
        newest = _to_arrays([rows[-1][:-1]], resolution)
        return _FinalRows(keys, final, self.from_first_row), newest

    def without_pruned(self, oldest_key: float | None) -> _FinalRows | None:
        """Return these rows from `oldest_key` (the oldest stored row's) on, None when none of
        them is stored any more."""
        if not len(self.keys) or oldest_key is None or oldest_key > self.keys[-1]:
            return None
        if self.keys[0] >= oldest_key:
            return self
        keep = slice(int(np.searchsorted(self.keys, oldest_key, side="left")), None)
        # The rows now start at the oldest stored row, so none precedes them.
        return _FinalRows(self.keys[keep], _sliced(self.series, keep), True)

    def trimmed(self) -> _FinalRows:
        """Return at most the newest MAX_CACHED_ROWS rows."""
        if len(self.keys) <= MAX_CACHED_ROWS:
            return self
        keep = slice(len(self.keys) - MAX_CACHED_ROWS, None)
        return _FinalRows(self.keys[keep], _sliced(self.series, keep), False)


def _read_only(series: AggregateSeries) -> None:
    """Make the arrays of `series` read-only: cached rows are shared by every reader, so a
    caller that changed one in place would change every later read."""
    for values in (series.ts, series.up, series.scrapes, series.ups, series.buckets,
                   *series.columns.values()):
        values.flags.writeable = False


def _sliced(series: AggregateSeries, rows: slice) -> AggregateSeries:
    return AggregateSeries(
        ts=series.ts[rows],
        up=series.up[rows],
        scrapes=series.scrapes[rows],
        ups=series.ups[rows],
        columns={name: values[rows] for name, values in series.columns.items()},
        bucket_bounds=series.bucket_bounds,
        buckets=series.buckets[rows],
        resolution=series.resolution,
    )


def _window(series: AggregateSeries, start: float, end: float) -> AggregateSeries:
    """Return the rows with start <= ts <= end plus the last row before `start`."""
    first = int(np.searchsorted(series.ts, start, side="left"))
    last = int(np.searchsorted(series.ts, end, side="right"))
    return _sliced(series, slice(max(first - 1, 0), last))


def _concat(first: AggregateSeries, second: AggregateSeries) -> AggregateSeries | None:
    """Return the rows of `first` then `second`, or None when their histogram buckets differ.
    Rows without buckets (failed scrapes) take the other side's bounds."""
    if not len(second.ts):
        return first
    if not len(first.ts):
        return second
    bounds = first.bucket_bounds
    first_buckets, second_buckets = first.buckets, second.buckets
    if not np.array_equal(bounds, second.bucket_bounds):
        if not len(second.bucket_bounds):
            second_buckets = np.full((len(second.ts), len(bounds)), np.nan)
        elif not len(bounds):
            bounds = second.bucket_bounds
            first_buckets = np.full((len(first.ts), len(bounds)), np.nan)
        else:
            return None
    return AggregateSeries(
        ts=np.concatenate([first.ts, second.ts]),
        up=np.concatenate([first.up, second.up]),
        scrapes=np.concatenate([first.scrapes, second.scrapes]),
        ups=np.concatenate([first.ups, second.ups]),
        columns={
            name: np.concatenate([values, second.columns[name]])
            for name, values in first.columns.items()
        },
        bucket_bounds=bounds,
        buckets=np.concatenate([first_buckets, second_buckets]),
        resolution=first.resolution,
    )
