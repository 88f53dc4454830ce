"""The facade that pages and scripts use: the platform's monitoring operations in one place.

`get_monitor()` builds the monitor once per process from the settings. With the embedded source
(the default) that is the store, the simulated platform (when enabled) and the collector. Only one
process per data directory runs a collector, holding `collector.lock` there, and any other process
reads the same store. With a Prometheus source the app keeps no store and starts no collector, and
it starts the simulated platform only when `[simulator] enabled = true` is set.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import pandas as pd

from lib.collector import Collector
from lib.config import Settings, TargetConfig, load_settings
from lib.errors import MonitorError
from lib.health import Status, judge
from lib.http import make_client
from lib.signals import GOLDEN_SIGNALS
from lib.sources.base import Source
from lib.sources.embedded import EmbeddedSource
from lib.sources.prometheus import PrometheusSource
from lib.store import Store
from lib.timerange import TimeRange

log = logging.getLogger(__name__)

STORE_FILE = "metrics.sqlite"
LOCK_FILE = "collector.lock"


@dataclass(frozen=True)
class SystemInfo:
    """A watched system as the pages name and colour it."""

    id: str
    display_name: str
    colour: str


@dataclass(frozen=True)
class SystemHealth:
    """Everything the Overview shows for one system."""

    system: str
    display_name: str
    status: Status
    reasons: tuple[str, ...]
    availability: float | None
    process_uptime_seconds: float | None
    requests_per_second: float | None
    average_latency_ms: float | None
    p95_latency_ms: float | None
    error_rate: float | None
    cpu_usage: float | None
    memory_usage: float | None
    cost_per_hour: float | None
    last_scrape_at: float | None
    last_success_at: float | None
    last_error: str | None
    trend: pd.DataFrame = field(repr=False, compare=False)
    # Warnings the source returned with this system's values, shown beside them.
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class TargetStatus:
    """One endpoint as the Targets page shows it (times in epoch seconds)."""

    system: str
    display_name: str
    url: str
    health: str
    last_scrape_at: float | None
    scrape_duration_seconds: float | None
    samples: int | None
    last_error: str | None
    consecutive_failures: int
    next_scrape_at: float | None


class Monitor:
    """Reads signals, health and targets for the configured systems from one source."""

    def __init__(self, settings: Settings, source: Source, store: Store | None = None) -> None:
        self.settings = settings
        self.source = source
        self.store = store

    @property
    def source_label(self) -> str:
        return self.source.label

    def systems(self) -> list[SystemInfo]:
        return [SystemInfo(t.system, t.display_name, t.colour) for t in self.settings.targets]

    def time_range(self, preset: str, now: float | None = None) -> TimeRange:
        """Return the preset range with this deployment's scrape interval."""
        return TimeRange.preset(preset, now=now, scrape_interval=self.settings.scrape_interval)

    def platform_metrics(
        self,
        systems: Sequence[str],
        time_range: TimeRange,
        signals: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """Return the long signal frame of several systems over `time_range`."""
        for system in systems:
            self.settings.target(system)
        return self.source.signals(list(systems), time_range, list(signals or GOLDEN_SIGNALS))

    def system_metrics(
        self, system: str, time_range: TimeRange, signals: Sequence[str] | None = None
    ) -> pd.DataFrame:
        """Return the long signal frame of one system over `time_range`."""
        return self.platform_metrics([system], time_range, signals)

    def overview(
        self, systems: Sequence[str], time_range: TimeRange, now: float | None = None
    ) -> list[SystemHealth]:
        """Return each system's status, current values and request-rate trend."""
        now = time.time() if now is None else now
        trends = self.platform_metrics(systems, time_range, ["requests_per_second"])
        # TODO: snapshots run one system after another; with a Prometheus source each runs its
        # own queries concurrently, so a refresh costs one slowest query per system.
        return [self._health(system, time_range, now, trends) for system in systems]

    def _health(
        self, system: str, time_range: TimeRange, now: float, trends: pd.DataFrame
    ) -> SystemHealth:
        target = self.settings.target(system)
        snapshot = self.source.snapshot(system, time_range, now)
        verdict = judge(snapshot, target.thresholds, now, self.settings.scrape_interval)
        values = snapshot.values
        start = snapshot.process_start_time
        return SystemHealth(
            system=system,
            display_name=target.display_name,
            status=verdict.status,
            reasons=verdict.reasons,
            availability=snapshot.availability,
            process_uptime_seconds=now - start if start else None,
            requests_per_second=_value(values, "requests_per_second"),
            average_latency_ms=_value(values, "average_latency_ms"),
            p95_latency_ms=_value(values, "p95_latency_ms"),
            error_rate=_value(values, "error_rate"),
            cpu_usage=_value(values, "cpu_usage"),
            memory_usage=_value(values, "memory_usage"),
            cost_per_hour=_value(values, "cost_per_hour"),
            last_scrape_at=snapshot.last_scrape_at,
            last_success_at=snapshot.last_success_at,
            last_error=snapshot.last_error,
            trend=trends[trends["system"] == system].reset_index(drop=True),
            warnings=tuple(dict.fromkeys([*snapshot.warnings, *trends.attrs.get("warnings", ())])),
        )

    def targets(self) -> list[TargetStatus]:
        """Return every configured endpoint with the collector's last view of it, or without
        a store of its own (Prometheus source), with the source's view of its scrapes."""
        if self.store is None:
            return [self._source_target(target) for target in self.settings.targets]
        records = {r.system: r for r in self.store.targets()}
        statuses = []
        for target in self.settings.targets:
            record = records.get(target.system)
            statuses.append(
                TargetStatus(
                    system=target.system,
                    display_name=target.display_name,
                    url=target.url,
                    health=record.health if record else "unknown",
                    last_scrape_at=record.last_scrape_at if record else None,
                    scrape_duration_seconds=record.scrape_duration if record else None,
                    samples=record.samples if record else None,
                    last_error=record.last_error if record else None,
                    consecutive_failures=record.consecutive_failures if record else 0,
                    next_scrape_at=record.next_scrape_at if record else None,
                )
            )
        return statuses


    def _source_target(self, target: TargetConfig) -> TargetStatus:
        now = time.time()
        health, last_error = "unknown", None
        last_scrape = None
        try:
            snapshot = self.source.snapshot(target.system, self.time_range("1h", now=now), now)
        except MonitorError as error:
            last_error = str(error)
        else:
            up = _value(snapshot.values, "up")
            if up is not None:
                health = "up" if up >= 1 else "down"
            last_scrape, last_error = snapshot.last_scrape_at, snapshot.last_error
        return TargetStatus(
            system=target.system,
            display_name=target.display_name,
            url=f"job {target.prometheus_job!r}",
            health=health,
            last_scrape_at=last_scrape,
            scrape_duration_seconds=None,
            samples=None,
            last_error=last_error,
            consecutive_failures=0,
            next_scrape_at=None,
        )


def _value(values: dict[str, float], name: str) -> float | None:
    value = values.get(name)
    if value is None or value != value:  # NaN is "no data"
        return None
    return value


class Runtime:
    """The background parts of one process: simulated platform, collector and their lock."""

    def __init__(self) -> None:
        self.platform: Any = None
        self.collector: Collector | None = None
        self._lock_file: IO[str] | None = None

    def acquire_collector_lock(self, settings: Settings) -> bool:
        """Return True when this process may run the collector for the data directory."""
        path = settings.storage.data_dir / LOCK_FILE
        handle = path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock_file = handle
        return True

    def stop(self) -> None:
        """Stop the collector and the simulated platform and release the lock."""
        if self.collector is not None:
            self.collector.stop()
        if self.platform is not None:
            self.platform.stop()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None


def build_monitor(settings: Settings, start_background: bool = True) -> tuple[Monitor, Runtime]:
    """Build the monitor for `settings` with the source that `[source] kind` names.

    With `start_background`, the embedded source also starts the simulated platform and the
    collector when this process holds the data directory's lock. The Prometheus source starts
    only the simulated platform, and only when the settings enable it.
    """
    if settings.source.kind == "prometheus":
        return _build_prometheus_monitor(settings, start_background)
    settings.storage.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.storage.data_dir / STORE_FILE)
    runtime = Runtime()
    if start_background and runtime.acquire_collector_lock(settings):
        if settings.simulator.enabled:
            runtime.platform = _start_simulated_platform(settings)
        runtime.collector = Collector(settings, store, make_client())
        runtime.collector.start()
    elif start_background:
        log.info("another process runs the collector for %s; reading only",
                 settings.storage.data_dir)
    source = EmbeddedSource(store, settings.scrape_interval)
    return Monitor(settings, source, store), runtime


def _build_prometheus_monitor(
    settings: Settings, start_background: bool
) -> tuple[Monitor, Runtime]:
    runtime = Runtime()
    if start_background and settings.simulator.enabled:
        runtime.platform = _start_simulated_platform(settings)
    source = PrometheusSource(
        settings.source, settings.targets, make_client(), settings.scrape_interval
    )
    log.info("reading signals from %s", source.label)
    return Monitor(settings, source), runtime


def _start_simulated_platform(settings: Settings) -> Any:
    from exporters.server import SimulatedPlatform
    from exporters.simulator import SimulationConfig, demo_incidents

    simulator = settings.simulator
    config = SimulationConfig(
        seed=simulator.seed,
        incidents=demo_incidents() if simulator.incidents else (),
        # The live app never asks the simulator for its true totals; keep them short.
        truth_retention=3600.0,
    )
    platform = SimulatedPlatform(config, host=simulator.host, ports=simulator.ports)
    platform.start()
    log.info("simulated platform serving %s", ", ".join(platform.urls.values()))
    return platform


_MONITOR: tuple[Monitor, Runtime] | None = None


def get_monitor() -> Monitor:
    """Return this process's monitor, building it and its background parts on first call."""
    global _MONITOR
    if _MONITOR is None:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        _MONITOR = build_monitor(load_settings())
    return _MONITOR[0]
