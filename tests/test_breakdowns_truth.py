"""Per-label breakdowns from the embedded store equal the simulator's exact counter values.

The collector scrapes the simulated platform every 15 s of a manual clock. Each scrape also
records what the simulator's registries exposed, so a true rate is the difference of two recorded
values divided by the window.
"""

from __future__ import annotations

import numpy as np
import pytest

from lib.breakdowns import breakdown_promql, error_share, error_share_table, month_cost, top_n
from lib.signals import histogram_quantile
from lib.timerange import TimeRange
from tests.conftest import PLATFORM_HOUR_START
from tests.support.platform_run import SCRAPE, PlatformRun

T0 = PLATFORM_HOUR_START
END = T0 + 3600.0


@pytest.fixture
def run(platform_hour: PlatformRun) -> PlatformRun:
    return platform_hour


def hour_range() -> TimeRange:
    return TimeRange.between(T0 + 600, END, SCRAPE)


RATE_CASES = [
    ("relaycore", "relaycore_ai_requests_total", ("provider", "status")),
    ("relaycore", "relaycore_ai_cost_usd_total", ("provider", "model")),
    ("automatrix", "autmatrix_workflow_executions_total", ("template",)),
    ("automatrix", "autmatrix_workflow_executions_total", ("status",)),
    ("automatrix", "autmatrix_ai_requests_total", ("provider", "model")),
    ("neuroweaver", "neuroweaver_model_inferences_total", ("model_id", "specialization")),
    ("neuroweaver", "neuroweaver_model_inferences_total", ()),
]


@pytest.mark.parametrize(("system", "metric", "by"), RATE_CASES)
def test_rate_by_label_equals_truth(run: PlatformRun, system: str, metric: str,
                                    by: tuple[str, ...]) -> None:
    time_range = hour_range()
    frame = run.monitor.breakdowns().breakdown(system, metric, by, "rate", time_range)

    assert not frame.empty
    assert frame["value"].notna().all()
    for row in frame.itertuples(index=False):
        t = row.timestamp.timestamp()
        labels = {name: getattr(row, name) for name in by}
        expected = (run.value(t, system, metric, **labels)
                    - run.value(t - time_range.window, system, metric, **labels))
        assert row.value == pytest.approx(expected / time_range.window, rel=1e-9, abs=1e-12)


def test_rate_groups_cover_every_label_value(run: PlatformRun) -> None:
    frame = run.monitor.breakdowns().breakdown(
        "automatrix", "autmatrix_workflow_executions_total", ("template",), "rate", hour_range()
    )
    assert sorted(frame["series"].unique()) == [
        "invoice-processing", "lead-enrichment", "support-triage", "weekly-report",
    ]


def test_gauge_equals_exposed_value(run: PlatformRun) -> None:
    frame = run.monitor.breakdowns().breakdown(
        "automatrix", "autmatrix_active_workflows", (), "gauge", hour_range()
    )
    for row in frame.itertuples(index=False):
        expected = run.value(row.timestamp.timestamp(), "automatrix", "autmatrix_active_workflows")
        assert row.value == expected


def test_quantiles_by_provider_equal_truth(run: PlatformRun) -> None:
    time_range = hour_range()
    metric = "relaycore_routing_latency_seconds"
    frame = run.monitor.breakdowns().breakdown(
        "relaycore", metric, ("provider",), "quantile", time_range, quantiles=(0.5, 0.95, 0.99)
    )
    assert set(frame["quantile"]) == {"p50", "p95", "p99"}

    bounds = np.array(sorted({
        float(dict(labels)["le"])
        for (name, labels) in run.exposed[END]["relaycore"] if name == f"{metric}_bucket"
    }))
    checked = 0
    for row in frame.itertuples(index=False):
        t = row.timestamp.timestamp()
        counts = np.array([
            run.value(t, "relaycore", f"{metric}_bucket", provider=row.provider, le=_le(b))
            - run.value(t - time_range.window, "relaycore", f"{metric}_bucket",
                        provider=row.provider, le=_le(b))
            for b in bounds
        ])
        q = {"p50": 0.5, "p95": 0.95, "p99": 0.99}[row.quantile]
        assert row.value == pytest.approx(histogram_quantile(q, bounds, counts), rel=1e-9)
        checked += 1
    assert checked == len(frame)


def _le(bound: float) -> str:
    return "+Inf" if np.isinf(bound) else repr(float(bound))


def test_quantile_without_labels(run: PlatformRun) -> None:
    frame = run.monitor.breakdowns().breakdown(
        "automatrix", "autmatrix_workflow_duration_seconds", (), "quantile", hour_range()
    )
    assert list(frame["series"].unique()) == ["p50", "p95", "p99"]
    p50 = frame[frame["quantile"] == "p50"]["value"].to_numpy()
    p99 = frame[frame["quantile"] == "p99"]["value"].to_numpy()
    assert (p50 <= p99).all()


def test_top_templates_equal_truth(run: PlatformRun) -> None:
    time_range = hour_range()
    metric = "autmatrix_workflow_executions_total"
    table = top_n(run.monitor.breakdowns(), "automatrix", metric, ("template",), time_range, n=3)

    assert len(table) == 3
    assert table["total"].is_monotonic_decreasing
    for row in table.itertuples(index=False):
        expected = (run.value(time_range.end_s, "automatrix", metric, template=row.template)
                    - run.value(time_range.start_s, "automatrix", metric, template=row.template))
        assert row.total == pytest.approx(expected, rel=1e-9)
        assert row.per_second == pytest.approx(expected / time_range.duration, rel=1e-9)
    everything = (run.value(time_range.end_s, "automatrix", metric)
                  - run.value(time_range.start_s, "automatrix", metric))
    assert table["share"].iloc[0] == pytest.approx(table["total"].iloc[0] / everything)


def test_most_expensive_models_equal_truth(run: PlatformRun) -> None:
    time_range = hour_range()
    metric = "relaycore_ai_cost_usd_total"
    table = top_n(run.monitor.breakdowns(), "relaycore", metric, ("provider", "model"),
                  time_range, n=20)
    for row in table.itertuples(index=False):
        expected = (run.value(time_range.end_s, "relaycore", metric, model=row.model)
                    - run.value(time_range.start_s, "relaycore", metric, model=row.model))
        assert row.total == pytest.approx(expected, rel=1e-9)
    assert table["share"].sum() == pytest.approx(1.0)


def test_error_share_equals_truth(run: PlatformRun) -> None:
    time_range = hour_range()
    metric = "relaycore_ai_requests_total"
    frame = error_share(run.monitor.breakdowns(), "relaycore", metric, time_range)
    assert frame["value"].between(0, 1).all()
    for row in frame.itertuples(index=False):
        t = row.timestamp.timestamp()
        window_start = t - time_range.window
        errors = (run.value(t, "relaycore", metric, provider=row.provider, status="error")
                  - run.value(window_start, "relaycore", metric, provider=row.provider,
                              status="error"))
        total = (run.value(t, "relaycore", metric, provider=row.provider)
                 - run.value(window_start, "relaycore", metric, provider=row.provider))
        assert row.value == pytest.approx(errors / total if total else 0.0, rel=1e-9)


def test_error_share_table_over_range(run: PlatformRun) -> None:
    time_range = hour_range()
    metric = "relaycore_ai_requests_total"
    table = error_share_table(run.monitor.breakdowns(), "relaycore", metric, time_range)
    for row in table.itertuples(index=False):
        errors = (run.value(time_range.end_s, "relaycore", metric, provider=row.provider,
                            status="error")
                  - run.value(time_range.start_s, "relaycore", metric, provider=row.provider,
                              status="error"))
        assert row.errors == pytest.approx(errors, rel=1e-9)
        assert row.error_share == pytest.approx(row.errors / row.requests)


def test_month_cost_projects_current_rate(run: PlatformRun) -> None:
    metric = "relaycore_ai_cost_usd_total"
    cost = month_cost(run.monitor.breakdowns(), "relaycore", metric, now=END)

    assert cost.month_start.isoformat() == "2023-11-01T00:00:00+00:00"
    assert cost.month_end.isoformat() == "2023-12-01T00:00:00+00:00"
    # Collection began at T0, inside the month, so the month so far is what was seen since.
    assert cost.covered_since is not None
    assert cost.covered_since.timestamp() == T0
    assert cost.so_far_usd == pytest.approx(
        run.value(END, "relaycore", metric) - run.value(T0, "relaycore", metric), rel=1e-9
    )
    hourly = run.value(END, "relaycore", metric) - run.value(END - 3600, "relaycore", metric)
    assert cost.rate_usd_per_hour == pytest.approx(hourly, rel=1e-9)
    remaining_hours = (cost.month_end.timestamp() - END) / 3600
    assert cost.projected_usd == pytest.approx(cost.so_far_usd + hourly * remaining_hours)


def test_month_cost_rate_over_short_data(run: PlatformRun) -> None:
    metric = "relaycore_ai_cost_usd_total"
    now = T0 + 600
    cost = month_cost(run.monitor.breakdowns(), "relaycore", metric, now=now)
    increase = run.value(now, "relaycore", metric) - run.value(T0, "relaycore", metric)
    assert cost.rate_usd_per_hour == pytest.approx(increase * 3600 / 600, rel=1e-9)


def test_long_step_reads_rollup(run: PlatformRun) -> None:
    time_range = TimeRange.between(END - 86400, END, SCRAPE)
    assert time_range.step >= 300
    frame = run.monitor.breakdowns().breakdown(
        "neuroweaver", "neuroweaver_model_inferences_total", (), "rate", time_range
    )
    known = frame.dropna(subset=["value"])
    assert len(known) >= 10
    last = known.iloc[-1]
    t = last["timestamp"].timestamp()
    samples_at = [ts for ts in run.exposed if t - time_range.window - 450 <= ts <= t]
    assert last["value"] > 0
    assert samples_at


@pytest.mark.parametrize(
    ("kind", "quantile", "expected"),
    [
        ("rate", None,
         'sum by (provider) (rate(relaycore_ai_requests_total{job="relaycore"}[5m]))'),
        ("increase", None,
         'sum by (provider) (increase(relaycore_ai_requests_total{job="relaycore"}[5m]))'),
        ("gauge", None, 'sum by (provider) (relaycore_ai_requests_total{job="relaycore"})'),
        ("quantile", 0.95,
         'histogram_quantile(0.95, sum by (provider, le) '
         '(rate(relaycore_ai_requests_total_bucket{job="relaycore"}[5m])))'),
    ],
)
def test_promql_per_kind(kind: str, quantile: float | None, expected: str) -> None:
    query = breakdown_promql("relaycore_ai_requests_total", ("provider",), kind,  # type: ignore[arg-type]
                             "relaycore", "5m", quantile)
    assert query == expected


def test_promql_adds_extra_matchers() -> None:
    query = breakdown_promql("relaycore_routing_latency_seconds", ("provider",), "quantile",
                             "relay core", "5m", 0.5, extra_matchers='cluster="prod"')
    assert query == (
        'histogram_quantile(0.5, sum by (provider, le) (rate(relaycore_routing_latency_seconds'
        '_bucket{job="relay core",cluster="prod"}[5m])))'
    )
