"""Exports of the series a chart shows, as CSV, JSON or Parquet, and the export command line.

An export is a long frame with the columns timestamp, system, signal, value and unit. Breakdown
exports add one column per label between signal and value. Its metadata records the source, each
signal's definition, the range, step and rate window, the resolution, when the data was fetched
and whether any of it was stale. Timestamps are UTC and written in ISO 8601 with their offset.

CSV cells that a spreadsheet would read as a formula are neutralised with a leading single
quote; numbers are written as numbers. The metadata goes into a block of `# key: value` rows
above the header (each row one quoted CSV field), into a `metadata` object in JSON, and into the
Parquet schema metadata under `platform_monitor`.

Command line, reading the configured source without starting a collector:

    python -m lib.export --range 24h --systems relaycore --format csv --output relaycore.csv
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lib.config import ConfigError, load_settings
from lib.errors import MonitorError
from lib.monitor import Monitor, build_monitor
from lib.signals import GOLDEN_SIGNALS, SIGNALS
from lib.store import ROLLUP_RESOLUTIONS
from lib.timerange import PRESETS, TimeRange, format_seconds

ExportFormat = Literal["csv", "json", "parquet"]
Resolution = Literal["displayed", "finest"]
FORMATS: tuple[str, ...] = ("csv", "json", "parquet")
RESOLUTIONS: tuple[str, ...] = ("displayed", "finest")
MIME_TYPES = {
    "csv": "text/csv",
    "json": "application/json",
    "parquet": "application/vnd.apache.parquet",
}
LONG_COLUMNS = ("timestamp", "system", "signal", "value", "unit")
# Rows one export may hold at the finest resolution: a week of 15-second points for three
# systems and eight signals is about 323,000 rows, which stays under it.
MAX_EXPORT_ROWS = 500_000
# A spreadsheet reads a cell starting with one of these as a formula (OWASP, "CSV Injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
PARQUET_METADATA_KEY = b"platform_monitor"
# A system counts as stale when its last successful scrape is older than this many intervals,
# the same rule the health status uses.
STALE_AFTER_SCRAPES = 3


class ExportTooLarge(MonitorError):
    """The requested export would contain more rows than `limit`."""

    def __init__(self, rows: int, limit: int) -> None:
        self.rows = rows
        self.limit = limit
        super().__init__(
            f"The export would hold {rows:,} rows, more than the limit of {limit:,}. "
            "Choose a shorter range, fewer systems or signals, or the displayed resolution."
        )


@dataclass(frozen=True)
class ExportMetadata:
    """Source, contents and range of an export."""

    source: str
    systems: tuple[str, ...]
    definitions: dict[str, dict[str, Any]]
    time_range: TimeRange
    resolution: str
    fetched_at: datetime
    stale_systems: tuple[str, ...] = ()
    labels: tuple[str, ...] = field(default=())

    @property
    def stale(self) -> bool:
        return bool(self.stale_systems)

    def as_dict(self) -> dict[str, Any]:
        """Return the metadata as JSON-compatible values, times in ISO 8601 with offset."""
        return {
            "source": self.source,
            "systems": list(self.systems),
            "signals": self.definitions,
            "range_start": self.time_range.start.isoformat(),
            "range_end": self.time_range.end.isoformat(),
            "range_label": self.time_range.label,
            "step_seconds": self.time_range.step,
            "rate_window_seconds": self.time_range.window,
            "resolution": self.resolution,
            "time_zone": "UTC",
            "fetched_at": self.fetched_at.isoformat(),
            "stale": self.stale,
            "stale_systems": list(self.stale_systems),
        }


@dataclass(frozen=True)
class Export:
    """A long frame (LONG_COLUMNS plus label columns) and its metadata."""

    frame: pd.DataFrame
    metadata: ExportMetadata


# -- building exports ---------------------------------------------------------------------------


def signal_definitions(
    signals: Sequence[str], source: object, systems: Sequence[str], time_range: TimeRange
) -> dict[str, dict[str, Any]]:
    """Return each signal's unit and meaning, and its PromQL per system where the source
    sends PromQL.

    A source provides PromQL through a method `promql(signal, system, time_range) -> str`, or
    through `queries[system].signal(signal, window, step)` as lib.sources.prometheus has it.
    """
    definitions: dict[str, dict[str, Any]] = {}
    for name in signals:
        signal = SIGNALS[name]
        definition: dict[str, Any] = {"unit": signal.unit, "meaning": signal.meaning}
        queries = {system: _promql(source, name, system, time_range) for system in systems}
        known = {system: query for system, query in queries.items() if query is not None}
        if known:
            definition["promql"] = known
        definitions[name] = definition
    return definitions


def _promql(source: object, signal: str, system: str, time_range: TimeRange) -> str | None:
    promql = getattr(source, "promql", None)
    if callable(promql):
        return str(promql(signal, system, time_range))
    queries = getattr(source, "queries", None)
    if isinstance(queries, Mapping) and system in queries:
        build = getattr(queries[system], "signal", None)
        if callable(build):
            return str(build(signal, time_range.window, time_range.step))
    return None


def finest_range(time_range: TimeRange, scrape_interval: float, raw_start: float) -> TimeRange:
    """Return `time_range` at the finest step the source holds for it.

    That is one scrape interval where every scrape is still kept (the range starts at or after
    `raw_start`), else the finest roll-up. The rate window is the larger of the step and four
    scrape intervals, as for displayed ranges.
    """
    step = scrape_interval if time_range.start_s >= raw_start else float(ROLLUP_RESOLUTIONS[0])
    step = min(step, time_range.step)
    window = max(step, 4 * scrape_interval)
    return TimeRange(time_range.start, time_range.end, step, window,
                     f"{time_range.label} (finest)")


def point_count(time_range: TimeRange) -> int:
    """Return the number of evaluation points of the range, both ends included."""
    return round(time_range.duration / time_range.step) + 1


def stale_systems(monitor: Monitor, systems: Sequence[str], now: float) -> tuple[str, ...]:
    """Return the systems whose last successful scrape is older than STALE_AFTER_SCRAPES
    intervals at `now`, by the embedded collector's view of its targets.

    With a source other than the embedded store the app keeps no target view, so only systems
    that a frame's `attrs["stale_systems"]` names count as stale.
    """
    if monitor.store is None:
        return ()
    limit = STALE_AFTER_SCRAPES * monitor.settings.scrape_interval
    records = {record.system: record for record in monitor.store.targets()}
    stale = []
    for system in systems:
        record = records.get(system)
        last_success = record.last_success_at if record else None
        if last_success is None or now - last_success > limit:
            stale.append(system)
    return tuple(stale)


def plan_export(
    monitor: Monitor,
    systems: Sequence[str],
    signals: Sequence[str],
    time_range: TimeRange,
    resolution: str,
    now: float,
) -> tuple[TimeRange, int]:
    """Return the range an export would read at `resolution` and the rows it would hold."""
    if resolution == "finest":
        raw_start = now - monitor.settings.storage.raw_retention
        time_range = finest_range(time_range, monitor.settings.scrape_interval, raw_start)
    return time_range, point_count(time_range) * len(systems) * len(signals)


def signals_export(
    monitor: Monitor,
    systems: Sequence[str],
    signals: Sequence[str] | None,
    time_range: TimeRange,
    resolution: Resolution = "displayed",
    now: float | None = None,
    max_rows: int = MAX_EXPORT_ROWS,
) -> Export:
    """Fetch the signals of `systems` over `time_range` from the monitor and wrap them.

    With `resolution="finest"` the step is the finest the
    source holds for the range.

    Raises:
        ExportTooLarge: if the export would hold more than `max_rows` rows.
        ValueError: for an unknown signal or resolution.
    """
    chosen = list(signals or GOLDEN_SIGNALS)
    unknown = [name for name in chosen if name not in SIGNALS]
    if unknown:
        raise ValueError(f"Unknown signals {unknown}; choose from {', '.join(SIGNALS)}.")
    if resolution not in RESOLUTIONS:
        raise ValueError(f"Unknown resolution {resolution!r}; use displayed or finest.")
    fetched = time.time() if now is None else now

    time_range, rows = plan_export(monitor, systems, chosen, time_range, resolution, fetched)
    if rows > max_rows:
        raise ExportTooLarge(rows, max_rows)

    frame = monitor.platform_metrics(systems, time_range, chosen)
    return frame_export(
        frame, monitor, systems,
        signal_definitions(chosen, monitor.source, systems, time_range), time_range,
        resolution, fetched,
    )


def frame_export(
    frame: pd.DataFrame,
    monitor: Monitor,
    systems: Sequence[str],
    definitions: dict[str, dict[str, Any]],
    time_range: TimeRange,
    resolution: str,
    fetched_at: float,
    labels: Sequence[str] = (),
) -> Export:
    """Wrap a frame a page already drew, so that the file contains exactly those rows."""
    stale = set(stale_systems(monitor, systems, fetched_at))
    stale.update(frame.attrs.get("stale_systems", ()))
    metadata = ExportMetadata(
        source=monitor.source_label,
        systems=tuple(systems),
        definitions=definitions,
        time_range=time_range,
        resolution=resolution,
        fetched_at=datetime.fromtimestamp(fetched_at, UTC),
        stale_systems=tuple(sorted(stale)),
        labels=tuple(labels),
    )
    columns = ["timestamp", "system", "signal", *labels, "value", "unit"]
    data = frame[columns].reset_index(drop=True)
    data.attrs = {}
    return Export(data, metadata)


def breakdown_export_frame(
    frame: pd.DataFrame, system: str, signal: str, unit: str, labels: Sequence[str]
) -> pd.DataFrame:
    """Return a breakdown frame (lib.breakdowns) in the long export shape."""
    data = pd.DataFrame({"timestamp": frame["timestamp"], "system": system, "signal": signal})
    for label in labels:
        data[label] = frame[label]
    data["value"] = frame["value"].astype(float)
    data["unit"] = unit
    return data


# -- writers ------------------------------------------------------------------------------------


def neutralise(text: str) -> str:
    """Return `text` with a leading single quote if a spreadsheet would read it as a formula."""
    if text.startswith(FORMULA_PREFIXES):
        return "'" + text
    return text


def iso_timestamps(timestamps: pd.Series) -> pd.Series:
    """Return UTC timestamps as ISO 8601 strings with their offset, e.g.
    2026-12-04T20:15:00+00:00."""
    utc = pd.to_datetime(timestamps, utc=True)
    return pd.Series([moment.isoformat() for moment in utc], index=timestamps.index, dtype=object)


def to_csv(export: Export, wide: bool = False) -> bytes:
    """Return the export as UTF-8 CSV: the metadata rows, then the long or wide table."""
    table = wide_frame(export) if wide else _long_text_frame(export.frame)
    table = _neutralised(table)
    buffer = io.StringIO()
    # CRLF as RFC 4180 has it; the csv module then also quotes cells holding a lone "\r".
    writer = csv.writer(buffer, lineterminator="\r\n")
    for key, value in export.metadata.as_dict().items():
        plain = isinstance(value, str) and "\n" not in value and "\r" not in value
        text = value if plain else json.dumps(value, sort_keys=True)
        # One quoted field per row: no value can spill into a second cell.
        writer.writerow([f"# {key}: {text}"])
    table.to_csv(buffer, index=False, lineterminator="\r\n", na_rep="")
    return buffer.getvalue().encode("utf-8")


def wide_frame(export: Export) -> pd.DataFrame:
    """Return one row per timestamp and one column per system and signal (and label values).

    A column is named `system/signal[/label values] (unit)`.
    """
    frame = export.frame
    labels = list(export.metadata.labels)
    names = frame["system"] + "/" + frame["signal"]
    for label in labels:
        names = names + "/" + frame[label].astype(str)
    names = names + " (" + frame["unit"] + ")"
    keyed = pd.DataFrame({"timestamp": frame["timestamp"], "column": names,
                          "value": frame["value"]})
    table = keyed.pivot(index="timestamp", columns="column", values="value")
    table = table[list(dict.fromkeys(names))].reset_index()
    table.columns.name = None
    table["timestamp"] = iso_timestamps(table["timestamp"])
    return table


def _long_text_frame(frame: pd.DataFrame) -> pd.DataFrame:
    table = frame.copy()
    table["timestamp"] = iso_timestamps(table["timestamp"])
    return table


def _neutralised(table: pd.DataFrame) -> pd.DataFrame:
    table = table.rename(columns=lambda name: neutralise(str(name)))
    for column in table.columns:
        if table[column].dtype == object or pd.api.types.is_string_dtype(table[column]):
            table[column] = [neutralise(v) if isinstance(v, str) else v for v in table[column]]
    return table


def to_json(export: Export) -> bytes:
    """Return the export as a JSON object {"metadata": ..., "columns": ..., "data": [rows]}."""
    table = _long_text_frame(export.frame)
    rows = [
        {column: _json_value(value) for column, value in zip(table.columns, row, strict=True)}
        for row in table.itertuples(index=False, name=None)
    ]
    document = {"metadata": export.metadata.as_dict(), "columns": list(table.columns),
                "data": rows}
    return json.dumps(document, ensure_ascii=False, indent=1).encode("utf-8")


def _json_value(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def to_parquet(export: Export) -> bytes:
    """Return the export as Parquet with a UTC timestamp column and the metadata as JSON in
    the schema metadata under `platform_monitor`."""
    frame = export.frame.copy()
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    metadata = dict(table.schema.metadata or {})
    metadata[PARQUET_METADATA_KEY] = json.dumps(export.metadata.as_dict()).encode("utf-8")
    table = table.replace_schema_metadata(metadata)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


WRITERS: dict[str, Callable[[Export], bytes]] = {
    "csv": to_csv,
    "json": to_json,
    "parquet": to_parquet,
}


def render(export: Export, file_format: str, wide: bool = False) -> bytes:
    """Return the export in `file_format` (csv, json or parquet); `wide` applies to CSV."""
    if file_format not in WRITERS:
        raise ValueError(f"Unknown export format {file_format!r}; use csv, json or parquet.")
    if wide:
        if file_format != "csv":
            raise ValueError("The wide layout is available for CSV only.")
        return to_csv(export, wide=True)
    return WRITERS[file_format](export)


def file_name(
    systems: Sequence[str],
    time_range: TimeRange,
    file_format: str,
    wide: bool = False,
    stem: str = "platform-monitor",
) -> str:
    """Return a file name such as platform-monitor_relaycore_20261204T2000Z_6h.csv."""
    start = time_range.start.strftime("%Y%m%dT%H%MZ")
    span = format_seconds(time_range.duration)
    names = "-".join(systems) or "none"
    layout = "_wide" if wide else ""
    return f"{stem}_{names}_{start}_{span}{layout}.{file_format}"


# -- reading back -------------------------------------------------------------------------------


def read_csv_export(data: bytes) -> tuple[dict[str, str], pd.DataFrame]:
    """Return the metadata rows (values as written) and the table of a CSV export.

    Text cells stay strings and keep the quote that neutralised them; value cells are floats
    (NaN where empty).
    """
    text = data.decode("utf-8")
    metadata: dict[str, str] = {}
    skip = 0
    for row in csv.reader(io.StringIO(text, newline="")):
        if len(row) != 1 or not row[0].startswith("# "):
            break
        key, _, value = row[0][2:].partition(": ")
        metadata[key] = value
        skip += 1
    table = pd.read_csv(io.StringIO(text), skiprows=skip, dtype=str, keep_default_na=False)
    # Long form has one value column; in the wide form every column but the timestamp is one.
    numeric = ["value"] if "value" in table.columns else list(table.columns[1:])
    for column in numeric:
        table[column] = pd.to_numeric(table[column].replace("", None), errors="raise")
    return metadata, table


# -- command line -------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m lib.export",
        description="Write the golden signals of the configured systems over a time range to "
                    "CSV, JSON or Parquet, as the app's charts show them.",
    )
    parser.add_argument("--range", dest="time_range", default="1h", choices=list(PRESETS),
                        help="time range ending now (default: 1h)")
    parser.add_argument("--end", type=float, default=None,
                        help="end of the range in epoch seconds (default: now)")
    parser.add_argument("--systems", nargs="+", default=None,
                        help="system ids (default: every configured system)")
    parser.add_argument("--signals", nargs="+", default=None, choices=list(SIGNALS),
                        metavar="SIGNAL",
                        help=f"signals (default: all): {', '.join(SIGNALS)}")
    parser.add_argument("--format", dest="file_format", default="csv", choices=FORMATS,
                        help="file format (default: csv)")
    parser.add_argument("--wide", action="store_true",
                        help="CSV with one column per system and signal")
    parser.add_argument("--resolution", default="displayed", choices=RESOLUTIONS,
                        help="the chart's step (displayed, the default) or the finest step the "
                             f"source holds, up to {MAX_EXPORT_ROWS:,} rows")
    parser.add_argument("--output", default=None,
                        help="file to write (default: standard output)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run the export command line; return the exit status."""
    args = parse_args(argv)
    try:
        monitor, _ = build_monitor(load_settings(environ=environ), start_background=False)
        systems = args.systems or monitor.settings.systems
        for system in systems:
            monitor.settings.target(system)
        now = time.time()
        end = now if args.end is None else args.end
        time_range = monitor.time_range(args.time_range, now=end)
        export = signals_export(monitor, systems, args.signals, time_range, args.resolution,
                                now=now)
        data = render(export, args.file_format, wide=args.wide)
    except KeyError as error:
        print(f"error: {error.args[0]}", file=sys.stderr)
        return 2
    except (ConfigError, MonitorError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1

    if args.output:
        with open(args.output, "wb") as handle:
            handle.write(data)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
