from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from exporters.simulator import PlatformSimulator, SimulationConfig
from lib.backfill import backfill_simulated
from lib.collector import Collector
from lib.http import make_client
from lib.sources.embedded import EmbeddedSource
from lib.store import Store
from lib.timerange import TimeRange
from tests.conftest import make_settings

END = 1_700_006_400.0
SPAN = 3600.0
URLS = {s: f"http://127.0.0.1:9/{s}" for s in ("automatrix", "relaycore", "neuroweaver")}


@pytest.fixture
def collector(tmp_path: Path) -> Collector:
    return Collector(make_settings(URLS, tmp_path), Store(tmp_path / "m.sqlite"), make_client())


def test_backfill_matches_simulator(collector: Collector) -> None:
    cycles = backfill_simulated(collector, seed=9, span=SPAN, end=END, incidents=False)
    assert cycles == SPAN / 15 + 1

    truth_sim = PlatformSimulator(SimulationConfig(seed=9), start=END - SPAN)
    truth_sim.advance_to(END - 15)
    source = EmbeddedSource(collector.store, 15.0)
    time_range = TimeRange.between(END - SPAN, END - 15, 15)
    frame = source.signals(["relaycore"], time_range, ["requests_per_second"])
    checked = 0
    for timestamp, value in zip(frame["timestamp"], frame["value"], strict=True):
        if np.isnan(value):
            continue
        t = timestamp.timestamp()
        expected = truth_sim.truth("relaycore", t - time_range.window, t).rps
        assert value == pytest.approx(expected)
        checked += 1
    assert checked > 200


def test_backfill_skips_store_with_data(collector: Collector) -> None:
    backfill_simulated(collector, seed=9, span=600, end=END, incidents=False)
    assert backfill_simulated(collector, seed=9, span=600, end=END + 600, incidents=False) == 0


def test_backfill_records_outage_as_down(collector: Collector) -> None:
    # The demo schedule takes NeuroWeaver down for 75 s at 01:10 UTC.
    end = 1_700_010_000.0 - 1_700_010_000.0 % 86400 + 3600 + 20 * 60
    backfill_simulated(collector, seed=9, span=1800, end=end, incidents=True)
    source = EmbeddedSource(collector.store, 15.0)
    availability = source.availability("neuroweaver", TimeRange.between(end - 1800, end, 15))
    assert availability is not None
    assert 0.9 < availability < 1.0


def test_live_start_continues_history(collector: Collector) -> None:
    backfill_simulated(collector, seed=9, span=SPAN, end=END, incidents=False)
    # The live platform starts at the backfill's end, as a fresh process with counters at zero.
    live = PlatformSimulator(SimulationConfig(seed=9), start=END)
    for step in range(1, 5):
        ts = END + 15 * step
        live.advance_to(ts)
        collector.ingest(ts, {s: live.exposition(s).encode() for s in URLS})

    source = EmbeddedSource(collector.store, 15.0)
    time_range = TimeRange.between(END - 600, END + 60, 15)
    frame = source.signals(["relaycore"], time_range, ["requests_per_second"])
    after = frame[frame["timestamp"].map(lambda t: t.timestamp()) > END]
    before = frame[frame["timestamp"].map(lambda t: t.timestamp()) <= END]["value"].dropna()
    # No dip at the restart: the first live windows hold the live process's whole traffic.
    assert after["value"].notna().all()
    assert after["value"].min() > 0.8 * before.mean()
