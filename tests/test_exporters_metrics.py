"""Tests of the per-system metric definitions and their numpy-backed state."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import generate_latest

from exporters.catalog import SYSTEMS
from exporters.metrics import MetricUpdate, SystemMetrics, metric_definitions


def test_unknown_system_rejected() -> None:
    with pytest.raises(ValueError, match="Unknown system 'autmatrix'"):
        metric_definitions("autmatrix")


@pytest.mark.parametrize("system", SYSTEMS)
def test_definitions_are_well_formed(system: str) -> None:
    definitions = metric_definitions(system)
    names = [definition.name for definition in definitions]

    assert len(names) == len(set(names))
    for definition in definitions:
        assert len(set(definition.series)) == definition.series_count, definition.name
        for series in definition.series:
            assert len(series) == len(definition.labelnames), definition.name
        if definition.kind == "counter":
            assert definition.name.endswith("_total"), definition.name
        if definition.kind == "histogram":
            assert definition.buckets[-1] == float("inf"), definition.name
            assert list(definition.buckets) == sorted(definition.buckets), definition.name


def test_each_instance_has_fresh_registry() -> None:
    first = SystemMetrics("relaycore", process_start_time=100.0)
    second = SystemMetrics("relaycore", process_start_time=200.0)
    first.apply(MetricUpdate(counters={"process_cpu_seconds_total": np.array([2_500_000])}))

    assert first.registry is not second.registry
    assert first.registry.get_sample_value("process_cpu_seconds_total") == 2.5
    assert second.registry.get_sample_value("process_cpu_seconds_total") == 0.0
    assert second.registry.get_sample_value("process_start_time_seconds") == 200.0


def test_histogram_update_is_cumulative_in_output() -> None:
    metrics = SystemMetrics("automatrix", process_start_time=0.0)
    buckets = np.zeros((1, 11), dtype=np.int64)
    buckets[0, 0] = 2
    buckets[0, 4] = 3
    metrics.apply(
        MetricUpdate(
            histograms={
                "autmatrix_workflow_duration_seconds": (buckets, np.array([45_000_000_000]))
            }
        )
    )
    registry = metrics.registry

    def bucket(le: str) -> float | None:
        return registry.get_sample_value("autmatrix_workflow_duration_seconds_bucket", {"le": le})

    assert bucket("1.0") == 2
    assert bucket("10.0") == 2
    assert bucket("30.0") == 5
    assert bucket("+Inf") == 5
    assert registry.get_sample_value("autmatrix_workflow_duration_seconds_sum") == 45.0
    assert metrics.render_text() == generate_latest(registry).decode()


@pytest.mark.parametrize(
    ("update", "message"),
    [
        (MetricUpdate(counters={"nope_total": np.zeros(1, dtype=np.int64)}), "no counter"),
        (MetricUpdate(counters={"http_requests_in_flight": np.zeros(1, dtype=np.int64)}),
         "no counter"),
        (MetricUpdate(counters={"http_requests_total": np.zeros(3, dtype=np.int64)}), "shape"),
        (MetricUpdate(gauges={"http_requests_in_flight": np.zeros(2)}), "shape"),
        (
            MetricUpdate(
                histograms={
                    "http_request_duration_seconds": (
                        np.zeros((4, 14), dtype=np.int64), np.zeros(4, dtype=np.int64)
                    )
                }
            ),
            "shape",
        ),
    ],
)
def test_apply_rejects_mismatched_update(update: MetricUpdate, message: str) -> None:
    metrics = SystemMetrics("relaycore", process_start_time=0.0)

    with pytest.raises(ValueError, match=message):
        metrics.apply(update)
