"""The Prometheus backend's failures, warnings, concurrency and per-system errors.

Protocol faults come from the scriptable fault server; a bad query, a stopped server and a
failing system come from a real Prometheus on a free loopback port.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lib.config import SourceSettings, TargetConfig
from lib.errors import QueryError
from lib.http import make_client
from lib.signals import GOLDEN_SIGNALS
from lib.sources.prometheus import PrometheusSource
from lib.timerange import TimeRange
from tests.support import servers
from tests.support.fault_server import FaultServer, free_port

NOW = 1_700_002_800.0
RANGE = TimeRange.between(NOW - 3600, NOW, 15.0)
TARGET = TargetConfig("relaycore", "RelayCore", "", "#F58518", "relaycore_")


def source_for(url: str, targets: tuple[TargetConfig, ...] = (TARGET,),
               timeout: float = 2.0) -> PrometheusSource:
    return PrometheusSource(SourceSettings("prometheus", url, timeout=timeout), targets,
                            make_client(), 15.0)


def base_url(server: FaultServer) -> str:
    return f"http://127.0.0.1:{server.port}"


def json_body(status: str, **fields: object) -> bytes:
    return json.dumps({"status": status, **fields}).encode()


EMPTY_MATRIX = json_body("success", data={"resultType": "matrix", "result": []})

# Fault, what the server sends, and the words the message must contain.
FAULTS = [
    ("bad query 400",
     dict(status=400, content_type="application/json",
          body=json_body("error", errorType="bad_data", error="1:5: parse error")),
     "rejected it (bad_data): 1:5: parse error"),
    ("execution 422",
     dict(status=422, content_type="application/json",
          body=json_body("error", errorType="execution", error="many-to-many matching")),
     "rejected it (execution): many-to-many matching"),
    ("unavailable 503",
     dict(status=503, content_type="application/json",
          body=json_body("error", errorType="timeout", error="query timed out in query queue")),
     "rejected it (timeout): query timed out in query queue"),
    ("html page",
     dict(status=200, content_type="text/html", body=b"<!doctype html><html>login</html>"),
     "sent an HTML page (text/html)"),
    ("other json",
     dict(status=200, content_type="application/json", body=b'{"hello": "world"}'),
     "sent JSON that is not a Prometheus API response"),
    ("plain text 500",
     dict(status=500, content_type="text/plain", body=b"internal error"),
     "sent a response that is not JSON"),
    ("bad gateway 502",
     dict(status=502, content_type="text/plain", body=b"bad gateway"),
     "returned HTTP 502"),
    ("cut short",
     dict(status=200, content_type="application/json", body=EMPTY_MATRIX, truncate_to=20),
     "closed the connection before the response ended"),
    ("hang", dict(hang=True), "timed out"),
    ("vector for range",
     dict(status=200, content_type="application/json",
          body=json_body("success", data={"resultType": "vector", "result": []})),
     "returned a vector result, not a matrix"),
]


@pytest.mark.parametrize(("behaviour", "words"), [case[1:] for case in FAULTS],
                         ids=[case[0] for case in FAULTS])
def test_fault_message_names_server_and_query(fault_server: FaultServer,
                                              behaviour: dict[str, object], words: str) -> None:
    for key, value in behaviour.items():
        setattr(fault_server.behaviour, key, value)
    # A 502 is retried after a backoff of up to 1.2 s; the deadline must leave room for it.
    source = source_for(base_url(fault_server), timeout=1.0 if behaviour.get("hang") else 5.0)

    with pytest.raises(QueryError) as caught:
        source.signals(["relaycore"], RANGE, ["requests_per_second"])

    message = str(caught.value)
    assert words in message
    assert f"Prometheus at {base_url(fault_server)}" in message
    assert 'sum(rate(http_requests_total{job="relaycore"}[60s]))' in message
    assert "Traceback" not in message
    assert caught.value.system == "relaycore"


def test_refused_connection_message() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(QueryError, match="refused the connection") as caught:
        source_for(url).signals(["relaycore"], RANGE, ["memory_usage"])
    assert url in str(caught.value)


def test_warnings_kept_in_frame(fault_server: FaultServer) -> None:
    fault_server.behaviour.content_type = "application/json"
    fault_server.behaviour.body = json_body(
        "success", data={"resultType": "matrix", "result": []},
        warnings=["PromQL info: metric might not be a counter"],
    )
    frame = source_for(base_url(fault_server)).signals(["relaycore"], RANGE, GOLDEN_SIGNALS)
    assert frame.attrs["warnings"] == ["PromQL info: metric might not be a counter"]
    assert len(frame) == len(GOLDEN_SIGNALS) * len(RANGE.points())
    assert frame["value"].isna().all()


def test_queries_run_concurrently(fault_server: FaultServer) -> None:
    fault_server.behaviour.content_type = "application/json"
    fault_server.behaviour.body = EMPTY_MATRIX
    fault_server.behaviour.delay = 0.3
    source = source_for(base_url(fault_server))

    started = time.monotonic()
    source.signals(["relaycore"], RANGE, GOLDEN_SIGNALS)
    elapsed = time.monotonic() - started

    assert fault_server.requests == len(GOLDEN_SIGNALS)
    # Nine queries one after another would take 2.7 s.
    assert elapsed < 1.2


def test_unauthorized_message(fault_server: FaultServer) -> None:
    fault_server.behaviour.status = 401
    settings = SourceSettings("prometheus", base_url(fault_server), username="viewer",
                              password="pw")
    source = PrometheusSource(settings, (TARGET,), make_client(), 15.0)
    with pytest.raises(QueryError, match=r"needs credentials \(HTTP 401\)"):
        source.signals(["relaycore"], RANGE, ["up"])
    assert fault_server.last_headers["Authorization"] == "Basic dmlld2VyOnB3"


def test_bearer_token_sent(fault_server: FaultServer) -> None:
    fault_server.behaviour.content_type = "application/json"
    fault_server.behaviour.body = EMPTY_MATRIX
    settings = SourceSettings("prometheus", base_url(fault_server), bearer_token="t0ken")
    PrometheusSource(settings, (TARGET,), make_client(), 15.0).signals(["relaycore"], RANGE,
                                                                       ["up"])
    assert fault_server.last_headers["Authorization"] == "Bearer t0ken"


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.ServerProcess]:
    directory: Path = tmp_path_factory.mktemp("prometheus")
    server = servers.prometheus(directory).start()
    yield server
    server.stop()


@pytest.mark.prometheus
def test_real_bad_query_message(prometheus: servers.ServerProcess) -> None:
    # A metric prefix with a dash makes the cost counter's name invalid PromQL.
    broken = TargetConfig("broken", "Broken", "", "#000000", "bad-prefix_")
    with pytest.raises(QueryError) as caught:
        source_for(prometheus.url, (broken,)).signals(["broken"], RANGE, ["cost_per_hour"])
    message = str(caught.value)
    assert "rejected it (bad_data)" in message
    assert "bad-prefix_ai_cost_usd_total" in message
    assert prometheus.url in message


@pytest.mark.prometheus
def test_failing_system_keeps_others(prometheus: servers.ServerProcess) -> None:
    broken = TargetConfig("broken", "Broken", "", "#000000", "bad-prefix_")
    source = source_for(prometheus.url, (TARGET, broken))
    outcomes = source.signals_by_system(["relaycore", "broken"], RANGE,
                                        ["requests_per_second", "cost_per_hour"])
    assert not isinstance(outcomes["relaycore"], QueryError)
    assert set(outcomes["relaycore"]["signal"]) == {"requests_per_second", "cost_per_hour"}
    error = outcomes["broken"]
    assert isinstance(error, QueryError)
    assert error.system == "broken"
    with pytest.raises(QueryError):
        source.signals(["relaycore", "broken"], RANGE, ["cost_per_hour"])


@pytest.mark.prometheus
def test_snapshot_without_data(prometheus: servers.ServerProcess) -> None:
    snapshot = source_for(prometheus.url).snapshot("relaycore", RANGE, NOW)
    assert snapshot.availability is None
    assert snapshot.last_scrape_at is None
    assert all(value != value for value in snapshot.values.values())  # all NaN


@pytest.mark.prometheus
def test_stopped_prometheus_raises_per_system(tmp_path: Path) -> None:
    server = servers.prometheus(tmp_path).start()
    source = source_for(server.url)
    source.signals(["relaycore"], RANGE, ["up"])
    server.stop()

    outcomes = source.signals_by_system(["relaycore"], RANGE, ["up"])
    error = outcomes["relaycore"]
    assert isinstance(error, QueryError)
    assert "refused the connection" in str(error)
    with pytest.raises(QueryError, match="refused the connection"):
        source.snapshot("relaycore", RANGE, NOW)


def flat_then_ok_scrapes(start: float) -> list[tuple[str, float, str | None]]:
    """Return 10 minutes without traffic, then 10 minutes of 2 requests/s, none of them 5xx."""
    scrapes: list[tuple[str, float, str | None]] = []
    for index in range(81):
        ts = start + 15 * index
        count = 100 if index <= 40 else 100 + 30 * (index - 40)
        text = (
            "# TYPE http_requests_total counter\n"
            f'http_requests_total{{code="200",method="GET",route="/"}} {count}\n'
        )
        scrapes.append(("relaycore", ts, text))
    return scrapes


@pytest.mark.prometheus
def test_error_rate_zero_without_traffic(tmp_path: Path) -> None:
    start = NOW - 1200
    scrapes = flat_then_ok_scrapes(start)
    servers.backfill(tmp_path, servers.history_text(scrapes, {"relaycore": "relaycore"},
                                                    openmetrics=True))
    server = servers.prometheus(tmp_path).start()
    try:
        time_range = TimeRange.between(start + 60, NOW, 15.0)
        frame = source_for(server.url).signals(["relaycore"], time_range,
                                               ["error_rate", "requests_per_second"])
    finally:
        server.stop()

    error_rate = frame[frame["signal"] == "error_rate"]["value"]
    requests = frame[frame["signal"] == "requests_per_second"]["value"].to_numpy()
    assert not error_rate.isna().any()
    assert (error_rate == 0).all()
    assert requests[0] == 0
    assert requests[-1] == pytest.approx(2.0)
