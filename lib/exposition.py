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

A fast path reads the common case (one sample per line, no escapes, no timestamps or exemplars)
with one regular expression per line. A body with any other line goes to prometheus_client's
parser instead, and both give the same samples and drops.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import NamedTuple

from prometheus_client.parser import text_string_to_metric_families

from lib.errors import FetchError, FetchFailure

# Sample-name suffixes that carry a cumulative value, by the family type that declares them.
_CUMULATIVE_SUFFIXES = {
    "counter": ("_total", ""),
    "histogram": ("_bucket", "_count", "_sum"),
    "summary": ("_count", "_sum"),
}
# Sample-name suffixes a family of each type may use, as prometheus_client's parser allows them.
_ALLOWED_SUFFIXES = {
    "counter": ("",),
    "gauge": ("",),
    "summary": ("_count", "_sum", ""),
    "histogram": ("_count", "_sum", "_bucket"),
}
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
# A sample line without escapes, spaces inside the braces, timestamp or exemplar.
_SIMPLE_SAMPLE = re.compile(
    r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*",?)*)\})?[ \t]+'
    r"([-+]?(?:[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?|[0-9]+\.|Inf|inf|NaN|nan))"
)
_SIMPLE_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"')


class Sample(NamedTuple):
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

    fast = _parse_simple(text)
    if fast is not None:
        if not fast.samples and text.strip():
            raise FetchError(url, FetchFailure.NOT_METRICS, "sent no samples that could be read")
        return fast

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


def _parse_simple(text: str) -> ParseResult | None:
    """Parse a body in the common form line by line, or return None when a line needs the full
    parser. Families, `_total` handling and untyped strays follow prometheus_client's parser."""
    if "\\" in text:
        return None
    result = ParseResult()
    samples = result.samples
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    family, allowed, cumulative_names = "", frozenset[str](), frozenset[str]()

    for raw_line in text.split("\n"):
        line = raw_line.strip()
        if not line:
            continue
        if line[0] == "#":
            parts = line.split(None, 3)
            if len(parts) < 3 or parts[1] not in ("HELP", "TYPE"):
                if len(parts) == 2 and parts[1] in ("HELP", "TYPE"):
                    return None
                continue
            name = parts[2]
            if _METRIC_NAME.fullmatch(name) is None:
                return None
            if parts[1] == "HELP":
                if name != family:
                    family, allowed, cumulative_names = name, frozenset((name,)), frozenset()
                continue
            if len(parts) < 4:
                return None
            family, kind = name, parts[3]
            if kind == "counter" and not name.endswith("_total"):
                return None  # prometheus_client renames these samples; leave it to the parser
            allowed = frozenset(name + suffix for suffix in _ALLOWED_SUFFIXES.get(kind, ("",)))
            family_name = name[:-6] if kind == "counter" else name
            cumulative_names = frozenset(
                family_name + suffix for suffix in _CUMULATIVE_SUFFIXES.get(kind, ())
            )
            continue

        match = _SIMPLE_SAMPLE.fullmatch(line)
        if match is None:
            return None
        name, label_text, value_text = match.groups()
        labels: tuple[tuple[str, str], ...] = ()
        if label_text:
            parsed = _simple_labels(label_text)
            if parsed is None:
                return None
            labels = parsed
        if name not in allowed:
            # A sample outside the current family is its own untyped family.
            family, allowed, cumulative_names = "", frozenset(), frozenset()
        # Names in a family never end in `_created` unless they equal the family's name, so
        # the fast path has no `_created` samples to drop.
        value = float(value_text)
        cumulative = name in cumulative_names
        if not math.isfinite(value):
            result.drop("non-finite value")
            continue
        key = (name, labels)
        if key in seen:
            result.drop("duplicate series")
            continue
        seen.add(key)
        samples.append(Sample(name, labels, value, cumulative))
    return result


# Label sets repeat in every scrape, so each one's text is split and sorted once. A text that
# needs the full parser maps to None. Once full, new texts are split each time: clearing would
# make a larger set of targets miss on every scrape.
_LABEL_SETS: dict[str, tuple[tuple[str, str], ...] | None] = {}
MAX_CACHED_LABEL_SETS = 200_000
_NOT_CACHED = object()


def _simple_labels(label_text: str) -> tuple[tuple[str, str], ...] | None:
    """Return the sorted (name, value) pairs of a label text without escapes, or None when a
    name repeats or `__name__` appears (the full parser handles those)."""
    cached = _LABEL_SETS.get(label_text, _NOT_CACHED)
    if cached is not _NOT_CACHED:
        return cached  # type: ignore[return-value]
    pairs = _SIMPLE_LABEL.findall(label_text)
    labels: tuple[tuple[str, str], ...] | None = tuple(sorted(pairs))
    if len({key for key, _ in pairs}) != len(pairs) or "__name__" in label_text:
        labels = None
    if len(_LABEL_SETS) < MAX_CACHED_LABEL_SETS:
        _LABEL_SETS[label_text] = labels
    return labels


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
