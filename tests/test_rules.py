"""Alert rules: generated from the thresholds, committed unchanged, and valid for promtool."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lib.config import DEFAULT_THRESHOLDS, settings_from_mapping
from lib.rules import DEFAULT_RULES_FILE, alert_rules, prometheus_rules_yaml, rules_for

ROOT = Path(__file__).resolve().parent.parent
PROMTOOL = "/usr/bin/promtool"


def test_committed_rules_match_generated() -> None:
    committed = (ROOT / DEFAULT_RULES_FILE).read_text(encoding="utf-8")
    generated = prometheus_rules_yaml(settings_from_mapping({}, {}))
    assert committed == generated, (
        "monitoring/prometheus/alerts.yml is out of date; run `python -m lib.rules --write`"
    )


def test_command_prints_rules() -> None:
    result = subprocess.run([sys.executable, "-m", "lib.rules"], cwd=ROOT, capture_output=True,
                            text=True, check=True)
    assert result.stdout == prometheus_rules_yaml(settings_from_mapping({}, {}))


def test_rules_use_app_thresholds() -> None:
    settings = settings_from_mapping({}, {})
    rules = [r for r in alert_rules(settings) if r.system == "relaycore"]
    thresholds = DEFAULT_THRESHOLDS["relaycore"]
    by_key = {(r.name, r.severity): r for r in rules}
    assert by_key[("HighErrorRate", "warning")].threshold == thresholds.error_rate_warning
    assert by_key[("HighErrorRate", "error")].threshold == thresholds.error_rate_error
    assert by_key[("HighLatencyP95", "warning")].threshold == thresholds.p95_latency_ms_warning
    assert by_key[("HighLatencyP95", "error")].threshold == thresholds.p95_latency_ms_error
    assert by_key[("AICostOverBudget", "warning")].threshold == thresholds.cost_per_hour_budget
    assert by_key[("SystemDown", "error")].threshold == 0


def test_rule_breached_compares_value() -> None:
    settings = settings_from_mapping({}, {})
    rule = next(r for r in rules_for(settings.target("automatrix"))
                if r.name == "HighErrorRate" and r.severity == "warning")
    assert rule.breached(0.02)
    assert not rule.breached(0.019)
    assert not rule.breached(float("nan"))
    assert not rule.breached(None)
    assert rule.format_summary(0.05) == (
        "AutoMatrix error rate is 5.0%, at or above the warning threshold 2%."
    )


def test_rules_follow_job_and_matchers() -> None:
    settings = settings_from_mapping(
        {
            "source": {"kind": "prometheus", "url": "http://127.0.0.1:9090",
                       "extra_matchers": '{cluster="prod"}'},
            "targets": [{"system": "relaycore", "job": "relay"}],
        },
        {},
    )
    text = prometheus_rules_yaml(settings)
    assert 'job=\\"relay\\",cluster=\\"prod\\"' in text
    assert 'job=\\"relaycore\\"' not in text


@pytest.mark.prometheus
def test_promtool_checks_rules() -> None:
    result = subprocess.run([PROMTOOL, "check", "rules", str(ROOT / DEFAULT_RULES_FILE)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.prometheus
def test_promtool_checks_config() -> None:
    config = ROOT / "monitoring/prometheus/prometheus.yml"
    result = subprocess.run([PROMTOOL, "check", "config", str(config)], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout


def test_alertmanager_config_valid() -> None:
    config = ROOT / "monitoring/alertmanager/alertmanager.yml"
    result = subprocess.run(["/usr/bin/amtool", "check-config", str(config)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
