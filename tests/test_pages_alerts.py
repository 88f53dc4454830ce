"""The Alerts page, the login gate and the Overview's alert counts, through AppTest, against a
real Alertmanager on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import lib.monitor
from app_pages.access import USER_KEY
from lib.alerts.alertmanager import AlertmanagerAlerts, AlertmanagerAPI
from lib.alerts.outbox import Outbox
from lib.alerts.service import Alerts
from lib.auth import Role, User, hash_password
from lib.config import AuthSettings, PasswordUser
from lib.http import make_client
from lib.monitor import Monitor, Runtime
from lib.sources.embedded import EmbeddedSource
from lib.store import Store
from tests.conftest import make_settings
from tests.support.alertmanager import AlertmanagerServer

APP = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")
LABELS = {"alertname": "HighErrorRate", "system": "relaycore", "severity": "critical"}
HOSTILE = "<script>alert(1)</script> **bold** [link](http://127.0.0.1/x) <b>html</b> # head"
PASSWORD_USERS = (
    PasswordUser("olga", hash_password("correct horse"), email="olga@example.com"),
    PasswordUser("victor", hash_password("battery staple"), email="victor@example.com"),
)
PASSWORD_AUTH = AuthSettings(operators=("olga@example.com",), users=PASSWORD_USERS)


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[AlertmanagerServer]:
    server = AlertmanagerServer(tmp_path / "am")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def monitor(alertmanager: AlertmanagerServer, tmp_path: Path) -> Iterator[Monitor]:
    urls = {system: f"http://127.0.0.1:9/{system}" for system in
            ("automatrix", "relaycore", "neuroweaver")}
    settings = make_settings(urls, tmp_path / "data")
    store = Store(tmp_path / "data" / "metrics.sqlite")
    api = AlertmanagerAPI(alertmanager.url, make_client(), timeout=2.0)
    alerts = Alerts(AlertmanagerAlerts(api, Outbox(tmp_path / "data" / "alert-outbox.sqlite")))
    monitor = Monitor(settings, EmbeddedSource(store, 15.0), store, alerts=alerts)
    previous = lib.monitor._MONITOR
    lib.monitor._MONITOR = (monitor, Runtime())
    yield monitor
    lib.monitor._MONITOR = previous


def use_auth(monitor: Monitor, auth: AuthSettings) -> None:
    monitor.settings = replace(monitor.settings, auth=auth)


def alerts_page(user: User | None = None) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=30)
    if user is not None:
        app.session_state[USER_KEY] = user
    app.run()
    app.switch_page("app_pages/alerts.py").run()
    assert not app.exception, app.exception
    return app


def sidebar_captions(user: User | None = None) -> list[str]:
    """Return the sidebar's captions on the Overview (AppTest drops the sidebar after
    switch_page)."""
    app = AppTest.from_file(APP, default_timeout=30)
    if user is not None:
        app.session_state[USER_KEY] = user
    app.run()
    return [str(caption.value) for caption in app.sidebar.caption]


def wait_listed(alertmanager: AlertmanagerServer) -> None:
    deadline = time.monotonic() + 5
    while not alertmanager.alerts():
        assert time.monotonic() < deadline, "Alertmanager did not list the posted alert"
        time.sleep(0.1)


def epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def table(app: AppTest, index: int = 0) -> list[dict[str, str]]:
    return list(app.dataframe[index].value.to_dict("records"))


def markdown_values(app: AppTest) -> list[str]:
    elements = [*app.markdown, *app.caption, *app.warning, *app.error, *app.info, *app.toast]
    return [str(element.value) for element in elements]


def test_posted_alert_appears(alertmanager: AlertmanagerServer, monitor: Monitor) -> None:
    alertmanager.post_alert(LABELS, "RelayCore error rate 40 % is over 10 %")
    wait_listed(alertmanager)

    app = alerts_page()

    rows = table(app)
    assert len(rows) == 1
    assert rows[0]["System"] == "relaycore"
    assert rows[0]["Alert"] == "HighErrorRate"
    assert rows[0]["Severity"].endswith("critical")
    assert rows[0]["Summary"] == "RelayCore error rate 40 % is over 10 %"
    assert rows[0]["State"] == "firing"
    assert rows[0]["Firing for"].startswith("5m")
    assert any("Auth is off" in caption for caption in sidebar_captions())


def test_form_acknowledges_with_name(alertmanager: AlertmanagerServer,
                                     monitor: Monitor) -> None:
    alertmanager.post_alert(LABELS, "errors")
    wait_listed(alertmanager)
    app = alerts_page()

    app.text_input(key="alerts.ack_name").input("Dana")
    app.text_area(key="alerts.comment").input("restarting the provider pool")
    assert app.selectbox(key="alerts.expiry").value == "4 hours"
    requested = time.time()
    app.button[0].click().run()  # the form's only submit button

    assert not app.exception
    assert [toast.value for toast in app.toast] == ["Acknowledged HighErrorRate on relaycore\\."]
    silences = alertmanager.active_silences()
    assert len(silences) == 1
    assert silences[0]["createdBy"] == "Dana"
    assert silences[0]["comment"] == "restarting the provider pool"
    assert epoch(silences[0]["endsAt"]) == pytest.approx(requested + 4 * 3600, abs=30)
    row = table(app)[0]
    assert row["State"] == "acknowledged"
    assert row["Acknowledged by"] == "Dana"
    assert row["Comment"] == "restarting the provider pool"
    assert row["Delivery"] == "delivered"


def test_form_requires_comment(alertmanager: AlertmanagerServer, monitor: Monitor) -> None:
    alertmanager.post_alert(LABELS, "errors")
    wait_listed(alertmanager)
    app = alerts_page()

    app.text_input(key="alerts.ack_name").input("Dana")
    app.button[0].click().run()

    assert any("comment is required" in error.value for error in app.error)
    assert alertmanager.silences() == []


def test_form_removes_acknowledgement(alertmanager: AlertmanagerServer,
                                      monitor: Monitor) -> None:
    alertmanager.post_alert(LABELS, "errors")
    wait_listed(alertmanager)
    app = alerts_page()
    app.text_input(key="alerts.ack_name").input("Dana")
    app.text_area(key="alerts.comment").input("on it")
    app.button[0].click().run()
    assert len(alertmanager.active_silences()) == 1

    app.text_input(key="alerts.remove_name").input("Dana")
    remove = next(b for b in app.button if b.label == "Remove acknowledgement")
    remove.click().run()

    assert not app.exception
    assert alertmanager.active_silences() == []
    assert table(app)[0]["State"] == "firing"


def test_outage_keeps_acknowledgement(alertmanager: AlertmanagerServer,
                                      monitor: Monitor) -> None:
    alertmanager.post_alert(LABELS, "errors")
    wait_listed(alertmanager)
    app = alerts_page()
    alertmanager.stop()

    app.text_input(key="alerts.ack_name").input("Dana")
    app.text_area(key="alerts.comment").input("during the outage")
    app.button[0].click().run()

    assert not app.exception
    warnings = [warning.value for warning in app.warning]
    assert any("could not be delivered yet" in w for w in warnings)
    assert any("kept and will be retried" in w for w in warnings)
    assert any("wait for delivery" in w for w in warnings)
    assert monitor.alerts is not None
    assert [p.comment for p in monitor.alerts.pending_deliveries()] == ["during the outage"]


def test_hostile_text_shown_as_text(alertmanager: AlertmanagerServer, monitor: Monitor) -> None:
    labels = {"alertname": "HighErrorRate", "system": HOSTILE, "severity": "critical"}
    alertmanager.post_alert(labels, HOSTILE)
    wait_listed(alertmanager)
    app = alerts_page()
    app.text_input(key="alerts.ack_name").input(HOSTILE)
    app.text_area(key="alerts.comment").input(HOSTILE)
    app.button[0].click().run()
    assert not app.exception

    row = table(app)[0]
    assert row["System"] == HOSTILE
    assert row["Summary"] == HOSTILE
    assert row["Comment"] == HOSTILE
    assert row["Acknowledged by"] == HOSTILE
    labels_shown = table(app, 1)
    assert {"Label": "system", "Value": HOSTILE} in labels_shown
    assert app.selectbox(key="alerts.chosen").value is not None
    for value in markdown_values(app):
        assert "<script>" not in value
        assert "**bold**" not in value
        assert "[link](" not in value
    for element in [*app.markdown, *app.caption]:
        assert not element.proto.allow_html
    assert alertmanager.active_silences()[0]["comment"] == HOSTILE


def test_viewer_sees_no_form(alertmanager: AlertmanagerServer, monitor: Monitor) -> None:
    use_auth(monitor, PASSWORD_AUTH)
    alertmanager.post_alert(LABELS, "errors")
    wait_listed(alertmanager)

    app = alerts_page(User("victor", Role.VIEWER, email="victor@example.com"))

    assert len(table(app)) == 1
    assert len(app.text_area) == 0
    assert not any(button.label == "Acknowledge" for button in app.button)
    assert any("operator role" in info.value for info in app.info)
    viewer = User("victor", Role.VIEWER, email="victor@example.com")
    assert any("victor" in caption and "viewer" in caption
               for caption in sidebar_captions(viewer))


def test_operator_sees_form_without_name(alertmanager: AlertmanagerServer,
                                         monitor: Monitor) -> None:
    use_auth(monitor, PASSWORD_AUTH)
    alertmanager.post_alert(LABELS, "errors")
    wait_listed(alertmanager)
    app = alerts_page(User("olga", Role.OPERATOR, email="olga@example.com"))

    assert len(app.text_input) == 0  # the author is the logged-in user
    app.text_area(key="alerts.comment").input("mine")
    app.button[0].click().run()

    assert alertmanager.active_silences()[0]["createdBy"] == "olga"


def test_password_gate_shows_only_login(monitor: Monitor) -> None:
    use_auth(monitor, PASSWORD_AUTH)
    app = AppTest.from_file(APP, default_timeout=30).run()

    assert not app.exception
    assert [title.value for title in app.title] == ["Platform Monitor"]
    assert len(app.dataframe) == 0
    assert len(app.metric) == 0
    assert [text_input.label for text_input in app.text_input] == ["User name", "Password"]

    app.text_input(key="auth.username").input("olga")
    app.text_input(key="auth.password").input("wrong")
    app.button[0].click().run()
    assert any("wrong" in error.value for error in app.error)
    assert len(app.metric) == 0

    app.text_input(key="auth.username").input("olga")
    app.text_input(key="auth.password").input("correct horse")
    app.button[0].click().run()
    assert not app.exception
    assert [title.value for title in app.title] == ["Overview"]
    assert any("olga" in caption.value and "operator" in caption.value
               for caption in app.sidebar.caption)


def test_oidc_gate_shows_only_login(monitor: Monitor) -> None:
    app = AppTest.from_file(APP, default_timeout=30)
    app.secrets["auth"] = {"redirect_uri": "http://127.0.0.1:8501/oauth2callback",
                           "cookie_secret": "test", "client_id": "id", "client_secret": "s",
                           "server_metadata_url": "http://127.0.0.1:9/.well-known/x"}
    app.user = {"is_logged_in": False}
    app.run()

    assert not app.exception
    assert [button.label for button in app.button] == ["Log in"]
    assert [title.value for title in app.title] == ["Platform Monitor"]
    assert len(app.metric) == 0


def test_oidc_operator_by_group(alertmanager: AlertmanagerServer, monitor: Monitor) -> None:
    use_auth(monitor, AuthSettings(operator_groups=("oncall",)))
    alertmanager.post_alert(LABELS, "errors")
    wait_listed(alertmanager)
    app = AppTest.from_file(APP, default_timeout=30)
    app.secrets["auth"] = {"redirect_uri": "http://127.0.0.1:8501/oauth2callback",
                           "cookie_secret": "test", "client_id": "id", "client_secret": "s",
                           "server_metadata_url": "http://127.0.0.1:9/.well-known/x"}
    app.user = {"is_logged_in": True, "email": "pat@example.com", "groups": ["oncall"]}
    app.run()
    app.switch_page("app_pages/alerts.py").run()

    assert not app.exception
    app.text_area(key="alerts.comment").input("group member")
    next(b for b in app.button if b.label == "Acknowledge").click().run()
    assert alertmanager.active_silences()[0]["createdBy"] == "pat@example.com"


def test_overview_counts_firing(alertmanager: AlertmanagerServer, monitor: Monitor) -> None:
    alertmanager.post_alert(LABELS, "errors")
    alertmanager.post_alert({**LABELS, "severity": "warning"}, "errors")
    wait_listed(alertmanager)

    app = AppTest.from_file(APP, default_timeout=30).run()

    assert not app.exception
    captions = [caption.value for caption in app.caption]
    assert captions.count("Firing alerts: 2") == 1
    assert captions.count("Firing alerts: 0") == 2


@pytest.fixture
def embedded_monitor(tmp_path: Path) -> Iterator[Monitor]:
    from lib.alerts.embedded import EmbeddedAlerts, RuleEvaluator

    settings = make_settings({"relaycore": "http://127.0.0.1:9/metrics"}, tmp_path / "data")
    store = Store(tmp_path / "data" / "metrics.sqlite")
    backend = EmbeddedAlerts(tmp_path / "data" / "alerts.sqlite")
    values = {"error_rate": 0.5, "up": 1.0}
    evaluator = RuleEvaluator(settings, backend, lambda system, now: values)
    now = time.time()
    # An error burst that fired and resolved, then a system that has been down for 2 minutes.
    for t in (now - 1200, now - 1000, now - 900):
        evaluator.evaluate(t)
    values.update(error_rate=0.0)
    evaluator.evaluate(now - 600)
    values.update(error_rate=float("nan"), up=0.0)
    evaluator.evaluate(now - 120)
    evaluator.evaluate(now - 30)
    monitor = Monitor(settings, EmbeddedSource(store, 15.0), store, alerts=Alerts(backend))
    previous = lib.monitor._MONITOR
    lib.monitor._MONITOR = (monitor, Runtime())
    yield monitor
    lib.monitor._MONITOR = previous


def test_embedded_page_lists_and_acknowledges(embedded_monitor: Monitor) -> None:
    app = alerts_page()

    rows = table(app)
    assert [(row["Alert"], row["State"]) for row in rows] == [("SystemDown", "firing")]
    resolved = table(app, 2)
    assert sorted(row["Severity"] for row in resolved) == ["critical", "warning"]
    assert {row["Alert"] for row in resolved} == {"HighErrorRate"}

    app.text_input(key="alerts.ack_name").input("Dana")
    app.text_area(key="alerts.comment").input("power cycling")
    app.button[0].click().run()

    assert not app.exception
    row = table(app)[0]
    assert row["State"] == "acknowledged"
    assert row["Acknowledged by"] == "Dana"
    assert row["Delivery"] == "delivered"


def test_auth_off_warns_off_loopback(monitor: Monitor) -> None:
    from streamlit import config

    previous = config.get_option("server.address")
    config.set_option("server.address", "0.0.0.0")
    try:
        app = AppTest.from_file(APP, default_timeout=30).run()
    finally:
        config.set_option("server.address", previous)

    warnings = [str(warning.value) for warning in app.sidebar.warning]
    assert any("Auth is off" in warning for warning in warnings)
    assert any("0\\.0\\.0\\.0" in warning for warning in warnings)
