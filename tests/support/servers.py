"""Real Prometheus, Alertmanager and VictoriaMetrics processes on free 127.0.0.1 ports, for tests.

Each server runs from Debian's binary with its storage in a temporary directory, and `stop()`
terminates only the process it started. `history_text` turns simulated scrapes into the
timestamped text that Prometheus's backfill (`promtool tsdb create-blocks-from openmetrics`) and
VictoriaMetrics's `/api/v1/import/prometheus` accept, so a test gets hours of 15 s data in
seconds.
"""

from __future__ import annotations

import math
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.fault_server import free_port

PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
VICTORIA_METRICS = "/usr/bin/victoria-metrics"
STARTUP_TIMEOUT_S = 30.0


@dataclass
class ServerProcess:
    """One server process: its base URL, log file and the readiness path to poll."""

    name: str
    args: list[str]
    port: int
    ready_path: str
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerProcess:
        """Start the process and wait until its readiness path returns HTTP 200."""
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at startup:\n{self.log()}")
            try:
                if httpx.get(self.url + self.ready_path, timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"{self.name} was not ready within {STARTUP_TIMEOUT_S:g} s:\n{self.log()}"
        )

    def stop(self) -> None:
        """Terminate the process (kill it after 10 s) and wait for it."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def prometheus(
    directory: Path, config: str = "global: {}\n", port: int | None = None
) -> ServerProcess:
    """Return a Prometheus (not started) with `config` and its TSDB under `directory`.

    Retention is 100 years because Prometheus deletes backfilled blocks older than retention,
    measured from the newest block.
    """
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "prometheus.yml").write_text(config, encoding="utf-8")
    port = port or free_port()
    return ServerProcess(
        "prometheus",
        [
            PROMETHEUS,
            f"--config.file={directory / 'prometheus.yml'}",
            f"--storage.tsdb.path={directory / 'data'}",
            "--storage.tsdb.retention.time=100y",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        port,
        "/-/ready",
        directory / "prometheus.log",
    )


def backfill(directory: Path, openmetrics: str) -> None:
    """Write `openmetrics` as TSDB blocks into the data directory of `prometheus(directory)`."""
    source = directory / "history.om"
    source.write_text(openmetrics, encoding="utf-8")
    subprocess.run(
        [PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", str(source),
         str(directory / "data")],
        check=True, capture_output=True, timeout=300,
    )


def victoria_metrics(
    directory: Path, port: int | None = None, scrape_config: str | None = None
) -> ServerProcess:
    """Return a single-node VictoriaMetrics (not started) storing under `directory`, scraping
    the jobs of the Prometheus-format `scrape_config` when one is given.

    Retention is 100 years because VictoriaMetrics rejects imported samples older than it.
    """
    directory.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    scraping = []
    if scrape_config is not None:
        (directory / "scrape.yml").write_text(scrape_config, encoding="utf-8")
        # Queries see samples up to 1 s old, not the default 30 s, so that a test can read
        # what was just scraped.
        scraping = [f"-promscrape.config={directory / 'scrape.yml'}", "-search.latencyOffset=1s"]
    return ServerProcess(
        "victoria-metrics",
        [
            VICTORIA_METRICS,
            f"-httpListenAddr=127.0.0.1:{port}",
            f"-storageDataPath={directory / 'data'}",
            "-retentionPeriod=100y",
            "-search.disableCache",
            *scraping,
        ],
        port,
        "/health",
        directory / "victoria-metrics.log",
    )


def import_into_victoria_metrics(server: ServerProcess, text: str) -> None:
    """Import Prometheus text with millisecond timestamps and make it searchable at once."""
    response = httpx.post(server.url + "/api/v1/import/prometheus", content=text.encode(),
                          timeout=120)
    response.raise_for_status()
    httpx.get(server.url + "/internal/force_flush", timeout=30).raise_for_status()


def alertmanager(directory: Path, config: str, port: int | None = None) -> ServerProcess:
    """Return an Alertmanager (not started) with `config`, clustering off."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "alertmanager.yml").write_text(config, encoding="utf-8")
    port = port or free_port()
    return ServerProcess(
        "alertmanager",
        [
            ALERTMANAGER,
            f"--config.file={directory / 'alertmanager.yml'}",
            f"--storage.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        port,
        "/-/ready",
        directory / "alertmanager.log",
    )


Scrape = tuple[str, float, str | None]  # system, timestamp (epoch seconds), exposition or None


def history_text(
    scrapes: Iterable[Scrape], jobs: Mapping[str, str], openmetrics: bool
) -> str:
    """Return the scrapes as timestamped samples with `job` and `instance` labels plus an `up`
    series, grouped by series as OpenMetrics requires.

    `openmetrics=True` gives seconds and a closing `# EOF` (promtool's backfill input); False
    gives Prometheus text with millisecond timestamps (VictoriaMetrics's import input).
    """
    series: dict[str, list[tuple[float, float]]] = {}
    for system, ts, text in scrapes:
        base = {"job": jobs[system], "instance": f"{system}.test:80"}
        series.setdefault(_series_key("up", base), []).append((ts, 0.0 if text is None else 1.0))
        if text is None:
            continue
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue
                key = _series_key(sample.name, {**base, **sample.labels})
                series.setdefault(key, []).append((ts, float(sample.value)))

    lines = []
    for key in sorted(series):
        for ts, value in series[key]:
            stamp = f"{ts:.3f}" if openmetrics else str(round(ts * 1000))
            lines.append(f"{key} {_format_value(value)} {stamp}")
    if openmetrics:
        lines.append("# EOF")
    return "\n".join(lines) + "\n"


def _series_key(name: str, labels: Mapping[str, str]) -> str:
    rendered = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    return f"{name}{{{rendered}}}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _format_value(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)
