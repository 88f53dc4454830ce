"""Signals read back from the embedded store equal the simulator's true values.

The simulator serves its metrics over HTTP on 127.0.0.1; the collector scrapes them every 15 s of
simulated time; the store's signals are compared with the simulator's exact totals over the same
window.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from exporters.server import SimulatedPlatform
from exporters.simulator import Incident, SimulationConfig
from lib.collector import Collector
from lib.health import Status
from lib.http import make_client
from lib.monitor import Monitor
from lib.sources.embedded import EmbeddedSource
from lib.store import Store
from lib.timerange import TimeRange
from tests.conftest import make_settings

T0 = 1_700_002_800.0  # a whole hour (13:00 UTC)
SCRAPE = 15.0
BURST_START = T0 + 1800.0
OUTAGE_START = T0 + 2700.0
END = T0 + 3600.0


@dataclass
class Run:
    platform: SimulatedPlatform
    collector: Collector
    monitor: Monitor
    clock: list[float]

    def scrape_until(self, end: float) -> None:
        while self.clock[0] < end:
            self.clock[0] += SCRAPE
            self.platform.simulator.advance_to(self.clock[0])
            self.collector.scrape_once(now=self.clock[0])


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    config = SimulationConfig(
        seed=11,
        incidents=(
            Incident("error_burst", "relaycore", BURST_START, 300.0, 0.4),
            Incident("outage", "neuroweaver", OUTAGE_START, 120.0),
        ),
    )
    clock = [T0]
    platform = SimulatedPlatform(config, "127.0.0.1", (0, 0, 0), clock=lambda: clock[0],
                                 tick_seconds=3600)
    platform.start()
    data_dir: Path = tmp_path_factory.mktemp("store")
    settings = make_settings(platform.urls, data_dir)
    store = Store(data_dir / "metrics.sqlite")
    collector = Collector(settings, store, make_client(), clock=lambda: clock[0])
    monitor = Monitor(settings, EmbeddedSource(store, SCRAPE), store)
    collector.scrape_once(now=T0)
    yield Run(platform, collector, monitor, clock)
    platform.stop()


@pytest.fixture(scope="module")
def full_run(run: Run) -> Run:
    run.scrape_until(END)
    return run


# Signal, the truth attribute, and the tolerance. Requests, errors, latency sums and cost are
# exact counter differences, so only float rounding remains. p95 interpolates within the
# histogram exactly as the truth does.
CASES = [
    ("requests_per_second", "rps", 1e-9),
    ("error_rate", "error_rate", 1e-9),
    ("average_latency_ms", "avg_latency_ms", 1e-9),
    ("p95_latency_ms", "p95_latency_ms", 1e-9),
    ("cost_per_hour", "cost_per_hour", 1e-9),
    ("cpu_usage", "cpu_cores", 1e-6),
]


def overlaps_outage(t: float, time_range: TimeRange) -> bool:
    """Return whether the window ending at t touches the outage, where the store, like
    Prometheus, only sees the scrapes before the failure and the truth counts to the window's end.
    """
    return t - time_range.window < OUTAGE_START + 120 + SCRAPE and t >= OUTAGE_START


@pytest.mark.parametrize("system", ["automatrix", "relaycore", "neuroweaver"])
@pytest.mark.parametrize(("signal", "attribute", "tolerance"), CASES)
def test_signal_equals_truth(full_run: Run, system: str, signal: str, attribute: str,
                             tolerance: float) -> None:
    time_range = TimeRange.between(T0, END, SCRAPE)
    frame = full_run.monitor.system_metrics(system, time_range, [signal])
    checked = 0
    for timestamp, value in zip(frame["timestamp"], frame["value"], strict=True):
        t = timestamp.timestamp()
        if np.isnan(value) or (system == "neuroweaver" and overlaps_outage(t, time_range)):
            continue
        truth = full_run.platform.simulator.truth(system, t - time_range.window, t)
        expected = getattr(truth, attribute)
        assert value == pytest.approx(expected, rel=tolerance, abs=tolerance), t
        checked += 1
    assert checked > 150


def test_reset_after_outage_no_spike(full_run: Run) -> None:
    time_range = TimeRange.between(T0, END, SCRAPE)
    frame = full_run.monitor.system_metrics("neuroweaver", time_range, ["requests_per_second"])
    values = frame["value"].dropna().to_numpy()
    assert values.min() >= 0
    before = frame[frame["timestamp"].map(lambda ts: ts.timestamp()) < OUTAGE_START]
    assert values.max() < 2 * before["value"].max()


def test_outage_lowers_availability(full_run: Run) -> None:
    time_range = TimeRange.between(T0, END, SCRAPE)
    health = {h.system: h for h in full_run.monitor.overview(
        ["relaycore", "neuroweaver"], time_range, now=END)}
    assert health["relaycore"].availability == 1.0
    # 120 s down of 3600 s: 8 of 241 scrapes fail.
    assert health["neuroweaver"].availability == pytest.approx(233 / 241, abs=1 / 241)


def test_uptime_is_since_restart(full_run: Run) -> None:
    time_range = TimeRange.between(T0, END, SCRAPE)
    health = full_run.monitor.overview(["neuroweaver"], time_range, now=END)[0]
    assert health.process_uptime_seconds is not None
    assert health.process_uptime_seconds < END - OUTAGE_START


def test_health_follows_incidents(tmp_path_factory: pytest.TempPathFactory) -> None:
    config = SimulationConfig(
        seed=3,
        incidents=(
            Incident("error_burst", "relaycore", T0 + 600, 300.0, 0.5),
            Incident("outage", "relaycore", T0 + 1500, 120.0),
        ),
    )
    clock = [T0]
    platform = SimulatedPlatform(config, "127.0.0.1", (0, 0, 0), clock=lambda: clock[0],
                                 tick_seconds=3600)
    platform.start()
    try:
        data_dir = tmp_path_factory.mktemp("health")
        settings = make_settings({"relaycore": platform.urls["relaycore"]}, data_dir)
        store = Store(data_dir / "metrics.sqlite")
        collector = Collector(settings, store, make_client(), clock=lambda: clock[0])
        monitor = Monitor(settings, EmbeddedSource(store, SCRAPE), store)
        run = Run(platform, collector, monitor, clock)

        def status_at(t: float) -> Status:
            run.scrape_until(t)
            return monitor.overview(["relaycore"], TimeRange.between(t - 300, t, SCRAPE),
                                    now=t)[0].status

        assert status_at(T0 + 540) is Status.HEALTHY
        assert status_at(T0 + 840) is Status.ERROR  # 50 % errors in the burst
        assert status_at(T0 + 1440) is Status.HEALTHY
        assert status_at(T0 + 1560) is Status.ERROR  # down
        # Back up, but the outage keeps availability over the last 5 minutes under 99 %.
        assert status_at(T0 + 1680) is Status.WARNING
        assert status_at(T0 + 2100) is Status.HEALTHY
    finally:
        platform.stop()
