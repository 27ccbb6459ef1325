"""Input range: the exact Beta-binomial null holds, and a few extreme inputs are caught."""

from __future__ import annotations

import numpy as np
from scipy import stats

from detectors.reference import NumericReference
from detectors.window.base import NumericWindow
from detectors.window.input_range import InputRange, outside_pvalue


def _outside_counts(trials: int, n: int, m: int, seed: int) -> np.ndarray:
    """Values of a fresh m-window outside the range of a fresh n-reference, per trial."""
    rng = np.random.default_rng(seed)
    draws = rng.lognormal(0.0, 1.5, size=(trials, n + m))  # heavy-tailed, continuous
    ref, win = draws[:, :n], draws[:, n:]
    low, high = ref.min(axis=1, keepdims=True), ref.max(axis=1, keepdims=True)
    counts: np.ndarray = ((win < low) | (win > high)).sum(axis=1)
    return counts


def test_the_tail_agrees_with_monte_carlo() -> None:
    n, m, trials = 50, 20, 200_000
    counts = _outside_counts(trials, n, m, seed=1)
    for k in (1, 2, 3, 5):
        empirical = float(np.mean(counts >= k))
        exact = outside_pvalue(k, m, n)
        se = np.sqrt(exact * (1 - exact) / trials)
        assert abs(empirical - exact) <= 4 * se + 1e-6, (k, empirical, exact)
    assert abs(counts.mean() - m * 2 / (n + 1)) <= 4 * counts.std() / np.sqrt(trials)


def test_p_values_under_the_null_are_never_too_small() -> None:
    n, m = 2000, 500
    counts = _outside_counts(20_000, n, m, seed=2)
    pvals = np.array([outside_pvalue(int(k), m, n) for k in counts])
    for alpha in (0.001, 0.01, 0.05, 0.2):
        rate = float(np.mean(pvals <= alpha))
        assert rate <= alpha + 4 * np.sqrt(alpha * (1 - alpha) / pvals.size), (alpha, rate)


def test_one_percent_of_inputs_a_thousand_times_too_large_is_caught_where_ks_is_not() -> None:
    rng = np.random.default_rng(3)
    raw = rng.lognormal(3.0, 1.0, 10_000)
    reference = NumericReference.build(raw)
    window = rng.lognormal(3.0, 1.0, 2000)
    window[rng.random(2000) < 0.01] *= 1000
    outcome = InputRange().test_numeric(reference, NumericWindow(window))
    assert outcome is not None and outcome.p_value is not None
    assert outcome.p_value < 1e-8  # the per-window level is about 1e-5 at defaults
    assert outcome.details["above"] >= 10 and outcome.severity == "warning"
    ks = stats.ks_2samp(raw, window)
    assert ks.pvalue > 1e-3, "KS alone should barely notice this"


def test_rare_new_extremes_below_min_share_are_not_tested() -> None:
    rng = np.random.default_rng(4)
    reference = NumericReference.build(rng.normal(size=10_000))
    window = rng.normal(size=2000)
    window[:3] = [50.0, -60.0, 70.0]  # three wild values: 0.15% of the window
    assert InputRange().test_numeric(reference, NumericWindow(window)) is None
    window[:12] = 99.0  # twelve: 0.6%, above min_share
    outcome = InputRange().test_numeric(reference, NumericWindow(window))
    assert outcome is not None and outcome.details["above"] >= 12
