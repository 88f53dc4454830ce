"""Build the same simulated history into the embedded store, Prometheus and VictoriaMetrics.

The simulated platform (three systems, demo incidents) is scraped every `interval` seconds
without HTTP. Each body goes through `Collector.ingest` into the embedded store, and the same
samples, labelled `job="<system>"` and stamped with the scrape time, into an OpenMetrics file for
`promtool tsdb create-blocks-from openmetrics` and a text file for VictoriaMetrics's
`/api/v1/import/prometheus`. A failed scrape (a system in an outage) writes `up` 0 and nothing
else, as Prometheus records it. Everything is cached under the data directory by length and seed.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks.servers import Server
from exporters.simulator import PlatformSimulator, SimulationConfig, demo_incidents
from lib.collector import Collector
from lib.config import DEFAULT_THRESHOLDS, Settings, StorageSettings, TargetConfig, Thresholds
from lib.monitor import STORE_FILE
from lib.store import Store

log = logging.getLogger(__name__)

SYSTEMS = {
    "automatrix": ("AutoMatrix", "autmatrix_", "#4C78A8"),
    "relaycore": ("RelayCore", "relaycore_", "#F58518"),
    "neuroweaver": ("NeuroWeaver", "neuroweaver_", "#54A24B"),
}
DAY_S = 86400.0
IMPORT_CHUNK_BYTES = 8 << 20


@dataclass(frozen=True)
class History:
    """A built history: where each engine's data lives and the time span it covers."""

    directory: Path
    start: float
    end: float
    interval: float
    bodies: int
    seconds_to_build: float

    @property
    def store_path(self) -> Path:
        return self.directory / "embedded" / STORE_FILE

    @property
    def prometheus_dir(self) -> Path:
        return self.directory / "prometheus"

    @property
    def victoria_dir(self) -> Path:
        return self.directory / "victoria"

    @property
    def days(self) -> float:
        return (self.end - self.start) / DAY_S


def settings_for(data_dir: Path, interval: float) -> Settings:
    """Return settings naming the three simulated systems (their URLs are never fetched)."""
    targets = tuple(
        TargetConfig(system, name, f"http://127.0.0.1:9/{system}/metrics", colour, prefix,
                     thresholds=DEFAULT_THRESHOLDS.get(system, Thresholds()))
        for system, (name, prefix, colour) in SYSTEMS.items()
    )
    return Settings(targets=targets, storage=StorageSettings(data_dir=data_dir),
                    scrape_interval=interval)


def build_history(root: Path, days: float, interval: float = 15.0, seed: int = 42) -> History:
    """Return the cached history of `days` days, building it first when it is missing."""
    directory = root / f"history-{days:g}d-{interval:g}s-seed{seed}"
    meta_path = directory / "history.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        return History(directory, meta["start"], meta["end"], interval, meta["bodies"],
                       meta["seconds_to_build"])
    if directory.exists():
        shutil.rmtree(directory)  # a build that did not finish
    directory.mkdir(parents=True)

    started = time.perf_counter()
    # The history ends at a whole day so that every range preset aligns with its step.
    end = math.floor(time.time() / DAY_S) * DAY_S
    start = end - days * DAY_S
    bodies = _ingest_embedded_and_write_files(directory, start, end, interval, seed)
    _create_prometheus_blocks(directory)
    meta = {"start": start, "end": end, "bodies": bodies,
            "seconds_to_build": time.perf_counter() - started}
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    return History(directory, start, end, interval, bodies, meta["seconds_to_build"])


def _scrapes(start: float, end: float, interval: float,
             seed: int) -> Iterator[tuple[float, dict[str, str | None]]]:
    simulator = PlatformSimulator(
        SimulationConfig(seed=seed, incidents=demo_incidents(), truth_retention=3600.0),
        start=start - interval,
    )
    cycle: dict[str, str | None] = {}
    current = start
    for scrape in simulator.iter_expositions(start, end, interval):
        if scrape.timestamp != current and cycle:
            yield current, cycle
            cycle = {}
        current = scrape.timestamp
        cycle[scrape.system] = scrape.text
    if cycle:
        yield current, cycle


def _ingest_embedded_and_write_files(directory: Path, start: float, end: float,
                                     interval: float, seed: int) -> int:
    settings = settings_for(directory / "embedded", interval)
    store = Store(directory / "embedded" / STORE_FILE)
    with httpx.Client() as unused_client:
        collector = Collector(settings, store, unused_client)
        bodies = 0
        with (directory / "history.om").open("w", encoding="utf-8") as openmetrics, \
                (directory / "history.prom").open("w", encoding="utf-8") as victoria, \
                store.batched():
            for ts, cycle in _scrapes(start, end, interval, seed):
                collector.ingest(ts, {s: t.encode() if t else None for s, t in cycle.items()})
                for system, text in cycle.items():
                    lines = _labelled_lines(system, text)
                    openmetrics.write("".join(f"{line} {ts:.3f}\n" for line in lines))
                    victoria.write("".join(f"{line} {int(ts * 1000)}\n" for line in lines))
                bodies += len(cycle)
                if bodies % 30000 < len(cycle):
                    log.info("history: %d bodies ingested", bodies)
            openmetrics.write("# EOF\n")
    store.close()
    return bodies


def _labelled_lines(system: str, text: str | None) -> list[str]:
    """Return the body's sample lines with a job label, plus the `up` sample."""
    job = f'job="{system}"'
    lines = [f"up{{{job}}} {0 if text is None else 1}"]
    for line in (text or "").splitlines():
        if not line or line[0] == "#":
            continue
        brace = line.find("{")
        if brace >= 0:
            lines.append(f"{line[:brace + 1]}{job},{line[brace + 1:]}")
        else:
            name, value = line.split(" ", 1)
            lines.append(f"{name}{{{job}}} {value}")
    return lines


def _create_prometheus_blocks(directory: Path) -> None:
    target = directory / "prometheus"
    target.mkdir()
    # Long blocks mean fewer passes over the file: promtool reads it once per block.
    subprocess.run(
        ["promtool", "tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=200h",
         str(directory / "history.om"), str(target)],
        check=True, stdout=subprocess.DEVNULL,
    )
    (directory / "history.om").unlink()


def import_victoria(history: History, server: Server) -> None:
    """Import the history's text file into a running VictoriaMetrics once, then flush it."""
    marker = history.victoria_dir / ".imported"
    if marker.exists():
        return
    with httpx.Client(timeout=600.0) as client, \
            (history.directory / "history.prom").open("rb") as source:
        while chunk := source.read(IMPORT_CHUNK_BYTES):
            chunk += source.readline()  # never split a line
            response = client.post(server.url + "/api/v1/import/prometheus", content=chunk)
            response.raise_for_status()
        client.get(server.url + "/internal/force_flush").raise_for_status()
    marker.write_text("imported\n", encoding="utf-8")
    (history.directory / "history.prom").unlink()


def open_store(history: History) -> Store:
    """Open the embedded store of `history`."""
    return Store(history.store_path)
