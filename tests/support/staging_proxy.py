"""A proxy on 127.0.0.1 in front of a real Prometheus-compatible server that records every
query and delays or fails the queries whose PromQL contains a given text."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import httpx


@dataclass
class Stage:
    """What the proxy does with a query whose PromQL contains `match` (every query when None):
    wait `delay` seconds, then forward it, or respond with `status` and a Prometheus error body."""

    match: str | None = None
    delay: float = 0.0
    status: int | None = None
    error_type: str = "unavailable"


class StagingProxy:
    """Forward Prometheus API requests from 127.0.0.1 to `upstream`, applying `stage`."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.stage = Stage()
        # The PromQL of every request, in the order they arrived.
        self.queries: list[str] = []
        self._lock = threading.Lock()
        self._client = httpx.Client(timeout=30.0)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - name fixed by http.server
                length = int(self.headers.get("Content-Length") or 0)
                proxy.respond(self, self.rfile.read(length))

            def do_GET(self) -> None:  # noqa: N802 - name fixed by http.server
                proxy.respond(self, b"")

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                return

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def respond(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        stage = self.stage
        query = parse_qs(body.decode()).get("query", [""])[0]
        with self._lock:
            self.queries.append(query)
        applies = stage.match is None or stage.match in query
        status, content, content_type = 502, b"", "text/plain"
        if applies and stage.delay:
            time.sleep(stage.delay)
        if applies and stage.status is not None:
            status = stage.status
            content = json.dumps({"status": "error", "errorType": stage.error_type,
                                  "error": "staged by the test"}).encode()
            content_type = "application/json"
        else:
            try:
                upstream = self._client.request(
                    handler.command, self.upstream + handler.path, content=body,
                    headers={"Content-Type": handler.headers.get("Content-Type", "")},
                )
            except (httpx.HTTPError, RuntimeError):
                # Prometheus is stopping, or the proxy is, so respond as a gateway would.
                upstream = httpx.Response(502, content=b"upstream unavailable")
            status, content = upstream.status_code, upstream.content
            content_type = upstream.headers.get("content-type", "application/json")
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(content)))
            handler.end_headers()
            handler.wfile.write(content)
        except (BrokenPipeError, ConnectionResetError):
            return

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._client.close()


class _Server(ThreadingHTTPServer):
    # One overview sends about a dozen queries at once; the default backlog of 5 would
    # turn the rest into connect timeouts.
    request_queue_size = 128
    daemon_threads = True
