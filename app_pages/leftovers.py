"""Remove a `pages/` folder that an update of an older checkout left beside the entry point.

The page scripts once lived in `pages/`. Git removes the tracked files of a renamed folder but
keeps the ignored `__pycache__` inside it, and Streamlit treats any folder named `pages` beside
the entry point for its older multipage layout until st.navigation has run once. The first
visit to a page's URL after each start then shows "Page not found" over the right page.

`python -m app_pages.leftovers` does the same before a server starts, as scripts/run.sh does.
"""

from __future__ import annotations

import functools
import logging
import shutil
import sys
from pathlib import Path

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent


def remove_leftover_pages(root: Path = ROOT) -> bool:
    """Delete `root/pages` when it contains nothing but `__pycache__` folders of `.pyc` files;
    return True if it was deleted.

    Anything else in it (a source file, another folder, a link), or a `pages` that is itself a
    link, is kept, with a warning that names what it breaks. So is a folder that cannot be
    read or removed: this never stops the app.
    """
    folder = root / "pages"
    if not folder.is_dir() and not folder.is_symlink():
        return False
    try:
        if not _only_bytecode(folder):
            log.warning(
                "%s is kept because it contains files other than bytecode caches. "
                "While a folder named pages is beside the entry point, Streamlit shows \"Page "
                "not found\" on the first visit to a page's URL after each start, so move its "
                "contents elsewhere.",
                folder,
            )
            return False
        shutil.rmtree(folder)
    except OSError as error:
        log.warning("could not remove %s, which an update left behind: %s", folder, error)
        return False
    log.info("removed %s, which contained only bytecode caches left by an update", folder)
    return True


def _only_bytecode(folder: Path) -> bool:
    if folder.is_symlink() or not folder.is_dir():
        return False
    for entry in folder.iterdir():
        if entry.name != "__pycache__" or entry.is_symlink() or not entry.is_dir():
            return False
        for cached in entry.iterdir():
            if cached.is_symlink() or not cached.is_file() or cached.suffix != ".pyc":
                return False
    return True


@functools.cache
def remove_leftover_pages_once() -> bool:
    """Run `remove_leftover_pages` on the app's folder once per process."""
    return remove_leftover_pages()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    remove_leftover_pages(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT)
