"""A pages/ folder left by an update is removed; one with files of its own is kept."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from app_pages.leftovers import remove_leftover_pages


def test_bytecode_only_folder_removed(tmp_path: Path) -> None:
    cache = tmp_path / "pages" / "__pycache__"
    cache.mkdir(parents=True)
    (cache / "overview.cpython-311.pyc").write_bytes(b"\0")
    assert remove_leftover_pages(tmp_path)
    assert not (tmp_path / "pages").exists()


def test_folder_with_files_kept(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "pages"
    (folder / "__pycache__").mkdir(parents=True)
    (folder / "notes.py").write_text("print('mine')\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="app_pages.leftovers"):
        assert not remove_leftover_pages(tmp_path)
    assert (folder / "notes.py").exists()
    assert "Page not found" in caplog.text


def test_no_folder(tmp_path: Path) -> None:
    assert not remove_leftover_pages(tmp_path)
