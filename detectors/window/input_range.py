"""Input values outside everything the reference saw: input validation with an exact null."""

from __future__ import annotations

import numpy as np
from scipy import stats

from detectors.reference import NumericReference
from detectors.window.base import (
    FEATURE,
    NUMERIC,
    NumericWindow,
    WindowOutcome,
    WindowTest,
    require_positive,
    require_probability,
    severity_for,
)


def outside_pvalue(outside: int, values: int, reference: int) -> float:
    """P(at least ``outside`` of ``values`` new values fall outside ``reference`` values' range)."""
    if outside <= 0:
        return 1.0
    tail = stats.betabinom.sf(outside - 1, values, 2, max(reference - 1, 1))
    return float(np.clip(tail, 0.0, 1.0))


class InputRange(WindowTest):
    """Input values outside everything the reference saw: input validation with
    an exact null.

    A few extreme inputs move no distribution test: 1% of amounts multiplied by
    a thousand shifts the KS distance by 0.01. Yet they are what a unit bug
    upstream, a poisoned feed or an adversarial input looks like. This test
    counts, per window and numeric feature, the values below the reference's
    minimum or above its maximum. For an unchanged continuous input that count
    has a known law whatever the distribution: the probability mass outside the
    range of n reference values is Beta(2, n - 1), so k of m window values fall
    outside with a Beta-binomial(m, 2, n - 1) law. The p-value is its upper
    tail (ties in discrete inputs make it conservative). Windows where fewer
    than ``min_share`` of the values fall outside are not tested at all: single
    new extremes are normal for heavy tails and say nothing about the stream,
    and an untested window leaves the other tests' share of the false-alarm
    budget untouched. The effect size is the share outside.

    Parameters
    ----------
    min_share
        Share of a window's values outside the reference's range below which
        the window is not tested.
    critical_effect
        Share outside at or above which a finding is critical rather than a
        warning.
    min_reference
        Fewest finite reference values for the feature to be tested.

    Examples
    --------
    >>> import numpy as np
    >>> from detectors.reference import NumericReference
    >>> from detectors.window import InputRange, NumericWindow
    >>> rng = np.random.default_rng(0)
    >>> reference = NumericReference.build(rng.lognormal(3, 1, 5000))
    >>> inputs = InputRange()

    An unchanged input is not even tested; one where 1% of the amounts arrive
    in cents instead of dollars is:

    >>> print(inputs.test_numeric(reference, NumericWindow(rng.lognormal(3, 1, 1000))))
    None
    >>> amounts = rng.lognormal(3, 1, 1000)
    >>> amounts[:10] *= 100
    >>> cents = inputs.test_numeric(reference, NumericWindow(amounts))
    >>> print(f"{cents.details['above']} above the reference's maximum, p = {cents.p_value:.0e}")
    9 above the reference's maximum, p = 8e-07

    References
    ----------
    .. [1] Wilks, S. S. (1941). Determination of sample sizes for setting
       tolerance limits. *The Annals of Mathematical Statistics*, 12(1), 91-96.
    """

    name = "input_range"
    kinds = frozenset({NUMERIC})
    roles = frozenset({FEATURE})

    def __init__(
        self, min_share: float = 0.005, critical_effect: float = 0.05, min_reference: int = 100
    ) -> None:
        require_probability("min_share", min_share)
        require_positive("critical_effect", critical_effect)
        if min_reference < 2:
            raise ValueError(f"min_reference must be >= 2, got {min_reference!r}")
        self.min_share = min_share
        self.critical_effect = critical_effect
        self.min_reference = min_reference

    def test_numeric(self, ref: NumericReference, win: NumericWindow) -> WindowOutcome | None:
        values = win.sorted
        m = int(values.shape[0])
        if ref.size < self.min_reference or m == 0:
            return None
        low, high = ref.low, ref.high  # exact, not the grid's rounding
        below = int(np.searchsorted(values, low, side="left"))
        above = m - int(np.searchsorted(values, high, side="right"))
        outside = below + above
        share = outside / m
        if share < self.min_share:
            # Not tested: it would only dilute the other tests' Benjamini-Hochberg
            # threshold with a p-value that could never matter.
            return None
        p = outside_pvalue(outside, m, ref.size)
        return WindowOutcome(
            statistic=share,
            effect_size=share,
            severity=severity_for(share, self.critical_effect),
            p_value=p,
            details={
                "outside": outside,
                "below": below,
                "above": above,
                "values": m,
                "reference_min": low,
                "reference_max": high,
            },
        )
