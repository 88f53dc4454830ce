"""Users, roles and password hashes.

Viewers read every page; operators also acknowledge alerts. A user is an operator when their
e-mail address or user name is listed in `[auth] operators`, or one of their groups in
`[auth] operator_groups`. With no login configured the app serves 127.0.0.1 only, and every
local user acts as an operator under the name they type.

Password hashes use scrypt from the standard library with a random 16-byte salt, stored as
`scrypt$n$r$p$salt$hash` (salt and hash in base64). Make one with `python -m lib.auth hash`.
"""

from __future__ import annotations

import argparse
import base64
import getpass
import hashlib
import hmac
import logging
import secrets
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from lib.config import AuthSettings, PasswordUser
from lib.errors import AccessDeniedError

log = logging.getLogger(__name__)

# scrypt cost parameters (n = 2**14, r = 8, p = 1 use 16 MiB and about 50 ms per check).
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
HASH_BYTES = 32
_PREFIX = "scrypt"


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"


class AuthMode(StrEnum):
    """Login method: OpenID Connect, the password list, or none."""

    OIDC = "oidc"
    PASSWORD = "password"  # noqa: S105 - the name of a login method, not a secret
    OFF = "off"


@dataclass(frozen=True)
class User:
    """The person behind a session. `name` is what acknowledgements record."""

    name: str
    role: Role
    email: str | None = None
    groups: tuple[str, ...] = ()
    authenticated: bool = True

    @property
    def can_acknowledge(self) -> bool:
        return self.role is Role.OPERATOR


def auth_mode(settings: AuthSettings, oidc_configured: bool) -> AuthMode:
    """Return OIDC when an identity provider is configured, else the password login when users
    are listed, else OFF."""
    if oidc_configured:
        return AuthMode.OIDC
    if settings.users:
        return AuthMode.PASSWORD
    return AuthMode.OFF


def role_for(settings: AuthSettings, names: Sequence[str | None], groups: Sequence[str]) -> Role:
    """Return OPERATOR when one of `names` (e-mail, user name) or `groups` is listed."""
    operators = {name.casefold() for name in settings.operators}
    if any(name and name.casefold() in operators for name in names):
        return Role.OPERATOR
    if set(groups) & set(settings.operator_groups):
        return Role.OPERATOR
    return Role.VIEWER


def oidc_user(settings: AuthSettings, email: str, name: str | None,
              groups: Sequence[str]) -> User:
    """Return the user an identity provider logged in; acknowledgements record the e-mail."""
    role = role_for(settings, [email], groups)
    return User(name=email, role=role, email=email, groups=tuple(groups))


def local_user(name: str) -> User:
    """Return the user of an app without login: unauthenticated, but allowed to acknowledge."""
    return User(name=name.strip(), role=Role.OPERATOR, authenticated=False)


def password_login(settings: AuthSettings, username: str, password: str) -> User | None:
    """Return the user when `password` matches the configured hash, else None.

    An unknown user name costs one hash computation too, so response times do not reveal
    which names exist.
    """
    account = _find_user(settings.users, username)
    if account is None:
        verify_password(_DUMMY_HASH, password)
        log.warning("password login failed: unknown user %r", username)
        return None
    if not verify_password(account.password_hash, password):
        log.warning("password login failed for user %r", username)
        return None
    log.info("password login of user %r", username)
    role = role_for(settings, [account.username, account.email], account.groups)
    return User(name=account.username, role=role, email=account.email, groups=account.groups)


def require_operator(user: User, action: str) -> None:
    """Raise AccessDeniedError unless `user` may perform `action`."""
    if not user.can_acknowledge:
        raise AccessDeniedError(user.name, action)


def hash_password(password: str) -> str:
    """Return a salted scrypt hash of `password` in the `scrypt$n$r$p$salt$hash` form."""
    if not password:
        raise ValueError("the password must not be empty")
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    encoded = [_b64(salt), _b64(digest)]
    return "$".join([_PREFIX, str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), *encoded])


def verify_password(stored: str, password: str) -> bool:
    """Return whether `password` matches `stored`; a malformed hash never matches."""
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != _PREFIX:
        return False
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt = base64.b64decode(parts[4], validate=True)
        expected = base64.b64decode(parts[5], validate=True)
        actual = _scrypt(password, salt, n, r, p)
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p,
                          maxmem=256 * 1024 * 1024, dklen=HASH_BYTES)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _find_user(users: Sequence[PasswordUser], username: str) -> PasswordUser | None:
    for user in users:
        if hmac.compare_digest(user.username.encode(), username.encode()):
            return user
    return None


_DUMMY_HASH = "$".join([
    _PREFIX, str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P),
    _b64(b"\0" * SALT_BYTES), _b64(b"\0" * HASH_BYTES),
])


def main(argv: Sequence[str] | None = None) -> int:
    """Print a password hash for `[[auth.users]] password_hash`; the password is read from the
    terminal (asked twice) or, when piped, from the first line of standard input."""
    parser = argparse.ArgumentParser(prog="python -m lib.auth")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("hash", help="read a password and print its scrypt hash")
    parser.parse_args(argv)

    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat the password: ") != password:
            print("The passwords differ; nothing was hashed.", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\n")
    if not password:
        print("The password is empty; nothing was hashed.", file=sys.stderr)
        return 1
    print(hash_password(password))
    return 0


if __name__ == "__main__":
    sys.exit(main())
