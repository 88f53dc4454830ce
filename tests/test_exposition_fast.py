from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporters.simulator import PlatformSimulator, SimulationConfig, demo_incidents
from lib import exposition
from lib.exposition import Sample, parse

T0 = 1_700_000_000.0


def reference_samples(text: str) -> list[Sample]:
    """Return the samples that prometheus_client's parser alone gives for `text`."""
    result = exposition.ParseResult()
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    for family in text_string_to_metric_families(text):
        suffixes = exposition._CUMULATIVE_SUFFIXES.get(family.type, ())
        for raw in family.samples:
            exposition._add_sample(
                result, seen, family.name, raw.name, raw.labels, raw.value, suffixes
            )
    return result.samples


def same(left: list[Sample], right: list[Sample]) -> bool:
    # repr compares NaN values as equal, which == does not.
    return repr(left) == repr(right)


def simulator_bodies() -> list[str]:
    simulator = PlatformSimulator(SimulationConfig(seed=3, incidents=demo_incidents()), start=T0)
    bodies = []
    for scrape in simulator.iter_expositions(T0 + 15, T0 + 3 * 3600, 900.0):
        if scrape.text is not None:
            bodies.append(scrape.text)
    return bodies


def test_fast_path_equals_parser_on_simulator() -> None:
    bodies = simulator_bodies()
    assert len(bodies) > 20
    for text in bodies:
        fast = exposition._parse_simple(text)
        assert fast is not None
        assert same(fast.samples, reference_samples(text))


EDGE_CASES = {
    "untyped stray": "# TYPE a gauge\na 1\nb_total 2\nc 3\n",
    "counter family": "# HELP x_total Docs.\n# TYPE x_total counter\nx_total{k=\"v\"} 4\n",
    "created sample": "# TYPE x_total counter\nx_total 4\nx_created 1.7e9\n",
    "summary": "# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 3\ns_count 2\n",
    "histogram": "# TYPE h histogram\nh_bucket{le=\"1.0\"} 1\nh_bucket{le=\"+Inf\"} 2\n"
                 "h_sum 3\nh_count 2\n",
    "special values": "# TYPE g gauge\ng{a=\"1\"} +Inf\ng{a=\"2\"} NaN\ng{a=\"3\"} -1.5e-3\n",
    "label with brace": "# TYPE g gauge\ng{path=\"/a}b,c\"} 1\n",
    "duplicate series": "# TYPE g gauge\ng{a=\"1\"} 1\ng{a=\"1\"} 2\n",
    "non-finite counter": "# TYPE c_total counter\nc_total NaN\nc_total{a=\"b\"} 1\n",
    "help resets type": "# TYPE a_total counter\n# HELP b text\nb 1\n",
    "blank lines": "\n# TYPE g gauge\n\ng 1\n\n",
}


@pytest.mark.parametrize("text", EDGE_CASES.values(), ids=EDGE_CASES.keys())
def test_fast_path_edge_cases(text: str) -> None:
    fast = exposition._parse_simple(text)
    assert fast is not None
    assert same(fast.samples, reference_samples(text))


FALLBACK_CASES = {
    "escaped label": 'g{a="x\\"y"} 1\n',
    "timestamp": "g 1 1700000000000\n",
    "spaces in labels": 'g{a = "1"} 1\n',
    "counter without suffix": "# TYPE c counter\nc 1\n",
    "exemplar": 'c_total 1 # {trace_id="a"} 1\n',
}


@pytest.mark.parametrize("text", FALLBACK_CASES.values(), ids=FALLBACK_CASES.keys())
def test_unusual_lines_use_parser(text: str) -> None:
    assert exposition._parse_simple(text) is None
    assert same(parse("http://x/metrics", text.encode()).samples, reference_samples(text))


def test_junk_still_rejected() -> None:
    with pytest.raises(exposition.FetchError):
        parse("http://x/metrics", b"this is not metrics\n")
