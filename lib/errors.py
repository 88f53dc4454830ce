"""The library's own exceptions. Third-party errors (httpx, sqlite3, the exposition parser) are
translated into these at one boundary each, so that a page can word a plain message."""

from __future__ import annotations

from enum import StrEnum


class MonitorError(Exception):
    """Base of every error the library raises on purpose."""


class FetchFailure(StrEnum):
    """What went wrong with one HTTP fetch, in the words an operator uses."""

    REFUSED = "refused"
    TIMEOUT = "timeout"
    HTTP_STATUS = "http_status"
    AUTH = "auth"
    TOO_LARGE = "too_large"
    NOT_METRICS = "not_metrics"
    PROTOCOL = "protocol"


_HINTS = {
    FetchFailure.REFUSED: "check that the process is running and listening on that address",
    FetchFailure.TIMEOUT: "check the process's load and the network path, or raise the timeout",
    FetchFailure.HTTP_STATUS: "check the process's own logs",
    FetchFailure.AUTH: "check the bearer token or password configured for it",
    FetchFailure.TOO_LARGE: "check for a label with unbounded values, or raise the size limit",
    FetchFailure.NOT_METRICS: "check that the URL points at a Prometheus /metrics endpoint",
    FetchFailure.PROTOCOL: "check that the URL, port and scheme are right",
}


class FetchError(MonitorError):
    """An HTTP fetch of `url` failed; `failure` says how, `detail` in plain words."""

    def __init__(
        self,
        url: str,
        failure: FetchFailure,
        detail: str,
        status_code: int | None = None,
    ) -> None:
        self.url = url
        self.failure = failure
        self.detail = detail
        self.status_code = status_code
        super().__init__(f"{url} {detail}")

    @property
    def hint(self) -> str:
        return _HINTS[self.failure]

    @property
    def retryable(self) -> bool:
        """Return whether trying again soon may succeed: refusals, timeouts, 502/503/504."""
        if self.failure in (FetchFailure.REFUSED, FetchFailure.TIMEOUT):
            return True
        return self.failure is FetchFailure.HTTP_STATUS and self.status_code in (502, 503, 504)

    def describe(self, name: str) -> str:
        """Return a sentence for the page: what failed on `name` and what to check."""
        return f"{name}: {self.detail}. What to check: {self.hint}."


class AccessDeniedError(MonitorError, PermissionError):
    """`user` may not perform `action`; only operators acknowledge alerts."""

    def __init__(self, user: str, action: str) -> None:
        self.user = user
        self.action = action
        super().__init__(
            f"{user!r} may not {action}: only operators may; ask an administrator to list this "
            "user or one of their groups under [auth] operators or operator_groups"
        )


class AlertError(MonitorError):
    """An alert operation was invalid (unknown alert, empty comment, expiry in the past)."""
