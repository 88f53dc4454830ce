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
    assert "is kept" in caplog.text


def test_no_folder(tmp_path: Path) -> None:
    assert not remove_leftover_pages(tmp_path)


@pytest.mark.parametrize("extra", ["empty folder", "text in cache", "link to a file",
                                   "link to a folder"])
def test_anything_but_bytecode_kept(tmp_path: Path, extra: str) -> None:
    cache = tmp_path / "pages" / "__pycache__"
    cache.mkdir(parents=True)
    (cache / "overview.cpython-311.pyc").write_bytes(b"\0")
    data = tmp_path / "data"
    data.mkdir()
    (data / "notes.txt").write_text("mine\n", encoding="utf-8")
    if extra == "empty folder":
        (tmp_path / "pages" / "drafts").mkdir()
    elif extra == "text in cache":
        (cache / "NOTES.txt").write_text("mine\n", encoding="utf-8")
    elif extra == "link to a file":
        (tmp_path / "pages" / "notes.txt").symlink_to(data / "notes.txt")
    else:
        (tmp_path / "pages" / "data").symlink_to(data)
    assert not remove_leftover_pages(tmp_path)
    assert (cache / "overview.cpython-311.pyc").exists()
    assert (data / "notes.txt").exists()


def test_pages_link_kept_without_error(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    target = tmp_path / "elsewhere"
    (target / "__pycache__").mkdir(parents=True)
    (tmp_path / "pages").symlink_to(target)
    with caplog.at_level(logging.WARNING, logger="app_pages.leftovers"):
        assert not remove_leftover_pages(tmp_path)
    assert (tmp_path / "pages").is_symlink()
    assert (target / "__pycache__").is_dir()
    assert "is kept" in caplog.text
