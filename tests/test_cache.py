"""The last-good cache and the per-system guard: stale data with its age and reason, no data
without a cache, restarts, slow systems, and store errors as MonitorError."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lib.cache import ResultCache
from lib.errors import MonitorError, StoreError, UnknownSystemError
from lib.health import Status
from lib.monitor import Monitor
from lib.sources.base import FreshnessState
from lib.sources.embedded import EmbeddedSource
from lib.store import Store
from tests.support.rig import Rig, start_rig

SYSTEMS = ["automatrix", "relaycore", "neuroweaver"]
VALUES = ("requests_per_second", "error_rate", "average_latency_ms", "memory_usage", "cpu_usage")


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    rig = start_rig(tmp_path)
    rig.scrape(12)
    yield rig
    rig.stop()


def overview(rig: Rig, monitor: Monitor | None = None) -> dict:
    monitor = monitor or rig.monitor
    time_range = monitor.time_range("1h", now=rig.now())
    return {h.system: h for h in monitor.overview(SYSTEMS, time_range, now=rig.now())}


def test_healthy_systems_fresh(rig: Rig) -> None:
    healths = overview(rig)
    for system in SYSTEMS:
        assert healths[system].freshness.state is FreshnessState.FRESH
        assert not healths[system].stale
        assert healths[system].requests_per_second is not None


def test_failed_query_shows_last_good(rig: Rig) -> None:
    before = overview(rig)
    fetched_at = rig.now()
    rig.scrape(2)
    rig.source.failing.add("relaycore")
    after = overview(rig)

    stale = after["relaycore"]
    assert stale.stale
    assert stale.freshness.state is FreshnessState.STALE
    assert "the query for relaycore failed" in stale.stale_reason
    assert stale.data_age_seconds == pytest.approx(rig.now() - fetched_at)
    for name in VALUES:
        assert getattr(stale, name) == getattr(before["relaycore"], name)
    assert stale.status is not Status.HEALTHY
    for system in ("automatrix", "neuroweaver"):
        assert not after[system].stale


def test_no_cache_gives_no_data(rig: Rig) -> None:
    rig.source.failing.add("relaycore")
    health = overview(rig)["relaycore"]
    assert health.freshness.state is FreshnessState.NO_DATA
    assert health.requests_per_second is None
    assert health.data_age_seconds is None
    assert "the query for relaycore failed" in health.stale_reason
    assert health.status is Status.WARNING


def test_cache_survives_restart(rig: Rig) -> None:
    before = overview(rig)
    monitor = rig.reopen_monitor()
    rig.source.failing.add("neuroweaver")
    after = overview(rig, monitor)
    assert after["neuroweaver"].freshness.state is FreshnessState.STALE
    assert after["neuroweaver"].memory_usage == before["neuroweaver"].memory_usage


def test_slow_system_not_waited_for(rig: Rig) -> None:
    overview(rig)
    rig.scrape()
    rig.source.delays["relaycore"] = 3.0
    started = time.monotonic()
    healths = overview(rig)
    elapsed = time.monotonic() - started
    # The time limit is the scrape timeout (1 s); 0.5 s covers thread start and the store reads.
    assert elapsed < rig.settings.scrape_timeout + 0.5
    assert healths["relaycore"].freshness.state is FreshnessState.STALE
    assert "did not return its data within 1 s" in healths["relaycore"].stale_reason
    assert not healths["automatrix"].stale
    assert not healths["neuroweaver"].stale


def test_late_result_fills_cache(tmp_path: Path) -> None:
    rig = start_rig(tmp_path)
    try:
        rig.scrape(6)
        # Two calls of 0.7 s each: over the 1 s limit, finished 1.4 s after the start.
        rig.source.delays["relaycore"] = 0.7
        first = overview(rig)["relaycore"]
        assert first.freshness.state is FreshnessState.NO_DATA
        time.sleep(2.0)  # the slow fetch finishes in the background and stores its result
        rig.source.failing.add("relaycore")
        rig.source.delays.clear()
        second = overview(rig)["relaycore"]
        assert second.freshness.state is FreshnessState.STALE
        assert second.requests_per_second is not None
    finally:
        rig.stop()


def test_platform_metrics_freshness_per_system(rig: Rig) -> None:
    time_range = rig.monitor.time_range("1h", now=rig.now())
    rig.monitor.platform_metrics(SYSTEMS, time_range, ["requests_per_second"])
    rig.source.failing.add("automatrix")
    frame = rig.monitor.platform_metrics(SYSTEMS, time_range, ["requests_per_second"])
    freshness = frame.attrs["freshness"]
    assert freshness["automatrix"].state is FreshnessState.STALE
    assert freshness["relaycore"].state is FreshnessState.FRESH
    assert set(frame["system"]) == set(SYSTEMS)


def test_failure_logged_once(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    rig.source.failing.add("relaycore")
    with caplog.at_level(logging.WARNING, logger="lib.cache"):
        for _ in range(3):
            overview(rig)
            rig.clock[0] += 15
    warnings = [r for r in caplog.records if r.name == "lib.cache"]
    assert len(warnings) == 1
    assert "relaycore" in warnings[0].getMessage()
    assert "the query for relaycore failed" in warnings[0].getMessage()
    assert "no earlier data to show" in warnings[0].getMessage()


def test_failure_after_success_names_last_good(rig: Rig,
                                               caplog: pytest.LogCaptureFixture) -> None:
    overview(rig)
    rig.clock[0] += 15
    rig.source.failing.add("relaycore")
    with caplog.at_level(logging.WARNING, logger="lib.cache"):
        overview(rig)
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "lib.cache"]
    assert warning.startswith("fetching relaycore failed, showing the last good data: ")


def test_unknown_system_is_monitor_error(rig: Rig) -> None:
    time_range = rig.monitor.time_range("1h", now=rig.now())
    with pytest.raises(MonitorError) as info:
        rig.monitor.overview(["nosuch"], time_range)
    assert isinstance(info.value, UnknownSystemError)
    assert "unknown system 'nosuch'" in str(info.value)
    assert "relaycore" in str(info.value)


def test_corrupt_store_is_monitor_error(tmp_path: Path) -> None:
    path = tmp_path / "metrics.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError) as info:
        Store(path)
    assert str(path) in str(info.value)
    assert "What to check" in str(info.value)


def test_store_read_error_is_stale(rig: Rig) -> None:
    overview(rig)
    rig.store.connection().execute("DROP TABLE targets")
    healths = overview(rig)
    for system in SYSTEMS:
        assert healths[system].freshness.state is FreshnessState.STALE
        assert "could not read the targets of the metric store" in healths[system].stale_reason


def test_unreadable_cache_entry_is_a_miss(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path / "cache")
    cache._cache.set("key", "not a cached result")
    assert cache.get("key") is None
    cache.put("key", {"a": 1}, 10.0)
    cache.put("key", {"a": 0}, 5.0)  # older data never replaces newer
    entry = cache.get("key")
    assert entry is not None
    assert entry.value == {"a": 1}
    cache.close()


def test_local_source_fetches_in_order(rig: Rig) -> None:
    concurrent = overview(rig)
    rig.source.concurrent_fetches = False  # as EmbeddedSource declares
    monitor = rig.reopen_monitor()
    threads: list[str] = []
    original = rig.source.snapshot

    def recording(*args: object, **kwargs: object) -> object:
        threads.append(threading.current_thread().name)
        return original(*args, **kwargs)

    rig.source.snapshot = recording  # type: ignore[method-assign]
    in_order = overview(rig, monitor)
    assert len(threads) == 3
    assert len(set(threads)) == 1
    for system in SYSTEMS:
        assert not in_order[system].stale
        assert in_order[system].requests_per_second == concurrent[system].requests_per_second


def test_in_order_fetches_keep_the_time_limit(rig: Rig) -> None:
    overview(rig)
    rig.source.concurrent_fetches = False
    monitor = rig.reopen_monitor()
    rig.scrape()
    rig.source.delays["automatrix"] = 3.0
    started = time.monotonic()
    healths = overview(rig, monitor)
    elapsed = time.monotonic() - started
    assert elapsed < rig.settings.scrape_timeout + 0.5
    # The systems in line behind the slow one run out of time with it, and show last good data.
    for system in SYSTEMS:
        assert healths[system].freshness.state is FreshnessState.STALE
        assert "did not return its data within 1 s" in healths[system].stale_reason


def test_embedded_source_fetches_in_order() -> None:
    assert EmbeddedSource.concurrent_fetches is False
