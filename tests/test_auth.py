"""Password hashes, the password login, roles and the hash command."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from lib.auth import (
    AuthMode,
    Role,
    auth_mode,
    hash_password,
    local_user,
    oidc_user,
    password_login,
    verify_password,
)
from lib.config import AuthSettings, ConfigError, PasswordUser, settings_from_mapping

ROOT = Path(__file__).resolve().parent.parent


def test_hash_verifies_only_its_password() -> None:
    stored = hash_password("s3cret pass")
    assert stored.startswith("scrypt$")
    assert verify_password(stored, "s3cret pass")
    assert not verify_password(stored, "s3cret pas")
    assert hash_password("s3cret pass") != stored  # a fresh salt each time


@pytest.mark.parametrize("stored", ["", "plain", "scrypt$1$2$3", "scrypt$x$8$1$AA==$AA==",
                                    "bcrypt$16384$8$1$AA==$AA=="])
def test_malformed_hash_never_matches(stored: str) -> None:
    assert not verify_password(stored, "anything")


def test_password_login_and_roles(caplog: pytest.LogCaptureFixture) -> None:
    settings = AuthSettings(
        operators=("Olga@Example.com",),
        operator_groups=("oncall",),
        users=(
            PasswordUser("olga", hash_password("pw-olga"), email="olga@example.com"),
            PasswordUser("gus", hash_password("pw-gus"), groups=("oncall",)),
            PasswordUser("vic", hash_password("pw-vic")),
        ),
    )
    caplog.set_level(logging.DEBUG)

    olga = password_login(settings, "olga", "pw-olga")
    gus = password_login(settings, "gus", "pw-gus")
    vic = password_login(settings, "vic", "pw-vic")

    assert olga is not None and olga.role is Role.OPERATOR
    assert gus is not None and gus.role is Role.OPERATOR
    assert vic is not None and vic.role is Role.VIEWER and not vic.can_acknowledge
    assert password_login(settings, "olga", "pw-gus") is None
    assert password_login(settings, "nobody", "pw-olga") is None
    for secret in ("pw-olga", "pw-gus", "pw-vic"):
        assert secret not in caplog.text


def test_oidc_user_role_by_email_or_group() -> None:
    settings = AuthSettings(operators=("ann@example.com",), operator_groups=("sre",))
    assert oidc_user(settings, "ann@example.com", None, []).role is Role.OPERATOR
    assert oidc_user(settings, "bob@example.com", None, ["sre"]).role is Role.OPERATOR
    assert oidc_user(settings, "cy@example.com", None, ["dev"]).role is Role.VIEWER


def test_auth_mode_choice() -> None:
    with_users = AuthSettings(users=(PasswordUser("a", "scrypt$x"),))
    assert auth_mode(AuthSettings(), oidc_configured=True) is AuthMode.OIDC
    assert auth_mode(with_users, oidc_configured=False) is AuthMode.PASSWORD
    assert auth_mode(AuthSettings(), oidc_configured=False) is AuthMode.OFF
    assert local_user("  Dana ").name == "Dana"


def test_hash_command_prints_hash() -> None:
    done = subprocess.run([sys.executable, "-m", "lib.auth", "hash"], input="pw from stdin\n",
                          capture_output=True, text=True, cwd=ROOT, check=True, timeout=60)
    stored = done.stdout.strip()
    assert verify_password(stored, "pw from stdin")
    assert "pw from stdin" not in done.stderr


def test_config_reads_auth_and_alerts() -> None:
    settings = settings_from_mapping({
        "alerts": {"backend": "alertmanager", "alertmanager_url": "http://127.0.0.1:9093"},
        "auth": {"operators": ["a@example.com"], "operator_groups": ["sre"],
                 "users": [{"username": "a", "password_hash": "scrypt$x",
                            "email": "a@example.com", "groups": ["sre"]}]},
    }, {})
    assert settings.alerts.backend == "alertmanager"
    assert settings.auth.users[0].groups == ("sre",)
    assert "scrypt" not in repr(settings.auth)


@pytest.mark.parametrize("raw", [
    {"alerts": {"backend": "pagerduty"}},
    {"alerts": {"url": "x"}},
    {"auth": {"users": [{"username": "a"}]}},
    {"auth": {"users": [{"username": "a", "password_hash": "h"},
                        {"username": "a", "password_hash": "h"}]}},
])
def test_config_rejects_bad_alerts_or_auth(raw: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        settings_from_mapping(raw, {})
