"""Known drifts are caught soon after onset, at default settings."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.base import Finding, RowBatch
from detectors.suite.model_detectors import ModelDetectors
from detectors.suite.settings import SuiteSettings
from tests.detectors.detector_streams import Drift, make_stream, split

ONSET = 23_456
DELAY = 5_000


def findings(drift: Drift, seed: int = 21) -> list[Finding]:
    md = ModelDetectors(SuiteSettings())
    out: list[Finding] = []
    for part in split(make_stream(ONSET + DELAY, seed=seed, drift=drift), 500):
        out += md.observe_rows(part)
    return out


@pytest.mark.parametrize(
    ("drift", "detector", "signal"),
    [
        (Drift(ONSET, mean_shift=0.5), "ks", "feature:normal_a"),
        (Drift(ONSET, variance_factor=2.0), "ks", "feature:normal_b"),
        (Drift(ONSET, colour_p=(0.3, 0.3, 0.15, 0.15, 0.1)), "chi2", "feature:colour"),
        (Drift(ONSET, missing_share=0.05), "missing_rate", "feature:gappy_normal"),
        (Drift(ONSET, unseen_share=0.05), "unseen", "feature:device_id"),
        (Drift(ONSET, score_drop=0.5), "confidence", "score"),
        (Drift(ONSET, score_invalid_share=0.005), "output_range", "score"),
        (Drift(ONSET, extreme_share=0.01), "input_range", "feature:normal_a"),
    ],
    ids=[
        "mean_shift",
        "variance_x2",
        "category_mix",
        "missing",
        "unseen",
        "confidence",
        "range",
        "extreme_inputs",
    ],
)
def test_drift_is_caught_within_5000_events(drift: Drift, detector: str, signal: str) -> None:
    out = findings(drift)
    hits = [f for f in out if (f.detector, f.signal) == (detector, signal)]
    assert hits, f"missed; found {[(f.detector, f.signal) for f in out]}"
    assert 0 <= hits[0].details["event_index"] - ONSET < DELAY
    assert all(f.details["event_index"] >= ONSET for f in out), "false alarm before onset"


def test_change_detector_on_score_reacts_before_the_window_closes() -> None:
    out = findings(Drift(ONSET, score_drop=0.5))
    first = [f for f in out if f.detector == "cusum" and f.signal == "score"]
    assert first and first[0].details["event_index"] - ONSET < 1000
    assert first[0].effect_size is not None and first[0].effect_size < 0


def _correlated(n: int, seed: int, flip_at: int) -> RowBatch:
    """Two features correlated +0.9, then -0.9: marginals never change."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    sign = np.where(np.arange(n) >= flip_at, -1.0, 1.0)
    b = sign * 0.9 * a + np.sqrt(1 - 0.81) * rng.normal(size=n)
    others = {f"x{i}": rng.normal(size=n) for i in range(6)}
    return RowBatch(ts=np.arange(n, dtype=np.float64), numeric={"a": a, "b": b, **others})


def test_joint_shift_seen_only_by_pca_drift() -> None:
    md = ModelDetectors(SuiteSettings())
    out: list[Finding] = []
    for part in split(_correlated(ONSET + DELAY, seed=3, flip_at=ONSET), 500):
        out += md.observe_rows(part)
    assert {(f.detector, f.signal) for f in out} == {("pca_drift", "features")}
    assert out[0].details["event_index"] - ONSET < DELAY
    assert [f.details["state"] for f in out][1:] in ([], ["escalated"])
