"""Detail page contents per system: its panels (a chart and maybe a top-N table) as data.

A panel names one metric of the system's own exporter, the labels it is broken down by and how
it is evaluated. `panel_frame` and `panel_table` compute what the page draws, so the pages only
lay the results out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import pandas as pd

from lib.breakdowns import (
    DEFAULT_QUANTILES,
    BreakdownSource,
    breakdown_promql,
    error_share,
    error_share_table,
    top_n,
)
from lib.timerange import TimeRange, format_seconds

PanelKind = Literal["rate", "gauge", "quantile", "error_share"]


@dataclass(frozen=True)
class TopTable:
    """A table of the largest groups over the range, or per-group error shares."""

    title: str
    metric: str
    by: tuple[str, ...]
    total_title: str
    unit: str
    n: int = 10
    kind: Literal["top", "error_share"] = "top"


@dataclass(frozen=True)
class Panel:
    """One chart of a detail page: `metric` of the system grouped by `by`.

    `scale` multiplies every value, for example 3600 to show a per-second cost rate per hour.
    `signal` names the series in exports.
    """

    signal: str
    title: str
    metric: str
    by: tuple[str, ...]
    kind: PanelKind
    unit: str
    scale: float = 1.0
    quantiles: tuple[float, ...] = DEFAULT_QUANTILES
    table: TopTable | None = None

    def promql(self, job: str, window: float) -> str:
        """Return the PromQL that computes this panel on a Prometheus-compatible source."""
        duration = format_seconds(window)
        if self.kind == "error_share":
            grouping = ", ".join(self.by)
            errors = (f"sum by ({grouping}) "
                      f'(rate({self.metric}{{job="{job}",status="error"}}[{duration}]))')
            return f"{errors} / {breakdown_promql(self.metric, self.by, 'rate', job, duration)}"
        if self.kind == "quantile":
            return " ; ".join(
                breakdown_promql(self.metric, self.by, "quantile", job, duration, q)
                for q in self.quantiles
            )
        query = breakdown_promql(self.metric, self.by, self.kind, job, duration)
        return f"{self.scale:g} * {query}" if self.scale != 1.0 else query


@dataclass(frozen=True)
class SystemView:
    """The detail page of one system."""

    system: str
    title: str
    panels: tuple[Panel, ...]
    cost_metric: str | None = None


AUTOMATRIX = SystemView(
    system="automatrix",
    title="AutoMatrix",
    panels=(
        Panel("workflow_executions_by_status", "Workflow executions by status",
              "autmatrix_workflow_executions_total", ("status",), "rate", "executions/s"),
        Panel("workflow_executions_by_template", "Workflow executions by template",
              "autmatrix_workflow_executions_total", ("template",), "rate", "executions/s",
              table=TopTable("Busiest templates", "autmatrix_workflow_executions_total",
                             ("template",), "Executions", "count")),
        Panel("workflow_duration", "Workflow duration (p50, p95, p99)",
              "autmatrix_workflow_duration_seconds", (), "quantile", "s"),
        Panel("active_workflows", "Active workflows", "autmatrix_active_workflows", (),
              "gauge", "count"),
        Panel("ai_requests_by_model", "AI requests by provider and model",
              "autmatrix_ai_requests_total", ("provider", "model"), "rate", "requests/s",
              table=TopTable("Most used models", "autmatrix_ai_requests_total",
                             ("provider", "model"), "Requests", "count")),
    ),
    cost_metric="autmatrix_ai_cost_usd_total",
)

RELAYCORE = SystemView(
    system="relaycore",
    title="RelayCore",
    panels=(
        Panel("ai_requests_by_provider_status", "AI requests by provider and status",
              "relaycore_ai_requests_total", ("provider", "status"), "rate", "requests/s",
              table=TopTable("Busiest models", "relaycore_ai_requests_total",
                             ("provider", "model", "status"), "Requests", "count")),
        Panel("error_share_by_provider", "Error share per provider",
              "relaycore_ai_requests_total", ("provider",), "error_share", "ratio",
              table=TopTable("Error share over the range", "relaycore_ai_requests_total",
                             ("provider",), "Requests", "count", kind="error_share")),
        Panel("routing_latency_p95_by_provider", "Routing latency per provider (p95)",
              "relaycore_routing_latency_seconds", ("provider",), "quantile", "s",
              quantiles=(0.95,)),
        Panel("ai_cost_by_model", "AI cost per hour by provider and model",
              "relaycore_ai_cost_usd_total", ("provider", "model"), "rate", "USD/h",
              scale=3600.0,
              table=TopTable("Most expensive models", "relaycore_ai_cost_usd_total",
                             ("provider", "model"), "Cost (USD)", "USD")),
    ),
    cost_metric="relaycore_ai_cost_usd_total",
)

NEUROWEAVER = SystemView(
    system="neuroweaver",
    title="NeuroWeaver",
    panels=(
        Panel("inferences_by_model", "Inferences by model and specialization",
              "neuroweaver_model_inferences_total", ("model_id", "specialization"), "rate",
              "inferences/s",
              table=TopTable("Busiest models", "neuroweaver_model_inferences_total",
                             ("model_id", "specialization"), "Inferences", "count")),
        Panel("training_jobs_active", "Active training jobs", "neuroweaver_training_jobs_active",
              (), "gauge", "count"),
        Panel("inference_latency", "Inference latency (p50, p95, p99)",
              "neuroweaver_inference_latency_seconds", (), "quantile", "s"),
        Panel("inference_latency_p95_by_model", "Inference latency per model (p95)",
              "neuroweaver_inference_latency_seconds", ("model_id",), "quantile", "s",
              quantiles=(0.95,)),
    ),
    cost_metric="neuroweaver_ai_cost_usd_total",
)

SYSTEM_VIEWS: dict[str, SystemView] = {
    view.system: view for view in (AUTOMATRIX, RELAYCORE, NEUROWEAVER)
}


def panel_frame(
    source: BreakdownSource, system: str, panel: Panel, time_range: TimeRange
) -> pd.DataFrame:
    """Return the breakdown frame that `panel` draws for `system` over `time_range`."""
    if panel.kind == "error_share":
        frame = error_share(source, system, panel.metric, time_range, by=panel.by[0])
    else:
        frame = source.breakdown(system, panel.metric, panel.by, panel.kind, time_range,
                                 panel.quantiles)
    if panel.scale != 1.0:
        frame = frame.assign(value=frame["value"] * panel.scale)
    frame.attrs["time_range"] = time_range
    return frame


def panel_labels(panel: Panel) -> tuple[str, ...]:
    """Return the label columns of the panel's frame (quantile panels add `quantile`)."""
    return (*panel.by, "quantile") if panel.kind == "quantile" else panel.by


def panel_table(
    source: BreakdownSource, system: str, table: TopTable, time_range: TimeRange
) -> pd.DataFrame:
    """Return the table beside a panel, with display column titles, largest first."""
    if table.kind == "error_share":
        frame = error_share_table(source, system, table.metric, time_range, by=table.by[0])
        titles = {"requests": table.total_title, "errors": "Errors",
                  "error_share": "Error share"}
    else:
        frame = top_n(source, system, table.metric, table.by, time_range, table.n)
        titles = {"total": table.total_title, "per_second": "Per second", "share": "Share"}
    frame = frame.rename(columns=_titles(table.by, titles)).reset_index(drop=True)
    frame.attrs = {}  # Streamlit cannot serialise a TimeRange
    return frame


def _titles(labels: Sequence[str], others: dict[str, str]) -> dict[str, str]:
    titles = {label: label.replace("_", " ").capitalize() for label in labels}
    titles.update(others)
    return titles
