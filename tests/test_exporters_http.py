"""End-to-end tests of the simulated platform's exporters over real HTTP on 127.0.0.1."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporters.catalog import DEFAULT_PORTS, SYSTEMS
from exporters.server import SimulatedPlatform, resolve_ports
from exporters.simulator import Incident, SimulationConfig

# 2023-11-15 00:00:00 UTC.
MIDNIGHT = 1_700_006_400.0

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

# The metric contract: name -> (type, label names), as the dashboards query them.
CONTRACT: dict[str, dict[str, tuple[str, set[str]]]] = {
    "automatrix": {
        "autmatrix_workflow_executions": ("counter", {"status", "template"}),
        "autmatrix_workflow_duration_seconds": ("histogram", set()),
        "autmatrix_active_workflows": ("gauge", set()),
        "autmatrix_ai_requests": ("counter", {"provider", "model"}),
        "autmatrix_ai_cost_usd": ("counter", {"provider", "model"}),
    },
    "relaycore": {
        "relaycore_ai_requests": ("counter", {"provider", "model", "status"}),
        "relaycore_routing_latency_seconds": ("histogram", {"provider"}),
        "relaycore_ai_cost_usd": ("counter", {"provider", "model"}),
    },
    "neuroweaver": {
        "neuroweaver_model_inferences": ("counter", {"model_id", "specialization"}),
        "neuroweaver_training_jobs_active": ("gauge", set()),
        "neuroweaver_ai_cost_usd": ("counter", {"provider", "model"}),
    },
}
SHARED_CONTRACT: dict[str, tuple[str, set[str]]] = {
    "http_requests": ("counter", {"method", "route", "code"}),
    "http_request_duration_seconds": ("histogram", {"method", "route"}),
    "http_requests_in_flight": ("gauge", set()),
    "process_cpu_seconds": ("counter", set()),
    "process_resident_memory_bytes": ("gauge", set()),
    "process_start_time_seconds": ("gauge", set()),
}


class ManualClock:
    """A clock that only moves when the test sets `now`."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def total(
    samples: Samples, name: str, keep: Callable[[dict[str, str]], bool] = lambda labels: True
) -> float:
    return sum(
        value
        for (sample_name, labels), value in samples.items()
        if sample_name == name and keep(dict(labels))
    )


def scrape(platform: SimulatedPlatform, system: str) -> httpx.Response:
    return httpx.get(platform.urls[system], timeout=5)


@pytest.fixture
def platform_factory() -> Iterator[Callable[..., SimulatedPlatform]]:
    started: list[SimulatedPlatform] = []

    def start(
        config: SimulationConfig, clock: ManualClock, tokens: dict[str, str] | None = None
    ) -> SimulatedPlatform:
        platform = SimulatedPlatform(
            config, "127.0.0.1", [0, 0, 0], tokens=tokens, clock=clock, tick_seconds=0.05
        )
        platform.start()
        started.append(platform)
        return platform

    yield start
    for platform in started:
        platform.stop()


def test_same_seed_same_bodies_over_http(
    platform_factory: Callable[..., SimulatedPlatform],
) -> None:
    clock = ManualClock(MIDNIGHT + 0.5)
    first = platform_factory(SimulationConfig(seed=21), clock)
    second = platform_factory(SimulationConfig(seed=21), clock)
    other_seed = platform_factory(SimulationConfig(seed=22), clock)
    clock.now = MIDNIGHT + 420.75
    for platform in (first, second, other_seed):
        platform.simulator.advance_to(clock.now)

    for system in SYSTEMS:
        body = scrape(first, system).text
        assert body == scrape(second, system).text
        assert body != scrape(other_seed, system).text


def test_truth_equals_http_counter_increases(
    platform_factory: Callable[..., SimulatedPlatform],
) -> None:
    clock = ManualClock(MIDNIGHT)
    burst = Incident("error_burst", "relaycore", MIDNIGHT + 100, 120, 0.2)
    platform = platform_factory(SimulationConfig(seed=5, incidents=(burst,)), clock)
    begin, end = MIDNIGHT + 12.5, MIDNIGHT + 612.5

    platform.simulator.advance_to(begin)
    before = {system: parse(scrape(platform, system).text) for system in SYSTEMS}
    platform.simulator.advance_to(end)
    after = {system: parse(scrape(platform, system).text) for system in SYSTEMS}

    for system in SYSTEMS:
        truth = platform.simulator.truth(system, begin, end)

        def increase(
            name: str, keep: Callable[[dict[str, str]], bool] = lambda labels: True
        ) -> float:
            return total(after[system], name, keep) - total(before[system], name, keep)

        cost_name = "autmatrix_ai_cost_usd_total" if system == "automatrix" else (
            f"{system}_ai_cost_usd_total"
        )
        assert increase("http_requests_total") == truth.requests, system
        errors = increase("http_requests_total", lambda labels: labels["code"].startswith("5"))
        assert errors == truth.errors, system
        assert increase("http_request_duration_seconds_count") == truth.duration_count, system
        duration_sum = increase("http_request_duration_seconds_sum")
        assert duration_sum == pytest.approx(truth.duration_sum), system
        assert increase(cost_name) == pytest.approx(truth.cost_usd), system
        assert increase("process_cpu_seconds_total") == pytest.approx(truth.cpu_seconds), system
        slow_requests = increase(
            "http_request_duration_seconds_bucket", lambda labels: labels["le"] == "+Inf"
        ) - increase("http_request_duration_seconds_bucket", lambda labels: labels["le"] == "1.0")
        truth_buckets = dict(truth.buckets)
        assert slow_requests == truth_buckets[float("inf")] - truth_buckets[1.0], system


def test_outage_gives_503_then_counter_reset(
    platform_factory: Callable[..., SimulatedPlatform],
) -> None:
    clock = ManualClock(MIDNIGHT)
    outage = Incident("outage", "neuroweaver", MIDNIGHT + 200, 45)
    platform = platform_factory(SimulationConfig(seed=6, incidents=(outage,)), clock)
    simulator = platform.simulator

    simulator.advance_to(MIDNIGHT + 50)
    first = parse(scrape(platform, "neuroweaver").text)
    simulator.advance_to(MIDNIGHT + 199.9)
    last_before = parse(scrape(platform, "neuroweaver").text)
    simulator.advance_to(MIDNIGHT + 220)
    during = scrape(platform, "neuroweaver")
    relaycore_during = scrape(platform, "relaycore")
    simulator.advance_to(MIDNIGHT + 300)
    restarted = parse(scrape(platform, "neuroweaver").text)

    assert during.status_code == 503
    assert relaycore_during.status_code == 200
    assert restarted[("process_start_time_seconds", ())] == MIDNIGHT + 245
    assert first[("process_start_time_seconds", ())] == MIDNIGHT
    assert total(restarted, "http_requests_total") < total(last_before, "http_requests_total")
    truth = simulator.truth("neuroweaver", MIDNIGHT + 50, MIDNIGHT + 300)
    before_reset = total(last_before, "http_requests_total") - total(first, "http_requests_total")
    assert truth.requests == before_reset + total(restarted, "http_requests_total")


@pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool is not installed (Debian package prometheus provides /usr/bin/promtool)",
)
def test_promtool_accepts_every_exporter(
    platform_factory: Callable[..., SimulatedPlatform],
) -> None:
    clock = ManualClock(MIDNIGHT)
    platform = platform_factory(SimulationConfig(seed=7), clock)
    platform.simulator.advance_to(MIDNIGHT + 3600)

    for system in SYSTEMS:
        body = scrape(platform, system).content
        result = subprocess.run(
            ["promtool", "check", "metrics"], input=body, capture_output=True, timeout=30
        )
        assert result.returncode == 0, (system, result.stdout, result.stderr)
        assert result.stdout == b"", system


@pytest.mark.parametrize("system", SYSTEMS)
def test_metric_contract_names_and_labels(
    platform_factory: Callable[..., SimulatedPlatform], system: str
) -> None:
    clock = ManualClock(MIDNIGHT)
    platform = platform_factory(SimulationConfig(seed=8), clock)
    platform.simulator.advance_to(MIDNIGHT + 60)
    body = scrape(platform, system).text
    families = {family.name: family for family in text_string_to_metric_families(body)}

    for name, (kind, labels) in {**SHARED_CONTRACT, **CONTRACT[system]}.items():
        assert name in families, name
        family = families[name]
        assert family.type == kind, name
        sample_labels = set(family.samples[0].labels) - {"le"}
        assert sample_labels == labels, name


def test_clock_thread_advances_simulator(
    platform_factory: Callable[..., SimulatedPlatform],
) -> None:
    clock = ManualClock(MIDNIGHT)
    platform = platform_factory(SimulationConfig(seed=9), clock)
    clock.now = MIDNIGHT + 30

    deadline = time.monotonic() + 5
    while platform.simulator.now < clock.now and time.monotonic() < deadline:
        time.sleep(0.02)

    assert platform.simulator.now == MIDNIGHT + 30
    samples = parse(scrape(platform, "relaycore").text)
    assert total(samples, "http_requests_total") > 0


def test_platform_token_per_system(platform_factory: Callable[..., SimulatedPlatform]) -> None:
    clock = ManualClock(MIDNIGHT)
    platform = platform_factory(SimulationConfig(), clock, tokens={"relaycore": "relay-token"})

    assert scrape(platform, "relaycore").status_code == 401
    authorized = httpx.get(
        platform.urls["relaycore"], headers={"Authorization": "Bearer relay-token"}
    )
    assert authorized.status_code == 200
    assert scrape(platform, "automatrix").status_code == 200


def test_platform_urls_point_at_metrics(platform_factory: Callable[..., SimulatedPlatform]) -> None:
    platform = platform_factory(SimulationConfig(), ManualClock(MIDNIGHT))

    for system, url in platform.urls.items():
        assert url.startswith("http://127.0.0.1:")
        assert url.endswith("/metrics")
        assert url == f"{platform.servers[system].url}/metrics"


def test_resolve_ports_forms() -> None:
    assert resolve_ports(None) == DEFAULT_PORTS
    assert resolve_ports([1, 2, 3]) == {"automatrix": 1, "relaycore": 2, "neuroweaver": 3}
    assert resolve_ports({"automatrix": 1, "relaycore": 2, "neuroweaver": 3})["relaycore"] == 2
    with pytest.raises(ValueError, match="Expected 3 ports"):
        resolve_ports([1, 2])
    with pytest.raises(ValueError, match="missing"):
        resolve_ports({"automatrix": 1})
