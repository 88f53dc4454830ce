"""Every page in Chromium: drawn charts, no errors, the overview's numbers, sidebar changes."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import OpenBrowser
from tests.browser.harness import (
    AppPage,
    RunningApp,
    chart_marks,
    discover_pages,
    open_page,
    wait_for_charts,
    wait_for_idle,
)

pytestmark = pytest.mark.browser

PAGES = discover_pages()
OVERVIEW = next(page for page in PAGES if page.url_path == "")
CROSS_SYSTEM = next(page for page in PAGES if page.url_path == "cross-system")
SYSTEM_NAMES = ("AutoMatrix", "RelayCore", "NeuroWeaver")

# The formats of lib.format, as the overview cards show them.
NUMBER = r"-?\d[\d,]*(\.\d+)?"
METRIC_FORMATS = {
    "Requests": rf"^{NUMBER} req/s$",
    "Error rate": rf"^({NUMBER}%|<0\.01%|>99\.99%)$",
    "Availability": rf"^({NUMBER}%|<0\.01%|>99\.99%)$",
    "Average latency": rf"^{NUMBER} m?s$",
    "p95 latency": rf"^{NUMBER} m?s$",
    "Process uptime": r"^-?\d+[dhms]( \d+[dhms])?$",
    "Memory": rf"^{NUMBER} (B|KiB|MiB|GiB|TiB)$",
}


def test_pages_found_in_navigation() -> None:
    platform = [page.title for page in PAGES if page.section == "Platform"]
    systems = [page.title for page in PAGES if page.section == "Systems"]

    assert platform == ["Overview", "Cross-system metrics", "Alerts", "Targets", "Export"]
    assert systems == list(SYSTEM_NAMES)
    assert [page.section for page in PAGES] == ["Platform"] * 5 + ["Systems"] * 3


def test_sidebar_lists_discovered_pages(app: RunningApp, open_browser: OpenBrowser) -> None:
    page = open_page(open_browser(), app.url)

    navigation = page.locator('[data-testid="stSidebarNav"]')
    links = navigation.locator('a[data-testid="stSidebarNavLink"]')
    hrefs = [link.get_attribute("href") or "" for link in links.all()]
    headers = navigation.locator('[data-testid="stNavSectionHeader"]').all_text_contents()

    # A page that is missing here is built in a way discover_pages cannot read: list it there.
    assert [href.removeprefix(app.url).strip("/") for href in hrefs] == [
        page.url_path for page in PAGES
    ]
    sections = list(dict.fromkeys(page.section for page in PAGES))
    assert len(headers) == len(sections)
    for header, section in zip(headers, sections, strict=True):
        # A header's text ends with the name of its collapse icon, such as "expand_more".
        assert header.strip().startswith(section)


@pytest.mark.parametrize("app_page", PAGES, ids=[page.id for page in PAGES])
def test_page_renders_charts_without_errors(
    app: RunningApp, open_browser: OpenBrowser, app_page: AppPage
) -> None:
    page = open_page(open_browser(), app.page_url(app_page))

    charts = wait_for_charts(page, minimum=0)

    assert [chart for chart in charts if int(chart["marks"]) == 0] == []
    assert all(float(chart["width"]) > 0 and float(chart["height"]) > 0 for chart in charts)
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)
    expect(page.locator('[data-testid="stAlertContentError"]')).to_have_count(0)
    assert page.title() == f"{app_page.title} · Platform Monitor"


def test_charts_drawn_on_chart_pages(app: RunningApp, open_browser: OpenBrowser) -> None:
    context = open_browser()

    overview = wait_for_charts(open_page(context, app.page_url(OVERVIEW)), minimum=3)
    cross_system = wait_for_charts(open_page(context, app.page_url(CROSS_SYSTEM)), minimum=6)

    assert len(overview) == 3  # one request-rate sparkline per system card
    assert len(cross_system) == 6
    for name in SYSTEM_NAMES:
        assert any(int(chart["bySystem"][name]) > 0 for chart in cross_system), name


def test_overview_shows_numbers_with_units(app: RunningApp, open_browser: OpenBrowser) -> None:
    page = open_page(open_browser(), app.page_url(OVERVIEW))

    for label, pattern in METRIC_FORMATS.items():
        metrics = page.locator('[data-testid="stMetric"]').filter(
            has=page.locator('[data-testid="stMetricLabel"]', has_text=re.compile(f"^{label}$"))
        )
        expect(metrics).to_have_count(len(SYSTEM_NAMES))
        for metric in metrics.all():
            value = metric.locator('[data-testid="stMetricValue"]')
            expect(value).to_have_text(re.compile(pattern), timeout=20_000)


def test_overview_cards_name_status(app: RunningApp, open_browser: OpenBrowser) -> None:
    page = open_page(open_browser(), app.page_url(OVERVIEW))

    for name in SYSTEM_NAMES:
        expect(page.locator('[data-testid="stMain"] h3', has_text=name)).to_have_count(1)
    badges = page.locator('[data-testid="stMain"] .stMarkdownBadge')
    expect(badges).to_have_count(len(SYSTEM_NAMES))
    for badge in badges.all():
        # The status is a word and an icon, never a colour alone.
        expect(badge).to_have_text(re.compile(r"(Healthy|Warning|Error)$"))
        expect(badge.get_by_role("img")).to_have_count(1)


def test_times_shown_in_viewer_zone(app: RunningApp, open_browser: OpenBrowser) -> None:
    context = open_browser(timezone_id="America/New_York")
    page = open_page(context, app.page_url(OVERVIEW))

    caption = page.locator('[data-testid="stMain"] [data-testid="stCaptionContainer"]').first
    expect(caption).to_contain_text(re.compile(r"updated \d{4}-\d\d-\d\d \d\d:\d\d:\d\d E[SD]T"))
    scrapes = page.get_by_text(re.compile(r"^Last successful scrape: .* E[SD]T"))
    expect(scrapes).to_have_count(len(SYSTEM_NAMES))


def test_time_range_changes_subtitles(app: RunningApp, open_browser: OpenBrowser) -> None:
    page = open_page(open_browser(), app.page_url(CROSS_SYSTEM))
    assert _svg_subtitles(page, wait_for_charts(page, minimum=6))[0].startswith("last 1h")

    _choose_time_range(page, "6h")

    # Vega redraws each chart on its own, so wait until no chart shows the old range.
    page.wait_for_function(
        """() => {
          const subtitles = Array.from(document.querySelectorAll('.role-title-subtitle text'));
          return subtitles.length > 0
              && subtitles.every((text) => text.textContent.startsWith('last 6h'));
        }""",
        timeout=30_000,
    )
    subtitles = _svg_subtitles(page, wait_for_charts(page, minimum=6))
    assert subtitles
    assert [subtitle for subtitle in subtitles if not subtitle.startswith("last 6h")] == []


def test_time_range_changes_overview_caption(app: RunningApp, open_browser: OpenBrowser) -> None:
    page = open_page(open_browser(), app.page_url(OVERVIEW))
    caption = page.locator('[data-testid="stMain"] [data-testid="stCaptionContainer"]').first
    expect(caption).to_contain_text("last 1h")

    _choose_time_range(page, "24h")

    expect(caption).to_contain_text("last 24h", timeout=30_000)
    # A 24h step is 5 minutes, longer than the test's history, so a card may say it has no
    # trend yet. Each card must still show its system and no error.
    expect(page.locator('[data-testid="stMain"] h3')).to_have_count(3)
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)


def test_removing_system_removes_its_lines(app: RunningApp, open_browser: OpenBrowser) -> None:
    page = open_page(open_browser(), app.page_url(CROSS_SYSTEM))
    before = [chart for chart in wait_for_charts(page, minimum=6) if chart["renderer"] == "svg"]
    assert any(int(chart["bySystem"]["NeuroWeaver"]) > 0 for chart in before)

    # Backspace in the multiselect removes its last choice, NeuroWeaver.
    page.locator('[data-testid="stSidebar"] [data-testid="stMultiSelect"] input').click()
    page.keyboard.press("Backspace")
    page.keyboard.press("Escape")
    expect(page.locator('[data-testid="stMultiSelect"]')).not_to_contain_text("NeuroWeaver")
    wait_for_idle(page)

    page.wait_for_function(
        """() => !Array.from(document.querySelectorAll('svg.marks .mark-line path'))
                 .some((path) => getComputedStyle(path).stroke === 'rgb(84, 162, 75)')""",
        timeout=30_000,
    )
    after = [chart for chart in wait_for_charts(page, minimum=6) if chart["renderer"] == "svg"]
    assert after
    assert all(int(chart["bySystem"]["NeuroWeaver"]) == 0 for chart in after)
    assert all(int(chart["bySystem"]["AutoMatrix"]) > 0 for chart in after)


def test_removed_system_leaves_overview(app: RunningApp, open_browser: OpenBrowser) -> None:
    page = open_page(open_browser(), app.page_url(OVERVIEW))
    expect(page.locator('[data-testid="stMain"] h3')).to_have_count(3)

    page.locator('[data-testid="stSidebar"] [data-testid="stMultiSelect"] input').click()
    page.keyboard.press("Backspace")
    page.keyboard.press("Escape")

    expect(page.locator('[data-testid="stMain"] h3')).to_have_count(2, timeout=30_000)
    expect(page.locator('[data-testid="stMain"] h3', has_text="NeuroWeaver")).to_have_count(0)
    assert len(wait_for_charts(page, minimum=2)) == 2


def _choose_time_range(page: Page, label: str) -> None:
    group = page.locator('[data-testid="stSidebar"] [data-testid="stButtonGroup"]')
    group.get_by_role("radio", name=label, exact=True).click()
    wait_for_idle(page)


def _svg_subtitles(page: Page, charts: list[dict[str, object]]) -> list[str]:
    return [str(chart["subtitle"]) for chart in charts
            if chart["renderer"] == "svg" and chart["subtitle"]]


def test_chart_marks_helper_sees_no_charts_on_targets(
    app: RunningApp, open_browser: OpenBrowser
) -> None:
    targets = next(page for page in PAGES if page.url_path == "targets")
    page = open_page(open_browser(), app.page_url(targets))

    expect(page.locator('[data-testid="stDataFrame"]')).to_have_count(1)
    assert chart_marks(page) == []
