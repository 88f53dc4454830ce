"""Wrappers around a real source that stage faults the embedded store cannot produce on request
(a query that fails or hangs for one system), and count the calls that reach the source."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence

import pandas as pd

from lib.errors import MonitorError
from lib.sources.base import Snapshot, Source
from lib.timerange import TimeRange


class StagedQueryError(MonitorError):
    """A query failure staged by a test."""


class FaultySource:
    """Delegates to `inner`; systems in `failing` raise StagedQueryError, systems in `delays`
    sleep that many seconds first. `calls` counts the calls per (method, system)."""

    def __init__(self, inner: Source) -> None:
        self.inner = inner
        self.label = inner.label
        self.failing: set[str] = set()
        self.delays: dict[str, float] = {}
        self.calls: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def signals(
        self, systems: Sequence[str], time_range: TimeRange, signals: Sequence[str]
    ) -> pd.DataFrame:
        for system in systems:
            self._enter("signals", system)
        return self.inner.signals(systems, time_range, signals)

    def snapshot(self, system: str, time_range: TimeRange, now: float) -> Snapshot:
        self._enter("snapshot", system)
        return self.inner.snapshot(system, time_range, now)

    def _enter(self, method: str, system: str) -> None:
        with self._lock:
            self.calls[(method, system)] += 1
        if system in self.delays:
            time.sleep(self.delays[system])
        if system in self.failing:
            raise StagedQueryError(f"the query for {system} failed (staged by the test)")
