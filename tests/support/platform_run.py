"""A simulated platform scraped by the real collector on a manual clock, for end-to-end tests.

Every scrape also records the exact value of every sample the simulator's registries expose,
so that tests can compute the true per-label rate between any two scrape times.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from exporters.server import SimulatedPlatform
from exporters.simulator import Incident, SimulationConfig
from lib.collector import Collector
from lib.http import make_client
from lib.monitor import Monitor
from lib.sources.embedded import EmbeddedSource
from lib.store import Store
from tests.conftest import make_settings

SCRAPE = 15.0
SampleKey = tuple[str, frozenset[tuple[str, str]]]


@dataclass
class PlatformRun:
    """The platform, its collector and monitor, the manual clock, and the recorded truth."""

    platform: SimulatedPlatform
    collector: Collector
    monitor: Monitor
    clock: list[float]
    exposed: dict[float, dict[str, dict[SampleKey, float]]] = field(default_factory=dict)

    def scrape_until(self, end: float) -> None:
        """Advance the clock in scrape intervals to `end`, scraping and recording each time."""
        while self.clock[0] < end:
            self.clock[0] += SCRAPE
            self.scrape_now()

    def scrape_now(self) -> None:
        now = self.clock[0]
        self.platform.simulator.advance_to(now)
        self.collector.scrape_once(now=now)
        self.exposed[now] = {
            system: _exposed_samples(self.platform, system)
            for system in self.platform.simulator.systems
        }

    def value(self, t: float, system: str, name: str, **labels: str) -> float:
        """Return the exact sum, at scrape time `t`, of the samples `name` matching `labels`."""
        expected = set(labels.items())
        return sum(
            value for (sample, sample_labels), value in self.exposed[t][system].items()
            if sample == name and expected <= sample_labels
        )

    def stop(self) -> None:
        self.platform.stop()


def _exposed_samples(platform: SimulatedPlatform, system: str) -> dict[SampleKey, float]:
    registry = platform.simulator.registry(system)
    return {
        (sample.name, frozenset(sample.labels.items())): float(sample.value)
        for family in registry.collect()
        for sample in family.samples
    }


def start_platform_run(
    data_dir: Path, start: float, seed: int = 11, incidents: tuple[Incident, ...] = ()
) -> PlatformRun:
    """Start the simulated platform on free 127.0.0.1 ports and scrape it once at `start`."""
    clock = [start]
    platform = SimulatedPlatform(SimulationConfig(seed=seed, incidents=incidents), "127.0.0.1",
                                 (0, 0, 0), clock=lambda: clock[0], tick_seconds=3600)
    platform.start()
    settings = make_settings(platform.urls, data_dir)
    store = Store(data_dir / "metrics.sqlite")
    collector = Collector(settings, store, make_client(), clock=lambda: clock[0])
    monitor = Monitor(settings, EmbeddedSource(store, SCRAPE), store, clock=lambda: clock[0])
    run = PlatformRun(platform, collector, monitor, clock)
    run.scrape_now()
    return run
