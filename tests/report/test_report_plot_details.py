"""The distributions drift findings carry for the report: compact, plain, deterministic."""

from __future__ import annotations

import json

import numpy as np

from detectors.reference import CategoricalReference, NumericReference
from detectors.window.base import CategoricalWindow, NumericWindow
from detectors.window.chi2 import ChiSquare
from detectors.window.ks import KolmogorovSmirnov


def test_ks_outcome_carries_21_quantiles_of_each_side() -> None:
    rng = np.random.default_rng(3)
    ref = NumericReference.build(rng.normal(0.0, 1.0, 5000))
    window = rng.normal(0.7, 1.0, 2000)
    out = KolmogorovSmirnov().test_numeric(ref, NumericWindow(window))
    assert out is not None and out.plot_details is not None
    details = out.plot_details()
    assert details == out.plot_details(), "deterministic"
    assert json.loads(json.dumps(details, allow_nan=False)) == details
    ref_q, win_q = details["reference_quantiles"], details["window_quantiles"]
    assert len(ref_q) == len(win_q) == 21
    assert ref_q == sorted(ref_q) and win_q == sorted(win_q)
    assert ref_q[0] == float(f"{ref.low:.6g}") and win_q[-1] == float(f"{window.max():.6g}")
    assert abs(win_q[10] - np.median(window)) < 1e-4
    assert all(v == float(f"{v:.6g}") for v in ref_q + win_q), "6 significant digits"


def test_chi2_outcome_carries_at_most_12_shares() -> None:
    labels = np.array([f"c{i:02d}" for i in range(20)] * 100 + ["c00"] * 500, dtype=object)
    ref = CategoricalReference.build(labels, max_categories=1000)
    window_labels = np.array(["c19"] * 600 + ["new"] * 100 + ["c00"] * 300, dtype=object)
    out = ChiSquare().test_categorical(ref, CategoricalWindow(ref.encode(window_labels), ref))
    assert out is not None and out.plot_details is not None
    details = out.plot_details()
    assert details == out.plot_details()
    assert json.loads(json.dumps(details, allow_nan=False)) == details
    names = details["share_labels"]
    assert len(names) == len(details["reference_shares"]) == len(details["window_shares"]) <= 12
    assert names[0] == "c00" and "c19" in names and names[-1] == "(other)"
    assert abs(sum(details["window_shares"]) - 1.0) < 1e-5
    assert details["window_shares"][names.index("c19")] == 0.6
