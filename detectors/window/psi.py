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
    """Population Stability Index of a window against its reference: a threshold test.

    PSI = sum over bins of (w - r) ln(w / r), with r and w the reference's and
    the window's shares of each bin: numeric signals are binned at the
    reference's quantiles, categorical ones by label (rare and unseen labels
    pooled). By the usual convention 0.1 is a moderate shift and 0.25 a major
    one. No p-value: the window is flagged when PSI reaches ``threshold``; the
    statistic is the effect size.

    Parameters
    ----------
    threshold
        PSI at or above which the window is flagged.
    critical_effect
        PSI at or above which a finding is critical rather than a warning.
    bins
        Quantile bins of numeric signals (fewer where quantiles coincide).
    eps
        Floor of a bin's share, so that empty bins keep PSI finite.
    min_values
        Fewest finite (numeric) or present (categorical) values the window needs
        to be tested; numeric references need as many.

    Examples
    --------
    >>> import numpy as np
    >>> from detectors.reference import CategoricalReference
    >>> from detectors.window import CategoricalWindow, PopulationStability
    >>> rng = np.random.default_rng(0)
    >>> colours = np.array(["red", "green", "blue"], dtype=object)
    >>> reference = CategoricalReference.build(
    ...     rng.choice(colours, 5000, p=[0.5, 0.3, 0.2]), max_categories=100
    ... )
    >>> def window(p):
    ...     values = rng.choice(colours, 1000, p=p)
    ...     return CategoricalWindow(reference.encode(values), reference)
    >>> psi = PopulationStability()
    >>> same = psi.test_categorical(reference, window([0.5, 0.3, 0.2]))
    >>> print(f"{same.statistic:.3f} {same.exceeded}")
    0.001 False
    >>> mixed = psi.test_categorical(reference, window([0.2, 0.3, 0.5]))
    >>> print(f"{mixed.statistic:.3f} {mixed.exceeded} {mixed.severity}")
    0.467 True critical

    References
    ----------
    .. [1] Siddiqi, N. (2006). *Credit Risk Scorecards: Developing and
       Implementing Intelligent Credit Scoring*. Wiley, Hoboken, NJ.
    .. [2] Yurdakul, B. (2018). *Statistical Properties of Population Stability
       Index*. Doctoral dissertation, Western Michigan University.
    """

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
