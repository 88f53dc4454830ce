"""Per-label breakdowns from Prometheus equal those from the embedded store for the same scrapes.

The simulated hour of `test_prometheus_agreement` goes into the embedded store and, through
promtool, into Prometheus. Scrapes and range points fall on multiples of 15 s, so Prometheus
2.42's rate() and increase() start on a sample and extrapolate by zero: the two sources then
differ only by float rounding, checked at a relative tolerance of 1e-6. Gauges match exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lib.breakdowns import top_n
from lib.config import SourceSettings
from lib.errors import QueryError
from lib.sources.prometheus import PrometheusSource
from lib.timerange import TimeRange
from tests.conftest import make_settings
from tests.test_prometheus_agreement import END, SCRAPE, SYSTEMS, T0, Backends, load_backends

pytestmark = pytest.mark.prometheus

TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def backends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backends]:
    yield from load_backends(tmp_path_factory.mktemp("breakdowns"), 0.0, False)


def hour() -> TimeRange:
    return TimeRange.between(T0, END, SCRAPE)


def merge_frames(expected: pd.DataFrame, actual: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Join the two frames on `keys`, keeping the embedded rows that have a value.

    The embedded source also lists groups without a value at some points, which Prometheus omits.
    """
    expected = expected.dropna(subset=["value"])
    merged = expected.merge(actual, on=keys, how="left", suffixes=("_e", "_a"))
    assert len(merged) == len(expected)
    return merged


def assert_values_agree(merged: pd.DataFrame, tolerance: float) -> None:
    want = merged["value_e"].to_numpy(dtype=float)
    got = merged["value_a"].to_numpy(dtype=float)
    assert not np.isnan(got).any(), merged[np.isnan(got)]
    np.testing.assert_allclose(got, want, rtol=tolerance, atol=1e-9)


def test_rate_by_provider_agrees(backends: Backends) -> None:
    args = ("relaycore", "relaycore_ai_requests_total", ("provider",), "rate", hour())
    expected = backends.embedded.breakdown(*args)
    actual = backends.prometheus.breakdown(*args)

    assert list(actual.columns) == ["timestamp", "series", "provider", "value"]
    assert set(actual["provider"]) == set(expected["provider"])
    assert len(set(actual["provider"])) > 1
    merged = merge_frames(expected, actual, ["timestamp", "series", "provider"])
    assert len(merged) > 200
    assert_values_agree(merged, TOLERANCE)
    assert actual.attrs["kind"] == "rate"
    assert actual.attrs["by"] == ("provider",)
    assert actual.attrs["metric"] == "relaycore_ai_requests_total"


def test_gauge_agrees(backends: Backends) -> None:
    args = ("automatrix", "autmatrix_active_workflows", (), "gauge", hour())
    expected = backends.embedded.breakdown(*args)
    actual = backends.prometheus.breakdown(*args)

    assert list(actual.columns) == ["timestamp", "series", "value"]
    assert set(actual["series"]) == {"all"}
    merged = merge_frames(expected, actual, ["timestamp", "series"])
    assert len(merged) == len(hour().points())
    assert_values_agree(merged, 0.0)


def test_quantile_p95_agrees(backends: Backends) -> None:
    args = ("automatrix", "autmatrix_workflow_duration_seconds", (), "quantile", hour())
    expected = backends.embedded.breakdown(*args, quantiles=(0.95,))
    actual = backends.prometheus.breakdown(*args, quantiles=(0.95,))

    assert list(actual.columns) == ["timestamp", "series", "quantile", "value"]
    assert set(actual["quantile"]) == {"p95"}
    merged = merge_frames(expected, actual, ["timestamp", "series", "quantile"])
    assert len(merged) > 200
    assert_values_agree(merged, TOLERANCE)


def test_quantiles_keep_requested_order(backends: Backends) -> None:
    args = ("relaycore", "relaycore_routing_latency_seconds", ("provider",), "quantile", hour())
    expected = backends.embedded.breakdown(*args, quantiles=(0.5, 0.99))
    actual = backends.prometheus.breakdown(*args, quantiles=(0.5, 0.99))

    assert list(actual.columns) == ["timestamp", "series", "provider", "quantile", "value"]
    assert list(dict.fromkeys(actual["series"])) == list(dict.fromkeys(expected["series"]))
    merged = merge_frames(expected, actual, ["timestamp", "series", "provider", "quantile"])
    assert_values_agree(merged, TOLERANCE)


def test_increase_top_models_agree(backends: Backends) -> None:
    metric = "relaycore_ai_cost_usd_total"
    expected = top_n(backends.embedded, "relaycore", metric, ("model",), hour(), n=3)
    actual = top_n(backends.prometheus, "relaycore", metric, ("model",), hour(), n=3)

    assert len(actual) == 3
    assert list(actual["model"]) == list(expected["model"])
    np.testing.assert_allclose(actual["total"], expected["total"], rtol=TOLERANCE)
    np.testing.assert_allclose(actual["share"], expected["share"], rtol=TOLERANCE)


def test_increase_frame_shape(backends: Backends) -> None:
    frame = backends.prometheus.breakdown("relaycore", "relaycore_ai_cost_usd_total",
                                          ("model",), "increase", hour())

    assert list(frame.columns) == ["timestamp", "series", "model", "value"]
    assert set(frame["timestamp"]) == {pd.Timestamp(END, unit="s", tz="UTC")}
    assert frame["model"].is_unique
    assert (frame["value"] > 0).all()
    assert frame.attrs["covered_since"] == T0
    assert frame.attrs["kind"] == "increase"


def test_breakdown_of_missing_metric_is_empty(backends: Backends) -> None:
    frame = backends.prometheus.breakdown("relaycore", "relaycore_no_such_metric_total",
                                          ("provider",), "rate", hour())

    assert frame.empty
    assert list(frame.columns) == ["timestamp", "series", "provider", "value"]


def test_invalid_label_raises_query_error(backends: Backends) -> None:
    with pytest.raises(QueryError) as raised:
        backends.prometheus.breakdown("relaycore", "relaycore_ai_requests_total",
                                      ("not a label",), "rate", hour())

    assert "rejected" in str(raised.value)
    assert raised.value.system == "relaycore"


def test_extra_matchers_select_series(backends: Backends, tmp_path: Path) -> None:
    prometheus = backends.prometheus
    targets = make_settings({s: f"http://{s}.test/metrics" for s in SYSTEMS}, tmp_path).targets
    matching = PrometheusSource(SourceSettings("prometheus", prometheus.url,
                                               extra_matchers='instance=~".+"'),
                                targets, prometheus.client, SCRAPE)
    missing = PrometheusSource(SourceSettings("prometheus", prometheus.url,
                                              extra_matchers='instance="elsewhere"'),
                               targets, prometheus.client, SCRAPE)
    args = ("relaycore", "relaycore_ai_requests_total", ("provider",), "rate", hour())

    assert len(matching.breakdown(*args)) == len(prometheus.breakdown(*args))
    assert missing.breakdown(*args).empty
