"""Seedable, deterministic simulator of the AutoMatrix, RelayCore and NeuroWeaver platform.

`PlatformSimulator` advances in whole 1 s ticks. Each system draws its traffic in blocks of
`BLOCK_TICKS` ticks from its own numpy generator, seeded from (seed, system index). Blocks are
always drawn in tick order, so the metric values at a tick depend only on the config and the
start time, not on how the caller splits its `advance_to` calls.

Load follows a sinusoid over the UTC day. Incidents raise the 5xx ratio, slow every latency
down, or take a system down. A system restarts when its outage ends: it gets a fresh registry
with counters at 0 and a new `process_start_time_seconds`, so scrapers see a counter reset.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import numpy as np
from prometheus_client import CollectorRegistry

from exporters.catalog import PROFILES, SYSTEMS
from exporters.metrics import DEFAULT_BUCKETS, FloatArray, SystemMetrics, metric_definitions
from exporters.traffic import TRAFFIC_MODELS, Block, BoolArray, TickConditions
from exporters.truth import TickTotals, Truth, TruthRecorder

__all__ = [
    "BLOCK_TICKS",
    "Exposition",
    "Incident",
    "PlatformSimulator",
    "SimulationConfig",
    "Truth",
    "demo_incidents",
]

logger = logging.getLogger(__name__)

IncidentKind = Literal["error_burst", "outage", "slow"]
INCIDENT_KINDS: tuple[str, ...] = ("error_burst", "outage", "slow")
BLOCK_TICKS = 300
SECONDS_PER_DAY = 86400.0
# Every request gets its own latency draw, so a block's memory and time grow with the rate.
MAX_BASE_RPS = 2_000.0


@dataclass(frozen=True)
class Incident:
    """A time window in which one system misbehaves.

    `kind` sets what `magnitude` means:
    - "error_burst": the 5xx ratio during the window, 0..1 (the base ratio applies if higher).
    - "slow": the factor, at least 1, by which every latency and duration is multiplied.
    - "outage": the system is down, its exporter returns 503, and it restarts with fresh
      counters when the window ends. `magnitude` is ignored.

    `start` is the epoch second of the first window and `duration` its length in seconds.
    With `repeat_every` set, a new window opens every `repeat_every` seconds after `start`.
    """

    kind: IncidentKind
    system: str
    start: float
    duration: float
    magnitude: float = 1.0
    repeat_every: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in INCIDENT_KINDS:
            raise ValueError(f"Invalid incident kind {self.kind!r}. Use one of {INCIDENT_KINDS}.")
        if self.system not in SYSTEMS:
            raise ValueError(f"Unknown system {self.system!r}. Expected one of {SYSTEMS}.")
        if not self.duration > 0:
            raise ValueError(f"Incident duration must be positive, got {self.duration!r} s.")
        if self.repeat_every is not None and not self.repeat_every > self.duration:
            raise ValueError(
                f"repeat_every ({self.repeat_every!r} s) must be longer than the duration "
                f"({self.duration!r} s)."
            )
        if self.kind == "error_burst" and not 0.0 <= self.magnitude <= 1.0:
            raise ValueError(
                f"An error_burst magnitude is a 5xx ratio in 0..1, got {self.magnitude!r}."
            )
        if self.kind == "slow" and not self.magnitude >= 1.0:
            raise ValueError(f"A slow magnitude is a latency factor >= 1, got {self.magnitude!r}.")

    def _offset(self, t: float) -> float:
        """Return seconds since the opening of the latest window at or before `t`."""
        offset = t - self.start
        if self.repeat_every is not None and offset >= 0:
            offset = math.fmod(offset, self.repeat_every)
        return offset

    def is_active(self, t: float) -> bool:
        """Return whether `t` (epoch s) falls inside a window [opening, opening + duration)."""
        offset = self._offset(t)
        return 0.0 <= offset < self.duration

    def active_mask(self, times: FloatArray) -> BoolArray:
        """Return `is_active` for every time in `times`."""
        offset = times - self.start
        if self.repeat_every is not None:
            offset = np.where(offset >= 0, np.fmod(offset, self.repeat_every), offset)
        return np.asarray((offset >= 0.0) & (offset < self.duration), dtype=np.bool_)

    def window_end(self, t: float) -> float | None:
        """Return the end (epoch s) of the window that contains `t`, or None outside windows."""
        if not self.is_active(t):
            return None
        return t - self._offset(t) + self.duration


def demo_incidents() -> tuple[Incident, ...]:
    """Return a repeating incident schedule, aligned to the UTC clock, for live demos.

    - RelayCore: a 4 min error burst at 25 % 5xx, at minute 20 of every hour.
    - AutoMatrix: a 6 min slow period at 4x latency, at minute 45 of every even UTC hour.
    - NeuroWeaver: a 75 s outage at 01:10, 04:10, 07:10 ... UTC, every 3 hours.
    """
    return (
        Incident("error_burst", "relaycore", 20 * 60.0, 240.0, 0.25, repeat_every=3600.0),
        Incident("slow", "automatrix", 45 * 60.0, 360.0, 4.0, repeat_every=2 * 3600.0),
        Incident("outage", "neuroweaver", 3600.0 + 10 * 60.0, 75.0, repeat_every=3 * 3600.0),
    )


def _per_system(
    name: str, overrides: Mapping[str, float], defaults: Mapping[str, float]
) -> dict[str, float]:
    unknown = set(overrides) - set(SYSTEMS)
    if unknown:
        raise ValueError(f"{name} names unknown systems {sorted(unknown)}. Use {SYSTEMS}.")
    return {system: float(overrides.get(system, defaults[system])) for system in SYSTEMS}


@dataclass(frozen=True)
class SimulationConfig:
    """Settings of a simulated platform.

    `base_rps`, `daily_amplitude` and `base_error_ratio` map system ids to values. Systems they
    leave out get the catalog defaults, so after construction each map has all three systems.
    `base_rps` is the mean HTTP request rate in requests per second. Over the UTC day the rate
    is `base_rps * (1 + daily_amplitude * cos(...))`, peaking at the system's peak hour.
    `base_error_ratio` is the 5xx share outside error bursts. `truth_retention` is the number
    of seconds of per-tick truth that each system keeps.
    """

    seed: int = 42
    base_rps: Mapping[str, float] = field(default_factory=dict)
    daily_amplitude: Mapping[str, float] = field(default_factory=dict)
    base_error_ratio: Mapping[str, float] = field(default_factory=dict)
    incidents: Sequence[Incident] = ()
    truth_retention: float = 8 * SECONDS_PER_DAY

    def __post_init__(self) -> None:
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"The seed must be a non-negative integer, got {self.seed!r}.")
        if not self.truth_retention > 0:
            raise ValueError(f"truth_retention must be positive, got {self.truth_retention!r} s.")

        rps = _per_system(
            "base_rps", self.base_rps, {s: p.base_rps for s, p in PROFILES.items()}
        )
        amplitude = _per_system(
            "daily_amplitude", self.daily_amplitude,
            {s: p.daily_amplitude for s, p in PROFILES.items()},
        )
        error_ratio = _per_system(
            "base_error_ratio", self.base_error_ratio,
            {s: p.base_error_ratio for s, p in PROFILES.items()},
        )
        for system in SYSTEMS:
            _validate_load(system, rps[system], amplitude[system], error_ratio[system])

        object.__setattr__(self, "base_rps", rps)
        object.__setattr__(self, "daily_amplitude", amplitude)
        object.__setattr__(self, "base_error_ratio", error_ratio)
        object.__setattr__(self, "incidents", tuple(self.incidents))


def _validate_load(system: str, rps: float, amplitude: float, error_ratio: float) -> None:
    if not 0.0 <= rps <= MAX_BASE_RPS:
        raise ValueError(f"base_rps of {system} must be in 0..{MAX_BASE_RPS:g}, got {rps!r}.")
    if not 0.0 <= amplitude < 1.0:
        raise ValueError(f"daily_amplitude of {system} must be in [0, 1), got {amplitude!r}.")
    if not 0.0 <= error_ratio <= 1.0:
        raise ValueError(f"base_error_ratio of {system} must be in 0..1, got {error_ratio!r}.")


class Exposition(NamedTuple):
    """One simulated scrape: exposition text, or None while the system is down."""

    system: str
    timestamp: float
    text: str | None


class _SystemRun:
    """Simulation state of one system: schedule, traffic model, current process and truth.

    Blocks are drawn ahead of the clock, so the drawing state (`_drawn_*`) runs up to one
    block ahead of the applied state (`applied_tick`, `metrics`).
    """

    def __init__(self, system: str, index: int, config: SimulationConfig, start: float) -> None:
        self.system = system
        self.profile = PROFILES[system]
        self.amplitude = config.daily_amplitude[system]
        self.base_error_ratio = config.base_error_ratio[system]
        self.incidents = tuple(
            incident for incident in config.incidents if incident.system == system
        )
        self.outages = tuple(incident for incident in self.incidents if incident.kind == "outage")

        rng = np.random.default_rng([config.seed, index])
        self.traffic = TRAFFIC_MODELS[system](
            self.profile, rng, config.base_rps[system], self.base_error_ratio
        )
        self.truth = TruthRecorder(system, DEFAULT_BUCKETS, config.truth_retention)
        self.metrics = self._new_process(start)
        self.applied_tick = math.floor(start)

        self._block: Block | None = None
        self._next_first_tick = math.floor(start) + 1
        self._drawn_previous_time = start
        self._drawn_previous_up = not self.is_down(start)
        self._drawn_process_start = start
        self._server_error_series = np.array(
            [series[2].startswith("5") for series in metric_definitions(system)[0].series]
        )

    def _new_process(self, start_time: float) -> SystemMetrics:
        # The memory sawtooth starts at 0.85 times the profile's size at uptime 0.
        memory = 0.85 * self.profile.process.memory_bytes
        return SystemMetrics(self.system, process_start_time=start_time,
                             resident_memory_bytes=memory)

    def is_down(self, t: float) -> bool:
        """Return whether an outage window covers `t`."""
        return any(outage.is_active(t) for outage in self.outages)

    def advance(self, last_tick: int) -> None:
        """Apply every tick after `applied_tick` up to and including `last_tick`."""
        while self.applied_tick < last_tick:
            block = self._block_containing(self.applied_tick + 1)
            first = block.conditions.first_tick
            begin = self.applied_tick + 1 - first
            end = min(last_tick - first + 1, block.conditions.length)
            self._apply(block, begin, end)
            self.applied_tick = first + end - 1

    def _block_containing(self, tick: int) -> Block:
        block = self._block
        if block is None or tick >= block.conditions.first_tick + block.conditions.length:
            block = self._draw_block()
            self._block = block
        return block

    def _apply(self, block: Block, begin: int, end: int) -> None:
        cursor = begin
        for index, start_time in sorted(block.conditions.restart_times.items()):
            if not begin <= index < end:
                continue
            if index > cursor:
                self.metrics.apply(block.update(cursor, index))
            logger.info(
                "%s restarts after a simulated outage with process start time %.3f",
                self.system, start_time,
            )
            self.metrics = self._new_process(start_time)
            cursor = index
        self.metrics.apply(block.update(cursor, end))

    def _draw_block(self) -> Block:
        conditions = self._conditions(self._next_first_tick, BLOCK_TICKS)
        block = self.traffic.generate(conditions)
        self.truth.record(self._tick_totals(block))
        self._next_first_tick += BLOCK_TICKS
        return block

    def _conditions(self, first_tick: int, length: int) -> TickConditions:
        times = (first_tick + np.arange(length)).astype(np.float64)
        up = np.ones(length, dtype=np.bool_)
        error_ratio = np.full(length, self.base_error_ratio)
        slowdown = np.ones(length)
        for incident in self.incidents:
            active = incident.active_mask(times)
            if incident.kind == "outage":
                up &= ~active
            elif incident.kind == "error_burst":
                burst_ratio = np.maximum(error_ratio, incident.magnitude)
                error_ratio = np.where(active, burst_ratio, error_ratio)
            else:
                slowdown = np.where(active, np.maximum(slowdown, incident.magnitude), slowdown)

        restart_times, process_start = self._restarts(times, up)
        return TickConditions(
            first_tick=first_tick,
            times=times,
            up=up,
            load=self._daily_load(times),
            error_ratio=error_ratio,
            slowdown=slowdown,
            uptime=times - process_start,
            restart_times=restart_times,
        )

    def _daily_load(self, times: FloatArray) -> FloatArray:
        """Return the load factor: 1 + amplitude * cos, peaking at the profile's UTC hour."""
        hours = np.mod(times, SECONDS_PER_DAY) / 3600.0
        angle = 2.0 * np.pi * (hours - self.profile.peak_hour_utc) / 24.0
        return np.asarray(1.0 + self.amplitude * np.cos(angle), dtype=np.float64)

    def _restarts(self, times: FloatArray, up: BoolArray) -> tuple[dict[int, float], FloatArray]:
        """Find the ticks where the system comes back up and the process start of every tick."""
        previous_up = np.concatenate([[self._drawn_previous_up], up[:-1]])
        previous_time = np.concatenate([[self._drawn_previous_time], times[:-1]])
        process_start = np.full(len(times), self._drawn_process_start)
        restart_times: dict[int, float] = {}
        for index in np.flatnonzero(up & ~previous_up).tolist():
            restart_time = self._outage_end(float(previous_time[index]))
            restart_times[index] = restart_time
            process_start[index:] = restart_time

        self._drawn_previous_up = bool(up[-1])
        self._drawn_previous_time = float(times[-1])
        self._drawn_process_start = float(process_start[-1])
        return restart_times, process_start

    def _outage_end(self, down_time: float) -> float:
        """Return when the outage covering `down_time` ends, the latest end if windows overlap."""
        ends = [outage.window_end(down_time) for outage in self.outages]
        known = [end for end in ends if end is not None]
        return max(known) if known else down_time

    def _tick_totals(self, block: Block) -> TickTotals:
        requests = block.counters["http_requests_total"]
        bucket_counts, duration_ns = block.histograms["http_request_duration_seconds"]
        cost = block.counters[f"{self.traffic.prefix}ai_cost_usd_total"]
        return TickTotals(
            first_tick=block.conditions.first_tick,
            requests=requests.sum(axis=1).astype(np.int32),
            errors=requests[:, self._server_error_series].sum(axis=1).astype(np.int32),
            bucket_counts=bucket_counts.sum(axis=1).astype(np.int32),
            duration_ns=duration_ns.sum(axis=1),
            cost_nano_usd=cost.sum(axis=1),
            cpu_microseconds=block.counters["process_cpu_seconds_total"][:, 0].copy(),
        )


class PlatformSimulator:
    """Simulated metrics of the three systems, advanced by an external clock.

    Thread-safe: a clock thread may call `advance_to` while HTTP handlers read registries.

        simulator = PlatformSimulator(SimulationConfig(seed=7), start=1_700_000_000.0)
        simulator.advance_to(1_700_000_600.0)
        simulator.truth("relaycore", 1_700_000_000.0, 1_700_000_600.0).rps
    """

    def __init__(self, config: SimulationConfig, start: float) -> None:
        self.config = config
        self.start = float(start)
        self._now = self.start
        self._lock = threading.RLock()
        self._runs = {
            system: _SystemRun(system, index, config, self.start)
            for index, system in enumerate(SYSTEMS)
        }

    @property
    def systems(self) -> tuple[str, ...]:
        """System ids in their fixed order."""
        return SYSTEMS

    @property
    def now(self) -> float:
        """Latest time (epoch s) that `advance_to` reached."""
        return self._now

    def advance_to(self, t: float) -> None:
        """Apply every whole tick k with now < k <= t, in order. Earlier targets do nothing."""
        with self._lock:
            if t <= self._now:
                return
            last_tick = math.floor(t)
            for run in self._runs.values():
                run.advance(last_tick)
            self._now = float(t)

    def _run(self, system: str) -> _SystemRun:
        run = self._runs.get(system)
        if run is None:
            raise ValueError(f"Unknown system {system!r}. Expected one of {SYSTEMS}.")
        return run

    def metrics(self, system: str) -> SystemMetrics:
        """Return the metric state of the system's current process."""
        with self._lock:
            return self._run(system).metrics

    def registry(self, system: str) -> CollectorRegistry:
        """Return the registry of the system's current process, which changes on each restart."""
        return self.metrics(system).registry

    def is_down(self, system: str, t: float | None = None) -> bool:
        """Return whether `system` is in an outage at `t` (epoch s), by default at `now`."""
        return self._run(system).is_down(self._now if t is None else t)

    def memory_bytes(self, system: str) -> int:
        """Return the current simulated resident memory of the system's process, in bytes."""
        return int(self.metrics(system).value("process_resident_memory_bytes"))

    def exposition(self, system: str) -> str:
        """Return the system's current metrics in the Prometheus text format 0.0.4.

        The text equals what the exporter serves from `registry(system)`.
        """
        return self.metrics(system).render_text()

    def truth(self, system: str, start: float, end: float) -> Truth:
        """Return exact totals of `system` over the ticks k with start < k <= end.

        Raises ValueError when the window is empty, starts before the simulation, ends after
        `now`, or reaches back past `truth_retention`.
        """
        if not end > start:
            raise ValueError(
                f"The truth window must end after it starts, got ({start!r}, {end!r}]."
            )
        if start < self.start:
            raise ValueError(
                f"The truth window starts at {start!r}, before the simulation start {self.start!r}."
            )
        with self._lock:
            if end > self._now:
                raise ValueError(
                    f"The truth window ends at {end!r}, after the simulated time {self._now!r}. "
                    "Call advance_to first."
                )
            return self._run(system).truth.totals(start, end)

    def iter_expositions(
        self, start: float, end: float, interval: float
    ) -> Iterator[Exposition]:
        """Advance to start, start + interval, ... up to end and yield every system's scrape.

        This produces history without HTTP, for example a day of 15 s scrapes for a benchmark.
        Raises ValueError when `start` lies before `now` or `interval` is not positive.
        """
        if not interval > 0:
            raise ValueError(f"The scrape interval must be positive, got {interval!r} s.")
        if start < self._now:
            raise ValueError(
                f"Scrapes must start at or after the simulated time {self._now!r}, got {start!r}."
            )

        step = 0
        while (timestamp := start + step * interval) <= end:
            self.advance_to(timestamp)
            for system in SYSTEMS:
                text = None if self.is_down(system, timestamp) else self.exposition(system)
                yield Exposition(system, timestamp, text)
            step += 1
