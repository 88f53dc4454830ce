"""Acknowledging an alert through the browser, on a laptop and on a phone."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import OpenBrowser
from tests.browser.harness import RunningApp, discover_pages, open_page, wait_for_idle

pytestmark = pytest.mark.browser

ALERTS = next((page for page in discover_pages() if "alert" in page.url_path), None)
# The option of the alert that the firing_alert fixture waits for.
FIRING_ALERT = re.compile(r"critical · relaycore · HighLatencyP95:")
# With no authentication configured, each form asks for the operator's name.
NAME_FIELD = "Your name (auth is off)"


@pytest.mark.parametrize("width", [1440, 390], ids=["laptop", "phone"])
def test_acknowledgement_survives_reload(
    app: RunningApp, firing_alert: str, open_browser: OpenBrowser, width: int
) -> None:
    if ALERTS is None:
        pytest.skip("The app has no Alerts page yet.")
    page = open_page(open_browser(width=width, height=900), app.page_url(ALERTS))
    _choose_alert(page)
    # The alert is acknowledged for hours, so a test before this one may have done it already.
    remove = page.locator('[data-testid="stForm"]').filter(has_text="Remove acknowledgement")
    if remove.count():
        remove.get_by_label(NAME_FIELD).fill("browser test")
        remove.get_by_role("button", name="Remove acknowledgement").click()
        wait_for_idle(page)
        _choose_alert(page)

    form = page.locator('[data-testid="stForm"]').filter(
        has=page.get_by_role("button", name="Acknowledge", exact=True)
    )
    expect(form).to_be_visible()
    comment = f"Investigating from the browser test {uuid.uuid4().hex[:8]}"
    author = f"tester-{width}"
    form.get_by_label(NAME_FIELD).fill(author)
    form.get_by_label(re.compile("comment", re.IGNORECASE)).fill(comment)
    submit = form.locator('[data-testid="stFormSubmitButton"] button')
    box = submit.bounding_box()
    assert box is not None
    assert box["x"] + box["width"] <= width
    submit.click()
    wait_for_idle(page)
    page.reload()
    wait_for_idle(page)
    _choose_alert(page)

    main = page.locator('[data-testid="stMain"]')
    expect(main).to_contain_text(f"Comment: {comment}", timeout=30_000)
    expect(main).to_contain_text(f"Acknowledged by {author} at")
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)


def _choose_alert(page: Page) -> None:
    """Choose the RelayCore latency alert in the page's alert list, whatever its position."""
    chooser = page.locator('[data-testid="stSelectbox"]').filter(
        has=page.locator('[data-testid="stWidgetLabel"]', has_text=re.compile("^Alert$"))
    )
    expect(chooser).to_have_count(1, timeout=30_000)
    combo_box = chooser.locator("input")
    if FIRING_ALERT.search(combo_box.input_value()):
        return
    chooser.get_by_role("button", name="Open").click()
    page.get_by_role("option").filter(has_text=FIRING_ALERT).click()
    wait_for_idle(page)
    expect(combo_box).to_have_value(FIRING_ALERT)
