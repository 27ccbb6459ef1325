"""Shared binning of a window against its reference, for PSI and Jensen-Shannon."""

from __future__ import annotations

import numpy as np

from detectors.reference import CategoricalReference, NumericReference
from detectors.window_test import CategoricalWindow, NumericWindow


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
    ref: CategoricalReference, win: CategoricalWindow
) -> tuple[np.ndarray, np.ndarray]:
    """Reference and window shares over the reference labels plus one "other" bin."""
    ref_counts = np.append(ref.counts, ref.dropped).astype(np.float64)
    win_counts = win.counts.astype(np.float64)
    return ref_counts / max(ref_counts.sum(), 1.0), win_counts / max(win_counts.sum(), 1.0)
