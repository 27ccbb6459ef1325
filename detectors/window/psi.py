"""Population Stability Index over reference quantile bins or labels."""

from __future__ import annotations

import numpy as np

from detectors.window.base import (
    CATEGORICAL,
    NUMERIC,
    require_positive,
)
from detectors.window.share_distance import ShareDistanceTest


def psi(ref_share: np.ndarray, win_share: np.ndarray, eps: float) -> float:
    """sum((w - r) * ln(w / r)), shares floored at ``eps`` so empty bins stay finite."""
    r = np.maximum(ref_share, eps)
    w = np.maximum(win_share, eps)
    return float(np.sum((w - r) * np.log(w / r)))


class PopulationStability(ShareDistanceTest):
    """PSI, a threshold test: by the usual convention 0.1 is a moderate shift and
    0.25 a major one. Not p-value calibrated; the statistic is the effect size."""

    name = "psi"
    kinds = frozenset({NUMERIC, CATEGORICAL})

    def __init__(
        self,
        threshold: float = 0.1,
        critical_effect: float = 0.25,
        bins: int = 10,
        eps: float = 1e-4,
        min_values: int = 100,
    ) -> None:
        require_positive("threshold", threshold)
        require_positive("critical_effect", critical_effect)
        require_positive("eps", eps)
        if bins < 2:
            raise ValueError(f"bins must be >= 2, got {bins!r}; pass e.g. 10")
        self.threshold = threshold
        self.critical_effect = critical_effect
        self.bins = bins
        self.eps = eps
        self.min_values = min_values

    def distance(self, ref_share: np.ndarray, win_share: np.ndarray) -> float:
        return psi(ref_share, win_share, self.eps)
