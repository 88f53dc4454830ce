"""Tests of the platform simulator without HTTP: determinism, truth, load pattern, incidents."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporters.catalog import GIB, MIB, SYSTEMS
from exporters.simulator import (
    BLOCK_TICKS,
    Incident,
    PlatformSimulator,
    SimulationConfig,
    demo_incidents,
)
from exporters.truth import histogram_quantile

# 2023-11-15 00:00:00 UTC, so hours of the day are easy to place.
MIDNIGHT = 1_700_006_400.0
HOUR = 3600.0

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Map (sample name, sorted labels) to value for every sample of an exposition."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def total(
    samples: Samples, name: str, keep: Callable[[dict[str, str]], bool] = lambda labels: True
) -> float:
    """Sum the samples called `name` whose labels pass `keep`."""
    return sum(
        value
        for (sample_name, labels), value in samples.items()
        if sample_name == name and keep(dict(labels))
    )


def is_server_error(labels: dict[str, str]) -> bool:
    return labels["code"].startswith("5")


def has_le(le: str) -> Callable[[dict[str, str]], bool]:
    return lambda labels: labels["le"] == le


def test_same_seed_same_text_for_any_step_pattern() -> None:
    config = SimulationConfig(seed=11, incidents=demo_incidents())
    stepped = PlatformSimulator(config, MIDNIGHT + 0.25)
    jumped = PlatformSimulator(config, MIDNIGHT + 0.25)

    for second in range(1, 701):
        stepped.advance_to(MIDNIGHT + 0.25 + second)
    jumped.advance_to(MIDNIGHT + 300.0)
    jumped.advance_to(MIDNIGHT + 700.25)

    for system in SYSTEMS:
        assert stepped.exposition(system) == jumped.exposition(system)


def test_different_seeds_differ() -> None:
    first = PlatformSimulator(SimulationConfig(seed=1), MIDNIGHT)
    second = PlatformSimulator(SimulationConfig(seed=2), MIDNIGHT)
    first.advance_to(MIDNIGHT + 60)
    second.advance_to(MIDNIGHT + 60)

    for system in SYSTEMS:
        assert first.exposition(system) != second.exposition(system)


def test_exposition_equals_generate_latest() -> None:
    simulator = PlatformSimulator(SimulationConfig(seed=5), MIDNIGHT)
    simulator.advance_to(MIDNIGHT + 400)

    for system in SYSTEMS:
        served = generate_latest(simulator.registry(system)).decode()
        assert simulator.exposition(system) == served


@pytest.mark.parametrize("system", SYSTEMS)
def test_truth_equals_counter_increases(system: str) -> None:
    config = SimulationConfig(
        seed=3,
        incidents=(Incident("error_burst", system, MIDNIGHT + 200, 120, 0.2),),
    )
    simulator = PlatformSimulator(config, MIDNIGHT)
    begin, end = MIDNIGHT + 37.5, MIDNIGHT + 937.25
    simulator.advance_to(begin)
    before = parse(simulator.exposition(system))
    simulator.advance_to(end)
    after = parse(simulator.exposition(system))
    truth = simulator.truth(system, begin, end)
    prefix = {"automatrix": "autmatrix_"}.get(system, f"{system}_")

    def increase(name: str, keep: Callable[[dict[str, str]], bool] = lambda labels: True) -> float:
        return total(after, name, keep) - total(before, name, keep)

    assert truth.requests > 0
    assert increase("http_requests_total") == truth.requests
    assert increase("http_requests_total", is_server_error) == truth.errors
    assert increase("http_request_duration_seconds_count") == truth.duration_count
    assert increase("http_request_duration_seconds_sum") == pytest.approx(truth.duration_sum)
    assert increase(f"{prefix}ai_cost_usd_total") == pytest.approx(truth.cost_usd)
    assert increase("process_cpu_seconds_total") == pytest.approx(truth.cpu_seconds)
    for bound, count in truth.buckets:
        label = "+Inf" if math.isinf(bound) else str(bound)
        in_bucket = increase("http_request_duration_seconds_bucket", has_le(label))
        assert in_bucket == count, f"bucket le={label}"


def test_outage_restarts_with_fresh_counters() -> None:
    outage_start, outage_end = MIDNIGHT + 300, MIDNIGHT + 360.5
    config = SimulationConfig(
        seed=4, incidents=(Incident("outage", "neuroweaver", outage_start, 60.5),)
    )
    simulator = PlatformSimulator(config, MIDNIGHT)
    simulator.advance_to(MIDNIGHT + 100.5)
    first = parse(simulator.exposition("neuroweaver"))
    simulator.advance_to(MIDNIGHT + 299.5)
    last_before_outage = parse(simulator.exposition("neuroweaver"))
    old_registry = simulator.registry("neuroweaver")

    simulator.advance_to(MIDNIGHT + 330)
    assert simulator.is_down("neuroweaver")
    assert not simulator.is_down("relaycore")

    simulator.advance_to(MIDNIGHT + 500)
    assert not simulator.is_down("neuroweaver")
    assert simulator.registry("neuroweaver") is not old_registry
    restarted = parse(simulator.exposition("neuroweaver"))
    assert restarted[("process_start_time_seconds", ())] == outage_end
    assert first[("process_start_time_seconds", ())] == MIDNIGHT
    restarted_requests = total(restarted, "http_requests_total")
    assert restarted_requests < total(last_before_outage, "http_requests_total")

    truth = simulator.truth("neuroweaver", MIDNIGHT + 100.5, MIDNIGHT + 500)
    before_reset = total(last_before_outage, "http_requests_total") - total(
        first, "http_requests_total"
    )
    assert truth.requests == before_reset + total(restarted, "http_requests_total")
    assert simulator.truth("neuroweaver", outage_start, outage_start + 60).requests == 0


def test_memory_set_from_first_instant() -> None:
    config = SimulationConfig(
        seed=4, incidents=(Incident("outage", "neuroweaver", MIDNIGHT + 300, 60.5),)
    )
    simulator = PlatformSimulator(config, MIDNIGHT)
    for system in SYSTEMS:
        assert simulator.memory_bytes(system) > 100 * MIB
    # The tick the process restarts in already has the new process's memory.
    simulator.advance_to(MIDNIGHT + 361)
    assert simulator.memory_bytes("neuroweaver") > GIB


def test_outage_truth_has_no_traffic() -> None:
    config = SimulationConfig(
        seed=4, incidents=(Incident("outage", "automatrix", MIDNIGHT + 10, 100),)
    )
    simulator = PlatformSimulator(config, MIDNIGHT)
    simulator.advance_to(MIDNIGHT + 200)

    truth = simulator.truth("automatrix", MIDNIGHT + 20, MIDNIGHT + 100)
    assert truth.requests == 0
    assert truth.error_rate == 0.0
    assert math.isnan(truth.avg_latency_ms)
    assert math.isnan(truth.p95_latency_ms)
    assert truth.cpu_cores == 0.0


def test_outage_ends_running_training_jobs() -> None:
    config = SimulationConfig(
        seed=8,
        base_rps={"neuroweaver": 400.0},
        incidents=(Incident("outage", "neuroweaver", MIDNIGHT + 1200, 30),),
    )
    simulator = PlatformSimulator(config, MIDNIGHT)
    simulator.advance_to(MIDNIGHT + 1199)
    busy = simulator.metrics("neuroweaver").value("neuroweaver_training_jobs_active")
    simulator.advance_to(MIDNIGHT + 1231)
    after_restart = simulator.metrics("neuroweaver").value("neuroweaver_training_jobs_active")

    assert busy > 5
    assert after_restart <= 2


def test_start_inside_outage_is_down() -> None:
    config = SimulationConfig(incidents=(Incident("outage", "relaycore", MIDNIGHT - 5, 20.5),))
    simulator = PlatformSimulator(config, MIDNIGHT)

    assert simulator.is_down("relaycore")
    simulator.advance_to(MIDNIGHT + 30)
    assert not simulator.is_down("relaycore")
    start_time = simulator.metrics("relaycore").value("process_start_time_seconds")
    assert start_time == MIDNIGHT + 15.5


def test_daily_pattern_changes_rps_and_cpu() -> None:
    # RelayCore peaks at 16:00 UTC, so 04:00 UTC is its quietest hour.
    quiet = PlatformSimulator(SimulationConfig(seed=9), MIDNIGHT + 4 * HOUR)
    busy = PlatformSimulator(SimulationConfig(seed=9), MIDNIGHT + 16 * HOUR)
    quiet.advance_to(MIDNIGHT + 4 * HOUR + 600)
    busy.advance_to(MIDNIGHT + 16 * HOUR + 600)

    quiet_truth = quiet.truth("relaycore", MIDNIGHT + 4 * HOUR, MIDNIGHT + 4 * HOUR + 600)
    busy_truth = busy.truth("relaycore", MIDNIGHT + 16 * HOUR, MIDNIGHT + 16 * HOUR + 600)
    assert busy_truth.rps > 2.5 * quiet_truth.rps
    assert busy_truth.cpu_cores > quiet_truth.cpu_cores
    assert busy_truth.cost_per_hour > 2 * quiet_truth.cost_per_hour


def test_error_burst_raises_error_rate() -> None:
    burst = Incident("error_burst", "relaycore", MIDNIGHT + 600, 300, 0.3)
    simulator = PlatformSimulator(SimulationConfig(seed=2, incidents=(burst,)), MIDNIGHT)
    simulator.advance_to(MIDNIGHT + 900)

    calm = simulator.truth("relaycore", MIDNIGHT, MIDNIGHT + 600)
    during = simulator.truth("relaycore", MIDNIGHT + 600, MIDNIGHT + 900)
    assert calm.error_rate < 0.02
    assert during.error_rate == pytest.approx(0.3, abs=0.03)


def test_slow_period_raises_latency() -> None:
    slow = Incident("slow", "automatrix", MIDNIGHT + 600, 300, 4.0)
    simulator = PlatformSimulator(SimulationConfig(seed=2, incidents=(slow,)), MIDNIGHT)
    simulator.advance_to(MIDNIGHT + 900)

    calm = simulator.truth("automatrix", MIDNIGHT, MIDNIGHT + 600)
    during = simulator.truth("automatrix", MIDNIGHT + 600, MIDNIGHT + 900)
    assert during.avg_latency_ms > 3 * calm.avg_latency_ms
    assert during.p95_latency_ms > 3 * calm.p95_latency_ms
    assert during.error_rate < 0.02


def test_process_metrics_per_system() -> None:
    simulator = PlatformSimulator(SimulationConfig(seed=6), MIDNIGHT)
    simulator.advance_to(MIDNIGHT + 3 * HOUR)
    expected_memory = {"automatrix": 300 * MIB, "relaycore": 1.1 * GIB, "neuroweaver": 3 * GIB}

    for system, memory in expected_memory.items():
        assert 0.8 * memory < simulator.memory_bytes(system) < 1.25 * memory, system
        assert simulator.memory_bytes(system) % 4096 == 0
    cores = {
        system: simulator.truth(system, MIDNIGHT, MIDNIGHT + 3 * HOUR).cpu_cores
        for system in SYSTEMS
    }
    assert cores["neuroweaver"] > cores["relaycore"] > 0.2


def test_truth_retention_is_bounded() -> None:
    simulator = PlatformSimulator(SimulationConfig(truth_retention=600), MIDNIGHT)
    simulator.advance_to(MIDNIGHT + 3000)

    assert simulator.truth("relaycore", MIDNIGHT + 2400, MIDNIGHT + 3000).requests > 0
    with pytest.raises(ValueError, match="not recorded"):
        simulator.truth("relaycore", MIDNIGHT, MIDNIGHT + 3000)
    recorder = simulator._runs["relaycore"].truth
    assert recorder.block_count <= 600 // BLOCK_TICKS + 2


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (MIDNIGHT + 10, MIDNIGHT + 10, "must end after"),
        (MIDNIGHT - 10, MIDNIGHT + 10, "before the simulation start"),
        (MIDNIGHT + 10, MIDNIGHT + 500, "Call advance_to first"),
    ],
)
def test_truth_rejects_bad_windows(start: float, end: float, message: str) -> None:
    simulator = PlatformSimulator(SimulationConfig(), MIDNIGHT)
    simulator.advance_to(MIDNIGHT + 100)

    with pytest.raises(ValueError, match=message):
        simulator.truth("automatrix", start, end)


def test_iter_expositions_marks_outage() -> None:
    outage = Incident("outage", "neuroweaver", MIDNIGHT + 30, 30)
    simulator = PlatformSimulator(SimulationConfig(incidents=(outage,)), MIDNIGHT)

    scrapes = list(simulator.iter_expositions(MIDNIGHT, MIDNIGHT + 90, 15))

    assert [scrape.timestamp for scrape in scrapes[::3]] == [MIDNIGHT + 15 * i for i in range(7)]
    assert [scrape.system for scrape in scrapes[:3]] == list(SYSTEMS)
    down = [scrape.timestamp for scrape in scrapes if scrape.text is None]
    assert down == [MIDNIGHT + 30, MIDNIGHT + 45]
    assert all(scrape.text for scrape in scrapes if scrape.system != "neuroweaver")


def test_iter_expositions_rejects_past_start() -> None:
    simulator = PlatformSimulator(SimulationConfig(), MIDNIGHT)
    simulator.advance_to(MIDNIGHT + 100)

    with pytest.raises(ValueError, match="at or after"):
        next(simulator.iter_expositions(MIDNIGHT, MIDNIGHT + 200, 15))
    with pytest.raises(ValueError, match="interval must be positive"):
        next(simulator.iter_expositions(MIDNIGHT + 100, MIDNIGHT + 200, 0))


def test_repeating_incident_windows() -> None:
    incident = Incident("slow", "automatrix", 1200.0, 240.0, 2.0, repeat_every=3600.0)

    assert incident.is_active(MIDNIGHT + 1200)
    assert incident.is_active(MIDNIGHT + 5 * HOUR + 1439)
    assert not incident.is_active(MIDNIGHT + 5 * HOUR + 1440)
    assert not incident.is_active(1000.0)
    assert incident.window_end(MIDNIGHT + 1300) == MIDNIGHT + 1440
    assert incident.window_end(MIDNIGHT + 100) is None


def test_demo_schedule_has_each_kind() -> None:
    kinds = {(incident.system, incident.kind) for incident in demo_incidents()}

    assert ("relaycore", "error_burst") in kinds
    assert ("neuroweaver", "outage") in kinds
    assert ("automatrix", "slow") in kinds


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: SimulationConfig(seed=-1), "non-negative"),
        (lambda: SimulationConfig(base_rps={"autmatrix": 5.0}), "unknown systems"),
        (lambda: SimulationConfig(daily_amplitude={"relaycore": 1.0}), "daily_amplitude"),
        (lambda: SimulationConfig(base_error_ratio={"relaycore": 1.5}), "base_error_ratio"),
        (lambda: Incident("crash", "relaycore", 0, 10), "Invalid incident kind"),  # type: ignore[arg-type]
        (lambda: Incident("outage", "nope", 0, 10), "Unknown system"),
        (lambda: Incident("outage", "relaycore", 0, 0), "duration must be positive"),
        (lambda: Incident("slow", "relaycore", 0, 10, 0.5), "latency factor"),
        (lambda: Incident("error_burst", "relaycore", 0, 10, 2.0), "5xx ratio"),
        (lambda: Incident("outage", "relaycore", 0, 10, repeat_every=5), "longer than"),
    ],
)
def test_config_rejects_invalid_values(build: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_config_fills_defaults_per_system() -> None:
    config = SimulationConfig(base_rps={"relaycore": 5.0})

    assert config.base_rps["relaycore"] == 5.0
    assert set(config.base_rps) == set(SYSTEMS)
    assert set(config.daily_amplitude) == set(SYSTEMS)


@pytest.mark.parametrize(
    ("quantile", "buckets", "expected"),
    [
        (0.5, [(0.1, 10), (0.5, 60), (1.0, 100), (math.inf, 100)], 0.42),
        (0.05, [(0.1, 10), (0.5, 60), (1.0, 100), (math.inf, 100)], 0.05),
        (0.9, [(0.1, 10), (math.inf, 20)], 0.1),
        (1.0, [(0.1, 10), (0.5, 10), (math.inf, 10)], 0.1),
    ],
)
def test_histogram_quantile_cases(
    quantile: float, buckets: list[tuple[float, float]], expected: float
) -> None:
    assert histogram_quantile(quantile, buckets) == pytest.approx(expected)


def test_histogram_quantile_empty_is_nan() -> None:
    assert math.isnan(histogram_quantile(0.95, [(0.1, 0), (math.inf, 0)]))
    with pytest.raises(ValueError, match="Inf"):
        histogram_quantile(0.5, [(0.1, 1), (0.2, 2)])
