"""Every page renders through AppTest on live data, and shows the library's numbers.

The simulated platform serves over HTTP on 127.0.0.1; the collector scrapes it every 15 s of a
manual clock for an hour; the app reads the store through a monitor with the same clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import lib.monitor
from exporters.server import SimulatedPlatform
from exporters.simulator import Incident, SimulationConfig
from lib.collector import Collector
from lib.format import format_latency_ms, format_percent, format_rate
from lib.http import make_client
from lib.monitor import Monitor, set_monitor
from lib.sources.embedded import EmbeddedSource
from lib.store import Store

APP = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")
T0 = 1_700_002_800.0
END = T0 + 3600.0
PAGES = ["app_pages/overview.py", "app_pages/cross_system.py", "app_pages/targets.py"]


@pytest.fixture(scope="module")
def monitor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Monitor]:
    from tests.conftest import make_settings

    clock = [T0]
    config = SimulationConfig(
        seed=5, incidents=(Incident("outage", "neuroweaver", END - 100, 200.0),)
    )
    platform = SimulatedPlatform(config, "127.0.0.1", (0, 0, 0), clock=lambda: clock[0],
                                 tick_seconds=3600)
    platform.start()
    data_dir: Path = tmp_path_factory.mktemp("pages")
    settings = make_settings(platform.urls, data_dir)
    store = Store(data_dir / "metrics.sqlite")
    collector = Collector(settings, store, make_client(), clock=lambda: clock[0])
    while clock[0] <= END:
        platform.simulator.advance_to(clock[0])
        collector.scrape_once(now=clock[0])
        clock[0] += 15
    clock[0] = END + 5
    monitor = Monitor(settings, EmbeddedSource(store, 15.0), store, clock=lambda: clock[0])
    previous = lib.monitor._MONITOR
    set_monitor(monitor)
    yield monitor
    lib.monitor._MONITOR = previous
    platform.stop()


def run_page(page: str) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=30)
    app.run()
    if page != PAGES[0]:
        app.switch_page(page).run()
    return app


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_without_exception(monitor: Monitor, page: str) -> None:
    app = run_page(page)
    assert not app.exception
    assert not app.error


def test_overview_shows_library_numbers(monitor: Monitor) -> None:
    app = run_page(PAGES[0])
    shown = {(m.label, m.value) for m in app.metric}
    time_range = monitor.time_range("1h")
    for health in monitor.overview(["automatrix", "relaycore"], time_range):
        assert ("Requests", format_rate(health.requests_per_second)) in shown
        assert ("Error rate", format_percent(health.error_rate)) in shown
        assert ("p95 latency", format_latency_ms(health.p95_latency_ms)) in shown
        assert ("Availability", format_percent(health.availability)) in shown


def test_overview_names_down_system(monitor: Monitor) -> None:
    app = run_page(PAGES[0])
    warnings = " ".join(w.value for w in app.warning)
    assert "NeuroWeaver" in warnings
    assert "returned HTTP 503" in warnings
    badges = [m.value for m in app.markdown if "-badge[" in m.value]
    assert ":red-badge[:material/error: Error]" in badges


def test_cross_system_draws_six_charts(monitor: Monitor) -> None:
    app = run_page(PAGES[1])
    charts = app.get("vega_lite_chart")
    assert len(charts) == 6


def test_targets_lists_every_endpoint(monitor: Monitor) -> None:
    app = run_page(PAGES[2])
    table = app.dataframe[0].value
    assert len(table) == 3


def chart_paths(node: object, path: tuple[int, ...] = ()) -> list[tuple[int, ...]]:
    """Return the place of every Vega chart under `node`: its index in each enclosing block.

    Streamlit's frontend matches a rerun's elements to the drawn ones by this place. A chart
    that moves is drawn anew, and is blank until Vega has drawn it.
    """
    if getattr(node, "type", None) == "vega_lite_chart":
        return [path]
    children: dict[int, object] = getattr(node, "children", {})
    return [found for index, child in sorted(children.items())
            for found in chart_paths(child, (*path, index))]


def test_overview_trend_keeps_card_place(monitor: Monitor) -> None:
    reasons = {len(health.reasons)
               for health in monitor.overview(["automatrix", "relaycore", "neuroweaver"],
                                              monitor.time_range("1h"))}
    assert len(reasons) > 1, "the cards need different numbers of status lines"

    app = run_page(PAGES[0])
    paths = chart_paths(app._tree)
    assert len(paths) == 3
    # Each card is a block; the trend is at the same index in every card, however many
    # status lines come before it.
    assert len({path[-1] for path in paths}) == 1


def test_cross_system_charts_keep_their_place(monitor: Monitor) -> None:
    app = run_page(PAGES[1])
    with_warning = len(app.warning)
    paths = chart_paths(app._tree)
    app.multiselect(key="sidebar.systems").set_value(["automatrix", "relaycore"]).run()
    assert not app.exception
    assert len(app.warning) < with_warning, "dropping the down system drops its warning"
    assert chart_paths(app._tree) == paths


@pytest.mark.parametrize("page", [PAGES[0], PAGES[1], "app_pages/relaycore.py"])
def test_loading_notice_keeps_chart_places(monitor: Monitor, page: str) -> None:
    steady = run_page(page)
    assert not steady.info
    loading = Monitor(monitor.settings, monitor.source, monitor.store, clock=monitor.clock,
                      loading_history=lambda: True)
    set_monitor(loading)
    try:
        app = run_page(page)
    finally:
        set_monitor(monitor)
    assert not app.exception
    assert [info.value for info in app.info if "still being written" in info.value]
    assert chart_paths(app._tree) == chart_paths(steady._tree)
