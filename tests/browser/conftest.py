"""Fixtures of the browser tests: one app server per session, one fresh Chromium per test."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Playwright, sync_playwright

from tests.browser.harness import (
    BlockedRequests,
    RunningApp,
    backfill_history,
    browser_context,
    open_page,
    running_app,
    wait_for_firing,
    write_config,
)

# Four minutes of history at the app's scrape interval, so that every chart has lines at once.
BACKFILL_SECONDS = 240.0
SCRAPE_INTERVAL = "2s"
# The critical RelayCore latency rule fires after its condition holds for 2 minutes.
FIRING_TIMEOUT_S = 240.0
# An alert from the backfilled history resolved within 6 s of the collector's start in one
# run, so only an alert still firing this long after that start is taken as firing.
STARTUP_SETTLE_S = 30.0

OpenBrowser = Callable[..., BrowserContext]


@pytest.fixture(scope="session")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    directory = tmp_path_factory.mktemp("app")
    config_path = write_config(directory, SCRAPE_INTERVAL)
    backfill_history(config_path, directory / "data", BACKFILL_SECONDS)
    with running_app(directory, config_path) as running:
        yield running


@pytest.fixture(scope="session")
def playwright_driver() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def firing_alert(app: RunningApp, playwright_driver: Playwright) -> str:
    """Wait until RelayCore's critical HighLatencyP95 alert fires in the app; return its name."""
    # The app starts its collector, which evaluates the rules, in the first browser session.
    with browser_context(playwright_driver) as context:
        open_page(context, app.url)
    settled = time.time() + STARTUP_SETTLE_S
    wait_for_firing(app, "HighLatencyP95", "relaycore", "critical", settled, FIRING_TIMEOUT_S)
    return "HighLatencyP95"


@pytest.fixture
def blocked_requests() -> BlockedRequests:
    return BlockedRequests()


@pytest.fixture
def open_browser(
    playwright_driver: Playwright, blocked_requests: BlockedRequests
) -> Iterator[OpenBrowser]:
    """Return a function that launches Chromium with the given options and returns its context.

    Every browser it launched is closed after the test, and the test fails if the app tried to
    reach any host other than 127.0.0.1.
    """
    with ExitStack() as stack:

        def open_context(**options: Any) -> BrowserContext:
            return stack.enter_context(
                browser_context(playwright_driver, blocked=blocked_requests, **options)
            )

        yield open_context
    if blocked_requests.urls:
        pytest.fail(f"The page requested hosts other than 127.0.0.1: {blocked_requests.urls}")
