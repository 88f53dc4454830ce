from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np
import pytest

from lib.collector import Collector
from lib.errors import StoreError
from lib.http import make_client
from lib.sources.embedded import EmbeddedSource
from lib.store import Store
from lib.timerange import TimeRange
from tests.conftest import make_settings
from tests.support.fault_server import FaultServer

T0 = 1_699_999_200.0  # a whole hour, so ranges align with their steps


def exposition(requests: float, errors: float = 0.0, memory: float = 5e8) -> bytes:
    return (
        "# TYPE http_requests_total counter\n"
        f'http_requests_total{{code="200",method="GET",route="/"}} {requests - errors}\n'
        f'http_requests_total{{code="500",method="GET",route="/"}} {errors}\n'
        "# TYPE process_resident_memory_bytes gauge\n"
        f"process_resident_memory_bytes {memory}\n"
    ).encode()


@pytest.fixture
def rig(fault_server: FaultServer, tmp_path: Path) -> tuple[Collector, EmbeddedSource]:
    settings = make_settings({"relaycore": fault_server.url}, tmp_path)
    store = Store(tmp_path / "m.sqlite")
    return Collector(settings, store, make_client()), EmbeddedSource(store, 15.0)


def rps(source: EmbeddedSource, end: float) -> np.ndarray:
    frame = source.signals(["relaycore"], TimeRange.between(end - 600, end, 15),
                           ["requests_per_second"])
    return frame["value"].to_numpy()


def test_steady_counter_gives_its_rate(rig, fault_server: FaultServer) -> None:
    collector, source = rig
    for i in range(40):
        fault_server.behaviour.body = exposition(requests=150.0 * i)
        collector.scrape_once(now=T0 + 15 * i)
    values = rps(source, T0 + 15 * 39)
    assert np.nanmin(values) == pytest.approx(10.0)
    assert np.nanmax(values) == pytest.approx(10.0)


def test_counter_reset_no_negative_or_spike(rig, fault_server: FaultServer) -> None:
    collector, source = rig
    total = 0.0
    for i in range(40):
        # The process restarts at scrape 20: the counter starts again from a small value.
        total = 150.0 * i if i < 20 else 150.0 * (i - 20) + 150.0
        fault_server.behaviour.body = exposition(requests=total)
        collector.scrape_once(now=T0 + 15 * i)
    values = rps(source, T0 + 15 * 39)
    finite = values[~np.isnan(values)]
    assert finite.min() >= 0
    assert finite.max() == pytest.approx(10.0)


def test_failed_scrape_recorded_as_down(rig, fault_server: FaultServer) -> None:
    collector, source = rig
    fault_server.behaviour.body = exposition(requests=0)
    collector.scrape_once(now=T0)
    fault_server.behaviour.status = 503
    collector.scrape_once(now=T0 + 15)
    record = source.store.targets()[0]
    assert record.health == "down"
    assert record.last_error is not None
    assert "returned HTTP 503" in record.last_error
    assert record.last_success_at == T0
    snapshot = source.snapshot("relaycore", TimeRange.between(T0 - 60, T0 + 15, 15), T0 + 15)
    assert snapshot.values["up"] == 0
    assert snapshot.availability == pytest.approx(0.5)


def test_failing_target_backs_off_then_recovers(rig, fault_server: FaultServer) -> None:
    collector, _ = rig
    fault_server.behaviour.status = 500
    scraped_at = []
    for i in range(30):
        before = fault_server.requests
        collector.scrape_once(now=T0 + 15 * i)
        if fault_server.requests > before:
            scraped_at.append(i)
    # Four tries at the normal interval, then gaps of 2, 4 and at most 8 intervals.
    assert scraped_at == [0, 1, 2, 3, 5, 9, 17, 25]
    fault_server.behaviour.status = 200
    fault_server.behaviour.body = exposition(requests=10)
    for i in range(30, 40):
        collector.scrape_once(now=T0 + 15 * i)
    record = collector.store.targets()[0]
    assert record.health == "up"
    assert record.consecutive_failures == 0


def test_failure_logged_once_per_interval(rig, fault_server: FaultServer, caplog) -> None:
    collector, _ = rig
    fault_server.behaviour.status = 500
    with caplog.at_level(logging.WARNING, logger="lib.collector"):
        for i in range(40):
            collector.scrape_once(now=T0 + 15 * i)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    # 40 cycles of 15 s = 600 s with a 300 s log interval: at most 3 lines.
    assert 1 <= len(warnings) <= 3
    assert "relaycore" in warnings[0].getMessage()


def test_cycle_summary_counts_targets_in_backoff(rig, fault_server: FaultServer,
                                                 caplog) -> None:
    collector, _ = rig
    fault_server.behaviour.status = 500
    with caplog.at_level(logging.INFO, logger="lib.collector"):
        for i in range(12):
            collector.scrape_once(now=T0 + 15 * i)
    messages = [record.getMessage() for record in caplog.records]
    summaries = [message for message in messages if message.startswith("scrape cycle")]
    assert len(summaries) == 12
    # The target is scraped at cycles 0-3, 5 and 9 and waits out its backoff in between.
    assert all(summary.startswith("scrape cycle: 0 of 1 targets up") for summary in summaries)
    waiting = [i for i, summary in enumerate(summaries) if "(1 waiting out a backoff)" in summary]
    assert waiting == [4, 6, 7, 8, 10, 11]


def test_restart_continues_counters(fault_server: FaultServer, tmp_path: Path) -> None:
    settings = make_settings({"relaycore": fault_server.url}, tmp_path)
    first = Collector(settings, Store(tmp_path / "m.sqlite"), make_client())
    for i in range(10):
        fault_server.behaviour.body = exposition(requests=150.0 * i)
        first.scrape_once(now=T0 + 15 * i)
    second = Collector(settings, Store(tmp_path / "m.sqlite"), make_client())
    for i in range(10, 20):
        fault_server.behaviour.body = exposition(requests=150.0 * i)
        second.scrape_once(now=T0 + 15 * i)
    values = rps(EmbeddedSource(second.store, 15.0), T0 + 15 * 19)
    finite = values[~np.isnan(values)]
    assert finite.min() == pytest.approx(10.0)
    assert finite.max() == pytest.approx(10.0)


def test_error_rate_zero_without_traffic(rig, fault_server: FaultServer) -> None:
    collector, source = rig
    fault_server.behaviour.body = exposition(requests=5, errors=1)
    for i in range(10):
        collector.scrape_once(now=T0 + 15 * i)
    frame = source.signals(["relaycore"], TimeRange.between(T0, T0 + 135, 15), ["error_rate"])
    finite = frame["value"].dropna()
    assert len(finite) > 0
    assert (finite == 0).all()


def test_gauge_absent_while_down(rig, fault_server: FaultServer) -> None:
    collector, source = rig
    fault_server.behaviour.body = exposition(requests=0, memory=123.0)
    collector.scrape_once(now=T0)
    fault_server.behaviour.status = 503
    collector.scrape_once(now=T0 + 15)
    frame = source.signals(["relaycore"], TimeRange.between(T0 - 15, T0 + 15, 15),
                           ["memory_usage"])
    values = frame["value"].to_list()
    assert values[1] == 123.0
    assert math.isnan(values[2])


def test_batched_ingest_commits_in_steps(fault_server: FaultServer, tmp_path: Path) -> None:
    settings = make_settings({"relaycore": fault_server.url}, tmp_path)
    store = Store(tmp_path / "m.sqlite")
    collector = Collector(settings, store, make_client())
    reader = Store(tmp_path / "m.sqlite")
    # The first cycle also prunes, which commits, so the batch starts after it.
    collector.ingest(T0, {"relaycore": exposition(requests=0.0)})
    with store.batched(max_delay=3600.0):
        for i in range(1, 5):
            collector.ingest(T0 + 15 * i, {"relaycore": exposition(requests=150.0 * i)})
        # A second connection reads none of the step's cycles before its commit.
        assert reader.targets()[0].last_scrape_at == T0
    assert reader.targets()[0].last_scrape_at == T0 + 60
    values = rps(EmbeddedSource(reader, 15.0), T0 + 60)
    assert values[-1] == pytest.approx(10.0)


def test_batched_write_failure_rolls_back_its_step(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    settings = make_settings({"relaycore": fault_server.url}, tmp_path)
    store = Store(tmp_path / "m.sqlite")
    collector = Collector(settings, store, make_client())
    collector.ingest(T0, {"relaycore": exposition(requests=0.0)})
    with pytest.raises(StoreError), store.batched(max_delay=3600.0):
        collector.ingest(T0 + 15, {"relaycore": exposition(requests=150.0)})
        # A sample row without a series id breaks the NOT NULL constraint mid-cycle.
        store.write_cycle([(None, T0 + 30, 1.0)], [], [], [])  # type: ignore[list-item]
    reader = Store(tmp_path / "m.sqlite")
    assert reader.targets()[0].last_scrape_at == T0


def test_overdue_scrape_is_stale(fault_server: FaultServer, tmp_path: Path) -> None:
    settings = make_settings({"relaycore": fault_server.url}, tmp_path)
    store = Store(tmp_path / "m.sqlite")
    collector = Collector(settings, store, make_client())
    for i in range(8):
        fault_server.behaviour.body = exposition(requests=150.0 * i)
        collector.scrape_once(now=T0 + 15 * i)
    last = T0 + 15 * 7
    source = EmbeddedSource(store, 15.0)
    time_range = TimeRange.between(T0, last, 15)

    # Three intervals after the last scrape the data still counts as current.
    assert not source.snapshot("relaycore", time_range, last + 45).freshness.stale
    # No collector wrote for longer: the values are the last good ones, marked stale.
    late = source.snapshot("relaycore", time_range, last + 100)
    assert late.freshness.stale
    assert late.freshness.data_at == last
    assert late.freshness.reason.startswith("No scrape for 1m 40s: the collector is not running")
    assert late.values["requests_per_second"] == pytest.approx(10.0)


def test_preparing_during_start_task(rig) -> None:
    collector, _ = rig
    seen: list[bool] = []
    collector.start(before=lambda: seen.append(collector.preparing))
    try:
        deadline = time.monotonic() + 10
        while collector.cycles == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert seen == [True]
        assert collector.cycles > 0
        assert not collector.preparing
    finally:
        collector.stop()
