"""CSV downloads through the browser, parsed and checked against the library's data."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest
from playwright.sync_api import Page, expect

from lib.config import load_settings
from lib.export import read_csv_export
from lib.monitor import build_monitor
from tests.browser.conftest import OpenBrowser
from tests.browser.harness import RunningApp, discover_pages, open_page, wait_for_idle

pytestmark = pytest.mark.browser

PAGES = discover_pages()
TARGETS = next(page for page in PAGES if page.url_path == "targets")
EXPORT = next((page for page in PAGES if "export" in page.url_path), None)
SIGNAL_COLUMNS = ["timestamp", "system", "signal", "value"]

# Streamlit's table download calls the File System Access API's save dialog when the browser has
# one, and a headless browser never closes that dialog. Without it, Streamlit falls back to an
# ordinary download, which Playwright can catch.
NO_SAVE_DIALOG = "delete window.showSaveFilePicker;"


def _download(page: Page, click: object) -> tuple[str, bytes]:
    with page.expect_download(timeout=30_000) as download_info:
        click()  # type: ignore[operator]
    download = download_info.value
    return download.suggested_filename, Path(download.path()).read_bytes()


def test_targets_table_downloads_as_csv(app: RunningApp, open_browser: OpenBrowser) -> None:
    context = open_browser()
    context.add_init_script(NO_SAVE_DIALOG)
    page = open_page(context, app.page_url(TARGETS))
    table = page.locator('[data-testid="stDataFrame"]')
    expect(table).to_have_count(1)
    table.hover()

    name, body = _download(
        page, lambda: page.get_by_role("button", name="Download as CSV").click()
    )

    assert name.endswith(".csv")
    frame = pd.read_csv(io.BytesIO(body), encoding="utf-8-sig")
    settings = load_settings(app.config_path, {"PLATFORM_MONITOR_DATA_DIR": str(app.data_dir)})
    assert list(frame["Endpoint"]) == [target.url for target in settings.targets]
    assert list(frame["System"]) == [target.display_name for target in settings.targets]
    assert frame["State"].str.endswith("up").all()
    assert (frame["Samples"] > 0).all()


def test_export_page_csv_matches_library(app: RunningApp, open_browser: OpenBrowser) -> None:
    if EXPORT is None:
        pytest.skip("The app has no Export page yet.")
    context = open_browser()
    context.add_init_script(NO_SAVE_DIALOG)
    page = open_page(context, app.page_url(EXPORT))
    file_format = page.locator('[data-testid="stRadio"]').filter(has_text="Format")
    file_format.get_by_text("CSV", exact=True).click()
    wait_for_idle(page)
    expect(file_format.get_by_role("radio", name="CSV")).to_be_checked()
    button = page.locator('[data-testid="stDownloadButton"] button').filter(has_text="Download")
    expect(button).to_have_count(1)

    name, body = _download(page, button.click)
    wait_for_idle(page)

    assert name.endswith(".csv")
    metadata, exported = read_csv_export(body)
    assert metadata
    assert set(SIGNAL_COLUMNS) <= set(exported.columns)
    assert not exported.empty
    exported["timestamp"] = pd.to_datetime(exported["timestamp"], utc=True)

    # The library reads the same store. Points that were complete when the file was written
    # must agree: compare all but the newest two timestamps.
    settings = load_settings(app.config_path, {"PLATFORM_MONITOR_DATA_DIR": str(app.data_dir)})
    monitor, _ = build_monitor(settings, start_background=False)
    times = sorted(exported["timestamp"].unique())
    assert len(times) > 2
    expected = monitor.platform_metrics(
        sorted(exported["system"].unique()),
        monitor.time_range("1h"),
        sorted(exported["signal"].unique()),
    )
    expected["timestamp"] = pd.to_datetime(expected["timestamp"], utc=True)
    merged = exported.merge(expected, on=["timestamp", "system", "signal"],
                            suffixes=("_csv", "_library"))
    merged = merged[merged["timestamp"] < times[-2]]
    assert not merged.empty
    pd.testing.assert_series_equal(merged["value_csv"], merged["value_library"],
                                   check_names=False, rtol=1e-6)
