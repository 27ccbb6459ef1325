"""The detectors' shortcuts give the very floats of the plain computations they
replace: KS distances over runs of equal values, medians of sorted arrays, the
remembered finite-n KS p-value, chi2's pooled bins named by index."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from detectors.reference import CategoricalReference
from detectors.window.base import CategoricalWindow
from detectors.window.chi2 import pooled_bins
from detectors.window.ks import _finite_n_sf, ks_distances, sorted_median


def distances_per_value(ref: np.ndarray, win: np.ndarray) -> tuple[float, float]:
    """(D+, D-) with both CDFs evaluated at every window value, each side's
    differences taken as written: the plain computation."""
    right = np.searchsorted(ref, win, side="right") / ref.shape[0]
    left = np.searchsorted(ref, win, side="left") / ref.shape[0]
    n2 = win.shape[0]
    win_right = np.searchsorted(win, win, side="right") / n2
    win_left = np.searchsorted(win, win, side="left") / n2
    d_plus = max(float(np.max(right - win_right)), float(np.max(left - win_left)), 0.0)
    d_minus = max(float(np.max(win_right - right)), float(np.max(win_left - left)), 0.0)
    return d_plus, d_minus


def samples(rng: np.random.Generator, size: int, kind: int) -> np.ndarray:
    if kind == 0:
        return rng.normal(0, 1, size)
    if kind == 1:
        return rng.poisson(3, size).astype(np.float64)
    if kind == 2:
        return np.round(rng.normal(0, 1, size), 1)
    return (rng.random(size) < 0.3).astype(np.float64)


@pytest.mark.parametrize("seed", range(60))
def test_ks_distances_are_the_per_value_computation_bit_for_bit(seed: int) -> None:
    rng = np.random.default_rng(seed)
    kind = seed % 4
    ref = np.sort(samples(rng, int(rng.choice([2, 50, 3000])), kind))
    win = np.sort(samples(rng, int(rng.choice([1, 2, 40, 2000])), kind) + rng.choice([0, 1]))
    if seed % 5 == 0:  # window values exactly on reference values
        win = np.sort(rng.choice(ref, win.shape[0]))
    assert ks_distances(ref, win) == distances_per_value(ref, win)


def test_ks_distance_of_identical_samples_is_a_positive_zero() -> None:
    x = np.array([2.0, 2.0, 3.0])
    d_plus, d_minus = ks_distances(x, x)
    assert (d_plus, d_minus) == (0.0, 0.0)
    assert not np.signbit(d_plus) and not np.signbit(d_minus)


@pytest.mark.parametrize("size", [1, 2, 7, 2000, 2001])
def test_sorted_median_is_np_median(size: int) -> None:
    x = np.sort(np.random.default_rng(size).lognormal(0, 3, size))
    assert sorted_median(x) == float(np.median(x))
    x[-1] = np.nan
    assert np.isnan(sorted_median(x)) and np.isnan(np.median(x))


@pytest.mark.parametrize("d", [0.012, 0.021, 0.0265, 0.04, 0.31])
def test_remembered_ks_tail_is_scipys(d: float) -> None:
    direct = float(np.clip(stats.kstwo.sf(d, 1667.0), 0.0, 1.0))
    assert _finite_n_sf(d, 1667.0) == direct
    assert _finite_n_sf(d, 1667.0) == direct  # the second call, from the memo


def test_pooled_bins_name_the_kept_labels_in_reference_order() -> None:
    rng = np.random.default_rng(3)
    labels = np.array([f"l{i}" for i in range(300)], dtype=object)
    weights = 1.0 / np.arange(1, 301) ** 1.2
    ref = CategoricalReference.build(labels[rng.choice(300, 5000, p=weights / weights.sum())], 200)
    values = labels[rng.choice(300, 1000, p=weights / weights.sum())]
    values[:20] = "never-seen"
    win = CategoricalWindow(ref.encode(values), ref)
    ref_counts, win_counts, names = pooled_bins(ref, win, 5.0)
    keep = ref.counts * (int(win.counts.sum()) / (int(ref.counts.sum()) + ref.dropped)) >= 5.0
    expected = [lab for lab, k in zip(ref.labels, keep.tolist(), strict=True) if k]
    assert names == [*expected, "(other)"]
    assert ref_counts.shape == win_counts.shape == (len(names),)
