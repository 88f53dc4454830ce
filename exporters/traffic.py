"""Random traffic of one system over a block of 1 s ticks, drawn with numpy in whole arrays.

A `TrafficModel` turns per-tick conditions (load, 5xx ratio, slowdown, outage) into per-tick
metric increments for every declared series of `exporters.metrics`. Each model owns one numpy
`Generator` and draws from it in a fixed order, block after block, so the same seed and the
same blocks give the same numbers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from exporters import catalog
from exporters.catalog import METRIC_PREFIXES, SystemProfile
from exporters.metrics import (
    DEFAULT_BUCKETS,
    MICROSECONDS,
    NANOSECONDS,
    FloatArray,
    IntArray,
    MetricUpdate,
)

BoolArray = npt.NDArray[np.bool_]

# Maximum simulated request and workflow durations, like server-side timeouts.
MAX_LATENCY_SECONDS = 120.0
MAX_WORKFLOW_SECONDS = 3 * 3600.0
PAGE_BYTES = 4096
# Latency grows by this share of the load above the daily mean (load factor 1).
LOAD_LATENCY_FACTOR = 0.25
WORKFLOW_BASE_FAILURE = catalog.WORKFLOW_STATUS_SHARES[1]


@dataclass(frozen=True)
class TickConditions:
    """What the schedule decides for one system over a block of consecutive ticks.

    Arrays have one entry per tick. `times` are epoch seconds and `up` is False during an
    outage. `load` is the daily load factor (1 is the mean), `error_ratio` the 5xx ratio and
    `slowdown` the latency multiplier. `uptime` is the seconds since the current process started.
    `restart_times` maps the index of each tick where a new process starts to its start time.
    """

    first_tick: int
    times: FloatArray
    up: BoolArray
    load: FloatArray
    error_ratio: FloatArray
    slowdown: FloatArray
    uptime: FloatArray
    restart_times: dict[int, float] = field(default_factory=dict)

    @property
    def length(self) -> int:
        """Number of ticks."""
        return len(self.times)


@dataclass
class Block:
    """Per-tick metric increments and gauge values for one block of ticks.

    Counter arrays have shape (ticks, series), histogram bucket arrays (ticks, series, buckets)
    with per-tick counts that are not cumulative, and gauge arrays (ticks, series).
    """

    conditions: TickConditions
    counters: dict[str, IntArray] = field(default_factory=dict)
    histograms: dict[str, tuple[IntArray, IntArray]] = field(default_factory=dict)
    gauges: dict[str, FloatArray] = field(default_factory=dict)

    def update(self, begin: int, end: int) -> MetricUpdate:
        """Return the summed increments of ticks [begin, end) and the gauges of the last up tick.

        Gauges are left out when no tick in the range is up, so an outage freezes them.
        """
        update = MetricUpdate()
        for name, per_tick in self.counters.items():
            update.counters[name] = per_tick[begin:end].sum(axis=0)
        for name, (bucket_counts, sums) in self.histograms.items():
            update.histograms[name] = (
                bucket_counts[begin:end].sum(axis=0),
                sums[begin:end].sum(axis=0),
            )

        up_indices = np.flatnonzero(self.conditions.up[begin:end])
        if up_indices.size:
            last_up = begin + int(up_indices[-1])
            for name, values in self.gauges.items():
                update.gauges[name] = values[last_up]
        return update


@dataclass(frozen=True)
class HttpTraffic:
    """HTTP requests of one block: counts by (tick, route, response class) and expected rates."""

    classes: IntArray
    route_rates: FloatArray
    latency_scale: FloatArray

    @property
    def requests(self) -> IntArray:
        """Requests per tick."""
        return np.asarray(self.classes.sum(axis=(1, 2)), dtype=np.int64)

    def successes(self, route: int) -> IntArray:
        """Requests per tick on `route` that got its success code."""
        return np.asarray(self.classes[:, route, 0], dtype=np.int64)

    def server_errors(self, route: int) -> IntArray:
        """Requests per tick on `route` that got a 5xx code."""
        first_5xx = 1 + len(catalog.CLIENT_ERROR_CODES)
        return np.asarray(self.classes[:, route, first_5xx:].sum(axis=1), dtype=np.int64)


def _normalized(weights: list[float] | tuple[float, ...]) -> FloatArray:
    array = np.asarray(weights, dtype=np.float64)
    return np.asarray(array / array.sum(), dtype=np.float64)


def bucket_bounds_ns(buckets: tuple[float, ...]) -> IntArray:
    """Return the finite histogram bounds in integer nanoseconds."""
    return np.array([round(bound * NANOSECONDS) for bound in buckets[:-1]], dtype=np.int64)


def sample_durations(
    rng: np.random.Generator,
    counts: IntArray,
    medians: FloatArray,
    sigmas: FloatArray,
    buckets: tuple[float, ...],
    max_seconds: float = MAX_LATENCY_SECONDS,
) -> tuple[IntArray, IntArray]:
    """Draw one log-normal duration per event and bin the draws like a Prometheus histogram.

    `counts` has shape (ticks, series). `medians` (seconds) broadcasts to it and `sigmas` to
    its series axis. Durations are rounded to whole nanoseconds before binning, so the bucket
    of a draw and its share of the sum agree. Returns bucket counts (ticks, series, buckets),
    not cumulative, and duration sums in nanoseconds (ticks, series).
    """
    ticks, series = counts.shape
    cells = ticks * series
    flat_counts = counts.ravel()
    cell = np.repeat(np.arange(cells), flat_counts)

    log_median = np.log(np.broadcast_to(medians, counts.shape)).ravel()[cell]
    sigma = np.broadcast_to(sigmas, counts.shape).ravel()[cell]
    seconds = np.exp(log_median + sigma * rng.standard_normal(cell.size))
    nanoseconds = np.rint(np.minimum(seconds, max_seconds) * NANOSECONDS).astype(np.int64)

    bucket_count = len(buckets)
    bucket = np.searchsorted(bucket_bounds_ns(buckets), nanoseconds, side="left")
    bucket_counts = np.bincount(cell * bucket_count + bucket, minlength=cells * bucket_count)
    # Sums stay exact because float64 represents every integer up to 2**53 ns (104 days).
    sums = np.bincount(cell, weights=nanoseconds, minlength=cells)
    return (
        bucket_counts.reshape(ticks, series, bucket_count).astype(np.int64),
        sums.reshape(ticks, series).astype(np.int64),
    )


def lognormal_mean(median: FloatArray | float, sigma: FloatArray | float) -> FloatArray:
    """Return the mean of a log-normal distribution from its median and log-space sigma."""
    return np.asarray(median * np.exp(np.square(sigma) / 2.0), dtype=np.float64)


class TrafficModel(ABC):
    """Traffic of one system: HTTP, process resources and AI cost, plus domain metrics."""

    def __init__(
        self,
        profile: SystemProfile,
        rng: np.random.Generator,
        base_rps: float,
        base_error_ratio: float,
    ) -> None:
        self.profile = profile
        self.rng = rng
        self.base_rps = base_rps
        self.base_error_ratio = base_error_ratio
        self.prefix = METRIC_PREFIXES[profile.system]
        self._route_weights = _normalized([route.weight for route in profile.routes])
        self._route_medians = np.array([route.median_seconds for route in profile.routes])
        self._route_sigmas = np.array([route.sigma for route in profile.routes])

    def generate(self, conditions: TickConditions) -> Block:
        """Draw the increments of every series for the ticks in `conditions`."""
        block = Block(conditions)
        http = self._generate_http(conditions, block)
        self._generate_process(conditions, http, block)
        self._generate_domain(conditions, http, block)
        return block

    def _generate_http(self, conditions: TickConditions, block: Block) -> HttpTraffic:
        rng = self.rng
        up = conditions.up.astype(np.float64)
        total_rate = self.base_rps * conditions.load * up
        route_rates = total_rate[:, None] * self._route_weights[None, :]
        counts = rng.poisson(route_rates)

        class_shares = _response_class_shares(conditions.error_ratio)
        classes = rng.multinomial(counts, class_shares[:, None, :]).astype(np.int64)
        block.counters["http_requests_total"] = classes.reshape(conditions.length, -1)

        load_effect = 1.0 + LOAD_LATENCY_FACTOR * np.maximum(conditions.load - 1.0, 0.0)
        latency_scale = conditions.slowdown * load_effect
        medians = self._route_medians[None, :] * latency_scale[:, None]
        block.histograms["http_request_duration_seconds"] = sample_durations(
            rng, counts.astype(np.int64), medians, self._route_sigmas, DEFAULT_BUCKETS
        )

        # Little's law: requests in flight = arrival rate x mean time in the system.
        busy = (route_rates * lognormal_mean(medians, self._route_sigmas[None, :])).sum(axis=1)
        block.gauges["http_requests_in_flight"] = rng.poisson(busy).astype(np.float64)[:, None]
        return HttpTraffic(classes, route_rates, latency_scale)

    def _generate_process(
        self, conditions: TickConditions, http: HttpTraffic, block: Block
    ) -> None:
        rng = self.rng
        process = self.profile.process
        length = conditions.length

        cores = process.base_cores + process.cpu_seconds_per_request * http.requests
        noise = np.clip(1.0 + 0.05 * rng.standard_normal(length), 0.5, 1.5)
        cpu = np.rint(cores * noise * conditions.up * MICROSECONDS).astype(np.int64)
        block.counters["process_cpu_seconds_total"] = cpu[:, None]

        phase = np.mod(conditions.uptime, process.memory_period_seconds)
        sawtooth = 0.85 + 0.30 * phase / process.memory_period_seconds
        load_effect = 1.0 + 0.03 * (conditions.load - 1.0)
        jitter = 1.0 + 0.004 * rng.standard_normal(length)
        memory = process.memory_bytes * sawtooth * load_effect * jitter
        pages = np.floor(memory / PAGE_BYTES)
        block.gauges["process_resident_memory_bytes"] = (pages * PAGE_BYTES)[:, None]

    @abstractmethod
    def _generate_domain(
        self, conditions: TickConditions, http: HttpTraffic, block: Block
    ) -> None:
        """Draw the system's own metrics from the HTTP traffic of the block."""

    def _token_usage(
        self, calls: IntArray, models: tuple[catalog.Model, ...]
    ) -> tuple[IntArray, IntArray]:
        """Draw input and output tokens of `calls` (ticks, models) and price them.

        Returns tokens (ticks, models x 2 types) in series order and cost in nano-US dollars
        (ticks, models).
        """
        input_means = np.array([model.input_tokens for model in models])
        output_means = np.array([model.output_tokens for model in models])
        input_tokens = self.rng.poisson(calls * input_means[None, :]).astype(np.int64)
        output_tokens = self.rng.poisson(calls * output_means[None, :]).astype(np.int64)

        input_prices = np.array([model.input_price_nano_usd for model in models], dtype=np.int64)
        output_prices = np.array([model.output_price_nano_usd for model in models], dtype=np.int64)
        cost = input_tokens * input_prices[None, :] + output_tokens * output_prices[None, :]
        tokens = np.stack([input_tokens, output_tokens], axis=2).reshape(len(calls), -1)
        return tokens, cost


def _response_class_shares(error_ratio: FloatArray) -> FloatArray:
    """Return per-tick probabilities of the response classes: success, 4xx codes, 5xx codes."""
    client_ratio = catalog.CLIENT_ERROR_RATIO * (1.0 - error_ratio)
    client = client_ratio[:, None] * np.array(catalog.CLIENT_ERROR_SHARES)[None, :]
    server = error_ratio[:, None] * np.array(catalog.SERVER_ERROR_SHARES)[None, :]
    success = 1.0 - client.sum(axis=1) - server.sum(axis=1)
    shares = np.concatenate([np.clip(success, 0.0, 1.0)[:, None], client, server], axis=1)
    return np.asarray(shares / shares.sum(axis=1, keepdims=True), dtype=np.float64)


class AutomatrixTraffic(TrafficModel):
    """Workflow executions started by the run and webhook routes, and their AI calls."""

    def _generate_domain(
        self, conditions: TickConditions, http: HttpTraffic, block: Block
    ) -> None:
        rng = self.rng
        templates = catalog.WORKFLOW_TEMPLATES
        template_weights = _normalized([template.weight for template in templates])
        started = sum(http.successes(route) for route in catalog.AUTOMATRIX_TRIGGER_ROUTES)
        executions = rng.multinomial(np.asarray(started), template_weights).astype(np.int64)

        statuses = _workflow_status_shares(conditions.error_ratio - self.base_error_ratio)
        by_status = rng.multinomial(executions, statuses[:, None, :]).astype(np.int64)
        block.counters["autmatrix_workflow_executions_total"] = by_status.reshape(
            conditions.length, -1
        )

        medians = np.array([template.median_seconds for template in templates])
        sigmas = np.array([template.sigma for template in templates])
        scaled_medians = medians[None, :] * conditions.slowdown[:, None]
        bucket_counts, sums = sample_durations(
            rng, executions, scaled_medians, sigmas,
            catalog.WORKFLOW_DURATION_BUCKETS, MAX_WORKFLOW_SECONDS,
        )
        block.histograms["autmatrix_workflow_duration_seconds"] = (
            bucket_counts.sum(axis=1, keepdims=True),
            sums.sum(axis=1, keepdims=True),
        )

        trigger_rate = http.route_rates[:, list(catalog.AUTOMATRIX_TRIGGER_ROUTES)].sum(axis=1)
        mean_duration = (template_weights[None, :] * lognormal_mean(scaled_medians, sigmas)).sum(1)
        active = rng.poisson(trigger_rate * mean_duration).astype(np.float64)
        block.gauges["autmatrix_active_workflows"] = active[:, None]
        self._generate_ai_calls(executions.sum(axis=1), block)

    def _generate_ai_calls(self, executions: IntArray, block: Block) -> None:
        models = catalog.AUTOMATRIX_MODELS
        calls_per_tick = self.rng.poisson(catalog.AUTOMATRIX_AI_CALLS_PER_EXECUTION * executions)
        model_weights = _normalized([model.weight for model in models])
        calls = self.rng.multinomial(calls_per_tick, model_weights).astype(np.int64)
        tokens, cost = self._token_usage(calls, models)
        block.counters["autmatrix_ai_requests_total"] = calls
        block.counters["autmatrix_ai_tokens_total"] = tokens
        block.counters[f"{self.prefix}ai_cost_usd_total"] = cost


def _workflow_status_shares(extra_error_ratio: FloatArray) -> FloatArray:
    """Return per-tick shares of success, failed and cancelled. 5xx bursts add failures."""
    failed = np.clip(WORKFLOW_BASE_FAILURE + np.maximum(extra_error_ratio, 0.0), 0.0, 0.9)
    cancelled = np.full_like(failed, catalog.WORKFLOW_STATUS_SHARES[2])
    success = 1.0 - failed - cancelled
    return np.stack([success, failed, cancelled], axis=1)


class RelaycoreTraffic(TrafficModel):
    """Upstream AI calls for every chat and embeddings request that was not rejected with 4xx."""

    def _generate_domain(
        self, conditions: TickConditions, http: HttpTraffic, block: Block
    ) -> None:
        rng = self.rng
        routed = (
            (catalog.RELAYCORE_CHAT_ROUTE, catalog.RELAYCORE_CHAT_MODELS),
            (catalog.RELAYCORE_EMBEDDINGS_ROUTE, catalog.RELAYCORE_EMBEDDING_MODELS),
        )
        successes: list[IntArray] = []
        errors: list[IntArray] = []
        for route, route_models in routed:
            weights = _normalized([model.weight for model in route_models])
            successes.append(rng.multinomial(http.successes(route), weights).astype(np.int64))
            errors.append(rng.multinomial(http.server_errors(route), weights).astype(np.int64))
        success_calls = np.concatenate(successes, axis=1)
        error_calls = np.concatenate(errors, axis=1)

        requests = np.stack([success_calls, error_calls], axis=2)
        block.counters["relaycore_ai_requests_total"] = requests.reshape(conditions.length, -1)
        self._generate_routing_latency(success_calls + error_calls, conditions, block)

        tokens, cost = self._token_usage(success_calls, catalog.relaycore_models())
        block.counters["relaycore_ai_tokens_total"] = tokens
        block.counters[f"{self.prefix}ai_cost_usd_total"] = cost

    def _generate_routing_latency(
        self, calls: IntArray, conditions: TickConditions, block: Block
    ) -> None:
        models = catalog.relaycore_models()
        medians = np.array([model.median_seconds for model in models])
        sigmas = np.array([model.sigma for model in models])
        scaled_medians = medians[None, :] * conditions.slowdown[:, None]
        bucket_counts, sums = sample_durations(
            self.rng, calls, scaled_medians, sigmas, DEFAULT_BUCKETS
        )

        provider_names = catalog.providers(models)
        membership = np.zeros((len(models), len(provider_names)), dtype=np.int64)
        for index, model in enumerate(models):
            membership[index, provider_names.index(model.provider)] = 1
        block.histograms["relaycore_routing_latency_seconds"] = (
            np.einsum("tmb,mp->tpb", bucket_counts, membership),
            sums @ membership,
        )


class NeuroweaverTraffic(TrafficModel):
    """Inferences from the infer route and training jobs from the create-job route.

    Training jobs run for minutes to hours, so running jobs carry over from block to block.
    An outage ends every running job without an outcome, because the process that tracked it
    is gone.
    """

    def __init__(
        self,
        profile: SystemProfile,
        rng: np.random.Generator,
        base_rps: float,
        base_error_ratio: float,
    ) -> None:
        super().__init__(profile, rng, base_rps, base_error_ratio)
        self._running_end_ticks = np.zeros(0, dtype=np.int64)
        self._running_outcomes = np.zeros(0, dtype=np.int64)

    def _generate_domain(
        self, conditions: TickConditions, http: HttpTraffic, block: Block
    ) -> None:
        rng = self.rng
        models = catalog.NEUROWEAVER_MODELS
        weights = _normalized([model.weight for model in models])
        inferences = rng.multinomial(
            http.successes(catalog.NEUROWEAVER_INFER_ROUTE), weights
        ).astype(np.int64)
        block.counters["neuroweaver_model_inferences_total"] = inferences

        medians = np.array([model.median_seconds for model in models])
        sigmas = np.array([model.sigma for model in models])
        block.histograms["neuroweaver_inference_latency_seconds"] = sample_durations(
            rng, inferences, medians[None, :] * http.latency_scale[:, None], sigmas,
            DEFAULT_BUCKETS,
        )

        unit_costs = np.array([model.cost_nano_usd for model in models], dtype=np.int64)
        block.counters[f"{self.prefix}ai_cost_usd_total"] = inferences * unit_costs[None, :]
        self._generate_training(conditions, http, block)

    def _generate_training(
        self, conditions: TickConditions, http: HttpTraffic, block: Block
    ) -> None:
        length = conditions.length
        started = http.successes(catalog.NEUROWEAVER_TRAINING_ROUTE)
        start_index = np.repeat(np.arange(length), started)
        seconds = self.rng.lognormal(
            np.log(catalog.TRAINING_MEDIAN_SECONDS), catalog.TRAINING_SIGMA, start_index.size
        )
        new_end = start_index + np.maximum(np.ceil(seconds), 1).astype(np.int64)
        new_outcomes = self.rng.choice(
            len(catalog.TRAINING_OUTCOMES), size=start_index.size,
            p=_normalized(catalog.TRAINING_OUTCOME_SHARES),
        ).astype(np.int64)

        # Running jobs from earlier blocks count as started before this block's first tick.
        carried_end = self._running_end_ticks - conditions.first_tick
        starts = np.concatenate([np.full(carried_end.size, -1), start_index])
        ends = np.concatenate([carried_end, new_end])
        outcomes = np.concatenate([self._running_outcomes, new_outcomes])
        ends, outcomes = _stop_jobs_at_outages(starts, ends, outcomes, conditions.up)

        clipped_starts = np.clip(starts, 0, length)
        clipped_ends = np.clip(ends, 0, length)
        change = np.bincount(clipped_starts, minlength=length + 1) - np.bincount(
            clipped_ends, minlength=length + 1
        )
        active = np.cumsum(change)[:length].astype(np.float64)
        block.gauges["neuroweaver_training_jobs_active"] = active[:, None]

        outcome_count = len(catalog.TRAINING_OUTCOMES)
        finished = (ends < length) & (outcomes >= 0)
        completed = np.bincount(
            ends[finished] * outcome_count + outcomes[finished], minlength=length * outcome_count
        )
        block.counters["neuroweaver_training_jobs_completed_total"] = completed.reshape(
            length, outcome_count
        ).astype(np.int64)

        still_running = ends >= length
        self._running_end_ticks = ends[still_running] + conditions.first_tick
        self._running_outcomes = outcomes[still_running]


def _stop_jobs_at_outages(
    starts: IntArray, ends: IntArray, outcomes: IntArray, up: BoolArray
) -> tuple[IntArray, IntArray]:
    """End each job at the first down tick inside its run and mark its outcome as -1 (none)."""
    down = np.flatnonzero(~up)
    if down.size == 0 or starts.size == 0:
        return ends, outcomes

    position = np.searchsorted(down, np.maximum(starts, 0), side="left")
    has_later_down = position < down.size
    first_down = np.where(has_later_down, down[np.minimum(position, down.size - 1)], ends)
    interrupted = has_later_down & (first_down < ends)
    return (
        np.where(interrupted, first_down, ends),
        np.where(interrupted, -1, outcomes),
    )


TRAFFIC_MODELS: dict[str, type[TrafficModel]] = {
    "automatrix": AutomatrixTraffic,
    "relaycore": RelaycoreTraffic,
    "neuroweaver": NeuroweaverTraffic,
}
