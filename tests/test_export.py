"""Exports hold exactly what the charts draw, keep their time zone, and are safe in spreadsheets."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from lib.breakdown_charts import breakdown_chart
from lib.charts import signal_chart
from lib.export import (
    FORMULA_PREFIXES,
    MAX_EXPORT_ROWS,
    PARQUET_METADATA_KEY,
    Export,
    ExportMetadata,
    ExportTooLarge,
    breakdown_export_frame,
    file_name,
    frame_export,
    read_csv_export,
    render,
    signal_definitions,
    signals_export,
    to_csv,
    to_json,
    to_parquet,
    wide_frame,
)
from lib.monitor import Monitor
from lib.system_views import RELAYCORE, panel_frame
from lib.timerange import TimeRange
from tests.conftest import PLATFORM_HOUR_START
from tests.support.platform_run import SCRAPE, PlatformRun

END = PLATFORM_HOUR_START + 3600.0
ROOT = Path(__file__).resolve().parent.parent
SYSTEMS = ["automatrix", "relaycore", "neuroweaver"]


def hour_export(monitor: Monitor, signals: tuple[str, ...]) -> tuple[pd.DataFrame, Export]:
    time_range = monitor.time_range("1h", now=END)
    frame = monitor.platform_metrics(["automatrix", "relaycore", "neuroweaver"], time_range,
                                     signals)
    export = frame_export(frame, monitor, ["automatrix", "relaycore", "neuroweaver"],
                          signal_definitions(signals, monitor.source, SYSTEMS, time_range),
                          time_range, "displayed",
                          END)
    return frame, export


def test_csv_equals_chart_rows(platform_hour: PlatformRun) -> None:
    frame, export = hour_export(platform_hour.monitor, ("requests_per_second",))
    chart = signal_chart(frame, "requests_per_second", title="Requests")
    drawn = chart.data  # Altair lifts the layers' shared data to the layer chart

    metadata, table = read_csv_export(to_csv(export))

    assert len(table) == len(drawn) == 3 * 241
    assert list(table["timestamp"]) == [t.isoformat() for t in drawn["timestamp"]]
    assert list(table["system"]) == list(drawn["system"])
    assert list(table["signal"]) == list(drawn["signal"])
    np.testing.assert_array_equal(table["value"].to_numpy(float),
                                  drawn["value"].astype(float).to_numpy())
    assert set(table["unit"]) == {"req/s"}
    assert metadata["range_start"] == "2023-11-14T23:00:00+00:00"
    assert metadata["step_seconds"] == "15.0"
    assert metadata["time_zone"] == "UTC"
    assert json.loads(metadata["signals"])["requests_per_second"]["unit"] == "req/s"


def test_breakdown_csv_equals_chart_rows(platform_hour: PlatformRun) -> None:
    monitor = platform_hour.monitor
    time_range = monitor.time_range("1h", now=END)
    panel = next(p for p in RELAYCORE.panels if p.signal == "ai_cost_by_model")
    frame = panel_frame(monitor.breakdowns(), "relaycore", panel, time_range)
    drawn = breakdown_chart(frame, title=panel.title, unit=panel.unit).data

    data = breakdown_export_frame(frame, "relaycore", panel.signal, panel.unit, panel.by)
    export = frame_export(data, monitor, ["relaycore"], {}, time_range, "displayed", END,
                          panel.by)
    _, table = read_csv_export(to_csv(export))

    assert len(table) == len(drawn)
    assert list(table["timestamp"]) == [t.isoformat() for t in drawn["timestamp"]]
    assert list(table["provider"] + " / " + table["model"]) == list(drawn["series"])
    np.testing.assert_array_equal(table["value"].to_numpy(float),
                                  drawn["value"].astype(float).to_numpy())
    assert set(table["unit"]) == {"USD/h"}


def test_csv_timestamps_carry_offset(platform_hour: PlatformRun) -> None:
    _, export = hour_export(platform_hour.monitor, ("error_rate",))
    _, table = read_csv_export(to_csv(export))
    parsed = pd.to_datetime(table["timestamp"])
    assert str(parsed.dt.tz) == "UTC"
    assert table["timestamp"].str.endswith("+00:00").all()


def test_parquet_and_json_match_csv(platform_hour: PlatformRun) -> None:
    _, export = hour_export(platform_hour.monitor, ("requests_per_second", "p95_latency_ms"))
    _, from_csv = read_csv_export(to_csv(export))

    parquet = pq.read_table(io.BytesIO(to_parquet(export)))
    from_parquet = parquet.to_pandas()
    assert str(from_parquet["timestamp"].dt.tz) == "UTC"
    assert list(from_parquet["timestamp"].map(pd.Timestamp.isoformat)) == \
        list(from_csv["timestamp"])
    np.testing.assert_array_equal(from_parquet["value"].to_numpy(),
                                  from_csv["value"].to_numpy(float))
    parquet_metadata = json.loads(parquet.schema.metadata[PARQUET_METADATA_KEY])
    assert parquet_metadata["time_zone"] == "UTC"
    assert parquet_metadata["range_end"] == "2023-11-15T00:00:00+00:00"

    document = json.loads(to_json(export))
    rows = pd.DataFrame(document["data"])
    assert document["columns"] == ["timestamp", "system", "signal", "value", "unit"]
    assert list(rows["timestamp"]) == list(from_csv["timestamp"])
    np.testing.assert_array_equal(rows["value"].astype(float).to_numpy(),
                                  from_csv["value"].to_numpy(float))
    assert document["metadata"]["fetched_at"] == "2023-11-15T00:00:00+00:00"


def test_metadata_records_staleness(platform_hour: PlatformRun) -> None:
    _, export = hour_export(platform_hour.monitor, ("up",))
    # The hour ended at END; the collector's last successful scrapes were at END.
    assert export.metadata.stale is False

    later = frame_export(export.frame, platform_hour.monitor, ["relaycore"], {},
                         export.metadata.time_range, "displayed", END + 600)
    assert later.metadata.stale_systems == ("relaycore",)
    metadata, _ = read_csv_export(to_csv(later))
    assert metadata["stale"] == "true"


TRICKY_LABELS = [
    "=HYPERLINK(\"http://127.0.0.1/\",\"x\")",
    "+1+2",
    "-3",
    "@SUM(A1)",
    "\tindented",
    "\rreturn",
    'comma, "quotes" and\nnew line',
    "plain",
]


def tricky_export() -> Export:
    count = len(TRICKY_LABELS)
    frame = pd.DataFrame({
        "timestamp": pd.to_datetime([PLATFORM_HOUR_START + i for i in range(count)], unit="s",
                                    utc=True),
        "system": ["=cmd|' /C calc'!A0"] * count,
        "signal": ["requests_per_second"] * count,
        "model": TRICKY_LABELS,
        "value": [-1.5, 2.0, -3.0, 0.0, np.nan, 1e-9, 12345.678, -0.25],
        "unit": ["req/s"] * count,
    })
    time_range = TimeRange.between(PLATFORM_HOUR_START, END, SCRAPE)
    metadata = ExportMetadata(source="=evil, source", systems=("=cmd",), definitions={},
                              time_range=time_range, resolution="displayed",
                              fetched_at=time_range.end, labels=("model",))
    return Export(frame, metadata)


def test_csv_never_starts_cell_with_formula() -> None:
    data = to_csv(tricky_export()).decode("utf-8")
    for row in csv.reader(io.StringIO(data)):
        for cell in row:
            assert not cell.startswith(FORMULA_PREFIXES) or _is_number(cell), repr(cell)


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def test_csv_labels_round_trip() -> None:
    export = tricky_export()
    _, table = read_csv_export(to_csv(export))
    restored = [cell[1:] if cell.startswith("'") else cell for cell in table["model"]]
    assert restored == TRICKY_LABELS
    assert set(table["system"]) == {"'=cmd|' /C calc'!A0"}


def test_csv_numbers_stay_numbers() -> None:
    data = to_csv(tricky_export()).decode("utf-8")
    _, table = read_csv_export(to_csv(tricky_export()))
    assert table["value"].dtype == float
    np.testing.assert_array_equal(table["value"].to_numpy(),
                                  tricky_export().frame["value"].to_numpy())
    assert ",-1.5,req/s" in data
    assert "'-1.5" not in data


def test_wide_csv_one_column_per_series(platform_hour: PlatformRun) -> None:
    _, export = hour_export(platform_hour.monitor, ("requests_per_second", "cpu_usage"))
    wide = wide_frame(export)
    assert len(wide) == 241
    assert "relaycore/requests_per_second (req/s)" in wide.columns
    assert "neuroweaver/cpu_usage (cores)" in wide.columns

    _, table = read_csv_export(render(export, "csv", wide=True))
    column = "automatrix/cpu_usage (cores)"
    expected = export.frame[(export.frame["system"] == "automatrix")
                            & (export.frame["signal"] == "cpu_usage")]["value"].to_numpy()
    np.testing.assert_array_equal(table[column].to_numpy(float), expected)


def test_wide_only_for_csv(platform_hour: PlatformRun) -> None:
    _, export = hour_export(platform_hour.monitor, ("up",))
    with pytest.raises(ValueError, match="CSV only"):
        render(export, "json", wide=True)


def test_finest_resolution_uses_scrape_step(platform_hour: PlatformRun) -> None:
    monitor = platform_hour.monitor
    time_range = monitor.time_range("6h", now=END)
    assert time_range.step == 60
    export = signals_export(monitor, ["relaycore"], ["requests_per_second"], time_range,
                            "finest", now=END)
    assert export.metadata.time_range.step == SCRAPE
    assert len(export.frame) == 6 * 240 + 1
    assert export.metadata.resolution == "finest"


def test_finest_resolution_row_limit(platform_hour: PlatformRun) -> None:
    monitor = platform_hour.monitor
    time_range = monitor.time_range("7d", now=END)
    # Past the raw retention the finest step is the 1-minute roll-up: 10,081 points a line.
    with pytest.raises(ExportTooLarge, match="holds? 90,729 rows, more than the limit"):
        signals_export(monitor, ["relaycore"], None, time_range, "finest", now=END,
                       max_rows=90_000)
    export = signals_export(monitor, ["relaycore"], None, time_range, "displayed", now=END,
                            max_rows=90_000)
    assert len(export.frame) == 337 * 9
    assert len(export.frame) < MAX_EXPORT_ROWS


def test_file_name_names_range(platform_hour: PlatformRun) -> None:
    time_range = platform_hour.monitor.time_range("1h", now=END)
    assert file_name(["relaycore"], time_range, "csv", wide=True) == \
        "platform-monitor_relaycore_20231114T2300Z_1h_wide.csv"


def test_cli_writes_library_file(platform_hour: PlatformRun, tmp_path: Path) -> None:
    store = platform_hour.monitor.store
    assert store is not None
    config = tmp_path / "platform-monitor.toml"
    config.write_text("[collector]\nscrape_interval = 15\n", encoding="utf-8")
    environ = {**os.environ, "PLATFORM_MONITOR_CONFIG": str(config),
               "PLATFORM_MONITOR_DATA_DIR": str(store.path.parent)}
    output = tmp_path / "relaycore.csv"

    result = subprocess.run(
        [sys.executable, "-m", "lib.export", "--range", "1h", "--end", str(END),
         "--systems", "relaycore", "--format", "csv", "--output", str(output)],
        cwd=ROOT, env=environ, capture_output=True, text=True, timeout=60, check=False,
    )

    assert result.returncode == 0, result.stderr
    from lib.config import load_settings
    from lib.monitor import build_monitor
    monitor, _ = build_monitor(load_settings(environ=environ), start_background=False)
    export = signals_export(monitor, ["relaycore"], None, monitor.time_range("1h", now=END))
    expected = _without_fetch_time(to_csv(export))
    assert _without_fetch_time(output.read_bytes()) == expected


def _without_fetch_time(data: bytes) -> list[str]:
    return [line for line in data.decode("utf-8").split("\n")
            if not line.startswith("# fetched_at")]


def test_cli_rejects_unknown_system(platform_hour: PlatformRun, tmp_path: Path) -> None:
    config = tmp_path / "platform-monitor.toml"
    config.write_text("[collector]\nscrape_interval = 15\n", encoding="utf-8")
    environ = {**os.environ, "PLATFORM_MONITOR_CONFIG": str(config),
               "PLATFORM_MONITOR_DATA_DIR": str(tmp_path / "data")}
    result = subprocess.run(
        [sys.executable, "-m", "lib.export", "--systems", "nosuch"],
        cwd=ROOT, env=environ, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 2
    assert "unknown system 'nosuch'" in result.stderr


class QueriesOfOneSystem:
    def signal(self, signal: str, window: float, step: float) -> str:
        return f"{signal}[{window:g}s] step {step:g}"


class SourceWithQueries:
    label = "Prometheus at http://127.0.0.1:9090"
    queries = {"relaycore": QueriesOfOneSystem()}


def test_definitions_carry_promql() -> None:
    time_range = TimeRange.between(PLATFORM_HOUR_START, END, SCRAPE)
    definitions = signal_definitions(["requests_per_second"], SourceWithQueries(),
                                     ["relaycore"], time_range)
    assert definitions["requests_per_second"]["promql"] == {
        "relaycore": "requests_per_second[60s] step 15",
    }
    assert definitions["requests_per_second"]["unit"] == "req/s"


def test_definitions_without_promql(platform_hour: PlatformRun) -> None:
    time_range = TimeRange.between(PLATFORM_HOUR_START, END, SCRAPE)
    definitions = signal_definitions(["error_rate"], platform_hour.monitor.source, SYSTEMS,
                                     time_range)
    assert "promql" not in definitions["error_rate"]
    assert definitions["error_rate"]["meaning"].startswith("rate of 5xx responses")
