"""error_rate: River's ADWIN on the 0/1 errors of class labels, calibrated to the
budget: quiet on stationary error rates, catches a temporary rise and a lasting
accuracy drop, exact through batching and restarts, and a River state of another
version restarts it with a warning."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from detectors.base import Finding
from detectors.suite.error_rate import ErrorRate
from detectors.suite.error_stream import JoinedLabels
from detectors.suite.model_detectors import ModelDetectors
from detectors.suite.settings import SuiteSettings

# Only the error rate: no configured change detector on the error stream.
SETTINGS = SuiteSettings(detectors=("ks",))


def _labels(errors: np.ndarray, first: int = 0) -> JoinedLabels:
    """Joined class labels whose errors are ``errors`` (1: the label disagrees)."""
    n = len(errors)
    seq = np.arange(first, first + n, dtype=np.int64)
    truth = np.where(errors == 1, "fraud", "ok").astype(object)
    return JoinedLabels(seq, seq.astype(np.float64), ["ok"] * n, truth.tolist())


def _run(errors: np.ndarray, chunk: int, cut: int | None = None) -> list[Finding]:
    md = ModelDetectors(SETTINGS)
    out: list[Finding] = []
    for k, start in enumerate(range(0, len(errors), chunk)):
        out += md.observe_labels(_labels(errors[start : start + chunk], start))
        if k == cut:
            md = ModelDetectors.load(json.loads(json.dumps(md.dump(), allow_nan=False)))
    return out


def _bernoulli(rates: list[tuple[float, int]], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([(rng.random(n) < p).astype(np.int64) for p, n in rates])


@pytest.mark.parametrize("rate", [0.01, 0.056, 0.174, 0.4])
def test_a_stationary_error_rate_raises_nothing_in_a_million_labels(rate: float) -> None:
    # the budget is 1e7 labels between false alarms: 0.1 expected here
    assert _run(_bernoulli([(rate, 1_000_000)], seed=1), 100_000) == []


def _first_detections(rates: list[tuple[float, int]], seeds: range) -> list[int | None]:
    """Per seeded stream, the label of the first error_rate finding (None: none)."""
    out: list[int | None] = []
    for seed in seeds:
        found = _run(_bernoulli(rates, seed), 5_000)
        assert {f.detector for f in found} <= {"error_rate"}
        assert all(f.details["direction"] == "up" for f in found)
        out.append(int(found[0].details["event_index"]) if found else None)
    return out


def test_a_block_of_higher_error_is_mostly_caught_within_it() -> None:
    # census-like: 17.4% to 24.2% for 1,714 labels, then back (the benchmark: 90% caught)
    rates = [(0.174, 20_000), (0.242, 1_714), (0.174, 10_000)]
    first = _first_detections(rates, range(2, 12))
    assert all(at is None or at >= 20_000 for at in first), "a false alarm before the block"
    assert sum(at is not None and at < 20_000 + 1_714 + 2_000 for at in first) >= 7


def test_a_lasting_accuracy_drop_is_caught_within_5000_labels() -> None:
    # car-loan-like: accuracy 0.944 to 0.915 (the benchmark: median delay about 2,200)
    first = _first_detections([(0.056, 20_000), (0.085, 20_000)], range(12, 22))
    delays = [at - 20_000 for at in first if at is not None]
    assert len(delays) == len(first) and min(delays) >= 0 and max(delays) < 5_000
    assert float(np.median(delays)) < 3_000


def test_findings_do_not_depend_on_batching_or_restarts() -> None:
    errors = _bernoulli([(0.1, 15_000), (0.2, 5_000)], seed=8)
    whole = _run(errors, 20_000)
    assert whole
    assert _run(errors, 7) == whole
    assert _run(errors, 1_999, cut=4) == whole  # mid-block and mid-window
    assert _run(errors, 333, cut=1) == whole  # during the warm-up


def test_river_state_of_another_version_restarts_the_error_rate_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rate = ErrorRate(1e7)
    rate.update(_bernoulli([(0.1, 3_000)], seed=9).astype(np.float64))
    state = json.loads(json.dumps(rate.dump()))
    state["adwin"]["extra"]["adwin"]["river"] = "0.0.1"
    with caplog.at_level(logging.WARNING, logger="detectors.change"):
        again = ErrorRate.load(state)
    assert "written by River 0.0.1" in caplog.text
    fresh = ErrorRate(1e7).adwin.dump()["extra"]["adwin"]
    assert again.adwin.dump()["extra"]["adwin"] == fresh
