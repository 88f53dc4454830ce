"""The app's Streamlit configuration file, which Streamlit ignores whole if it is invalid."""

from __future__ import annotations

import tomllib
from pathlib import Path

STREAMLIT_CONFIG = Path(__file__).resolve().parents[1] / ".streamlit" / "config.toml"


def test_streamlit_config_parses() -> None:
    # Streamlit 1.67 logs a parse error and then runs with its defaults, so only a test notices.
    config = tomllib.loads(STREAMLIT_CONFIG.read_text(encoding="utf-8"))

    assert config["server"]["address"] == "127.0.0.1"
    assert config["client"]["toolbarMode"] == "viewer"
    assert config["theme"]["light"]["textColor"] == "#111111"
