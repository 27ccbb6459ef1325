"""Two-sample Kolmogorov-Smirnov test against a pre-sorted reference."""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import special, stats

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
    severity_for,
    significant,
)

PLOT_QUANTILES = 21


def ks_distances(ref_sorted: np.ndarray, win_sorted: np.ndarray) -> tuple[float, float]:
    """(D+, D-) of the two empirical CDFs: max(F_ref - F_win), max(F_win - F_ref).

    Between consecutive window values the window CDF is flat and the reference
    CDF monotone, so the extremes sit at window values: compare there both the
    right-continuous values and the left limits. That evaluates the reference
    CDF at window points only (searchsorted), never the reverse.
    """
    n1, n2 = ref_sorted.shape[0], win_sorted.shape[0]
    # Runs of equal values in the sorted window: its own CDF without searching,
    # and one reference lookup per distinct value (discrete features have few).
    # Every value of a run gives the same candidates, so the extremes are taken
    # over the runs alone: the same maxima as over every value, at a fraction
    # of the work for a discrete feature.
    new_run = np.empty(n2, dtype=bool)
    new_run[0] = True
    np.not_equal(win_sorted[1:], win_sorted[:-1], out=new_run[1:])
    starts = np.flatnonzero(new_run)
    if starts.shape[0] == n2:  # all distinct (a continuous feature)
        distinct = win_sorted
        win_left, win_right = _steps(n2)
    else:
        distinct = win_sorted[starts]
        ends = np.empty_like(starts)
        ends[:-1] = starts[1:]
        ends[-1] = n2
        win_left, win_right = starts / n2, ends / n2
    right = np.searchsorted(ref_sorted, distinct, side="right")
    # A value equal to a reference value has the reference value just below its
    # right position (at -1, the last one, when none is below: never equal).
    tied = ref_sorted[right - 1] == distinct
    left = right
    if tied.any():
        left = right.copy()
        left[tied] = np.searchsorted(ref_sorted, distinct[tied], side="left")
    # F_win - F_ref is exactly 0.0 - (F_ref - F_win) in floating point (an
    # exact zero stays +0.0): one difference per side serves both signs.
    at_right = right / n1 - win_right
    at_left = left / n1 - win_left
    d_plus = max(float(at_right.max()), float(at_left.max()), 0.0)
    d_minus = max(0.0 - float(at_right.min()), 0.0 - float(at_left.min()), 0.0)
    return d_plus, d_minus


@functools.lru_cache(maxsize=4)
def _steps(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The CDF of ``n`` distinct sorted values just below and at each one:
    ``i / n`` and ``(i + 1) / n``, the same for every window of ``n`` values
    (a few sizes kept: windows without missing values all have the window's)."""
    index = np.arange(n + 1)
    below, at = index[:-1] / n, index[1:] / n
    below.setflags(write=False)
    at.setflags(write=False)
    return below, at


def sorted_median(x: np.ndarray) -> float:
    """Median of an already sorted, non-empty array: the same float as ``np.median``
    (the middle value, or half the sum of the middle two), NaN if it holds a NaN
    (sorted last), without its partition."""
    n = x.shape[0]
    if np.isnan(x[-1]):
        return math.nan
    return float(x[n // 2]) if n % 2 else float(0.5 * (x[n // 2 - 1] + x[n // 2]))


def quantile_summary(sorted_values: np.ndarray, k: int = PLOT_QUANTILES) -> list[float]:
    """``k`` evenly spaced quantiles (minimum to maximum) of a sorted, non-empty array.

    Linear interpolation between order statistics, rounded to 6 significant
    digits: enough to draw the distribution, small enough for an alert row.
    """
    n = sorted_values.shape[0]
    pos = np.linspace(0.0, n - 1.0, k)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    frac = pos - lo
    q = sorted_values[lo] + frac * (sorted_values[hi] - sorted_values[lo])
    return [significant(float(v)) for v in q]


def reference_quantiles(ref: NumericReference) -> list[float]:
    """:func:`quantile_summary` of a reference: of its grid's values back in float64
    (within its rounding, beyond the 6 digits shown but near the median), with its
    exact extremes."""
    q = quantile_summary(ref.float_values())
    q[0], q[-1] = significant(ref.low), significant(ref.high)
    return q


def ks_pvalue(d: float, n1: int, n2: int, screen: float = 0.0) -> float:
    """Two-sided asymptotic p-value, as ``scipy.stats.ks_2samp(method="asymp")``.

    With ``screen`` > 0, a p-value whose limiting (Kolmogorov) approximation
    exceeds ``screen`` is returned as that approximation: only small p-values
    can ever be reported, and the finite-n tail costs ~300 µs.
    """
    m, n = sorted([float(n1), float(n2)], reverse=True)
    en = m * n / (m + n)
    if screen > 0:
        approx = float(special.kolmogorov(np.sqrt(en) * d))
        if approx > screen:
            return approx
    return _finite_n_sf(d, float(np.round(en)))


@functools.lru_cache(maxsize=1024)
def _finite_n_sf(d: float, n: float) -> float:
    """The finite-n two-sided tail (~100 µs in scipy, over 1 ms where it sums
    Smirnov's series), remembered: D takes few distinct values between windows
    of the same sizes (multiples of ``1 / lcm(n1, n2)``), so most windows find
    their p-value here. The same floats in give the same float out; 1024
    entries (~150 kB for the process) hold the values of a few window sizes."""
    return float(np.clip(stats.kstwo.sf(d, n), 0.0, 1.0))


def ks_pvalue_one_sided(d: float, n1: int, n2: int) -> float:
    """One-sided asymptotic p-value (Hodges), as scipy's ``method="asymp"``."""
    m, n = sorted([float(n1), float(n2)], reverse=True)
    en = m * n / (m + n)
    z = np.sqrt(en) * d
    expt = -2 * z**2 - 2 * z * (m + 2 * n) / np.sqrt(m * n * (m + n)) / 3.0
    return float(np.clip(np.exp(expt), 0.0, 1.0))


class RankTest(WindowTest):
    """What the rank tests on numeric signals (KS, Cramér-von Mises) share: their
    arguments, and no test on windows or references with too few finite values."""

    kinds = frozenset({NUMERIC})
    roles = frozenset({FEATURE, SCORE, PREDICTION_VALUE})

    def __init__(self, critical_effect: float = 0.25, min_values: int = 30) -> None:
        require_positive("critical_effect", critical_effect)
        if min_values < 2:
            raise ValueError(f"min_values must be >= 2, got {min_values!r}")
        self.critical_effect = critical_effect
        self.min_values = min_values

    def enough_values(self, ref: NumericReference, win: NumericWindow) -> bool:
        return enough_numeric(ref, win, self.min_values)


class KolmogorovSmirnov(RankTest):
    """Two-sample Kolmogorov-Smirnov test of a numeric window against its reference.

    The statistic is the largest distance D between the two empirical CDFs, and
    the p-value the asymptotic two-sided one (as ``scipy.stats.ks_2samp`` with
    ``method="asymp"``); the suite judges it with the window's other p-values
    (Benjamini-Hochberg). The effect size is D itself (0..1). Windows or
    references with fewer than ``min_values`` finite values are not tested (the
    missing-rate test covers them). Runs on features, the score and numeric
    predictions.

    Parameters
    ----------
    critical_effect
        D at or above which a finding is critical rather than a warning.
    min_values
        Fewest finite values the window and the reference each need to be tested.

    Examples
    --------
    >>> import numpy as np
    >>> from detectors.reference import NumericReference
    >>> from detectors.window import KolmogorovSmirnov, NumericWindow
    >>> rng = np.random.default_rng(0)
    >>> reference = NumericReference.build(rng.normal(0, 1, 5000))
    >>> ks = KolmogorovSmirnov()

    A window from the reference's distribution is unremarkable; one whose mean
    moved by half a standard deviation is far beyond any false-alarm level (the
    suite's is 1e-4 with its defaults):

    >>> same = ks.test_numeric(reference, NumericWindow(rng.normal(0, 1, 1000)))
    >>> print(f"D = {same.statistic:.3f}, p = {same.p_value:.2f}")
    D = 0.031, p = 0.38
    >>> shifted = ks.test_numeric(reference, NumericWindow(rng.normal(0.5, 1, 1000)))
    >>> print(f"D = {shifted.statistic:.3f}, p = {shifted.p_value:.0e}")
    D = 0.220, p = 9e-36

    References
    ----------
    .. [1] Kolmogorov, A. N. (1933). Sulla determinazione empirica di una legge
       di distribuzione. *Giornale dell'Istituto Italiano degli Attuari*, 4, 83-91.
    .. [2] Smirnov, N. V. (1948). Table for estimating the goodness of fit of
       empirical distributions. *The Annals of Mathematical Statistics*, 19(2),
       279-281.
    """

    name = "ks"

    def test_numeric(self, ref: NumericReference, win: NumericWindow) -> WindowOutcome | None:
        if not self.enough_values(ref, win):
            return None
        # Ranks against the reference's grid: the window projected there too.
        d_plus, d_minus = ks_distances(ref.grid, win.on_grid(ref))
        d = max(d_plus, d_minus)
        p = ks_pvalue(d, ref.size, int(win.sorted.shape[0]), screen=0.2)
        shift = (sorted_median(win.sorted) - ref.median) / ref.scale()
        return WindowOutcome(
            statistic=d,
            effect_size=d,
            severity=severity_for(d, self.critical_effect),
            p_value=p,
            details={"median_shift_in_ref_std": shift, "values": int(win.sorted.shape[0])},
            plot_details=lambda: {
                "reference_quantiles": reference_quantiles(ref),
                "window_quantiles": quantile_summary(win.sorted),
            },
        )
