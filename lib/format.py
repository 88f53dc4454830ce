"""Format numbers, durations, times and free text for display on the pages and in charts.

The number and time formatters return `NO_DATA` for None, NaN, pandas NA and NaT, so that no
value reads "nan" on a page.
"""

from __future__ import annotations

import math
import string
from datetime import UTC, datetime, tzinfo
from urllib.parse import urlsplit, urlunsplit

import pandas as pd

from lib.sources.base import Freshness, FreshnessState

NO_DATA = "—"

_SIGNIFICANT_DIGITS = 3
_BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
_RELATIVE_UNITS = (("d", 86_400), ("h", 3_600), ("min", 60), ("s", 1))
_DURATION_UNITS = (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1))
_MARKDOWN_SPECIAL = frozenset(string.punctuation)


def is_missing(value: object) -> bool:
    """Return True for a scalar that is None, NaN, pandas NA or NaT."""
    if value is None or value is pd.NA:
        return True
    return bool(value != value)  # NaN and NaT are the only scalars unequal to themselves


def format_number(value: float | None, significant: int = _SIGNIFICANT_DIGITS) -> str:
    """Format a number to `significant` digits, with thousands separators and no exponent.

    Numbers of `significant` or more integer digits are rounded to a whole number instead,
    so 1234.5 becomes "1,235" and not "1,230".
    """
    if value is None or is_missing(value):
        return NO_DATA
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if value == 0:
        return "0"

    rounded = float(f"{value:.{significant}g}")
    if abs(rounded) >= 10 ** (significant - 1):
        return f"{value:,.0f}"

    magnitude = math.floor(math.log10(abs(rounded)))
    decimals = significant - 1 - magnitude
    return f"{rounded:,.{decimals}f}"


def format_count(value: float | None) -> str:
    """Format a count such as in-flight requests: whole numbers exactly, others to 3 digits."""
    if value is None or is_missing(value):
        return NO_DATA
    if math.isfinite(value) and value == int(value):
        return f"{int(value):,}"
    return format_number(value)


def format_rate(requests_per_second: float | None) -> str:
    """Format a request rate, for example "12.3 req/s"."""
    if requests_per_second is None or is_missing(requests_per_second):
        return NO_DATA
    return f"{format_number(requests_per_second)} req/s"


def format_latency_ms(milliseconds: float | None) -> str:
    """Format a latency given in ms, switching to seconds from 1000 ms ("850 ms", "1.25 s")."""
    if milliseconds is None or is_missing(milliseconds):
        return NO_DATA

    if abs(milliseconds) >= 999.5:  # would round to "1,000 ms"
        return f"{format_number(milliseconds / 1000)} s"
    return f"{format_number(milliseconds)} ms"


def format_percent(ratio: float | None) -> str:
    """Format a ratio in 0..1 as a percentage with two decimals, for example "5.20%".

    Values that would round to 0% or 100% without being exactly 0 or 1 read "<0.01%" and
    ">99.99%", so that 99.999% availability is never shown as a clean 100%.
    """
    if ratio is None or is_missing(ratio):
        return NO_DATA

    percent = ratio * 100
    if math.isinf(percent):
        return f"{format_number(percent)}%"
    if percent == 0 or percent == 100:
        return f"{percent:.0f}%"
    if 0 < percent < 0.005:
        return "<0.01%"
    if 99.995 <= percent < 100:
        return ">99.99%"
    return f"{percent:,.2f}%"


def format_cost_per_hour(usd_per_hour: float | None) -> str:
    """Format a cost rate in US dollars per hour, for example "0.42 USD/h".

    Amounts under 0.01 USD/h get 3 significant digits instead of cents ("0.00125 USD/h").
    """
    if usd_per_hour is None or is_missing(usd_per_hour):
        return NO_DATA

    if math.isinf(usd_per_hour):
        amount = format_number(usd_per_hour)
    elif usd_per_hour == 0 or abs(usd_per_hour) >= 0.01:
        amount = f"{usd_per_hour:,.2f}"
    else:
        amount = format_number(usd_per_hour)
    return f"{amount} USD/h"


def format_cores(cores: float | None) -> str:
    """Format CPU usage in cores (CPU seconds per second), for example "0.25 cores"."""
    if cores is None or is_missing(cores):
        return NO_DATA
    return f"{format_number(cores)} cores"


def format_bytes(size: float | None) -> str:
    """Format a size in bytes with binary prefixes, for example "512 B", "1.50 GiB"."""
    if size is None or is_missing(size):
        return NO_DATA
    if math.isinf(size):
        return f"{format_number(size)} B"

    scaled = float(size)
    unit_index = 0
    while abs(scaled) >= 1023.5 and unit_index < len(_BYTE_UNITS) - 1:
        scaled /= 1024
        unit_index += 1

    if unit_index == 0:
        return f"{format_count(round(scaled))} B"
    return f"{format_number(scaled)} {_BYTE_UNITS[unit_index]}"


def format_value(value: float | None, unit: str) -> str:
    """Format a signal value with the formatter for its unit.

    Units are those of the signal catalog: "req/s" (or "1/s"), "ratio", "%", "ms", "s",
    "USD/h", "cores", "bytes" and "count". Any other unit is appended to the number.
    """
    if value is None or is_missing(value):
        return NO_DATA

    match unit:
        case "req/s" | "1/s":
            return format_rate(value)
        case "ratio":
            return format_percent(value)
        case "%":
            return format_percent(value / 100)
        case "ms":
            return format_latency_ms(value)
        case "s":
            return format_latency_ms(value * 1000)
        case "USD/h":
            return format_cost_per_hour(value)
        case "cores":
            return format_cores(value)
        case "bytes":
            return format_bytes(value)
        case "count" | "":
            return format_count(value)
        case _:
            return f"{format_number(value)} {unit}"


def format_duration(seconds: float | None) -> str:
    """Format a duration as its two largest units, for example "3d 4h", "12m 5s" or "45s".

    Fractions of a second are truncated. A negative duration, such as an uptime under clock
    skew, keeps its sign ("-5s") so that the skew stays visible.
    """
    if seconds is None or is_missing(seconds):
        return NO_DATA
    if math.isinf(seconds):
        return "∞" if seconds > 0 else "-∞"

    sign = "-" if seconds < 0 else ""
    remaining = int(abs(seconds))
    parts: list[str] = []
    for suffix, unit_seconds in _DURATION_UNITS:
        amount, remaining = divmod(remaining, unit_seconds)
        if parts or amount or unit_seconds == 1:
            parts.append(f"{amount}{suffix}")
        if len(parts) == 2:
            break
    return sign + " ".join(parts)


def format_relative_time(
    moment: datetime | float | None, now: datetime | float | None = None
) -> str:
    """Format a time relative to `now` in its largest whole unit: "12 s ago", "in 5 min".

    Times are timezone-aware datetimes or epoch seconds, and `now` defaults to the current
    time. Differences under one second read "just now".

    Raises:
        ValueError: if `moment` or `now` is a naive datetime.
    """
    if moment is None or is_missing(moment):
        return NO_DATA

    moment = _as_datetime(moment)
    current = _as_datetime(now) if now is not None else datetime.now(UTC)
    if moment.tzinfo is None or current.tzinfo is None:
        raise ValueError(
            f"Cannot compare naive datetime {moment!r} or {current!r}: pass timezone-aware "
            "datetimes, such as datetime.now(UTC), or epoch seconds."
        )

    difference = (current - moment).total_seconds()
    if abs(difference) < 1:
        return "just now"

    text = _format_in_largest_unit(abs(difference))
    return f"{text} ago" if difference > 0 else f"in {text}"


def _format_in_largest_unit(seconds: float) -> str:
    for suffix, unit_seconds in _RELATIVE_UNITS:
        if seconds >= unit_seconds:
            return f"{int(seconds // unit_seconds)} {suffix}"
    return f"{seconds:.0f} s"


def format_timestamp(moment: datetime | float | None, zone: tzinfo = UTC) -> str:
    """Format a time to the second in `zone`, with the zone's abbreviation.

    For example "2024-05-01 12:34:56 UTC", or "2024-05-01 14:34:56 CEST" in Europe/Berlin.
    `moment` is a datetime or epoch seconds. A naive datetime is taken to be in UTC already.
    """
    if moment is None or is_missing(moment):
        return NO_DATA

    moment = _as_datetime(moment)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z")


def _as_datetime(moment: datetime | float) -> datetime:
    if isinstance(moment, datetime):
        return moment
    return datetime.fromtimestamp(moment, UTC)


def format_endpoint(url: str) -> str:
    """Return `url` without its user name and password, for display on a page."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url

    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal needs its brackets back
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def escape_markdown(text: str) -> str:
    """Escape every ASCII punctuation character so that Streamlit shows `text` literally.

    Use this for text from outside the app (error messages, reasons, names from the
    configuration) passed to elements that render Markdown, such as st.warning or st.caption.
    CommonMark allows a backslash before any ASCII punctuation, so Markdown links, images,
    emphasis, headings, LaTeX and Streamlit's colour directives lose their meaning, and
    emoji shortcodes stay text (checked with Streamlit 1.67). Raw HTML is shown as text
    anyway while unsafe_allow_html is off.

    NOTE: a bare URL such as http://host/path still becomes a link, because GitHub-flavoured
    Markdown autolinks it. Its visible text is the URL itself, so it cannot hide its target.
    """
    escaped = [f"\\{character}" if character in _MARKDOWN_SPECIAL else character
               for character in text]
    return "".join(escaped)


def describe_freshness(freshness: Freshness | None, display_name: str, now: float) -> str | None:
    """Return the sentence a panel shows for stale or missing data, None when it is fresh."""
    if freshness is None or not freshness.stale:
        return None
    reason = freshness.reason or ""
    if freshness.state is FreshnessState.NO_DATA or freshness.data_at is None:
        return f"No data received yet from {display_name}. {reason}".strip()
    age = format_relative_time(freshness.data_at, now)
    return f"Stale: showing the last good data of {display_name}, from {age}. {reason}".strip()
