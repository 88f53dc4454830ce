"""The system detail, cross-system and Export pages render through AppTest with the library's
numbers, which equal the simulator's exact counter values."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import lib.monitor
from lib.breakdowns import month_cost
from lib.monitor import Runtime
from lib.system_views import AUTOMATRIX, NEUROWEAVER, RELAYCORE, panel_table
from tests.conftest import PLATFORM_HOUR_START
from tests.support.platform_run import PlatformRun

END = PLATFORM_HOUR_START + 3600.0
APP = Path(__file__).resolve().parent.parent / "streamlit_app.py"


@pytest.fixture
def app(platform_hour: PlatformRun) -> Iterator[AppTest]:
    """The app with the platform run's monitor, whose clock is at the end of the hour."""
    lib.monitor._MONITOR = (platform_hour.monitor, Runtime())
    st.cache_resource.clear()
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.session_state["sidebar.refresh_seconds"] = None
    yield at
    lib.monitor._MONITOR = None
    st.cache_resource.clear()


def open_page(at: AppTest, page: str) -> AppTest:
    at.run()
    at.switch_page(page)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def test_relaycore_tables_match_library(app: AppTest, platform_hour: PlatformRun) -> None:
    at = open_page(app, "app_pages/relaycore.py")
    time_range = platform_hour.monitor.time_range("1h")
    source = platform_hour.monitor.breakdowns()

    tables = [panel.table for panel in RELAYCORE.panels if panel.table is not None]
    assert len(at.dataframe) == len(tables)
    for element, table in zip(at.dataframe, tables, strict=True):
        expected = panel_table(source, "relaycore", table, time_range)
        pd.testing.assert_frame_equal(element.value.reset_index(drop=True), expected)


def test_relaycore_cost_models_match_truth(app: AppTest, platform_hour: PlatformRun) -> None:
    at = open_page(app, "app_pages/relaycore.py")
    shown = at.dataframe[2].value
    metric = "relaycore_ai_cost_usd_total"
    assert list(shown.columns[:3]) == ["Provider", "Model", "Cost (USD)"]
    for row in shown.itertuples(index=False):
        truth = (platform_hour.value(END, "relaycore", metric, model=row.Model)
                 - platform_hour.value(PLATFORM_HOUR_START, "relaycore", metric, model=row.Model))
        assert row[2] == pytest.approx(truth, rel=1e-9)


def test_relaycore_month_cost_metrics(app: AppTest, platform_hour: PlatformRun) -> None:
    at = open_page(app, "app_pages/relaycore.py")
    cost = month_cost(platform_hour.monitor.breakdowns(), "relaycore",
                      "relaycore_ai_cost_usd_total", END)
    values = {metric.label: metric.value for metric in at.metric}
    assert values["AI cost this month"] == f"${cost.so_far_usd:,.2f}"
    assert values["Projected month total"] == f"${cost.projected_usd:,.2f}"
    truth = (platform_hour.value(END, "relaycore", "relaycore_ai_cost_usd_total")
             - platform_hour.value(PLATFORM_HOUR_START, "relaycore",
                                   "relaycore_ai_cost_usd_total"))
    assert cost.so_far_usd == pytest.approx(truth, rel=1e-9)


def test_automatrix_busiest_templates(app: AppTest, platform_hour: PlatformRun) -> None:
    at = open_page(app, "app_pages/automatrix.py")
    shown = at.dataframe[0].value
    metric = "autmatrix_workflow_executions_total"
    assert shown["Executions"].is_monotonic_decreasing
    for row in shown.itertuples(index=False):
        truth = (platform_hour.value(END, "automatrix", metric, template=row.Template)
                 - platform_hour.value(PLATFORM_HOUR_START, "automatrix", metric,
                                       template=row.Template))
        assert row.Executions == pytest.approx(truth, rel=1e-9)


@pytest.mark.parametrize(("page", "view"), [
    ("app_pages/automatrix.py", AUTOMATRIX),
    ("app_pages/relaycore.py", RELAYCORE),
    ("app_pages/neuroweaver.py", NEUROWEAVER),
])
def test_detail_page_renders_every_panel(app: AppTest, page: str, view: object) -> None:
    at = open_page(app, page)
    assert at.title[0].value == view.title  # type: ignore[attr-defined]
    assert len(at.get("popover")) == len(view.panels)  # type: ignore[attr-defined]


@pytest.mark.parametrize("comparison", ["1 day earlier", "1 week earlier"])
def test_detail_page_with_comparison(app: AppTest, comparison: str) -> None:
    at = open_page(app, "app_pages/neuroweaver.py")
    at.segmented_control(key="neuroweaver.compare").set_value(comparison).run()
    assert not at.exception
    assert not at.error


def test_cross_system_with_comparison(app: AppTest) -> None:
    at = open_page(app, "app_pages/cross_system.py")
    at.segmented_control(key="cross_system.compare").set_value("1 day earlier").run()
    assert not at.exception
    assert len(at.get("popover")) == 6


def test_export_page_plans_rows(app: AppTest) -> None:
    at = open_page(app, "app_pages/export.py")
    captions = " ".join(caption.value for caption in at.caption)
    # 1h at 15 s is 241 points, for 3 systems and 9 signals.
    assert f"{241 * 3 * 9:,} rows" in captions
    assert len(at.get("download_button")) == 1
    at.radio(key="export.resolution").set_value("finest").run()
    assert not at.exception
    assert not at.warning
