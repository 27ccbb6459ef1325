"""The multivariate test over all features, numeric and categorical: calibrated
on stationary mixed streams, sensitive to joint shifts of categorical features,
run whenever a model has two features of any type, and loading states saved
before categorical features joined it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy import stats

from detectors.base import Finding, RowBatch
from detectors.codec import decode_array
from detectors.multivariate import PCADrift
from detectors.reference import CategoricalReference
from detectors.suite.model_detectors import ModelDetectors
from detectors.suite.settings import SuiteSettings
from detectors.window.base import CategoricalWindow, NumericWindow
from tests.detectors.detector_streams import split

NUMERIC_STATE = Path(__file__).with_name("pca_drift_numeric_state.json")
LETTERS = np.array(list("abcd"), dtype=object)
CITIES = np.array([f"city{i}" for i in range(30)], dtype=object)


def _coded(values: np.ndarray, reference: CategoricalReference) -> CategoricalWindow:
    return CategoricalWindow(reference.encode(values), reference)


def _mixed(rng: np.random.Generator, n: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Numeric and categorical features that depend on each other, with missing
    values, a skewed label mix and more labels than ``max_categories``."""
    x = rng.normal(size=n)
    segment = rng.choice(LETTERS, n, p=[0.55, 0.25, 0.15, 0.05])
    lift = np.select([segment == "a", segment == "b"], [0.0, 1.0], 2.0)
    amount = rng.lognormal(lift, 1.0, n)
    amount[rng.random(n) < 0.03] = np.nan
    city_p = 1.0 / np.arange(1, 31) ** 1.2
    city = rng.choice(CITIES, n, p=city_p / city_p.sum())
    flag = np.where(x + rng.normal(size=n) > 0.5, "yes", "no").astype(object)
    flag[rng.random(n) < 0.05] = None
    numeric = {"x": x, "y": 0.6 * x + 0.8 * rng.normal(size=n), "amount": amount}
    categorical = {"segment": segment, "city": city, "flag": flag}
    return numeric, categorical


def _fit_mixed(seed: int, n: int) -> tuple[PCADrift, dict[str, CategoricalReference]]:
    rng = np.random.default_rng(seed)
    numeric, categorical = _mixed(rng, n)
    refs = {k: CategoricalReference.build(v, 1000) for k, v in categorical.items()}
    det = PCADrift()
    det.fit(numeric, seed, {k: _coded(v, refs[k]) for k, v in categorical.items()})
    return det, refs


def test_stationary_mixed_windows_keep_the_false_alarm_rate() -> None:
    p_values = []
    for seed in range(30):
        det, refs = _fit_mixed(seed, 4000)
        assert det.fitted
        rng = np.random.default_rng([seed, 1])
        for _ in range(100):
            numeric, categorical = _mixed(rng, 500)
            o = det.test_window(
                {k: NumericWindow(v) for k, v in numeric.items()},
                {k: _coded(v, refs[k]) for k, v in categorical.items()},
            )
            assert o is not None and o.p_value is not None
            assert o.details["features"] == 6 and o.details["categorical_features"] == 3
            p_values.append(o.p_value)
    p = np.array(p_values)
    for level in (0.001, 0.01, 0.05, 0.2):
        # at most the level, up to a binomial tail of 1e-4 (3000 windows)
        allowed = stats.binom.ppf(1 - 1e-4, p.shape[0], level)
        assert np.count_nonzero(p <= level) <= allowed, level
    # and not deaf: a test that never rejects would pass the line above
    assert np.count_nonzero(p <= 0.2) > 0.05 * p.shape[0]


def _associated(rng: np.random.Generator, n: int, shift: int) -> dict[str, np.ndarray]:
    """Two uniform 4-label features: ``second`` is ``first`` moved by ``shift``
    labels in 70% of events, uniform otherwise. Marginals never depend on it."""
    first = rng.integers(0, 4, n)
    second = np.where(rng.random(n) < 0.7, (first + shift) % 4, rng.integers(0, 4, n))
    return {"first": LETTERS[first], "second": LETTERS[second], "noise": rng.choice(LETTERS, n)}


def test_a_changed_association_of_two_categorical_features_is_detected() -> None:
    rng = np.random.default_rng(4)
    ref = _associated(rng, 10_000, shift=0)
    refs = {k: CategoricalReference.build(v, 1000) for k, v in ref.items()}
    det = PCADrift()
    det.fit({}, seed=0, categorical={k: _coded(v, refs[k]) for k, v in ref.items()})
    same: list[float] = []
    changed: list[float] = []
    for _ in range(10):
        for shift, out in ((0, same), (1, changed)):
            win = _associated(rng, 2000, shift)
            o = det.test_window({}, {k: _coded(v, refs[k]) for k, v in win.items()})
            assert o is not None and o.p_value is not None
            out.append(o.p_value)
    assert max(changed) < 1e-8
    assert min(same) > 1e-4
    # the marginals of the changed windows are those of the reference
    chi2 = stats.chisquare(np.bincount(refs["second"].encode(win["second"]), minlength=4))
    assert chi2.pvalue > 1e-4


def test_a_category_mix_change_is_detected() -> None:
    det, refs = _fit_mixed(seed=8, n=10_000)
    rng = np.random.default_rng(9)
    for _ in range(5):
        numeric, categorical = _mixed(rng, 2000)
        categorical["segment"] = rng.choice(LETTERS, 2000, p=[0.35, 0.3, 0.2, 0.15])
        o = det.test_window(
            {k: NumericWindow(v) for k, v in numeric.items()},
            {k: _coded(v, refs[k]) for k, v in categorical.items()},
        )
        assert o is not None and o.p_value is not None and o.p_value < 1e-8


def _rows(seed: int, n: int, onset: int, numeric: bool, flip: str) -> RowBatch:
    """A mixed model stream; from ``onset`` on, ``flip`` ("numeric" or
    "categorical") reverses a dependence between two features whose
    marginals stay as they were."""
    rng = np.random.default_rng(seed)
    after = np.arange(n) >= onset
    cats = _associated(rng, n, 0)
    moved = _associated(rng, n, 2)
    if flip == "categorical":
        cats = {k: np.where(after, moved[k], v) for k, v in cats.items()}
    a = rng.normal(size=n)
    sign = np.where(after & (flip == "numeric"), -1.0, 1.0)
    b = sign * 0.9 * a + np.sqrt(1 - 0.81) * rng.normal(size=n)
    num = {"a": a, "b": b} if numeric else {}
    return RowBatch(ts=1.7e9 + np.arange(n, dtype=np.float64), numeric=num, categorical=cats)


def _suite_findings(batch: RowBatch) -> list[Finding]:
    md = ModelDetectors(SuiteSettings())
    out: list[Finding] = []
    for part in split(batch, 500):
        out += md.observe_rows(part)
    return out


def test_in_the_suite_only_the_multivariate_test_sees_joint_shifts() -> None:
    onset = 16_000
    for numeric, flip in ((True, "numeric"), (True, "categorical"), (False, "categorical")):
        out = _suite_findings(_rows(5, onset + 6000, onset, numeric, flip))
        assert {(f.detector, f.signal) for f in out} == {("pca_drift", "features")}, flip
        first = out[0]
        assert onset <= first.details["event_index"] < onset + 4000
        assert first.details["features"] == 3 + 2 * numeric
        assert first.details["categorical_features"] == 3


def test_a_model_with_one_feature_has_no_multivariate_test() -> None:
    rng = np.random.default_rng(6)
    for single in ({"first": LETTERS[rng.integers(0, 4, 10_000)]}, {"x": rng.normal(size=10_000)}):
        det = PCADrift()
        cats = {
            k: _coded(v, CategoricalReference.build(v, 1000))
            for k, v in single.items()
            if v.dtype == object
        }
        nums = {k: v for k, v in single.items() if v.dtype != object}
        det.fit(nums, seed=0, categorical=cats)
        assert not det.fitted
        windows = {k: NumericWindow(v[:2000]) for k, v in nums.items()}
        assert det.test_window(windows, {k: w for k, w in cats.items()}) is None
    # In the suite: a stream whose one categorical feature changes its mix
    # is caught by chi2 (and the evidence), never by pca_drift.
    n, onset = 16_000, 12_000
    first = np.where(
        np.arange(n) < onset,
        LETTERS[rng.integers(0, 4, n)],
        rng.choice(LETTERS, n, p=[0.4, 0.2, 0.2, 0.2]),
    )
    out = _suite_findings(
        RowBatch(ts=1.7e9 + np.arange(n, dtype=np.float64), categorical={"first": first})
    )
    found = {(f.detector, f.signal) for f in out}
    assert ("chi2", "feature:first") in found  # the sequential evidence may find it too
    assert found <= {("chi2", "feature:first"), ("evidence", "feature:first")}, found


def test_a_state_saved_before_categorical_features_behaves_as_before() -> None:
    """The fixture was written by the numeric-only pca_drift (commit 6df5f97):
    a fitted state and two windows, one stationary, one with a reversed
    correlation, with the outcomes it gave them. Never regenerate it."""
    saved = json.loads(NUMERIC_STATE.read_text())
    det = PCADrift.load(saved["state"])
    assert det.dump()["categorical"] == [] and det.max_categories == 10
    for case in saved["windows"]:
        windows = {k: NumericWindow(decode_array(v)) for k, v in case["values"].items()}
        o = det.test_window(windows, {})
        assert o is not None
        assert (o.p_value, o.statistic, o.effect_size) == (
            case["p_value"],
            case["statistic"],
            case["effect_size"],
        )
        assert o.severity == case["severity"]
        assert o.details == {**case["details"], "categorical_features": 0}


def test_state_round_trip_with_categorical_features_is_exact() -> None:
    det, refs = _fit_mixed(seed=12, n=3000)
    state = json.loads(json.dumps(det.dump(), allow_nan=False))
    again = PCADrift.load(state)
    assert again.dump() == state
    rng = np.random.default_rng(13)
    numeric, categorical = _mixed(rng, 700)
    windows = {k: NumericWindow(v) for k, v in numeric.items()}
    coded = {k: _coded(v, refs[k]) for k, v in categorical.items()}
    assert again.test_window(windows, coded) == det.test_window(windows, coded)


def test_an_association_between_independent_skewed_features_is_seen() -> None:
    """The reference's features are independent; in the windows ``second``
    copies ``first`` in half the events. With skewed marginals (kept as they
    were) the new combinations change the rows' T^2: seen, if less strongly
    than a changed association (with uniform marginals it is not, see the
    module docstring)."""
    rng = np.random.default_rng(14)
    shares = [0.5, 0.25, 0.15, 0.1]

    def rows(n: int, copy: float) -> dict[str, np.ndarray]:
        first, second = rng.choice(4, n, p=shares), rng.choice(4, n, p=shares)
        second = np.where(rng.random(n) < copy, first, second)
        return {"first": LETTERS[first], "second": LETTERS[second]}

    ref = rows(10_000, 0.0)
    refs = {k: CategoricalReference.build(v, 1000) for k, v in ref.items()}
    det = PCADrift()
    det.fit({}, seed=0, categorical={k: _coded(v, refs[k]) for k, v in ref.items()})

    def p_value(copy: float) -> float:
        o = det.test_window({}, {k: _coded(v, refs[k]) for k, v in rows(2000, copy).items()})
        assert o is not None and o.p_value is not None
        return o.p_value

    assert np.median([p_value(0.5) for _ in range(7)]) < 1e-4
    assert min(p_value(0.0) for _ in range(7)) > 1e-4
