"""Calibrated one-sided tests of a window's metric against the reference period's.

Each returns (z, p) for "the window is worse than the reference": accuracy by
a two-proportion z-test (pooled); a class's precision, recall, or the share of
its true positives among the labels F1 counts by Fisher's exact test (z: the
normal quantile of its p); a mean loss
per label (absolute error, squared error, Brier, log loss) by a two-sample
z-test of means (Welch), ROC AUC by the normal approximation of Hanley and
McNeil (1982) to each AUC's standard error (no bootstrap). The metrics of one
window are tested together: :func:`bh_adjusted` turns their p-values into
Benjamini-Hochberg's, so a window of a stationary stream alarms with
probability at most ``alpha`` however many metrics it has.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


def proportion_drop(
    ref_correct: int, ref_n: int, win_correct: int, win_n: int
) -> tuple[float, float]:
    pooled = (ref_correct + win_correct) / (ref_n + win_n)
    var = pooled * (1 - pooled) * (1 / ref_n + 1 / win_n)
    if var <= 0:
        return 0.0, 1.0
    z = (ref_correct / ref_n - win_correct / win_n) / math.sqrt(var)
    return z, float(stats.norm.sf(z))


def proportion_drop_exact(
    ref_hits: int, ref_n: int, win_hits: int, win_n: int
) -> tuple[float, float]:
    """As :func:`proportion_drop`, by Fisher's exact test: for a class's few labels in a
    window (a hundred or so, right 95% of the time) the normal approximation's tail is
    several times too light at the p-values that alarm."""
    table = [[ref_hits, ref_n - ref_hits], [win_hits, win_n - win_hits]]
    p = float(stats.fisher_exact(table, alternative="greater").pvalue)
    return float(stats.norm.isf(min(max(p, 1e-300), 1.0))), p


def mean_rise(ref: np.ndarray, win: np.ndarray) -> tuple[float, float]:
    """Is the window's mean loss per label larger than the reference's?"""
    with np.errstate(over="ignore", invalid="ignore"):
        ref_var = float(np.var(ref, ddof=1)) if len(ref) > 1 else 0.0
        win_var = float(np.var(win, ddof=1)) if len(win) > 1 else 0.0
    ref_mean = float(np.mean(ref))
    se = math.sqrt(ref_var / len(ref) + win_var / len(win))
    if not se > 0 or not math.isfinite(se):  # no spread, or losses too large to square
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


def bh_adjusted(p_values: list[float], weights: list[float] | None = None) -> list[float]:
    """Benjamini-Hochberg's adjusted p-values (each at most 1), in the order given;
    weighted (Genovese, Roeder and Wasserman 2006) with ``weights`` averaging 1: a
    p-value counts as p / weight, so a metric of weight 2.5 needs a p 2.5 times
    larger than one of weight 1 to be rejected, at the same bound on false alarms."""
    m = len(p_values)
    weighted = [p / w for p, w in zip(p_values, weights or [1.0] * m, strict=True)]
    order = sorted(range(m), key=lambda i: weighted[i])
    out = [1.0] * m
    running = 1.0
    for rank in range(m, 0, -1):  # from the largest p down, keeping the minimum so far
        i = order[rank - 1]
        running = min(running, weighted[i] * m / rank)
        out[i] = running
    return out
