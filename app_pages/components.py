"""Widgets that several pages share: the previous-period choice, the download menu and the
notice that history is still loading."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from lib.compare import COMPARISONS
from lib.export import MIME_TYPES, Export, render

DOWNLOAD_FORMATS = (("CSV", "csv", False), ("Wide CSV", "csv", True), ("JSON", "json", False),
                    ("Parquet", "parquet", False))


def comparison_shift(key: str) -> float | None:
    """Render the previous-period choice and return the shift in seconds (None for none)."""
    choice = st.segmented_control(
        "Compare with",
        options=list(COMPARISONS),
        default="none",
        required=True,
        key=key,
        help="Draw the same range one day or one week earlier as dashed lines, with the "
             "change in percent in the tooltip.",
    )
    return COMPARISONS.get(choice or "none")


def download_menu(build: Callable[[], Export], file_stem: str, key: str) -> None:
    """Render a Download menu whose buttons build the file only when clicked.

    The buttons pass a callable as `data`, which Streamlit 1.67 runs on click, and
    `on_click="ignore"`, so that a download does not rerun the page.
    """
    with st.popover("Download", icon=":material/download:"):
        for label, file_format, wide in DOWNLOAD_FORMATS:
            suffix = "_wide" if wide else ""
            st.download_button(
                label,
                data=_renderer(build, file_format, wide),
                file_name=f"{file_stem}{suffix}.{file_format}",
                mime=MIME_TYPES[file_format],
                on_click="ignore",
                key=f"{key}.{file_format}{suffix}",
            )


def _renderer(build: Callable[[], Export], file_format: str, wide: bool) -> Callable[[], bytes]:
    def render_file() -> bytes:
        return render(build(), file_format, wide=wide)

    return render_file


def loading_notice(loading_history: bool) -> None:
    """Show a notice while the simulated history is still being written
    (`Monitor.loading_history()`), since charts, rates and costs then cover only part of the
    range.

    The container is there either way, so that the elements after it keep their place when
    the notice goes and Streamlit updates the charts in place.
    """
    with st.container():
        if loading_history:
            st.info("The simulated platform's history is still being written. Charts, rates "
                    "and costs cover only part of the range until it is done, usually within "
                    "a minute.", icon=":material/hourglass_top:")
