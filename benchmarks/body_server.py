"""Serve fixed exposition bodies from several HTTP servers in a separate process.

`python -m benchmarks.body_server --targets 30 --series 5000 --delay 0.2` prints one JSON line
with the URLs, then serves until stdin closes. Running the servers in their own process keeps
their CPU time out of the collector's measurement.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HISTOGRAM_BOUNDS = ("0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5",
                    "5.0", "10.0", "+Inf")
SERIES_PER_ROUTE = len(HISTOGRAM_BOUNDS) + 2 + 3


def make_body(series: int) -> bytes:
    """Return an exposition body with about `series` series: per route a latency histogram
    and request counters for three codes, then gauges up to the count."""
    routes = max(1, series // SERIES_PER_ROUTE)
    lines = ["# HELP http_requests_total Requests.", "# TYPE http_requests_total counter"]
    for route in range(routes):
        for code, value in (("200", 9000), ("404", 90), ("500", 9)):
            lines.append(f'http_requests_total{{code="{code}",method="GET",route="/r{route}"}} '
                         f"{value + route}")
    lines += ["# HELP http_request_duration_seconds Latency.",
              "# TYPE http_request_duration_seconds histogram"]
    for route in range(routes):
        labels = f'method="GET",route="/r{route}"'
        for index, bound in enumerate(HISTOGRAM_BOUNDS):
            lines.append(f'http_request_duration_seconds_bucket{{{labels},le="{bound}"}} '
                         f"{100 * (index + 1)}.0")
        lines.append(f"http_request_duration_seconds_sum{{{labels}}} 123.5")
        lines.append(f"http_request_duration_seconds_count{{{labels}}} 1200.0")
    lines += ["# HELP bench_gauge Filler.", "# TYPE bench_gauge gauge"]
    for index in range(max(0, series - routes * SERIES_PER_ROUTE)):
        lines.append(f'bench_gauge{{index="{index}"}} {index * 0.5}')
    return ("\n".join(lines) + "\n").encode()


def serve(targets: int, series: int, delay: float) -> list[ThreadingHTTPServer]:
    """Start `targets` servers on free 127.0.0.1 ports, each serving one body after `delay` s."""
    body = make_body(series)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 - name fixed by http.server
            if delay:
                time.sleep(delay)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    servers = []
    for _ in range(targets):
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    return servers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--targets", type=int, required=True, help="number of servers")
    parser.add_argument("--series", type=int, required=True, help="series per body")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args()
    servers = serve(args.targets, args.series, args.delay)
    urls = [f"http://127.0.0.1:{s.server_address[1]}/metrics" for s in servers]
    print(json.dumps(urls), flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()
