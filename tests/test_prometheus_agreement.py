"""The Prometheus backend and the embedded store show the same numbers for the same scrapes.

One simulated hour of 15 s scrapes (with a RelayCore error burst and a NeuroWeaver outage and
restart) goes three ways: into the embedded store through `Collector.ingest`, into Prometheus
through `promtool tsdb create-blocks-from openmetrics`, and into VictoriaMetrics through its
import API. Every signal is then read through each backend over the same range and compared at
every point.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from exporters.simulator import Incident, PlatformSimulator, SimulationConfig
from lib.collector import Collector
from lib.config import SourceSettings, settings_from_mapping
from lib.http import make_client
from lib.rules import rules_for
from lib.sources.embedded import EmbeddedSource
from lib.sources.prometheus import PrometheusSource
from lib.store import Store
from lib.timerange import TimeRange
from tests.conftest import make_settings
from tests.support import servers

pytestmark = pytest.mark.prometheus

T0 = 1_700_002_800.0  # a whole hour (13:00 UTC)
SCRAPE = 15.0
END = T0 + 3600.0
BURST_START = T0 + 1200.0
OUTAGE_START = T0 + 2400.0
OUTAGE_LENGTH = 120.0
SYSTEMS = ("automatrix", "relaycore", "neuroweaver")
JOBS = {system: system for system in SYSTEMS}


@dataclass
class Backends:
    embedded: EmbeddedSource
    prometheus: PrometheusSource
    victoria_metrics: PrometheusSource


def simulated_scrapes(offset: float = 0.0) -> list[tuple[str, float, str | None]]:
    """Return every system's scrapes every 15 s from T0 + offset to END + offset."""
    config = SimulationConfig(
        seed=5,
        incidents=(
            Incident("error_burst", "relaycore", BURST_START, 300.0, 0.3),
            Incident("outage", "neuroweaver", OUTAGE_START, OUTAGE_LENGTH),
        ),
    )
    simulator = PlatformSimulator(config, start=T0)
    return [
        (e.system, e.timestamp, e.text)
        for e in simulator.iter_expositions(T0 + offset, END + offset, SCRAPE)
    ]


def load_backends(
    root: Path, offset: float, with_victoria_metrics: bool
) -> Iterator[Backends]:
    """Load the same scrapes into the embedded store, Prometheus and optionally
    VictoriaMetrics, and yield a source for each while the servers run."""
    scrapes = simulated_scrapes(offset)
    settings = make_settings({s: f"http://{s}.test/metrics" for s in SYSTEMS}, root / "store")
    (root / "store").mkdir()

    store = Store(root / "store" / "metrics.sqlite")
    collector = Collector(settings, store, make_client())
    for system, ts, text in scrapes:
        collector.ingest(ts, {system: None if text is None else text.encode()})

    prometheus = servers.prometheus(root / "prometheus")
    servers.backfill(root / "prometheus", servers.history_text(scrapes, JOBS, openmetrics=True))
    victoria = servers.victoria_metrics(root / "victoria-metrics")
    prometheus.start()
    try:
        if with_victoria_metrics:
            victoria.start()
            servers.import_into_victoria_metrics(
                victoria, servers.history_text(scrapes, JOBS, openmetrics=False)
            )
        client = make_client()
        yield Backends(
            EmbeddedSource(store, SCRAPE),
            PrometheusSource(SourceSettings("prometheus", prometheus.url), settings.targets,
                             client, SCRAPE),
            PrometheusSource(SourceSettings("prometheus", victoria.url), settings.targets,
                             client, SCRAPE),
        )
    finally:
        victoria.stop()
        prometheus.stop()


@pytest.fixture(scope="module")
def backends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backends]:
    yield from load_backends(tmp_path_factory.mktemp("aligned"), 0.0, True)


@pytest.fixture(scope="module")
def offset_backends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backends]:
    yield from load_backends(tmp_path_factory.mktemp("offset"), 7.0, True)


def near_outage(t: float, time_range: TimeRange) -> bool:
    """Return whether the outage affects point t: the backfilled history has no staleness markers,
    so Prometheus keeps a down system's last gauge values for its 5-minute lookback, where the
    embedded store shows no value."""
    return OUTAGE_START - SCRAPE <= t <= OUTAGE_START + OUTAGE_LENGTH + time_range.window + 300


# Signal and relative tolerance. Scrape times and range points fall on multiples of 15 s, so
# Prometheus 2.42's closed range [t - w, t] starts on a sample: its rate() extrapolates by zero
# and equals the embedded store's exact difference over w. VictoriaMetrics takes the last sample
# before the window, which is the same sample. What remains is float rounding of sums taken in
# a different order, so 1e-6 holds for every rate, ratio and quantile; gauges match exactly.
CASES = [
    ("requests_per_second", 1e-6),
    ("error_rate", 1e-6),
    ("average_latency_ms", 1e-6),
    ("p95_latency_ms", 1e-6),
    ("cost_per_hour", 1e-6),
    ("cpu_usage", 1e-6),
    ("memory_usage", 0.0),
    ("active_connections", 0.0),
]


def compare(expected: pd.DataFrame, actual: pd.DataFrame, system: str, tolerance: float,
            time_range: TimeRange) -> int:
    merged = expected.merge(actual, on=["timestamp", "system", "signal"], suffixes=("_e", "_a"))
    assert len(merged) == len(expected)
    checked = 0
    for timestamp, want, got in zip(merged["timestamp"], merged["value_e"], merged["value_a"],
                                    strict=True):
        t = timestamp.timestamp()
        if t < T0 + time_range.window or (system == "neuroweaver" and near_outage(t, time_range)):
            continue
        if math.isnan(want):
            assert math.isnan(got), (t, want, got)
            continue
        assert got == pytest.approx(want, rel=tolerance, abs=1e-9), (t, want, got)
        checked += 1
    return checked


@pytest.mark.parametrize("backend", ["prometheus", "victoria_metrics"])
@pytest.mark.parametrize("system", SYSTEMS)
@pytest.mark.parametrize(("signal", "tolerance"), CASES)
def test_signal_agrees_with_embedded(backends: Backends, backend: str, system: str, signal: str,
                                     tolerance: float) -> None:
    time_range = TimeRange.between(T0, END, SCRAPE)
    expected = backends.embedded.signals([system], time_range, [signal])
    actual = getattr(backends, backend).signals([system], time_range, [signal])
    assert compare(expected, actual, system, tolerance, time_range) > 150


def test_error_burst_visible_in_both(backends: Backends) -> None:
    time_range = TimeRange.between(T0, END, SCRAPE)
    frame = backends.prometheus.signals(["relaycore"], time_range, ["error_rate"])
    assert frame["value"].max() > 0.25
    assert np.nanmedian(frame["value"]) < 0.1


@pytest.mark.parametrize("backend", ["prometheus", "victoria_metrics"])
@pytest.mark.parametrize("system", SYSTEMS)
def test_availability_agrees_with_embedded(backends: Backends, backend: str,
                                           system: str) -> None:
    # One scrape of the 241 may fall on either side of the range's start: Prometheus 2.42 and
    # the embedded store include it, VictoriaMetrics's window excludes it.
    time_range = TimeRange.between(T0, END, SCRAPE)
    expected = backends.embedded.availability(system, time_range)
    actual = getattr(backends, backend).snapshot(system, time_range, END).availability
    assert expected is not None
    assert actual == pytest.approx(expected, abs=1.0 / 240)
    if system == "neuroweaver":
        assert actual < 0.98


@pytest.mark.parametrize("backend", ["prometheus", "victoria_metrics"])
def test_snapshot_agrees_with_embedded(backends: Backends, backend: str) -> None:
    time_range = TimeRange.between(T0, END, SCRAPE)
    expected = backends.embedded.snapshot("relaycore", time_range, END)
    actual = getattr(backends, backend).snapshot("relaycore", time_range, END)
    for signal in ("requests_per_second", "error_rate", "p95_latency_ms", "cost_per_hour",
                   "memory_usage"):
        assert actual.values[signal] == pytest.approx(expected.values[signal], rel=1e-6), signal
    assert actual.values["up"] == 1.0
    assert actual.process_start_time == expected.process_start_time
    assert actual.last_scrape_at == END
    assert actual.last_success_at == END
    assert actual.last_error is None


def test_up_follows_outage(backends: Backends) -> None:
    time_range = TimeRange.between(T0, END, SCRAPE)
    frame = backends.prometheus.signals(["neuroweaver"], time_range, ["up"])
    during = frame[frame["timestamp"].map(lambda ts: ts.timestamp()).between(
        OUTAGE_START + 2 * SCRAPE, OUTAGE_START + OUTAGE_LENGTH - 2 * SCRAPE)]
    assert (during["value"] == 0).all()
    assert frame["value"].iloc[-1] == 1.0


def test_snapshot_while_down(backends: Backends) -> None:
    now = OUTAGE_START + 60
    time_range = TimeRange.between(now - 600, now, SCRAPE)
    snapshot = backends.prometheus.snapshot("neuroweaver", time_range, now)
    assert snapshot.values["up"] == 0
    assert snapshot.last_error is not None
    assert snapshot.last_success_at is not None
    assert snapshot.last_success_at < OUTAGE_START


def test_rules_fire_on_burst(backends: Backends) -> None:
    settings = settings_from_mapping({}, {})
    rule = next(r for r in rules_for(settings.target("relaycore"))
                if r.name == "HighErrorRate" and r.severity == "critical")
    query = rule.promql(settings.target("relaycore"))
    source = backends.prometheus
    assert source._query("relaycore", query, BURST_START + 200).points
    assert not source._query("relaycore", query, BURST_START - 300).points


# Scrapes 7 s after each range point, as real scrapes fall: Prometheus's rate() then uses the 4
# samples inside (t - 60 s, t], which span 45 s, and extrapolates them to 60 s, while the
# embedded store (like VictoriaMetrics) divides the increase since the last sample before the
# window by the 60 s between them. Each point then differs by the traffic's change between the
# two spans, so points are checked by their median relative difference and the hour's mean
# must agree closely. Measured on this run: median 1-2 % (p95 latency and AI cost up to 4 %),
# hour means within 0.5 %; the error rate of a few errors a minute differs by about 30 % per
# point, so it is checked by the hour's mean only.
# Signal, median relative difference per point, relative difference of the hour's mean.
OFFSET_CASES = [
    ("requests_per_second", 0.03, 0.002),
    ("error_rate", None, 0.03),
    ("average_latency_ms", 0.03, 0.002),
    ("p95_latency_ms", 0.03, 0.01),
    ("cost_per_hour", 0.05, 0.002),
    ("cpu_usage", 0.01, 0.002),
    ("memory_usage", 0.0, 0.0),
]


@pytest.mark.parametrize("system", SYSTEMS)
@pytest.mark.parametrize(("signal", "median_tolerance", "mean_tolerance"), OFFSET_CASES)
def test_unaligned_scrapes_agree(offset_backends: Backends, system: str, signal: str,
                                 median_tolerance: float | None,
                                 mean_tolerance: float) -> None:
    time_range = TimeRange.between(T0 + 120, END, SCRAPE)
    expected = offset_backends.embedded.signals([system], time_range, [signal])
    actual = offset_backends.prometheus.signals([system], time_range, [signal])
    want, got = expected["value"].to_numpy(), actual["value"].to_numpy()
    if system == "neuroweaver":
        seconds = np.array([ts.timestamp() for ts in expected["timestamp"]])
        outside = np.array([not near_outage(t, time_range) for t in seconds])
        want, got = want[outside], got[outside]
    both = ~np.isnan(want) & ~np.isnan(got)
    assert both.sum() > 150

    mean_difference = abs(got[both].mean() - want[both].mean())
    assert mean_difference <= mean_tolerance * abs(want[both].mean()) + 1e-12
    if median_tolerance is not None:
        nonzero = both & (np.abs(want) > 0)
        relative = np.abs(got[nonzero] - want[nonzero]) / np.abs(want[nonzero])
        assert np.median(relative) <= median_tolerance


@pytest.mark.parametrize("system", SYSTEMS)
@pytest.mark.parametrize(("signal", "tolerance"), CASES)
def test_unaligned_victoria_metrics_exact(offset_backends: Backends, system: str, signal: str,
                                          tolerance: float) -> None:
    # VictoriaMetrics's rate() starts from the last sample before the window, as the embedded
    # store does, so unaligned scrapes still agree to float rounding.
    time_range = TimeRange.between(T0 + 120, END, SCRAPE)
    expected = offset_backends.embedded.signals([system], time_range, [signal])
    actual = offset_backends.victoria_metrics.signals([system], time_range, [signal])
    assert compare(expected, actual, system, tolerance, time_range) > 150
