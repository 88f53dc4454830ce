"""Run the benchmarks and print each result with its ratio to a baseline from the same run.

    python -m benchmarks.run            # 7 days of history, every section
    python -m benchmarks.run --quick    # 1 day, fewer repeats and sizes, for CI

The loaded history is cached under the data directory and reused by later runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from benchmarks import collector_bench, exporters_bench, pages_bench, query
from benchmarks.history import SYSTEMS, History, build_history, import_victoria, settings_for
from benchmarks.servers import cpu_seconds, rss_bytes, start_prometheus, start_victoria
from benchmarks.timing import Timing, measure, measure_interleaved, ratio
from lib.config import SourceSettings
from lib.monitor import Monitor
from lib.sources.embedded import EmbeddedSource
from lib.sources.prometheus import PrometheusSource
from lib.store import Store
from lib.timerange import PRESETS, TimeRange

SECTIONS = ("query", "collector", "pages", "footprint", "exporters")
DEFAULT_DATA_DIR = Path(".data/bench")


class Report:
    """Prints results as they come and keeps them for the JSON file."""

    def __init__(self) -> None:
        self.results: list[dict[str, Any]] = []

    def section(self, title: str) -> None:
        print(f"\n== {title}", flush=True)

    def timing(self, name: str, value: Timing, baseline: Timing | None = None,
               baseline_name: str = "", target: str = "") -> None:
        line = f"{name:<58} {value.describe()}"
        entry: dict[str, Any] = {"name": name, "median_s": value.median, "min_s": value.low,
                                 "max_s": value.high, "runs": len(value.runs)}
        if baseline is not None:
            value_ratio = ratio(value, baseline)
            line += f"  ratio {value_ratio:.2f}x vs {baseline_name}"
            entry.update(ratio=value_ratio, baseline=baseline_name)
        if target:
            line += f"  (target {target})"
            entry["target"] = target
        print(line, flush=True)
        self.results.append(entry)

    def fact(self, name: str, value: str) -> None:
        print(f"{name:<58} {value}", flush=True)
        self.results.append({"name": name, "value": value})


def machine_facts() -> dict[str, str]:
    """Return the CPU, memory and versions this run used."""
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    cpu = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in lscpu.splitlines())}
    memory = next((line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal")), "0")
    versions = {}
    for tool, flag in (("prometheus", "--version"), ("victoria-metrics", "-version")):
        output = subprocess.run([tool, flag], capture_output=True, text=True, check=False)
        versions[tool] = (output.stdout or output.stderr).splitlines()[0:1]
    import prometheus_client  # noqa: PLC0415
    import streamlit  # noqa: PLC0415
    return {
        "cpu": cpu.get("Model name", platform.processor()),
        "cpus": cpu.get("CPU(s)", str(os.cpu_count())),
        "memory": f"{int(memory) / 1024 / 1024:.1f} GiB",
        "python": platform.python_version(),
        "sqlite": __import__("sqlite3").sqlite_version,
        "streamlit": streamlit.__version__,
        "prometheus_client": getattr(prometheus_client, "__version__", "unknown"),
        "prometheus": " ".join(versions["prometheus"]),
        "victoria-metrics": " ".join(versions["victoria-metrics"]) or "unknown",
        "load average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def embedded_monitor(history: History, memo: bool = True) -> Monitor:
    """Return a Monitor reading the history's embedded store (no collector), its clock fixed at
    the history's end. Without `memo`, every fetch evaluates its range again."""
    settings = settings_for(history.directory / "embedded", history.interval)
    store = Store(history.store_path)
    source = EmbeddedSource(store, history.interval, memo_size=64 if memo else 0)
    return Monitor(settings, source, store, clock=lambda: history.end)


def run_query(report: Report, history: History, repeat: int, work: Path) -> None:
    report.section(f"Query: both pages' data from {history.days:g} days of history")
    systems = list(SYSTEMS)
    monitor = embedded_monitor(history)
    presets = [p for p in PRESETS if PRESETS[p] <= history.days * 86400 + 1]
    prometheus_dir = work / "prometheus-data"
    shutil.copytree(history.prometheus_dir, prometheus_dir)
    with start_prometheus(prometheus_dir, work) as prometheus, \
            start_victoria(history.victoria_dir, work) as victoria, \
            httpx.Client(timeout=120.0) as client, \
            ThreadPoolExecutor(max_workers=query.HTTP_WORKERS) as pool:
        import_victoria(history, victoria)
        servers = {
            "Prometheus": query.PromQLClient(prometheus.url, client, pool, {}),
            "VictoriaMetrics": query.PromQLClient(victoria.url, client, pool, {}),
            "VictoriaMetrics without its result cache":
                query.PromQLClient(victoria.url, client, pool, {"nocache": "1"}),
        }
        fetchers: dict[str, query.FetchFrames] = {
            "embedded store (app)": query.monitor_fetcher(monitor, systems),
            "embedded store without its result cache (app)": query.monitor_fetcher(
                embedded_monitor(history, memo=False), systems),
        }
        settings = settings_for(history.directory / "embedded", history.interval)
        for name, server in (("Prometheus", prometheus), ("VictoriaMetrics", victoria)):
            source = PrometheusSource(SourceSettings(kind="prometheus", url=server.url),
                                      settings.targets, client, history.interval)
            app_monitor = Monitor(settings, source, clock=lambda: history.end)
            fetchers[f"{name} (app's Prometheus source)"] = query.monitor_fetcher(
                app_monitor, systems)
        for name, promql_client in servers.items():
            fetchers[f"{name} (pages' queries over HTTP)"] = query.http_pages_fetcher(
                promql_client, systems)
            fetchers[f"{name} (raw: six queries)"] = query.raw_fetcher(promql_client)
        def client_cpu() -> float:
            return time.process_time()

        def server_cpu(pid: int) -> Callable[[], float]:
            return lambda: time.process_time() + cpu_seconds(pid)

        cpu_probes: dict[str, Callable[[], float]] = {}
        for name in fetchers:
            if name.startswith("Prometheus"):
                cpu_probes[name] = server_cpu(prometheus.process.pid)
            elif name.startswith("Victoria"):
                cpu_probes[name] = server_cpu(victoria.process.pid)
            else:
                cpu_probes[name] = client_cpu
        for preset in presets:
            # One unmeasured round warms every backend's caches first.
            for fetch in fetchers.values():
                fetch(TimeRange.preset(preset, now=history.end,
                                       scrape_interval=history.interval), history.end)
            time_range = TimeRange.preset(preset, now=history.end,
                                          scrape_interval=history.interval)
            cpu: dict[str, float] = dict.fromkeys(fetchers, 0.0)
            timings = measure_interleaved(
                {name: lambda f=fetch, r=time_range, n=name, c=cpu: _with_cpu(
                    c, n, cpu_probes[n], lambda: f(r, history.end))
                 for name, fetch in fetchers.items()}, repeat, warmup=0)
            embedded = timings["embedded store (app)"]
            vm_raw = timings["VictoriaMetrics (raw: six queries)"]
            prom_raw = timings["Prometheus (raw: six queries)"]
            for name, timing in timings.items():
                report.timing(f"{preset} {name}", timing, embedded, "embedded store")
            for name, seconds in cpu.items():
                per_fetch = seconds / len(timings[name].runs)
                base = cpu["embedded store (app)"] / len(embedded.runs)
                report.fact(f"{preset} {name}: CPU per fetch (client + server)",
                            f"{per_fetch * 1000:.1f} ms, {per_fetch / base:.2f}x embedded store")
            for name in ("Prometheus", "VictoriaMetrics"):
                report.timing(f"{preset} {name}: app's source vs the same queries over HTTP",
                              timings[f"{name} (app's Prometheus source)"],
                              timings[f"{name} (pages' queries over HTTP)"],
                              "pages' queries over HTTP", "<= 1.2x")
            target = "<= 1x" if preset == "7d" else ""
            report.timing(f"{preset} embedded store vs VictoriaMetrics raw", embedded, vm_raw,
                          "VictoriaMetrics raw", target)
            report.timing(
                f"{preset} both without their result caches: embedded vs VictoriaMetrics raw",
                timings["embedded store without its result cache (app)"],
                timings["VictoriaMetrics without its result cache (raw: six queries)"],
                "VictoriaMetrics raw without its cache", target)
            report.timing(f"{preset} embedded store vs Prometheus raw", embedded, prom_raw,
                          "Prometheus raw", "<= 0.1x" if preset == "7d" else "")
        report.fact("RSS Prometheus after the queries",
                    f"{prometheus.rss_bytes() / 2**20:.0f} MiB")
        report.fact("RSS VictoriaMetrics after the queries",
                    f"{victoria.rss_bytes() / 2**20:.0f} MiB")
    _check_agreement(report, monitor, history, systems)


def _with_cpu(totals: dict[str, float], name: str, probe: Callable[[], float],
              action: Callable[[], object]) -> None:
    before = probe()
    action()
    totals[name] += probe() - before


def _check_agreement(report: Report, monitor: Monitor, history: History,
                     systems: list[str]) -> None:
    time_range = TimeRange.preset("1h", now=history.end, scrape_interval=history.interval)
    frame = monitor.platform_metrics(systems, time_range, ["requests_per_second"])
    means = frame.groupby("system")["value"].mean()
    report.fact("embedded mean requests/s over the last hour",
                ", ".join(f"{s} {v:.1f}" for s, v in means.items()))


def run_collector(report: Report, quick: bool, tiny: bool, repeat: int,
                  history: History) -> None:
    report.section("Collector: CPU per scrape cycle against prometheus_client's parser alone")
    sizes = [(3, 500), (30, 500)] if quick else [(3, 500), (3, 5000), (30, 500), (30, 5000)]
    if tiny:
        sizes = [(3, 100)]
    costs = {}
    for targets, series in sizes:
        cost = collector_bench.cycle_cpu(targets, series, repeat)
        costs[(targets, series)] = cost
        report.timing(f"{targets} targets x {series} series: collector CPU per cycle",
                      cost.collector, cost.parser, "parser alone", "<= 1.5x")
    for series in sorted({s for _, s in costs}):
        if (3, series) in costs and (30, series) in costs:
            report.timing(f"collector CPU growth 3 -> 30 targets, {series} series",
                          costs[(30, series)].collector, costs[(3, series)].collector,
                          "3 targets", "<= 10x (linear)")

    delay_targets = 3 if tiny else 30
    # Small bodies show the waiting alone; 500 series add the parsing, which needs the CPU.
    for series in (20, 500):
        single = collector_bench.cycle_wall(1, series, 0.2, repeat)
        many = collector_bench.cycle_wall(delay_targets, series, 0.2, repeat)
        report.timing(f"1 target x {series} series answering after 200 ms: cycle wall time",
                      single)
        report.timing(f"{delay_targets} targets x {series} series answering after 200 ms",
                      many, single, "1 target", "<= 1.5x")

    report.section("Collector and pages share one process and interpreter lock")
    # Without the memo, so that each query evaluates its range while the scrapes run.
    monitor = embedded_monitor(history, memo=False)
    time_range = TimeRange.preset("24h" if history.days >= 1 else "1h", now=history.end,
                                  scrape_interval=history.interval)

    def page_query() -> None:
        monitor.platform_metrics(list(SYSTEMS), time_range)

    idle = measure(page_query, repeat * 2)
    targets, series = (3, 100) if tiny else (30, 5000)
    with collector_bench.scraping_in_background(targets, series):
        busy = measure(page_query, repeat * 2)
    with collector_bench.scraping_in_other_process(targets, series):
        apart = measure(page_query, repeat * 2)
    report.timing(f"{time_range.label} embedded query, collector idle", idle)
    report.timing(f"same query while {targets} x {series} scrapes run in this process", busy,
                  idle, "idle")
    report.timing("same query while they run in another process (python -m lib.collect)",
                  apart, idle, "idle")


def run_pages(report: Report, history: History, repeat: int, tiny: bool) -> None:
    report.section("Pages: warm rerun through AppTest against the same page from memory")
    settings = settings_for(history.directory / "embedded", history.interval)
    store = Store(history.store_path)
    # Without the memo, so that a rerun with the data cache cleared evaluates its data again.
    counting = pages_bench.CountingSource(EmbeddedSource(store, history.interval, memo_size=0))
    live = pages_bench.PinnedMonitor(settings, counting, store, history.end)
    memory = pages_bench.InMemoryMonitor(settings, EmbeddedSource(store, history.interval),
                                         store, history.end)
    preset = longest_preset(history)
    for page in pages_bench.PAGES:
        real = pages_bench.warm_rerun(live, page, preset, repeat)
        baseline = pages_bench.warm_rerun(memory, page, preset, repeat)
        cached = pages_bench.warm_rerun(live, page, preset, repeat, keep_cache=True)
        report.timing(f"{page} ({preset}) from memory", baseline)
        report.timing(f"{page} ({preset}) warm rerun, fetching", real, baseline, "from memory",
                      "<= 2x")
        report.timing(f"{page} ({preset}) warm rerun within the cache TTL", cached, baseline,
                      "from memory", "<= 2x")
    sessions = 2 if tiny else 20
    for page in pages_bench.PAGES:
        fetches = pages_bench.fetches_for_sessions(live, counting, page, preset, sessions)
        report.fact(f"{page}: fetches for {sessions} sessions in one refresh interval",
                    f"{fetches} ({fetches / sessions:g} per session; target: one per query)")
    report.fact("RSS of this process (app, pages rendered, history open)",
                f"{rss_bytes(os.getpid()) / 2**20:.0f} MiB")


def longest_preset(history: History) -> str:
    """Return the longest range preset that the history covers."""
    covered = [name for name, span in PRESETS.items() if span <= history.days * 86400 + 1]
    return covered[-1] if covered else "1h"


def app_memory(data_dir: Path, end: float, interval: float) -> dict[str, Any]:
    """Return what `benchmarks.app_memory` measures in a fresh process on `data_dir`."""
    output = subprocess.run(
        [sys.executable, "-m", "benchmarks.app_memory", str(data_dir), str(end), str(interval)],
        capture_output=True, text=True, check=True, timeout=1800,
    ).stdout
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return result


def run_footprint(report: Report, history: History, work: Path) -> None:
    report.section("Footprint")
    loaded = app_memory(history.store_path.parent, history.end, history.interval)
    empty = app_memory(work / "empty-store", history.end, history.interval)
    for name, result in ((f"{history.days:g} days of history", loaded),
                         ("an empty store (baseline)", empty)):
        report.fact(
            f"app process RSS, every page drawn at every preset, {name}",
            f"{result['VmRSS'] / 2**20:.0f} MiB (peak {result['VmHWM'] / 2**20:.0f} MiB), "
            f"{result['pages_drawn']} page runs, failed: {result['failed'] or 'none'}",
        )
    report.fact("RSS added by the history",
                f"{(loaded['VmRSS'] - empty['VmRSS']) / 2**20:.0f} MiB")
    size = sum(p.stat().st_size for p in history.store_path.parent.iterdir() if p.is_file())
    per_target_day = size / len(SYSTEMS) / history.days
    report.fact("embedded store on disk", f"{size / 2**20:.1f} MiB for {history.days:g} days")
    report.fact("embedded store per target and day (raw kept 2 days, roll-ups 35)",
                f"{per_target_day / 2**20:.2f} MiB")
    for name, directory in (("Prometheus TSDB", history.prometheus_dir),
                            ("VictoriaMetrics data", history.victoria_dir)):
        total = sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())
        report.fact(f"{name} on disk", f"{total / 2**20:.1f} MiB")
    report.fact("history load (embedded ingest, files, promtool)",
                f"{history.seconds_to_build:.0f} s for {history.bodies} bodies")


def run_exporters(report: Report, repeat: int, tiny: bool) -> None:
    report.section("Exporters")
    from prometheus_client import CollectorRegistry  # noqa: PLC0415
    plain, instrumented = exporters_bench.request_costs(
        exporters_bench.plain_app(), exporters_bench.instrumented_app(CollectorRegistry()),
        repeat)
    report.timing("uninstrumented request (ASGI, in process)", plain)
    report.timing("instrumented request (counter, histogram, in-flight gauge)", instrumented,
                  plain, "uninstrumented")
    sizes = [50] if tiny else [500, 5000]
    renders = {}
    for series in sizes:
        timing, lines = exporters_bench.render_cost(series, repeat)
        renders[series] = timing
        report.timing(f"render /metrics, {lines} sample lines", timing)
    if len(sizes) == 2:
        report.timing("render growth 500 -> 5,000 series", renders[5000], renders[500],
                      "500 series", "<= 10x (linear)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run Platform Monitor's benchmarks.")
    parser.add_argument("--quick", action="store_true",
                        help="1 day of history, 3 repeats and the smaller sizes")
    parser.add_argument("--tiny", action="store_true",
                        help="the smallest sizes that still run every step (for the smoke test)")
    parser.add_argument("--days", type=float, help="days of history (default 7, or 1 with --quick)")
    parser.add_argument("--repeat", type=int, help="measured runs per result (default 7, 3)")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                        help="where the loaded history is cached (default .data/bench)")
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help=f"comma-separated sections to run (default {','.join(SECTIONS)})")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args(argv)

    quick = args.quick or args.tiny
    days = 7.0
    if args.days is not None:
        days = args.days
    elif quick:
        days = 1.0
    repeat = args.repeat or (3 if quick else 7)
    sections = [s for s in args.sections.split(",") if s]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    logging.basicConfig(level=logging.WARNING)
    # NOTE: AppTest runs pages without a browser session, and Streamlit warns about it on
    # stderr on every run; its loggers take their level from its own configuration.

    report = Report()
    report.section("Machine")
    facts = machine_facts()
    for key, value in facts.items():
        report.fact(key, value)
    report.fact("command", " ".join(["python -m benchmarks.run", *(argv or sys.argv[1:])]))

    started = time.perf_counter()
    history = build_history(args.data_dir, days)
    report.fact("history", f"{history.days:g} days, {history.bodies} bodies, cached in "
                           f"{history.directory}")
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        work = Path(tmp)
        runners = {
            "query": lambda: run_query(report, history, repeat, work),
            "collector": lambda: run_collector(report, quick, args.tiny, repeat, history),
            "pages": lambda: run_pages(report, history, repeat, args.tiny),
            "footprint": lambda: run_footprint(report, history, work),
            "exporters": lambda: run_exporters(report, repeat, args.tiny),
        }
        for section in sections:
            runners[section]()
    report.fact("benchmark wall time", f"{time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"machine": facts, "results": report.results},
                                        indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
