"""A simulated platform, the collector and a Monitor on one data directory, driven by a fake
clock so that minutes of scrapes take a fraction of a second."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from exporters.server import SimulatedPlatform
from exporters.simulator import SimulationConfig
from lib.cache import CACHE_DIR, ResultCache
from lib.collector import Collector
from lib.config import Settings
from lib.http import make_client
from lib.monitor import STORE_FILE, Monitor
from lib.sources.embedded import EmbeddedSource
from lib.store import Store
from tests.conftest import make_settings
from tests.support.sources import FaultySource

T0 = 1_700_002_800.0  # a whole hour


@dataclass
class Rig:
    """The platform, collector, store and monitor of one test, and the clock they share."""

    platform: SimulatedPlatform
    settings: Settings
    store: Store
    collector: Collector
    source: FaultySource
    cache: ResultCache
    monitor: Monitor
    clock: list[float] = field(default_factory=lambda: [T0])
    before_scrape: Callable[[], None] | None = None

    def now(self) -> float:
        return self.clock[0]

    def scrape(self, cycles: int = 1) -> None:
        """Advance the clock by one scrape interval and scrape, `cycles` times."""
        for _ in range(cycles):
            self.clock[0] += self.settings.scrape_interval
            self.platform.simulator.advance_to(self.clock[0])
            if self.before_scrape is not None:
                self.before_scrape()
            self.collector.scrape_once(now=self.clock[0])

    def reopen_monitor(self) -> Monitor:
        """Return a new Monitor on the same data directory, as after an app restart."""
        self.cache.close()
        self.cache = ResultCache(self.settings.storage.data_dir / CACHE_DIR)
        self.monitor = Monitor(self.settings, self.source, self.store, clock=self.now,
                               cache=self.cache)
        return self.monitor

    def stop(self) -> None:
        self.monitor.last_good.close()
        self.cache.close()
        self.platform.stop()


def start_rig(
    data_dir: Path,
    urls: dict[str, str] | None = None,
    scrape_interval: float = 15.0,
    scrape_timeout: float = 1.0,
) -> Rig:
    """Start the simulated platform and build the rig; `urls` replaces some systems' URLs."""
    clock = [T0]
    platform = SimulatedPlatform(SimulationConfig(seed=5, incidents=()), "127.0.0.1", (0, 0, 0),
                                 clock=lambda: clock[0], tick_seconds=3600)
    platform.start()
    settings = make_settings({**platform.urls, **(urls or {})}, data_dir,
                             scrape_interval=scrape_interval, scrape_timeout=scrape_timeout)
    store = Store(data_dir / STORE_FILE)
    collector = Collector(settings, store, make_client(), clock=lambda: clock[0])
    source = FaultySource(EmbeddedSource(store, scrape_interval))
    cache = ResultCache(data_dir / CACHE_DIR)
    monitor = Monitor(settings, source, store, clock=lambda: clock[0], cache=cache)
    return Rig(platform, settings, store, collector, source, cache, monitor, clock)
