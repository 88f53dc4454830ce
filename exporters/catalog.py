"""Static description of the three simulated systems: routes, AI models, prices and load.

The simulator draws traffic from these profiles and `exporters.metrics` derives the label
values of every series from them, so the two always agree on series order.
All prices are illustrative numbers of the right order of magnitude, not current list prices.
"""

from __future__ import annotations

from dataclasses import dataclass

SYSTEMS: tuple[str, ...] = ("automatrix", "relaycore", "neuroweaver")

DISPLAY_NAMES: dict[str, str] = {
    "automatrix": "AutoMatrix",
    "relaycore": "RelayCore",
    "neuroweaver": "NeuroWeaver",
}

# The `autmatrix_` spelling is the name the running platform already exports.
METRIC_PREFIXES: dict[str, str] = {
    "automatrix": "autmatrix_",
    "relaycore": "relaycore_",
    "neuroweaver": "neuroweaver_",
}

DEFAULT_PORTS: dict[str, int] = {"automatrix": 9101, "relaycore": 9102, "neuroweaver": 9103}

# Response classes of every route, in series order. Class 0 is the route's own success code.
# The 4xx classes share CLIENT_ERROR_RATIO and the 5xx classes share the system's error ratio.
CLIENT_ERROR_CODES: tuple[str, ...] = ("400", "404", "429")
CLIENT_ERROR_SHARES: tuple[float, ...] = (0.4, 0.4, 0.2)
SERVER_ERROR_CODES: tuple[str, ...] = ("500", "502", "503")
SERVER_ERROR_SHARES: tuple[float, ...] = (0.6, 0.25, 0.15)
CLIENT_ERROR_RATIO = 0.03


@dataclass(frozen=True)
class Route:
    """One HTTP endpoint with its share of the traffic and its latency distribution.

    Latency is log-normal: `median_seconds` is its median and `sigma` the standard deviation
    of its logarithm.
    """

    method: str
    path: str
    weight: float
    median_seconds: float
    sigma: float
    success_code: str = "200"


@dataclass(frozen=True)
class Model:
    """One AI model with its provider, token sizes, prices and latency.

    Prices are in nano-US dollars (1e-9 USD) per token, so costs add up exactly as integers.
    Token counts are the mean input and output tokens of one request.
    """

    provider: str
    name: str
    weight: float
    input_tokens: float
    output_tokens: float
    input_price_nano_usd: int
    output_price_nano_usd: int
    median_seconds: float
    sigma: float = 0.5


@dataclass(frozen=True)
class WorkflowTemplate:
    """One AutoMatrix workflow template with its share of executions and median duration."""

    name: str
    weight: float
    median_seconds: float
    sigma: float = 0.7


@dataclass(frozen=True)
class SpecialistModel:
    """One NeuroWeaver model with its specialization, share of inferences and GPU cost."""

    model_id: str
    specialization: str
    weight: float
    median_seconds: float
    cost_nano_usd: int
    sigma: float = 0.45


@dataclass(frozen=True)
class ProcessProfile:
    """Simulated process resources.

    CPU use in cores is `base_cores + cpu_seconds_per_request * requests per second`.
    Resident memory follows a sawtooth between 0.85 and 1.15 times `memory_bytes` that restarts
    every `memory_period_seconds` of uptime, like a cache that is flushed periodically.
    """

    base_cores: float
    cpu_seconds_per_request: float
    memory_bytes: float
    memory_period_seconds: float


@dataclass(frozen=True)
class SystemProfile:
    """Traffic defaults of one system. `SimulationConfig` may override the load numbers."""

    system: str
    routes: tuple[Route, ...]
    base_rps: float
    daily_amplitude: float
    base_error_ratio: float
    peak_hour_utc: float
    process: ProcessProfile


MIB = 1024 * 1024
GIB = 1024 * MIB

AUTOMATRIX = SystemProfile(
    system="automatrix",
    routes=(
        Route("GET", "/api/v1/workflows", 0.30, 0.035, 0.5),
        Route("POST", "/api/v1/workflows/{id}/runs", 0.12, 0.180, 0.6, "202"),
        Route("GET", "/api/v1/runs/{id}", 0.38, 0.025, 0.5),
        Route("POST", "/api/v1/webhooks/{id}", 0.12, 0.090, 0.7, "202"),
        Route("GET", "/healthz", 0.08, 0.002, 0.3),
    ),
    base_rps=25.0,
    daily_amplitude=0.6,
    base_error_ratio=0.005,
    peak_hour_utc=14.0,
    process=ProcessProfile(0.20, 0.006, 300 * MIB, 2 * 3600.0),
)

RELAYCORE = SystemProfile(
    system="relaycore",
    routes=(
        Route("POST", "/v1/chat/completions", 0.62, 1.1, 0.6),
        Route("POST", "/v1/embeddings", 0.22, 0.12, 0.5),
        Route("GET", "/v1/models", 0.08, 0.008, 0.4),
        Route("GET", "/healthz", 0.08, 0.002, 0.3),
    ),
    base_rps=30.0,
    daily_amplitude=0.5,
    base_error_ratio=0.008,
    peak_hour_utc=16.0,
    process=ProcessProfile(0.30, 0.004, 1.1 * GIB, 45 * 60.0),
)

NEUROWEAVER = SystemProfile(
    system="neuroweaver",
    routes=(
        Route("POST", "/v1/models/{model_id}/infer", 0.7195, 0.35, 0.5),
        Route("GET", "/v1/models", 0.10, 0.012, 0.4),
        Route("POST", "/v1/training-jobs", 0.0005, 0.25, 0.5, "201"),
        Route("GET", "/v1/training-jobs/{id}", 0.10, 0.015, 0.4),
        Route("GET", "/healthz", 0.08, 0.002, 0.3),
    ),
    base_rps=12.0,
    daily_amplitude=0.4,
    base_error_ratio=0.004,
    peak_hour_utc=11.0,
    process=ProcessProfile(1.50, 0.030, 3 * GIB, 6 * 3600.0),
)

PROFILES: dict[str, SystemProfile] = {
    "automatrix": AUTOMATRIX,
    "relaycore": RELAYCORE,
    "neuroweaver": NEUROWEAVER,
}

# AutoMatrix: workflow runs start from the run and webhook routes and call AI models.
AUTOMATRIX_TRIGGER_ROUTES: tuple[int, ...] = (1, 3)
AUTOMATRIX_AI_CALLS_PER_EXECUTION = 1.5
WORKFLOW_STATUSES: tuple[str, ...] = ("success", "failed", "cancelled")
WORKFLOW_STATUS_SHARES: tuple[float, ...] = (0.94, 0.04, 0.02)
WORKFLOW_TEMPLATES: tuple[WorkflowTemplate, ...] = (
    WorkflowTemplate("invoice-processing", 0.35, 8.0),
    WorkflowTemplate("lead-enrichment", 0.30, 25.0),
    WorkflowTemplate("support-triage", 0.25, 60.0),
    WorkflowTemplate("weekly-report", 0.10, 140.0),
)
WORKFLOW_DURATION_BUCKETS: tuple[float, ...] = (
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, float("inf"),
)
AUTOMATRIX_MODELS: tuple[Model, ...] = (
    Model("openai", "gpt-4o", 0.35, 1200, 350, 2500, 10000, 1.4),
    Model("openai", "gpt-4o-mini", 0.30, 1200, 350, 150, 600, 0.7),
    Model("anthropic", "claude-sonnet", 0.25, 1200, 350, 3000, 15000, 1.6),
    Model("google", "gemini-flash", 0.10, 1200, 350, 100, 400, 0.5),
)

# RelayCore: every chat or embeddings request that is not rejected with 4xx goes upstream.
RELAYCORE_CHAT_ROUTE = 0
RELAYCORE_EMBEDDINGS_ROUTE = 1
RELAYCORE_CHAT_MODELS: tuple[Model, ...] = (
    Model("openai", "gpt-4o", 0.30, 900, 250, 2500, 10000, 1.4),
    Model("openai", "gpt-4o-mini", 0.20, 900, 250, 150, 600, 0.7),
    Model("anthropic", "claude-sonnet", 0.25, 900, 250, 3000, 15000, 1.6),
    Model("google", "gemini-flash", 0.15, 900, 250, 100, 400, 0.5),
    Model("local", "llama-3.1-8b", 0.10, 900, 250, 20, 20, 0.9),
)
RELAYCORE_EMBEDDING_MODELS: tuple[Model, ...] = (
    Model("openai", "text-embedding-3-small", 0.70, 400, 0, 20, 0, 0.09),
    Model("google", "text-embedding-004", 0.30, 400, 0, 10, 0, 0.11),
)
RELAYCORE_AI_STATUSES: tuple[str, ...] = ("success", "error")

# NeuroWeaver: inferences come from the infer route; training jobs from the create route.
NEUROWEAVER_INFER_ROUTE = 0
NEUROWEAVER_TRAINING_ROUTE = 2
NEUROWEAVER_PROVIDER = "local"
NEUROWEAVER_MODELS: tuple[SpecialistModel, ...] = (
    SpecialistModel("nw-legal-7b", "legal", 0.30, 0.28, 28_000),
    SpecialistModel("nw-med-13b", "medical", 0.20, 0.55, 52_000),
    SpecialistModel("nw-fin-7b", "finance", 0.25, 0.30, 28_000),
    SpecialistModel("nw-code-3b", "code", 0.25, 0.15, 11_000),
)
TRAINING_OUTCOMES: tuple[str, ...] = ("succeeded", "failed", "cancelled")
TRAINING_OUTCOME_SHARES: tuple[float, ...] = (0.85, 0.10, 0.05)
TRAINING_MEDIAN_SECONDS = 30 * 60.0
TRAINING_SIGMA = 0.8

TOKEN_TYPES: tuple[str, ...] = ("input", "output")


def route_codes(route: Route) -> tuple[str, ...]:
    """Return the status codes of a route in response-class order."""
    return (route.success_code, *CLIENT_ERROR_CODES, *SERVER_ERROR_CODES)


def relaycore_models() -> tuple[Model, ...]:
    """Return RelayCore's upstream models, chat models first, in series order."""
    return RELAYCORE_CHAT_MODELS + RELAYCORE_EMBEDDING_MODELS


def providers(models: tuple[Model, ...]) -> tuple[str, ...]:
    """Return the distinct providers of `models` in first-seen order."""
    return tuple(dict.fromkeys(model.provider for model in models))
