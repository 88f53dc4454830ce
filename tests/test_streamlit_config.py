"""The shipped Streamlit configuration parses and keeps the app on loopback."""

from __future__ import annotations

import tomllib
from pathlib import Path

CONFIG = Path(__file__).resolve().parent.parent / ".streamlit" / "config.toml"


def test_config_parses_and_binds_loopback() -> None:
    # A repeated table makes the whole file invalid TOML, and Streamlit then falls back to
    # listening on every address.
    config = tomllib.loads(CONFIG.read_text(encoding="utf-8"))
    assert config["server"]["address"] == "127.0.0.1"
    assert config["browser"]["gatherUsageStats"] is False
