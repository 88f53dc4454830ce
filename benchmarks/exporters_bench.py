"""Exporter benchmark: the cost of instrumenting a request, and of rendering /metrics.

Requests go straight into the ASGI app in this process (no socket), so the instrumentation's
share is not hidden behind network time. The instrumented app counts each request by method,
route and code, observes its duration in a histogram and tracks requests in flight, with the
metric names the exporters use.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from benchmarks.timing import Timing, measure, measure_interleaved

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
REQUESTS_PER_RUN = 200


def _hello(request: Request) -> Response:
    return PlainTextResponse("ok")


def plain_app() -> Starlette:
    """Return an app with one route and no instrumentation."""
    return Starlette(routes=[Route("/hello", _hello)])


def instrumented_app(registry: CollectorRegistry) -> ASGIApp:
    """Return the same app wrapped in counter, histogram and in-flight gauge instrumentation."""
    requests = Counter("http_requests", "Requests.", ("method", "route", "code"),
                       registry=registry)
    duration = Histogram("http_request_duration_seconds", "Latency.", ("method", "route"),
                         registry=registry)
    in_flight = Gauge("http_requests_in_flight", "Requests in flight.", registry=registry)
    inner = plain_app()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await inner(scope, receive, send)
            return
        status = {"code": "500"}

        async def send_with_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = str(message["status"])
            await send(message)

        started = time.perf_counter()
        in_flight.inc()
        try:
            await inner(scope, receive, send_with_status)
        finally:
            in_flight.dec()
            route = scope["path"]
            duration.labels(scope["method"], route).observe(time.perf_counter() - started)
            requests.labels(scope["method"], route, status["code"]).inc()

    return app


async def _call(app: ASGIApp) -> None:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": "/hello", "raw_path": b"/hello", "query_string": b"",
             "root_path": "", "headers": [], "client": ("127.0.0.1", 1),
             "server": ("127.0.0.1", 80)}

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        pass

    await app(scope, receive, send)


def request_costs(plain: ASGIApp, instrumented: ASGIApp,
                  repeat: int) -> tuple[Timing, Timing]:
    """Time bursts of REQUESTS_PER_RUN requests through each app in turns; return seconds per
    request for the plain and the instrumented app."""
    loop = asyncio.new_event_loop()

    async def burst(app: ASGIApp) -> None:
        for _ in range(REQUESTS_PER_RUN):
            await _call(app)

    try:
        timings = measure_interleaved(
            {"plain": lambda: loop.run_until_complete(burst(plain)),
             "instrumented": lambda: loop.run_until_complete(burst(instrumented))},
            repeat, warmup=2)
    finally:
        loop.close()
    per_request = {name: Timing(tuple(run / REQUESTS_PER_RUN for run in timing.runs))
                   for name, timing in timings.items()}
    return per_request["plain"], per_request["instrumented"]


def registry_with(series: int) -> CollectorRegistry:
    """Return a registry of about `series` series: labelled counters and histograms."""
    registry = CollectorRegistry()
    buckets = len(Histogram.DEFAULT_BUCKETS) + 2  # buckets (with +Inf), sum and count
    routes = max(1, series // (buckets + 3))
    requests = Counter("http_requests", "Requests.", ("method", "route", "code"),
                       registry=registry)
    duration = Histogram("http_request_duration_seconds", "Latency.", ("method", "route"),
                         registry=registry)
    for route in range(routes):
        for code in ("200", "404", "500"):
            requests.labels("GET", f"/r{route}", code).inc(route + 1)
        duration.labels("GET", f"/r{route}").observe(0.1)
    return registry


def render_cost(series: int, repeat: int) -> tuple[Timing, int]:
    """Time generate_latest over a registry of about `series` series; return it with the
    number of sample lines rendered."""
    registry = registry_with(series)
    lines = sum(1 for line in generate_latest(registry).splitlines() if not line.startswith(b"#"))
    return measure(lambda: generate_latest(registry), repeat), lines
