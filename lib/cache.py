"""The last good result of every query, kept on disk, and the per-system guard that uses it.

`ResultCache` stores each successful result in diskcache under the data directory with the time
its data was current, so it survives an app restart and is shared by every process on that
directory. Keys name the source, the kind of query, the system, the signals and the range preset
and step, but not the exact end time: the refresh a minute later finds the same entry.

`LastGood` runs one fetch per system concurrently with a time limit for each. The fetches may
take their parts of one `SharedCall` that reads every system at once. A system whose fetch
fails with a MonitorError, or does not return in time, gets its cached result marked stale with
the plain reason, or no result and a "no data received yet" reason; the other systems stay fresh.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeoutError
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import diskcache

from lib.errors import FetchError, MonitorError
from lib.sources.base import Freshness, FreshnessState

log = logging.getLogger(__name__)

T = TypeVar("T")
Clock = Callable[[], float]

CACHE_DIR = "cache"
# Enough for thousands of chart frames; diskcache evicts the least recently stored beyond it.
CACHE_SIZE_LIMIT = 256 * 1024 * 1024
# A failing system is logged at WARNING once, then at most once per this many seconds.
FAILURE_LOG_INTERVAL_S = 300.0
MAX_WORKERS = 16


@dataclass(frozen=True)
class CachedResult:
    """A stored result and when its data was last known good (epoch seconds)."""

    value: Any
    data_at: float


class ResultCache:
    """The last good result per query in a diskcache directory.

    A cache that cannot be read or written (full disk, unreadable file, a value that does not
    unpickle) is logged at WARNING and behaves as empty: the cache must never break a page.
    """

    def __init__(self, directory: str | Path, size_limit: int = CACHE_SIZE_LIMIT) -> None:
        self.directory = Path(directory)
        self._cache = diskcache.Cache(str(self.directory), size_limit=size_limit)

    def get(self, key: str) -> CachedResult | None:
        """Return the result stored under `key`, or None."""
        try:
            entry = self._cache.get(key)
        except Exception as exc:  # noqa: BLE001 - diskcache raises sqlite3, OS and pickle errors
            log.warning("could not read %r from the result cache %s: %s", key, self.directory, exc)
            return None
        return entry if isinstance(entry, CachedResult) else None

    def put(self, key: str, value: object, data_at: float) -> None:
        """Store `value` under `key` as good at `data_at`, unless a newer result is stored."""
        try:
            previous = self._cache.get(key)
            if isinstance(previous, CachedResult) and previous.data_at > data_at:
                return
            self._cache.set(key, CachedResult(value, data_at))
        except Exception as exc:  # noqa: BLE001 - see get()
            log.warning("could not write %r to the result cache %s: %s", key, self.directory, exc)

    def close(self) -> None:
        self._cache.close()


def cache_key(*parts: object) -> str:
    """Return a cache key from its parts (source label, query kind, system, signals, range)."""
    return "|".join(str(part) for part in parts)


@dataclass(frozen=True)
class Job(Generic[T]):
    """One system's fetch: its cache key, the name messages use, and the call that returns the
    value with the source's own freshness (None when the source does not judge it)."""

    system: str
    display_name: str
    key: str
    fetch: Callable[[], tuple[T, Freshness | None]]


@dataclass(frozen=True)
class Guarded(Generic[T]):
    """A system's value (None when there is none) and how fresh it is."""

    value: T | None
    freshness: Freshness


def _run_in_order(futures: list[tuple[Job[T], Future[tuple[T, Freshness | None]]]]) -> None:
    for job, future in futures:
        if not future.set_running_or_notify_cancel():
            continue
        try:
            future.set_result(job.fetch())
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
            future.set_exception(exc)


class SharedCall(Generic[T]):
    """Runs `call` once, on the first call from any thread, and gives every caller its result or
    raises its exception. Callers that arrive while it runs wait for it. The systems' fetches of
    one refresh share a call this way when the source reads every system in one call."""

    def __init__(self, call: Callable[[], T]) -> None:
        self._call = call
        self._lock = threading.Lock()
        self._outcome: tuple[T] | Exception | None = None

    def __call__(self) -> T:
        with self._lock:
            if self._outcome is None:
                try:
                    self._outcome = (self._call(),)
                except Exception as exc:  # noqa: BLE001 - every caller gets it, as a direct call would
                    self._outcome = exc
            outcome = self._outcome
        if isinstance(outcome, Exception):
            raise outcome
        return outcome[0]


class LastGood:
    """Runs one fetch per system concurrently, each within `time_limit` seconds, falling back to
    the last good result on failure. `cache` None keeps no results, so failures give no data."""

    def __init__(
        self, cache: ResultCache | None, time_limit: float, clock: Clock = time.time
    ) -> None:
        self.cache = cache
        self.time_limit = time_limit
        self.clock = clock
        self._pool = ThreadPoolExecutor(max_workers=MAX_WORKERS, thread_name_prefix="fetch")
        self._failures_logged_at: dict[str, float] = {}
        self._log_lock = threading.Lock()

    def run(self, jobs: list[Job[T]], concurrent: bool = True) -> dict[str, Guarded[T]]:
        """Run `jobs` and return each system's value and freshness, waiting at most
        `time_limit` seconds in total. A fetch still running then finishes in the background and
        stores its result for the next call.

        `concurrent` runs the jobs at once, for sources behind a network. Without it they run
        one after another in one worker thread, which is faster for a local source whose
        fetches are CPU work: threads would only take the interpreter lock from each other.
        """
        deadline = time.monotonic() + self.time_limit
        if concurrent:
            futures = [(job, self._pool.submit(job.fetch)) for job in jobs]
        else:
            futures = [(job, Future()) for job in jobs]
            self._pool.submit(_run_in_order, futures)
        results: dict[str, Guarded[T]] = {}
        for job, future in futures:
            remaining = max(0.0, deadline - time.monotonic())
            results[job.system] = self._settle(job, future, remaining)
        return results

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _settle(
        self, job: Job[T], future: Future[tuple[T, Freshness | None]], timeout: float
    ) -> Guarded[T]:
        try:
            value, own = future.result(timeout=timeout)
        except FutureTimeoutError:
            future.add_done_callback(lambda done: self._store_late(job, done))
            reason = (
                f"{job.display_name}: did not return its data within {self.time_limit:g} s. "
                "What to check: the load of the data source, or raise the timeout."
            )
            return self._fallback(job, reason, None)
        except MonitorError as exc:
            return self._fallback(job, _describe(exc, job.display_name), exc)
        except Exception as exc:  # noqa: BLE001 - a bug in one system's fetch must not break the page
            log.exception("fetching %s failed unexpectedly", job.system)
            reason = (
                f"{job.display_name}: could not be read ({type(exc).__name__}). "
                "What to check: the app's log."
            )
            return self._fallback(job, reason, exc)
        return self._accept(job, value, own)

    def _accept(self, job: Job[T], value: T, own: Freshness | None) -> Guarded[T]:
        now = self.clock()
        freshness = own or Freshness.fresh(job.system, now)
        self._on_success(job)
        if self.cache is not None and freshness.state is not FreshnessState.NO_DATA:
            self.cache.put(job.key, value, freshness.data_at or now)
        return Guarded(value, freshness)

    def _store_late(self, job: Job[T], future: Future[tuple[T, Freshness | None]]) -> None:
        if future.cancelled() or future.exception() is not None or self.cache is None:
            return
        value, own = future.result()
        if own is None or own.state is not FreshnessState.NO_DATA:
            self.cache.put(job.key, value, own.data_at if own and own.data_at else self.clock())

    def _fallback(self, job: Job[T], reason: str, error: BaseException | None) -> Guarded[T]:
        now = self.clock()
        cached = self.cache.get(job.key) if self.cache is not None else None
        self._log_failure(job, error or reason, now, cached is not None)
        if cached is None:
            return Guarded(None, Freshness.no_data(job.system, now, reason))
        return Guarded(cached.value, Freshness.stale_since(job.system, now, cached.data_at, reason))

    def _log_failure(self, job: Job[T], error: object, now: float, has_last_good: bool) -> None:
        with self._log_lock:
            logged = self._failures_logged_at.get(job.system)
            if logged is not None and now - logged < FAILURE_LOG_INTERVAL_S:
                return
            self._failures_logged_at[job.system] = now
        fallback = "showing the last good data" if has_last_good else "no earlier data to show"
        log.warning("fetching %s failed, %s: %s", job.system, fallback, error)
        log.debug("the failed fetch of %s was %s", job.system, job.key)

    def _on_success(self, job: Job[T]) -> None:
        with self._log_lock:
            recovered = self._failures_logged_at.pop(job.system, None) is not None
        if recovered:
            log.info("fetching %s works again", job.system)


def _describe(error: MonitorError, display_name: str) -> str:
    if isinstance(error, FetchError):
        return error.describe(display_name)
    return f"{display_name}: {error}"

