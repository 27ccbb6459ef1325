"""Two-sample Kolmogorov-Smirnov test against a pre-sorted reference."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from detectors.reference import NumericReference
from detectors.window_test import (
    FEATURE,
    NUMERIC,
    PREDICTION_VALUE,
    SCORE,
    NumericWindow,
    WindowOutcome,
    WindowTest,
    require_positive,
    severity_for,
)


def ks_distances(ref_sorted: np.ndarray, win_sorted: np.ndarray) -> tuple[float, float]:
    """(D+, D-) of the two empirical CDFs: max(F_ref - F_win), max(F_win - F_ref).

    Between consecutive window values the window CDF is flat and the reference
    CDF monotone, so the extremes sit at window values: compare there both the
    right-continuous values and the left limits. That evaluates the reference
    CDF at window points only (searchsorted), never the reverse.
    """
    n1, n2 = ref_sorted.shape[0], win_sorted.shape[0]
    ref_right = np.searchsorted(ref_sorted, win_sorted, side="right") / n1
    ref_left = np.searchsorted(ref_sorted, win_sorted, side="left") / n1
    win_right = np.searchsorted(win_sorted, win_sorted, side="right") / n2
    win_left = np.searchsorted(win_sorted, win_sorted, side="left") / n2
    d_plus = max(float(np.max(ref_right - win_right)), float(np.max(ref_left - win_left)), 0.0)
    d_minus = max(float(np.max(win_right - ref_right)), float(np.max(win_left - ref_left)), 0.0)
    return d_plus, d_minus


def ks_pvalue(d: float, n1: int, n2: int) -> float:
    """Two-sided asymptotic p-value, as ``scipy.stats.ks_2samp(method="asymp")``."""
    m, n = sorted([float(n1), float(n2)], reverse=True)
    en = m * n / (m + n)
    return float(np.clip(stats.kstwo.sf(d, np.round(en)), 0.0, 1.0))


def ks_pvalue_one_sided(d: float, n1: int, n2: int) -> float:
    """One-sided asymptotic p-value (Hodges), as scipy's ``method="asymp"``."""
    m, n = sorted([float(n1), float(n2)], reverse=True)
    en = m * n / (m + n)
    z = np.sqrt(en) * d
    expt = -2 * z**2 - 2 * z * (m + 2 * n) / np.sqrt(m * n * (m + n)) / 3.0
    return float(np.clip(np.exp(expt), 0.0, 1.0))


class KolmogorovSmirnov(WindowTest):
    """KS distance between the window's and the reference's distributions.

    Effect size is the KS distance D itself (0..1); ``critical_effect`` marks a
    critical finding. Windows with fewer than ``min_values`` finite values are
    not tested (the missing-rate test covers them).
    """

    name = "ks"
    kinds = frozenset({NUMERIC})
    roles = frozenset({FEATURE, SCORE, PREDICTION_VALUE})

    def __init__(self, critical_effect: float = 0.25, min_values: int = 30) -> None:
        require_positive("critical_effect", critical_effect)
        if min_values < 2:
            raise ValueError(f"min_values must be >= 2, got {min_values!r}")
        self.critical_effect = critical_effect
        self.min_values = min_values

    def params(self) -> dict[str, Any]:
        return {"critical_effect": self.critical_effect, "min_values": self.min_values}

    def test_numeric(self, ref: NumericReference, win: NumericWindow) -> WindowOutcome | None:
        if win.sorted.shape[0] < self.min_values or ref.size < self.min_values:
            return None
        d_plus, d_minus = ks_distances(ref.values, win.sorted)
        d = max(d_plus, d_minus)
        p = ks_pvalue(d, ref.size, int(win.sorted.shape[0]))
        shift = float(np.median(win.sorted) - np.median(ref.values)) / ref.scale()
        return WindowOutcome(
            statistic=d,
            effect_size=d,
            severity=severity_for(d, self.critical_effect),
            p_value=p,
            details={"median_shift_in_ref_std": shift, "values": int(win.sorted.shape[0])},
        )
