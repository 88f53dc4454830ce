"""A scriptable HTTP server on 127.0.0.1 for tests: it serves whatever body, status and timing
the test sets, including faults that a real exporter would not produce on request."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Behaviour:
    """What the next responses look like."""

    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain; version=0.0.4; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before the status line
    hang: bool = False  # accept, then never answer
    trickle: float = 0.0  # seconds between single bytes of the body
    truncate_to: int | None = None  # announce the full length, send only this many bytes


class FaultServer:
    """Serve `behaviour` on a free loopback port until `stop()`."""

    def __init__(self) -> None:
        self.behaviour = Behaviour()
        self.requests = 0
        self.last_headers: dict[str, str] = {}
        self._release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - name fixed by http.server
                server.requests += 1
                server.last_headers = dict(self.headers.items())
                server._respond(self)

            do_POST = do_GET  # noqa: N815

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                return

        self._handler = Handler
        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/metrics"
        self._serve()

    def _serve(self) -> None:
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def refuse_connections(self) -> None:
        """Close the listening socket, so that connections to the port are refused."""
        self._httpd.shutdown()
        self._httpd.server_close()

    def accept_connections(self) -> None:
        """Listen on the same port again after `refuse_connections`."""
        self._httpd = _Server(("127.0.0.1", self.port), self._handler)
        self._serve()

    def _respond(self, handler: BaseHTTPRequestHandler) -> None:
        b = self.behaviour
        if b.hang:
            self._release.wait(60)
            return
        if b.delay:
            time.sleep(b.delay)
        body = b.body
        handler.send_response(b.status)
        handler.send_header("Content-Type", b.content_type)
        handler.send_header("Content-Length", str(len(body)))
        for key, value in b.headers.items():
            handler.send_header(key, value)
        handler.end_headers()
        try:
            if b.trickle:
                for i in range(len(body)):
                    handler.wfile.write(body[i : i + 1])
                    handler.wfile.flush()
                    if self._release.wait(b.trickle):
                        return
            elif b.truncate_to is not None:
                handler.wfile.write(body[: b.truncate_to])
                handler.wfile.flush()
                handler.connection.shutdown(socket.SHUT_RDWR)
            else:
                handler.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            return

    def stop(self) -> None:
        self._release.set()
        self._httpd.shutdown()
        self._httpd.server_close()


class _Server(ThreadingHTTPServer):
    # A source sends about ten queries at once; beyond the default backlog of 5, a connection
    # waits for the client's SYN retry a second later.
    request_queue_size = 64


def free_port() -> int:
    """Return a port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
