"""Command line: serve the simulated platform's three exporters until interrupted.

    python -m exporters --seed 42 --host 127.0.0.1 --ports 9101,9102,9103
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from collections.abc import Sequence
from types import FrameType

from exporters.catalog import DEFAULT_PORTS, DISPLAY_NAMES, SYSTEMS
from exporters.server import ExporterStartError, SimulatedPlatform
from exporters.simulator import SimulationConfig, demo_incidents

logger = logging.getLogger("exporters")

# The name of the variable, not a secret.
TOKEN_ENVIRONMENT_VARIABLE = "EXPORTERS_BEARER_TOKEN"  # noqa: S105
DEFAULT_PORT_LIST = ",".join(str(DEFAULT_PORTS[system]) for system in SYSTEMS)


def parse_ports(text: str) -> list[int]:
    """Parse "9101,9102,9103" into one TCP port per system, in system order."""
    parts = [part.strip() for part in text.split(",")]
    if len(parts) != len(SYSTEMS):
        raise argparse.ArgumentTypeError(
            f"expected {len(SYSTEMS)} comma-separated ports for {', '.join(SYSTEMS)}, got {text!r}"
        )
    ports: list[int] = []
    for part in parts:
        if not part.isdigit() or not 0 <= int(part) <= 65535:
            raise argparse.ArgumentTypeError(
                f"invalid port {part!r}, use 0..65535 where 0 picks a free port"
            )
        ports.append(int(part))
    return ports


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of `python -m exporters`."""
    parser = argparse.ArgumentParser(
        prog="python -m exporters",
        description="Serve simulated /metrics exporters for AutoMatrix, RelayCore and NeuroWeaver.",
        epilog=(
            f"Set {TOKEN_ENVIRONMENT_VARIABLE} to require that bearer token on every exporter. "
            "Stop with Ctrl+C or SIGTERM."
        ),
    )
    parser.add_argument("--seed", type=int, default=42, help="random seed (default: 42)")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    parser.add_argument(
        "--ports",
        type=parse_ports,
        default=parse_ports(DEFAULT_PORT_LIST),
        help=f"TCP ports of {', '.join(SYSTEMS)}, comma-separated; 0 picks a free port "
        f"(default: {DEFAULT_PORT_LIST})",
    )
    parser.add_argument(
        "--no-demo-incidents",
        action="store_true",
        help="turn off the repeating demo schedule of error bursts, slow periods and outages",
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level (default: INFO)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulated platform until SIGINT or SIGTERM and return the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    incidents = () if args.no_demo_incidents else demo_incidents()
    config = SimulationConfig(seed=args.seed, incidents=incidents)
    token = os.environ.get(TOKEN_ENVIRONMENT_VARIABLE) or None
    tokens = dict.fromkeys(SYSTEMS, token) if token else None
    platform = SimulatedPlatform(config, args.host, args.ports, tokens=tokens)

    stopping = threading.Event()

    def request_stop(signal_number: int, frame: FrameType | None) -> None:
        logger.info("Received signal %d, stopping", signal_number)
        stopping.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    try:
        platform.start()
    except ExporterStartError as error:
        logger.error("%s", error)
        return 1

    logger.info(
        "Simulating seed %d with %s, bearer token %s",
        args.seed, "demo incidents" if incidents else "no incidents",
        "required" if token else "not required",
    )
    for system, url in platform.urls.items():
        logger.info("Serving %s at %s", DISPLAY_NAMES[system], url)

    # A short timeout keeps the main thread responsive to signals.
    while not stopping.wait(0.5):
        pass
    platform.stop()
    logger.info("Stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
