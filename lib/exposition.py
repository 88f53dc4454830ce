"""Parse the Prometheus text exposition format into flat samples, with the checks a scraper needs.

prometheus_client's parser does the parsing; this module maps its errors to FetchError.

Which bodies count as metrics:
- Rejected as a whole, so the scrape fails with FetchError NOT_METRICS and the target shows its
  last good data marked stale: an HTML page (by content type or a leading `<`), bytes that are
  not valid UTF-8, binary data (a NUL byte), any line the parser cannot read, and a non-empty
  body with no readable sample. Prometheus, too, fails the whole scrape on a line it cannot parse.
- Accepted with single samples dropped and counted in `ParseResult.dropped`: non-finite values
  (NaN, +Inf, -Inf) of any sample, because one NaN would turn a per-system sum into NaN, and the
  second and later copies of a series already seen in the body (the first is kept).
- Accepted as they are: samples without a `# TYPE` line or whose name does not match the family
  declared before them, which the parser returns as `unknown` families and which are stored as
  plain (non-cumulative) values, as Prometheus stores untyped samples. `_created` samples are
  skipped without counting. A counter that goes backwards is a valid body; the collector counts
  the drop as a counter reset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from lib.errors import FetchError, FetchFailure

# Sample-name suffixes that carry a cumulative value, by the family type that declares them.
_CUMULATIVE_SUFFIXES = {
    "counter": ("_total", ""),
    "histogram": ("_bucket", "_count", "_sum"),
    "summary": ("_count", "_sum"),
}


@dataclass(frozen=True)
class Sample:
    """One sample: its name, labels as a sorted tuple of pairs, value and whether it is
    cumulative (a counter, or a histogram's or summary's count, sum or bucket)."""

    name: str
    labels: tuple[tuple[str, str], ...]
    value: float
    cumulative: bool


@dataclass
class ParseResult:
    """The samples of one body and how many lines were dropped, by reason."""

    samples: list[Sample] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1


def parse(url: str, body: bytes, content_type: str = "") -> ParseResult:
    """Parse an exposition body fetched from `url`; raise FetchError(NOT_METRICS) on junk."""
    if "html" in content_type.lower() or body.lstrip()[:1] == b"<":
        raise FetchError(
            url, FetchFailure.NOT_METRICS, "sent an HTML page, not Prometheus metrics"
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FetchError(
            url, FetchFailure.NOT_METRICS,
            f"sent text that is not valid UTF-8 (byte {exc.start}), not Prometheus metrics",
        ) from exc
    if "\x00" in text:
        raise FetchError(url, FetchFailure.NOT_METRICS, "sent binary data, not Prometheus metrics")

    result = ParseResult()
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    try:
        for family in text_string_to_metric_families(text):
            suffixes = _CUMULATIVE_SUFFIXES.get(family.type, ())
            for raw in family.samples:
                _add_sample(result, seen, family.name, raw.name, raw.labels, raw.value, suffixes)
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise FetchError(
            url, FetchFailure.NOT_METRICS,
            f"sent something that is not Prometheus metrics ({_short(exc)})",
        ) from exc
    if not result.samples and text.strip():
        raise FetchError(url, FetchFailure.NOT_METRICS, "sent no samples that could be read")
    return result


def _add_sample(
    result: ParseResult,
    seen: set[tuple[str, tuple[tuple[str, str], ...]]],
    family_name: str,
    name: str,
    labels: dict[str, str],
    value: float,
    suffixes: tuple[str, ...],
) -> None:
    if name.endswith("_created") and name != family_name:
        return
    cumulative = any(name == family_name + suffix for suffix in suffixes)
    if not math.isfinite(value):
        result.drop("non-finite value")
        return
    key = (name, tuple(sorted(labels.items())))
    if key in seen:
        result.drop("duplicate series")
        return
    seen.add(key)
    result.samples.append(Sample(name, key[1], float(value), cumulative))


def _short(exc: Exception) -> str:
    text = str(exc).replace("\n", " ")
    return text if len(text) <= 120 else text[:117] + "..."
