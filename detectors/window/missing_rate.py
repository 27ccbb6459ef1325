"""Missing/invalid rate of a signal against its reference rate (Fisher's exact test)."""

from __future__ import annotations

import math

from scipy import stats

from detectors.reference import CategoricalReference, NumericReference
from detectors.window.base import (
    CATEGORICAL,
    NUMERIC,
    CategoricalWindow,
    NumericWindow,
    WindowOutcome,
    WindowTest,
    require_positive,
    severity_for,
)


def rate_pvalue(k: int, n: int, k0: int, n0: int) -> float:
    """Two-sided conditional p-value for k of n (window) against k0 of n0 (reference).

    Given the pooled count, the window's count is hypergeometric; that is
    Fisher's exact test with doubled smaller tail. A normal approximation
    screens out unremarkable windows first: exact tails cost ~100 µs each and
    only small p-values can ever be reported.
    """
    total = k + k0
    if total == 0 or total == n + n0:
        return 1.0
    big, draws = n + n0, n
    mean = draws * total / big
    var = draws * (total / big) * (1 - total / big) * (big - draws) / max(big - 1, 1)
    z = (abs(k - mean) - 0.5) / math.sqrt(var) if var > 0 else math.inf
    if z < 2.0:
        return min(1.0, math.erfc(max(z, 0.0) / math.sqrt(2)))
    upper = float(stats.hypergeom.sf(k - 1, big, total, draws))
    lower = float(stats.hypergeom.cdf(k, big, total, draws))
    return min(1.0, 2 * min(upper, lower))


class MissingRate(WindowTest):
    """Share of events lacking a signal (absent, null, NaN or inf) against the
    reference's share.

    Fisher's exact test, two-sided, of the window's missing count against the
    reference's (a normal approximation screens out unremarkable windows
    first). The effect size is the difference of the rates, window minus
    reference. Runs on every signal, numeric or categorical.

    Parameters
    ----------
    critical_effect
        Difference of rates at or above which a finding is critical rather than
        a warning.

    Examples
    --------
    >>> import numpy as np
    >>> from detectors.reference import NumericReference
    >>> from detectors.window import MissingRate, NumericWindow
    >>> rng = np.random.default_rng(0)
    >>> def gappy(n, share):
    ...     values = rng.normal(size=n)
    ...     values[rng.random(n) < share] = np.nan
    ...     return values
    >>> reference = NumericReference.build(gappy(5000, 0.02))
    >>> print(f"{reference.missing / reference.n:.3f} missing in the reference")
    0.016 missing in the reference
    >>> missing = MissingRate()
    >>> same = missing.test_numeric(reference, NumericWindow(gappy(1000, 0.02)))
    >>> print(f"{same.statistic:.3f} missing, p = {same.p_value:.2f}")
    0.026 missing, p = 0.05
    >>> worse = missing.test_numeric(reference, NumericWindow(gappy(1000, 0.10)))
    >>> print(f"{worse.statistic:.3f} missing, p = {worse.p_value:.0e}")
    0.104 missing, p = 5e-35

    References
    ----------
    .. [1] Fisher, R. A. (1922). On the interpretation of chi-square from
       contingency tables, and the calculation of P. *Journal of the Royal
       Statistical Society*, 85(1), 87-94.
    """

    name = "missing_rate"
    kinds = frozenset({NUMERIC, CATEGORICAL})

    def __init__(self, critical_effect: float = 0.2) -> None:
        require_positive("critical_effect", critical_effect)
        self.critical_effect = critical_effect

    def _test(self, k: int, n: int, k0: int, n0: int) -> WindowOutcome | None:
        if n == 0 or n0 == 0:
            return None
        effect = k / n - k0 / n0
        return WindowOutcome(
            statistic=k / n,
            effect_size=effect,
            severity=severity_for(effect, self.critical_effect),
            p_value=rate_pvalue(k, n, k0, n0),
            details={"missing": k, "events": n, "reference_rate": k0 / n0},
        )

    def test_numeric(self, ref: NumericReference, win: NumericWindow) -> WindowOutcome | None:
        return self._test(win.missing, win.n, ref.missing, ref.n)

    def test_categorical(
        self, ref: CategoricalReference, win: CategoricalWindow
    ) -> WindowOutcome | None:
        return self._test(win.missing, win.n, ref.missing, ref.n)
