"""The Alertmanager backend and its outbox against a real Alertmanager on 127.0.0.1."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from lib.alerts.alertmanager import AlertmanagerAlerts, AlertmanagerAPI, matchers
from lib.alerts.model import Alert, AlertState, fingerprint
from lib.alerts.outbox import Outbox
from lib.alerts.service import Alerts
from lib.auth import Role, User
from lib.errors import AccessDeniedError, MonitorError
from lib.http import make_client
from tests.support.alertmanager import AlertmanagerServer

LABELS = {"alertname": "HighErrorRate", "system": "relaycore", "severity": "critical"}
OPERATOR = User("alice@example.com", Role.OPERATOR, email="alice@example.com")
VIEWER = User("victor@example.com", Role.VIEWER, email="victor@example.com")


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[AlertmanagerServer]:
    server = AlertmanagerServer(tmp_path / "am")
    server.start()
    yield server
    server.stop()


def make_alerts(server: AlertmanagerServer, data_dir: Path) -> Alerts:
    """Return a facade on the outbox in `data_dir`; a second call models an app restart."""
    api = AlertmanagerAPI(server.url, make_client(), timeout=2.0)
    return Alerts(AlertmanagerAlerts(api, Outbox(data_dir / "alert-outbox.sqlite")))


def backend(alerts: Alerts) -> AlertmanagerAlerts:
    assert isinstance(alerts.backend, AlertmanagerAlerts)
    return alerts.backend


def epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def firing_alert(alerts: Alerts) -> Alert:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        found = [a for a in alerts.active() if a.id == fingerprint(LABELS)]
        if found:
            return found[0]
        time.sleep(0.1)
    raise AssertionError("the posted alert did not appear")


def test_posted_alert_is_listed(alertmanager: AlertmanagerServer, tmp_path: Path) -> None:
    alertmanager.post_alert(LABELS, "RelayCore error rate 40 % is over 10 %")
    alert = firing_alert(make_alerts(alertmanager, tmp_path))
    assert alert.state is AlertState.FIRING
    assert alert.system == "relaycore"
    assert alert.name == "HighErrorRate"
    assert alert.severity == "critical"
    assert alert.summary == "RelayCore error rate 40 % is over 10 %"
    assert alert.labels == LABELS
    assert alert.acknowledgement is None


def test_acknowledge_creates_one_silence(alertmanager: AlertmanagerServer,
                                         tmp_path: Path) -> None:
    alertmanager.post_alert(LABELS, "errors")
    alerts = make_alerts(alertmanager, tmp_path)
    alert = firing_alert(alerts)
    expires_at = time.time() + 4 * 3600

    result = alerts.acknowledge(alert, OPERATOR, "looking into it", expires_at)

    assert result.delivered
    silences = alertmanager.active_silences()
    assert len(silences) == 1
    silence = silences[0]
    assert sorted(silence["matchers"], key=lambda m: m["name"]) == matchers(LABELS)
    assert all(m["isEqual"] is True and m["isRegex"] is False for m in silence["matchers"])
    assert silence["createdBy"] == "alice@example.com"
    assert silence["comment"] == "looking into it"
    assert epoch(silence["endsAt"]) == pytest.approx(expires_at, abs=0.01)

    shown = firing_alert(alerts)
    assert shown.state is AlertState.SILENCED
    assert shown.acknowledgement is not None
    assert shown.acknowledgement.acknowledged_by == "alice@example.com"
    assert shown.acknowledgement.comment == "looking into it"
    assert not shown.acknowledgement.pending


def test_extend_updates_the_silence(alertmanager: AlertmanagerServer, tmp_path: Path) -> None:
    alertmanager.post_alert(LABELS, "errors")
    alerts = make_alerts(alertmanager, tmp_path)
    alerts.acknowledge(firing_alert(alerts), OPERATOR, "on it", time.time() + 3600)
    later = time.time() + 8 * 3600

    result = alerts.extend(firing_alert(alerts), OPERATOR, later)

    assert result.delivered
    silences = alertmanager.active_silences()
    assert len(silences) == 1
    assert epoch(silences[0]["endsAt"]) == pytest.approx(later, abs=0.01)
    assert silences[0]["comment"] == "on it"


def test_remove_expires_the_silence(alertmanager: AlertmanagerServer, tmp_path: Path) -> None:
    alertmanager.post_alert(LABELS, "errors")
    alerts = make_alerts(alertmanager, tmp_path)
    alerts.acknowledge(firing_alert(alerts), OPERATOR, "on it", time.time() + 3600)

    result = alerts.remove(firing_alert(alerts), OPERATOR)

    assert result.delivered
    assert alertmanager.active_silences() == []
    assert [s["status"]["state"] for s in alertmanager.silences()] == ["expired"]
    assert firing_alert(alerts).acknowledgement is None


def test_outage_ack_survives_restart(alertmanager: AlertmanagerServer, tmp_path: Path) -> None:
    alertmanager.post_alert(LABELS, "errors")
    alerts = make_alerts(alertmanager, tmp_path)
    alert = firing_alert(alerts)
    alertmanager.stop()
    expires_at = time.time() + 4 * 3600

    result = alerts.acknowledge(alert, OPERATOR, "kept while down", expires_at)

    assert not result.delivered
    assert result.error is not None and "refused" in result.error
    assert len(alerts.pending_deliveries()) == 1

    # An app restart: a new backend on the same files still has the acknowledgement.
    restarted = make_alerts(alertmanager, tmp_path)
    pending = restarted.pending_deliveries()
    assert [(p.created_by, p.comment) for p in pending] == [("alice@example.com",
                                                             "kept while down")]

    alertmanager.start()
    alertmanager.post_alert(LABELS, "errors")
    shown = firing_alert(restarted)
    assert shown.acknowledgement is not None and shown.acknowledgement.pending

    # Due entries are delivered once, however often delivery runs and from how many instances.
    far_future = time.time() + 3600
    assert backend(restarted).deliver_due(far_future) == 1
    assert backend(restarted).deliver_due(far_future) == 0
    assert backend(alerts).deliver_due(far_future) == 0
    silences = alertmanager.active_silences()
    assert len(silences) == 1
    assert silences[0]["createdBy"] == "alice@example.com"
    assert silences[0]["comment"] == "kept while down"
    assert epoch(silences[0]["endsAt"]) == pytest.approx(expires_at, abs=0.01)
    assert restarted.pending_deliveries() == []
    shown = firing_alert(restarted)
    assert shown.acknowledgement is not None and not shown.acknowledgement.pending


def test_uncertain_attempt_posts_no_duplicate(alertmanager: AlertmanagerServer,
                                              tmp_path: Path) -> None:
    alertmanager.post_alert(LABELS, "errors")
    alerts = make_alerts(alertmanager, tmp_path)
    alert = firing_alert(alerts)
    outbox = backend(alerts).outbox
    now = time.time()
    expires_at = now + 3600
    # Stage an attempt whose response was lost: the silence exists, the outbox has no id for it.
    from lib.alerts.outbox import Action
    entry_id = outbox.add(alert.id, Action.ACKNOWLEDGE, LABELS, "alice@example.com", "lost",
                          now, expires_at)
    claimed = outbox.claim(entry_id, now, lease_seconds=0)
    assert claimed is not None
    silence_id = backend(alerts).api.post_silence({
        "matchers": matchers(LABELS), "startsAt": "2020-01-01T00:00:00Z",
        "endsAt": datetime.fromtimestamp(expires_at).astimezone().isoformat(),
        "createdBy": "alice@example.com", "comment": "lost",
    })

    assert backend(alerts).deliver_due(now + 1) == 1

    assert len(alertmanager.active_silences()) == 1
    assert outbox.get(entry_id).silence_id == silence_id


def test_leased_entry_is_not_sent_twice(alertmanager: AlertmanagerServer,
                                        tmp_path: Path) -> None:
    alerts = make_alerts(alertmanager, tmp_path)
    outbox = backend(alerts).outbox
    from lib.alerts.outbox import Action
    now = time.time()
    entry_id = outbox.add(fingerprint(LABELS), Action.ACKNOWLEDGE, LABELS, "alice", "x", now,
                          now + 3600)
    assert outbox.claim(entry_id, now, lease_seconds=60) is not None
    assert outbox.claim(entry_id, now + 1, lease_seconds=60) is None
    assert backend(alerts).deliver_due(now + 1) == 0
    assert alertmanager.active_silences() == []


def test_viewer_is_refused(alertmanager: AlertmanagerServer, tmp_path: Path) -> None:
    alertmanager.post_alert(LABELS, "errors")
    alerts = make_alerts(alertmanager, tmp_path)
    alert = firing_alert(alerts)

    with pytest.raises(AccessDeniedError) as raised:
        alerts.acknowledge(alert, VIEWER, "not mine to do", time.time() + 3600)

    assert isinstance(raised.value, PermissionError)
    assert isinstance(raised.value, MonitorError)
    with pytest.raises(AccessDeniedError):
        alerts.remove(alert, VIEWER)
    with pytest.raises(AccessDeniedError):
        alerts.extend(alert, VIEWER, time.time() + 7200)
    assert alerts.pending_deliveries() == []
    assert alertmanager.silences() == []


def test_background_deliverer_retries(alertmanager: AlertmanagerServer, tmp_path: Path) -> None:
    from dataclasses import replace

    from lib.config import AlertSettings, SimulatorSettings
    from lib.monitor import build_monitor
    from tests.conftest import make_settings

    settings = replace(
        make_settings({"relaycore": "http://127.0.0.1:9/metrics"}, tmp_path / "data"),
        simulator=SimulatorSettings(enabled=False),
        alerts=AlertSettings(backend="alertmanager", alertmanager_url=alertmanager.url,
                             alertmanager_timeout=2.0),
    )
    monitor, runtime = build_monitor(settings)
    try:
        assert runtime.deliverer is not None
        assert monitor.alerts is not None
        alertmanager.stop()
        alert = Alert(fingerprint(LABELS), "relaycore", "HighErrorRate", "critical", "errors",
                      AlertState.FIRING, time.time(), LABELS)
        result = monitor.alerts.acknowledge(alert, OPERATOR, "background", time.time() + 600)
        assert not result.delivered

        alertmanager.start()
        deadline = time.monotonic() + 20
        while monitor.alerts.pending_deliveries():
            assert time.monotonic() < deadline, "the deliverer did not deliver in 20 s"
            time.sleep(0.2)
        silences = alertmanager.active_silences()
        assert [(s["createdBy"], s["comment"]) for s in silences] == [
            ("alice@example.com", "background")]
    finally:
        runtime.stop()


class LosingProxy:
    """Forward requests to Alertmanager, but respond to a POST only after `post_delay` seconds, so
    that the client times out although Alertmanager has created the silence."""

    def __init__(self, target: str, post_delay: float) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        import httpx

        proxy = self
        self.posts = 0

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                reply = httpx.request(self.command, target + self.path, content=body,
                                      headers={"Content-Type": "application/json"}, timeout=5)
                if self.command == "POST":
                    proxy.posts += 1
                    time.sleep(post_delay)
                self.send_response(reply.status_code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply.content)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(reply.content)

            do_GET = do_POST = do_DELETE = _forward  # noqa: N815

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def test_slow_alertmanager_no_duplicate(alertmanager: AlertmanagerServer,
                                        tmp_path: Path) -> None:
    proxy = LosingProxy(alertmanager.url, post_delay=2.0)
    try:
        api = AlertmanagerAPI(proxy.url, make_client(), timeout=0.5)
        slow = Alerts(AlertmanagerAlerts(api, Outbox(tmp_path / "alert-outbox.sqlite")))
        alert = Alert(fingerprint(LABELS), "relaycore", "HighErrorRate", "critical", "errors",
                      AlertState.FIRING, time.time(), LABELS)
        expires_at = time.time() + 3600

        result = slow.acknowledge(alert, OPERATOR, "slow path", expires_at)

        assert not result.delivered
        assert result.error is not None and "timed out" in result.error
        assert proxy.posts == 1
        # The silence arrived, and only the response was lost.
        assert len(alertmanager.active_silences()) == 1
    finally:
        proxy.stop()

    # Alertmanager responds promptly again: the retry finds the silence instead of posting.
    fast = make_alerts(alertmanager, tmp_path)
    assert backend(fast).deliver_due(time.time() + 3600) == 1
    silences = alertmanager.active_silences()
    assert len(silences) == 1
    assert silences[0]["comment"] == "slow path"
    assert backend(fast).outbox.entries()[0].silence_id == silences[0]["id"]
