"""The app on a Prometheus source: a real Prometheus scrapes the simulated platform every second,
and every page renders from it and names the source."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import lib.monitor
from exporters.server import SimulatedPlatform
from exporters.simulator import SimulationConfig
from lib.config import CONFIG_ENV, load_settings
from lib.format import escape_markdown
from lib.monitor import build_monitor
from lib.sources.prometheus import PrometheusSource
from lib.timerange import TimeRange
from tests.support import servers

pytestmark = pytest.mark.prometheus

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["app_pages/overview.py", "app_pages/cross_system.py", "app_pages/targets.py"]


@pytest.fixture(scope="module")
def platform() -> Iterator[SimulatedPlatform]:
    simulated = SimulatedPlatform(SimulationConfig(seed=1), "127.0.0.1", (0, 0, 0))
    simulated.start()
    yield simulated
    simulated.stop()


def scrape_config(platform: SimulatedPlatform) -> str:
    jobs = "".join(
        f"  - job_name: {system}\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{server.port}']\n"
        for system, server in platform.servers.items()
    )
    return f"global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n{jobs}"


@pytest.fixture(scope="module")
def live_prometheus(
    tmp_path_factory: pytest.TempPathFactory, platform: SimulatedPlatform
) -> Iterator[tuple[servers.ServerProcess, SimulatedPlatform]]:
    directory = tmp_path_factory.mktemp("prometheus")
    prometheus = servers.prometheus(directory, scrape_config(platform)).start()
    try:
        wait_for_scrapes(prometheus.url, count=6)
        yield prometheus, platform
    finally:
        prometheus.stop()


def test_victoria_metrics_scraping_same_exporters(
    live_prometheus: tuple[servers.ServerProcess, SimulatedPlatform],
    tmp_path: Path,
) -> None:
    prometheus, platform = live_prometheus
    victoria = servers.victoria_metrics(tmp_path, scrape_config=scrape_config(platform)).start()
    try:
        wait_for_scrapes(victoria.url, count=6)
        settings = load_settings(write_config(tmp_path, victoria.url))
        monitor, _ = build_monitor(settings, start_background=False)
        reference, _ = build_monitor(load_settings(write_config(tmp_path, prometheus.url)),
                                     start_background=False)
        now = time.time()
        time_range = TimeRange.between(now - 300, now, 1.0)

        ours = monitor.overview(["relaycore", "automatrix"], time_range, now=now)
        theirs = reference.overview(["relaycore", "automatrix"], time_range, now=now)
        for health, expected in zip(ours, theirs, strict=True):
            assert health.requests_per_second is not None
            assert expected.requests_per_second is not None
            # Both scrape the same exporters every second but at different moments, and the
            # current rate spans only 4 s, so only the magnitude must match.
            assert health.requests_per_second == pytest.approx(
                expected.requests_per_second, rel=0.5)
            assert health.memory_usage is not None
            assert health.availability == 1.0
            assert health.last_error is None
    finally:
        victoria.stop()


def wait_for_scrapes(url: str, count: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        response = httpx.get(url + "/api/v1/query",
                             params={"query": 'count_over_time(up{job="relaycore"}[1m])'})
        result = response.json()["data"]["result"]
        if result and float(result[0]["value"][1]) >= count:
            return
        time.sleep(0.5)
    raise AssertionError(f"{url} did not scrape the simulated platform within 60 s")


def write_config(directory: Path, prometheus_url: str) -> Path:
    path = directory / "platform-monitor.toml"
    path.write_text(
        f"""
[source]
kind = "prometheus"
url = "{prometheus_url}"

[collector]
scrape_interval = "1s"
scrape_timeout = "1s"

[storage]
data_dir = "{directory / 'data'}"
""",
        encoding="utf-8",
    )
    return path


def test_build_monitor_reads_prometheus(
    live_prometheus: tuple[servers.ServerProcess, SimulatedPlatform], tmp_path: Path
) -> None:
    prometheus, _ = live_prometheus
    settings = load_settings(write_config(tmp_path, prometheus.url))
    monitor, runtime = build_monitor(settings)
    try:
        assert isinstance(monitor.source, PrometheusSource)
        assert monitor.source_label == f"Prometheus at {prometheus.url}"
        assert runtime.collector is None
        assert runtime.platform is None

        now = time.time()
        # A step of 1 s puts the range's end within a second of now, after the first scrapes.
        time_range = TimeRange.between(now - 300, now, 1.0)
        healths = monitor.overview(["relaycore"], time_range, now=now)
        assert healths[0].requests_per_second is not None
        assert healths[0].requests_per_second > 0
        assert healths[0].availability == 1.0
        assert healths[0].last_error is None
        targets = {status.system: status for status in monitor.targets()}
        assert targets["relaycore"].health == "up"
        assert targets["relaycore"].url == "job 'relaycore'"
    finally:
        runtime.stop()


@pytest.fixture
def app_config(
    live_prometheus: tuple[servers.ServerProcess, SimulatedPlatform], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[str]:
    prometheus, _ = live_prometheus
    monkeypatch.setenv(CONFIG_ENV, str(write_config(tmp_path, prometheus.url)))
    monkeypatch.setattr(lib.monitor, "_MONITOR", None)
    st.cache_resource.clear()
    yield prometheus.url
    lib.monitor.reset_monitor()
    st.cache_resource.clear()


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_with_prometheus(app_config: str, page: str) -> None:
    app = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60)
    app.run()
    if page != PAGES[0]:
        app.switch_page(page).run()

    assert not app.exception
    assert not app.error, [e.value for e in app.error]
    label = escape_markdown(f"Prometheus at {app_config}")
    # NOTE: after AppTest.switch_page to the Targets page, AppTest 1.67 reports an empty sidebar,
    # so the source label is checked on the pages where it reports one.
    if page != "app_pages/targets.py":
        assert any(label in caption.value for caption in app.sidebar.caption)
    if page == "app_pages/overview.py":
        requests = [m.value for m in app.metric if m.label == "Requests"]
        assert len(requests) == 3
        assert all(value and value[0].isdigit() for value in requests), requests
    if page == "app_pages/targets.py":
        table = app.dataframe[0].value
        assert set(table["State"]) == {"✅ up"}, table


def test_relaycore_page_renders_with_prometheus(app_config: str) -> None:
    app = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60)
    app.run()
    app.switch_page("app_pages/relaycore.py").run()

    assert not app.exception
    assert not app.error, [e.value for e in app.error]
    assert [t.value for t in app.title] == ["RelayCore"]
    metrics = {m.label: m.value for m in app.metric}
    assert set(metrics) == {"AI cost this month", "Current rate", "Projected month total"}
    assert metrics["AI cost this month"].startswith("$"), metrics
    # Every panel with a table shows it: busiest models, error share, most expensive models.
    # Their rows depend on whether Prometheus has scraped before the range's end, which the
    # range's step rounds down, so only the columns are checked.
    assert len(app.dataframe) == 3
    busiest = app.dataframe[0].value
    assert list(busiest.columns[:3]) == ["Provider", "Model", "Status"]
