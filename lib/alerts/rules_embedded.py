"""The alert rules that the embedded backend evaluates, as data.

Thresholds come from each system's `Thresholds`, so these rules and the generated Prometheus
rules judge the same numbers. Each rule compares one signal of the catalog with a threshold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lib.config import Thresholds

ThresholdOf = Callable[[Thresholds], float]


@dataclass(frozen=True)
class EmbeddedRule:
    """Fire `name` with `severity` when `signal` compares with the threshold for `for_seconds`.

    `above` True fires when the value is greater than the threshold, False when it is less.
    A threshold of 0 or less disables the rule for that system (a cost budget of 0 means none).
    """

    name: str
    severity: str
    signal: str
    threshold: ThresholdOf
    for_seconds: float
    above: bool
    summary: str  # str.format template: display_name, value, threshold, for_text

    def breached(self, value: float, threshold: float) -> bool:
        """Return whether `value` breaches `threshold`; NaN (no data) never does."""
        if value != value:
            return False
        return value > threshold if self.above else value < threshold


EMBEDDED_RULES: tuple[EmbeddedRule, ...] = (
    EmbeddedRule(
        # `up` is the share of successful scrapes in the last interval, so below 0.5 is down.
        "SystemDown", "critical", "up", lambda t: 0.5, 60.0, above=False,
        summary="{display_name} is down: its metrics endpoint has not answered for {for_text}",
    ),
    EmbeddedRule(
        "HighErrorRate", "warning", "error_rate", lambda t: t.error_rate_warning, 120.0,
        above=True, summary="{display_name} error rate {value} is over {threshold}",
    ),
    EmbeddedRule(
        "HighErrorRate", "critical", "error_rate", lambda t: t.error_rate_error, 120.0,
        above=True, summary="{display_name} error rate {value} is over {threshold}",
    ),
    EmbeddedRule(
        "HighLatencyP95", "warning", "p95_latency_ms", lambda t: t.p95_latency_ms_warning, 300.0,
        above=True, summary="{display_name} p95 latency {value} is over {threshold}",
    ),
    EmbeddedRule(
        "HighLatencyP95", "critical", "p95_latency_ms", lambda t: t.p95_latency_ms_error, 300.0,
        above=True, summary="{display_name} p95 latency {value} is over {threshold}",
    ),
    EmbeddedRule(
        "CostOverBudget", "warning", "cost_per_hour", lambda t: t.cost_per_hour_budget, 600.0,
        above=True, summary="{display_name} AI cost {value} is over its budget of {threshold}",
    ),
)
