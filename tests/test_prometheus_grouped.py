"""One query per signal for all systems: the request count, the split back into systems, and
failures that stay with the systems of the failing query.

A real Prometheus and VictoriaMetrics hold half an hour of synthetic scrapes whose counters grow
at known rates, so every system's values are known exactly. The systems differ in what a shared
query must keep apart: the cost counter's prefix, an extra matcher, a job name with regex
characters, and a job that another system shares.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import pytest

from app_pages.cross_system import CHART_SIGNALS
from lib.cache import CACHE_DIR, ResultCache, SharedCall
from lib.config import Settings, SourceSettings, StorageSettings, TargetConfig
from lib.errors import QueryError
from lib.http import make_client
from lib.monitor import Monitor, current_values
from lib.promql import SystemQueries, grouped, job_matcher, regex_escape
from lib.signals import GOLDEN_SIGNALS, MetricNames
from lib.sources.base import FreshnessState
from lib.sources.prometheus import PrometheusSource
from lib.timerange import TimeRange
from tests.support import servers
from tests.support.staging_proxy import Stage, StagingProxy

SCRAPE = 15.0
END = 1_700_002_800.0
START = END - 1800
RANGE = TimeRange.between(START + 600, END, SCRAPE)

# Scraped instance -> (job, requests per second). `betadev` is a second instance of job `beta`
# that the beta system's extra matcher leaves out; `axbbc` is the job an unescaped `a.b+c` would
# select.
INSTANCES = {
    "alpha": ("alpha", 1.0),
    "beta": ("beta", 2.0),
    "betadev": ("beta", 50.0),
    "dotted": ("a.b+c", 3.0),
    "decoy": ("axbbc", 100.0),
}
ALPHA = TargetConfig("alpha", "Alpha", "", "#000000", "alpha_")
BETA = TargetConfig("beta", "Beta", "", "#000000", "beta_")
DOTTED = TargetConfig("dotted", "Dotted", "", "#000000", "alpha_", job="a.b+c")
# Shares job `alpha` with ALPHA, so its series cannot share ALPHA's query.
SHADOW = TargetConfig("shadow", "Shadow", "", "#000000", "alpha_", job="alpha")
THREE = (ALPHA, BETA, DOTTED)
BETA_MATCHER = 'instance="beta.test:80"'

# What each system must read: its own requests per second, and the cost counter under its own
# prefix (every instance exposes both prefixes' counters at different rates).
EXPECTED = {
    "alpha": {"requests_per_second": 1.0, "cost_per_hour": 36.0},
    "beta": {"requests_per_second": 2.0, "cost_per_hour": 720.0},
    "dotted": {"requests_per_second": 3.0, "cost_per_hour": 108.0},
    "shadow": {"requests_per_second": 1.0, "cost_per_hour": 36.0},
}


def exposition(rate: float, elapsed: float) -> str:
    """Return one scrape of an instance serving `rate` requests/s for `elapsed` seconds."""
    total = rate * elapsed
    return "\n".join([
        f'http_requests_total{{code="200"}} {0.9 * total!r}',
        f'http_requests_total{{code="500"}} {0.1 * total!r}',
        f'http_request_duration_seconds_bucket{{le="0.1"}} {0.5 * total!r}',
        f'http_request_duration_seconds_bucket{{le="1"}} {total!r}',
        f'http_request_duration_seconds_bucket{{le="+Inf"}} {total!r}',
        f"http_request_duration_seconds_sum {0.2 * total!r}",
        f"http_request_duration_seconds_count {total!r}",
        f"http_requests_in_flight {rate!r}",
        f"process_cpu_seconds_total {0.01 * total!r}",
        f"process_resident_memory_bytes {1e6 * rate!r}",
        f"process_start_time_seconds {START - 1000!r}",
        f"alpha_ai_cost_usd_total {total / 100!r}",
        f"beta_ai_cost_usd_total {total / 10!r}",
    ]) + "\n"


def scrapes() -> list[tuple[str, float, str | None]]:
    return [
        (instance, START + SCRAPE * index, exposition(rate, 1000 + SCRAPE * index))
        for index in range(int((END - START) / SCRAPE) + 1)
        for instance, (_, rate) in INSTANCES.items()
    ]


@dataclass
class Servers:
    prometheus: servers.ServerProcess
    victoria: servers.ServerProcess

    def url(self, backend: str) -> str:
        return self.prometheus.url if backend == "prometheus" else self.victoria.url


@pytest.fixture(scope="module")
def backends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    root = tmp_path_factory.mktemp("grouped")
    jobs = {instance: job for instance, (job, _) in INSTANCES.items()}
    prometheus = servers.prometheus(root / "prometheus")
    servers.backfill(root / "prometheus", servers.history_text(scrapes(), jobs, openmetrics=True))
    victoria = servers.victoria_metrics(root / "victoria-metrics")
    prometheus.start()
    try:
        victoria.start()
        servers.import_into_victoria_metrics(
            victoria, servers.history_text(scrapes(), jobs, openmetrics=False)
        )
        yield Servers(prometheus, victoria)
    finally:
        victoria.stop()
        prometheus.stop()


@pytest.fixture
def proxy(backends: Servers) -> Iterator[StagingProxy]:
    staging = StagingProxy(backends.prometheus.url)
    yield staging
    staging.stop()


def source_for(url: str, targets: tuple[TargetConfig, ...] = THREE) -> PrometheusSource:
    """Return a source whose beta system reads only its own instance of job `beta`."""
    source = PrometheusSource(SourceSettings("prometheus", url, timeout=5.0), targets,
                              make_client(), SCRAPE)
    source.queries["beta"] = replace(source.queries["beta"], extra_matchers=BETA_MATCHER)
    return source


def values_of(frame: pd.DataFrame, signal: str) -> pd.Series:
    return frame[frame["signal"] == signal]["value"].reset_index(drop=True)


# -- the expressions ---------------------------------------------------------------------------


@pytest.mark.parametrize("job", ["a.b+c", "x|y", "(a)[b]{2}", "^a$", "a\\b", "a*?", 'q"t'])
def test_regex_escape_matches_only_itself(job: str) -> None:
    pattern = regex_escape(job)
    assert re.fullmatch(pattern, job)
    assert not re.fullmatch(pattern, job.replace(job[0], "z", 1) + "z")


def test_job_matcher_forms() -> None:
    assert job_matcher(["a"]) == 'job="a"'
    assert job_matcher(["a.b+c", "x"]) == 'job=~"a\\\\.b\\\\+c|x"'


def test_grouped_arms_and_shared_jobs() -> None:
    queries = {
        "alpha": SystemQueries("alpha", MetricNames.for_prefix("alpha_")),
        "dotted": SystemQueries("a.b+c", MetricNames.for_prefix("alpha_")),
        "beta": SystemQueries("beta", MetricNames.for_prefix("beta_"), BETA_MATCHER),
        "shadow": SystemQueries("alpha", MetricNames.for_prefix("alpha_")),
    }
    cost = grouped(queries, lambda q: q.signal("cost_per_hour", 60, 15))
    assert [query.systems for query in cost] == [("alpha", "dotted", "beta"), ("shadow",)]
    assert [len(query.arms) for query in cost] == [2, 1]
    memory = grouped(queries, lambda q: q.signal("memory_usage", 60, 15))
    # beta's extra matcher keeps it out of the others' selector even for a shared metric name.
    assert [len(query.arms) for query in memory] == [2, 1]
    assert cost[0].system_of("a.b+c") == "dotted"
    assert cost[0].system_of("axbbc") is None


def test_shared_call_runs_once_for_every_thread() -> None:
    calls = []

    def slow() -> int:
        calls.append(1)
        time.sleep(0.2)
        return 42

    shared = SharedCall(slow)
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(shared())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == [1]
    assert results == [42] * 8


def test_shared_call_raises_its_error_to_every_caller() -> None:
    calls = []

    def failing() -> int:
        calls.append(1)
        raise ValueError("no")

    shared = SharedCall(failing)
    for _ in range(2):
        with pytest.raises(ValueError, match="no"):
            shared()
    assert calls == [1]


# -- against the servers -----------------------------------------------------------------------


@pytest.mark.prometheus
@pytest.mark.parametrize("backend", ["prometheus", "victoria"])
def test_each_system_gets_exactly_its_own_values(backends: Servers, backend: str) -> None:
    source = source_for(backends.url(backend))
    systems = [t.system for t in THREE]
    together = source.signals_by_system(systems, RANGE, GOLDEN_SIGNALS)
    for system in systems:
        frame = together[system]
        assert isinstance(frame, pd.DataFrame), frame
        for signal, expected in EXPECTED[system].items():
            assert values_of(frame, signal).to_list() == pytest.approx(
                [expected] * len(RANGE.points()), rel=1e-6), (system, signal)
        assert values_of(frame, "error_rate").to_list() == pytest.approx(
            [0.1] * len(RANGE.points()), rel=1e-6)
        # Every signal equals what the system's own query returns.
        alone = source.signals_by_system([system], RANGE, GOLDEN_SIGNALS)[system]
        assert isinstance(alone, pd.DataFrame)
        pd.testing.assert_frame_equal(frame, alone, check_exact=False, rtol=1e-9)


@pytest.mark.prometheus
@pytest.mark.parametrize("backend", ["prometheus", "victoria"])
def test_snapshots_split_by_system(backends: Servers, backend: str) -> None:
    source = source_for(backends.url(backend))
    systems = [t.system for t in THREE]
    snapshots = source.snapshots(systems, RANGE, END)
    for system in systems:
        snapshot = snapshots[system]
        assert not isinstance(snapshot, QueryError), snapshot
        rate = EXPECTED[system]["requests_per_second"]
        for signal, expected in EXPECTED[system].items():
            assert snapshot.values[signal] == pytest.approx(expected, rel=1e-6), (system, signal)
        assert snapshot.values["memory_usage"] == pytest.approx(1e6 * rate)
        assert snapshot.values["active_connections"] == pytest.approx(rate)
        assert snapshot.availability == pytest.approx(1.0)
        assert snapshot.process_start_time == pytest.approx(START - 1000)
        assert snapshot.last_scrape_at == pytest.approx(END)
        assert snapshot == source.snapshot(system, RANGE, END)


@pytest.mark.prometheus
def test_refresh_sends_one_query_per_signal(proxy: StagingProxy, tmp_path: Path) -> None:
    settings = Settings(targets=THREE, storage=StorageSettings(data_dir=tmp_path))
    monitor = Monitor(settings, source_for(proxy.url), clock=lambda: END, time_limit=5.0)
    systems = settings.systems

    healths = monitor.overview(systems, RANGE, now=END)
    overview_queries = len(proxy.queries)
    frame = monitor.platform_metrics(systems, RANGE, CHART_SIGNALS)

    # The trend, the nine current values, process start, last scrape and availability.
    assert overview_queries == 1 + len(GOLDEN_SIGNALS) + 3
    assert len(proxy.queries) - overview_queries == len(CHART_SIGNALS)
    assert all('job=~"' in query for query in proxy.queries)
    for health in healths:
        assert health.freshness.state is FreshnessState.FRESH, health.stale_reason
        assert health.requests_per_second == pytest.approx(
            EXPECTED[health.system]["requests_per_second"])
    for system in systems:
        rows = frame[(frame["system"] == system) & (frame["signal"] == "requests_per_second")]
        assert rows["value"].to_list() == pytest.approx(
            [EXPECTED[system]["requests_per_second"]] * len(RANGE.points()))


@pytest.mark.prometheus
def test_targets_page_sends_one_query_per_value(proxy: StagingProxy, tmp_path: Path) -> None:
    settings = Settings(targets=THREE, storage=StorageSettings(data_dir=tmp_path))
    monitor = Monitor(settings, source_for(proxy.url), clock=lambda: END, time_limit=5.0)

    statuses = monitor.targets()

    # The nine current values, process start, last scrape and availability, for all systems.
    assert len(proxy.queries) == len(GOLDEN_SIGNALS) + 3
    assert [status.system for status in statuses] == list(settings.systems)
    for status in statuses:
        assert status.url.startswith("job ")
        assert status.last_error is None


@pytest.mark.prometheus
def test_rule_evaluation_sends_one_query_per_value(proxy: StagingProxy, tmp_path: Path) -> None:
    settings = Settings(targets=THREE, storage=StorageSettings(data_dir=tmp_path))
    values_of = current_values(source_for(proxy.url), settings)

    values = {system: values_of(system, END) for system in settings.systems}

    assert len(proxy.queries) == len(GOLDEN_SIGNALS) + 3
    for system in settings.systems:
        assert values[system]["requests_per_second"] == pytest.approx(
            EXPECTED[system]["requests_per_second"])
    values_of("alpha", END + 15.0)
    assert len(proxy.queries) == 2 * (len(GOLDEN_SIGNALS) + 3)


@pytest.mark.prometheus
def test_system_sharing_a_job_gets_its_own_query(proxy: StagingProxy) -> None:
    source = source_for(proxy.url, (*THREE, SHADOW))
    outcomes = source.signals_by_system(["alpha", "beta", "dotted", "shadow"], RANGE,
                                        ["requests_per_second", "cost_per_hour"])
    assert len(proxy.queries) == 4
    for system, frame in outcomes.items():
        assert isinstance(frame, pd.DataFrame), frame
        assert values_of(frame, "requests_per_second")[0] == pytest.approx(
            EXPECTED[system]["requests_per_second"])


@pytest.mark.prometheus
def test_failed_query_fails_only_its_systems(proxy: StagingProxy) -> None:
    source = source_for(proxy.url, (*THREE, SHADOW))
    proxy.stage = Stage(match="beta_ai_cost_usd_total", status=503)
    outcomes = source.signals_by_system(["alpha", "beta", "dotted", "shadow"], RANGE,
                                        ["requests_per_second", "cost_per_hour"])

    # The failing cost query held alpha, beta and dotted. Shadow's query is a separate one.
    for system in ("alpha", "beta", "dotted"):
        error = outcomes[system]
        assert isinstance(error, QueryError), system
        assert error.system == system
        assert "rejected it (unavailable)" in str(error)
    shadow = outcomes["shadow"]
    assert isinstance(shadow, pd.DataFrame)
    assert values_of(shadow, "cost_per_hour")[0] == pytest.approx(36.0)


@pytest.mark.prometheus
def test_invalid_query_runs_again_per_group(proxy: StagingProxy) -> None:
    source = source_for(proxy.url)
    proxy.stage = Stage(match="beta_ai_cost_usd_total", status=422, error_type="execution")
    outcomes = source.signals_by_system(["alpha", "beta", "dotted"], RANGE, ["cost_per_hour"])

    assert isinstance(outcomes["beta"], QueryError)
    for system in ("alpha", "dotted"):
        frame = outcomes[system]
        assert isinstance(frame, pd.DataFrame), frame
        assert values_of(frame, "cost_per_hour")[0] == pytest.approx(
            EXPECTED[system]["cost_per_hour"])
    # The joined query, then alpha and dotted's arm and beta's arm.
    assert len(proxy.queries) == 3


@pytest.mark.prometheus
def test_monitor_marks_only_the_failed_querys_systems_stale(proxy: StagingProxy,
                                                           tmp_path: Path) -> None:
    targets = (*THREE, SHADOW)
    settings = Settings(targets=targets, storage=StorageSettings(data_dir=tmp_path))
    clock = [END]
    monitor = Monitor(settings, source_for(proxy.url, targets), clock=lambda: clock[0],
                      cache=ResultCache(tmp_path / CACHE_DIR), time_limit=5.0)
    systems = settings.systems
    signals = ["requests_per_second", "cost_per_hour"]
    before = monitor.platform_metrics(systems, RANGE, signals)
    assert all(f.state is FreshnessState.FRESH for f in before.attrs["freshness"].values())

    proxy.stage = Stage(match="beta_ai_cost_usd_total", status=503)
    clock[0] = END + 60
    during = monitor.platform_metrics(systems, RANGE, signals)

    freshness = during.attrs["freshness"]
    assert {s for s, f in freshness.items() if f.state is FreshnessState.STALE} == {
        "alpha", "beta", "dotted"}
    assert freshness["shadow"].state is FreshnessState.FRESH
    assert freshness["beta"].age_seconds == pytest.approx(60)
    # The stale systems keep their last good rows.
    for system in systems:
        rows = during[(during["system"] == system) & (during["signal"] == "cost_per_hour")]
        assert not rows.empty
        assert not math.isnan(rows["value"].iloc[0])
