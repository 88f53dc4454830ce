"""The collector as a process of its own (`python -m lib.collect`) beside a reading app."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lib.config import load_settings
from lib.monitor import build_monitor
from tests.support.fault_server import free_port

ROOT = Path(__file__).resolve().parent.parent


def _write_config(directory: Path) -> Path:
    ports = [free_port() for _ in range(3)]
    path = directory / "platform-monitor.toml"
    path.write_text(
        f'[simulator]\nenabled = true\nincidents = false\nbackfill = "2m"\n'
        f'ports = [{", ".join(map(str, ports))}]\n\n'
        f'[collector]\nscrape_interval = "1s"\nscrape_timeout = "1s"\n\n'
        f'[storage]\ndata_dir = "{directory / "data"}"\n',
        encoding="utf-8",
    )
    return path


def _start(config: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PLATFORM_MONITOR_CONFIG", None)
    return subprocess.Popen(
        [sys.executable, "-m", "lib.collect", "--config", str(config)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _wait_for_scrapes(config: Path, count: int, timeout: float = 60.0) -> None:
    settings = load_settings(config, {})
    from lib.store import Store  # noqa: PLC0415

    deadline = time.monotonic() + timeout
    store_path = settings.storage.data_dir / "metrics.sqlite"
    while time.monotonic() < deadline:
        if store_path.exists():
            records = Store(store_path).targets()
            if len(records) == 3 and all(
                r.health == "up" and r.last_scrape_at and r.last_scrape_at > time.time() - 3
                for r in records
            ):
                count -= 1
                if count <= 0:
                    return
        time.sleep(0.5)
    raise AssertionError(f"the collector process wrote no live scrapes within {timeout} s")


def test_app_reads_what_a_separate_collector_writes(tmp_path: Path) -> None:
    config = _write_config(tmp_path)
    process = _start(config)
    try:
        _wait_for_scrapes(config, 2)
        second = _start(config)
        _, error = second.communicate(timeout=30)
        assert second.returncode == 1
        assert "already runs the collector" in error

        settings = load_settings(config, {})
        monitor, runtime = build_monitor(settings)
        try:
            # The lock is held, so this process reads only: no collector, no platform.
            assert runtime.collector is None
            assert runtime.platform is None
            now = time.time()
            healths = monitor.overview(settings.systems, monitor.time_range("1h", now), now)
            for health in healths:
                assert not health.stale, health.stale_reason
                assert health.requests_per_second is not None
                assert health.requests_per_second > 0
                assert health.availability == pytest.approx(1.0)
        finally:
            runtime.stop()
    finally:
        process.send_signal(signal.SIGTERM)
        _, error = process.communicate(timeout=30)
    assert process.returncode == 0, error
    assert "collector stopped after" in error

    # The lock is free again: the next process collects.
    settings = load_settings(config, {})
    _, runtime = build_monitor(settings)
    try:
        assert runtime.collector is not None
    finally:
        runtime.stop()


def test_refuses_a_prometheus_source(tmp_path: Path) -> None:
    config = tmp_path / "platform-monitor.toml"
    config.write_text('[source]\nkind = "prometheus"\nurl = "http://127.0.0.1:9"\n',
                      encoding="utf-8")
    process = _start(config)
    _, error = process.communicate(timeout=30)
    assert process.returncode == 2
    assert "no collector to run" in error
