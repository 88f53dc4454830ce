"""The signal catalog as PromQL: one expression per signal, for one system or several.

Each system's series are selected by its `job` label plus optional extra matchers. Every
expression aggregates `by (job)`, so that several instances of one job read as one system, as
the embedded store sums a scrape's series, and so that one expression can select several jobs
(`job=~"a|b"`) and still return one series per system. `grouped` builds the fewest queries that
cover several systems whose metric names or matchers differ. The semantics match
`lib/sources/embedded.py`: rates over the range's window, error rate 0 when there is no traffic,
p95 from the bucket rates summed by `le`, gauges summed, `up` averaged over one step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from lib.signals import MetricNames


def quote(value: str) -> str:
    """Return `value` as a double-quoted PromQL string."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


# The smallest request rate divided by: far below any real rate, so it only turns 0 / 0 into 0.
RATE_FLOOR = "1e-300"
# The characters RE2 gives a meaning; a job name is matched literally with each escaped.
_REGEX_SPECIAL = frozenset("\\.+*?()|[]{}^$")
# Stands for the job while systems' expressions are compared; no job name contains a NUL.
_JOB_PLACEHOLDER = "\x00"


def regex_escape(value: str) -> str:
    """Return `value` as an RE2 pattern that matches exactly `value`."""
    return "".join(f"\\{char}" if char in _REGEX_SPECIAL else char for char in value)


def job_matcher(jobs: Sequence[str]) -> str:
    """Return the matcher of `jobs`: `job="a"` for one job, `job=~"a|b"` for several."""
    if not jobs:
        raise ValueError("a job matcher needs at least one job")
    if len(jobs) == 1:
        return f"job={quote(jobs[0])}"
    return f"job=~{quote('|'.join(regex_escape(job) for job in jobs))}"


def duration(seconds: float) -> str:
    """Format seconds as a PromQL duration: whole seconds as `60s`, else milliseconds."""
    if seconds <= 0:
        raise ValueError(f"a PromQL duration must be positive, got {seconds!r} s")
    if float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{max(1, math.ceil(seconds * 1000))}ms"


@dataclass(frozen=True)
class SystemQueries:
    """Builds the PromQL of every catalog signal for one system.

    `job` selects the system's series; `extra_matchers` are further matchers without braces,
    such as `cluster="prod"`. `more_jobs` selects further jobs with the same names and
    matchers in the same expressions (see `grouped`).
    """

    job: str
    names: MetricNames
    extra_matchers: str = ""
    more_jobs: tuple[str, ...] = ()

    def selector(self, metric: str, *matchers: str) -> str:
        """Return `metric{job="...",<extra>,<matchers>}`."""
        parts = [job_matcher((self.job, *self.more_jobs))]
        if self.extra_matchers:
            parts.append(self.extra_matchers)
        parts.extend(matchers)
        return f"{metric}{{{','.join(parts)}}}"

    def _rate(self, metric: str, window: float, *matchers: str) -> str:
        return f"sum(rate({self.selector(metric, *matchers)}[{duration(window)}])) by (job)"

    def signal(self, signal: str, window: float, step: float) -> str:
        """Return the PromQL of `signal` with rate window `window` and step `step` (seconds)."""
        names = self.names
        if signal == "requests_per_second":
            return self._rate(names.requests, window)
        if signal == "error_rate":
            errors = self._rate(
                names.requests, window, f"{names.error_label}=~{quote(names.error_pattern)}"
            )
            requests = self._rate(names.requests, window)
            # No 5xx series yet means no errors. Without traffic both rates are 0, and the floor
            # on the divisor makes 0 / 0 read 0 while every real rate divides exactly. Prometheus
            # evaluates each repeated subexpression again, so the request rate appears twice, not
            # three times. Every operand is one series per job, so `or` and `/` match job by job.
            return f"({errors} or {requests} * 0) / clamp_min({requests}, {RATE_FLOOR})"
        if signal == "average_latency_ms":
            total = self._rate(names.duration + "_sum", window)
            count = self._rate(names.duration + "_count", window)
            return f"1000 * {total} / ({count} > 0)"
        if signal == "p95_latency_ms":
            buckets = self.selector(names.duration + "_bucket")
            return (
                f"1000 * histogram_quantile(0.95, sum by (job, le) "
                f"(rate({buckets}[{duration(window)}])))"
            )
        if signal == "active_connections":
            return f"sum({self.selector(names.in_flight)}) by (job)"
        if signal == "cpu_usage":
            return self._rate(names.cpu, window)
        if signal == "memory_usage":
            return f"sum({self.selector(names.memory)}) by (job)"
        if signal == "cost_per_hour":
            return f"3600 * {self._rate(names.cost, window)}"
        if signal == "up":
            return self.up_share(step)
        raise KeyError(f"unknown signal {signal!r}")

    def up_share(self, span: float) -> str:
        """Return the share of successful scrapes over the last `span` seconds."""
        return f"avg(avg_over_time({self.selector('up')}[{duration(span)}])) by (job)"

    def last_scrape(self) -> str:
        """Return the time of the latest scrape (Prometheus stores `up` for every scrape)."""
        return f"max(timestamp({self.selector('up')})) by (job)"

    def last_success(self, span: float, resolution: float) -> str:
        """Return the time of the latest successful scrape within the last `span` seconds."""
        up = self.selector("up")
        return (
            f"max(max_over_time((timestamp({up}) and {up} == 1)"
            f"[{duration(span)}:{duration(resolution)}])) by (job)"
        )

    def process_start(self) -> str:
        """Return the latest process start time among the system's instances."""
        return f"max({self.selector(self.names.start_time)}) by (job)"


@dataclass(frozen=True)
class Arm:
    """One expression of a grouped query and the system each of its job values belongs to."""

    promql: str
    systems_by_job: Mapping[str, str]


@dataclass(frozen=True)
class GroupedQuery:
    """One query for several systems: its arms joined with `or`. The arms select disjoint job
    values, so each series of the result belongs to the system of its `job` label."""

    arms: tuple[Arm, ...]

    @property
    def promql(self) -> str:
        if len(self.arms) == 1:
            return self.arms[0].promql
        return " or ".join(f"({arm.promql})" for arm in self.arms)

    @property
    def systems(self) -> tuple[str, ...]:
        return tuple(system for arm in self.arms for system in arm.systems_by_job.values())

    def system_of(self, job: str | None) -> str | None:
        """Return the system whose series carry `job`, None when no system of the query does."""
        if job is None:
            return None
        for arm in self.arms:
            if job in arm.systems_by_job:
                return arm.systems_by_job[job]
        return None


def grouped(
    queries: Mapping[str, SystemQueries], build: Callable[[SystemQueries], str]
) -> list[GroupedQuery]:
    """Return the queries that evaluate `build` for every system of `queries` (system id ->
    its queries), usually one.

    Systems whose expressions are equal apart from the job share one selector; the groups'
    expressions are joined with `or`. Systems that share a job go into separate queries, since
    their series could not be distinguished.
    """
    rounds: list[dict[str, str]] = []
    for system, system_queries in queries.items():
        for jobs in rounds:
            if system_queries.job not in jobs:
                jobs[system_queries.job] = system
                break
        else:
            rounds.append({system_queries.job: system})

    result = []
    for jobs in rounds:
        groups: dict[str, list[str]] = {}
        for system in jobs.values():
            anonymous = replace(queries[system], job=_JOB_PLACEHOLDER, more_jobs=())
            groups.setdefault(build(anonymous), []).append(system)
        arms = []
        for systems in groups.values():
            first = queries[systems[0]]
            shared = replace(first, more_jobs=tuple(queries[s].job for s in systems[1:]))
            arms.append(Arm(build(shared), {queries[s].job: s for s in systems}))
        result.append(GroupedQuery(tuple(arms)))
    return result
