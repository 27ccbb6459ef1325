"""Jensen-Shannon distance (base 2, 0..1) over reference quantile bins or labels."""

from __future__ import annotations

import numpy as np

from detectors.window.base import (
    CATEGORICAL,
    NUMERIC,
    require_positive,
)
from detectors.window.share_distance import ShareDistanceTest


def js_distance(p: np.ndarray, q: np.ndarray) -> float:
    """As ``scipy.spatial.distance.jensenshannon(p, q, base=2)``."""
    p = p / p.sum()
    q = q / q.sum()
    m = 0.5 * (p + q)

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / m[nz])))

    return float(np.sqrt(max(0.5 * (kl(p) + kl(q)), 0.0)))


class JensenShannon(ShareDistanceTest):
    """A threshold test on the Jensen-Shannon distance; the distance is the effect size."""

    name = "jensen_shannon"
    kinds = frozenset({NUMERIC, CATEGORICAL})

    def __init__(
        self,
        threshold: float = 0.1,
        critical_effect: float = 0.2,
        bins: int = 10,
        min_values: int = 100,
    ) -> None:
        require_positive("threshold", threshold)
        require_positive("critical_effect", critical_effect)
        if bins < 2:
            raise ValueError(f"bins must be >= 2, got {bins!r}; pass e.g. 10")
        self.threshold = threshold
        self.critical_effect = critical_effect
        self.bins = bins
        self.min_values = min_values

    def distance(self, ref_share: np.ndarray, win_share: np.ndarray) -> float:
        return js_distance(ref_share, win_share)
