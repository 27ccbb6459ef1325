"""A numeric reference on its float32 grid gives the outcomes of exact float64 values.

The grid rounds the reference's values; the tests put the window's values
through the same map before comparing them, so that a window value equal to a
reference value stays tied with it. Against the formulas of the float64
reference (scipy's, or a copy of the former code) on the same raw data:
discrete-valued features (tenths, values like 9.99 and 1/3, integers,
timestamps of 1.7e9 a few minutes apart, subnormal steps of 1e-310, values at
1e308) give the same statistics and decisions; continuous ones the same KS
distance, PSI and Jensen-Shannon, Cramér-von Mises within the grid's rounding
(a rounding may tie two values that differed: a tie moves T by a few 1e-5 of
itself) and Wasserstein within 1e-7 of itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from scipy import stats

from detectors.codec import encode_array
from detectors.performance.segments import SegmentLayout
from detectors.reference import GRID_MAX, NumericReference
from detectors.sequential.ranks import RankTable
from detectors.window import (
    CramerVonMises,
    InputRange,
    JensenShannon,
    KolmogorovSmirnov,
    NormalisedWasserstein,
    NumericWindow,
    OutputRange,
    PopulationStability,
)
from detectors.window.cramer_von_mises import cvm_pvalue, cvm_statistic
from detectors.window.jensen_shannon import js_distance
from detectors.window.ks import ks_distances, ks_pvalue
from detectors.window.psi import psi
from detectors.window.wasserstein import wasserstein_1

Draw = Callable[[np.random.Generator, int, float], np.ndarray]

ODD = np.array([0.1, 0.2, 0.3, 1 / 3, 9.99, 10.01, 2.5, 7.0])


def _tenths(rng: np.random.Generator, n: int, shift: float) -> np.ndarray:
    return np.round(rng.normal(shift, 1.0, n), 1)


def _odd(rng: np.random.Generator, n: int, shift: float) -> np.ndarray:
    p = np.linspace(1.0, 1.0 + 4 * shift, ODD.size)
    return rng.choice(ODD, n, p=p / p.sum())


def _integers(rng: np.random.Generator, n: int, shift: float) -> np.ndarray:
    return rng.poisson(4.0 + 2 * shift, n).astype(np.float64)


def _timestamps(rng: np.random.Generator, n: int, shift: float) -> np.ndarray:
    # seconds and quarter seconds of a few minutes around 1.7e9
    return 1_700_000_000.0 + np.round(rng.normal(300 + 60 * shift, 60, n) * 4) / 4


def _subnormal(rng: np.random.Generator, n: int, shift: float) -> np.ndarray:
    return rng.integers(0, 300 + int(100 * shift), n) * 1e-310


def _hostile(rng: np.random.Generator, n: int, shift: float) -> np.ndarray:
    x = np.round(rng.normal(shift, 1.0, n), 2)
    x[rng.random(n) < 0.02] = 1e308
    x[rng.random(n) < 0.01] = -1e308
    return x


def _normal(rng: np.random.Generator, n: int, shift: float) -> np.ndarray:
    return rng.normal(shift, 1.0, n)


DISCRETE: dict[str, Draw] = {
    "tenths": _tenths,
    "odd": _odd,
    "integers": _integers,
    "timestamps": _timestamps,
    "subnormal": _subnormal,
    "hostile": _hostile,
}


def _old_shares(ref: np.ndarray, win: np.ndarray, bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """The former binning of PSI and Jensen-Shannon, on float64 values."""
    edges = np.unique(np.quantile(ref, np.arange(1, bins) / bins))
    r = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=edges.size + 1)
    w = np.bincount(np.searchsorted(edges, win, side="right"), minlength=edges.size + 1)
    return r / r.sum(), w / w.sum()


def _rank_outcomes(ref_raw: np.ndarray, win_raw: np.ndarray) -> dict[str, tuple[float, float]]:
    """(statistic, p-value or threshold decision) of each rank and bin test, through
    the grid and by the float64 formulas."""
    ref, win = NumericReference.build(ref_raw), NumericWindow(win_raw)
    r, w = np.sort(ref_raw), np.sort(win_raw)
    ks = KolmogorovSmirnov().test_numeric(ref, win)
    cvm = CramerVonMises().test_numeric(ref, win)
    psi_out = PopulationStability().test_numeric(ref, win)
    js_out = JensenShannon().test_numeric(ref, win)
    assert ks and cvm and psi_out and js_out
    assert ks.p_value is not None and cvm.p_value is not None
    d = max(ks_distances(r, w))
    t = cvm_statistic(w, r)
    shares = _old_shares(r, w)
    return {
        "ks": (ks.statistic, d),
        "ks_p": (ks.p_value, ks_pvalue(d, r.size, w.size, screen=0.2)),
        "cvm": (cvm.statistic, t),
        "cvm_p": (cvm.p_value, cvm_pvalue(t, w.size, r.size)),
        "cvm_d": (cvm.effect_size, d),
        "psi": (psi_out.statistic, psi(*shares, 1e-4)),
        "js": (js_out.statistic, js_distance(*shares)),
    }


@pytest.mark.parametrize("name", sorted(DISCRETE))
@pytest.mark.parametrize("shift", [0.0, 0.3])
def test_discrete_features_give_the_statistics_of_the_float64_reference(
    name: str, shift: float
) -> None:
    draw = DISCRETE[name]
    rng = np.random.default_rng(11)
    ref_raw = draw(rng, 10_000, 0.0)
    for _ in range(5):
        win_raw = draw(rng, 1000, shift)
        for test, (got, expected) in _rank_outcomes(ref_raw, win_raw).items():
            assert got == pytest.approx(expected, rel=1e-12, abs=1e-300), (name, test)
    # KS against scipy itself
    ref = NumericReference.build(ref_raw)
    out = KolmogorovSmirnov().test_numeric(ref, NumericWindow(win_raw))
    assert out is not None
    expected = stats.ks_2samp(ref_raw, win_raw, method="asymp").statistic
    assert out.statistic == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("name", sorted(DISCRETE))
def test_stationary_discrete_streams_raise_the_alarms_of_the_float64_reference(
    name: str,
) -> None:
    """The same decisions at every level, window after window: no alarm the grid's
    rounding made (and none it hid)."""
    draw = DISCRETE[name]
    rng = np.random.default_rng(12)
    ref_raw = draw(rng, 5000, 0.0)
    for _ in range(40):
        out = _rank_outcomes(ref_raw, draw(rng, 500, 0.0))
        for key in ("ks_p", "cvm_p"):
            got, expected = out[key]
            for alpha in (1e-2, 1e-4, 1e-6):
                assert (got < alpha) == (expected < alpha), (name, key)
        for key, threshold in (("psi", 0.1), ("js", 0.1)):
            got, expected = out[key]
            assert (got >= threshold) == (expected >= threshold), (name, key)


def test_continuous_features_keep_ks_psi_js_and_nearly_cvm() -> None:
    rng = np.random.default_rng(13)
    for i in range(40):
        ref_raw = rng.normal(size=10_000) * 10.0 ** rng.integers(-5, 6)
        win_raw = rng.normal(0.05 * (i % 3), 1.0, 1000) * np.std(ref_raw)
        out = _rank_outcomes(ref_raw, win_raw)
        for key in ("ks", "ks_p", "cvm_d", "psi", "js"):
            got, expected = out[key]
            assert got == pytest.approx(expected, rel=1e-12), key
        # A rounding may tie two reference values (or a window value with one) that
        # differed: T moves by a few 1e-5 of itself, the p-value as little.
        for key in ("cvm", "cvm_p"):
            got, expected = out[key]
            assert got == pytest.approx(expected, rel=1e-4), key


@pytest.mark.parametrize("name", ["tenths", "timestamps", "hostile", "continuous"])
def test_wasserstein_and_the_ranges_keep_their_figures(name: str) -> None:
    rng = np.random.default_rng(14)
    draw = DISCRETE.get(name, _normal)
    ref_raw, win_raw = draw(rng, 10_000, 0.0), draw(rng, 1000, 0.4)
    ref = NumericReference.build(ref_raw)
    win = NumericWindow(win_raw)
    r, w = np.sort(ref_raw), np.sort(win_raw)
    assert (ref.low, ref.high) == (r[0], r[-1])
    if name != "hostile":  # its sums overflow: see finite_moment
        assert (ref.mean, ref.std, ref.var) == (np.mean(r), np.std(r), np.var(r, ddof=1))
    if name != "hostile":  # W1 of values at 1e308 overflows either way
        w1 = NormalisedWasserstein(min_values=10).test_numeric(ref, win)
        assert w1 is not None
        assert w1.statistic == pytest.approx(wasserstein_1(r, w) / np.std(r), rel=1e-7)
    # Bounds from the exact extremes: the windows' counts outside are those of raw values.
    window = np.concatenate([win_raw, [r[0], r[-1], np.nextafter(r[-1], np.inf)]])
    if name != "hostile":  # a margin of the range 1e308 - -1e308 is NaN, as it was
        got = OutputRange(margin=0.0).test_numeric(ref, NumericWindow(window))
        assert got is not None and got.details["low"] == r[0] and got.details["high"] == r[-1]
        assert got.details["outside"] == int(np.sum((window < r[0]) | (window > r[-1])))
    wider = np.concatenate([window, np.full(100, r[-1] + abs(r[-1]) * 1e-9 + 1e-300)])
    found = InputRange(min_share=0.001).test_numeric(ref, NumericWindow(wider))
    assert found is not None and found.details["reference_max"] == r[-1]
    assert found.details["outside"] == int(np.sum((wider < r[0]) | (wider > r[-1])))


def test_output_range_counts_the_reference_outside_given_bounds() -> None:
    rng = np.random.default_rng(15)
    scores = np.round(rng.beta(2, 5, 5000), 3)
    scores[:40] = 1.0  # on the bound: inside
    scores[40:60] = 1.25  # beyond it
    ref = NumericReference.build(scores)
    out = OutputRange(low=0.0, high=1.0).test_numeric(ref, NumericWindow(np.full(100, 1.5)))
    assert out is not None and out.effect_size == pytest.approx(1.0 - 20 / 5000, abs=1e-15)


def test_segment_cuts_and_rank_edges_bin_raw_values_as_the_float64_reference() -> None:
    rng = np.random.default_rng(16)
    for name, draw in DISCRETE.items():
        ref_raw, x = draw(rng, 5000, 0.0), draw(rng, 3000, 0.3)
        ref = NumericReference.build(ref_raw)
        layout = SegmentLayout.build({"f": ref}, quantiles=10)
        cuts = np.array(layout.features[0].cuts)
        old = np.unique(np.quantile(ref_raw, np.arange(1, 10) / 10, method="inverted_cdf"))
        # A value's bin is the number of cuts at or below it. A cut is the shortest
        # number on its grid value: the reference's own where that was short (not
        # 30 * 1e-310, a float beside the float of 3e-309).
        got = np.searchsorted(cuts, x, side="right")
        if name != "subnormal":
            short = np.array([float(f"{o:.12g}") == o for o in old])  # 0.1, 1.7e9 + 0.25
            assert short.sum() >= 2 and np.array_equal(cuts[short], old[short]), name
            assert np.array_equal(got, np.searchsorted(old, x, side="right")), name
        assert np.array_equal(ref.project(cuts), ref.project(old)), name
        u = RankTable.build([ref]).transform(x[None, :])[0]
        assert np.array_equal(u, _old_mid_ranks(np.sort(ref_raw), x)), name


def _old_mid_ranks(r: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The former rank table of one feature, on float64 values: edges its distinct
    values (the first aside) when few, else 255 quantiles."""
    distinct = r[np.concatenate([[True], r[1:] != r[:-1]])]
    if distinct.size <= 256:
        edges = distinct[1:]
    else:
        edges = np.unique(r[(np.arange(1, 256) * r.size) // 256])
    counts = np.bincount(np.searchsorted(edges, r, "right"), minlength=256)
    ranks = (np.concatenate([[0], np.cumsum(counts)[:-1]]) + 0.5 * counts) / r.size
    found: np.ndarray = ranks[np.searchsorted(edges, x, "right")]
    return found


def test_thresholds_are_the_smallest_floats_on_or_above_each_grid_value() -> None:
    rng = np.random.default_rng(17)
    for raw in (
        rng.normal(size=2000),
        _timestamps(rng, 2000, 0.0),
        _hostile(rng, 2000, 0.0),
        _subnormal(rng, 2000, 0.0),
        np.array([-np.finfo(np.float64).max, 0.0, np.finfo(np.float64).max]),
    ):
        ref = NumericReference.build(raw)
        points = np.unique(ref.grid)
        t = ref.thresholds(points)
        assert np.all(ref.project(t) >= points)
        below = np.nextafter(t[1:], -np.inf)  # the first may be the smallest float
        assert np.all(ref.project(below) < points[1:])


def test_the_grid_is_monotone_and_keeps_equal_values_equal() -> None:
    rng = np.random.default_rng(18)
    raw = np.concatenate([rng.normal(size=3000), _hostile(rng, 1000, 0.0), np.zeros(10)])
    ref = NumericReference.build(raw)
    x = np.sort(np.concatenate([raw, rng.normal(size=1000) * 1e300]))
    on_grid = ref.project(x)
    assert on_grid.dtype == np.float32 and np.all(np.diff(on_grid) >= 0)
    assert np.all(np.abs(on_grid) <= GRID_MAX)  # values at 1e308 stay finite
    assert np.array_equal(ref.project(np.sort(raw[np.isfinite(raw)])), ref.grid)


def test_dumps_round_trip_and_old_float64_dumps_load() -> None:
    rng = np.random.default_rng(19)
    raw = _hostile(rng, 4000, 0.0)
    raw[:100] = np.nan
    ref = NumericReference.build(raw)
    again = NumericReference.load(ref.dump())
    assert np.array_equal(again.grid, ref.grid) and again.grid.dtype == np.float32
    assert again.dump() == ref.dump()
    for key in ("n", "missing", "center", "factor", "low", "high", "mean", "std", "var"):
        assert getattr(again, key) == getattr(ref, key), key
    finite = np.sort(raw[np.isfinite(raw)])
    old = {"n": 4000, "missing": 100, "values": encode_array(finite)}  # before the grid
    loaded = NumericReference.load(old)
    assert loaded.dump() == ref.dump()
    assert (loaded.low, loaded.high, loaded.n, loaded.missing) == (-1e308, 1e308, 4000, 100)
    empty = NumericReference.load({"n": 3, "missing": 3, "values": encode_array(np.zeros(0))})
    assert empty.size == 0 and empty.dump() == NumericReference.build(np.full(3, np.nan)).dump()


def test_half_the_bytes_of_float64() -> None:
    ref = NumericReference.build(np.random.default_rng(20).normal(size=10_000))
    assert ref.grid.nbytes == 40_000


def test_without_the_window_on_the_grid_tied_values_would_split() -> None:
    """What the projection is for: raw window offsets against the rounded grid lose
    their ties with it, and KS sees a difference where there is none."""
    rng = np.random.default_rng(21)
    raw = _tenths(rng, 10_000, 0.0)
    ref = NumericReference.build(raw)
    win = np.sort(_tenths(rng, 1000, 0.0))
    unprojected = (win - ref.center) * ref.factor
    d_raw = max(ks_distances(ref.grid.astype(np.float64), unprojected))
    d_grid = max(ks_distances(ref.grid, ref.project(win)))
    expected = stats.ks_2samp(raw, win).statistic
    assert d_grid == pytest.approx(expected, rel=1e-12)
    assert not math.isclose(d_raw, expected, rel_tol=1e-3)
