"""Auto-refresh and slow loads: the page keeps its place and never goes blank."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import OpenBrowser
from tests.browser.harness import RunningApp, open_page, wait_for_charts, wait_for_idle

pytestmark = pytest.mark.browser

# Streamlit scrolls its main area, not the window.
_SCROLL_TOP_JS = "() => document.querySelector('[data-testid=\"stMain\"]').scrollTop"
# Samples the page every 50 ms into window.samples: scroll position, charts on the page, charts
# with something drawn, and whether a spinner or the running indicator shows.
_SAMPLER_JS = """
() => {
  const main = document.querySelector('[data-testid="stMain"]');
  window.samples = [];
  window.sampler = setInterval(() => {
    const charts = Array.from(document.querySelectorAll('[data-testid="stVegaLiteChart"]'));
    const drawn = charts.filter((chart) =>
        chart.querySelector('svg.marks .mark-line path, canvas.marks'));
    window.samples.push({
      scrollTop: main.scrollTop,
      charts: charts.length,
      drawn: drawn.length,
      busy: document.querySelector(
          '[data-testid="stSpinner"], [data-testid="stStatusWidget"]') !== null,
    });
  }, 50);
}
"""


def _samples(page: Page) -> list[dict[str, float]]:
    result: list[dict[str, float]] = page.evaluate(
        "() => { clearInterval(window.sampler); return window.samples; }"
    )
    return result


def test_auto_refresh_keeps_scroll_and_charts(app: RunningApp, open_browser: OpenBrowser) -> None:
    page = open_page(open_browser(height=600), app.url)
    refresh = page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').filter(
        has_text="Auto-refresh"
    )
    # Streamlit 1.67's select box opens on focus and filters on typing; Enter picks the match.
    refresh.locator("input").click()
    page.keyboard.type("10 s")
    page.keyboard.press("Enter")
    expect(refresh.get_by_role("combobox")).to_have_value("10 s")
    wait_for_idle(page)
    wait_for_charts(page, minimum=3)
    caption = page.locator('[data-testid="stMain"] [data-testid="stCaptionContainer"]').first
    first_caption = caption.inner_text()

    page.mouse.move(700, 300)
    page.mouse.wheel(0, 400)
    page.wait_for_function(f"() => ({_SCROLL_TOP_JS})() > 0")
    scrolled_to = page.evaluate(_SCROLL_TOP_JS)
    page.evaluate(_SAMPLER_JS)
    expect(caption).not_to_have_text(first_caption, timeout=25_000)
    page.wait_for_timeout(1_000)
    samples = _samples(page)

    assert samples
    assert {sample["scrollTop"] for sample in samples} == {scrolled_to}
    assert {sample["charts"] for sample in samples} == {3}
    assert {sample["drawn"] for sample in samples} == {3}


def test_long_range_never_blank(app: RunningApp, open_browser: OpenBrowser) -> None:
    page = open_page(open_browser(), f"{app.url}/cross-system")
    wait_for_charts(page, minimum=6)
    page.evaluate(_SAMPLER_JS)

    group = page.locator('[data-testid="stSidebar"] [data-testid="stButtonGroup"]')
    group.get_by_role("radio", name="7d", exact=True).click()
    page.wait_for_function(
        """() => Array.from(document.querySelectorAll('.role-title-subtitle text'))
                 .some((text) => text.textContent.startsWith('last 7d'))""",
        timeout=60_000,
    )
    samples = _samples(page)

    # At every moment the page shows either charts (old or new) or a sign that it is loading.
    blank = [sample for sample in samples if sample["drawn"] == 0 and not sample["busy"]]
    assert blank == []
