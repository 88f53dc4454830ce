from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(600)
def test_benchmarks_tiny_run_prints_ratios(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--tiny", "--days", "0.05", "--repeat", "1",
         "--data-dir", str(tmp_path / "bench"), "--json", str(results)],
        cwd=ROOT, capture_output=True, text=True, timeout=590, check=False,
    )

    assert completed.returncode == 0, completed.stderr[-2000:]
    for section in ("== Query", "== Collector", "== Pages", "== Footprint", "== Exporters"):
        assert section in completed.stdout
    assert "x vs embedded store" in completed.stdout
    assert "x vs parser alone" in completed.stdout
    assert "x vs from memory" in completed.stdout
    assert "x vs uninstrumented" in completed.stdout
    assert "RSS added by the history" in completed.stdout
    assert "failed: none" in completed.stdout
    assert results.exists()
