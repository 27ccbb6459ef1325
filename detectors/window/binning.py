"""Shared binning of a window against its reference, for PSI and Jensen-Shannon."""

from __future__ import annotations

import numpy as np

from detectors.reference import CategoricalReference, NumericReference
from detectors.window.base import CategoricalWindow, NumericWindow
from detectors.window.chi2 import pooled_counts


def numeric_shares(
    ref: NumericReference, win: NumericWindow, bins: int
) -> tuple[np.ndarray, np.ndarray]:
    """Reference and window shares over the reference's quantile bins.

    Edges are the reference's interior quantiles, deduplicated, so discrete and
    zero-inflated features get one bin per atom rather than empty bins. Both
    sides are binned on the reference's grid (the window projected there), so a
    window value equal to a reference value shares its bin.
    """
    edges = grid_quantiles(ref.grid, np.arange(1, bins) / bins)
    # Sorted values: a bin's count is the difference of two positions.
    ref_counts = np.diff(np.searchsorted(ref.grid, edges, side="left"), prepend=0, append=ref.size)
    window = win.on_grid(ref)
    win_counts = np.diff(
        np.searchsorted(window, edges, side="left"), prepend=0, append=window.shape[0]
    )
    return ref_counts / ref_counts.sum(), win_counts / max(int(win_counts.sum()), 1)


def grid_quantiles(grid: np.ndarray, qs: np.ndarray) -> np.ndarray:
    """Distinct quantiles ``qs`` of the sorted float32 ``grid``, as ``np.quantile``
    (linear) interpolates them in float64, each raised to the next float32: a
    grid value is at or above the raised edge exactly when it is at or above
    the float64 one, so the float32 comparisons bin as the float64 edges would."""
    n = grid.shape[0]
    pos = qs * (n - 1)
    lo = np.floor(pos).astype(np.intp)
    hi = np.minimum(lo + 1, n - 1)
    t = pos - lo
    a, b = grid[lo].astype(np.float64), grid[hi].astype(np.float64)
    edges = np.where(t >= 0.5, b - (b - a) * (1 - t), a + (b - a) * t)  # numpy's lerp
    raised = edges.astype(np.float32)
    below = raised < edges
    raised[below] = np.nextafter(raised[below], np.float32(np.inf))
    unique: np.ndarray = np.unique(raised)
    return unique


def categorical_shares(
    ref: CategoricalReference, win: CategoricalWindow, min_expected: float = 5.0
) -> tuple[np.ndarray, np.ndarray]:
    """Reference and window shares over the reference labels, rare and unseen
    labels pooled into one bin (see :func:`detectors.window.chi2.pooled_bins`): with
    thousands of rare labels, per-label shares of a window are mostly noise."""
    ref_counts, win_counts, _ = pooled_counts(ref, win, min_expected)
    return ref_counts / max(ref_counts.sum(), 1.0), win_counts / max(win_counts.sum(), 1.0)
