from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from lib.config import DEFAULT_THRESHOLDS, Settings, StorageSettings, TargetConfig, Thresholds
from tests.support.fault_server import FaultServer

if TYPE_CHECKING:
    from tests.support.platform_run import PlatformRun

PLATFORM_HOUR_START = 1_700_002_800.0  # 2023-11-14 23:00 UTC, a whole hour


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


@pytest.fixture(scope="session")
def platform_hour(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformRun]:
    """The simulated platform scraped every 15 s from PLATFORM_HOUR_START for one hour."""
    from tests.support.platform_run import start_platform_run  # it imports make_settings

    run = start_platform_run(tmp_path_factory.mktemp("platform_hour"), PLATFORM_HOUR_START)
    run.scrape_until(PLATFORM_HOUR_START + 3600.0)
    yield run
    run.stop()
