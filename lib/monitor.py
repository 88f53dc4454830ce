"""The facade that pages and scripts use: the platform's monitoring operations in one place.

`get_monitor()` builds the monitor once per process from the settings. With the embedded source
(the default) that is the store, the simulated platform (when enabled) and the collector. Only one
process per data directory runs a collector, holding `collector.lock` there, and any other process
reads the same store. With a Prometheus source the app keeps no store and starts no collector, and
it starts the simulated platform only when `[simulator] enabled = true` is set.

Every read goes through `LastGood`: one fetch per system, concurrently, each within the configured
timeout. A system whose fetch fails or is late shows its last good result marked stale, or no data
with the reason, and never holds up the other systems. A source that reads several systems in one
call (`GroupedSource`, such as the Prometheus source) is called once per refresh, and each
system's fetch takes its own part of that call's result.
"""

from __future__ import annotations

import fcntl
import functools
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO, Any, TypeVar

import pandas as pd

from lib.alerts.alertmanager import AlertmanagerAlerts, AlertmanagerAPI, Deliverer
from lib.alerts.embedded import ALERTS_FILE, EmbeddedAlerts, RuleEvaluator
from lib.alerts.outbox import OUTBOX_FILE, Outbox
from lib.alerts.service import Alerts
from lib.breakdowns import BreakdownSource
from lib.cache import CACHE_DIR, Guarded, Job, LastGood, ResultCache, SharedCall, cache_key
from lib.collector import Collector
from lib.config import Settings, TargetConfig, load_settings
from lib.errors import MonitorError
from lib.health import Status, judge
from lib.http import make_client
from lib.signals import GOLDEN_SIGNALS
from lib.sources.base import (
    FRESHNESS_ATTR,
    Freshness,
    GroupedSource,
    Snapshot,
    Source,
    empty_frame,
)
from lib.sources.embedded import EmbeddedSource
from lib.sources.prometheus import PrometheusSource
from lib.store import Store
from lib.timerange import TimeRange

log = logging.getLogger(__name__)

STORE_FILE = "metrics.sqlite"
# Frame attribute with the warnings a source returned with the data, such as Prometheus's.
WARNINGS_ATTR = "warnings"
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
    freshness: Freshness | None = None
    stale: bool = False
    stale_reason: str | None = None
    data_age_seconds: float | None = None


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
    """Reads signals, health and targets for the configured systems from one source.

    `cache` keeps the last good result of each query; without it a failed fetch shows no data.
    Each system's fetch gets `time_limit` seconds, by default `settings.scrape_timeout`.
    `clock` returns epoch seconds. `alerts` reads and acknowledges alerts, when configured.
    """

    def __init__(
        self,
        settings: Settings,
        source: Source,
        store: Store | None = None,
        clock: Callable[[], float] = time.time,
        cache: ResultCache | None = None,
        time_limit: float | None = None,
        alerts: Alerts | None = None,
        loading_history: Callable[[], bool] | None = None,
    ) -> None:
        self.settings = settings
        self._loading_history = loading_history
        self.source = source
        self.store = store
        self.clock = clock
        self.alerts = alerts
        # Identifies this monitor in caches shared by every monitor of the process.
        self.key = uuid.uuid4().hex
        limit = settings.scrape_timeout if time_limit is None else time_limit
        # A source may set `concurrent_fetches = False` when its fetches are local CPU work.
        self._concurrent = bool(getattr(source, "concurrent_fetches", True))
        self.last_good = LastGood(cache, limit, clock)

    def now(self) -> float:
        """Return the current time (epoch seconds) by this monitor's clock."""
        return self.clock()

    def loading_history(self) -> bool:
        """Return True while this process writes the simulated platform's history into the
        store, so that recent ranges hold only part of their data."""
        return self._loading_history is not None and self._loading_history()

    @property
    def source_label(self) -> str:
        return self.source.label

    def systems(self) -> list[SystemInfo]:
        return [SystemInfo(t.system, t.display_name, t.colour) for t in self.settings.targets]

    def time_range(self, preset: str, now: float | None = None) -> TimeRange:
        """Return the preset range with this deployment's scrape interval."""
        now = self.clock() if now is None else now
        return TimeRange.preset(preset, now=now, scrape_interval=self.settings.scrape_interval)

    def breakdowns(self) -> BreakdownSource:
        """Return the source as a BreakdownSource, for per-label views of one system.

        Raises:
            MonitorError: if the configured source cannot break metrics down by label.
        """
        if not isinstance(self.source, BreakdownSource):
            raise MonitorError(
                f"The source {self.source.label} cannot break metrics down by label, so the "
                "system pages are not available with it."
            )
        return self.source

    def platform_metrics(
        self,
        systems: Sequence[str],
        time_range: TimeRange,
        signals: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """Return the long signal frame of several systems over `time_range`.

        `frame.attrs["freshness"]` maps each system to its Freshness: a system whose fetch failed
        contributes its last good rows, or none.
        """
        names = list(signals or GOLDEN_SIGNALS)
        fetch = self._signals_fetch(systems, time_range, names)
        jobs = [
            self._job(system, "signals", names, time_range, functools.partial(fetch, system))
            for system in systems
        ]
        results = self.last_good.run(jobs, self._concurrent)
        frames = [r.value for r in results.values() if r.value is not None and not r.value.empty]
        warnings = [w for f in frames for w in f.attrs.get(WARNINGS_ATTR, ())]
        frame = pd.concat(frames, ignore_index=True) if frames else empty_frame()
        frame.attrs = {"time_range": time_range}
        if warnings:
            frame.attrs[WARNINGS_ATTR] = list(dict.fromkeys(warnings))
        frame.attrs[FRESHNESS_ATTR] = {system: r.freshness for system, r in results.items()}
        return frame

    def _signals_fetch(
        self, systems: Sequence[str], time_range: TimeRange, names: list[str]
    ) -> Callable[[str], tuple[pd.DataFrame, Freshness | None]]:
        """Return the fetch of one system's signals: its part of one call shared by `systems`
        when the source reads several systems at once, else a call of its own."""
        source = self.source
        if not isinstance(source, GroupedSource):
            return lambda system: self._fetch_signals(system, time_range, names)
        shared = SharedCall(lambda: source.signals_by_system(list(systems), time_range, names))
        return lambda system: _own_frame(system, _part(shared(), system))

    def _fetch_signals(
        self, system: str, time_range: TimeRange, names: list[str]
    ) -> tuple[pd.DataFrame, Freshness | None]:
        return _own_frame(system, self.source.signals([system], time_range, names))

    def _job(
        self,
        system: str,
        kind: str,
        names: Sequence[str],
        time_range: TimeRange,
        fetch: Callable[[], tuple[Any, Freshness | None]],
    ) -> Job[Any]:
        target = self.settings.target(system)
        key = cache_key(self.source.label, kind, system, ",".join(names), time_range.label,
                        f"{time_range.step:g}")
        return Job(system, target.display_name, key, fetch)

    def system_metrics(
        self, system: str, time_range: TimeRange, signals: Sequence[str] | None = None
    ) -> pd.DataFrame:
        """Return the long signal frame of one system over `time_range`."""
        return self.platform_metrics([system], time_range, signals)

    def overview(
        self, systems: Sequence[str], time_range: TimeRange, now: float | None = None
    ) -> list[SystemHealth]:
        """Return each system's status, current values and request-rate trend."""
        now = self.clock() if now is None else now
        fetch = self._overview_fetch(systems, time_range, now)
        jobs = [
            self._job(system, "overview", ["requests_per_second"], time_range,
                      functools.partial(fetch, system))
            for system in systems
        ]
        results = self.last_good.run(jobs, self._concurrent)
        return [self._health(system, now, results[system]) for system in systems]

    def _overview_fetch(
        self, systems: Sequence[str], time_range: TimeRange, now: float
    ) -> Callable[[str], tuple[tuple[Snapshot, pd.DataFrame], Freshness | None]]:
        """Return the fetch of one system's Overview data: its part of one shared call when the
        source reads several systems at once, else calls of its own."""
        source = self.source
        if not isinstance(source, GroupedSource):
            return lambda system: self._fetch_overview(system, time_range, now)

        def read_all() -> tuple[Mapping[str, pd.DataFrame | MonitorError],
                                Mapping[str, Snapshot | MonitorError]]:
            # The trend and the current values are independent; read them at the same time.
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="trend") as pool:
                trends = pool.submit(source.signals_by_system, list(systems), time_range,
                                     ["requests_per_second"])
                snapshots = source.snapshots(list(systems), time_range, now)
                return trends.result(), snapshots

        shared = SharedCall(read_all)

        def fetch(system: str) -> tuple[tuple[Snapshot, pd.DataFrame], Freshness | None]:
            trends, snapshots = shared()
            trend, _ = _own_frame(system, _part(trends, system))
            snapshot = _part(snapshots, system)
            return (snapshot, trend), snapshot.freshness

        return fetch

    def _fetch_overview(
        self, system: str, time_range: TimeRange, now: float
    ) -> tuple[tuple[Snapshot, pd.DataFrame], Freshness | None]:
        trend, _ = self._fetch_signals(system, time_range, ["requests_per_second"])
        snapshot = self.source.snapshot(system, time_range, now)
        return (snapshot, trend), snapshot.freshness

    def _health(
        self, system: str, now: float, result: Guarded[tuple[Snapshot, pd.DataFrame]]
    ) -> SystemHealth:
        target = self.settings.target(system)
        freshness = result.freshness
        if result.value is None:
            return _no_data_health(system, target.display_name, freshness)
        snapshot, trend = result.value
        verdict = judge(snapshot, target.thresholds, now, self.settings.scrape_interval)
        status, reasons = verdict.status, verdict.reasons
        if freshness.stale and status is Status.HEALTHY:
            status = Status.WARNING
            reasons = (*reasons, "Stale: the values are the last good data.")
        values = snapshot.values
        start = snapshot.process_start_time
        return SystemHealth(
            system=system,
            display_name=target.display_name,
            status=status,
            reasons=reasons,
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
            trend=trend.reset_index(drop=True),
            warnings=tuple(
                dict.fromkeys([*snapshot.warnings, *trend.attrs.get(WARNINGS_ATTR, ())])
            ),
            freshness=freshness,
            stale=freshness.stale,
            stale_reason=freshness.reason if freshness.stale else None,
            data_age_seconds=freshness.age_seconds,
        )

    def targets(self) -> list[TargetStatus]:
        """Return every configured endpoint with the collector's last view of it, or without
        a store of its own (Prometheus source), with the source's view of its scrapes."""
        if self.store is None:
            return self._source_targets()
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


    def _source_targets(self) -> list[TargetStatus]:
        """Return each target as the source reports its scrapes: one grouped call for all
        systems when the source offers it, else one snapshot per system."""
        now = time.time()
        time_range = self.time_range("1h", now=now)
        systems = [target.system for target in self.settings.targets]
        snapshots: Mapping[str, Snapshot | MonitorError]
        if isinstance(self.source, GroupedSource):
            try:
                snapshots = self.source.snapshots(systems, time_range, now)
            except MonitorError as error:
                snapshots = dict.fromkeys(systems, error)
        else:
            snapshots = {}
            for system in systems:
                try:
                    snapshots[system] = self.source.snapshot(system, time_range, now)
                except MonitorError as error:
                    snapshots[system] = error
        return [self._source_target(target, snapshots.get(target.system))
                for target in self.settings.targets]

    def _source_target(
        self, target: TargetConfig, snapshot: Snapshot | MonitorError | None
    ) -> TargetStatus:
        health, last_error = "unknown", None
        last_scrape = None
        if isinstance(snapshot, MonitorError):
            last_error = str(snapshot)
        elif snapshot is not None:
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


def _own_frame(system: str, frame: pd.DataFrame) -> tuple[pd.DataFrame, Freshness | None]:
    """Return `frame` of `system` with the freshness the source judged. The frame keeps only its
    data and warnings, because it is cached and the facade sets the other attributes again."""
    own = frame.attrs.get(FRESHNESS_ATTR, {}).get(system)
    warnings = list(frame.attrs.get(WARNINGS_ATTR, ()))
    frame.attrs = {WARNINGS_ATTR: warnings} if warnings else {}
    return frame, own


T = TypeVar("T")


def _part(results: Mapping[str, T | MonitorError], system: str) -> T:
    """Return the part of a shared call's `results` that is `system`'s, raising its error."""
    outcome = results[system]
    if isinstance(outcome, MonitorError):
        raise outcome
    return outcome


def _no_data_health(system: str, display_name: str, freshness: Freshness) -> SystemHealth:
    return SystemHealth(
        system=system, display_name=display_name, status=Status.WARNING,
        reasons=("No data received yet.",),
        availability=None, process_uptime_seconds=None, requests_per_second=None,
        average_latency_ms=None, p95_latency_ms=None, error_rate=None, cpu_usage=None,
        memory_usage=None, cost_per_hour=None, last_scrape_at=None, last_success_at=None,
        last_error=freshness.reason, trend=empty_frame(), freshness=freshness, stale=True,
        stale_reason=freshness.reason, data_age_seconds=None,
    )


def _value(values: dict[str, float], name: str) -> float | None:
    value = values.get(name)
    if value is None or value != value:  # NaN is "no data"
        return None
    return value


class PeriodicTask:
    """Call `task` every `interval` seconds in a daemon thread until `stop()`; an exception is
    logged and the next call goes ahead."""

    def __init__(self, task: Callable[[], object], interval: float, name: str) -> None:
        self.task = task
        self.interval = interval
        # What the task does, in the log's words, e.g. "alert rule evaluation".
        self.name = name
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="periodic-task", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)

    def _run(self) -> None:
        last_logged = -math.inf
        while not self._stop.wait(self.interval):
            try:
                self.task()
            except Exception as exc:  # noqa: BLE001 - the task must run again next interval
                # A source that is down fails every interval; log it once per five minutes.
                if time.monotonic() - last_logged >= 300:
                    log.warning("%s failed, trying again every %g s: %s",
                                self.name, self.interval, exc)
                    last_logged = time.monotonic()


class Runtime:
    """The background parts of one process: simulated platform, collector and their lock."""

    def __init__(self) -> None:
        self.platform: Any = None
        self.collector: Collector | None = None
        self.deliverer: Deliverer | None = None
        self.evaluator_thread: PeriodicTask | None = None
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
        if self.deliverer is not None:
            self.deliverer.stop()
        if self.evaluator_thread is not None:
            self.evaluator_thread.stop()
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
    cache = ResultCache(settings.storage.data_dir / CACHE_DIR)
    source = EmbeddedSource(store, settings.scrape_interval)
    runtime = Runtime()
    alerts, evaluator = _build_alerts(settings, source, runtime, start_background)
    if start_background and runtime.acquire_collector_lock(settings):
        if settings.simulator.enabled:
            runtime.platform = _start_simulated_platform(settings)
        after_cycle = evaluator.evaluate if evaluator is not None else None
        collector = Collector(settings, store, make_client(), after_cycle=after_cycle)
        runtime.collector = collector
        if settings.simulator.enabled and settings.simulator.backfill > 0:
            collector.start(before=_backfill_task(settings, collector))
        else:
            collector.start()
        return Monitor(settings, source, store, cache=cache, alerts=alerts,
                       loading_history=lambda: collector.preparing), runtime
    if start_background:
        # NOTE: a collector in another process (python -m lib.collect) writes the history
        # there, and these pages cannot tell that it is still loading.
        log.info("another process runs the collector for %s; reading only",
                 settings.storage.data_dir)
    return Monitor(settings, source, store, cache=cache, alerts=alerts), runtime


def _backfill_task(settings: Settings, collector: Collector) -> Callable[[], object]:
    def backfill() -> object:
        from lib.backfill import backfill_simulated

        simulator = settings.simulator
        return backfill_simulated(
            collector, simulator.seed, simulator.backfill, time.time(), simulator.incidents
        )

    return backfill


def _build_prometheus_monitor(
    settings: Settings, start_background: bool
) -> tuple[Monitor, Runtime]:
    runtime = Runtime()
    if start_background and settings.simulator.enabled:
        runtime.platform = _start_simulated_platform(settings)
    source = PrometheusSource(
        settings.source, settings.targets, make_client(), settings.scrape_interval
    )
    # The Prometheus source keeps no store, so the result cache is the only last good data.
    settings.storage.data_dir.mkdir(parents=True, exist_ok=True)
    cache = ResultCache(settings.storage.data_dir / CACHE_DIR)
    alerts, evaluator = _build_alerts(settings, source, runtime, start_background)
    if evaluator is not None and start_background:
        # No collector runs in this mode, so a thread evaluates the rules each scrape interval.
        runtime.evaluator_thread = PeriodicTask(
            evaluator.evaluate, settings.scrape_interval, "alert rule evaluation"
        )
        runtime.evaluator_thread.start()
    log.info("reading signals from %s", source.label)
    return Monitor(settings, source, cache=cache, alerts=alerts,
                   time_limit=settings.source.timeout), runtime


def _build_alerts(
    settings: Settings, source: Source, runtime: Runtime, start_background: bool
) -> tuple[Alerts, RuleEvaluator | None]:
    """Return the alerts facade and, for the embedded backend, the rule evaluator that the
    collector runs after each scrape cycle."""
    data_dir = settings.storage.data_dir
    if settings.alerts.backend == "alertmanager":
        api = AlertmanagerAPI(settings.alerts.alertmanager_url, make_client(),
                              settings.alerts.alertmanager_timeout)
        backend = AlertmanagerAlerts(api, Outbox(data_dir / OUTBOX_FILE))
        if start_background:
            # Every process delivers; leases on the entries keep two from sending one twice.
            runtime.deliverer = Deliverer(backend)
            runtime.deliverer.start()
        return Alerts(backend), None

    embedded = EmbeddedAlerts(data_dir / ALERTS_FILE)
    return Alerts(embedded), RuleEvaluator(settings, embedded, current_values(source, settings))


def current_values(
    source: Source, settings: Settings
) -> Callable[[str, float], dict[str, float]]:
    """Return a function giving one system's current signal values, as the Overview shows them.

    A grouped source (Prometheus) is asked once per evaluation time for all systems, because the
    rules ask for every system at the same `now` in turn.
    """
    interval = settings.scrape_interval
    systems = list(settings.systems)
    latest: dict[float, Mapping[str, Snapshot | MonitorError]] = {}

    def values_of(system: str, now: float) -> dict[str, float]:
        time_range = TimeRange.between(now - interval, now, interval)
        if not isinstance(source, GroupedSource):
            return source.snapshot(system, time_range, now).values
        if now not in latest:
            latest.clear()
            latest[now] = source.snapshots(systems, time_range, now)
        outcome = latest[now][system]
        if isinstance(outcome, MonitorError):
            raise outcome
        return outcome.values

    return values_of


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
# Two sessions opening at once must not build two monitors (two simulated platforms on the same
# ports, two collectors).
_MONITOR_LOCK = threading.Lock()


def set_monitor(monitor: Monitor, runtime: Runtime | None = None) -> None:
    """Make `monitor` the one `get_monitor()` returns, for embedding the pages elsewhere and for
    tests that drive a monitor with their own clock."""
    global _MONITOR
    _MONITOR = (monitor, runtime or Runtime())


def configure_logging() -> None:
    """Log INFO and above to stderr, without httpx's per-request lines."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # httpx logs every request at INFO with its full URL, a password in it included. The
    # collector logs one line per cycle and every failure itself, with passwords redacted.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def reset_monitor() -> None:
    """Stop the background parts of this process's monitor and forget it, so that the next
    `get_monitor()` builds a new one (for tests that change the configuration)."""
    global _MONITOR
    if _MONITOR is not None:
        _MONITOR[1].stop()
    _MONITOR = None


def get_monitor() -> Monitor:
    """Return this process's monitor, building it and its background parts on first call."""
    global _MONITOR
    with _MONITOR_LOCK:
        if _MONITOR is None:
            configure_logging()
            _MONITOR = build_monitor(load_settings())
        return _MONITOR[0]
