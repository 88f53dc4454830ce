"""Resident memory of the app's process after it has drawn every page on a loaded history.

Runs in a fresh process, so that nothing else the benchmark loaded counts:

    python -m benchmarks.app_memory DATA_DIR END INTERVAL

It opens the embedded store in DATA_DIR as the app does (a Monitor on an EmbeddedSource, no
collector). It renders each page of the navigation through Streamlit's AppTest at every range
preset with the clock at END. Then it prints one JSON line: resident memory now and at its peak
(VmRSS, VmHWM), the pages drawn, and the pages that failed. An empty DATA_DIR gives the
baseline: the same process and pages without history.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import streamlit as st
from streamlit.testing.v1 import AppTest

from app_pages.state import REFRESH_KEY, TIME_RANGE_KEY
from benchmarks.history import settings_for
from benchmarks.pages_bench import APP_FILE, PinnedMonitor, use_monitor
from lib.monitor import STORE_FILE
from lib.sources.embedded import EmbeddedSource
from lib.store import Store
from lib.timerange import PRESETS

PAGE_FILES = ("overview", "cross_system", "targets", "export", "automatrix", "relaycore",
              "neuroweaver")


def memory() -> dict[str, int]:
    """Return this process's VmRSS and VmHWM in bytes."""
    found = {}
    for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) * 1024
    return found


def main(argv: list[str]) -> int:
    directory, end, interval = Path(argv[0]), float(argv[1]), float(argv[2])
    settings = settings_for(directory, interval)
    store = Store(directory / STORE_FILE)
    use_monitor(PinnedMonitor(settings, EmbeddedSource(store, interval), store, end))
    drawn, failed = 0, []
    for page in PAGE_FILES:
        for preset in PRESETS:
            st.cache_data.clear()
            app = AppTest.from_file(str(APP_FILE), default_timeout=300)
            app.session_state[TIME_RANGE_KEY] = preset
            app.session_state[REFRESH_KEY] = None
            app.switch_page(f"app_pages/{page}.py")
            app.run()
            if app.exception:
                failed.append(f"{page} {preset}: {app.exception[0].message}")
            else:
                drawn += 1
    print(json.dumps({**memory(), "pages_drawn": drawn, "failed": failed}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
