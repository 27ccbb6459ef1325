"""Confidence-based performance estimation (CBPE; Kapoor et al., as in NannyML).

With calibrated class probabilities a model's expected confusion matrix over a
window follows without labels: a row predicted as class ``k`` is right with
probability ``P[i, k]``, and each other class ``j`` is its truth with
probability ``P[i, j]``. Expected accuracy, F1 and ROC AUC follow from it.

``P`` is an ``n x K`` matrix of calibrated probabilities (rows sum to 1) and
``predicted`` the predicted class index of each row. F1 and ROC AUC are of the
``positive`` class for a binary model (K = 2), else macro averages over the
classes (one-vs-rest). Realized metrics take the true class index instead.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize

METRICS = ("accuracy", "f1", "roc_auc")


def fit_isotonic(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Isotonic (non-decreasing) regression of ``y`` on ``x`` (scipy's pool-adjacent-
    violators over the distinct ``x`` values, each weighted by its count).

    Returns interpolation points: each pooled block gives its lowest and highest
    ``x`` at the block's mean ``y``; :func:`apply_isotonic` interpolates
    linearly between them and clips outside, as scikit-learn's
    ``IsotonicRegression(out_of_bounds="clip")`` does.
    """
    order = np.argsort(x, kind="stable")
    return _fit_sorted(x[order], y[order])


def _fit_sorted(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`fit_isotonic` of ``xs`` sorted (``ys`` in their order; finite ``xs``)."""
    first = np.empty(len(xs), dtype=bool)
    first[:1] = True
    first[1:] = xs[1:] != xs[:-1]
    start = np.flatnonzero(first)  # where each distinct x starts, as np.unique finds it
    unique = xs[start]
    counts = np.diff(start, append=len(xs)).astype(np.float64)
    sums = np.add.reduceat(ys.astype(np.float64), start)
    fit = optimize.isotonic_regression(sums / counts, weights=counts)
    lows, highs = fit.blocks[:-1], fit.blocks[1:] - 1
    xp = np.column_stack([unique[lows], unique[highs]]).ravel()
    return xp, np.repeat(fit.x[lows], 2)


def apply_isotonic(xp: np.ndarray, fp: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.asarray(np.interp(x, xp, fp), dtype=np.float64)


def f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """F1 from (expected) true positives, false positives and false negatives; 0 where
    there are none of the three."""
    denominator = 2 * tp + fp + fn
    out = np.zeros_like(tp, dtype=np.float64)
    np.divide(2 * tp, denominator, out=out, where=denominator > 0)
    return out


def _auc_rows(ranking: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """AUC of ``ranking`` for each row of ``positive`` (m x n): row j weighs item i as a
    positive by positive[j, i] and as a negative by the rest. The pairs ranked right
    (ties count half) over all positive-negative pairs, each weighted: with 0/1 rows the
    Mann-Whitney AUC, with probabilities the expected pairs' (CBPE)."""
    order = np.argsort(ranking, kind="stable")
    start = _distinct_starts(ranking[order])
    # Items down the first axis (contiguous): reduceat and cumsum run along it fast.
    pos = np.ascontiguousarray(positive[:, order].T, dtype=np.float64)
    if len(start) < len(order):  # ties: one group per distinct value
        pos = np.add.reduceat(pos, start, axis=0)
    neg = np.diff(np.append(start, len(order)))[:, None] - pos
    below = np.cumsum(neg, axis=0) - neg  # negatives ranked strictly lower
    right = np.sum(pos * (below + 0.5 * neg), axis=0)
    pairs = pos.sum(axis=0) * neg.sum(axis=0)
    out = np.full(len(pairs), np.nan)
    np.divide(right, pairs, out=out, where=pairs > 0)
    return out


def _distinct_starts(ranked: np.ndarray) -> np.ndarray:
    """Where each distinct value of sorted ``ranked`` starts: ``np.unique(ranked,
    return_index=True)[1]`` without its sort of what is sorted already. NaNs (sorted
    last) are one value to ``np.unique``: with any, it answers."""
    if len(ranked) and ranked[-1] != ranked[-1]:
        return np.unique(ranked, return_index=True)[1]
    first = np.empty(len(ranked), dtype=bool)
    first[:1] = True
    np.not_equal(ranked[1:], ranked[:-1], out=first[1:])
    return np.flatnonzero(first)


def classes(k: int, positive: int) -> list[int]:
    """The classes F1 and ROC AUC are of: the positive one of two, else all (macro)."""
    return [positive] if k == 2 else list(range(k))


def estimate(
    calibrated: np.ndarray, raw: np.ndarray, predicted: np.ndarray, positive: int
) -> dict[str, float]:
    """Estimated accuracy, F1 and ROC AUC of one window (see the module docstring).

    ``raw`` holds the model's own probabilities: they rank the rows for the AUC
    (calibration keeps their order but may tie them).
    """
    n, k = calibrated.shape
    rows = np.arange(n)
    accuracy = float(calibrated[rows, predicted].mean())
    f1s, aucs = [], []
    for c in classes(k, positive):
        p = calibrated[:, c]
        is_c = predicted == c
        tp, fp, fn = p[is_c].sum(), (1 - p[is_c]).sum(), p[~is_c].sum()
        f1s.append(float(f1(np.array([tp]), np.array([fp]), np.array([fn]))[0]))
        aucs.append(float(_auc_rows(raw[:, c], p[None, :])[0]))
    return {"accuracy": accuracy, "f1": float(np.mean(f1s)), "roc_auc": float(np.mean(aucs))}


def realized(
    raw: np.ndarray, predicted: np.ndarray, truth: np.ndarray, positive: int
) -> dict[str, float]:
    """The same metrics from the true class indices (NaN where a class is absent)."""
    k = raw.shape[1]
    f1s, aucs = [], []
    for c in classes(k, positive):
        is_c, true_c = predicted == c, truth == c
        tp = np.array([float(np.sum(is_c & true_c))])
        fp = np.array([float(np.sum(is_c & ~true_c))])
        fn = np.array([float(np.sum(~is_c & true_c))])
        f1s.append(float(f1(tp, fp, fn)[0]))
        aucs.append(float(_auc_rows(raw[:, c], true_c[None, :])[0]))
    return {
        "accuracy": float(np.mean(predicted == truth)),
        "f1": float(np.mean(f1s)),
        "roc_auc": float(np.mean(aucs)),
    }


def draw_labels(calibrated: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A class index per row, drawn from its calibrated probabilities."""
    u = rng.random(len(calibrated))
    cumulative = np.cumsum(calibrated, axis=1)
    drawn = np.minimum((u[:, None] >= cumulative).sum(axis=1), calibrated.shape[1] - 1)
    return np.asarray(drawn, dtype=np.int64)


def needs_calibration(
    p: np.ndarray, y: np.ndarray, rng: np.random.Generator, splits: int = 10
) -> bool:
    """Whether isotonic calibration makes ``p`` better probabilities of the outcomes ``y``
    (0/1): fitted on 90% and applied to 10%, ``splits`` times, the pooled held-out Brier
    score must fall. NannyML asks the same of the binned calibration error; the Brier
    score, a proper scoring rule, is far less noisy, so scores calibrated already stay as
    they are instead of taking on the fit's noise (isotonic regression overfits: at the
    ends of the scores it pools few labels, all of one class, into probabilities 0 and 1)."""
    if y.min() == y.max():
        return False
    before, after = held_out_brier(p, y, rng, splits)
    return after < before


def held_out_brier(
    p: np.ndarray, y: np.ndarray, rng: np.random.Generator, splits: int
) -> tuple[float, float]:
    """The held-out Brier scores of :func:`needs_calibration`, summed over the splits:
    of ``p`` as they are, and isotonically calibrated on each split's other rows."""
    before = after = 0.0
    n = len(p)
    held = max(n // 10, 1)
    # Sorted once: a split's training rows are the sorted rows it keeps. Tied scores may
    # come in another order than a sort of the split's own would give, which changes no
    # figure: the fit sums each score's outcomes, 0s and 1s, exactly in any order, and
    # tied scores are the same number (-0.0 and 0.0 aside, which interpolate alike).
    by_score = np.argsort(p, kind="stable")
    p_sorted, y_sorted = p[by_score], y[by_score]
    for _ in range(splits):
        test = rng.permutation(n)[:held]
        train = np.ones(n, dtype=bool)
        train[test] = False
        kept = train[by_score]
        xp, fp = _fit_sorted(p_sorted[kept], y_sorted[kept])
        outcome = y[test].astype(np.float64)
        before += float(np.sum((p[test] - outcome) ** 2))
        after += float(np.sum((apply_isotonic(xp, fp, p[test]) - outcome) ** 2))
    return before, after
