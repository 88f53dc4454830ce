"""The alerts facade the pages use: one interface over the embedded and Alertmanager backends.

It checks every change before passing it to a backend: the user must be an operator, the
comment must not be empty, and the expiry must lie in the future (within 30 days).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Protocol

from lib.alerts.model import Acknowledgement, AckResult, Alert
from lib.alerts.outbox import OutboxEntry
from lib.auth import User, require_operator
from lib.errors import AlertError

MAX_COMMENT_CHARS = 2000
# Maximum duration of an acknowledgement that the library accepts.
MAX_EXPIRY_S = 30 * 86400.0


class AlertBackend(Protocol):
    """Storage of alerts and acknowledgements: embedded SQLite or Alertmanager."""

    label: str

    def active(self, now: float) -> list[Alert]:
        """Return the firing alerts, acknowledged ones marked silenced."""
        ...

    def resolved(self, start: float, end: float) -> list[Alert]:
        """Return the alerts resolved between `start` and `end`."""
        ...

    def acknowledge(self, alert: Alert, ack: Acknowledgement) -> AckResult: ...

    def extend(self, alert: Alert, actor: str, expires_at: float, now: float) -> AckResult: ...

    def remove(self, alert: Alert, actor: str, now: float) -> AckResult: ...


class Alerts:
    """Reads alerts from `backend` and changes acknowledgements on behalf of a user."""

    def __init__(self, backend: AlertBackend, clock: Callable[[], float] = time.time) -> None:
        self.backend = backend
        self.clock = clock

    @property
    def label(self) -> str:
        return self.backend.label

    @property
    def keeps_history(self) -> bool:
        """Whether `resolved` can return anything (Alertmanager keeps no resolved alerts)."""
        return bool(getattr(self.backend, "keeps_history", True))

    def active(self) -> list[Alert]:
        """Return the firing alerts (silenced ones included), most severe and oldest first."""
        alerts = self.backend.active(self.clock())
        return sorted(alerts, key=lambda a: (a.severity != "critical", a.started_at, a.id))

    def resolved(self, start: float, end: float) -> list[Alert]:
        return self.backend.resolved(start, end)

    def firing_counts(self) -> Counter[str]:
        """Return the number of firing alerts (acknowledged ones included) per system."""
        return Counter(alert.system for alert in self.backend.active(self.clock()))

    def pending_deliveries(self) -> list[OutboxEntry]:
        """Return the acknowledgement changes that wait for delivery (Alertmanager only)."""
        pending: Callable[[], list[OutboxEntry]] | None = getattr(
            self.backend, "pending_entries", None)
        return pending() if pending is not None else []

    # The changes take the alert as the page last read it, not its id. An operator can then
    # acknowledge while Alertmanager cannot be read, and the outbox delivers the change later.

    def acknowledge(self, alert: Alert, user: User, comment: str,
                    expires_at: float) -> AckResult:
        """Acknowledge `alert` as `user` until `expires_at` (epoch seconds)."""
        require_operator(user, "acknowledge alerts")
        now = self.clock()
        comment = _checked_comment(comment)
        _check_expiry(expires_at, now)
        _check_author(user)
        return self.backend.acknowledge(alert, Acknowledgement(user.name, now, comment,
                                                               expires_at))

    def extend(self, alert: Alert, user: User, expires_at: float) -> AckResult:
        """Move the expiry of the alert's acknowledgement to `expires_at` (epoch seconds)."""
        require_operator(user, "extend acknowledgements")
        now = self.clock()
        _check_expiry(expires_at, now)
        _check_author(user)
        return self.backend.extend(alert, user.name, expires_at, now)

    def remove(self, alert: Alert, user: User) -> AckResult:
        """Remove the alert's acknowledgement, so that it fires unacknowledged again."""
        require_operator(user, "remove acknowledgements")
        now = self.clock()
        _check_author(user)
        return self.backend.remove(alert, user.name, now)


def _checked_comment(comment: str) -> str:
    text = comment.strip()
    if not text:
        raise AlertError("a comment is required: say why the alert is acknowledged")
    if len(text) > MAX_COMMENT_CHARS:
        raise AlertError(
            f"the comment has {len(text)} characters; shorten it to {MAX_COMMENT_CHARS}"
        )
    return text


def _check_expiry(expires_at: float, now: float) -> None:
    if expires_at <= now:
        raise AlertError("the expiry must lie in the future")
    if expires_at - now > MAX_EXPIRY_S:
        raise AlertError(f"the expiry must lie within {MAX_EXPIRY_S / 86400:g} days")


def _check_author(user: User) -> None:
    if not user.name.strip():
        raise AlertError("a name is required: say who acknowledges")
