"""Many sessions share one query per interval: the pages read through st.cache_data."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import lib.monitor
from app_pages.state import DATA_TTL_SECONDS, REFRESH_LABELS, cached_overview, clear_data_caches
from lib.monitor import Runtime
from tests.support.rig import Rig, start_rig

ROOT = Path(__file__).resolve().parent.parent
SESSIONS = 5
SYSTEMS = ("automatrix", "relaycore", "neuroweaver")


@pytest.fixture
def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    rig = start_rig(tmp_path)
    rig.scrape(8)
    monkeypatch.setattr(lib.monitor, "_MONITOR", (rig.monitor, Runtime()))
    clear_data_caches()
    yield rig
    clear_data_caches()
    rig.stop()


def page(name: str) -> str:
    return str(ROOT / "app_pages" / f"{name}.py")


def plain(markdown: str) -> str:
    """Return page text without the backslashes that escape Markdown."""
    return markdown.replace("\\", "")


def snapshot_calls(rig: Rig) -> int:
    return sum(count for (method, _), count in rig.source.calls.items() if method == "snapshot")


def test_sessions_share_one_query(rig: Rig) -> None:
    for _ in range(SESSIONS):
        at = AppTest.from_file(page("overview"), default_timeout=30).run()
        assert not at.exception
        assert len(at.warning) == 0
    # One snapshot per system for all sessions together, not one per session.
    assert snapshot_calls(rig) == len(SYSTEMS)


def test_concurrent_calls_share_one_query(rig: Rig) -> None:
    with ThreadPoolExecutor(max_workers=SESSIONS) as pool:
        key = rig.monitor.key
        results = list(pool.map(lambda _: cached_overview(SYSTEMS, "1h", key), range(SESSIONS)))
    assert snapshot_calls(rig) == len(SYSTEMS)
    assert all(len(healths) == len(SYSTEMS) for _, _, healths in results)


def test_stale_system_warns_on_page(rig: Rig) -> None:
    AppTest.from_file(page("overview"), default_timeout=30).run()
    clear_data_caches()
    rig.source.failing.add("relaycore")
    at = AppTest.from_file(page("overview"), default_timeout=30).run()
    assert not at.exception
    warnings = [plain(w.value) for w in at.warning]
    assert len(warnings) == 1
    assert "Stale: showing the last good data of RelayCore" in warnings[0]
    assert "the query for relaycore failed" in warnings[0]


def test_cross_system_page_names_stale(rig: Rig) -> None:
    rig.source.failing.add("neuroweaver")
    at = AppTest.from_file(page("cross_system"), default_timeout=30).run()
    assert not at.exception
    warnings = [plain(w.value) for w in at.warning]
    assert len(warnings) == 1
    assert "No data received yet from NeuroWeaver" in warnings[0]
    assert any("Fresh data: AutoMatrix" in plain(c.value) for c in at.caption)


def test_targets_page_shows_next_try(rig: Rig) -> None:
    at = AppTest.from_file(page("targets"), default_timeout=30).run()
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["State"]) == ["✅ up"] * 3
    assert "Next try" in table.columns


def test_slow_system_page_bounded(rig: Rig) -> None:
    AppTest.from_file(page("overview"), default_timeout=30).run()
    clear_data_caches()
    rig.source.delays["relaycore"] = 5.0
    started = time.monotonic()
    at = AppTest.from_file(page("overview"), default_timeout=30).run()
    elapsed = time.monotonic() - started
    assert not at.exception
    # The per-system limit is the scrape timeout (1 s); 2 s covers the script run itself.
    assert elapsed < rig.settings.scrape_timeout + 2.0
    warnings = [plain(w.value) for w in at.warning]
    assert len(warnings) == 1
    assert "did not return its data within 1 s" in warnings[0]


def test_data_ttl_shorter_than_every_refresh() -> None:
    shortest = min(seconds for seconds in REFRESH_LABELS if seconds is not None)
    # A cached entry is stored a moment after its run starts, so a TTL equal to the refresh
    # would still hold it one refresh later.
    assert shortest > DATA_TTL_SECONDS


def test_loading_result_not_served_after(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    loading = [True]
    monitor = lib.monitor.Monitor(rig.monitor.settings, rig.monitor.source, rig.monitor.store,
                                  clock=rig.monitor.clock, loading_history=lambda: loading[0])
    monkeypatch.setattr(lib.monitor, "_MONITOR", (monitor, Runtime()))
    at = AppTest.from_file(page("overview"), default_timeout=30).run()
    assert [info for info in at.info if "still being written" in info.value]
    assert snapshot_calls(rig) == len(SYSTEMS)

    # Within the cache's time to live, the first render after loading reads again.
    loading[0] = False
    at = AppTest.from_file(page("overview"), default_timeout=30).run()
    assert not at.info
    assert snapshot_calls(rig) == 2 * len(SYSTEMS)
