from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lib.config import DEFAULT_THRESHOLDS, Settings, StorageSettings, TargetConfig, Thresholds
from tests.support.fault_server import FaultServer


@pytest.fixture
def fault_server() -> Iterator[FaultServer]:
    server = FaultServer()
    yield server
    server.stop()


def make_settings(urls: dict[str, str], data_dir: Path, **overrides: float) -> Settings:
    """Return settings watching `urls` (system id -> URL) with the default names and colours."""
    names = {"automatrix": ("AutoMatrix", "autmatrix_"), "relaycore": ("RelayCore", "relaycore_"),
             "neuroweaver": ("NeuroWeaver", "neuroweaver_")}
    targets = tuple(
        TargetConfig(system, names.get(system, (system, ""))[0], url, "#4C78A8",
                     names.get(system, (system, f"{system}_"))[1],
                     thresholds=DEFAULT_THRESHOLDS.get(system, Thresholds()))
        for system, url in urls.items()
    )
    return Settings(targets=targets, storage=StorageSettings(data_dir=data_dir), **overrides)
