"""Run the app on free loopback ports and drive Debian's Chromium at it through Playwright.

The browser tests and the screenshot script share these helpers. Chromium is the system
package at /usr/bin/chromium, never a browser that Playwright downloads, and every request that
is not for 127.0.0.1 is aborted, so nothing leaves the machine.
"""

from __future__ import annotations

import ast
import os
import re
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from playwright.sync_api import BrowserContext, Page, Playwright, Route

from lib.alerts.embedded import ALERTS_FILE, EmbeddedAlerts, RuleEvaluator
from lib.backfill import backfill_simulated
from lib.collector import Collector
from lib.config import load_settings
from lib.http import make_client
from lib.monitor import current_values
from lib.sources.embedded import EmbeddedSource
from lib.store import Store

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
# Background networking is refused on a closed network, and the sandbox needs privileges that
# containers rarely grant.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ALLOWED_HOSTS = frozenset({"127.0.0.1"})
STARTUP_TIMEOUT_S = 60.0
# Each system's line colour, as lib.config gives the simulated systems.
SYSTEM_COLOURS = {"AutoMatrix": "#4C78A8", "RelayCore": "#F58518", "NeuroWeaver": "#54A24B"}


@dataclass(frozen=True)
class AppPage:
    """One page of the app's navigation: its title, its URL path ("" for the default) and the
    sidebar section it is listed under ("" when the navigation has no sections)."""

    title: str
    url_path: str
    section: str = ""

    @property
    def id(self) -> str:
        return self.url_path or "overview"


def discover_pages(entry_point: Path = REPO_ROOT / "streamlit_app.py") -> list[AppPage]:
    """Return the pages that the entry point passes to st.navigation, in sidebar order.

    The first argument of the `st.navigation(...)` call is read from the source: a list of
    `st.Page(...)` calls, or a dict of section name to such a list. Only `st.Page` calls with
    literal arguments count. A missing title or URL path is inferred from the file name, as
    Streamlit does, and the default page has the URL path "".
    """
    tree = ast.parse(entry_point.read_text(encoding="utf-8"))
    calls = [node for node in ast.walk(tree)
             if isinstance(node, ast.Call) and _called_name(node.func) == "navigation"]
    if len(calls) != 1 or not calls[0].args:
        raise ValueError(f"{entry_point} must call st.navigation exactly once with the pages "
                         f"as its first argument; found {len(calls)} calls.")
    argument = calls[0].args[0]
    if isinstance(argument, ast.Dict):
        sections = [
            (str(key.value) if isinstance(key, ast.Constant) else "", value)
            for key, value in zip(argument.keys, argument.values, strict=True)
        ]
    else:
        sections = [("", argument)]

    pages = []
    for section, listing in sections:
        if not isinstance(listing, ast.List | ast.Tuple):
            raise ValueError(f"{entry_point}: the pages of section {section!r} are not a "
                             "literal list, so they cannot be read from the source.")
        for element in listing.elts:
            page = _page_from_call(element, section)
            if page is not None:
                pages.append(page)
    return pages


def _page_from_call(node: ast.expr, section: str) -> AppPage | None:
    if not (isinstance(node, ast.Call) and _called_name(node.func) == "Page"):
        return None
    if not node.args or not isinstance(node.args[0], ast.Constant):
        return None
    keywords = {
        keyword.arg: keyword.value.value
        for keyword in node.keywords
        if keyword.arg and isinstance(keyword.value, ast.Constant)
    }
    stem = re.sub(r"^[0-9_]+", "", Path(str(node.args[0].value)).stem)
    title = str(keywords.get("title", stem.replace("_", " ").title()))
    url_path = "" if keywords.get("default") else str(keywords.get("url_path", stem))
    return AppPage(title, url_path, section)


def _called_name(function: ast.expr) -> str | None:
    if isinstance(function, ast.Attribute):
        return function.attr
    if isinstance(function, ast.Name):
        return function.id
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class RunningApp:
    """A Streamlit server of the app, its data directory and its log file."""

    url: str
    data_dir: Path
    config_path: Path
    log_path: Path
    process: subprocess.Popen[bytes]

    def page_url(self, page: AppPage) -> str:
        return f"{self.url}/{page.url_path}"

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


def write_config(directory: Path, scrape_interval: str, incidents: bool = False) -> Path:
    """Write a configuration of the simulated platform on three free loopback ports.

    RelayCore's p95 latency error threshold is set below its normal latency, so that its
    critical HighLatencyP95 alert fires within the backfilled history and the Alerts page has an
    alert to acknowledge. `wait_for_firing` tells when it fires in the running app. The demo
    incident schedule runs on the wall clock, so it is off unless `incidents` is set: a test that
    happened to run during NeuroWeaver's outage saw it down.
    """
    ports = [free_port() for _ in range(3)]
    systems = ("automatrix", "relaycore", "neuroweaver")
    targets = "".join(
        f'[[targets]]\nsystem = "{system}"\nurl = "http://127.0.0.1:{port}/metrics"\n\n'
        for system, port in zip(systems, ports, strict=True)
    )
    relaycore_thresholds = "[targets.thresholds]\np95_latency_ms_error = 100\n\n"
    marker = f'url = "http://127.0.0.1:{ports[1]}/metrics"\n\n'
    targets = targets.replace(marker, marker.rstrip("\n") + "\n" + relaycore_thresholds, 1)
    path = directory / "platform-monitor.toml"
    # The scrape timeout is also each page read's time limit per system; on a loaded two-core
    # machine 1 s let a read run out now and then, and a card then showed no trend chart.
    path.write_text(
        f'[simulator]\nenabled = true\nincidents = {str(incidents).lower()}\n'
        f'ports = [{", ".join(map(str, ports))}]\n\n'
        f'[collector]\nscrape_interval = "{scrape_interval}"\nscrape_timeout = "2s"\n\n'
        + targets,
        encoding="utf-8",
    )
    return path


def backfill_history(config_path: Path, data_dir: Path, seconds: float) -> int:
    """Write `seconds` of simulated history ending now into the data directory's store."""
    settings = load_settings(config_path, {"PLATFORM_MONITOR_DATA_DIR": str(data_dir)})
    data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(data_dir / "metrics.sqlite")
    try:
        # Evaluate the alert rules over the history as the app's collector does.
        alerts = EmbeddedAlerts(data_dir / ALERTS_FILE)
        source = EmbeddedSource(store, settings.scrape_interval)
        evaluator = RuleEvaluator(settings, alerts, current_values(source, settings))
        collector = Collector(settings, store, make_client(), after_cycle=evaluator.evaluate)
        simulator = settings.simulator
        return backfill_simulated(
            collector, simulator.seed, seconds, time.time(), simulator.incidents
        )
    finally:
        store.close()


@contextmanager
def running_app(directory: Path, config_path: Path) -> Iterator[RunningApp]:
    """Start `streamlit run` on a free port and stop it on exit."""
    port = free_port()
    data_dir = directory / "data"
    log_path = directory / "streamlit.log"
    environment = dict(os.environ, PLATFORM_MONITOR_DATA_DIR=str(data_dir),
                       PLATFORM_MONITOR_CONFIG=str(config_path))
    command = [
        sys.executable, "-m", "streamlit", "run", "streamlit_app.py",
        "--server.port", str(port), "--server.address", "127.0.0.1",
        "--server.headless", "true", "--browser.gatherUsageStats", "false",
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=environment,
                                   stdout=log, stderr=subprocess.STDOUT)
    app = RunningApp(f"http://127.0.0.1:{port}", data_dir, config_path, log_path, process)
    try:
        _wait_until_healthy(app)
        yield app
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _wait_until_healthy(app: RunningApp) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if app.process.poll() is not None:
            raise RuntimeError(f"Streamlit exited with {app.process.returncode}:\n{app.log_tail()}")
        with suppress(httpx.HTTPError):
            if httpx.get(f"{app.url}/_stcore/health", timeout=2).text == "ok":
                return
        time.sleep(0.3)
    raise RuntimeError(f"Streamlit did not answer within {STARTUP_TIMEOUT_S:g} s:\n"
                       f"{app.log_tail()}")


def wait_for_firing(
    app: RunningApp, name: str, system: str, severity: str, after: float, timeout_s: float
) -> None:
    """Wait until the app's evaluator finds the alert `name` with `severity` on `system`
    firing at or after the epoch time `after`.

    An alert that fires in the backfilled history can resolve at the app's first evaluations,
    because the live scrapes start after a gap and the rates have no data until two of them
    are in the window. It fires again once its condition has held for the rule's `for` time.
    """
    deadline = time.monotonic() + timeout_s
    path = app.data_dir / ALERTS_FILE
    while time.monotonic() < deadline:
        if app.process.poll() is not None:
            raise RuntimeError(f"Streamlit exited with {app.process.returncode}:\n"
                               f"{app.log_tail()}")
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
            row = connection.execute(
                "SELECT 1 FROM episodes WHERE name = ? AND system = ? AND severity = ? "
                "AND state = 'firing' AND evaluated_at >= ?",
                (name, system, severity, after),
            ).fetchone()
        if row is not None:
            return
        time.sleep(1.0)
    raise RuntimeError(f"Alert {name} ({severity}) on {system} did not fire within "
                       f"{timeout_s:g} s:\n{app.log_tail()}")


@dataclass
class BlockedRequests:
    """URLs of requests that the route handler aborted because they left 127.0.0.1."""

    urls: list[str] = field(default_factory=list)

    def handle(self, route: Route) -> None:
        if urlsplit(route.request.url).hostname in ALLOWED_HOSTS:
            route.continue_()
        else:
            self.urls.append(route.request.url)
            route.abort()


@contextmanager
def browser_context(
    playwright: Playwright,
    *,
    width: int = 1440,
    height: int = 900,
    color_scheme: str = "light",
    timezone_id: str | None = None,
    blocked: BlockedRequests | None = None,
) -> Iterator[BrowserContext]:
    """Launch Chromium with a fresh user-data directory and yield its only context."""
    blocked = blocked if blocked is not None else BlockedRequests()
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        context = playwright.chromium.launch_persistent_context(
            user_data_dir=profile,
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": width, "height": height},
            color_scheme=color_scheme,  # type: ignore[arg-type]
            timezone_id=timezone_id,
            accept_downloads=True,
        )
        try:
            context.route("**/*", blocked.handle)
            yield context
        finally:
            context.close()


def open_page(context: BrowserContext, url: str) -> Page:
    """Open `url` in the context's tab and wait until the script run has finished."""
    page = context.pages[0] if context.pages else context.new_page()
    page.goto(url)
    wait_for_idle(page)
    return page


def wait_for_idle(page: Page, timeout_ms: float = 30_000) -> None:
    """Wait until no script run is in progress and no element is still a loading placeholder.

    A fragment's first run can end after the page's run, so its elements show as skeletons
    for a moment after the app reports that it is not running.
    """
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]',
                           timeout=timeout_ms)
    page.wait_for_selector('[data-testid="stMain"] h1', timeout=timeout_ms)
    page.wait_for_function(
        """() => document.querySelector(
            '[data-testid="stMain"] [data-testid="stSkeleton"]') === null""",
        timeout=timeout_ms,
    )


# Counts what each Vega chart has drawn: line paths with a non-empty box in an SVG rendering,
# or pixels near a system colour on a canvas. Streamlit draws a chart as SVG unless a dataset
# has more than 2000 rows, and then on a canvas.
_CHART_MARKS_JS = """
(colours) => {
  const wanted = Object.entries(colours).map(([name, hex]) => [name, [1, 3, 5].map(
      (i) => parseInt(hex.slice(i, i + 2), 16))]);
  const near = (r, g, b, rgb) => Math.abs(r - rgb[0]) + Math.abs(g - rgb[1])
      + Math.abs(b - rgb[2]) < 30;
  const parse = (text) => (text.match(/\\d+/g) || []).slice(0, 3).map(Number);
  return Array.from(document.querySelectorAll('[data-testid="stVegaLiteChart"]')).map((chart) => {
    const box = chart.getBoundingClientRect();
    const result = {renderer: 'none', width: box.width, height: box.height, right: box.right,
                    marks: 0, bySystem: {}, subtitle: null};
    for (const [name] of wanted) result.bySystem[name] = 0;
    const svg = chart.querySelector('svg.marks');
    const canvas = chart.querySelector('canvas.marks');
    if (svg) {
      result.renderer = 'svg';
      const subtitle = svg.querySelector('.role-title-subtitle text');
      result.subtitle = subtitle ? subtitle.textContent : null;
      for (const path of svg.querySelectorAll('.mark-line path')) {
        const bounds = path.getBBox();
        if ((path.getAttribute('d') || '').length < 8 || (bounds.width + bounds.height) === 0) {
          continue;
        }
        result.marks += 1;
        const stroke = parse(getComputedStyle(path).stroke);
        for (const [name, rgb] of wanted) {
          if (near(stroke[0], stroke[1], stroke[2], rgb)) result.bySystem[name] += 1;
        }
      }
    } else if (canvas && canvas.width > 0 && canvas.height > 0) {
      result.renderer = 'canvas';
      const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
      for (let i = 0; i < pixels.length; i += 4) {
        if (pixels[i + 3] < 200) continue;
        for (const [name, rgb] of wanted) {
          if (near(pixels[i], pixels[i + 1], pixels[i + 2], rgb)) {
            result.bySystem[name] += 1;
            result.marks += 1;
          }
        }
      }
    }
    return result;
  });
}
"""


def chart_marks(page: Page) -> list[dict[str, object]]:
    """Return, for each Vega chart on the page, its renderer, size and drawn marks."""
    result: list[dict[str, object]] = page.evaluate(_CHART_MARKS_JS, SYSTEM_COLOURS)
    return result


def wait_for_charts(
    page: Page, minimum: int = 1, timeout_s: float = 30.0
) -> list[dict[str, object]]:
    """Wait until the page shows at least `minimum` charts and every chart has drawn marks."""
    deadline = time.monotonic() + timeout_s
    charts = chart_marks(page)
    while time.monotonic() < deadline:
        charts = chart_marks(page)
        if len(charts) >= minimum and all(int(str(chart["marks"])) > 0 for chart in charts):
            return charts
        page.wait_for_timeout(500)
    return charts
