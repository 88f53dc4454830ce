from __future__ import annotations

from pathlib import Path

import pytest

from lib.config import ConfigError, load_settings, parse_duration, settings_from_mapping


def test_defaults_watch_simulated_platform(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(environ={})
    assert settings.systems == ["automatrix", "relaycore", "neuroweaver"]
    assert settings.target("relaycore").url == "http://127.0.0.1:9102/metrics"
    assert settings.simulator.enabled
    assert settings.scrape_interval == 15


def test_targets_from_file(tmp_path: Path) -> None:
    path = tmp_path / "pm.toml"
    path.write_text(
        """
[collector]
scrape_interval = "30s"
scrape_timeout = "10s"

[[targets]]
system = "relaycore"
url = "http://10.1.2.3:8000/metrics"
bearer_token_env = "RELAY_TOKEN"

[targets.thresholds]
error_rate_error = 0.2
""",
        encoding="utf-8",
    )
    settings = load_settings(path, environ={"RELAY_TOKEN": "s3cret"})
    target = settings.target("relaycore")
    assert target.display_name == "RelayCore"
    assert target.bearer_token == "s3cret"
    assert target.thresholds.error_rate_error == 0.2
    assert settings.scrape_interval == 30
    assert not settings.simulator.enabled
    assert "s3cret" not in repr(settings)


def test_missing_token_variable(tmp_path: Path) -> None:
    path = tmp_path / "pm.toml"
    path.write_text('[[targets]]\nsystem="x"\nurl="http://h/metrics"\nbearer_token_env="NOPE"\n')
    with pytest.raises(ConfigError, match="'NOPE' holding the bearer token is not set"):
        load_settings(path, environ={})


def test_unknown_key_rejected(tmp_path: Path) -> None:
    path = tmp_path / "pm.toml"
    path.write_text("[collector]\nscrape_intervall = '15s'\n")
    with pytest.raises(ConfigError, match="scrape_intervall"):
        load_settings(path, environ={})


def test_timeout_above_interval_rejected(tmp_path: Path) -> None:
    path = tmp_path / "pm.toml"
    path.write_text("[collector]\nscrape_interval = '5s'\nscrape_timeout = '10s'\n")
    with pytest.raises(ConfigError, match="must not exceed"):
        load_settings(path, environ={})


def test_explicit_missing_file_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.toml", environ={})


def test_data_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(environ={"PLATFORM_MONITOR_DATA_DIR": str(tmp_path)})
    assert settings.storage.data_dir == tmp_path


@pytest.mark.parametrize(("text", "seconds"), [("15s", 15), ("5m", 300), ("2h", 7200),
                                               ("7d", 604800), ("250ms", 0.25), (30, 30)])
def test_parse_duration(text: object, seconds: float) -> None:
    assert parse_duration(text, "x") == seconds


@pytest.mark.parametrize("text", ["", "fast", "-5s", 0, True])
def test_parse_duration_rejects(text: object) -> None:
    with pytest.raises(ConfigError):
        parse_duration(text, "x")


def test_prometheus_source_settings(tmp_path: Path) -> None:
    path = tmp_path / "pm.toml"
    path.write_text(
        """
[source]
kind = "prometheus"
url = "http://127.0.0.1:9090/"
username = "viewer"
password_env = "PROM_PASSWORD"
extra_matchers = '{cluster="prod", env=~"eu-.*"}'
timeout = "20s"

[[targets]]
system = "relaycore"
job = "relay"
""",
        encoding="utf-8",
    )
    settings = load_settings(path, environ={"PROM_PASSWORD": "pw"})
    source = settings.source
    assert source.kind == "prometheus"
    assert source.url == "http://127.0.0.1:9090"
    assert source.username == "viewer"
    assert source.password == "pw"
    assert source.extra_matchers == 'cluster="prod",env=~"eu-.*"'
    assert source.timeout == 20
    assert settings.target("relaycore").prometheus_job == "relay"
    assert not settings.simulator.enabled
    assert "pw" not in repr(source)


def test_prometheus_source_defaults_job_and_simulator_off() -> None:
    settings = settings_from_mapping(
        {"source": {"kind": "prometheus", "url": "http://127.0.0.1:9090",
                    "bearer_token_env": "TOKEN"}},
        {"TOKEN": "abc"},
    )
    assert settings.source.bearer_token == "abc"
    assert settings.target("automatrix").prometheus_job == "automatrix"
    assert not settings.simulator.enabled


def test_prometheus_source_simulator_explicit() -> None:
    settings = settings_from_mapping(
        {"source": {"kind": "prometheus", "url": "http://127.0.0.1:9090"},
         "simulator": {"enabled": True}},
        {},
    )
    assert settings.simulator.enabled


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ({"kind": "thanos"}, "kind must be one of"),
        ({"kind": "prometheus"}, "url must be the Prometheus server's"),
        ({"kind": "prometheus", "url": "http://x", "extra_matchers": "cluster=prod"},
         "is not a label matcher"),
        ({"kind": "prometheus", "url": "http://x", "bearer_token_env": "MISSING"},
         "'MISSING' named by bearer_token_env is not set"),
        ({"kind": "prometheus", "url": "http://x", "username": "u"}, "needs password_env"),
        ({"kind": "prometheus", "url": "http://x", "username": "u", "bearer_token_env": "T"},
         "choose one"),
        ({"kind": "prometheus", "url": "http://x", "query_timeout": 3}, "unknown key"),
    ],
)
def test_source_settings_rejected(source: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        settings_from_mapping({"source": source}, {})


def test_extra_matchers_comma_inside_value() -> None:
    settings = settings_from_mapping(
        {"source": {"kind": "prometheus", "url": "http://127.0.0.1:9090",
                    "extra_matchers": 'route=~"/a,/b", cluster="prod"'}},
        {},
    )
    assert settings.source.extra_matchers == 'route=~"/a,/b",cluster="prod"'
