"""Tests of the /metrics ASGI app and ExporterServer over real HTTP on 127.0.0.1."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from exporters.app import metrics_app
from exporters.server import ExporterServer, ExporterStartError

TOKEN = "s3cret-token"


def make_registry(value: float = 3) -> CollectorRegistry:
    registry = CollectorRegistry()
    counter = Counter("demo_events", "Demo events.", registry=registry)
    counter.inc(value)
    return registry


class DownSwitch:
    """A flag that the app polls through `is_down`."""

    def __init__(self) -> None:
        self.down = False

    def __call__(self) -> bool:
        return self.down


@pytest.fixture
def down_switch() -> DownSwitch:
    return DownSwitch()


@pytest.fixture
def protected(down_switch: DownSwitch) -> Iterator[ExporterServer]:
    app = metrics_app(make_registry(), token=TOKEN, is_down=down_switch)
    with ExporterServer(app) as server:
        yield server


@pytest.fixture
def open_server() -> Iterator[ExporterServer]:
    with ExporterServer(metrics_app(make_registry())) as server:
        yield server


def test_open_app_serves_text_format(open_server: ExporterServer) -> None:
    response = httpx.get(f"{open_server.url}/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE_PLAIN_0_0_4
    assert "demo_events_total 3.0" in response.text


def test_missing_token_gets_401(protected: ExporterServer) -> None:
    response = httpx.get(f"{protected.url}/metrics")

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="metrics"'
    assert "demo_events" not in response.text


@pytest.mark.parametrize(
    ("authorization", "error"),
    [
        ("Bearer wrong-token", "invalid_token"),
        (f"Bearer {TOKEN}x", "invalid_token"),
        ("Bearer", "invalid_token"),
        (f"Basic {TOKEN}", "invalid_request"),
    ],
)
def test_wrong_credentials_get_401(
    protected: ExporterServer, authorization: str, error: str
) -> None:
    response = httpx.get(f"{protected.url}/metrics", headers={"Authorization": authorization})

    assert response.status_code == 401
    assert f'error="{error}"' in response.headers["www-authenticate"]


@pytest.mark.parametrize("scheme", ["Bearer", "bearer"])
def test_right_token_gets_200(protected: ExporterServer, scheme: str) -> None:
    response = httpx.get(
        f"{protected.url}/metrics", headers={"Authorization": f"{scheme} {TOKEN}"}
    )

    assert response.status_code == 200
    assert "demo_events_total 3.0" in response.text


def test_down_system_gets_503(protected: ExporterServer, down_switch: DownSwitch) -> None:
    down_switch.down = True
    headers = {"Authorization": f"Bearer {TOKEN}"}

    down = httpx.get(f"{protected.url}/metrics", headers=headers)
    unauthenticated = httpx.get(f"{protected.url}/metrics")
    down_switch.down = False
    back = httpx.get(f"{protected.url}/metrics", headers=headers)

    assert down.status_code == 503
    assert down.headers["content-type"].startswith("text/plain")
    assert "down" in down.text
    assert down.headers["retry-after"] == "5"
    assert unauthenticated.status_code == 401
    assert back.status_code == 200


def test_other_methods_and_paths(open_server: ExporterServer) -> None:
    assert httpx.post(f"{open_server.url}/metrics").status_code == 405
    assert httpx.get(f"{open_server.url}/").status_code == 404
    assert httpx.head(f"{open_server.url}/metrics").status_code == 200


def test_registry_source_function_is_called_per_request() -> None:
    registries = [make_registry(1), make_registry(2)]

    with ExporterServer(metrics_app(lambda: registries[0])) as server:
        first = httpx.get(f"{server.url}/metrics").text
        registries.reverse()
        second = httpx.get(f"{server.url}/metrics").text

    assert "demo_events_total 1.0" in first
    assert "demo_events_total 2.0" in second


def test_mount_under_starlette() -> None:
    def home(request: object) -> PlainTextResponse:
        return PlainTextResponse("home")

    parent = Starlette(
        routes=[
            Route("/", home),
            Mount("/exporters/relaycore", app=metrics_app(make_registry(), token=TOKEN)),
        ]
    )
    headers = {"Authorization": f"Bearer {TOKEN}"}

    with ExporterServer(parent) as server:
        mounted = httpx.get(f"{server.url}/exporters/relaycore/metrics", headers=headers)
        unauthenticated = httpx.get(f"{server.url}/exporters/relaycore/metrics")
        home_page = httpx.get(f"{server.url}/")

    assert mounted.status_code == 200
    assert "demo_events_total 3.0" in mounted.text
    assert unauthenticated.status_code == 401
    assert home_page.text == "home"


def test_empty_token_rejected() -> None:
    with pytest.raises(ValueError, match="empty"):
        metrics_app(make_registry(), token="")


def test_bad_registry_source_rejected() -> None:
    with pytest.raises(TypeError, match="registry_source"):
        metrics_app(42)  # type: ignore[arg-type]


def test_server_picks_free_port_and_stops() -> None:
    server = ExporterServer(metrics_app(make_registry()), port=0)
    server.start()
    port = server.port
    url = server.url

    assert port > 0
    assert url == f"http://127.0.0.1:{port}"
    assert server.running
    with pytest.raises(RuntimeError, match="already started"):
        server.start()

    server.stop()
    assert not server.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/metrics")


def test_server_reports_port_in_use() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy_port = holder.getsockname()[1]
        server = ExporterServer(metrics_app(make_registry()), port=busy_port)

        with pytest.raises(ExporterStartError, match="Cannot listen") as caught:
            server.start()

    assert caught.value.port == busy_port
    assert not server.running


def test_server_rejects_invalid_port() -> None:
    with pytest.raises(ValueError, match="Invalid port"):
        ExporterServer(metrics_app(make_registry()), port=70000)
