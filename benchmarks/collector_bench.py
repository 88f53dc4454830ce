"""Collector benchmark: CPU time per scrape cycle, concurrency, and what a scrape costs a page.

Bodies come from `benchmarks.body_server` in its own process, so this process's CPU time
(`time.process_time`, all threads) is the collector's: fetch, parse, reset correction, sums and
the SQLite write. The baseline is prometheus_client's parser alone on the same bodies.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from benchmarks.body_server import make_body
from benchmarks.timing import Timing, measure
from lib.collector import Collector
from lib.config import Settings, StorageSettings, TargetConfig
from lib.http import make_client
from lib.store import Store


@contextmanager
def body_servers(targets: int, series: int, delay: float = 0.0) -> Iterator[list[str]]:
    """Run `targets` body servers in a child process and yield their URLs."""
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.body_server", "--targets", str(targets),
         "--series", str(series), "--delay", str(delay)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        yield list(json.loads(process.stdout.readline()))
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=30)


def make_collector(urls: list[str], data_dir: Path) -> Collector:
    """Return a collector over `urls` writing a fresh store in `data_dir`."""
    targets = tuple(
        TargetConfig(f"target{i}", f"Target {i}", url, "#4C78A8", "bench_")
        for i, url in enumerate(urls)
    )
    settings = Settings(targets=targets, storage=StorageSettings(data_dir=data_dir),
                        scrape_timeout=10.0)
    return Collector(settings, Store(data_dir / "metrics.sqlite"), make_client())


@dataclass(frozen=True)
class CycleCost:
    """CPU time of one collector cycle against the parser alone on the same bodies."""

    targets: int
    series: int
    collector: Timing
    parser: Timing


def cycle_cpu(targets: int, series: int, repeat: int) -> CycleCost:
    """Measure CPU time per cycle of `targets` targets of `series` series each."""
    body = make_body(series).decode()

    def parse_all() -> None:
        for _ in range(targets):
            for family in text_string_to_metric_families(body):
                for _sample in family.samples:
                    pass

    parser = measure(parse_all, repeat, clock=time.process_time)
    with body_servers(targets, series) as urls, tempfile.TemporaryDirectory() as tmp:
        collector = make_collector(urls, Path(tmp))
        ticks = iter(range(1, 10_000))
        cost = measure(lambda: collector.scrape_once(now=1e9 + 15 * next(ticks)), repeat,
                       clock=time.process_time)
        collector.stop()
    return CycleCost(targets, series, cost, parser)


def cycle_wall(targets: int, series: int, delay: float, repeat: int) -> Timing:
    """Measure the wall time of one cycle of `targets` targets of `series` series that each
    answer after `delay` seconds."""
    with body_servers(targets, series, delay) as urls, tempfile.TemporaryDirectory() as tmp:
        collector = make_collector(urls, Path(tmp))
        ticks = iter(range(1, 10_000))
        timing = measure(lambda: collector.scrape_once(now=1e9 + 15 * next(ticks)), repeat)
        collector.stop()
    return timing


@contextmanager
def scraping_in_background(targets: int, series: int) -> Iterator[None]:
    """Run collector cycles back to back in a thread of this process while the block runs."""
    stop = threading.Event()
    with body_servers(targets, series) as urls, tempfile.TemporaryDirectory() as tmp:
        collector = make_collector(urls, Path(tmp))
        ticks = iter(range(1, 1_000_000))

        def loop() -> None:
            while not stop.is_set():
                collector.scrape_once(now=1e9 + 15 * next(ticks))

        thread = threading.Thread(target=loop, name="bench-collector", daemon=True)
        thread.start()
        time.sleep(0.5)
        try:
            yield
        finally:
            stop.set()
            thread.join()
            collector.stop()


@contextmanager
def scraping_in_other_process(targets: int, series: int) -> Iterator[None]:
    """Run collector cycles back to back in a child process while the block runs, as
    `python -m lib.collect` runs the collector apart from the app."""
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.collector_bench", "--targets", str(targets),
         "--series", str(series)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        process.stdout.readline()  # the first cycle has run
        yield
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=60)


def main() -> None:
    """Scrape back to back until standard input closes, printing a line after the first cycle."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", type=int, required=True)
    parser.add_argument("--series", type=int, required=True)
    args = parser.parse_args()
    with scraping_in_background(args.targets, args.series):
        print("scraping", flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
