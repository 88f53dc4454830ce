"""Page benchmark: warm reruns through Streamlit's AppTest, and backend fetches per refresh.

The app runs in this process on the loaded history with its clock pinned to the history's end,
so every range shows data. The baseline page is the same page script with a Monitor that
returns results computed once, so its run costs only the drawing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st
from streamlit.testing.v1 import AppTest

import lib.monitor
from app_pages.state import REFRESH_KEY, TIME_RANGE_KEY
from benchmarks.timing import Timing, measure
from lib.config import Settings
from lib.monitor import Monitor, Runtime, SystemHealth
from lib.sources.base import Snapshot, Source
from lib.store import Store
from lib.timerange import TimeRange

APP_FILE = Path(__file__).resolve().parent.parent / "streamlit_app.py"
PAGES = {"overview": "app_pages/overview.py", "cross_system": "app_pages/cross_system.py"}


class CountingSource:
    """Wraps a source and counts the fetches that reach it."""

    def __init__(self, inner: Source) -> None:
        self.inner = inner
        self.label = inner.label
        self.fetches = 0

    def signals(self, systems: Sequence[str], time_range: TimeRange,
                signals: Sequence[str]) -> pd.DataFrame:
        self.fetches += 1
        return self.inner.signals(systems, time_range, signals)

    def snapshot(self, system: str, time_range: TimeRange, now: float) -> Snapshot:
        self.fetches += 1
        return self.inner.snapshot(system, time_range, now)


class PinnedMonitor(Monitor):
    """A Monitor whose clock is fixed at `now` (epoch seconds)."""

    def __init__(self, settings: Settings, source: Source, store: Store, now: float) -> None:
        super().__init__(settings, source, store, clock=lambda: now)


class InMemoryMonitor(PinnedMonitor):
    """A pinned Monitor that computes each result once and then returns it from memory."""

    def __init__(self, settings: Settings, source: Source, store: Store, now: float) -> None:
        super().__init__(settings, source, store, now)
        self._results: dict[tuple[Any, ...], Any] = {}

    def platform_metrics(self, systems: Sequence[str], time_range: TimeRange,
                         signals: Sequence[str] | None = None) -> pd.DataFrame:
        key = ("metrics", tuple(systems), time_range, tuple(signals or ()))
        if key not in self._results:
            self._results[key] = super().platform_metrics(systems, time_range, signals)
        frame: pd.DataFrame = self._results[key]
        return frame

    def overview(self, systems: Sequence[str], time_range: TimeRange,
                 now: float | None = None) -> list[SystemHealth]:
        key = ("overview", tuple(systems), time_range)
        if key not in self._results:
            self._results[key] = super().overview(systems, time_range, now)
        healths: list[SystemHealth] = self._results[key]
        return healths


def use_monitor(monitor: Monitor) -> None:
    """Make `monitor` the one every page's cached_monitor() returns."""
    lib.monitor._MONITOR = (monitor, Runtime())


def page_app(page: str, preset: str) -> AppTest:
    """Return an AppTest on `page` with the sidebar set to `preset` and refresh off."""
    app = AppTest.from_file(str(APP_FILE), default_timeout=120)
    app.session_state[TIME_RANGE_KEY] = preset
    app.session_state[REFRESH_KEY] = None
    app.switch_page(PAGES[page])
    app.run()
    if app.exception:
        raise RuntimeError(f"page {page} failed: {app.exception[0].message}")
    return app


def warm_rerun(monitor: Monitor, page: str, preset: str, repeat: int,
               keep_cache: bool = False) -> Timing:
    """Time reruns of `page` after a first run, with `monitor` behind it. Unless `keep_cache`,
    st.cache_data is cleared before each rerun, so that every rerun fetches its data."""
    use_monitor(monitor)
    app = page_app(page, preset)

    def rerun() -> None:
        if not keep_cache:
            st.cache_data.clear()
        app.run()

    return measure(rerun, repeat, warmup=1)


def fetches_for_sessions(monitor: Monitor, source: CountingSource, page: str, preset: str,
                         sessions: int) -> int:
    """Return how many fetches reach the source when `sessions` sessions render `page` once
    each, as they do once per refresh interval."""
    use_monitor(monitor)
    st.cache_data.clear()
    apps = [AppTest.from_file(str(APP_FILE), default_timeout=120) for _ in range(sessions)]
    before = source.fetches
    for app in apps:
        app.session_state[TIME_RANGE_KEY] = preset
        app.session_state[REFRESH_KEY] = None
        app.switch_page(PAGES[page])
        app.run()
    return source.fetches - before
