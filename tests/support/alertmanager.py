"""Debian's Alertmanager on a free 127.0.0.1 port, for tests: start, stop, start again on the
same port and storage, and post alerts as Prometheus would."""

from __future__ import annotations

import socket
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

BINARY = "/usr/bin/prometheus-alertmanager"
CONFIG = """\
route:
  receiver: "null"
  group_wait: 1s
receivers:
  - name: "null"
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class AlertmanagerServer:
    """One Alertmanager process with its configuration and storage under `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "alertmanager.yml").write_text(CONFIG)
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.directory / "alertmanager.log").open("ab")
        self._process = subprocess.Popen(
            [
                BINARY,
                f"--config.file={self.directory / 'alertmanager.yml'}",
                f"--storage.path={self.directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"Alertmanager did not become ready on {self.url}")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def post_alert(self, labels: dict[str, str], summary: str, minutes: int = 60) -> None:
        """Post one firing alert that stays active for `minutes`."""
        now = datetime.now(UTC)
        alert = {
            "labels": labels,
            "annotations": {"summary": summary},
            "startsAt": (now - timedelta(minutes=5)).isoformat(),
            "endsAt": (now + timedelta(minutes=minutes)).isoformat(),
        }
        httpx.post(f"{self.url}/api/v2/alerts", json=[alert], timeout=5).raise_for_status()

    def silences(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/api/v2/silences", timeout=5)
        response.raise_for_status()
        return list(response.json())

    def active_silences(self) -> list[dict[str, Any]]:
        return [s for s in self.silences() if s["status"]["state"] != "expired"]

    def alerts(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/api/v2/alerts", timeout=5)
        response.raise_for_status()
        return list(response.json())
