"""Alert rules as data: one definition per rule and system, for both backends.

Each `AlertRule` names the catalog signal it watches, the comparison, the threshold, how long the
condition must hold (`for_seconds`) and the severity, all taken from the system's `Thresholds`.
Prometheus gets the rule as PromQL through `promql()`; an embedded evaluator compares the same
signal's current value with `breached()`. `python -m lib.rules` writes the Prometheus rule file:

    python -m lib.rules > monitoring/prometheus/alerts.yml
    python -m lib.rules --write            # the same, into monitoring/prometheus/alerts.yml
    python -m lib.rules --config platform-monitor.toml

The signals are evaluated with a rate window of four scrape intervals, as the Overview's current
values are.
"""

from __future__ import annotations

import argparse
import json
import math
import operator
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lib.config import Settings, TargetConfig, load_settings, settings_from_mapping
from lib.promql import SystemQueries
from lib.signals import MetricNames
from lib.sources.embedded import CURRENT_WINDOW_SCRAPES
from lib.timerange import format_seconds

DEFAULT_RULES_FILE = Path("monitoring/prometheus/alerts.yml")
GROUP_NAME = "platform-monitor"

_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "==": operator.eq,
    ">=": operator.ge,
    ">": operator.gt,
}
# The format of each watched signal's value in a summary: Prometheus template, Python formatter.
_VALUE_FORMATS: dict[str, tuple[str, Callable[[float], str]]] = {
    "up": ("{{ $value }}", lambda v: f"{v:g}"),
    "error_rate": ("{{ $value | humanizePercentage }}", lambda v: f"{v * 100:.1f}%"),
    "p95_latency_ms": ("{{ $value | humanize }} ms", lambda v: f"{v:.0f} ms"),
    "cost_per_hour": ("{{ $value | humanize }} USD/h", lambda v: f"{v:.2f} USD/h"),
}


@dataclass(frozen=True)
class AlertRule:
    """One alert on one system: it fires when `signal` compared with `threshold` holds for
    `for_seconds`. `summary` may contain `{value}`, filled with the formatted current value."""

    name: str
    system: str
    display_name: str
    signal: str
    comparison: str
    threshold: float
    for_seconds: float
    severity: str
    summary: str

    def breached(self, value: float | None) -> bool:
        """Return whether `value` (None or NaN: no data) meets the rule's condition."""
        if value is None or math.isnan(value):
            return False
        return _COMPARISONS[self.comparison](value, self.threshold)

    def promql(
        self, target: TargetConfig, extra_matchers: str = "", scrape_interval: float = 15.0
    ) -> str:
        """Return the rule's condition as PromQL for `target`'s series."""
        queries = SystemQueries(
            target.prometheus_job, MetricNames.for_prefix(target.metric_prefix), extra_matchers
        )
        if self.signal == "up":
            # Down means that the last scrape of every instance of the job failed.
            return f"max({queries.selector('up')}) {self.comparison} {self.threshold:g}"
        window = CURRENT_WINDOW_SCRAPES * scrape_interval
        expression = queries.signal(self.signal, window, scrape_interval)
        return f"({expression}) {self.comparison} {self.threshold:g}"

    def format_summary(self, value: float) -> str:
        """Return the summary with the current value, for the embedded evaluator."""
        return self.summary.format(value=_VALUE_FORMATS[self.signal][1](value))

    def prometheus_summary(self) -> str:
        """Return the summary with Prometheus's template for the current value."""
        return self.summary.format(value=_VALUE_FORMATS[self.signal][0])


def rules_for(target: TargetConfig) -> list[AlertRule]:
    """Return the alert rules of one system from its thresholds."""
    t = target.thresholds
    name, system = target.display_name, target.system
    rules = [
        AlertRule("SystemDown", system, name, "up", "==", 0.0, 60.0, "critical",
                  f"{name} is down: its last scrape failed."),
        AlertRule("HighErrorRate", system, name, "error_rate", ">=", t.error_rate_warning, 300.0,
                  "warning", f"{name} error rate is {{value}}, at or above the warning "
                  f"threshold {t.error_rate_warning * 100:g}%."),
        AlertRule("HighErrorRate", system, name, "error_rate", ">=", t.error_rate_error, 120.0,
                  "critical", f"{name} error rate is {{value}}, at or above the error "
                  f"threshold {t.error_rate_error * 100:g}%."),
        AlertRule("HighLatencyP95", system, name, "p95_latency_ms", ">=",
                  t.p95_latency_ms_warning, 300.0, "warning",
                  f"{name} p95 latency is {{value}}, at or above the warning threshold "
                  f"{t.p95_latency_ms_warning:g} ms."),
        AlertRule("HighLatencyP95", system, name, "p95_latency_ms", ">=",
                  t.p95_latency_ms_error, 120.0, "critical",
                  f"{name} p95 latency is {{value}}, at or above the error threshold "
                  f"{t.p95_latency_ms_error:g} ms."),
    ]
    if t.cost_per_hour_budget > 0:
        rules.append(
            AlertRule("AICostOverBudget", system, name, "cost_per_hour", ">",
                      t.cost_per_hour_budget, 900.0, "warning",
                      f"{name} AI cost is {{value}}, over the budget of "
                      f"{t.cost_per_hour_budget:g} USD/h.")
        )
    return rules


def alert_rules(settings: Settings) -> list[AlertRule]:
    """Return the alert rules of every configured system."""
    return [rule for target in settings.targets for rule in rules_for(target)]


def prometheus_rules_yaml(settings: Settings) -> str:
    """Return a Prometheus rule file with every system's alert rules."""
    targets = {target.system: target for target in settings.targets}
    lines = [
        "# Generated by `python -m lib.rules` from the thresholds in lib/config.py",
        "# (or a configuration file's [[targets]] thresholds). Do not edit by hand.",
        "groups:",
        f"  - name: {GROUP_NAME}",
        "    rules:",
    ]
    for rule in alert_rules(settings):
        expression = rule.promql(
            targets[rule.system], settings.source.extra_matchers, settings.scrape_interval
        )
        lines += [
            f"      - alert: {rule.name}",
            f"        expr: {_quote(expression)}",
            f"        for: {format_seconds(rule.for_seconds)}",
            "        labels:",
            f"          system: {_quote(rule.system)}",
            f"          severity: {_quote(rule.severity)}",
            "        annotations:",
            f"          summary: {_quote(rule.prometheus_summary())}",
        ]
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    """Return `text` as a YAML double-quoted scalar (JSON strings are valid YAML)."""
    return json.dumps(text, ensure_ascii=False)


def main(argv: Sequence[str] | None = None) -> int:
    """Print or write the Prometheus rule file for the default or a configured set of systems."""
    parser = argparse.ArgumentParser(
        prog="python -m lib.rules",
        description="Generate Prometheus alert rules from Platform Monitor's thresholds.",
    )
    parser.add_argument("--config", type=Path,
                        help="configuration file whose targets and thresholds to use "
                             "(default: the built-in defaults for the three systems)")
    parser.add_argument("--write", nargs="?", const=DEFAULT_RULES_FILE, type=Path,
                        metavar="PATH",
                        help=f"write the rules to PATH (default {DEFAULT_RULES_FILE}) "
                             "instead of standard output")
    args = parser.parse_args(argv)

    settings = load_settings(args.config) if args.config else settings_from_mapping({}, {})
    text = prometheus_rules_yaml(settings)
    if args.write:
        args.write.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
