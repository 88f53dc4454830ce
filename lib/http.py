"""One HTTP client for every fetch: timeouts, a response size cap, bounded retries, plain errors.

Every httpx exception is translated into `FetchError` here and nowhere else. Retries use tenacity
with exponential backoff and jitter, only for failures that may pass (refused, timed out, HTTP
502/503/504), and never past the caller's overall deadline.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import httpx
import tenacity

from lib.errors import FetchError, FetchFailure

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 16 * 1024 * 1024
USER_AGENT = "platform-monitor/0.1"


@dataclass(frozen=True)
class FetchPolicy:
    """Limits of one fetch. `deadline` (seconds) bounds all attempts together, including backoff."""

    connect_timeout: float = 2.0
    read_timeout: float = 5.0
    deadline: float = 5.0
    max_bytes: int = DEFAULT_MAX_BYTES
    attempts: int = 2
    backoff_initial: float = 0.2
    backoff_max: float = 2.0


@dataclass(frozen=True)
class Response:
    """A fetched body with what the caller needs to judge and record it."""

    url: str
    status_code: int
    content_type: str
    body: bytes
    duration: float


def make_client(policy: FetchPolicy | None = None) -> httpx.Client:
    """Return the shared client; connection pooling makes repeated scrapes cheap."""
    policy = policy or FetchPolicy()
    timeout = httpx.Timeout(policy.read_timeout, connect=policy.connect_timeout)
    return httpx.Client(
        timeout=timeout,
        headers={"User-Agent": USER_AGENT},
        follow_redirects=False,
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
    )


def fetch(
    client: httpx.Client,
    url: str,
    *,
    policy: FetchPolicy | None = None,
    headers: dict[str, str] | None = None,
    auth: httpx.Auth | tuple[str, str] | None = None,
    params: dict[str, str] | None = None,
    method: str = "GET",
    data: dict[str, str] | None = None,
    accept_statuses: tuple[int, ...] = (),
    json_body: object = None,
) -> Response:
    """Fetch `url` with retries; raise FetchError with a plain reason on failure.

    A status in `accept_statuses` is returned instead of raised, for APIs (such as Prometheus's)
    whose error responses carry a JSON body worth reading. `json_body`, when given, is sent
    as the JSON request body.
    """
    policy = policy or FetchPolicy()
    started = time.monotonic()
    retrying = tenacity.Retrying(
        # stop_before_delay gives up when the next backoff would pass the deadline, so the caller
        # gets the last real failure (refused, HTTP 503) rather than a bare timeout.
        stop=tenacity.stop_after_attempt(policy.attempts)
        | tenacity.stop_before_delay(policy.deadline),
        wait=tenacity.wait_exponential_jitter(
            multiplier=policy.backoff_initial, max=policy.backoff_max,
            jitter=policy.backoff_initial,
        ),
        retry=tenacity.retry_if_exception(_is_retryable),
        before_sleep=_log_retry,
        reraise=True,
    )
    last_error: FetchError | None = None
    for attempt in retrying:
        with attempt:
            remaining = policy.deadline - (time.monotonic() - started)
            if remaining <= 0:
                raise last_error or FetchError(
                    url, FetchFailure.TIMEOUT, f"timed out after {policy.deadline:g} s"
                )
            try:
                return _fetch_once(
                    client, url, policy, remaining, headers, auth, params, method, data,
                    accept_statuses, json_body,
                )
            except FetchError as exc:
                clipped = remaining < min(policy.connect_timeout, policy.read_timeout)
                if exc.failure is FetchFailure.TIMEOUT and clipped and last_error is not None:
                    # The retry only timed out because the deadline cut it short; the earlier
                    # failure is the real reason.
                    raise last_error from exc
                last_error = exc
                raise
    raise AssertionError("unreachable: tenacity either returns or re-raises")


def _is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, FetchError) and exc.retryable


def _log_retry(state: tenacity.RetryCallState) -> None:
    # DEBUG: the caller reports the failure that is left after the retries, once. A down target
    # would otherwise log a line per attempt on every scrape cycle.
    exc = state.outcome.exception() if state.outcome else None
    log.debug("retrying after attempt %d: %s", state.attempt_number, exc)


def _fetch_once(
    client: httpx.Client,
    url: str,
    policy: FetchPolicy,
    remaining: float,
    headers: dict[str, str] | None,
    auth: httpx.Auth | tuple[str, str] | None,
    params: dict[str, str] | None,
    method: str,
    data: dict[str, str] | None,
    accept_statuses: tuple[int, ...],
    json_body: object = None,
) -> Response:
    started = time.monotonic()
    timeout = httpx.Timeout(
        min(policy.read_timeout, remaining), connect=min(policy.connect_timeout, remaining)
    )
    try:
        with client.stream(
            method, url, headers=headers, auth=auth or httpx.USE_CLIENT_DEFAULT, params=params,
            data=data, json=json_body, timeout=timeout,
        ) as response:
            _check_status(url, response, accept_statuses)
            body = _read_capped(url, response, policy.max_bytes, started + remaining)
            return Response(
                url=url,
                status_code=response.status_code,
                content_type=response.headers.get("content-type", ""),
                body=body,
                duration=time.monotonic() - started,
            )
    except httpx.ConnectError as exc:
        raise FetchError(url, FetchFailure.REFUSED, f"refused the connection ({exc})") from exc
    except httpx.TimeoutException as exc:
        kind = "connecting" if isinstance(exc, httpx.ConnectTimeout) else "waiting for a response"
        raise FetchError(
            url, FetchFailure.TIMEOUT, f"timed out {kind} after {time.monotonic() - started:.1f} s"
        ) from exc
    except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
        # Also what a pooled keep-alive connection gives when the server closed it just as it
        # was reused, which is why a reset is worth one more try.
        raise FetchError(
            url, FetchFailure.RESET, f"closed the connection before the response ended ({exc})"
        ) from exc
    except httpx.HTTPError as exc:
        raise FetchError(url, FetchFailure.PROTOCOL, f"could not be fetched ({exc})") from exc


def _check_status(url: str, response: httpx.Response, accept_statuses: tuple[int, ...]) -> None:
    status = response.status_code
    if status < 400 or status in accept_statuses:
        return
    if status in (401, 403):
        raise FetchError(
            url, FetchFailure.AUTH, f"needs credentials (HTTP {status})", status_code=status
        )
    raise FetchError(url, FetchFailure.HTTP_STATUS, f"returned HTTP {status}", status_code=status)


def _read_capped(url: str, response: httpx.Response, max_bytes: int, deadline: float) -> bytes:
    """Read the body, stopping at `max_bytes` and at the deadline (a server that trickles bytes
    never trips httpx's per-read timeout)."""
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise FetchError(
            url, FetchFailure.TOO_LARGE,
            f"sent a {int(declared)} byte response, over the {max_bytes} byte limit",
        )
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise FetchError(
                url, FetchFailure.TOO_LARGE, f"sent more than the {max_bytes} byte limit"
            )
        if time.monotonic() > deadline:
            raise FetchError(url, FetchFailure.TIMEOUT, "timed out while sending its response")
        chunks.append(chunk)
    return b"".join(chunks)
