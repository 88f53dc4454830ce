"""Run the embedded collector as a process of its own: `python -m lib.collect [--config FILE]`.

By default the app runs the collector as a thread of the Streamlit server process, where
parsing shares the interpreter lock with page renders. With many or large targets, start this
command first on the same configuration: it takes the data directory's `collector.lock`, so the
app finds the lock held and only reads the store. It also runs what belongs with the collector:
the simulated platform when `[simulator] enabled`, its backfill, and the embedded alert rules
after each cycle.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType

from lib.config import ConfigError, load_settings
from lib.monitor import build_monitor, configure_logging

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lib.collect",
        description="Scrape the configured targets into the embedded store until stopped.",
    )
    parser.add_argument("--config", help="settings file (default: PLATFORM_MONITOR_CONFIG or "
                                         "platform-monitor.toml)")
    args = parser.parse_args(argv)
    configure_logging()
    try:
        settings = load_settings(args.config)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if settings.source.kind != "embedded":
        print("error: [source] kind is not \"embedded\", so there is no collector to run; the "
              "Prometheus server scrapes the targets.", file=sys.stderr)
        return 2

    _, runtime = build_monitor(settings)
    if runtime.collector is None:
        print(f"error: another process already runs the collector for "
              f"{settings.storage.data_dir} (it holds collector.lock there); stop it first.",
              file=sys.stderr)
        runtime.stop()
        return 1

    stopped = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        log.info("stopping on signal %d", signum)
        stopped.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    stopped.wait()
    runtime.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
