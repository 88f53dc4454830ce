from __future__ import annotations

import logging
import time

import pytest

from lib.errors import FetchError, FetchFailure
from lib.http import FetchPolicy, fetch, make_client
from tests.support.fault_server import FaultServer, free_port

FAST = FetchPolicy(connect_timeout=0.5, read_timeout=0.5, deadline=1.5, attempts=3,
                   backoff_initial=0.05, backoff_max=0.1)


def fetch_error(url: str, policy: FetchPolicy = FAST) -> FetchError:
    with make_client() as client, pytest.raises(FetchError) as info:
        fetch(client, url, policy=policy)
    return info.value


def test_refused_named_and_retryable() -> None:
    error = fetch_error(f"http://127.0.0.1:{free_port()}/metrics")
    assert error.failure is FetchFailure.REFUSED
    assert error.retryable
    assert "refused the connection" in error.describe("RelayCore")


def test_hanging_server_times_out(fault_server: FaultServer) -> None:
    fault_server.behaviour.hang = True
    started = time.monotonic()
    error = fetch_error(fault_server.url)
    assert error.failure is FetchFailure.TIMEOUT
    assert time.monotonic() - started < FAST.deadline + 1.0


def test_trickling_body_hits_deadline(fault_server: FaultServer) -> None:
    fault_server.behaviour.body = b"x" * 100
    fault_server.behaviour.trickle = 0.2
    started = time.monotonic()
    error = fetch_error(fault_server.url)
    assert error.failure is FetchFailure.TIMEOUT
    assert time.monotonic() - started < FAST.deadline + 1.0


@pytest.mark.parametrize(("status", "failure"), [(401, FetchFailure.AUTH),
                                                 (404, FetchFailure.HTTP_STATUS),
                                                 (500, FetchFailure.HTTP_STATUS)])
def test_client_errors_not_retried(fault_server: FaultServer, status: int,
                                   failure: FetchFailure) -> None:
    fault_server.behaviour.status = status
    error = fetch_error(fault_server.url)
    assert error.failure is failure
    assert error.status_code == status
    assert fault_server.requests == 1


def test_503_retried_with_backoff(fault_server: FaultServer) -> None:
    fault_server.behaviour.status = 503
    error = fetch_error(fault_server.url)
    assert "returned HTTP 503" in str(error)
    assert fault_server.requests == FAST.attempts


def test_retries_logged_at_debug_only(fault_server: FaultServer,
                                     caplog: pytest.LogCaptureFixture) -> None:
    fault_server.behaviour.status = 503
    with caplog.at_level(logging.DEBUG, logger="lib.http"):
        fetch_error(fault_server.url)
    retries = [record for record in caplog.records if record.name == "lib.http"]
    assert [record.levelno for record in retries] == [logging.DEBUG] * (FAST.attempts - 1)
    assert "returned HTTP 503" in retries[0].getMessage()


def test_body_over_cap_rejected(fault_server: FaultServer) -> None:
    fault_server.behaviour.body = b"a 1\n" * 1000
    policy = FetchPolicy(max_bytes=1000, attempts=1)
    error = fetch_error(fault_server.url, policy)
    assert error.failure is FetchFailure.TOO_LARGE


def test_truncated_body_is_reset(fault_server: FaultServer) -> None:
    fault_server.behaviour.body = b"up 1\n" * 100
    fault_server.behaviour.truncate_to = 10
    error = fetch_error(fault_server.url, FetchPolicy(attempts=1))
    assert error.failure is FetchFailure.RESET
    assert error.retryable


def test_success_returns_body(fault_server: FaultServer) -> None:
    fault_server.behaviour.body = b"up 1\n"
    with make_client() as client:
        response = fetch(client, fault_server.url, policy=FAST)
    assert response.body == b"up 1\n"
    assert response.status_code == 200


@pytest.mark.parametrize("attempt", range(5))
def test_short_deadline_keeps_real_reason(attempt: int) -> None:
    # Each backoff (0.2 s plus up to 0.2 s of jitter) may pass the 0.3 s deadline; the error
    # must then still be the refusal, not a bare timeout.
    policy = FetchPolicy(deadline=0.3, attempts=5, backoff_initial=0.2, backoff_max=0.4)
    error = fetch_error(f"http://127.0.0.1:{free_port()}/metrics", policy)
    assert error.failure is FetchFailure.REFUSED
