"""Wasserstein-1 distance between window and reference, in reference std units."""

from __future__ import annotations

import numpy as np

from detectors.reference import NumericReference
from detectors.window.base import (
    FEATURE,
    NUMERIC,
    PREDICTION_VALUE,
    SCORE,
    NumericWindow,
    WindowOutcome,
    WindowTest,
    enough_numeric,
    require_positive,
    threshold_outcome,
)


def wasserstein_1(u_sorted: np.ndarray, v_sorted: np.ndarray) -> float:
    """Area between the two empirical CDFs, as ``scipy.stats.wasserstein_distance``."""
    everything = np.sort(np.concatenate([u_sorted, v_sorted]))
    deltas = np.diff(everything)
    u_cdf = np.searchsorted(u_sorted, everything[:-1], side="right") / u_sorted.shape[0]
    v_cdf = np.searchsorted(v_sorted, everything[:-1], side="right") / v_sorted.shape[0]
    return float(np.sum(np.abs(u_cdf - v_cdf) * deltas))


class NormalisedWasserstein(WindowTest):
    """Wasserstein-1 distance of a numeric window from its reference, in reference
    standard deviations: a threshold test.

    W1 is the area between the two empirical CDFs: how far, on average, the
    window's mass must move to become the reference's. Divided by the
    reference's standard deviation, 0.1 means a tenth of a standard deviation;
    that is also the effect size. No p-value: the window is flagged when the
    distance reaches ``threshold``.

    Parameters
    ----------
    threshold
        Distance at or above which the window is flagged.
    critical_effect
        Distance at or above which a finding is critical rather than a warning.
    min_values
        Fewest finite values the window and the reference each need to be tested.

    Examples
    --------
    >>> import numpy as np
    >>> from detectors.reference import NumericReference
    >>> from detectors.window import NormalisedWasserstein, NumericWindow
    >>> rng = np.random.default_rng(0)
    >>> reference = NumericReference.build(rng.normal(0, 1, 5000))
    >>> w1 = NormalisedWasserstein()
    >>> same = w1.test_numeric(reference, NumericWindow(rng.normal(0, 1, 1000)))
    >>> print(f"{same.statistic:.3f} {same.exceeded}")
    0.036 False
    >>> shifted = w1.test_numeric(reference, NumericWindow(rng.normal(0.5, 1, 1000)))
    >>> print(f"{shifted.statistic:.3f} {shifted.exceeded} {shifted.severity}")
    0.517 True critical

    References
    ----------
    .. [1] Vaserstein, L. N. (1969). Markov processes over denumerable products
       of spaces, describing large systems of automata. *Problemy Peredachi
       Informatsii*, 5(3), 64-72.
    .. [2] Villani, C. (2009). *Optimal Transport: Old and New*. Grundlehren der
       mathematischen Wissenschaften 338. Springer, Berlin.
    """

    name = "wasserstein"
    kinds = frozenset({NUMERIC})
    roles = frozenset({FEATURE, SCORE, PREDICTION_VALUE})

    def __init__(
        self, threshold: float = 0.1, critical_effect: float = 0.5, min_values: int = 100
    ) -> None:
        require_positive("threshold", threshold)
        require_positive("critical_effect", critical_effect)
        self.threshold = threshold
        self.critical_effect = critical_effect
        self.min_values = min_values

    def test_numeric(self, ref: NumericReference, win: NumericWindow) -> WindowOutcome | None:
        if not enough_numeric(ref, win, self.min_values):
            return None
        # On the grid's offsets from the reference's center (W1 ignores a shift and
        # scales with the values: divided by the grid's factor), the reference as
        # stored, the window rounded the same way.
        offsets = win.on_grid(ref).astype(np.float64)
        w1 = wasserstein_1(ref.grid.astype(np.float64), offsets) / ref.factor
        value = w1 / ref.scale()
        details = {"reference_std": ref.scale()}
        return threshold_outcome(value, self.threshold, self.critical_effect, details)
