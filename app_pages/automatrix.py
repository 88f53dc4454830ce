"""AutoMatrix page: the system's own metrics by label, with top-N tables and downloads."""

from __future__ import annotations

from app_pages.system_detail import show_system
from lib.system_views import AUTOMATRIX

if __name__ == "__main__":  # Streamlit runs each page script as __main__
    show_system(AUTOMATRIX)
