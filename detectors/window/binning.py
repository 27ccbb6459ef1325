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
    zero-inflated features get one bin per atom rather than empty bins.
    """
    qs = np.arange(1, bins) / bins
    edges = np.unique(np.quantile(ref.values, qs))
    ref_counts = np.bincount(
        np.searchsorted(edges, ref.values, side="right"), minlength=edges.size + 1
    )
    win_counts = np.bincount(
        np.searchsorted(edges, win.sorted, side="right"), minlength=edges.size + 1
    )
    return ref_counts / ref_counts.sum(), win_counts / max(int(win_counts.sum()), 1)


def categorical_shares(
    ref: CategoricalReference, win: CategoricalWindow, min_expected: float = 5.0
) -> tuple[np.ndarray, np.ndarray]:
    """Reference and window shares over the reference labels, rare and unseen
    labels pooled into one bin (see :func:`detectors.window.chi2.pooled_bins`): with
    thousands of rare labels, per-label shares of a window are mostly noise."""
    ref_counts, win_counts, _ = pooled_counts(ref, win, min_expected)
    return ref_counts / max(ref_counts.sum(), 1.0), win_counts / max(win_counts.sum(), 1.0)
