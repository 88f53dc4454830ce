"""The embedded source's memo of evaluated frames: reused until the next write, never shared."""

from __future__ import annotations

from pathlib import Path

import httpx
import pandas as pd
import pytest

from lib.collector import Collector
from lib.sources.embedded import EmbeddedSource
from lib.store import Store
from lib.timerange import TimeRange
from tests.conftest import make_settings
from tests.test_store_rollups import T0, body

SIGNALS = ["requests_per_second", "error_rate", "p95_latency_ms", "memory_usage"]


class CountingStore(Store):
    """A store that counts the range reads of aggregates."""

    reads = 0

    def aggregate_series(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        CountingStore.reads += 1
        return super().aggregate_series(*args, **kwargs)


@pytest.fixture
def loaded(tmp_path: Path) -> tuple[Collector, Path]:
    settings = make_settings({"relaycore": "http://127.0.0.1:9/metrics"}, tmp_path)
    path = tmp_path / "m.sqlite"
    collector = Collector(settings, Store(path), httpx.Client())
    for i in range(1, 200):
        collector.ingest(T0 + 15 * i, {"relaycore": body(i, ("0.1", "0.5"))})
    return collector, path


def test_repeated_query_read_once(loaded: tuple[Collector, Path]) -> None:
    _, path = loaded
    source = EmbeddedSource(CountingStore(path), 15.0)
    time_range = TimeRange.between(T0 + 600, T0 + 2985, 15.0)
    CountingStore.reads = 0
    first = source.signals(["relaycore"], time_range, SIGNALS)
    second = source.signals(["relaycore"], time_range, SIGNALS)
    assert CountingStore.reads == 1
    pd.testing.assert_frame_equal(first, second)
    assert second.attrs["time_range"] == time_range
    assert "relaycore" in second.attrs["freshness"]


def test_new_write_evaluates_again(loaded: tuple[Collector, Path]) -> None:
    collector, path = loaded
    source = EmbeddedSource(CountingStore(path), 15.0)
    time_range = TimeRange.between(T0 + 600, T0 + 3000, 15.0)
    before = source.signals(["relaycore"], time_range, SIGNALS)
    collector.ingest(T0 + 3000, {"relaycore": body(200, ("0.1", "0.5"))})
    after = source.signals(["relaycore"], time_range, SIGNALS)
    fresh = EmbeddedSource(Store(path), 15.0, memo_size=0).signals(
        ["relaycore"], time_range, SIGNALS
    )
    pd.testing.assert_frame_equal(after, fresh)
    # Memory is 1e8 + the cycle number, so the last point moves to the new row's value.
    memory_before = before[before["signal"] == "memory_usage"]["value"].iloc[-1]
    memory_after = after[after["signal"] == "memory_usage"]["value"].iloc[-1]
    assert memory_before == 1e8 + 199
    assert memory_after == 1e8 + 200


def test_changing_a_result_leaves_the_memo(loaded: tuple[Collector, Path]) -> None:
    _, path = loaded
    source = EmbeddedSource(Store(path), 15.0)
    time_range = TimeRange.between(T0 + 600, T0 + 2985, 15.0)
    first = source.signals(["relaycore"], time_range, SIGNALS)
    expected = first["value"].copy()
    first.loc[:, "value"] = -1.0
    first.attrs["time_range"] = None
    second = source.signals(["relaycore"], time_range, SIGNALS)
    pd.testing.assert_series_equal(second["value"], expected)
    assert second.attrs["time_range"] == time_range


def test_memo_off_reads_every_time(loaded: tuple[Collector, Path]) -> None:
    _, path = loaded
    source = EmbeddedSource(CountingStore(path), 15.0, memo_size=0)
    time_range = TimeRange.between(T0 + 600, T0 + 2985, 15.0)
    CountingStore.reads = 0
    source.signals(["relaycore"], time_range, SIGNALS)
    source.signals(["relaycore"], time_range, SIGNALS)
    assert CountingStore.reads == 2
