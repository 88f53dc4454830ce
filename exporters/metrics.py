"""Metric definitions of the three systems and the per-process state that the exporters serve.

Every system instance (one process incarnation) owns a fresh `CollectorRegistry` holding one
collector that renders the current numpy state. Counters and histogram sums are stored as
integers in a small unit (nanoseconds, microseconds of CPU, nano-US dollars) so that adding
increments in any grouping gives the same value. A definition's `scale` converts a stored
value to the exposed unit.

Series of a labelled metric are declared up front, all starting at 0, in the order of the
label value product that the simulator uses for its arrays (the last label varies fastest).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString as _untyped_float_to_go_string

from exporters import catalog
from exporters.catalog import METRIC_PREFIXES, PROFILES

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
MetricKind = Literal["counter", "gauge", "histogram"]
Series = tuple[str, ...]

DEFAULT_BUCKETS: tuple[float, ...] = tuple(float(bound) for bound in Histogram.DEFAULT_BUCKETS)
NANOSECONDS = 1e9
MICROSECONDS = 1e6
NANO_USD = 1e9
UNLABELLED: tuple[Series, ...] = ((),)


def format_value(value: float) -> str:
    """Format a sample value or bucket bound exactly as prometheus_client's exposition does."""
    return str(_untyped_float_to_go_string(value))  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class MetricDefinition:
    """Name, type, help text and declared series of one metric.

    `name` is the exposed name, so counters end in `_total`. `series` lists the label values of
    every series in `labelnames` order. `buckets` are histogram upper bounds ending with +Inf.
    `scale` is the number of stored units per exposed unit, for example 1e9 for nanoseconds.
    """

    name: str
    kind: MetricKind
    documentation: str
    labelnames: tuple[str, ...] = ()
    series: tuple[Series, ...] = UNLABELLED
    buckets: tuple[float, ...] = ()
    scale: float = 1.0

    @property
    def series_count(self) -> int:
        """Number of declared series."""
        return len(self.series)


@dataclass
class MetricUpdate:
    """Changes to apply to one `SystemMetrics` at once.

    `counters` maps a counter name to per-series increments in stored units. `histograms` maps a
    histogram name to per-series bucket increments (not cumulative, shape series x buckets) and
    per-series sum increments. `gauges` maps a gauge name to the new per-series values.
    """

    counters: dict[str, IntArray] = field(default_factory=dict)
    histograms: dict[str, tuple[IntArray, IntArray]] = field(default_factory=dict)
    gauges: dict[str, FloatArray] = field(default_factory=dict)


def _route_series(system: str) -> tuple[Series, ...]:
    return tuple((route.method, route.path) for route in PROFILES[system].routes)


def _request_series(system: str) -> tuple[Series, ...]:
    return tuple(
        (route.method, route.path, code)
        for route in PROFILES[system].routes
        for code in catalog.route_codes(route)
    )


def _model_series(models: Sequence[catalog.Model]) -> tuple[Series, ...]:
    return tuple((model.provider, model.name) for model in models)


def _token_series(models: Sequence[catalog.Model]) -> tuple[Series, ...]:
    return tuple(
        (model.provider, model.name, token_type)
        for model in models
        for token_type in catalog.TOKEN_TYPES
    )


def shared_definitions(system: str) -> tuple[MetricDefinition, ...]:
    """Return the HTTP, process and cost metrics that every system exposes under one name."""
    prefix = METRIC_PREFIXES[system]
    cost_series: tuple[Series, ...]
    if system == "neuroweaver":
        cost_series = tuple(
            (catalog.NEUROWEAVER_PROVIDER, model.model_id) for model in catalog.NEUROWEAVER_MODELS
        )
    elif system == "relaycore":
        cost_series = _model_series(catalog.relaycore_models())
    else:
        cost_series = _model_series(catalog.AUTOMATRIX_MODELS)

    return (
        MetricDefinition(
            "http_requests_total", "counter",
            "HTTP requests served, by method, route and status code.",
            ("method", "route", "code"), _request_series(system),
        ),
        MetricDefinition(
            "http_request_duration_seconds", "histogram", "HTTP request duration in seconds.",
            ("method", "route"), _route_series(system), DEFAULT_BUCKETS, NANOSECONDS,
        ),
        MetricDefinition(
            "http_requests_in_flight", "gauge", "HTTP requests being served right now.",
        ),
        MetricDefinition(
            "process_cpu_seconds_total", "counter",
            "Total user and system CPU time spent in seconds.", scale=MICROSECONDS,
        ),
        MetricDefinition(
            "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
        ),
        MetricDefinition(
            "process_start_time_seconds", "gauge",
            "Start time of the process since unix epoch in seconds.",
        ),
        MetricDefinition(
            f"{prefix}ai_cost_usd_total", "counter",
            "AI spend in US dollars, by provider and model.",
            ("provider", "model"), cost_series, scale=NANO_USD,
        ),
    )


def automatrix_definitions() -> tuple[MetricDefinition, ...]:
    """Return AutoMatrix's workflow and AI metrics."""
    executions = tuple(
        (status, template.name)
        for template in catalog.WORKFLOW_TEMPLATES
        for status in catalog.WORKFLOW_STATUSES
    )
    return (
        MetricDefinition(
            "autmatrix_workflow_executions_total", "counter",
            "Finished workflow executions, by final status and template.",
            ("status", "template"), executions,
        ),
        MetricDefinition(
            "autmatrix_workflow_duration_seconds", "histogram",
            "Workflow execution duration in seconds.",
            buckets=catalog.WORKFLOW_DURATION_BUCKETS, scale=NANOSECONDS,
        ),
        MetricDefinition("autmatrix_active_workflows", "gauge", "Workflow executions running now."),
        MetricDefinition(
            "autmatrix_ai_requests_total", "counter", "AI model requests, by provider and model.",
            ("provider", "model"), _model_series(catalog.AUTOMATRIX_MODELS),
        ),
        MetricDefinition(
            "autmatrix_ai_tokens_total", "counter",
            "AI model tokens, by provider, model and token type (input or output).",
            ("provider", "model", "type"), _token_series(catalog.AUTOMATRIX_MODELS),
        ),
    )


def relaycore_definitions() -> tuple[MetricDefinition, ...]:
    """Return RelayCore's upstream request, routing latency and token metrics."""
    models = catalog.relaycore_models()
    requests = tuple(
        (model.provider, model.name, status)
        for model in models
        for status in catalog.RELAYCORE_AI_STATUSES
    )
    return (
        MetricDefinition(
            "relaycore_ai_requests_total", "counter",
            "Requests forwarded to AI providers, by provider, model and outcome status.",
            ("provider", "model", "status"), requests,
        ),
        MetricDefinition(
            "relaycore_routing_latency_seconds", "histogram",
            "Time from forwarding a request to a provider until its response, in seconds.",
            ("provider",), tuple((provider,) for provider in catalog.providers(models)),
            DEFAULT_BUCKETS, NANOSECONDS,
        ),
        MetricDefinition(
            "relaycore_ai_tokens_total", "counter",
            "AI model tokens, by provider, model and token type (input or output).",
            ("provider", "model", "type"), _token_series(models),
        ),
    )


def neuroweaver_definitions() -> tuple[MetricDefinition, ...]:
    """Return NeuroWeaver's inference and training metrics."""
    models = catalog.NEUROWEAVER_MODELS
    return (
        MetricDefinition(
            "neuroweaver_model_inferences_total", "counter",
            "Model inferences served, by model id and specialization.",
            ("model_id", "specialization"),
            tuple((model.model_id, model.specialization) for model in models),
        ),
        MetricDefinition(
            "neuroweaver_inference_latency_seconds", "histogram",
            "Model inference latency in seconds, by model id.",
            ("model_id",), tuple((model.model_id,) for model in models),
            DEFAULT_BUCKETS, NANOSECONDS,
        ),
        MetricDefinition(
            "neuroweaver_training_jobs_active", "gauge", "Training jobs running now.",
        ),
        MetricDefinition(
            "neuroweaver_training_jobs_completed_total", "counter",
            "Finished training jobs, by outcome.",
            ("outcome",), tuple((outcome,) for outcome in catalog.TRAINING_OUTCOMES),
        ),
    )


@functools.cache
def metric_definitions(system: str) -> tuple[MetricDefinition, ...]:
    """Return every metric that `system` exposes, shared ones first.

    Raises ValueError for an unknown system id.
    """
    domain = {
        "automatrix": automatrix_definitions,
        "relaycore": relaycore_definitions,
        "neuroweaver": neuroweaver_definitions,
    }
    if system not in domain:
        raise ValueError(f"Unknown system {system!r}. Expected one of {catalog.SYSTEMS}.")
    return shared_definitions(system) + domain[system]()


class SystemMetrics:
    """Metric state of one process incarnation of one system, with its own registry.

    The simulator calls `apply` and the HTTP exporter reads `registry`. A lock makes every
    scrape see whole updates only.
    """

    def __init__(
        self, system: str, process_start_time: float, resident_memory_bytes: float = 0.0
    ) -> None:
        self.system = system
        self.process_start_time = process_start_time
        self.definitions = {
            definition.name: definition for definition in metric_definitions(system)
        }
        self._lock = threading.Lock()
        self._values: dict[str, IntArray | FloatArray] = {}
        self._sums: dict[str, IntArray] = {}
        self._allocate_values()
        self._values["process_start_time_seconds"][0] = process_start_time
        # A process has memory from its first instant, before the first tick sets the gauge.
        self._values["process_resident_memory_bytes"][0] = resident_memory_bytes

        self.registry = CollectorRegistry()
        self.registry.register(_StateCollector(self))

    def _allocate_values(self) -> None:
        for name, definition in self.definitions.items():
            count = definition.series_count
            if definition.kind == "histogram":
                self._values[name] = np.zeros((count, len(definition.buckets)), dtype=np.int64)
                self._sums[name] = np.zeros(count, dtype=np.int64)
            elif definition.kind == "counter":
                self._values[name] = np.zeros(count, dtype=np.int64)
            else:
                self._values[name] = np.zeros(count, dtype=np.float64)

    def apply(self, update: MetricUpdate) -> None:
        """Add counter and histogram increments and set gauges, all under one lock.

        Raises ValueError when a name is unknown or an array does not match the declared series.
        """
        self._validate(update)
        with self._lock:
            for name, increments in update.counters.items():
                self._values[name] += increments
            for name, (bucket_increments, sum_increments) in update.histograms.items():
                self._values[name] += bucket_increments
                self._sums[name] += sum_increments
            for name, values in update.gauges.items():
                self._values[name][:] = values

    def _validate(self, update: MetricUpdate) -> None:
        for name, increments in update.counters.items():
            self._check_shape(name, "counter", increments.shape)
        for name, (bucket_increments, sum_increments) in update.histograms.items():
            self._check_shape(name, "histogram", bucket_increments.shape, per_bucket=True)
            self._check_shape(name, "histogram", sum_increments.shape)
        for name, values in update.gauges.items():
            self._check_shape(name, "gauge", values.shape)

    def _check_shape(
        self, name: str, kind: MetricKind, shape: tuple[int, ...], per_bucket: bool = False
    ) -> None:
        definition = self.definitions.get(name)
        if definition is None or definition.kind != kind:
            raise ValueError(f"{self.system} has no {kind} named {name!r}.")

        expected: tuple[int, ...] = (definition.series_count,)
        if per_bucket:
            expected = (definition.series_count, len(definition.buckets))
        if shape != expected:
            raise ValueError(f"Update of {name!r} has shape {shape}; expected {expected}.")

    def value(self, name: str, series: Series = ()) -> float:
        """Return the exposed value of one counter or gauge series, in the exposed unit."""
        definition = self.definitions[name]
        index = definition.series.index(series)
        with self._lock:
            stored = self._values[name][index]
        return float(stored) / definition.scale

    def render_text(self) -> str:
        """Render the current values in the Prometheus text format 0.0.4.

        The output equals `generate_latest(self.registry)` byte for byte (a test checks this),
        but takes a fraction of the time because the label strings are built once per system.
        """
        values, sums = self.snapshot()
        parts: list[str] = []
        for layout in _text_layouts(self.system):
            parts.append(layout.header)
            definition = layout.definition
            if definition.kind == "histogram":
                _render_histogram(parts, layout, values[definition.name], sums[definition.name])
            else:
                for prefix, stored in zip(
                    layout.series_prefixes, values[definition.name].tolist(), strict=True
                ):
                    parts.append(f"{prefix}{format_value(stored / definition.scale)}\n")
        return "".join(parts)

    def snapshot(self) -> tuple[dict[str, IntArray | FloatArray], dict[str, IntArray]]:
        """Return copies of all stored values and histogram sums, taken under the lock."""
        with self._lock:
            values = {name: array.copy() for name, array in self._values.items()}
            sums = {name: array.copy() for name, array in self._sums.items()}
        return values, sums


class _StateCollector(Collector):
    """Collector that renders a `SystemMetrics` snapshot as metric families."""

    def __init__(self, metrics: SystemMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        values, sums = self._metrics.snapshot()
        for name, definition in self._metrics.definitions.items():
            if definition.kind == "histogram":
                yield _histogram_family(definition, values[name], sums[name])
            else:
                yield _scalar_family(definition, values[name])


def _scalar_family(definition: MetricDefinition, values: IntArray | FloatArray) -> Metric:
    family: CounterMetricFamily | GaugeMetricFamily
    if definition.kind == "counter":
        family = CounterMetricFamily(
            definition.name, definition.documentation, labels=definition.labelnames
        )
    else:
        family = GaugeMetricFamily(
            definition.name, definition.documentation, labels=definition.labelnames
        )
    for series, stored in zip(definition.series, values.tolist(), strict=True):
        family.add_metric(series, stored / definition.scale)
    return family


def _histogram_family(
    definition: MetricDefinition, bucket_counts: IntArray | FloatArray, sums: IntArray
) -> Metric:
    family = HistogramMetricFamily(
        definition.name, definition.documentation, labels=definition.labelnames
    )
    bounds = [format_value(bound) for bound in definition.buckets]
    cumulative = np.cumsum(bucket_counts, axis=1).tolist()
    rows = zip(definition.series, cumulative, sums.tolist(), strict=True)
    for series, counts, stored_sum in rows:
        buckets = [(bound, float(count)) for bound, count in zip(bounds, counts, strict=True)]
        family.add_metric(list(series), buckets, stored_sum / definition.scale)
    return family


@dataclass(frozen=True)
class _TextLayout:
    """Precomputed exposition text of one metric: header and the text before each value."""

    definition: MetricDefinition
    header: str
    series_prefixes: tuple[str, ...]
    bucket_prefixes: tuple[tuple[str, ...], ...] = ()
    count_prefixes: tuple[str, ...] = ()
    sum_prefixes: tuple[str, ...] = ()


def _label_text(pairs: Iterable[tuple[str, str]]) -> str:
    """Format labels sorted by name, escaped like prometheus_client's text exposition."""
    escaped = [
        '{}="{}"'.format(name, value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"'))
        for name, value in sorted(pairs)
    ]
    return "{" + ",".join(escaped) + "}" if escaped else ""


@functools.cache
def _text_layouts(system: str) -> tuple[_TextLayout, ...]:
    layouts = []
    for definition in metric_definitions(system):
        name = definition.name
        documentation = definition.documentation.replace("\\", r"\\").replace("\n", r"\n")
        header = f"# HELP {name} {documentation}\n# TYPE {name} {definition.kind}\n"
        labelled = [
            list(zip(definition.labelnames, series, strict=True)) for series in definition.series
        ]
        if definition.kind != "histogram":
            prefixes = tuple(f"{name}{_label_text(pairs)} " for pairs in labelled)
            layouts.append(_TextLayout(definition, header, prefixes))
            continue

        bounds = [format_value(bound) for bound in definition.buckets]
        layouts.append(
            _TextLayout(
                definition,
                header,
                series_prefixes=(),
                bucket_prefixes=tuple(
                    tuple(f"{name}_bucket{_label_text([*pairs, ('le', le)])} " for le in bounds)
                    for pairs in labelled
                ),
                count_prefixes=tuple(f"{name}_count{_label_text(pairs)} " for pairs in labelled),
                sum_prefixes=tuple(f"{name}_sum{_label_text(pairs)} " for pairs in labelled),
            )
        )
    return tuple(layouts)


def _render_histogram(
    parts: list[str], layout: _TextLayout, bucket_counts: IntArray | FloatArray, sums: IntArray
) -> None:
    scale = layout.definition.scale
    cumulative = np.cumsum(bucket_counts, axis=1).tolist()
    for index, counts in enumerate(cumulative):
        for prefix, count in zip(layout.bucket_prefixes[index], counts, strict=True):
            parts.append(f"{prefix}{format_value(float(count))}\n")
        parts.append(f"{layout.count_prefixes[index]}{format_value(float(counts[-1]))}\n")
        parts.append(f"{layout.sum_prefixes[index]}{format_value(sums[index] / scale)}\n")
