"""The store's in-memory aggregates rows give exactly what a fresh read from SQLite gives."""

from __future__ import annotations

import contextlib
from pathlib import Path

import httpx
import numpy as np

from lib.collector import Collector
from lib.store import ROLLUP_RESOLUTIONS, AggregateSeries, Store
from tests.conftest import make_settings

T0 = 1_699_999_200.0


def body(i: int, bounds: tuple[str, ...]) -> bytes:
    lines = [
        "# TYPE http_requests_total counter",
        f'http_requests_total{{code="200"}} {10.0 * i}',
        f'http_requests_total{{code="500"}} {float(i // 7)}',
        "# TYPE http_request_duration_seconds histogram",
    ]
    for n, le in enumerate(bounds):
        lines.append(f'http_request_duration_seconds_bucket{{le="{le}"}} {float(i * (n + 1))}')
    lines += [
        f'http_request_duration_seconds_bucket{{le="+Inf"}} {float(i * (len(bounds) + 1))}',
        f"http_request_duration_seconds_sum {0.1 * i}",
        f"http_request_duration_seconds_count {float(i * (len(bounds) + 1))}",
        "# TYPE process_resident_memory_bytes gauge",
        f"process_resident_memory_bytes {1e8 + i}",
    ]
    return ("\n".join(lines) + "\n").encode()


def assert_same(cached: AggregateSeries, fresh: AggregateSeries) -> None:
    np.testing.assert_array_equal(cached.ts, fresh.ts)
    np.testing.assert_array_equal(cached.up, fresh.up)
    np.testing.assert_array_equal(cached.scrapes, fresh.scrapes)
    np.testing.assert_array_equal(cached.bucket_bounds, fresh.bucket_bounds)
    np.testing.assert_array_equal(cached.buckets, fresh.buckets)
    for name, values in fresh.columns.items():
        np.testing.assert_array_equal(cached.columns[name], values, err_msg=name)


def test_cached_rows_equal_fresh_reads(tmp_path: Path) -> None:
    settings = make_settings({"relaycore": "http://127.0.0.1:9/metrics"}, tmp_path)
    path = tmp_path / "m.sqlite"
    collector = Collector(settings, Store(path), httpx.Client())
    reader = Store(path)
    rng = np.random.default_rng(7)
    bounds: tuple[str, ...] = ("0.1", "0.5")
    checked = 0
    for i in range(1, 1200):
        ts = T0 + 15 * i
        if 300 <= i < 340:
            cycle: bytes | None = None  # down: rows without histogram buckets
        else:
            if i == 700:
                bounds = ("0.1", "0.25", "0.5")  # the histogram gains a bucket
            cycle = body(i, bounds)
        collector.ingest(ts, {"relaycore": cycle})
        if i % 13:
            continue
        for resolution in (0, *ROLLUP_RESOLUTIONS):
            span = float(rng.choice([600, 3600, 4 * 3600, 86400]))
            end = ts + float(rng.choice([0.0, -100.0, 400.0]))
            start = end - span
            cached = reader.aggregate_series("relaycore", start, end, resolution)
            fresh = Store(path).aggregate_series("relaycore", start, end, resolution)
            assert_same(cached, fresh)
            checked += 1
    assert checked > 350


def test_changing_a_result_leaves_the_cache(tmp_path: Path) -> None:
    settings = make_settings({"relaycore": "http://127.0.0.1:9/metrics"}, tmp_path)
    path = tmp_path / "m.sqlite"
    collector = Collector(settings, Store(path), httpx.Client())
    for i in range(1, 60):
        collector.ingest(T0 + 15 * i, {"relaycore": body(i, ("0.1",))})
    reader = Store(path)
    first = reader.aggregate_series("relaycore", T0, T0 + 900, 60)
    expected = first.columns["requests"].copy()
    # A read-only view of the cached rows would protect them as well.
    with contextlib.suppress(ValueError):
        first.columns["requests"][:] = -1.0
    second = reader.aggregate_series("relaycore", T0, T0 + 900, 60)
    np.testing.assert_array_equal(second.columns["requests"], expected)


def test_pruned_rows_leave_the_cache(tmp_path: Path) -> None:
    settings = make_settings({"relaycore": "http://127.0.0.1:9/metrics"}, tmp_path)
    path = tmp_path / "m.sqlite"
    writer = Store(path)
    collector = Collector(settings, writer, httpx.Client())
    for i in range(1, 480):
        collector.ingest(T0 + 15 * i, {"relaycore": body(i, ("0.1",))})
    end = T0 + 15 * 479
    reader = Store(path)
    for resolution in (0, *ROLLUP_RESOLUTIONS):
        reader.aggregate_series("relaycore", end - 7200, end, resolution)

    # The collector's store prunes; the reader's cache must not keep what it deleted.
    writer.prune(end, raw_retention=1800.0, rollup_retention=3600.0)
    for resolution in (0, *ROLLUP_RESOLUTIONS):
        cached = reader.aggregate_series("relaycore", end - 7200, end, resolution)
        fresh = Store(path).aggregate_series("relaycore", end - 7200, end, resolution)
        assert_same(cached, fresh)
        assert cached.ts[0] >= end - (1800.0 if resolution == 0 else 3600.0)
