"""Entry point of the Platform Monitor Streamlit app: page setup, navigation and the sidebar.

Run it with `streamlit run streamlit_app.py`. Each page is a script in the app_pages package.
A folder named pages/ beside this file would make Streamlit show "Page not found" on the first
visit to a page's URL after each start, because it treats that folder as the older multipage
layout until st.navigation has run once. app_pages.leftovers removes one that an update left
behind.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app_pages.access import remember, render_user, require_login
from app_pages.leftovers import remove_leftover_pages_once
from app_pages.state import cached_monitor, render_sidebar
from lib.config import ConfigError
from lib.errors import MonitorError
from lib.format import escape_markdown

APP_TITLE = "Platform Monitor"
FAVICON = Path(__file__).parent / "assets" / "favicon.png"


def main() -> None:
    """Set up the page, start the Monitor once per process and run the selected page."""
    st.set_page_config(page_title=APP_TITLE, page_icon=str(FAVICON), layout="wide")

    try:
        monitor = cached_monitor()
    except (ConfigError, MonitorError, OSError) as error:
        st.error(f"Platform Monitor could not start: {escape_markdown(str(error))}")
        st.stop()
    # After the monitor, which sets up logging, so that what it did is in the app's log.
    remove_leftover_pages_once()

    # The gate comes before navigation, so that no page renders for a visitor who is not logged in.
    user = require_login(monitor.settings)
    remember(user)

    # Pages are files, not callables, so that AppTest.switch_page can open each of them.
    navigation = st.navigation(
        {
            "Platform": [
                st.Page("app_pages/overview.py", title="Overview", icon=":material/dashboard:",
                        default=True),
                st.Page("app_pages/cross_system.py", title="Cross-system metrics",
                        icon=":material/monitoring:", url_path="cross-system"),
                st.Page("app_pages/alerts.py", title="Alerts", icon=":material/notifications:"),
                st.Page("app_pages/targets.py", title="Targets", icon=":material/lan:"),
                st.Page("app_pages/export.py", title="Export", icon=":material/download:"),
            ],
            "Systems": [
                st.Page("app_pages/automatrix.py", title="AutoMatrix",
                        icon=":material/account_tree:"),
                st.Page("app_pages/relaycore.py", title="RelayCore", icon=":material/alt_route:"),
                st.Page("app_pages/neuroweaver.py", title="NeuroWeaver",
                        icon=":material/neurology:"),
            ],
        }
    )
    # The browser tab names the page first, so that several open tabs stay apart.
    st.set_page_config(page_title=f"{navigation.title} · {APP_TITLE}")
    render_sidebar(monitor)
    render_user(monitor.settings, user)
    navigation.run()


main()
