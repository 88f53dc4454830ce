"""No bearer token or URL password reaches a log line, a stored error or a page message."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from lib.cache import ResultCache
from lib.collector import Collector
from lib.config import Settings, TargetConfig
from lib.http import make_client
from lib.monitor import Monitor, configure_logging
from lib.sources.embedded import EmbeddedSource
from lib.store import Store
from tests.conftest import make_settings
from tests.support.fault_server import Behaviour, FaultServer, free_port

TOKEN = "tok-3c1b9a7e-do-not-log"
PASSWORD = "pw-5e2d-do-not-log"
T0 = 1_700_002_800.0


def with_token(settings: Settings) -> Settings:
    target = settings.targets[0]
    secured = TargetConfig(target.system, target.display_name, target.url, target.colour,
                           target.metric_prefix, bearer_token=TOKEN,
                           thresholds=target.thresholds)
    return Settings(targets=(secured,), storage=settings.storage)


def run_cycles(settings: Settings, tmp_path: Path) -> list[str]:
    """Scrape three times, read the overview and targets; return every message produced."""
    store = Store(tmp_path / "metrics.sqlite")
    collector = Collector(settings, store, make_client(), clock=lambda: T0)
    monitor = Monitor(settings, EmbeddedSource(store, 15.0), store, clock=lambda: T0 + 45,
                      cache=ResultCache(tmp_path / "cache"))
    for i in range(3):
        collector.scrape_once(now=T0 + 15 * i)
    time_range = monitor.time_range("1h", now=T0 + 45)
    messages: list[str] = []
    for health in monitor.overview(settings.systems, time_range):
        messages += [*health.reasons, health.last_error or "", health.stale_reason or ""]
    for status in monitor.targets():
        messages.append(status.last_error or "")
    return messages


FAULTS = {
    "http_401": Behaviour(status=401),
    "http_500": Behaviour(status=500, body=b"Authorization: Bearer echoed"),
    "not_metrics": Behaviour(body=b"<html>login</html>", content_type="text/html"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_bearer_token_never_shown(fault_server: FaultServer, tmp_path: Path,
                                  caplog: pytest.LogCaptureFixture, fault: str) -> None:
    fault_server.behaviour = FAULTS[fault]
    settings = with_token(make_settings({"relaycore": fault_server.url}, tmp_path))
    with caplog.at_level(logging.DEBUG):
        messages = run_cycles(settings, tmp_path)
    assert fault_server.last_headers.get("Authorization") == f"Bearer {TOKEN}"
    assert any(message for message in messages)
    assert TOKEN not in caplog.text
    for message in messages:
        assert TOKEN not in message


def test_refused_with_token_never_shown(tmp_path: Path,
                                        caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{free_port()}/metrics"
    settings = with_token(make_settings({"relaycore": url}, tmp_path))
    with caplog.at_level(logging.DEBUG):
        messages = run_cycles(settings, tmp_path)
    assert any("refused the connection" in message for message in messages)
    assert TOKEN not in caplog.text
    for message in messages:
        assert TOKEN not in message


def test_url_password_redacted(fault_server: FaultServer, tmp_path: Path,
                               caplog: pytest.LogCaptureFixture) -> None:
    fault_server.behaviour = Behaviour(status=503)
    url = fault_server.url.replace("http://", f"http://monitor:{PASSWORD}@")
    settings = make_settings({"relaycore": url}, tmp_path)
    configure_logging()
    with caplog.at_level(logging.INFO):
        messages = run_cycles(settings, tmp_path)
    assert "monitor:***@" in caplog.text
    assert PASSWORD not in caplog.text
    for message in messages:
        assert PASSWORD not in message
