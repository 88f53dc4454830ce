"""ASGI app that serves a Prometheus registry at GET /metrics.

The app is a plain Starlette application, so any ASGI server runs it and a FastAPI or
Starlette app can mount it, for example `Mount("/relaycore", app=metrics_app(...))` serves
`/relaycore/metrics`.
"""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Callable
from typing import cast

from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

logger = logging.getLogger(__name__)

RegistrySource = Collector | Callable[[], Collector]
REALM = "metrics"
# Seconds a client should wait before retrying while the system is down.
RETRY_AFTER_SECONDS = 5


def metrics_app(
    registry_source: RegistrySource,
    *,
    token: str | None = None,
    is_down: Callable[[], bool] | None = None,
) -> Starlette:
    """Build an ASGI app that serves GET /metrics in the Prometheus text format 0.0.4.

    `registry_source` is a registry, or a function returning the registry to serve on each
    request (the simulator replaces a system's registry when it restarts). With `token` set,
    requests need `Authorization: Bearer <token>` and get 401 with a `WWW-Authenticate`
    header otherwise. While `is_down()` returns True, the app responds 503 with a plain body.
    Raises ValueError for an empty token.
    """
    if token is not None and not token:
        raise ValueError("The bearer token is empty. Pass None to turn authentication off.")
    read_registry = _registry_reader(registry_source)
    rejections = _RejectionLog()

    def serve_metrics(request: Request) -> Response:
        if token is not None:
            failure = _authentication_failure(request, token)
            if failure is not None:
                rejections.record(request, failure)
                return _unauthorized(failure)

        if is_down is not None and is_down():
            return PlainTextResponse(
                "Service unavailable: the system is down.\n",
                status_code=503,
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        return Response(generate_latest(read_registry()), media_type=CONTENT_TYPE_PLAIN_0_0_4)

    # Starlette runs a sync endpoint in its thread pool, so rendering does not block the loop.
    return Starlette(routes=[Route("/metrics", serve_metrics, methods=["GET"])])


def _registry_reader(registry_source: RegistrySource) -> Callable[[], Collector]:
    # prometheus_client's Collector cannot be used with isinstance, so look for collect().
    if callable(getattr(registry_source, "collect", None)):
        registry = cast(Collector, registry_source)
        return lambda: registry
    if callable(registry_source):
        return registry_source
    raise TypeError(
        f"registry_source must be a CollectorRegistry or a function returning one, "
        f"got {type(registry_source).__name__}."
    )


def _authentication_failure(request: Request, token: str) -> str | None:
    """Return None for a valid bearer token, else the RFC 6750 error ("" when none was sent)."""
    header = request.headers.get("authorization")
    if header is None:
        return ""
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return "invalid_request"
    # Starlette decodes headers as latin-1, so encoding back gives the bytes that were sent.
    sent = credentials.strip().encode("latin-1")
    if not hmac.compare_digest(sent, token.encode("utf-8")):
        return "invalid_token"
    return None


def _unauthorized(error: str) -> Response:
    challenge = f'Bearer realm="{REALM}"'
    if error:
        challenge += f', error="{error}"'
    return PlainTextResponse(
        "Unauthorized: send Authorization: Bearer <token>.\n",
        status_code=401,
        headers={"WWW-Authenticate": challenge},
    )


class _RejectionLog:
    """Count of rejected requests that logs the 1st, 10th, 100th ... rejection at WARNING."""

    def __init__(self) -> None:
        self.count = 0
        self._next_logged = 1
        self._lock = threading.Lock()

    def record(self, request: Request, error: str) -> None:
        with self._lock:
            self.count += 1
            if self.count < self._next_logged:
                return
            self._next_logged *= 10
            count = self.count
        client = request.client.host if request.client else "unknown client"
        logger.warning(
            "Rejected a metrics request from %s (%s), %d rejected so far",
            client, error or "no credentials", count,
        )


__all__ = ["RegistrySource", "metrics_app"]
