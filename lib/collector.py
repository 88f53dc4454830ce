"""The embedded collector: scrape every target concurrently each interval and write to the store.

It runs in a daemon thread beside the pages, so a page render never waits on a scrape. A target
that keeps failing is scraped less often: after `BACKOFF_AFTER_FAILURES` failures in a row the
gap doubles up to `MAX_BACKOFF_INTERVALS` intervals, and the first success restores the normal
interval. The first failures keep the normal interval so that a short outage is measured exactly.
While a failing target waits, each skipped interval is recorded as down, so availability counts
time, not attempts.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field

import httpx

from lib.config import Settings, TargetConfig
from lib.errors import FetchError, FetchFailure, redact_url
from lib.exposition import ParseResult, Sample, parse
from lib.http import FetchPolicy, Response, fetch
from lib.signals import MetricNames, aggregate
from lib.store import AggregateRow, Store, TargetRecord

log = logging.getLogger(__name__)

BACKOFF_AFTER_FAILURES = 4
MAX_BACKOFF_INTERVALS = 8
# A failing target is logged at WARNING once, then at most once per this many seconds.
FAILURE_LOG_INTERVAL_S = 300.0
PRUNE_EVERY_S = 600.0
# 200,000 covers 30 targets of 5,000 series, at a few hundred bytes per entry.
MAX_CACHED_LABEL_SETS = 200_000

Clock = Callable[[], float]


@dataclass
class _TargetState:
    target: TargetConfig
    names: MetricNames
    seen_success: bool = False
    consecutive_failures: int = 0
    next_scrape_at: float = 0.0
    last_success_at: float | None = None
    last_failure_logged_at: float | None = None
    last_drop_logged_at: float | None = None


@dataclass
class ScrapeOutcome:
    """The result of one scrape of one target."""

    system: str
    ts: float
    duration: float
    result: ParseResult | None = None
    error: FetchError | None = None
    samples: list[Sample] = field(default_factory=list)


class Collector:
    """Scrape `settings.targets` into `store`; `client` and `clock` are injectable for tests."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        client: httpx.Client,
        clock: Clock = time.time,
        after_cycle: Callable[[float], None] | None = None,
    ) -> None:
        self.settings = settings
        # Called with the cycle's time once its samples are written (the alert rules).
        self.after_cycle = after_cycle
        self.store = store
        self.client = client
        self.clock = clock
        self.policy = FetchPolicy(
            connect_timeout=min(2.0, settings.scrape_timeout),
            read_timeout=settings.scrape_timeout,
            deadline=settings.scrape_timeout,
        )
        self._states = {
            t.system: _TargetState(t, MetricNames.for_prefix(t.metric_prefix))
            for t in settings.targets
        }
        self._series: dict[str, dict[tuple[str, str], int]] = {
            t.system: store.series_ids(t.system) for t in settings.targets
        }
        self._counters = store.counter_states()
        for record in store.targets():
            # A restart continues where the last run stopped: counters already have a base.
            if record.system in self._states and record.last_success_at is not None:
                self._states[record.system].seen_success = True
                self._states[record.system].last_success_at = record.last_success_at
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, len(settings.targets)), thread_name_prefix="scrape"
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._before: Callable[[], object] | None = None
        self._last_prune = 0.0
        self._label_keys: dict[tuple[tuple[str, str], ...], str] = {}
        self.cycles = 0
        # True while the task given to start() runs (the simulated history's backfill): the
        # store holds only part of the recent history until it returns.
        self.preparing = False

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, before: Callable[[], object] | None = None) -> None:
        """Start scraping in a daemon thread, one cycle per scrape interval, after running
        `before` (such as a backfill) in the same thread."""
        if self._thread is not None:
            return
        self._before = before
        self._thread = threading.Thread(target=self._run, name="collector", daemon=True)
        self._thread.start()
        log.info(
            "collector started: %d targets every %g s into %s",
            len(self._states), self.settings.scrape_interval, self.store.path,
        )

    def stop(self) -> None:
        """Stop after the current cycle and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.settings.scrape_timeout + 5)
            self._thread = None
        self._pool.shutdown(wait=False, cancel_futures=True)
        log.info("collector stopped after %d cycles", self.cycles)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        if self._before is not None:
            self.preparing = True
            try:
                self._before()
            except Exception:
                log.exception("preparing the collector failed; scraping without it")
            finally:
                self.preparing = False
        interval = self.settings.scrape_interval
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.scrape_once()
            except Exception:
                if self._stop.is_set():
                    # stop() shut the pool down during this cycle, so only this cycle is lost.
                    log.debug("scrape cycle interrupted by stop()", exc_info=True)
                    break
                # The loop must outlive any bug in one cycle; the next cycle tries again.
                log.exception("scrape cycle failed; retrying next interval")
            self._stop.wait(max(0.0, interval - (time.monotonic() - started)))

    # -- one cycle -----------------------------------------------------------------------------

    def scrape_once(self, now: float | None = None) -> list[ScrapeOutcome]:
        """Scrape every due target concurrently and write the results; return the outcomes."""
        ts = self.clock() if now is None else now
        due = [s for s in self._states.values() if s.next_scrape_at <= ts]
        waiting = [
            s.target.system for s in self._states.values()
            if s.next_scrape_at > ts and s.consecutive_failures
        ]
        started = time.monotonic()
        futures = {self._pool.submit(self._fetch, state.target): state.target for state in due}
        # The pool's threads only wait on the network. Bodies are parsed here, each as soon as
        # it arrives, because parsing in 30 threads at once is slower: they would only take
        # the interpreter lock from each other.
        by_system: dict[str, ScrapeOutcome] = {}
        for future in as_completed(futures):
            target = futures[future]
            fetched, fetch_seconds = future.result()
            if isinstance(fetched, FetchError):
                outcome = ScrapeOutcome(target.system, ts, fetch_seconds, error=fetched)
            else:
                # The scrape's duration is its fetch plus its own parse, not the wait in line.
                began = time.monotonic() - fetch_seconds
                outcome = self._parse(target, ts, began, fetched.body, fetched.content_type)
            by_system[target.system] = outcome
        outcomes = [by_system[state.target.system] for state in due]
        self._record(outcomes, waiting, ts)
        self.cycles += 1
        self._run_after_cycle(ts)

        up = sum(1 for o in outcomes if o.error is None)
        # A target waiting out its backoff is down too, so the summary counts it.
        watched = len(outcomes) + len(waiting)
        backing_off = f" ({len(waiting)} waiting out a backoff)" if waiting else ""
        # No target due and none backing off happens only right after history was loaded.
        log.log(
            logging.INFO if watched else logging.DEBUG,
            "scrape cycle: %d of %d targets up%s, %d samples, %.3f s",
            up, watched, backing_off, sum(len(o.samples) for o in outcomes),
            time.monotonic() - started,
        )
        self._prune_if_due(ts)
        return outcomes

    def _run_after_cycle(self, ts: float) -> None:
        if self.after_cycle is None:
            return
        try:
            self.after_cycle(ts)
        except Exception:
            log.exception("post-scrape step failed; the cycle's samples are stored")

    def _prune_if_due(self, ts: float) -> None:
        if ts - self._last_prune >= PRUNE_EVERY_S:
            storage = self.settings.storage
            self.store.prune(ts, storage.raw_retention, storage.rollup_retention)
            self._last_prune = ts

    def ingest(self, ts: float, bodies: Mapping[str, bytes | None]) -> None:
        """Record one cycle of bodies fetched elsewhere (system id -> exposition body, or None
        for a failed scrape) at `ts`, through the same parsing, correction and storage as a
        scrape. Backfills and benchmarks use it to load history without HTTP."""
        outcomes = []
        for system, body in bodies.items():
            target = self._states[system].target
            if body is None:
                error = FetchError(target.url, FetchFailure.HTTP_STATUS, "was down", 503)
                outcomes.append(ScrapeOutcome(system, ts, 0.0, error=error))
                continue
            outcomes.append(self._parse(target, ts, time.monotonic(), body, ""))
        self._record(outcomes, [], ts)
        # Alert rules see ingested history as they see live scrapes, so a backfill also fires
        # and resolves the alerts it contains.
        self._run_after_cycle(ts)
        # Pruning as a live collector does keeps a long history within the retention periods.
        self._prune_if_due(ts)

    def _fetch(self, target: TargetConfig) -> tuple[Response | FetchError, float]:
        """Fetch one target's body. Return the response or the failure, and the seconds the
        fetch took."""
        started = time.monotonic()
        try:
            response = fetch(self.client, target.url, policy=self.policy,
                             headers=_scrape_headers(target))
        except FetchError as exc:
            return exc, time.monotonic() - started
        return response, time.monotonic() - started

    def _parse(
        self, target: TargetConfig, ts: float, started: float, body: bytes, content_type: str
    ) -> ScrapeOutcome:
        try:
            result = parse(target.url, body, content_type)
        except FetchError as exc:
            return ScrapeOutcome(target.system, ts, time.monotonic() - started, error=exc)
        except Exception as exc:  # noqa: BLE001 - any parser surprise is a bad body, not a crash
            error = FetchError(
                target.url, FetchFailure.NOT_METRICS, f"sent a body that could not be read ({exc})"
            )
            return ScrapeOutcome(target.system, ts, time.monotonic() - started, error=error)
        return ScrapeOutcome(
            target.system, ts, time.monotonic() - started, result=result, samples=result.samples
        )

    def _record(self, outcomes: Sequence[ScrapeOutcome], waiting: Sequence[str], ts: float) -> None:
        rows: list[tuple[int, float, float]] = []
        counter_updates: list[tuple[int, float, float]] = []
        aggregates = [AggregateRow(system, ts, False, {}, None) for system in waiting]
        records: list[TargetRecord] = []

        for outcome in outcomes:
            state = self._states[outcome.system]
            if outcome.error is None:
                adjusted = self._adjust(state, outcome, rows, counter_updates)
                values, buckets = aggregate(state.names, adjusted)
                aggregates.append(AggregateRow(outcome.system, ts, True, values, buckets))
                self._on_success(state, ts)
                if outcome.result is not None and outcome.result.dropped:
                    self._log_dropped(state, outcome.result, ts)
            else:
                aggregates.append(AggregateRow(outcome.system, ts, False, {}, None))
                self._on_failure(state, outcome.error, ts)
            records.append(self._target_record(state, outcome))

        self.store.write_cycle(rows, counter_updates, aggregates, records)

    def _adjust(
        self,
        state: _TargetState,
        outcome: ScrapeOutcome,
        rows: list[tuple[int, float, float]],
        counter_updates: list[tuple[int, float, float]],
    ) -> list[tuple[str, tuple[tuple[str, str], ...], float]]:
        """Resolve series ids, correct counters for resets, and queue samples for writing.

        A counter's stored value is its increase since first seen. A drop in the raw value is a
        reset, and the new raw value counts as increase, as Prometheus's rate() treats it. A
        series that first appears after the target's first successful scrape was created since
        the last scrape, so its whole value counts.
        """
        ids = self._series[outcome.system]
        keys = [(s.name, self._labels_json(s.labels)) for s in outcome.samples]
        new = {
            (*key, sample.cumulative)
            for key, sample in zip(keys, outcome.samples, strict=True)
            if key not in ids
        }
        if new:
            ids = self.store.create_series(outcome.system, new)
            self._series[outcome.system] = ids

        # The reset correction is inlined here because this loop runs once per sample.
        counters = self._counters
        seen_before = state.seen_success
        ts = outcome.ts
        adjusted: list[tuple[str, tuple[tuple[str, str], ...], float]] = []
        for key, sample in zip(keys, outcome.samples, strict=True):
            series_id = ids[key]
            value = sample.value
            if sample.cumulative:
                previous = counters.get(series_id)
                if previous is None:
                    acc = value if seen_before else 0.0
                else:
                    last_raw, acc = previous
                    acc += value - last_raw if value >= last_raw else value
                counters[series_id] = (value, acc)
                counter_updates.append((series_id, value, acc))
                value = acc
            rows.append((series_id, ts, value))
            adjusted.append((sample.name, sample.labels, value))
        return adjusted

    def _labels_json(self, labels: tuple[tuple[str, str], ...]) -> str:
        # Label sets repeat every scrape, so their JSON keys are built once (bounded in size).
        text = self._label_keys.get(labels)
        if text is None:
            text = _labels_json(labels)
            if len(self._label_keys) < MAX_CACHED_LABEL_SETS:
                self._label_keys[labels] = text
        return text

    def _on_success(self, state: _TargetState, ts: float) -> None:
        if state.consecutive_failures:
            log.info(
                "target %s is up again after %d failed scrapes",
                state.target.system, state.consecutive_failures,
            )
        state.seen_success = True
        state.consecutive_failures = 0
        state.last_success_at = ts
        state.last_failure_logged_at = None
        state.next_scrape_at = ts + self.settings.scrape_interval * 0.5

    def _on_failure(self, state: _TargetState, error: FetchError, ts: float) -> None:
        state.consecutive_failures += 1
        doublings = max(0, state.consecutive_failures - BACKOFF_AFTER_FAILURES + 1)
        backoff = min(2**doublings, MAX_BACKOFF_INTERVALS) if doublings else 1
        state.next_scrape_at = ts + self.settings.scrape_interval * (backoff - 0.5)
        logged = state.last_failure_logged_at
        if logged is None or ts - logged >= FAILURE_LOG_INTERVAL_S:
            log.warning(
                "scrape of %s (%s) failed %d time(s) in a row: %s",
                state.target.system, redact_url(state.target.url), state.consecutive_failures,
                error,
            )
            state.last_failure_logged_at = ts

    def _log_dropped(self, state: _TargetState, result: ParseResult, ts: float) -> None:
        logged = state.last_drop_logged_at
        if logged is not None and ts - logged < FAILURE_LOG_INTERVAL_S:
            return
        counts = ", ".join(f"{count} {reason}" for reason, count in sorted(result.dropped.items()))
        log.warning("scrape of %s (%s) dropped samples: %s",
                    state.target.system, redact_url(state.target.url), counts)
        state.last_drop_logged_at = ts

    def _target_record(self, state: _TargetState, outcome: ScrapeOutcome) -> TargetRecord:
        return TargetRecord(
            system=state.target.system,
            url=state.target.url,
            health="up" if outcome.error is None else "down",
            last_scrape_at=outcome.ts,
            last_success_at=state.last_success_at,
            scrape_duration=outcome.duration,
            samples=len(outcome.samples) if outcome.error is None else 0,
            last_error=outcome.error.describe(state.target.display_name) if outcome.error else None,
            consecutive_failures=state.consecutive_failures,
            next_scrape_at=state.next_scrape_at + self.settings.scrape_interval * 0.5,
        )


def _scrape_headers(target: TargetConfig) -> dict[str, str]:
    headers = {"Accept": "text/plain;version=0.0.4"}
    if target.bearer_token:
        headers["Authorization"] = f"Bearer {target.bearer_token}"
    return headers


def _labels_json(labels: tuple[tuple[str, str], ...]) -> str:
    return json.dumps(dict(labels), separators=(",", ":"), sort_keys=True)
