"""Take screenshots of every page in light and dark, at 1440 px and 390 px wide.

    python -m tests.browser.screenshots [--hours 3] [--out docs/screenshots]

The app runs on free loopback ports with a fresh data directory that contains a few hours of
backfilled history, so the charts show the demo schedule's incidents. Each image is cropped to
the page's content and stored as an optimised 256-colour PNG.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

from PIL import Image
from playwright.sync_api import Page, sync_playwright

from tests.browser.harness import (
    REPO_ROOT,
    AppPage,
    backfill_history,
    browser_context,
    discover_pages,
    open_page,
    running_app,
    wait_for_charts,
    write_config,
)

log = logging.getLogger("screenshots")

WIDTHS = {"wide": (1440, 900), "phone": (390, 844)}
LIVE_SECONDS_BEFORE_CAPTURE = 60.0
SCHEMES = ("light", "dark")
# Streamlit scrolls its main area, so the viewport grows to the content before the capture.
MAX_HEIGHT = 4000
CURRENT_VALUES_JS = """() => {
  const values = Array.from(document.querySelectorAll('[data-testid="stMetricValue"]'))
      .map((element) => element.innerText.trim());
  return values.length > 0 && !values.some((value) => ['—', '0 req/s', '0 B'].includes(value));
}"""
CONTENT_HEIGHT_JS = """() => {
  const main = document.querySelector('[data-testid="stMain"]');
  return main.scrollHeight;
}"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=3.0,
                        help="hours of simulated history to backfill before the capture")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "screenshots",
                        help="directory for the PNG files")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("lib", "exporters", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    arguments.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="platform-monitor-screenshots-") as directory:
        capture_all(Path(directory), arguments.out, arguments.hours * 3600)


def capture_all(directory: Path, out: Path, history_seconds: float) -> None:
    """Start the app with backfilled history and capture every page, theme and width."""
    config_path = write_config(directory, "15s", incidents=True)
    started = time.monotonic()
    cycles = backfill_history(config_path, directory / "data", history_seconds)
    log.info("backfilled %d scrape cycles in %.0f s", cycles, time.monotonic() - started)

    with running_app(directory, config_path) as app, sync_playwright() as playwright:
        # The simulated processes start with the app. A minute of live scrapes gives the
        # Overview a process uptime and the charts' right edge more than the restart.
        time.sleep(LIVE_SECONDS_BEFORE_CAPTURE)
        for app_page in discover_pages():
            for scheme in SCHEMES:
                for size_name, (width, height) in WIDTHS.items():
                    with browser_context(playwright, width=width, height=height,
                                         color_scheme=scheme) as context:
                        page = open_page(context, app.page_url(app_page))
                        path = out / f"{app_page.id}-{scheme}-{size_name}.png"
                        capture(page, app_page, path, width)
                        log.info("wrote %s (%d KiB)", path.relative_to(REPO_ROOT),
                                 path.stat().st_size // 1024)


def capture(page: Page, app_page: AppPage, path: Path, width: int) -> None:
    """Wait until the page shows current numbers and drawn charts, then save a screenshot."""
    if app_page.url_path == "":
        # The app's simulated processes start with the app, so their rates, latencies and memory
        # read zero or nothing until the collector has a few scrapes of them.
        page.wait_for_function(CURRENT_VALUES_JS, timeout=240_000, polling=1_000)
    wait_for_charts(page, minimum=0)

    # Charts redraw at each new size and may change the content's height, so grow the viewport
    # until the height stays the same.
    height = page.viewport_size["height"] if page.viewport_size else 0
    for _ in range(5):
        content_height = min(int(page.evaluate(CONTENT_HEIGHT_JS)), MAX_HEIGHT)
        if content_height <= height:
            break
        height = content_height
        page.set_viewport_size({"width": width, "height": height})
        page.wait_for_timeout(1_500)
        wait_for_charts(page, minimum=0)
    page.mouse.move(0, 0)  # no hover highlight or tooltip in the picture
    page.screenshot(path=str(path))
    compress(path)


def compress(path: Path) -> None:
    """Rewrite the PNG with a 256-colour palette, which keeps flat UI colours exact."""
    with Image.open(path) as image:
        palette = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    palette.save(path, optimize=True)


if __name__ == "__main__":
    main()
