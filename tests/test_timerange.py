from __future__ import annotations

import pytest

from lib.timerange import MAX_POINTS, TimeRange, choose_step, format_seconds

NOW = 1_700_000_123.0


@pytest.mark.parametrize(
    ("preset", "step", "window"),
    [("1h", 15, 60), ("6h", 60, 60), ("24h", 300, 300), ("7d", 1800, 1800)],
)
def test_preset_step_and_window(preset: str, step: float, window: float) -> None:
    time_range = TimeRange.preset(preset, now=NOW, scrape_interval=15)
    assert time_range.step == step
    assert time_range.window == window


@pytest.mark.parametrize("preset", ["1h", "6h", "24h", "7d"])
def test_preset_points_bounded(preset: str) -> None:
    points = TimeRange.preset(preset, now=NOW).points()
    assert len(points) <= MAX_POINTS + 1
    assert points[-1] <= NOW


def test_end_aligned_to_step() -> None:
    time_range = TimeRange.preset("24h", now=NOW)
    assert time_range.end_s % time_range.step == 0
    assert TimeRange.preset("24h", now=NOW + 10).end == time_range.end


def test_rate_window_covers_four_scrapes() -> None:
    assert TimeRange.preset("1h", now=NOW, scrape_interval=30).window == 120


def test_step_never_finer_than_scrape() -> None:
    assert choose_step(600, scrape_interval=15) == 15


def test_unknown_preset_rejected() -> None:
    with pytest.raises(ValueError, match="unknown time range '2w'"):
        TimeRange.preset("2w", now=NOW)


def test_shifted_moves_whole_range() -> None:
    time_range = TimeRange.preset("1h", now=NOW)
    shifted = time_range.shifted(86400)
    assert shifted.end_s == time_range.end_s - 86400
    assert shifted.step == time_range.step


def test_describe_names_step_and_zone() -> None:
    assert TimeRange.preset("6h", now=NOW).describe() == "last 6h · step 1m · rate window 1m · UTC"


@pytest.mark.parametrize(("seconds", "text"), [(15, "15s"), (60, "1m"), (1800, "30m"),
                                                (7200, "2h"), (86400, "1d"), (90, "90s")])
def test_format_seconds(seconds: float, text: str) -> None:
    assert format_seconds(seconds) == text
