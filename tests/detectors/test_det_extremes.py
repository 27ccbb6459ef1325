"""Values at the float limit (1e308, as hostile producers send) never crash or blind a detector."""

from __future__ import annotations

import math
import warnings

import numpy as np

from detectors import registry
from detectors.change.base import BlockChangeDetector
from detectors.multivariate.pca_drift import PCADrift
from detectors.reference import NumericReference
from detectors.suite.settings import SuiteSettings
from detectors.window.base import NumericWindow


def _extreme(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.normal(size=n)
    x[::7] = 1e308
    x[3::11] = -1.7e308
    return x


def test_reference_moments_stay_finite_at_the_float_limit() -> None:
    ref = NumericReference.build(_extreme(np.random.default_rng(0), 1000))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isfinite(ref.mean) and math.isfinite(ref.std) and ref.std > 1e300
        assert math.isfinite(ref.var)
    plain = NumericReference.build(np.arange(10.0))
    assert plain.mean == 4.5 and plain.std == np.arange(10.0).std()


def test_pca_drift_fits_and_tests_values_at_the_float_limit() -> None:
    rng = np.random.default_rng(1)
    det = PCADrift(min_rows=100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        det.fit({f"x{i}": _extreme(rng, 2000) for i in range(4)}, seed=0)
        assert det.fitted
        outcome = det.test_window({f"x{i}": NumericWindow(_extreme(rng, 500)) for i in range(4)})
    assert outcome is not None and outcome.p_value is not None
    assert 0.0 <= outcome.p_value <= 1.0


def test_change_detectors_keep_a_usable_state_after_extreme_blocks() -> None:
    rng = np.random.default_rng(2)
    for name in ("cusum", "page_hinkley", "adwin"):
        det: BlockChangeDetector = SuiteSettings().build(name)
        det.calibrate(0.0, 1.0, 1e6, 10_000)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            det.update(_extreme(rng, 5000))
            det.update(rng.normal(size=20_000))
        state = det.dump()
        assert registry.get(name).loader(state).dump() == state
        # Still alive: a plain 3-sigma shift is found after the storm.
        assert det.update(rng.normal(3.0, 1.0, size=20_000)), name
