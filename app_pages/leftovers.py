"""Remove a `pages/` folder that an update of an older checkout left beside the entry point.

The page scripts once lived in `pages/`. Git removes the tracked files of a renamed folder but
keeps the ignored `__pycache__` inside it, and Streamlit takes any folder named `pages` beside
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
    """Delete `root/pages` when it holds only bytecode caches; return True if it was deleted.

    A folder with any other file in it is kept, with a warning that names what it breaks.
    """
    folder = root / "pages"
    if not folder.is_dir():
        return False
    others = [path for path in folder.rglob("*")
              if path.is_file() and "__pycache__" not in path.relative_to(folder).parts]
    if others:
        log.warning(
            "%s holds %d files; Streamlit shows \"Page not found\" on the first visit to a "
            "page's URL after each start while a folder named pages is beside the entry "
            "point. Move them elsewhere.", folder, len(others),
        )
        return False
    shutil.rmtree(folder)
    log.info("removed %s, which held only bytecode caches left by an update", folder)
    return True


@functools.cache
def remove_leftover_pages_once() -> bool:
    """Run `remove_leftover_pages` on the app's folder once per process."""
    return remove_leftover_pages()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    remove_leftover_pages(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT)
