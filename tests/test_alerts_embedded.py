"""Embedded alert rules on the simulated platform, driven by a manual clock."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from exporters.server import SimulatedPlatform
from exporters.simulator import Incident, SimulationConfig
from lib.alerts.embedded import EmbeddedAlerts, RuleEvaluator
from lib.alerts.model import AlertState
from lib.alerts.service import Alerts
from lib.auth import Role, User
from lib.collector import Collector
from lib.errors import AccessDeniedError, AlertError
from lib.http import make_client
from lib.monitor import current_values
from lib.sources.embedded import EmbeddedSource
from lib.store import Store
from tests.conftest import make_settings

T0 = 1_700_002_800.0
SCRAPE = 15.0
BURST = (T0 + 600, 420.0)
OUTAGE = (T0 + 1500, 120.0)
OPERATOR = User("olga", Role.OPERATOR)


@dataclass
class Run:
    platform: SimulatedPlatform
    collector: Collector
    alerts: Alerts
    backend: EmbeddedAlerts
    clock: list[float]

    def scrape_until(self, end: float) -> None:
        while self.clock[0] < end:
            self.clock[0] += SCRAPE
            self.platform.simulator.advance_to(self.clock[0])
            self.collector.scrape_once(now=self.clock[0])

    def firing(self, name: str) -> list[str]:
        """Return the severities of `name` firing on relaycore now."""
        return sorted(a.severity for a in self.backend.active(self.clock[0])
                      if a.name == name and a.system == "relaycore")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    config = SimulationConfig(
        seed=3,
        incidents=(
            Incident("error_burst", "relaycore", BURST[0], BURST[1], 0.5),
            Incident("outage", "relaycore", OUTAGE[0], OUTAGE[1]),
        ),
    )
    clock = [T0]
    platform = SimulatedPlatform(config, "127.0.0.1", (0, 0, 0), clock=lambda: clock[0],
                                 tick_seconds=3600)
    platform.start()
    data_dir: Path = tmp_path_factory.mktemp("alerts")
    settings = make_settings({"relaycore": platform.urls["relaycore"]}, data_dir)
    store = Store(data_dir / "metrics.sqlite")
    backend = EmbeddedAlerts(data_dir / "alerts.sqlite")
    source = EmbeddedSource(store, SCRAPE)
    evaluator = RuleEvaluator(settings, backend, current_values(source, settings))
    collector = Collector(settings, store, make_client(), clock=lambda: clock[0],
                          after_cycle=evaluator.evaluate)
    collector.scrape_once(now=T0)
    yield Run(platform, collector, Alerts(backend, clock=lambda: clock[0]), backend, clock)
    platform.stop()


def test_error_burst_waits_for_for(run: Run) -> None:
    run.scrape_until(BURST[0] + 90)
    # The error rate is over both thresholds, but not yet for the critical rule's 2 minutes.
    assert run.firing("HighErrorRate") == []
    run.scrape_until(BURST[0] + 210)
    assert run.firing("HighErrorRate") == ["critical"]
    # The warning rule waits 5 minutes, as the generated Prometheus rule does.
    run.scrape_until(BURST[0] + 360)
    assert run.firing("HighErrorRate") == ["critical", "warning"]
    alert = next(a for a in run.backend.active(run.clock[0]) if a.severity == "critical")
    assert alert.state is AlertState.FIRING
    assert alert.labels == {"alertname": "HighErrorRate", "system": "relaycore",
                            "severity": "critical"}
    assert alert.started_at >= BURST[0] + 120
    assert "RelayCore error rate" in alert.summary


def test_acknowledgement_silences_alert(run: Run) -> None:
    run.scrape_until(BURST[0] + 240)
    alert = next(a for a in run.alerts.active() if a.severity == "critical")
    result = run.alerts.acknowledge(alert, OPERATOR, "provider outage", run.clock[0] + 3600)
    assert result.delivered

    shown = next(a for a in run.alerts.active() if a.id == alert.id)
    assert shown.state is AlertState.SILENCED
    assert shown.acknowledgement is not None
    assert shown.acknowledgement.acknowledged_by == "olga"
    assert shown.acknowledgement.comment == "provider outage"
    assert shown.acknowledgement.expires_at == run.clock[0] + 3600


def test_invalid_acknowledgements_rejected(run: Run) -> None:
    alert = run.alerts.active()[0]
    with pytest.raises(AlertError, match="comment is required"):
        run.alerts.acknowledge(alert, OPERATOR, "   ", run.clock[0] + 3600)
    with pytest.raises(AlertError, match="future"):
        run.alerts.acknowledge(alert, OPERATOR, "late", run.clock[0] - 1)
    with pytest.raises(AccessDeniedError):
        run.alerts.acknowledge(alert, User("vera", Role.VIEWER), "no", run.clock[0] + 60)


def test_error_burst_resolves(run: Run) -> None:
    run.scrape_until(BURST[0] + BURST[1] + 120)
    assert run.firing("HighErrorRate") == []
    resolved = run.alerts.resolved(T0, run.clock[0])
    assert sorted(a.severity for a in resolved if a.name == "HighErrorRate") == [
        "critical", "warning"]
    assert all(a.state is AlertState.RESOLVED for a in resolved)
    for alert in resolved:
        assert alert.resolved_at is not None
        assert alert.resolved_at > BURST[0] + BURST[1]


def test_outage_fires_system_down(run: Run) -> None:
    run.scrape_until(OUTAGE[0] + 45)
    assert run.firing("SystemDown") == []
    run.scrape_until(OUTAGE[0] + 100)
    assert run.firing("SystemDown") == ["critical"]
    assert run.alerts.firing_counts()["relaycore"] == 1
    # No traffic data while down: the error rule does not fire on missing values.
    assert run.firing("HighErrorRate") == []


def test_outage_resolves(run: Run) -> None:
    run.scrape_until(OUTAGE[0] + OUTAGE[1] + 60)
    assert run.firing("SystemDown") == []
    resolved = [a for a in run.alerts.resolved(T0, run.clock[0]) if a.name == "SystemDown"]
    assert len(resolved) == 1
    assert resolved[0].started_at >= OUTAGE[0] + 60
    assert run.alerts.firing_counts()["relaycore"] == 0


def test_extend_and_remove(tmp_path: Path) -> None:
    backend = EmbeddedAlerts(tmp_path / "alerts.sqlite")
    clock = [T0]
    alerts = Alerts(backend, clock=lambda: clock[0])
    labels = {"alertname": "SystemDown", "system": "relaycore", "severity": "critical"}
    from lib.alerts.model import Alert, fingerprint
    alert = Alert(fingerprint(labels), "relaycore", "SystemDown", "critical", "down",
                  AlertState.FIRING, T0, labels)

    alerts.acknowledge(alert, OPERATOR, "rebooting", T0 + 600)
    assert alerts.extend(alert, OPERATOR, T0 + 7200).delivered
    ack = backend._acknowledgements(T0)[alert.id]
    assert ack.expires_at == T0 + 7200
    assert ack.acknowledged_by == "olga"

    assert alerts.remove(alert, OPERATOR).delivered
    assert backend._acknowledgements(T0) == {}
    assert not alerts.extend(alert, OPERATOR, T0 + 9000).delivered


def test_state_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "alerts.sqlite"
    first = EmbeddedAlerts(path)
    from lib.alerts.model import Alert, fingerprint
    labels = {"alertname": "SystemDown", "system": "relaycore", "severity": "critical"}
    alert = Alert(fingerprint(labels), "relaycore", "SystemDown", "critical", "down",
                  AlertState.FIRING, T0, labels)
    Alerts(first, clock=lambda: T0).acknowledge(alert, OPERATOR, "kept", T0 + 600)
    first.close()

    second = EmbeddedAlerts(path)
    assert second._acknowledgements(T0)[alert.id].comment == "kept"


def test_no_data_keeps_firing_alert(tmp_path: Path) -> None:
    settings = make_settings({"relaycore": "http://127.0.0.1:9/metrics"}, tmp_path)
    backend = EmbeddedAlerts(tmp_path / "alerts.sqlite")
    values = {"up": 0.0}
    evaluator = RuleEvaluator(settings, backend, lambda system, now: dict(values))
    for step in range(6):
        evaluator.evaluate(T0 + 15 * step)
    down = [a for a in backend.active(T0 + 75) if a.name == "SystemDown"]
    assert [a.state for a in down] == [AlertState.FIRING]

    # After a restart the first evaluations see no data yet: the alert neither resolves nor
    # restarts its episode.
    values["up"] = float("nan")
    evaluator.evaluate(T0 + 90)
    still = [a for a in backend.active(T0 + 90) if a.name == "SystemDown"]
    assert [a.state for a in still] == [AlertState.FIRING]
    assert still[0].started_at == down[0].started_at
