"""The statistics agree with scipy where scipy computes the same thing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats
from scipy.spatial.distance import jensenshannon

from detectors.change.run_length import cusum_threshold
from detectors.reference import CategoricalReference, NumericReference
from detectors.suite.fdr import benjamini_hochberg
from detectors.window.base import CategoricalWindow, NumericWindow
from detectors.window.binning import numeric_shares
from detectors.window.chi2 import ChiSquare, homogeneity_chi2, pooled_bins
from detectors.window.cramer_von_mises import cvm_pvalue, cvm_statistic
from detectors.window.jensen_shannon import js_distance
from detectors.window.ks import KolmogorovSmirnov, ks_distances, ks_pvalue, ks_pvalue_one_sided
from detectors.window.missing_rate import rate_pvalue
from detectors.window.psi import psi
from detectors.window.wasserstein import wasserstein_1

values = arrays(
    np.float64,
    st.integers(2, 300),
    elements=st.one_of(
        st.integers(-5, 5).map(float),  # ties
        st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
    ),
)


@settings(max_examples=200, deadline=None, database=None)
@given(values, values)
def test_ks_matches_scipy(a: np.ndarray, b: np.ndarray) -> None:
    ref, win = np.sort(a), np.sort(b)
    d_plus, d_minus = ks_distances(ref, win)
    two = stats.ks_2samp(ref, win, method="asymp")
    assert max(d_plus, d_minus) == pytest.approx(two.statistic, abs=1e-12)
    assert ks_pvalue(max(d_plus, d_minus), len(a), len(b)) == pytest.approx(two.pvalue, abs=1e-12)
    greater = stats.ks_2samp(ref, win, alternative="greater", method="asymp")
    assert d_plus == pytest.approx(greater.statistic, abs=1e-12)
    assert ks_pvalue_one_sided(d_plus, len(a), len(b)) == pytest.approx(greater.pvalue, rel=1e-9)


def test_ks_screening_never_hides_a_small_p_value() -> None:
    rng = np.random.default_rng(0)
    ref = np.sort(rng.normal(size=10_000))
    for shift in np.linspace(0, 0.2, 21):
        win = np.sort(rng.normal(shift, 1, 2000))
        d = max(ks_distances(ref, win))
        exact, screened = ks_pvalue(d, 10_000, 2000), ks_pvalue(d, 10_000, 2000, screen=0.2)
        assert screened == exact or (screened > 0.2 and exact > 0.15)


def test_ks_outcome_through_the_window_test() -> None:
    rng = np.random.default_rng(1)
    reference = rng.normal(size=5000)
    ref = NumericReference.build(reference)
    raw = rng.normal(0.1, 1, 1000)
    raw[:50] = np.nan
    out = KolmogorovSmirnov().test_numeric(ref, NumericWindow(raw))
    assert out is not None
    expected = stats.ks_2samp(reference, raw[50:], method="asymp")
    assert out.statistic == pytest.approx(expected.statistic)
    assert out.p_value == pytest.approx(expected.pvalue, rel=1e-9)


distinct = st.lists(
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
    min_size=4,
    max_size=400,
    unique=True,
)


@settings(max_examples=100, deadline=None, database=None)
@given(distinct, st.integers(2, 200))
def test_cramer_von_mises_matches_scipy_without_ties(pooled: list[float], cut: int) -> None:
    cut = min(cut, len(pooled) - 2)
    x, y = np.sort(pooled[:cut]), np.sort(pooled[cut:])
    expected = stats.cramervonmises_2samp(x, y, method="asymptotic")
    t = cvm_statistic(x, y)
    assert t == pytest.approx(expected.statistic, rel=1e-9, abs=1e-12)
    p = cvm_pvalue(t, len(x), len(y))
    if expected.pvalue > 1e-6:  # below, scipy's 1 - cdf is rounding noise
        assert p == pytest.approx(expected.pvalue, abs=1e-9)
    else:
        assert p < 1e-6


def test_cramer_von_mises_with_ties_is_zero_for_identical_samples() -> None:
    x = np.sort(np.repeat([0.0, 1.0, 2.0], [50, 30, 20]))
    assert cvm_statistic(x, x.copy()) == 0.0
    assert cvm_pvalue(0.0, 100, 100) == 1.0


@settings(max_examples=100, deadline=None, database=None)
@given(values, values)
def test_wasserstein_matches_scipy(a: np.ndarray, b: np.ndarray) -> None:
    expected = stats.wasserstein_distance(a, b)
    assert wasserstein_1(np.sort(a), np.sort(b)) == pytest.approx(expected, rel=1e-9, abs=1e-6)


@settings(max_examples=100, deadline=None, database=None)
@given(
    arrays(np.float64, 8, elements=st.floats(0, 100)).filter(lambda p: p.sum() > 0),
    arrays(np.float64, 8, elements=st.floats(0, 100)).filter(lambda p: p.sum() > 0),
)
def test_jensen_shannon_matches_scipy(p: np.ndarray, q: np.ndarray) -> None:
    assert js_distance(p, q) == pytest.approx(jensenshannon(p, q, base=2), abs=1e-7)


def test_chi2_matches_scipy_contingency() -> None:
    rng = np.random.default_rng(3)
    labels = np.array(["a", "b", "c", "d", "rare"], dtype=object)
    ref = CategoricalReference.build(
        labels[rng.choice(5, 5000, p=[0.4, 0.3, 0.2, 0.0995, 0.0005])], 1000
    )
    win = CategoricalWindow(
        ref.encode(labels[rng.choice(5, 1000, p=[0.35, 0.3, 0.25, 0.1, 0.0])]), ref
    )
    ref_counts, win_counts, kept = pooled_bins(ref, win, min_expected=5.0)
    assert kept == ["a", "b", "c", "d", "(other)"]  # "rare" pooled: expected < 5
    stat, dof = homogeneity_chi2(ref_counts, win_counts)
    expected = stats.chi2_contingency(np.vstack([ref_counts, win_counts]), correction=False)
    assert stat == pytest.approx(expected.statistic)
    assert dof == expected.dof
    out = ChiSquare().test_categorical(ref, win)
    assert out is not None and out.p_value == pytest.approx(expected.pvalue, rel=1e-9)


def test_chi2_goodness_of_fit_limit_matches_scipy_chisquare() -> None:
    # with a huge reference the homogeneity test becomes goodness of fit
    observed = np.array([90.0, 210.0, 300.0, 400.0])
    shares = np.array([0.1, 0.2, 0.3, 0.4])
    stat, _ = homogeneity_chi2(shares * 1e12, observed)
    expected = stats.chisquare(observed, shares * observed.sum())
    assert stat == pytest.approx(expected.statistic, rel=1e-6)


@pytest.mark.parametrize(
    ("k", "n", "k0", "n0"), [(40, 1000, 50, 5000), (3, 1000, 100, 5000), (9, 2000, 0, 10_000)]
)
def test_missing_rate_is_fisher_exact_with_doubled_tail(k: int, n: int, k0: int, n0: int) -> None:
    table = [[k, n - k], [k0, n0 - k0]]
    greater = stats.fisher_exact(table, alternative="greater").pvalue
    less = stats.fisher_exact(table, alternative="less").pvalue
    assert rate_pvalue(k, n, k0, n0) == pytest.approx(min(1.0, 2 * min(greater, less)), rel=1e-9)


def test_psi_by_hand_and_quantile_bins() -> None:
    r, w = np.array([0.5, 0.3, 0.2]), np.array([0.4, 0.4, 0.2])
    assert psi(r, w, 1e-4) == pytest.approx(0.1 * np.log(0.4 / 0.5) * -1 + 0.1 * np.log(0.4 / 0.3))
    rng = np.random.default_rng(4)
    ref = NumericReference.build(rng.normal(size=10_000))
    rs, ws = numeric_shares(ref, NumericWindow(rng.normal(size=2000)), 10)
    assert rs == pytest.approx(np.full(10, 0.1), abs=1e-3)
    assert ws.sum() == pytest.approx(1.0)


@settings(max_examples=200, deadline=None, database=None)
@given(arrays(np.float64, st.integers(1, 60), elements=st.floats(0, 1)), st.floats(0.001, 0.5))
def test_benjamini_hochberg_matches_scipy(p: np.ndarray, q: float) -> None:
    adjusted = stats.false_discovery_control(p, method="bh")
    expected = adjusted <= q
    got = benjamini_hochberg(p, q)
    borderline = np.isclose(adjusted, q, rtol=1e-9)
    assert np.array_equal(got[~borderline], expected[~borderline])


def test_cusum_threshold_reproduces_the_run_length() -> None:
    # Siegmund's approximation, checked at a published point: k=0.5, h=4 -> ARL ~ 336
    assert cusum_threshold(336.0, 0.5) == pytest.approx(4.0, abs=0.05)
