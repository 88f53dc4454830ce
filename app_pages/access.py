"""The login gate and the current user, shared by the entry point and the pages.

With `[auth]` in .streamlit/secrets.toml, Streamlit's OpenID Connect login (`st.login`) gates
every page. Otherwise, with users under `[[auth.users]]` in the configuration, a password form
does. With neither, the app serves 127.0.0.1 only and the acknowledge form requests a name.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NoReturn

import streamlit as st

from lib.auth import AuthMode, User, auth_mode, oidc_user, password_login
from lib.config import Settings
from lib.format import escape_markdown

USER_KEY = "auth.user"  # the password login's user
CURRENT_KEY = "auth.current"  # this run's user, whichever the login
FAILURES_KEY = "auth.failed_logins"
# Each failed password login in a session waits this long per earlier failure, at most 5 s.
FAILURE_DELAY_S = 0.5
LOOPBACK_ADDRESSES = ("127.0.0.1", "localhost", "::1")


def oidc_configured() -> bool:
    """Return whether .streamlit/secrets.toml configures Streamlit's OpenID Connect login."""
    try:
        return "auth" in st.secrets
    except FileNotFoundError:  # no secrets file at all
        return False


def current_mode(settings: Settings) -> AuthMode:
    return auth_mode(settings.auth, oidc_configured())


def require_login(settings: Settings) -> User | None:
    """Return the logged-in user, or None with auth off. While no user is logged in, show only
    the login and stop the run."""
    mode = current_mode(settings)
    if mode is AuthMode.OFF:
        return None
    if mode is AuthMode.OIDC:
        return _oidc_user(settings)
    return _password_user(settings)


def _show_only(render: Callable[[], None]) -> NoReturn:
    """Run `render` as the app's only page and end the run.

    Navigation with this one page replaces the app's pages, so no URL reaches another page.
    """
    st.navigation([st.Page(render, title="Log in", url_path="login")], position="hidden").run()
    st.stop()
    raise AssertionError("unreachable: st.stop() ends the run")


def _oidc_login() -> None:
    st.title("Platform Monitor")
    st.write("Log in with your organisation's account to see the platform's health.")
    st.button("Log in", on_click=st.login, type="primary", key="auth.login")


def _oidc_user(settings: Settings) -> User:
    if not st.user.is_logged_in:
        _show_only(_oidc_login)
    email = str(st.user.get("email") or "")
    groups = st.user.get("groups") or []
    name = st.user.get("name")
    return oidc_user(settings.auth, email, str(name) if name else None,
                     [str(group) for group in groups])


def _password_user(settings: Settings) -> User:
    user: User | None = st.session_state.get(USER_KEY)
    if user is not None:
        return user
    _show_only(lambda: _password_login(settings))


def _password_login(settings: Settings) -> None:
    st.title("Platform Monitor")
    # clear_on_submit drops the typed password from the session once the form is read.
    with st.form("auth.password_form", clear_on_submit=True):
        username = st.text_input("User name", key="auth.username")
        password = st.text_input("Password", type="password", key="auth.password")
        submitted = st.form_submit_button("Log in", type="primary")
    if submitted:
        user = password_login(settings.auth, username, password)
        if user is not None:
            st.session_state[USER_KEY] = user
            st.session_state.pop(FAILURES_KEY, None)
            st.rerun()
        failures = st.session_state.get(FAILURES_KEY, 0) + 1
        st.session_state[FAILURES_KEY] = failures
        # Slows down guessing from one session; the wait grows with each failure.
        time.sleep(min(5.0, FAILURE_DELAY_S * (failures - 1)))
        st.error("The user name or password is wrong.")


def render_user(settings: Settings, user: User | None) -> None:
    """Show who is logged in and a logout button in the sidebar, or that auth is off."""
    mode = current_mode(settings)
    with st.sidebar:
        if user is None:
            address = str(st.get_option("server.address") or "")
            if address in LOOPBACK_ADDRESSES:
                st.caption("Auth is off: the app serves 127.0.0.1 only, and anyone with access "
                           "can acknowledge alerts.")
            else:
                st.warning(escape_markdown(
                    f"Auth is off, but the app listens on {address or 'every address'}: anyone "
                    "who can reach it can acknowledge alerts. Configure a login, or set "
                    "server.address to 127.0.0.1."
                ))
            return
        role = "operator" if user.can_acknowledge else "viewer"
        st.caption(escape_markdown(f"Logged in as {user.name} ({role})"))
        if mode is AuthMode.OIDC:
            st.button("Log out", on_click=st.logout, key="auth.logout")
        elif st.button("Log out", key="auth.logout"):
            st.session_state.pop(USER_KEY, None)
            st.rerun()


def remember(user: User | None) -> None:
    """Keep this run's user for the pages."""
    st.session_state[CURRENT_KEY] = user


def logged_in_user() -> User | None:
    """Return the user the entry point logged in, None with auth off."""
    user: User | None = st.session_state.get(CURRENT_KEY)
    return user
