"""Acknowledging an alert through the browser, on a laptop and on a phone."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import OpenBrowser
from tests.browser.harness import RunningApp, discover_pages, open_page, wait_for_idle

pytestmark = pytest.mark.browser

ALERTS = next((page for page in discover_pages() if "alert" in page.url_path), None)


@pytest.mark.parametrize("width", [1440, 390], ids=["laptop", "phone"])
def test_acknowledgement_survives_reload(
    app: RunningApp, open_browser: OpenBrowser, width: int
) -> None:
    if ALERTS is None:
        pytest.skip("The app has no Alerts page yet.")
    page = open_page(open_browser(width=width, height=900), app.page_url(ALERTS))
    form = page.locator('[data-testid="stForm"]').first
    # The demo schedule fires alerts within minutes; the form shows once one fires.
    expect(form).to_be_visible(timeout=60_000)
    comment = f"Investigating from the browser test {uuid.uuid4().hex[:8]}"

    form.get_by_label(re.compile("comment", re.IGNORECASE)).fill(comment)
    submit = form.locator('[data-testid="stFormSubmitButton"] button')
    assert submit.bounding_box()["x"] + submit.bounding_box()["width"] <= width
    submit.click()
    wait_for_idle(page)
    page.reload()
    wait_for_idle(page)

    main = page.locator('[data-testid="stMain"]')
    expect(main).to_contain_text(comment, timeout=30_000)
    expect(main).to_contain_text(re.compile("acknowledged", re.IGNORECASE))
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)
