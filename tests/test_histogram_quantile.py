from __future__ import annotations

import math

import numpy as np
import pytest

from lib.signals import histogram_quantile

INF = math.inf


@pytest.mark.parametrize(
    ("q", "bounds", "counts", "expected"),
    [
        # Rank 95 of 100 falls in (0.1, 0.25] holding observations 51..100: 0.1 + 0.15 * 45/50.
        (0.95, [0.05, 0.1, 0.25, INF], [20, 50, 100, 100], 0.235),
        # The first bucket interpolates from 0.
        (0.5, [0.1, 0.2, INF], [10, 10, 10], 0.05),
        # A rank in the +Inf bucket returns the highest finite bound.
        (0.99, [0.1, 0.2, INF], [10, 50, 100], 0.2),
        # Counts that dip (scrape timing) are made monotonic first: [10, 10, 30, 40] puts rank 20
        # in (0.2, 0.4], so 0.2 + 0.2 * 10/20.
        (0.5, [0.1, 0.2, 0.4, INF], [10, 9, 30, 40], 0.3),
    ],
)
def test_matches_prometheus(q: float, bounds: list[float], counts: list[float],
                            expected: float) -> None:
    result = histogram_quantile(q, np.array(bounds), np.array(counts, dtype=float))
    assert result == pytest.approx(expected)


def test_no_observations_is_nan() -> None:
    assert math.isnan(histogram_quantile(0.95, np.array([0.1, INF]), np.array([0.0, 0.0])))


def test_missing_inf_bucket_is_nan() -> None:
    assert math.isnan(histogram_quantile(0.95, np.array([0.1, 0.2]), np.array([1.0, 2.0])))


def test_vectorised_matches_scalar() -> None:
    from lib.signals import histogram_quantiles

    generator = np.random.default_rng(5)
    bounds = np.array([0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, INF])
    increments = generator.integers(0, 20, size=(400, len(bounds))).astype(float)
    counts = np.cumsum(increments, axis=1)
    counts[::7] = 0.0  # no observations
    counts[3::11, 2] -= 5.0  # a dip from scrape timing
    counts[5::13, 4] = np.nan  # a missing bucket
    counts[9::17, -1] = counts[9::17, -2]  # nothing in +Inf
    for q in (0.0, 0.5, 0.95, 1.0):
        expected = np.array([histogram_quantile(q, bounds, row) for row in counts])
        np.testing.assert_allclose(histogram_quantiles(q, bounds, counts), expected,
                                   equal_nan=True)
