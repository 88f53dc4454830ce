"""Settings: one TOML file plus secrets from the environment, defaulting to the simulated platform.

The file is `platform-monitor.toml` in the working directory, or the path in the environment
variable `PLATFORM_MONITOR_CONFIG`. Every key is optional; with no file at all the app watches the
simulated AutoMatrix, RelayCore and NeuroWeaver exporters that it starts itself on loopback ports.

Bearer tokens are never written in the file: a target names an environment variable
(`bearer_token_env`) and the token is read from there when the settings load.

The `[source]` section picks where the pages read signals: `kind = "embedded"` (the default: the
app scrapes the targets itself into SQLite) or `kind = "prometheus"` (a server that speaks the
Prometheus HTTP query API, at `url`). With a Prometheus source the app starts neither the
collector nor, unless `[simulator] enabled = true`, the simulated platform.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lib.errors import UnknownSystemError

CONFIG_ENV = "PLATFORM_MONITOR_CONFIG"
DATA_DIR_ENV = "PLATFORM_MONITOR_DATA_DIR"
DEFAULT_CONFIG_FILE = "platform-monitor.toml"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class ConfigError(ValueError):
    """The configuration file or one of its values is invalid."""


@dataclass(frozen=True)
class Thresholds:
    """Health thresholds of one system; a breach of a warning value gives `warning`, of an error
    value `error`."""

    error_rate_warning: float = 0.02
    error_rate_error: float = 0.10
    p95_latency_ms_warning: float = 800.0
    p95_latency_ms_error: float = 2000.0
    availability_warning: float = 0.99
    # Cost budget in USD per hour; an alert fires above it. 0 disables the cost check.
    cost_per_hour_budget: float = 0.0


@dataclass(frozen=True)
class TargetConfig:
    """One watched system: where its `/metrics` endpoint is and how the app names and judges it."""

    system: str
    display_name: str
    url: str
    colour: str
    metric_prefix: str
    bearer_token: str | None = field(default=None, repr=False)
    thresholds: Thresholds = Thresholds()
    # The `job` label that selects this system's series in Prometheus; None means the system id.
    job: str | None = None

    @property
    def prometheus_job(self) -> str:
        return self.job or self.system


@dataclass(frozen=True)
class SimulatorSettings:
    """The simulated platform that the app starts when no real systems are configured."""

    enabled: bool = True
    seed: int = 42
    # The demo schedule: RelayCore error bursts, AutoMatrix slow periods, NeuroWeaver outages.
    incidents: bool = True
    # Seconds of simulated history written into an empty store at the first start.
    backfill: float = 3600.0
    host: str = "127.0.0.1"
    ports: tuple[int, int, int] = (9101, 9102, 9103)


@dataclass(frozen=True)
class StorageSettings:
    """Where the embedded store keeps data and for how long (seconds)."""

    data_dir: Path = Path(".data")
    raw_retention: float = 2 * 86400.0
    rollup_retention: float = 35 * 86400.0


SOURCE_KINDS = ("embedded", "prometheus")
_MATCHER = re.compile(
    r'\s*[a-zA-Z_][a-zA-Z0-9_]*\s*(=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"\s*'
)


@dataclass(frozen=True)
class SourceSettings:
    """The server or store that the pages read signals from. Credentials come from the
    environment, never from the file.

    `extra_matchers` are PromQL label matchers without braces (`cluster="prod"`) that every
    Prometheus query adds to its selectors; `timeout` bounds one query in seconds.
    """

    kind: str = "embedded"
    url: str = ""
    bearer_token: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    extra_matchers: str = ""
    timeout: float = 10.0


@dataclass(frozen=True)
class AlertSettings:
    """Alert source: rules evaluated by the app, or an Alertmanager's API v2."""

    backend: str = "embedded"  # "embedded" or "alertmanager"
    alertmanager_url: str = "http://127.0.0.1:9093"
    # Seconds one Alertmanager request may take, retries included.
    alertmanager_timeout: float = 5.0


@dataclass(frozen=True)
class PasswordUser:
    """A user of the password login; `password_hash` comes from `python -m lib.auth hash`."""

    username: str
    password_hash: str = field(repr=False)
    email: str | None = None
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class AuthSettings:
    """Operators allowed to acknowledge alerts, and the users of the password login (empty
    means no password login). OpenID Connect is configured in .streamlit/secrets.toml."""

    # E-mail addresses or user names, and groups, whose members may acknowledge alerts.
    operators: tuple[str, ...] = ()
    operator_groups: tuple[str, ...] = ()
    users: tuple[PasswordUser, ...] = ()


@dataclass(frozen=True)
class Settings:
    """Everything the library needs to know, loaded once per process."""

    targets: tuple[TargetConfig, ...]
    scrape_interval: float = 15.0
    scrape_timeout: float = 5.0
    refresh_seconds: float = 30.0
    storage: StorageSettings = StorageSettings()
    simulator: SimulatorSettings = SimulatorSettings()
    source: SourceSettings = SourceSettings()
    alerts: AlertSettings = AlertSettings()
    auth: AuthSettings = AuthSettings()

    def target(self, system: str) -> TargetConfig:
        """Return the target of `system`, raising UnknownSystemError with the known ids."""
        for target in self.targets:
            if target.system == system:
                return target
        raise UnknownSystemError(system, [t.system for t in self.targets])

    @property
    def systems(self) -> list[str]:
        return [target.system for target in self.targets]


_DEFAULT_SYSTEMS: tuple[tuple[str, str, str, str], ...] = (
    # id, display name, metric prefix, colour (Tableau 10, readable on light and dark backgrounds)
    ("automatrix", "AutoMatrix", "autmatrix_", "#4C78A8"),
    ("relaycore", "RelayCore", "relaycore_", "#F58518"),
    ("neuroweaver", "NeuroWeaver", "neuroweaver_", "#54A24B"),
)


# Default thresholds per known system, sized to the simulated platform's normal day: RelayCore
# waits on AI providers, so its latency budget is seconds, not milliseconds.
DEFAULT_THRESHOLDS: dict[str, Thresholds] = {
    "automatrix": Thresholds(p95_latency_ms_warning=800.0, p95_latency_ms_error=2000.0,
                             cost_per_hour_budget=300.0),
    "relaycore": Thresholds(p95_latency_ms_warning=5000.0, p95_latency_ms_error=10000.0,
                            cost_per_hour_budget=400.0),
    "neuroweaver": Thresholds(p95_latency_ms_warning=1500.0, p95_latency_ms_error=3000.0,
                              cost_per_hour_budget=2.0),
}


def parse_duration(value: object, key: str) -> float:
    """Parse `15s`, `5m`, `2h`, `7d`, `250ms` or a number of seconds into seconds."""
    if isinstance(value, bool):
        raise ConfigError(f"{key} must be a duration such as '15s', got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ConfigError(f"{key} must be a duration such as '15s' or '5m', got {value!r}")
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2) or "s"]
    if seconds <= 0:
        raise ConfigError(f"{key} must be positive, got {value!r}")
    return seconds


def default_targets(simulator: SimulatorSettings) -> tuple[TargetConfig, ...]:
    """Return the three simulated systems on the simulator's loopback ports."""
    return tuple(
        TargetConfig(
            system=system,
            display_name=name,
            url=f"http://{simulator.host}:{port}/metrics",
            colour=colour,
            metric_prefix=prefix,
            thresholds=DEFAULT_THRESHOLDS[system],
        )
        for (system, name, prefix, colour), port in zip(
            _DEFAULT_SYSTEMS, simulator.ports, strict=True
        )
    )


def load_settings(
    path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Load settings from `path`, the file named by PLATFORM_MONITOR_CONFIG, or defaults."""
    env = os.environ if environ is None else environ
    explicit = path if path is not None else env.get(CONFIG_ENV)
    config_path = Path(explicit) if explicit else Path(DEFAULT_CONFIG_FILE)

    raw: dict[str, Any] = {}
    if config_path.is_file():
        try:
            raw = tomllib.loads(config_path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{config_path} is not valid TOML: {exc}") from exc
    elif explicit:
        raise ConfigError(f"configuration file {str(config_path)!r} does not exist")

    return settings_from_mapping(raw, env)


def settings_from_mapping(raw: Mapping[str, Any], env: Mapping[str, str]) -> Settings:
    """Build settings from parsed TOML; unknown keys raise so that typos do not pass silently."""
    _reject_unknown(
        raw,
        {"collector", "storage", "simulator", "ui", "targets", "source", "alerts", "auth"},
        "top level",
    )
    source = _source(raw.get("source", {}), env)
    # Configured targets mean real systems, and a Prometheus source has its own scrapers, so the
    # simulator is off unless asked for.
    simulator = _simulator(
        raw.get("simulator", {}),
        default_enabled="targets" not in raw and source.kind == "embedded",
    )
    storage = _storage(raw.get("storage", {}), env)
    collector = raw.get("collector", {})
    _reject_unknown(collector, {"scrape_interval", "scrape_timeout"}, "[collector]")
    ui = raw.get("ui", {})
    _reject_unknown(ui, {"refresh"}, "[ui]")

    targets = default_targets(simulator)
    if "targets" in raw:
        # A Prometheus source finds each system by its job label, so a URL is optional there.
        require_url = source.kind == "embedded"
        targets = tuple(
            _target(entry, index, env, require_url) for index, entry in enumerate(raw["targets"])
        )
        if not targets:
            raise ConfigError("[[targets]] is empty; name at least one system or remove the key")
        ids = [t.system for t in targets]
        if len(set(ids)) != len(ids):
            raise ConfigError(f"[[targets]] names a system twice: {ids}")

    settings = Settings(
        targets=targets,
        scrape_interval=parse_duration(collector.get("scrape_interval", 15), "scrape_interval"),
        scrape_timeout=parse_duration(collector.get("scrape_timeout", 5), "scrape_timeout"),
        refresh_seconds=parse_duration(ui.get("refresh", 30), "[ui] refresh"),
        storage=storage,
        simulator=simulator,
        source=source,
        alerts=_alerts(raw.get("alerts", {})),
        auth=_auth(raw.get("auth", {})),
    )
    if settings.scrape_timeout > settings.scrape_interval:
        raise ConfigError(
            f"scrape_timeout ({settings.scrape_timeout:g}s) must not exceed "
            f"scrape_interval ({settings.scrape_interval:g}s)"
        )
    return settings


def _reject_unknown(section: Mapping[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(section) - known)
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in {where}; known keys are {sorted(known)}")


def _simulator(section: Mapping[str, Any], default_enabled: bool) -> SimulatorSettings:
    _reject_unknown(
        section, {"enabled", "seed", "host", "ports", "incidents", "backfill"}, "[simulator]"
    )
    backfill = section.get("backfill", "1h")
    backfill_seconds = 0.0 if backfill in (0, "0", False) else parse_duration(backfill, "backfill")
    ports = tuple(int(p) for p in section.get("ports", SimulatorSettings.ports))
    if len(ports) != 3:
        raise ConfigError(f"[simulator] ports must list three ports, got {list(ports)}")
    return SimulatorSettings(
        enabled=bool(section.get("enabled", default_enabled)),
        seed=int(section.get("seed", 42)),
        incidents=bool(section.get("incidents", True)),
        backfill=backfill_seconds,
        host=str(section.get("host", "127.0.0.1")),
        ports=(ports[0], ports[1], ports[2]),
    )


def _source(section: Mapping[str, Any], env: Mapping[str, str]) -> SourceSettings:
    _reject_unknown(
        section,
        {"kind", "url", "bearer_token_env", "username", "password_env", "extra_matchers",
         "timeout"},
        "[source]",
    )
    kind = str(section.get("kind", "embedded"))
    if kind not in SOURCE_KINDS:
        raise ConfigError(f"[source] kind must be one of {list(SOURCE_KINDS)}, got {kind!r}")
    url = str(section.get("url", "")).rstrip("/")
    if kind == "prometheus" and not url.startswith(("http://", "https://")):
        raise ConfigError(
            f"[source] url must be the Prometheus server's http:// or https:// address, "
            f"got {url!r}"
        )
    if section.get("bearer_token_env") and section.get("username"):
        raise ConfigError("[source] sets both bearer_token_env and username; choose one")

    token = _secret(section, "bearer_token_env", "[source]", env)
    username = section.get("username")
    password = None
    if username is not None:
        if not section.get("password_env"):
            raise ConfigError("[source] username needs password_env naming the password's variable")
        password = _secret(section, "password_env", "[source]", env)
    return SourceSettings(
        kind=kind,
        url=url,
        bearer_token=token,
        username=str(username) if username is not None else None,
        password=password,
        extra_matchers=parse_matchers(str(section.get("extra_matchers", "")), "[source]"),
        timeout=parse_duration(section.get("timeout", 10), "[source] timeout"),
    )


def parse_matchers(text: str, where: str) -> str:
    """Return PromQL label matchers such as `{cluster="prod", env!="test"}` without the braces,
    raising ConfigError when one of them is not `label op "value"`."""
    inner = text.strip()
    if inner.startswith("{") and inner.endswith("}"):
        inner = inner[1:-1]
    matchers = [part for part in _split_matchers(inner) if part.strip()]
    for matcher in matchers:
        if not _MATCHER.fullmatch(matcher):
            raise ConfigError(
                f"{where} extra_matchers: {matcher.strip()!r} is not a label matcher such as "
                f'cluster="prod"'
            )
    return ",".join(matcher.strip() for matcher in matchers)


def _split_matchers(text: str) -> list[str]:
    """Split at commas outside double-quoted values."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if char == "," and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
    parts.append("".join(current))
    return parts


def _secret(
    section: Mapping[str, Any], key: str, where: str, env: Mapping[str, str]
) -> str | None:
    """Return the value of the environment variable that `section[key]` names, if any."""
    variable = section.get(key)
    if not variable:
        return None
    value = env.get(str(variable))
    if not value:
        raise ConfigError(f"{where}: environment variable {variable!r} named by {key} is not set")
    return value


def _storage(section: Mapping[str, Any], env: Mapping[str, str]) -> StorageSettings:
    _reject_unknown(section, {"data_dir", "raw_retention", "rollup_retention"}, "[storage]")
    data_dir = env.get(DATA_DIR_ENV) or section.get("data_dir", ".data")
    return StorageSettings(
        data_dir=Path(str(data_dir)),
        raw_retention=parse_duration(section.get("raw_retention", "2d"), "raw_retention"),
        rollup_retention=parse_duration(section.get("rollup_retention", "35d"), "rollup_retention"),
    )


def _alerts(section: Mapping[str, Any]) -> AlertSettings:
    _reject_unknown(section, {"backend", "alertmanager_url", "alertmanager_timeout"}, "[alerts]")
    backend = str(section.get("backend", "embedded"))
    if backend not in ("embedded", "alertmanager"):
        raise ConfigError(
            f"[alerts] backend must be 'embedded' or 'alertmanager', got {backend!r}"
        )
    return AlertSettings(
        backend=backend,
        alertmanager_url=str(section.get("alertmanager_url", AlertSettings.alertmanager_url)),
        alertmanager_timeout=parse_duration(
            section.get("alertmanager_timeout", 5), "[alerts] alertmanager_timeout"
        ),
    )


def _auth(section: Mapping[str, Any]) -> AuthSettings:
    _reject_unknown(section, {"operators", "operator_groups", "users"}, "[auth]")
    users = []
    for index, entry in enumerate(section.get("users", [])):
        where = f"[[auth.users]] entry {index + 1}"
        _reject_unknown(entry, {"username", "password_hash", "email", "groups"}, where)
        for key in ("username", "password_hash"):
            if not entry.get(key):
                raise ConfigError(f"{where} is missing {key!r}")
        users.append(PasswordUser(
            username=str(entry["username"]),
            password_hash=str(entry["password_hash"]),
            email=str(entry["email"]) if entry.get("email") else None,
            groups=tuple(str(group) for group in entry.get("groups", [])),
        ))
    names = [user.username for user in users]
    if len(set(names)) != len(names):
        raise ConfigError(f"[[auth.users]] names a user twice: {names}")
    return AuthSettings(
        operators=tuple(str(name) for name in section.get("operators", [])),
        operator_groups=tuple(str(group) for group in section.get("operator_groups", [])),
        users=tuple(users),
    )


def _target(
    entry: Mapping[str, Any], index: int, env: Mapping[str, str], require_url: bool = True
) -> TargetConfig:
    where = f"[[targets]] entry {index + 1}"
    _reject_unknown(
        entry,
        {"system", "display_name", "url", "colour", "metric_prefix", "bearer_token_env",
         "thresholds", "job"},
        where,
    )
    for key in ("system", "url") if require_url else ("system",):
        if not entry.get(key):
            raise ConfigError(f"{where} is missing {key!r}")
    system = str(entry["system"])
    defaults = {row[0]: row for row in _DEFAULT_SYSTEMS}.get(system)
    token_env = entry.get("bearer_token_env")
    token = None
    if token_env:
        token = env.get(str(token_env))
        if not token:
            raise ConfigError(
                f"{where}: environment variable {token_env!r} holding the bearer token is not set"
            )
    thresholds_raw = entry.get("thresholds", {})
    _reject_unknown(thresholds_raw, set(Thresholds.__dataclass_fields__), f"{where} thresholds")
    base = DEFAULT_THRESHOLDS.get(system, Thresholds())
    thresholds = replace(base, **{k: float(v) for k, v in thresholds_raw.items()})
    return TargetConfig(
        system=system,
        display_name=str(entry.get("display_name", defaults[1] if defaults else system)),
        url=str(entry.get("url", "")),
        colour=str(entry.get("colour", defaults[3] if defaults else "#9D755D")),
        metric_prefix=str(entry.get("metric_prefix", defaults[2] if defaults else f"{system}_")),
        bearer_token=token,
        thresholds=thresholds,
        job=str(entry["job"]) if entry.get("job") else None,
    )
