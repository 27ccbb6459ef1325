"""Model outputs outside their valid range (score, regression prediction)."""

from __future__ import annotations

import numpy as np

from detectors.reference import NumericReference
from detectors.window.base import (
    NUMERIC,
    PREDICTION_VALUE,
    SCORE,
    NumericWindow,
    WindowOutcome,
    WindowTest,
    require_positive,
    severity_for,
)
from detectors.window.missing_rate import rate_pvalue


class OutputRange(WindowTest):
    """Share of model outputs (score, numeric prediction) outside [low, high].

    A bound not given is the reference's minimum or maximum, moved outwards by
    ``margin`` times the reference's range; the reference then has no value
    outside by construction. The window's count outside is tested against the
    reference's with Fisher's exact test; the effect size is the difference of
    the shares. NaN/inf outputs count as missing and are the ``missing_rate``
    test's business.

    Parameters
    ----------
    low
        Smallest valid output (e.g. 0 for a probability); None learns it from
        the reference.
    high
        Largest valid output (e.g. 1 for a probability); None learns it from
        the reference.
    margin
        How far beyond the reference's range, in multiples of its width, a
        learnt bound lies.
    critical_effect
        Share of outputs outside at or above which a finding is critical rather
        than a warning.

    Examples
    --------
    >>> import numpy as np
    >>> from detectors.reference import NumericReference
    >>> from detectors.window import NumericWindow, OutputRange
    >>> rng = np.random.default_rng(0)
    >>> reference = NumericReference.build(rng.beta(2, 5, 5000))
    >>> scores = OutputRange(low=0.0, high=1.0)
    >>> same = scores.test_numeric(reference, NumericWindow(rng.beta(2, 5, 1000)))
    >>> print(same.details["outside"], same.p_value)
    0 1.0

    Three in a hundred scores come out as 1.5:

    >>> broken = rng.beta(2, 5, 1000)
    >>> broken[::33] = 1.5
    >>> out = scores.test_numeric(reference, NumericWindow(broken))
    >>> print(f"{out.details['outside']} outside, p = {out.p_value:.0e}")
    31 outside, p = 1e-24

    References
    ----------
    .. [1] Fisher, R. A. (1922). On the interpretation of chi-square from
       contingency tables, and the calculation of P. *Journal of the Royal
       Statistical Society*, 85(1), 87-94.
    """

    name = "output_range"
    kinds = frozenset({NUMERIC})
    roles = frozenset({SCORE, PREDICTION_VALUE})

    def __init__(
        self,
        low: float | None = None,
        high: float | None = None,
        margin: float = 0.25,
        critical_effect: float = 0.05,
    ) -> None:
        if low is not None and high is not None and not low < high:
            raise ValueError(f"low must be < high, got {low!r} and {high!r}")
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin!r}; pass e.g. 0.25")
        require_positive("critical_effect", critical_effect)
        self.low = low
        self.high = high
        self.margin = margin
        self.critical_effect = critical_effect

    def bounds(self, ref: NumericReference) -> tuple[float, float]:
        lo_ref, hi_ref = ref.low, ref.high  # exact (0 for an empty reference)
        pad = self.margin * (hi_ref - lo_ref)
        low = self.low if self.low is not None else lo_ref - pad
        high = self.high if self.high is not None else hi_ref + pad
        return low, high

    def test_numeric(self, ref: NumericReference, win: NumericWindow) -> WindowOutcome | None:
        if ref.size == 0 or win.sorted.shape[0] == 0:
            return None
        low, high = self.bounds(ref)
        values = win.sorted
        outside = int(
            np.searchsorted(values, low, side="left")
            + values.shape[0]
            - np.searchsorted(values, high, side="right")
        )
        ref_outside = 0  # learnt bounds, or given ones around the exact extremes
        if low > ref.low or high < ref.high:
            # On the grid: a reference value within its rounding of a bound
            # counts as on the bound (inside).
            edges = ref.project(np.array([low, high]))
            ref_outside = int(
                np.searchsorted(ref.grid, edges[0], side="left")
                + ref.size
                - np.searchsorted(ref.grid, edges[1], side="right")
            )
        n = int(values.shape[0])
        share = outside / n
        p = 1.0 if outside == 0 else rate_pvalue(outside, n, ref_outside, ref.size)
        return WindowOutcome(
            statistic=share,
            effect_size=share - ref_outside / ref.size,
            severity=severity_for(share, self.critical_effect),
            p_value=p,
            details={"outside": outside, "low": low, "high": high},
        )
