"""Calibrated one-sided tests of a window's metric against the reference period's.

Each returns (z, p) for "the window is worse than the reference": accuracy by a
two-proportion z-test (pooled), mean absolute error by a two-sample z-test of
means (Welch), ROC AUC by the normal approximation of Hanley and McNeil (1982)
to each AUC's standard error (no bootstrap).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


def accuracy_drop(
    ref_correct: int, ref_n: int, win_correct: int, win_n: int
) -> tuple[float, float]:
    pooled = (ref_correct + win_correct) / (ref_n + win_n)
    var = pooled * (1 - pooled) * (1 / ref_n + 1 / win_n)
    if var <= 0:
        return 0.0, 1.0
    z = (ref_correct / ref_n - win_correct / win_n) / math.sqrt(var)
    return z, float(stats.norm.sf(z))


def mae_rise(ref_n: int, ref_sum: float, ref_sumsq: float, win: np.ndarray) -> tuple[float, float]:
    ref_mean = ref_sum / ref_n
    ref_var = max(ref_sumsq / ref_n - ref_mean**2, 0.0) * ref_n / max(ref_n - 1, 1)
    win_var = float(np.var(win, ddof=1)) if len(win) > 1 else 0.0
    se = math.sqrt(ref_var / ref_n + win_var / len(win))
    if se <= 0:
        return 0.0, 1.0
    z = (float(np.mean(win)) - ref_mean) / se
    return z, float(stats.norm.sf(z))


def auc(scores: np.ndarray, positive: np.ndarray) -> tuple[float, int, int] | None:
    """ROC AUC of ``scores`` for the ``positive`` labels, and the two class sizes."""
    n1 = int(positive.sum())
    n0 = len(positive) - n1
    if n1 == 0 or n0 == 0:
        return None
    ranks = stats.rankdata(scores)
    u = float(ranks[positive].sum()) - n1 * (n1 + 1) / 2
    return u / (n1 * n0), n1, n0


def auc_variance(a: float, n1: int, n0: int) -> float:
    """Hanley and McNeil's variance of an AUC estimate from n1 positives and n0 negatives."""
    q1 = a / (2 - a)
    q2 = 2 * a * a / (1 + a)
    return (a * (1 - a) + (n1 - 1) * (q1 - a * a) + (n0 - 1) * (q2 - a * a)) / (n1 * n0)


def auc_drop(ref: tuple[float, int, int], win: tuple[float, int, int]) -> tuple[float, float]:
    se = math.sqrt(auc_variance(*ref) + auc_variance(*win))
    if se <= 0:
        return 0.0, 1.0
    z = (ref[0] - win[0]) / se
    return z, float(stats.norm.sf(z))
