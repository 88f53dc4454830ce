from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from lib.format import (
    NO_DATA,
    escape_markdown,
    format_bytes,
    format_cores,
    format_cost_per_hour,
    format_count,
    format_duration,
    format_endpoint,
    format_latency_ms,
    format_number,
    format_percent,
    format_rate,
    format_relative_time,
    format_timestamp,
    format_value,
    is_missing,
)

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
MISSING_VALUES = [None, math.nan, np.float64("nan"), pd.NA]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, "0"),
        (-0.0, "0"),
        (0.5, "0.500"),
        (0.00123, "0.00123"),
        (1.234, "1.23"),
        (12.34, "12.3"),
        (123.4, "123"),
        (99.96, "100"),
        (999.6, "1,000"),
        (1234.5, "1,234"),
        (1_234_567.0, "1,234,567"),
        (-3.21, "-3.21"),
        (math.inf, "∞"),
        (-math.inf, "-∞"),
        (np.float64(2.5), "2.50"),
    ],
)
def test_format_number_cases(value: float, expected: str) -> None:
    assert format_number(value) == expected


@pytest.mark.parametrize(
    ("formatter", "value", "expected"),
    [
        (format_rate, 0, "0 req/s"),
        (format_rate, 0.05, "0.0500 req/s"),
        (format_rate, 12.34, "12.3 req/s"),
        (format_rate, 1234.5, "1,234 req/s"),
        (format_latency_ms, 0.512, "0.512 ms"),
        (format_latency_ms, 42.0, "42.0 ms"),
        (format_latency_ms, 999.4, "999 ms"),
        (format_latency_ms, 999.6, "1.00 s"),
        (format_latency_ms, 1250, "1.25 s"),
        (format_latency_ms, 65_000, "65.0 s"),
        (format_percent, 0, "0%"),
        (format_percent, 1, "100%"),
        (format_percent, 0.052, "5.20%"),
        (format_percent, 0.00001, "<0.01%"),
        (format_percent, 0.99999, ">99.99%"),
        (format_percent, 0.9995, "99.95%"),
        (format_percent, 1.5, "150.00%"),
        (format_cost_per_hour, 0, "0.00 USD/h"),
        (format_cost_per_hour, 0.42, "0.42 USD/h"),
        (format_cost_per_hour, 0.00125, "0.00125 USD/h"),
        (format_cost_per_hour, 1234.5, "1,234.50 USD/h"),
        (format_cores, 0.25, "0.250 cores"),
        (format_cores, 2, "2.00 cores"),
        (format_count, 0, "0"),
        (format_count, 12, "12"),
        (format_count, 12345, "12,345"),
        (format_count, 2.5, "2.50"),
    ],
)
def test_unit_formatters_cases(
    formatter: Callable[[float], str], value: float, expected: str
) -> None:
    assert formatter(value) == expected


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (0, "0 B"),
        (512, "512 B"),
        (1023, "1,023 B"),
        (1024, "1.00 KiB"),
        (1536, "1.50 KiB"),
        (1_048_575, "1.00 MiB"),
        (256 * 2**20, "256 MiB"),
        (1.5 * 2**30, "1.50 GiB"),
        (3 * 2**40, "3.00 TiB"),
    ],
)
def test_format_bytes_binary_prefixes(size: float, expected: str) -> None:
    assert format_bytes(size) == expected


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        (12.34, "req/s", "12.3 req/s"),
        (12.34, "1/s", "12.3 req/s"),
        (0.052, "ratio", "5.20%"),
        (5.2, "%", "5.20%"),
        (42.0, "ms", "42.0 ms"),
        (0.035, "s", "35.0 ms"),
        (0.42, "USD/h", "0.42 USD/h"),
        (0.25, "cores", "0.250 cores"),
        (1.5 * 2**30, "bytes", "1.50 GiB"),
        (7, "count", "7"),
        (7, "", "7"),
        (3.5, "widgets", "3.50 widgets"),
    ],
)
def test_format_value_by_unit(value: float, unit: str, expected: str) -> None:
    assert format_value(value, unit) == expected


@pytest.mark.parametrize("missing", MISSING_VALUES)
@pytest.mark.parametrize(
    "formatter",
    [
        format_number,
        format_count,
        format_rate,
        format_latency_ms,
        format_percent,
        format_cost_per_hour,
        format_cores,
        format_bytes,
        format_duration,
        format_timestamp,
        format_relative_time,
    ],
)
def test_formatters_missing_value_no_data(formatter: Callable[[Any], str], missing: object) -> None:
    assert formatter(missing) == NO_DATA


@pytest.mark.parametrize("missing", [*MISSING_VALUES, pd.NaT])
def test_format_value_missing_no_data(missing: object) -> None:
    assert format_value(missing, "ms") == NO_DATA


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, True),
        (math.nan, True),
        (pd.NA, True),
        (pd.NaT, True),
        (np.datetime64("NaT"), True),
        (0.0, False),
        (NOW, False),
        ("text", False),
    ],
)
def test_is_missing_cases(value: object, expected: bool) -> None:
    assert is_missing(value) is expected


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "0s"),
        (0.9, "0s"),
        (45, "45s"),
        (60, "1m 0s"),
        (725, "12m 5s"),
        (3600, "1h 0m"),
        (4 * 3600 + 12 * 60 + 7, "4h 12m"),
        (86_400, "1d 0h"),
        (3 * 86_400 + 4 * 3600 + 5, "3d 4h"),
        (400 * 86_400, "400d 0h"),
        (-5, "-5s"),
        (math.inf, "∞"),
    ],
)
def test_format_duration_two_units(seconds: float, expected: str) -> None:
    assert format_duration(seconds) == expected


@pytest.mark.parametrize(
    ("seconds_ago", "expected"),
    [
        (0, "just now"),
        (0.5, "just now"),
        (-0.5, "just now"),
        (1, "1 s ago"),
        (12, "12 s ago"),
        (59.9, "59 s ago"),
        (60, "1 min ago"),
        (299, "4 min ago"),
        (3 * 3600, "3 h ago"),
        (2 * 86_400 + 5, "2 d ago"),
        (-5, "in 5 s"),
        (-400, "in 6 min"),
    ],
)
def test_format_relative_time_cases(seconds_ago: float, expected: str) -> None:
    moment = NOW - timedelta(seconds=seconds_ago)

    assert format_relative_time(moment, NOW) == expected
    assert format_relative_time(moment.timestamp(), NOW.timestamp()) == expected


def test_format_relative_time_other_zone() -> None:
    moment = datetime(2024, 5, 1, 13, 59, 48, tzinfo=timezone(timedelta(hours=2)))

    assert format_relative_time(moment, NOW) == "12 s ago"


def test_format_relative_time_defaults_to_now() -> None:
    moment = datetime.now(UTC) - timedelta(minutes=5, seconds=10)

    assert format_relative_time(moment) == "5 min ago"


def test_format_relative_time_rejects_naive() -> None:
    with pytest.raises(ValueError, match="naive"):
        format_relative_time(datetime(2024, 5, 1, 12, 0, 0), NOW)


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (NOW, "2024-05-01 12:00:00 UTC"),
        (pd.Timestamp("2024-05-01 14:00:00", tz="Europe/Berlin"), "2024-05-01 12:00:00 UTC"),
        (datetime(2024, 5, 1, 12, 0, 0), "2024-05-01 12:00:00 UTC"),
        (NOW.timestamp(), "2024-05-01 12:00:00 UTC"),
    ],
)
def test_format_timestamp_in_utc(moment: datetime | float, expected: str) -> None:
    assert format_timestamp(moment) == expected


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        ("Europe/Berlin", "2024-05-01 14:00:00 CEST"),
        ("America/New_York", "2024-05-01 08:00:00 EDT"),
        ("Asia/Kolkata", "2024-05-01 17:30:00 IST"),
        ("UTC", "2024-05-01 12:00:00 UTC"),
    ],
)
def test_format_timestamp_in_zone(zone: str, expected: str) -> None:
    assert format_timestamp(NOW, ZoneInfo(zone)) == expected
    assert format_timestamp(NOW.timestamp(), ZoneInfo(zone)) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:9101/metrics", "http://127.0.0.1:9101/metrics"),
        ("http://user:secret@127.0.0.1:9101/metrics", "http://127.0.0.1:9101/metrics"),
        ("https://token@example.test/metrics?x=1", "https://example.test/metrics?x=1"),
        ("http://u:p@[::1]:9101/metrics", "http://[::1]:9101/metrics"),
    ],
)
def test_format_endpoint_removes_credentials(url: str, expected: str) -> None:
    assert format_endpoint(url) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("connection refused", "connection refused"),
        ("[click](http://x)", r"\[click\]\(http\:\/\/x\)"),
        ("**bold** _it_", r"\*\*bold\*\* \_it\_"),
        (":red[alarm]", r"\:red\[alarm\]"),
        ("$x^2$", r"\$x\^2\$"),
        ("# heading", r"\# heading"),
        ("a\\b", "a\\\\b"),
        ("<b>html</b>", r"\<b\>html\<\/b\>"),
    ],
)
def test_escape_markdown_cases(text: str, expected: str) -> None:
    assert escape_markdown(text) == expected
