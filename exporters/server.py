"""Run exporter apps with uvicorn in background threads, alone or as a simulated platform."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType

import uvicorn
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp

from exporters.app import metrics_app
from exporters.catalog import DEFAULT_PORTS, SYSTEMS
from exporters.simulator import PlatformSimulator, SimulationConfig

logger = logging.getLogger(__name__)

STARTUP_TIMEOUT_SECONDS = 10.0
SHUTDOWN_TIMEOUT_SECONDS = 10.0
POLL_SECONDS = 0.01


class ExporterStartError(RuntimeError):
    """An exporter server could not listen on its address or did not finish starting."""

    def __init__(self, message: str, host: str, port: int) -> None:
        super().__init__(message)
        self.host = host
        self.port = port


class ExporterServer:
    """Uvicorn serving one ASGI app from a daemon thread.

    With port 0 the operating system picks a free port, and `port` and `url` show the bound
    one once `start` returns. Use it as a context manager or call `start` and `stop`.
    """

    def __init__(self, app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"Invalid port {port!r}. Use 0..65535, where 0 picks a free port.")
        self.app = app
        self.host = host
        self._requested_port = port
        self._socket: socket.socket | None = None
        self._bound_port: int | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """TCP port bound by the latest `start`, else the requested port."""
        if self._bound_port is None:
            return self._requested_port
        return self._bound_port

    @property
    def url(self) -> str:
        """Base URL of the server, such as http://127.0.0.1:9101, without a trailing slash."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the server thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = STARTUP_TIMEOUT_SECONDS) -> None:
        """Bind the socket, start uvicorn and wait until it accepts connections.

        Raises ExporterStartError when the address cannot be bound or the server does not
        start within `timeout` seconds, and RuntimeError when called twice.
        """
        if self._thread is not None:
            raise RuntimeError(f"The exporter server at {self.url} was already started.")
        self._socket = self._bind()
        self._bound_port = int(self._socket.getsockname()[1])
        config = uvicorn.Config(
            self.app, log_level="warning", access_log=False, timeout_graceful_shutdown=5
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run,
            kwargs={"sockets": [self._socket]},
            name=f"exporter-{self.port}",
            daemon=True,
        )
        self._server = server
        self._thread = thread
        thread.start()
        self._wait_until_started(server, thread, timeout)
        logger.info("Exporter server listening at %s", self.url)

    def _bind(self) -> socket.socket:
        try:
            family, kind, protocol, _, address = socket.getaddrinfo(
                self.host, self._requested_port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )[0]
            listener = socket.socket(family, kind, protocol)
        except OSError as error:
            raise ExporterStartError(
                f"Cannot resolve host {self.host!r}: {error}.", self.host, self._requested_port
            ) from error
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(address)
        except OSError as error:
            listener.close()
            raise ExporterStartError(
                f"Cannot listen on {self.host}:{self._requested_port}: {error}. "
                "Choose another port, or 0 for a free one.",
                self.host,
                self._requested_port,
            ) from error
        return listener

    def _wait_until_started(
        self, server: uvicorn.Server, thread: threading.Thread, timeout: float
    ) -> None:
        url, port = self.url, self.port
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive():
                self._close_socket()
                self._thread = None
                self._server = None
                raise ExporterStartError(
                    f"The exporter server at {url} exited during startup; see the log above.",
                    self.host,
                    port,
                )
            if time.monotonic() > deadline:
                self.stop()
                raise ExporterStartError(
                    f"The exporter server at {url} did not start within {timeout:g} s.",
                    self.host,
                    port,
                )
            time.sleep(POLL_SECONDS)

    def request_stop(self) -> None:
        """Ask uvicorn to shut down and return at once, unlike `stop`, which waits."""
        if self._server is not None:
            self._server.should_exit = True

    def stop(self, timeout: float = SHUTDOWN_TIMEOUT_SECONDS) -> None:
        """Shut uvicorn down and join its thread. Does nothing if the server never started."""
        if self._thread is None:
            return
        url = self.url
        self.request_stop()
        self._thread.join(timeout)
        if self._thread.is_alive() and self._server is not None:
            logger.warning("Exporter server at %s did not stop in %g s, forcing exit", url, timeout)
            self._server.force_exit = True
            self._thread.join(timeout)
        self._close_socket()
        self._thread = None
        self._server = None
        logger.info("Exporter server at %s stopped", url)

    def _close_socket(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> ExporterServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def resolve_ports(ports: Mapping[str, int] | Sequence[int] | None) -> dict[str, int]:
    """Return a port for every system from a mapping, a sequence in system order, or None.

    None means the default ports 9101, 9102 and 9103. Raises ValueError for unknown systems,
    missing systems or a sequence of the wrong length.
    """
    if ports is None:
        return dict(DEFAULT_PORTS)
    if isinstance(ports, Mapping):
        unknown = set(ports) - set(SYSTEMS)
        missing = set(SYSTEMS) - set(ports)
        if unknown or missing:
            raise ValueError(
                f"Ports must name exactly {SYSTEMS}, but unknown are {sorted(unknown)} "
                f"and missing are {sorted(missing)}."
            )
        return {system: int(ports[system]) for system in SYSTEMS}
    if len(ports) != len(SYSTEMS):
        raise ValueError(
            f"Expected {len(SYSTEMS)} ports in the order {SYSTEMS}, got {list(ports)!r}."
        )
    return {system: int(port) for system, port in zip(SYSTEMS, ports, strict=True)}


class SimulatedPlatform:
    """The simulator, one exporter server per system, and a clock thread that advances it.

    The clock thread calls `advance_to(clock())` every `tick_seconds`. `tokens` optionally maps
    a system id to the bearer token its exporter requires. Pass `clock` to drive time in tests.
    """

    def __init__(
        self,
        config: SimulationConfig,
        host: str = "127.0.0.1",
        ports: Mapping[str, int] | Sequence[int] | None = None,
        *,
        tokens: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        tick_seconds: float = 1.0,
    ) -> None:
        if not tick_seconds > 0:
            raise ValueError(f"tick_seconds must be positive, got {tick_seconds!r}.")
        self.host = host
        self.ports = resolve_ports(ports)
        self.tick_seconds = tick_seconds
        self._clock = clock
        self.simulator = PlatformSimulator(config, start=clock())
        tokens = tokens or {}
        self.servers = {
            system: ExporterServer(self._app(system, tokens.get(system)), host, self.ports[system])
            for system in SYSTEMS
        }
        self._stopping = threading.Event()
        self._clock_thread: threading.Thread | None = None

    def _app(self, system: str, token: str | None) -> ASGIApp:
        def registry() -> CollectorRegistry:
            return self.simulator.registry(system)

        def is_down() -> bool:
            return self.simulator.is_down(system)

        return metrics_app(registry, token=token, is_down=is_down)

    @property
    def urls(self) -> dict[str, str]:
        """Metrics URL of every system, such as http://127.0.0.1:9101/metrics."""
        return {system: f"{server.url}/metrics" for system, server in self.servers.items()}

    def start(self) -> None:
        """Advance the simulator to now, start the three servers, then the clock thread.

        If one server fails to start, the ones already started are stopped and the error
        (ExporterStartError) propagates.
        """
        self.simulator.advance_to(self._clock())
        started: list[ExporterServer] = []
        try:
            for server in self.servers.values():
                server.start()
                started.append(server)
        except BaseException:
            _stop_all(started)
            raise

        self._stopping.clear()
        self._clock_thread = threading.Thread(
            target=self._run_clock, name="simulator-clock", daemon=True
        )
        self._clock_thread.start()

    def _run_clock(self) -> None:
        while not self._stopping.wait(self.tick_seconds):
            try:
                self.simulator.advance_to(self._clock())
            except Exception:
                logger.exception("Advancing the simulator failed; the clock thread stops")
                return

    def stop(self) -> None:
        """Stop the clock thread and all servers, and wait for their threads."""
        self._stopping.set()
        if self._clock_thread is not None:
            self._clock_thread.join()
            self._clock_thread = None
        _stop_all(list(self.servers.values()))

    def __enter__(self) -> SimulatedPlatform:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _stop_all(servers: Sequence[ExporterServer]) -> None:
    """Ask every server to shut down first, then join each, so the waits overlap."""
    for server in servers:
        server.request_stop()
    for server in servers:
        server.stop()
