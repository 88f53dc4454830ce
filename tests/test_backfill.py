from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lib.backfill import backfill
from lib.config import Settings, settings_from_mapping
from lib.sources.embedded import EmbeddedSource
from lib.store import Store
from lib.timerange import TimeRange

# 00:15 UTC: no incident of the demo schedule is active in the ten minutes before it.
END = 1_700_007_300.0


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return settings_from_mapping({"collector": {"scrape_interval": "15s"}},
                                 {"PLATFORM_MONITOR_DATA_DIR": str(tmp_path)})


def test_backfill_writes_one_cycle_per_interval(settings: Settings, tmp_path: Path) -> None:
    store = Store(tmp_path / "metrics.sqlite")

    cycles = backfill(settings, store, END - 600, END)

    assert cycles == 41
    records = {record.system: record for record in store.targets()}
    assert set(records) == {"automatrix", "relaycore", "neuroweaver"}
    assert all(record.health == "up" for record in records.values())
    assert all(record.last_scrape_at == END for record in records.values())


def test_backfill_gives_rates_for_the_range(settings: Settings, tmp_path: Path) -> None:
    store = Store(tmp_path / "metrics.sqlite")
    backfill(settings, store, END - 600, END)

    source = EmbeddedSource(store, settings.scrape_interval)
    frame = source.signals(settings.systems, TimeRange.between(END - 300, END, 15.0),
                           ["requests_per_second"])

    for system in settings.systems:
        values = frame.loc[frame["system"] == system, "value"].to_numpy()
        assert np.isfinite(values).all(), system
        assert (values > 0).all(), system


def test_backfill_records_outage_as_down(settings: Settings, tmp_path: Path) -> None:
    store = Store(tmp_path / "metrics.sqlite")
    outage_start = 1_700_010_600.0  # 01:10 UTC, when a demo NeuroWeaver outage of 75 s starts

    backfill(settings, store, outage_start - 60, outage_start + 30)

    records = {record.system: record for record in store.targets()}
    assert records["neuroweaver"].health == "down"
    assert records["relaycore"].health == "up"


def test_backfill_rejects_empty_range(settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must end after it starts"):
        backfill(settings, Store(tmp_path / "metrics.sqlite"), END, END)
