"""A link to a page opens that page on the first visit after the app starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.browser.conftest import OpenBrowser
from tests.browser.harness import open_page, running_app, write_config

pytestmark = pytest.mark.browser

_DIALOGS_JS = """() => Array.from(document.querySelectorAll('[role="dialog"]'))
                      .map((dialog) => dialog.innerText)"""


def _dialogs(page: Page) -> list[str]:
    # Streamlit sends its "Page not found" message while the run is still going.
    page.wait_for_timeout(1_000)
    dialogs: list[str] = page.evaluate(_DIALOGS_JS)
    return dialogs


def test_first_visit_opens_page_url(tmp_path: Path, open_browser: OpenBrowser) -> None:
    # A server of its own: the session-wide app has already served other pages, which hides
    # what the first visitor after a start gets.
    config_path = write_config(tmp_path, "15s")
    with running_app(tmp_path, config_path) as app:
        page = open_page(open_browser(), f"{app.url}/cross-system")
        assert page.locator('[data-testid="stMain"] h1').first.inner_text() == (
            "Cross-system metrics"
        )
        assert _dialogs(page) == []

        # The check finds the message where Streamlit does send it.
        page = open_page(open_browser(), f"{app.url}/no-such-page")
        assert any(text.startswith("Page not found") for text in _dialogs(page))
