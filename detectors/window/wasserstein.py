"""Wasserstein-1 distance between window and reference, in reference std units."""

from __future__ import annotations

import numpy as np

from detectors.reference import NumericReference
from detectors.window.base import (
    FEATURE,
    NUMERIC,
    PREDICTION_VALUE,
    SCORE,
    NumericWindow,
    WindowOutcome,
    WindowTest,
    enough_numeric,
    require_positive,
    threshold_outcome,
)


def wasserstein_1(u_sorted: np.ndarray, v_sorted: np.ndarray) -> float:
    """Area between the two empirical CDFs, as ``scipy.stats.wasserstein_distance``."""
    everything = np.sort(np.concatenate([u_sorted, v_sorted]))
    deltas = np.diff(everything)
    u_cdf = np.searchsorted(u_sorted, everything[:-1], side="right") / u_sorted.shape[0]
    v_cdf = np.searchsorted(v_sorted, everything[:-1], side="right") / v_sorted.shape[0]
    return float(np.sum(np.abs(u_cdf - v_cdf) * deltas))


class NormalisedWasserstein(WindowTest):
    """A threshold test: W1 divided by the reference standard deviation.

    0.1 means the window's mass moved by a tenth of a standard deviation on
    average; that is also the effect size.
    """

    name = "wasserstein"
    kinds = frozenset({NUMERIC})
    roles = frozenset({FEATURE, SCORE, PREDICTION_VALUE})

    def __init__(
        self, threshold: float = 0.1, critical_effect: float = 0.5, min_values: int = 100
    ) -> None:
        require_positive("threshold", threshold)
        require_positive("critical_effect", critical_effect)
        self.threshold = threshold
        self.critical_effect = critical_effect
        self.min_values = min_values

    def test_numeric(self, ref: NumericReference, win: NumericWindow) -> WindowOutcome | None:
        if not enough_numeric(ref, win, self.min_values):
            return None
        value = wasserstein_1(ref.values, win.sorted) / ref.scale()
        details = {"reference_std": ref.scale()}
        return threshold_outcome(value, self.threshold, self.critical_effect, details)
