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
    """Jensen-Shannon distance of a window from its reference: a threshold test.

    The square root of the Jensen-Shannon divergence (base 2) between the
    reference's and the window's shares of each bin, numeric signals binned at
    the reference's quantiles, categorical ones by label (rare and unseen labels
    pooled). It lies in 0..1 and is a metric; it is also the effect size. No
    p-value: the window is flagged when the distance reaches ``threshold``.

    Parameters
    ----------
    threshold
        Distance at or above which the window is flagged.
    critical_effect
        Distance at or above which a finding is critical rather than a warning.
    bins
        Quantile bins of numeric signals (fewer where quantiles coincide).
    min_values
        Fewest finite (numeric) or present (categorical) values the window needs
        to be tested; numeric references need as many.

    Examples
    --------
    >>> import numpy as np
    >>> from detectors.reference import NumericReference
    >>> from detectors.window import JensenShannon, NumericWindow
    >>> rng = np.random.default_rng(0)
    >>> reference = NumericReference.build(rng.normal(0, 1, 5000))
    >>> js = JensenShannon()
    >>> same = js.test_numeric(reference, NumericWindow(rng.normal(0, 1, 1000)))
    >>> print(f"{same.statistic:.3f} {same.exceeded}")
    0.042 False
    >>> shifted = js.test_numeric(reference, NumericWindow(rng.normal(0.5, 1, 1000)))
    >>> print(f"{shifted.statistic:.3f} {shifted.exceeded} {shifted.severity}")
    0.210 True critical

    References
    ----------
    .. [1] Lin, J. (1991). Divergence measures based on the Shannon entropy.
       *IEEE Transactions on Information Theory*, 37(1), 145-151.
    .. [2] Endres, D. M., & Schindelin, J. E. (2003). A new metric for probability
       distributions. *IEEE Transactions on Information Theory*, 49(7), 1858-1860.
    """

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
