"""Alerts and acknowledgements as both backends return them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class AlertState(StrEnum):
    FIRING = "firing"
    SILENCED = "silenced"  # firing, with an acknowledgement in force
    RESOLVED = "resolved"


class Severity(StrEnum):
    CRITICAL = "critical"
    WARNING = "warning"


@dataclass(frozen=True)
class Acknowledgement:
    """Who acknowledged an alert, why, and until when (epoch seconds).

    `pending` is True while the acknowledgement waits in the outbox for Alertmanager, and
    `delivery_error` is then the last failure.
    """

    acknowledged_by: str
    acknowledged_at: float
    comment: str
    expires_at: float
    pending: bool = False
    delivery_error: str | None = None

    def active(self, now: float) -> bool:
        return self.expires_at > now


@dataclass(frozen=True)
class Alert:
    """One alert: `id` is a fingerprint of its labels, so it is the same on every evaluation and
    in every process."""

    id: str
    system: str
    name: str
    severity: str
    summary: str
    state: AlertState
    started_at: float
    labels: Mapping[str, str]
    acknowledgement: Acknowledgement | None = None
    resolved_at: float | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AckResult:
    """Outcome of an acknowledgement change: delivered, or kept for a later retry."""

    alert_id: str
    delivered: bool
    error: str | None = None


def fingerprint(labels: Mapping[str, str]) -> str:
    """Return a stable id of a label set: the first 16 hex digits of SHA-256 over its sorted
    JSON form."""
    canonical = json.dumps(sorted(labels.items()), separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]
