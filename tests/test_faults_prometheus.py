"""The fault matrix on the Prometheus backend: Prometheus stopped, slow, or returning errors.

A real Prometheus scrapes the simulated platform every second. The app's Prometheus source reads
it either directly (to stop and restart the real process) or through `StagingProxy`, a proxy on
127.0.0.1 that forwards to Prometheus, or delays or fails the queries whose PromQL contains a
given text. For each fault the test checks four things. The systems the fault does not touch stay
fresh. The others show their last good data marked stale with the reason. The Overview renders
within the time limit plus PAGE_MARGIN_S without an exception. Every system is fresh again on the
first query after the fault ends.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest

prometheus_source = pytest.importorskip("lib.sources.prometheus")

from streamlit.testing.v1 import AppTest  # noqa: E402

import lib.monitor  # noqa: E402
from app_pages.state import clear_data_caches  # noqa: E402
from exporters.server import SimulatedPlatform  # noqa: E402
from exporters.simulator import SimulationConfig  # noqa: E402
from lib.cache import CACHE_DIR, ResultCache  # noqa: E402
from lib.config import Settings, SourceSettings  # noqa: E402
from lib.http import make_client  # noqa: E402
from lib.monitor import Monitor, Runtime, SystemHealth  # noqa: E402
from lib.sources.base import FreshnessState  # noqa: E402
from tests.conftest import make_settings  # noqa: E402
from tests.support import servers  # noqa: E402
from tests.support.staging_proxy import Stage, StagingProxy  # noqa: E402

pytestmark = pytest.mark.prometheus

ROOT = Path(__file__).resolve().parent.parent
OVERVIEW_PAGE = str(ROOT / "app_pages" / "overview.py")
SYSTEMS = ("automatrix", "relaycore", "neuroweaver")
QUERY_TIMEOUT = 2.0
# Allowance over the time limit for one page render; renders of the embedded matrix took 0.5 to
# 1.1 s on a 2-core test machine.
PAGE_MARGIN_S = 2.0
# Queries are evaluated this far in the past, so that the scrapes they read are all ingested and
# two reads at the same time give the same values.
SETTLE_S = 5.0


@dataclass
class Stack:
    platform: SimulatedPlatform
    prometheus: servers.ServerProcess
    proxy: StagingProxy
    settings: Settings
    clock: list[float]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    platform = SimulatedPlatform(SimulationConfig(seed=4, incidents=()), "127.0.0.1", (0, 0, 0))
    platform.start()
    jobs = "".join(
        f"  - job_name: {system}\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{server.port}']\n"
        for system, server in platform.servers.items()
    )
    config = f"global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n{jobs}"
    prometheus = servers.prometheus(tmp_path_factory.mktemp("prometheus"), config).start()
    proxy = StagingProxy(prometheus.url)
    data_dir = tmp_path_factory.mktemp("app")
    settings = make_settings(platform.urls, data_dir, scrape_interval=1.0, scrape_timeout=1.0)
    try:
        wait_for_history(prometheus.url)
        yield Stack(platform, prometheus, proxy, settings, [time.time() - SETTLE_S])
    finally:
        proxy.stop()
        prometheus.stop()
        platform.stop()


def wait_for_history(url: str) -> None:
    """Wait until Prometheus has enough scrapes of every system for a rate window."""
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        response = httpx.post(url + "/api/v1/query",
                              data={"query": "min(count_over_time(up[1m]))"})
        result = response.json()["data"]["result"]
        if result and float(result[0]["value"][1]) >= 8 + SETTLE_S:
            return
        time.sleep(0.5)
    raise AssertionError("Prometheus did not scrape the simulated platform within 40 s")


def monitor_on(stack: Stack, url: str, cache_dir: Path) -> Monitor:
    source_settings = SourceSettings("prometheus", url, timeout=QUERY_TIMEOUT)
    settings = replace(stack.settings, source=source_settings)
    source = prometheus_source.PrometheusSource(
        source_settings, settings.targets, make_client(), settings.scrape_interval
    )
    return Monitor(settings, source, clock=lambda: stack.clock[0],
                   cache=ResultCache(cache_dir / CACHE_DIR), time_limit=QUERY_TIMEOUT)


def overview(stack: Stack, monitor: Monitor) -> dict[str, SystemHealth]:
    now = stack.clock[0]
    time_range = monitor.time_range("1h", now=now)
    return {h.system: h for h in monitor.overview(SYSTEMS, time_range, now=now)}


def advance(stack: Stack) -> None:
    stack.clock[0] = time.time() - SETTLE_S


def render_overview(monitor: Monitor, monkeypatch: pytest.MonkeyPatch) -> tuple[AppTest, float]:
    monkeypatch.setattr(lib.monitor, "_MONITOR", (monitor, Runtime()))
    clear_data_caches()
    started = time.monotonic()
    at = AppTest.from_file(OVERVIEW_PAGE, default_timeout=30).run()
    elapsed = time.monotonic() - started
    clear_data_caches()
    return at, elapsed


def plain(markdown: str) -> str:
    return markdown.replace("\\", "")


def check_fresh(health: SystemHealth) -> None:
    assert health.freshness.state is FreshnessState.FRESH, health.stale_reason
    assert health.requests_per_second is not None
    assert health.memory_usage is not None


FAULTS = {
    # Either the source's own query timeout or the facade's time limit may fire first.
    "slow": (Stage(delay=4.0), ("timed out waiting for a response after 2.0 s",
                                "did not return its data within 2 s")),
    "http_503": (Stage(status=503), ("the server rejected it (unavailable)",)),
    "http_500": (Stage(status=500, error_type="internal"), ("the server rejected it (internal)",)),
    "one_system_422": (Stage(match='job="relaycore"', status=422, error_type="execution"),
                       ("the server rejected it (execution)",)),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_prometheus_fault(stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                          fault: str) -> None:
    stage, reasons = FAULTS[fault]
    monitor = monitor_on(stack, stack.proxy.url, tmp_path)
    advance(stack)
    before = overview(stack, monitor)
    for system in SYSTEMS:
        check_fresh(before[system])
    fetched_at = stack.clock[0]

    stack.proxy.stage = stage
    try:
        advance(stack)
        started = time.monotonic()
        during = overview(stack, monitor)
        assert time.monotonic() - started < QUERY_TIMEOUT + PAGE_MARGIN_S
        touched = [s for s in SYSTEMS if stage.match is None or stage.match == f'job="{s}"']
        for system in SYSTEMS:
            health = during[system]
            if system not in touched:
                check_fresh(health)
                continue
            assert health.freshness.state is FreshnessState.STALE
            assert any(reason in health.stale_reason for reason in reasons)
            assert health.data_age_seconds == pytest.approx(stack.clock[0] - fetched_at)
            assert health.requests_per_second == before[system].requests_per_second
            assert health.memory_usage == before[system].memory_usage

        at, elapsed = render_overview(monitor, monkeypatch)
        assert not at.exception
        assert elapsed < QUERY_TIMEOUT + PAGE_MARGIN_S
        warnings = [plain(w.value) for w in at.warning if "Stale" in plain(w.value)]
        assert len(warnings) == len(touched)
        assert all(any(reason in warning for reason in reasons) for warning in warnings)
    finally:
        stack.proxy.stage = Stage()

    time.sleep(stage.delay)  # let queries still held by the proxy finish
    advance(stack)
    after = overview(stack, monitor)
    for system in SYSTEMS:
        check_fresh(after[system])


def test_prometheus_stopped(stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                            caplog: pytest.LogCaptureFixture) -> None:
    monitor = monitor_on(stack, stack.prometheus.url, tmp_path)
    advance(stack)
    before = overview(stack, monitor)
    fetched_at = stack.clock[0]

    stack.prometheus.stop()
    try:
        advance(stack)
        with caplog.at_level(logging.WARNING):
            during = overview(stack, monitor)
            during_at = stack.clock[0]
            # A second refresh fails too, and logs nothing new.
            advance(stack)
            overview(stack, monitor)
        # One warning per system from the last-good cache, none per failed query.
        warnings = [record for record in caplog.records if record.levelno >= logging.WARNING]
        assert [record.name for record in warnings] == ["lib.cache"] * len(SYSTEMS)
        for system in SYSTEMS:
            health = during[system]
            assert health.freshness.state is FreshnessState.STALE
            assert "refused the connection" in health.stale_reason
            assert health.data_age_seconds == pytest.approx(during_at - fetched_at)
            assert health.requests_per_second == before[system].requests_per_second

        at, elapsed = render_overview(monitor, monkeypatch)
        assert not at.exception
        assert elapsed < QUERY_TIMEOUT + PAGE_MARGIN_S
        warnings = [plain(w.value) for w in at.warning if "Stale" in plain(w.value)]
        assert len(warnings) == len(SYSTEMS)
    finally:
        stack.prometheus.start()

    # The restarted Prometheus replays its write-ahead log, then scrapes again.
    wait_for_history(stack.prometheus.url)
    advance(stack)
    after = overview(stack, monitor)
    for system in SYSTEMS:
        check_fresh(after[system])


def test_stale_survives_restart(stack: Stack, tmp_path: Path) -> None:
    monitor = monitor_on(stack, stack.proxy.url, tmp_path)
    advance(stack)
    before = overview(stack, monitor)
    monitor.last_good.close()

    restarted = monitor_on(stack, stack.proxy.url, tmp_path)
    stack.proxy.stage = Stage(status=503)
    try:
        advance(stack)
        after = overview(stack, restarted)
    finally:
        stack.proxy.stage = Stage()
    for system in SYSTEMS:
        assert after[system].freshness.state is FreshnessState.STALE
        assert after[system].memory_usage == before[system].memory_usage
