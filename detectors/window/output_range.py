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
    """Share of outputs outside [low, high].

    Without fixed bounds, the range is the reference's [min, max] widened by
    ``margin`` times its width on each side; the reference then has no
    out-of-range value by construction and the window's count is tested
    against that (Fisher's exact test). NaN/inf outputs count as missing and
    are the ``missing_rate`` test's business.
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
        lo_ref = float(ref.values[0]) if ref.size else 0.0
        hi_ref = float(ref.values[-1]) if ref.size else 0.0
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
        ref_outside = int(
            np.searchsorted(ref.values, low, side="left")
            + ref.size
            - np.searchsorted(ref.values, high, side="right")
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
