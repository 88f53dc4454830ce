"""The fault matrix: one system behind a fault-injecting HTTP server, the other two healthy.

RelayCore's target points at a FaultServer on 127.0.0.1 that, between faults, serves the body of
the real simulated RelayCore exporter; AutoMatrix and NeuroWeaver are scraped directly from their
simulated exporters. For each fault the test checks five things. The healthy systems stay fresh
with the library's values. RelayCore shows its last good data marked stale with the right reason,
or stays fresh when the body is accepted with bad lines dropped. The Overview page renders within
the timeout plus PAGE_MARGIN_S without an exception. The store keeps every earlier row while the
collector keeps scraping. RelayCore is fresh again after the first good scrape.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from streamlit.testing.v1 import AppTest

import lib.monitor
from app_pages.state import clear_data_caches
from lib.collector import Collector
from lib.config import Settings
from lib.health import Status
from lib.http import make_client
from lib.monitor import Runtime, SystemHealth
from lib.sources.base import FreshnessState
from lib.sources.embedded import CURRENT_WINDOW_SCRAPES, EmbeddedSource
from lib.store import Store
from tests.conftest import make_settings
from tests.support.fault_server import Behaviour, FaultServer
from tests.support.rig import Rig, start_rig

ROOT = Path(__file__).resolve().parent.parent
OVERVIEW_PAGE = str(ROOT / "app_pages" / "overview.py")
FAULTY = "relaycore"
HEALTHY = ("automatrix", "neuroweaver")
SYSTEMS = ("automatrix", "relaycore", "neuroweaver")
SCRAPE_TIMEOUT = 1.0
# Allowance over the per-system timeout for one page render: the script run, three store reads
# and the element tree. Renders took 0.5 to 1.1 s on a 2-core test machine.
PAGE_MARGIN_S = 2.0
FAULT_CYCLES = 2
VALUE_FIELDS = ("requests_per_second", "error_rate", "average_latency_ms", "p95_latency_ms",
                "cpu_usage", "memory_usage", "cost_per_hour")
SNAPSHOT_SIGNALS = {"requests_per_second": "rps", "error_rate": "error_rate",
                    "average_latency_ms": "avg_latency_ms", "cost_per_hour": "cost_per_hour"}

HTML_LOGIN = (b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>"
              b"<form method='post'><input name='user'><input type='password' name='pw'>"
              b"</form></body></html>\n")
EXTRA_LINES = (b"# TYPE pm_fault_gauge gauge\n"
               b"pm_fault_gauge NaN\n"
               b'pm_fault_gauge{kind="inf"} +Inf\n'
               b"pm_fault_untyped 7\n"
               b"# TYPE pm_fault_events counter\n"
               b"pm_fault_events_total 3\n"
               b'pm_fault_events_bucket{le="1"} 1\n')


def invalid_utf8(body: bytes) -> bytes:
    return body + b'pm_fault_label{name="caf\xe9\xff"} 1\n'


def duplicated(body: bytes) -> bytes:
    first = next(line for line in body.splitlines() if line.startswith(b"http_requests_total{"))
    series, _ = first.rsplit(b" ", 1)
    return body + series + b" 123456789\n"


def halved_counters(body: bytes) -> bytes:
    lines = []
    for line in body.splitlines():
        if line.startswith(b"http_requests_total{"):
            series, value = line.rsplit(b" ", 1)
            line = series + b" " + str(float(value) / 2).encode()
        lines.append(line)
    return b"\n".join(lines) + b"\n"


@dataclass(frozen=True)
class Fault:
    """A fault: how the server behaves given the good body, and the words the stale reason must
    contain (None when the body is accepted and the system stays fresh)."""

    name: str
    behaviour: Callable[[bytes], Behaviour] | None
    reason: str | None


def good(body: bytes) -> Behaviour:
    return Behaviour(body=body)


FAULTS = [
    Fault("refused", None, "refused the connection"),
    Fault("never_answers", lambda body: Behaviour(hang=True), "timed out"),
    Fault("byte_per_second", lambda body: Behaviour(body=body, trickle=1.0), "timed out"),
    Fault("http_500", lambda body: Behaviour(status=500, body=b"oops"), "returned HTTP 500"),
    Fault("http_503", lambda body: Behaviour(status=503, body=b"busy"), "returned HTTP 503"),
    Fault("http_401", lambda body: Behaviour(status=401, body=b"no"), "needs credentials"),
    Fault("http_404", lambda body: Behaviour(status=404, body=b"gone"), "returned HTTP 404"),
    Fault("html_login_page",
          lambda body: Behaviour(body=HTML_LOGIN, content_type="text/html; charset=utf-8"),
          "sent an HTML page, not Prometheus metrics"),
    Fault("truncated_body", lambda body: Behaviour(body=body, truncate_to=len(body) // 2),
          "closed the connection"),
    Fault("random_bytes", lambda body: Behaviour(body=random.Random(7).randbytes(4096)),
          "not Prometheus metrics"),
    Fault("invalid_utf8", lambda body: Behaviour(body=invalid_utf8(body)),
          "not valid UTF-8"),
    Fault("body_of_50_mb", lambda body: Behaviour(body=b"x" * (50 * 1024 * 1024)),
          "over the 16777216 byte limit"),
    Fault("nan_inf_undeclared_type", lambda body: Behaviour(body=body + EXTRA_LINES), None),
    Fault("same_series_twice", lambda body: Behaviour(body=duplicated(body)), None),
    Fault("counter_goes_backwards", lambda body: Behaviour(body=halved_counters(body)), None),
]


class Matrix:
    """The rig with RelayCore behind the fault server, and the fault currently staged."""

    def __init__(self, data_dir: Path) -> None:
        self.server = FaultServer()
        self.rig: Rig = start_rig(data_dir, {FAULTY: self.server.url},
                                  scrape_timeout=SCRAPE_TIMEOUT)
        self.real_url = self.rig.platform.urls[FAULTY]
        self.behaviour: Callable[[bytes], Behaviour] = good
        self.client = httpx.Client()
        self.rig.before_scrape = self._serve_current_body

    def _serve_current_body(self) -> None:
        body = self.client.get(self.real_url).content
        self.server.behaviour = self.behaviour(body)

    def stage(self, fault: Fault) -> None:
        if fault.behaviour is None:
            self.server.refuse_connections()
        else:
            self.behaviour = fault.behaviour

    def end(self, fault: Fault) -> None:
        if fault.behaviour is None:
            self.server.accept_connections()
        self.behaviour = good

    def overview(self) -> dict[str, SystemHealth]:
        monitor = self.rig.monitor
        time_range = monitor.time_range("1h", now=self.rig.now())
        return {h.system: h for h in monitor.overview(SYSTEMS, time_range, now=self.rig.now())}

    def stop(self) -> None:
        self.client.close()
        self.rig.stop()
        self.server.stop()


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Matrix]:
    matrix = Matrix(tmp_path_factory.mktemp("faults"))
    matrix.rig.scrape(10)
    mp = pytest.MonkeyPatch()
    mp.setattr(lib.monitor, "_MONITOR", (matrix.rig.monitor, Runtime()))
    render_overview()  # the first AppTest run imports Streamlit's script machinery
    yield matrix
    mp.undo()
    clear_data_caches()
    matrix.stop()


def render_overview() -> tuple[AppTest, float]:
    clear_data_caches()
    started = time.monotonic()
    at = AppTest.from_file(OVERVIEW_PAGE, default_timeout=30).run()
    return at, time.monotonic() - started


def plain(markdown: str) -> str:
    return markdown.replace("\\", "")


def row_counts(store: Store, before: float) -> dict[str, tuple[int, int]]:
    """Return (aggregates rows, samples) per system with ts <= before."""
    connection = sqlite3.connect(store.path)
    try:
        counts = {}
        for system in SYSTEMS:
            aggregates = connection.execute(
                "SELECT COUNT(*) FROM aggregates WHERE system = ? AND ts <= ?", (system, before)
            ).fetchone()[0]
            samples = connection.execute(
                "SELECT COUNT(*) FROM samples x JOIN series s ON s.id = x.series_id "
                "WHERE s.system = ? AND x.ts <= ?", (system, before)
            ).fetchone()[0]
            counts[system] = (aggregates, samples)
        return counts
    finally:
        connection.close()


def library_values(rig: Rig, system: str) -> dict[str, float | None]:
    """Return the current values as the embedded source computes them, without the facade."""
    source = EmbeddedSource(rig.store, rig.settings.scrape_interval)
    time_range = rig.monitor.time_range("1h", now=rig.now())
    values = source.snapshot(system, time_range, rig.now()).values
    return {name: None if values[name] != values[name] else values[name]
            for name in VALUE_FIELDS}


def check_healthy(matrix: Matrix, healths: dict[str, SystemHealth]) -> None:
    rig = matrix.rig
    window = CURRENT_WINDOW_SCRAPES * rig.settings.scrape_interval
    for system in HEALTHY:
        health = healths[system]
        assert health.freshness.state is FreshnessState.FRESH, system
        assert health.status is Status.HEALTHY, health.reasons
        expected = library_values(rig, system)
        for name in VALUE_FIELDS:
            assert getattr(health, name) == expected[name], (system, name)
        truth = rig.platform.simulator.truth(system, rig.now() - window, rig.now())
        for name, attribute in SNAPSHOT_SIGNALS.items():
            assert getattr(health, name) == pytest.approx(getattr(truth, attribute), rel=1e-9)


@pytest.mark.parametrize("fault", FAULTS, ids=[fault.name for fault in FAULTS])
def test_fault_on_one_system(matrix: Matrix, fault: Fault) -> None:
    rig = matrix.rig
    rig.scrape()
    last_good_at = rig.now()
    kept = row_counts(rig.store, last_good_at)
    cycles = rig.collector.cycles

    matrix.stage(fault)
    try:
        rig.scrape(FAULT_CYCLES)
        assert rig.collector.cycles == cycles + FAULT_CYCLES
        healths = matrix.overview()
        check_healthy(matrix, healths)

        faulty = healths[FAULTY]
        if fault.reason is None:
            assert faulty.freshness.state is FreshnessState.FRESH
            assert faulty.error_rate is None or faulty.error_rate >= 0
        else:
            assert faulty.freshness.state is FreshnessState.STALE
            assert fault.reason in faulty.stale_reason
            assert faulty.data_age_seconds == FAULT_CYCLES * rig.settings.scrape_interval
            assert faulty.status is Status.ERROR
            # The values at the last good scrape, whose rate window contains no failed scrape.
            assert faulty.requests_per_second is not None
        assert faulty.memory_usage is not None
        expected = library_values(rig, FAULTY)
        for name in VALUE_FIELDS:
            assert getattr(faulty, name) == expected[name], name

        at, elapsed = render_overview()
        assert not at.exception
        assert elapsed < SCRAPE_TIMEOUT + PAGE_MARGIN_S
        warnings = [plain(w.value) for w in at.warning]
        if fault.reason is None:
            assert warnings == []
        else:
            assert len(warnings) == 1
            assert "Stale: showing the last good data of RelayCore" in warnings[0]
            assert fault.reason in warnings[0]

        assert row_counts(rig.store, last_good_at) == kept
        grown = row_counts(rig.store, rig.now())
        for system in SYSTEMS:
            assert grown[system][0] == kept[system][0] + FAULT_CYCLES
    finally:
        matrix.end(fault)

    rig.scrape()
    recovered = matrix.overview()[FAULTY]
    assert recovered.freshness.state is FreshnessState.FRESH
    assert recovered.memory_usage is not None


def test_accepted_body_drops_bad_lines(matrix: Matrix) -> None:
    rig = matrix.rig
    matrix.behaviour = lambda body: Behaviour(body=duplicated(body) + EXTRA_LINES)
    try:
        rig.scrape()
    finally:
        matrix.behaviour = good
    connection = sqlite3.connect(rig.store.path)
    try:
        names = {name for (name,) in connection.execute(
            "SELECT DISTINCT s.name FROM series s JOIN samples x ON x.series_id = s.id "
            "WHERE s.system = ? AND x.ts = ?", (FAULTY, rig.now()))}
        duplicate_values = [value for (value,) in connection.execute(
            "SELECT x.value FROM series s JOIN samples x ON x.series_id = s.id "
            "WHERE s.system = ? AND x.ts = ? AND x.value = 123456789", (FAULTY, rig.now()))]
    finally:
        connection.close()
    assert "pm_fault_gauge" not in names  # NaN and +Inf dropped
    assert "pm_fault_untyped" in names  # untyped samples kept
    assert "pm_fault_events_bucket" in names  # a sample of an undeclared type kept
    assert duplicate_values == []  # the second copy of a series dropped


def test_no_data_until_first_good_scrape(fault_server: FaultServer, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    fault_server.behaviour = Behaviour(status=503, body=b"starting")
    rig = start_rig(tmp_path, {FAULTY: fault_server.url}, scrape_timeout=SCRAPE_TIMEOUT)
    monkeypatch.setattr(lib.monitor, "_MONITOR", (rig.monitor, Runtime()))
    try:
        rig.scrape(3)
        time_range = rig.monitor.time_range("1h", now=rig.now())
        health = {h.system: h for h in rig.monitor.overview(SYSTEMS, time_range)}[FAULTY]
        assert health.freshness.state is FreshnessState.NO_DATA
        assert "returned HTTP 503" in health.stale_reason
        assert health.requests_per_second is None

        at, _ = render_overview()
        assert not at.exception
        warnings = [plain(w.value) for w in at.warning]
        assert len(warnings) == 1
        assert warnings[0].startswith("No data received yet from RelayCore.")
        assert "returned HTTP 503" in warnings[0]

        body = httpx.get(rig.platform.urls[FAULTY]).content
        fault_server.behaviour = Behaviour(body=body)
        rig.scrape()
        health = {h.system: h for h in rig.monitor.overview(SYSTEMS, time_range)}[FAULTY]
        assert health.freshness.state is FreshnessState.FRESH
    finally:
        clear_data_caches()
        rig.stop()


def test_collector_thread_survives_hang(fault_server: FaultServer, tmp_path: Path) -> None:
    from exporters.server import SimulatedPlatform
    from exporters.simulator import SimulationConfig

    fault_server.behaviour = Behaviour(hang=True)
    with SimulatedPlatform(SimulationConfig(seed=2, incidents=()), "127.0.0.1", (0, 0, 0)) as p:
        settings: Settings = make_settings({**p.urls, FAULTY: fault_server.url}, tmp_path,
                                           scrape_interval=1.0, scrape_timeout=0.5)
        store = Store(tmp_path / "metrics.sqlite")
        collector = Collector(settings, store, make_client())
        collector.start()
        time.sleep(3.5)
        assert collector.running
        collector.stop()
    records = {record.system: record for record in store.targets()}
    assert records[FAULTY].health == "down"
    assert "timed out" in (records[FAULTY].last_error or "")
    for system in HEALTHY:
        assert records[system].health == "up"
    assert collector.cycles >= 3
