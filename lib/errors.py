"""The library's own exceptions. Third-party errors (httpx, sqlite3, the exposition parser) are
translated into these at one boundary each, so that a page can word a plain message."""

from __future__ import annotations

from enum import StrEnum
from urllib.parse import urlsplit, urlunsplit


class MonitorError(Exception):
    """Base of every error the library raises on purpose."""


class UnknownSystemError(MonitorError, KeyError):
    """A system id that the configuration does not name. It is also a KeyError, so lookups
    that catch KeyError keep working."""

    def __init__(self, system: str, known: list[str]) -> None:
        self.system = system
        self.known = known
        super().__init__(
            f"unknown system {system!r}; configured systems are {', '.join(known)}"
        )

    def __str__(self) -> str:
        # KeyError's own __str__ would print the message with quotes around it.
        return str(self.args[0])


class StoreError(MonitorError):
    """Reading or writing the SQLite metric store failed."""

    def __init__(self, path: str, action: str, detail: str) -> None:
        self.path = path
        self.action = action
        self.detail = detail
        super().__init__(
            f"could not {action} the metric store {path} ({detail}). What to check: that the "
            "disk is not full, the file is readable and writable, and no other program locks it"
        )


class FetchFailure(StrEnum):
    """The kind of failure of one HTTP fetch, in the words an operator uses."""

    REFUSED = "refused"
    TIMEOUT = "timeout"
    HTTP_STATUS = "http_status"
    AUTH = "auth"
    TOO_LARGE = "too_large"
    NOT_METRICS = "not_metrics"
    RESET = "reset"
    PROTOCOL = "protocol"


_HINTS = {
    FetchFailure.REFUSED: "check that the process is running and listening on that address",
    FetchFailure.TIMEOUT: "check the process's load and the network path, or raise the timeout",
    FetchFailure.HTTP_STATUS: "check the process's own logs",
    FetchFailure.AUTH: "check the bearer token or password configured for it",
    FetchFailure.TOO_LARGE: "check for a label with unbounded values, or raise the size limit",
    FetchFailure.NOT_METRICS: "check that the URL points at a Prometheus /metrics endpoint",
    FetchFailure.RESET: "check the process's logs for crashes or restarts",
    FetchFailure.PROTOCOL: "check that the URL, port and scheme are right",
}


class FetchError(MonitorError):
    """An HTTP fetch of `url` failed; `failure` is the kind and `detail` the plain words."""

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
        super().__init__(f"{redact_url(url)} {detail}")

    @property
    def hint(self) -> str:
        return _HINTS[self.failure]

    @property
    def retryable(self) -> bool:
        """Return whether trying again soon may succeed: refused or reset connections, timeouts,
        HTTP 502/503/504."""
        if self.failure in (FetchFailure.REFUSED, FetchFailure.RESET, FetchFailure.TIMEOUT):
            return True
        return self.failure is FetchFailure.HTTP_STATUS and self.status_code in (502, 503, 504)

    def describe(self, name: str) -> str:
        """Return a sentence for the page: what failed on `name` and what to check."""
        return f"{name}: {self.detail}. What to check: {self.hint}."


class QueryError(MonitorError):
    """A query to a Prometheus-compatible server failed.

    `server` is the server's base URL, `query` the PromQL, `system` the system whose query it
    was (None when the query served no single system), and `detail` a plain sentence.
    """

    def __init__(self, server: str, query: str, detail: str, system: str | None = None) -> None:
        self.server = server
        self.query = query
        self.detail = detail
        self.system = system
        super().__init__(f"Prometheus at {server} could not run the query {query!r}: {detail}")

def redact_url(url: str) -> str:
    """Return `url` with the password of its user info replaced by `***`, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))

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
