"""Confidence collapse: the window's mean score fell below the reference's."""

from __future__ import annotations

import math

import numpy as np

from detectors.reference import NumericReference
from detectors.window.base import (
    NUMERIC,
    SCORE,
    NumericWindow,
    WindowOutcome,
    WindowTest,
    require_positive,
    severity_for,
)


class ConfidenceDrop(WindowTest):
    """One-sided Welch z-test for a lower mean score than the reference.

    Effect size is the drop in reference standard deviations (negative when
    the score fell).
    """

    name = "confidence"
    kinds = frozenset({NUMERIC})
    roles = frozenset({SCORE})

    def __init__(self, critical_effect: float = 1.0, min_values: int = 30) -> None:
        require_positive("critical_effect", critical_effect)
        self.critical_effect = critical_effect
        self.min_values = min_values

    def test_numeric(self, ref: NumericReference, win: NumericWindow) -> WindowOutcome | None:
        n, m = int(win.sorted.shape[0]), ref.size
        if n < self.min_values or m < self.min_values:
            return None
        mean_w, mean_r = float(win.sorted.mean()), ref.mean
        var_w, var_r = float(np.var(win.sorted, ddof=1)), ref.var
        se = math.sqrt(var_w / n + var_r / m)
        if se == 0:
            return None
        z = (mean_w - mean_r) / se
        p = 0.5 * math.erfc(-z / math.sqrt(2))  # lower tail
        effect = (mean_w - mean_r) / ref.scale()
        return WindowOutcome(
            statistic=z,
            effect_size=effect,
            severity=severity_for(min(effect, 0.0), self.critical_effect),
            p_value=p,
            details={"mean_window": mean_w, "mean_reference": mean_r},
        )
