"""A phone screen, 390 px wide: stacked cards, charts within the width, a collapsed sidebar."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import OpenBrowser
from tests.browser.harness import AppPage, RunningApp, discover_pages, open_page, wait_for_charts

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
PAGES = discover_pages()


@pytest.mark.parametrize("app_page", PAGES, ids=[page.id for page in PAGES])
def test_page_fits_phone_width(
    app: RunningApp, open_browser: OpenBrowser, app_page: AppPage
) -> None:
    page = open_page(open_browser(**PHONE), app.page_url(app_page))
    charts = wait_for_charts(page, minimum=0)

    scroll_width, main_scroll_width, inner_width = page.evaluate(
        """[document.documentElement.scrollWidth,
            document.querySelector('[data-testid="stMain"]').scrollWidth,
            window.innerWidth]"""
    )
    # Streamlit scrolls its main area rather than the document, so both must fit.
    assert scroll_width <= inner_width
    assert main_scroll_width <= inner_width
    assert [chart for chart in charts if float(chart["right"]) > inner_width] == []
    assert [chart for chart in charts if int(chart["marks"]) == 0] == []


def test_sidebar_collapsed_on_phone(app: RunningApp, open_browser: OpenBrowser) -> None:
    page = open_page(open_browser(**PHONE), app.url)

    sidebar = page.locator('[data-testid="stSidebar"]')
    assert sidebar.bounding_box()["x"] + sidebar.bounding_box()["width"] <= 0

    page.locator('[data-testid="stExpandSidebarButton"]').click()
    expect(page.locator('[data-testid="stSidebarNav"]')).to_be_in_viewport()


def test_overview_cards_stack_on_phone(app: RunningApp, open_browser: OpenBrowser) -> None:
    page = open_page(open_browser(**PHONE), app.url)
    wait_for_charts(page, minimum=3)

    headings = page.locator('[data-testid="stMain"] h3')
    expect(headings).to_have_count(3)
    boxes = [heading.bounding_box() for heading in headings.all()]

    assert len({round(box["x"]) for box in boxes}) == 1
    assert boxes[0]["y"] < boxes[1]["y"] < boxes[2]["y"]
