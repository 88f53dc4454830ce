"""Fill the store with simulated history, so that charts of long ranges have data at once.

The simulated platform is stepped from `start` to `end` at the scrape interval, and each step
goes through the ordinary collector: an httpx mock transport answers every target's URL with
the simulator's exposition text at that step, or with HTTP 503 while the system is down. The
store therefore holds exactly what a collector scraping the live simulator would have written.
"""

from __future__ import annotations

import itertools
import logging
import time

import httpx

from exporters.simulator import PlatformSimulator, SimulationConfig, demo_incidents
from lib.collector import Collector
from lib.config import Settings
from lib.store import Store

log = logging.getLogger(__name__)

_EXPOSITION_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def backfill(settings: Settings, store: Store, start: float, end: float) -> int:
    """Write simulated scrapes of every simulated target from `start` to `end` into `store`.

    Times are epoch seconds, scrapes are `settings.scrape_interval` apart, and the simulator
    uses the seed and incident schedule of `settings.simulator`. Targets whose system the
    simulator does not know are recorded as down. Returns the number of scrape cycles written.

    Raises:
        ValueError: if `end` is not after `start`.
    """
    if not end > start:
        raise ValueError(f"The backfill must end after it starts, got {start!r} to {end!r}.")

    simulator = PlatformSimulator(_simulation_config(settings), start=start)
    systems_by_url = {target.url: target.system for target in settings.targets}
    current_texts: dict[str, str | None] = {}

    def serve(request: httpx.Request) -> httpx.Response:
        text = current_texts.get(systems_by_url.get(str(request.url), ""))
        if text is None:
            return httpx.Response(503, text="simulated outage")
        return httpx.Response(200, text=text, headers={"Content-Type": _EXPOSITION_CONTENT_TYPE})

    started = time.monotonic()
    cycles = 0
    client = httpx.Client(transport=httpx.MockTransport(serve))
    collector = Collector(settings, store, client)
    try:
        scrapes = simulator.iter_expositions(start, end, settings.scrape_interval)
        for timestamp, expositions in itertools.groupby(scrapes, key=lambda item: item.timestamp):
            current_texts.clear()
            current_texts.update((scrape.system, scrape.text) for scrape in expositions)
            collector.scrape_once(now=timestamp)
            cycles += 1
    finally:
        collector.stop()
        client.close()

    log.info("backfilled %d scrape cycles from %.0f to %.0f in %.1f s",
             cycles, start, end, time.monotonic() - started)
    return cycles


def _simulation_config(settings: Settings) -> SimulationConfig:
    simulator = settings.simulator
    incidents = demo_incidents() if simulator.incidents else ()
    # Nothing asks this simulator for its true totals, so it keeps only a short window of them.
    return SimulationConfig(seed=simulator.seed, incidents=incidents, truth_retention=600.0)
