"""Readability in the light and dark themes, which follow the viewer's colour scheme."""

from __future__ import annotations

import pytest

from tests.browser.conftest import OpenBrowser
from tests.browser.harness import RunningApp, open_page, wait_for_charts

pytestmark = pytest.mark.browser

# WCAG 2.1 success criterion 1.4.3: at least 4.5:1 for text of normal size.
MIN_CONTRAST = 4.5

# Returns, for every visible element that `selector` matches, its text and the contrast ratio
# of its text colour on the background behind it. Semi-transparent colours are blended over
# the backgrounds of the ancestors first, as the browser paints them. SVG text uses its fill.
_CONTRAST_JS = """
(selector) => {
  const rgba = (text) => {
    const parts = (text.match(/[\\d.]+/g) || []).map(Number);
    return parts.length >= 3 ? [parts[0], parts[1], parts[2], parts.length > 3 ? parts[3] : 1]
                             : [0, 0, 0, 0];
  };
  const over = (top, bottom) => [0, 1, 2].map((i) => top[i] * top[3] + bottom[i] * (1 - top[3]));
  const luminance = (rgb) => {
    const [r, g, b] = rgb.map((value) => {
      const c = value / 255;
      return c <= 0.04045 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const background = (element) => {
    const layers = [];
    for (let node = element; node && node.nodeType === 1; node = node.parentElement) {
      const colour = rgba(getComputedStyle(node).backgroundColor);
      if (colour[3] > 0) layers.push(colour);
      if (colour[3] >= 1) break;
    }
    let result = [255, 255, 255];
    for (const layer of layers.reverse()) result = over(layer, result);
    return result;
  };
  const opacityOf = (element) => {
    const style = getComputedStyle(element);
    const own = Number(style.opacity || 1);
    return element instanceof SVGElement ? own * Number(style.fillOpacity || 1) : own;
  };
  // Vega hides overlapping axis labels with opacity 0, so those are not text a viewer sees.
  return Array.from(document.querySelectorAll(selector))
    .filter((element) => element.getBoundingClientRect().width > 0
                         && element.textContent.trim() !== '' && opacityOf(element) > 0)
    .map((element) => {
      const style = getComputedStyle(element);
      const isSvg = element instanceof SVGElement;
      const back = background(isSvg ? element.ownerSVGElement : element);
      const colour = rgba(isSvg ? style.fill : style.color);
      const opacity = opacityOf(element);
      const text = over([colour[0], colour[1], colour[2], colour[3] * opacity], back);
      const [light, dark] = [luminance(text), luminance(back)].sort((a, b) => b - a);
      return {text: element.textContent.trim().slice(0, 60),
              ratio: (light + 0.05) / (dark + 0.05), background: luminance(back)};
    });
}
"""

OVERVIEW_TEXT = {
    "page title": '[data-testid="stMain"] h1',
    "card title": '[data-testid="stMain"] h3',
    "status badge": '[data-testid="stMain"] .stMarkdownBadge',
    "metric label": '[data-testid="stMetricLabel"] p',
    "metric value": '[data-testid="stMetricValue"]',
    "caption": '[data-testid="stMain"] [data-testid="stCaptionContainer"]',
    "navigation link": '[data-testid="stSidebarNavLink"] span',
}
CHART_TEXT = {
    "chart title": "svg.marks .role-title-text text",
    "chart subtitle": "svg.marks .role-title-subtitle text",
    "axis label": "svg.marks .role-axis-label text",
    "axis title": "svg.marks .role-axis-title text",
    "legend label": "svg.marks .role-legend-label text",
}


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_overview_text_readable(app: RunningApp, open_browser: OpenBrowser, scheme: str) -> None:
    page = open_page(open_browser(color_scheme=scheme), app.url)
    wait_for_charts(page, minimum=3)

    _assert_theme(page.evaluate(_CONTRAST_JS, '[data-testid="stMain"] h1'), scheme)
    for role, selector in OVERVIEW_TEXT.items():
        measured = page.evaluate(_CONTRAST_JS, selector)
        assert measured, f"no {role} on the page"
        unreadable = [item for item in measured if item["ratio"] < MIN_CONTRAST]
        assert unreadable == [], f"{role} below {MIN_CONTRAST}:1 in the {scheme} theme"


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_chart_text_readable(app: RunningApp, open_browser: OpenBrowser, scheme: str) -> None:
    page = open_page(open_browser(color_scheme=scheme), f"{app.url}/cross-system")
    wait_for_charts(page, minimum=6)

    for role, selector in CHART_TEXT.items():
        measured = page.evaluate(_CONTRAST_JS, selector)
        assert measured, f"no {role} in an SVG chart"
        _assert_theme(measured, scheme)
        unreadable = [item for item in measured if item["ratio"] < MIN_CONTRAST]
        assert unreadable == [], f"{role} below {MIN_CONTRAST}:1 in the {scheme} theme"


def _assert_theme(measured: list[dict[str, float]], scheme: str) -> None:
    """Check that the page really is in `scheme`, so a contrast pass means something."""
    backgrounds = [item["background"] for item in measured]
    if scheme == "dark":
        assert max(backgrounds) < 0.1
    else:
        assert min(backgrounds) > 0.8
