"""History for the simulated platform, so that a first start shows more than a few minutes.

A second simulator with the same seed runs from `now - span` to `now` without HTTP, and its
scrapes go into the store through `Collector.ingest`. The live simulated platform starts at
`now`, so the store sees the history end in a process restart: counters start again from zero,
as they would after a real deployment. The last backfilled scrape is at `now` itself, so the
first live scrape's counters, which count from `now`, continue the history without a gap.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict

from lib.collector import Collector

log = logging.getLogger(__name__)


def backfill_simulated(collector: Collector, seed: int, span: float, end: float,
                       incidents: bool) -> int:
    """Ingest `span` seconds of simulated scrapes ending at `end`; return the cycle count.

    Does nothing when the store already holds data, so a restart keeps the real history.
    """
    from exporters.simulator import PlatformSimulator, SimulationConfig, demo_incidents

    if span <= 0 or any(t.last_scrape_at is not None for t in collector.store.targets()):
        return 0
    started = time.monotonic()
    interval = collector.settings.scrape_interval
    start = end - span
    config = SimulationConfig(
        seed=seed, incidents=demo_incidents() if incidents else (), truth_retention=interval
    )
    simulator = PlatformSimulator(config, start=start)
    systems = set(collector.settings.systems)

    cycles = 0
    pending: dict[float, dict[str, bytes | None]] = defaultdict(dict)
    # One commit per second of loading rather than per cycle: the pages see the history
    # arrive in a few steps, and loading takes a fraction of the time.
    with collector.store.batched():
        for exposition in simulator.iter_expositions(start, end, interval):
            if exposition.system not in systems:
                continue
            text = exposition.text
            pending[exposition.timestamp][exposition.system] = text.encode() if text else None
            if len(pending[exposition.timestamp]) == len(systems):
                collector.ingest(exposition.timestamp, pending.pop(exposition.timestamp))
                cycles += 1
    log.info("backfilled %d scrape cycles of simulated history in %.1f s",
             cycles, time.monotonic() - started)
    return cycles
