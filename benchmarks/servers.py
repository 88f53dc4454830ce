"""Start Prometheus and VictoriaMetrics on free 127.0.0.1 ports over a given data directory."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import httpx

PROMETHEUS_BINARY = "/usr/bin/prometheus"
VICTORIA_BINARY = "/usr/bin/victoria-metrics"
START_TIMEOUT_S = 120.0


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """A server process that stops when the `with` block ends."""

    def __init__(self, name: str, command: list[str], url: str, ready_path: str,
                 log_path: Path) -> None:
        self.name = name
        self.url = url
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)
        self._wait_ready(ready_path)

    def _wait_ready(self, path: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with code {self.process.returncode}; "
                    f"see {self._log.name}"
                )
            try:
                if httpx.get(self.url + path, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.name} was not ready after {START_TIMEOUT_S:g} s")

    def rss_bytes(self) -> int:
        """Return the process's resident memory from /proc."""
        return rss_bytes(self.process.pid)

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL after 20 s)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()


def start_prometheus(data_dir: Path, log_dir: Path) -> Server:
    """Start Prometheus over the TSDB in `data_dir` with no scrape jobs."""
    config = log_dir / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 15s\n", encoding="utf-8")
    port = free_port()
    command = [
        PROMETHEUS_BINARY, f"--config.file={config}", f"--storage.tsdb.path={data_dir}",
        f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=100y",
    ]
    return Server("Prometheus", command, f"http://127.0.0.1:{port}", "/-/ready",
                  log_dir / "prometheus.log")


def start_victoria(data_dir: Path, log_dir: Path) -> Server:
    """Start single-node VictoriaMetrics over `data_dir`, keeping data for 100 years."""
    port = free_port()
    command = [
        VICTORIA_BINARY, f"-storageDataPath={data_dir}", f"-httpListenAddr=127.0.0.1:{port}",
        "-retentionPeriod=100y", "-search.latencyOffset=0s",
    ]
    return Server("VictoriaMetrics", command, f"http://127.0.0.1:{port}", "/health",
                  log_dir / "victoria.log")


def cpu_seconds(pid: int) -> float:
    """Return the user and system CPU time that process `pid` has used, from /proc/<pid>/stat
    (in clock ticks of 1/SC_CLK_TCK seconds, usually 10 ms)."""
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()
    # After the command name: state is field 3, so utime (14) and stime (15) sit at 11 and 12.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """Return the resident memory of process `pid` in bytes, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0
