"""Realized performance from joined labels: drops found, stationary streams quiet, exact."""

from __future__ import annotations

import json

import numpy as np
from scipy import stats

from detectors.base import Finding
from detectors.performance import tests
from detectors.performance.watch import PerformanceWatch
from detectors.suite.error_stream import JoinedLabels
from tests.detectors.feedback_streams import cut


def _labels(n: int, seed: int, accuracy: list[tuple[int, float]], start: int = 0) -> JoinedLabels:
    """``n`` joined labels of a binary classifier; accuracy changes at the given label counts."""
    rng = np.random.default_rng(seed)
    acc = np.full(n, accuracy[0][1])
    for at, value in accuracy[1:]:
        acc[at:] = value
    positive = rng.random(n) < 0.3
    right = rng.random(n) < acc
    predicted_positive = np.where(right, positive, ~positive)
    # A score that ranks: higher for predicted positives, and informative where right.
    score = np.clip(np.where(predicted_positive, 0.75, 0.25) + rng.normal(0, 0.12, n), 0, 1)
    seq = np.arange(start, start + n, dtype=np.int64) * 3
    return JoinedLabels(
        seq=seq,
        ts=1.6e9 + seq.astype(np.float64),
        predicted=["fraud" if p else "ok" for p in predicted_positive],
        truth=["fraud" if p else "ok" for p in positive],
        predicted_ts=1.6e9 + seq.astype(np.float64) - 100,
        score=score,
    )


def _run(joined: JoinedLabels, chunk: int, reload_at: int | None = None) -> list[Finding]:
    watch = PerformanceWatch()
    out: list[Finding] = []
    for k, a in enumerate(range(0, len(joined.seq), chunk)):
        out += watch.observe(cut(joined, a, a + chunk))
        if k == reload_at:
            watch = PerformanceWatch.load(json.loads(json.dumps(watch.dump(), allow_nan=False)))
    return out


def test_an_accuracy_drop_from_0_944_to_0_915_is_found() -> None:
    joined = _labels(40_000, seed=5, accuracy=[(0, 0.944), (20_000, 0.915)])
    found = [f for f in _run(joined, 997) if f.signal == "performance:accuracy"]
    assert found, "accuracy fell from 0.944 to 0.915 and nothing was found"
    first = found[0]
    onset = int(joined.seq[20_000])
    assert first.details["event_index"] >= onset
    assert first.details["event_index"] - onset <= int(joined.seq[20_000 + 8_000]) - onset
    assert abs(first.details["reference_value"] - 0.944) < 0.01
    assert abs(first.details["window_value"] - 0.915) < 0.015
    assert first.details["state"] == "alarm" and first.p_value is not None
    # The same findings however the labels are batched, and across a save and load.
    assert found == [f for f in _run(joined, 7_001) if f.signal == "performance:accuracy"]
    assert found == [
        f for f in _run(joined, 613, reload_at=40) if f.signal == "performance:accuracy"
    ]


def test_stationary_streams_raise_nothing() -> None:
    alarms = 0
    for seed in range(20):
        alarms += len(_run(_labels(40_000, seed=100 + seed, accuracy=[(0, 0.944)]), 2048))
    # 20 streams x 17 windows, each window's 10 metrics tested together at alpha 1e-4
    # (Benjamini-Hochberg): at most about 0.034 expected.
    assert alarms == 0


def test_auc_agrees_with_mann_whitney_and_a_ranking_drop_is_found() -> None:
    rng = np.random.default_rng(3)
    scores = rng.random(500)
    positive = rng.random(500) < scores
    a, n1, n0 = tests.auc(scores, positive)  # type: ignore[misc]
    u = stats.mannwhitneyu(scores[positive], scores[~positive]).statistic
    assert abs(a - u / (n1 * n0)) < 1e-12
    joined = _labels(30_000, seed=9, accuracy=[(0, 0.944)])
    # From label 15,000 on, scores no longer rank: the AUC falls and the scores' losses
    # rise; the classes predicted, so accuracy, precision, recall and F1, stay.
    joined.score[15_000:] = np.random.default_rng(10).random(15_000)
    found = _run(joined, 1000)
    assert {f.signal for f in found} == {
        "performance:roc_auc",
        "performance:brier",
        "performance:log_loss",
    }
    auc_found = [f for f in found if f.signal == "performance:roc_auc"]
    assert auc_found[0].details["event_index"] >= int(joined.seq[15_000])
    assert auc_found[0].details["reference_value"] > 0.9 > auc_found[0].details["window_value"]
