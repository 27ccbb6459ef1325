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
    """Confidence collapse: the window's mean score fell below the reference's.

    A one-sided Welch z-test for a lower mean score (unequal variances, normal
    approximation, which the window sizes make safe). The effect size is the
    change of the mean in reference standard deviations, negative when the
    score fell. Runs on the score only.

    Parameters
    ----------
    critical_effect
        Drop, in reference standard deviations, at or above which a finding is
        critical rather than a warning.
    min_values
        Fewest finite scores the window and the reference each need to be tested.

    Examples
    --------
    >>> import numpy as np
    >>> from detectors.reference import NumericReference
    >>> from detectors.window import ConfidenceDrop, NumericWindow
    >>> rng = np.random.default_rng(0)
    >>> reference = NumericReference.build(rng.beta(8, 2, 5000))
    >>> confidence = ConfidenceDrop()
    >>> same = confidence.test_numeric(reference, NumericWindow(rng.beta(8, 2, 1000)))
    >>> print(f"p = {same.p_value:.2f}")
    p = 0.96
    >>> fallen = confidence.test_numeric(reference, NumericWindow(rng.beta(4, 2, 1000)))
    >>> print(f"p = {fallen.p_value:.0e}, effect = {fallen.effect_size:.2f}, {fallen.severity}")
    p = 6e-118, effect = -1.16, critical

    References
    ----------
    .. [1] Welch, B. L. (1947). The generalization of 'Student's' problem when
       several different population variances are involved. *Biometrika*,
       34(1-2), 28-35.
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
