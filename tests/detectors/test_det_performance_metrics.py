"""Realized performance metrics: scikit-learn's values on the same windows, per-class
drops found, stationary streams quiet, older states loaded."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn import metrics as skm

from detectors.base import Finding
from detectors.performance import tests
from detectors.performance.realized import MAX_CLASSES
from detectors.performance.segments import bounded_text
from detectors.performance.watch import PerformanceWatch
from detectors.suite.error_stream import JoinedLabels
from tests.detectors.feedback_streams import cut
from tests.detectors.test_det_performance import _run

REFERENCE, WINDOW = 5000, 2000
HOSTILE = "\x1b[31mred" + "x" * 300  # a class name with an escape, longer than any name kept


def _joined(
    predicted: list[str] | np.ndarray, truth: list[object], score: np.ndarray
) -> JoinedLabels:
    seq = np.arange(len(truth), dtype=np.int64) * 2
    return JoinedLabels(
        seq=seq,
        ts=1.6e9 + seq.astype(np.float64),
        predicted=list(predicted),
        truth=list(truth),
        predicted_ts=1.6e9 + seq.astype(np.float64) - 50,
        score=score,
    )


def _binary(n: int, seed: int, accuracy_after: float, at: int) -> JoinedLabels:
    """A scored binary classifier right 94% of the time, then ``accuracy_after``."""
    rng = np.random.default_rng(seed)
    positive = rng.random(n) < 0.35
    accuracy = np.where(np.arange(n) < at, 0.94, accuracy_after)
    said = np.where(rng.random(n) < accuracy, positive, ~positive)
    # Scores strictly inside (0, 1), so every one is a probability scikit-learn accepts.
    score = np.clip(np.where(said, 0.7, 0.3) + rng.normal(0, 0.15, n), 0.001, 0.999)
    names = np.array(["ok", "fraud"])
    return _joined(names[said.astype(int)].tolist(), names[positive.astype(int)].tolist(), score)


CLASSES = [f"c{i:02d}" for i in range(13)] + [HOSTILE]


def _multiclass(n: int, seed: int, confused_from: int | None = None) -> JoinedLabels:
    """14 unscored classes of falling frequency (the last a hostile name), 90% right;
    from ``confused_from`` on, a third of class c01 is predicted c00."""
    rng = np.random.default_rng(seed)
    weights = 1 / np.arange(1, len(CLASSES) + 1)
    truth = rng.choice(len(CLASSES), n, p=weights / weights.sum())
    wrong = rng.random(n) >= 0.9
    said = np.where(wrong, rng.choice(len(CLASSES), n), truth)
    if confused_from is not None:
        late = (np.arange(n) >= confused_from) & (truth == 1) & (rng.random(n) < 1 / 3)
        said = np.where(late, 0, said)
    names = np.array(CLASSES, dtype=object)
    return _joined(list(names[said]), list(names[truth]), np.full(n, np.nan))


def _values(n: int, seed: int, scale_after: float = 1.0, at: int = 0) -> JoinedLabels:
    rng = np.random.default_rng(seed)
    truth = rng.normal(100, 20, n)
    noise = rng.normal(0, 5, n) * np.where(np.arange(n) < at, 1.0, scale_after)
    return JoinedLabels(
        seq=np.arange(n, dtype=np.int64),
        ts=1.6e9 + np.arange(n, dtype=np.float64),
        predicted=list(truth + noise),
        truth=list(truth.tolist()),
    )


def _window_of(joined: JoinedLabels, finding: Finding) -> slice:
    """The labels of the window a finding closed (its last label is its event_index)."""
    end = int(np.searchsorted(joined.seq, finding.details["event_index"])) + 1
    assert (end - REFERENCE) % WINDOW == 0
    return slice(end - WINDOW, end)


def _sklearn(signal: str, truth: list[str], predicted: list[str], score: np.ndarray) -> float:
    """scikit-learn's value of ``signal`` on one period's labels."""
    metric, _, name = signal.removeprefix("performance:").partition(":")
    if metric == "accuracy":
        return float(skm.accuracy_score(truth, predicted))
    if metric in ("precision", "recall", "f1"):
        label = next(c for c in set(truth) | set(predicted) if bounded_text(c) == name)
        scorer = {"precision": skm.precision_score, "recall": skm.recall_score}
        score_of = scorer.get(metric, skm.f1_score)
        return float(score_of(truth, predicted, labels=[label], average=None)[0])
    positive = np.array(truth) == "fraud"
    if metric == "roc_auc":
        return float(skm.roc_auc_score(positive, score))
    if metric == "brier":
        return float(skm.brier_score_loss(positive, score))
    assert metric == "log_loss"
    return float(skm.log_loss(positive, score, labels=[False, True]))


def _check_against_sklearn(joined: JoinedLabels, found: list[Finding]) -> set[str]:
    truth = [str(t) for t in joined.truth]
    predicted = [str(p) for p in joined.predicted]
    ref = slice(0, REFERENCE)
    for f in found:
        win = _window_of(joined, f)
        for period, key in ((ref, "reference_value"), (win, "window_value")):
            expected = _sklearn(f.signal, truth[period], predicted[period], joined.score[period])
            assert f.details[key] == pytest.approx(expected, abs=1e-6), (f.signal, key)
        assert f.details["summary"].endswith(f"{f.details['window_value']:.3f}")
    return {f.signal for f in found}


def test_binary_metrics_are_scikit_learns_on_the_same_windows() -> None:
    joined = _binary(15_000, seed=21, accuracy_after=0.6, at=REFERENCE)
    found = _run(joined, 1234)
    signals = _check_against_sklearn(joined, found)
    # Every metric worsens when predictions are right 60% of the time instead of 94%.
    per_class = {
        f"performance:{m}:{c}" for m in ("precision", "recall", "f1") for c in ("ok", "fraud")
    }
    scored = {"performance:roc_auc", "performance:brier", "performance:log_loss"}
    assert signals == {"performance:accuracy"} | per_class | scored
    accuracy = next(f for f in found if f.signal == "performance:accuracy")
    assert accuracy.details["summary"].startswith("accuracy 0.9")
    assert accuracy.details["metrics_tested"] == 10


def test_multiclass_per_class_metrics_are_scikit_learns_and_bounded() -> None:
    joined = _multiclass(13_000, seed=4, confused_from=REFERENCE)
    found = _run(joined, 777)
    signals = _check_against_sklearn(joined, found)
    # A third of class c01 predicted c00: c01's recall and F1 fall, and c00's precision.
    assert {"performance:recall:c01", "performance:f1:c01", "performance:precision:c00"} <= signals
    assert "performance:recall:c00" not in signals and "performance:precision:c01" not in signals
    # Per-class signals only for the 10 most frequent classes: never the rarest ones.
    named = {s.split(":", 2)[2] for s in signals if s.count(":") == 2}
    assert named <= set(CLASSES[:MAX_CLASSES])


def test_hostile_class_names_are_bounded_in_signals() -> None:
    """A frequent class with an escape and 300 characters is named bounded and escaped."""
    n = 9000
    rng = np.random.default_rng(2)
    truth = np.where(rng.random(n) < 0.5, HOSTILE, "plain")
    # From the reference on, the hostile class is recalled half as often.
    drop = (np.arange(n) >= REFERENCE) & (truth == HOSTILE) & (rng.random(n) < 0.5)
    wrong = (rng.random(n) < 0.05) | drop
    said = np.where(wrong, np.where(truth == HOSTILE, "plain", HOSTILE), truth)
    joined = _joined(said.tolist(), truth.tolist(), np.full(n, np.nan))
    found = _run(joined, 1000)
    recall = [f for f in found if f.signal.startswith("performance:recall:")]
    assert recall, "the hostile class's recall halved and nothing was found"
    name = recall[0].signal.removeprefix("performance:recall:")
    assert name.isprintable() and len(name) <= 100 and name.startswith("\\u001b[31mred")
    _check_against_sklearn(joined, found)


def test_value_metrics_are_scikit_learns_on_the_same_windows() -> None:
    joined = _values(11_000, seed=3, scale_after=1.6, at=REFERENCE)
    found = _run(joined, 999)
    assert {f.signal for f in found} == {"performance:mae", "performance:rmse"}
    truth = np.array(joined.truth, dtype=np.float64)
    predicted = np.array(joined.predicted, dtype=np.float64)
    for f in found:
        win = _window_of(joined, f)
        for period, key in ((slice(0, REFERENCE), "reference_value"), (win, "window_value")):
            if f.signal == "performance:mae":
                expected = skm.mean_absolute_error(truth[period], predicted[period])
            else:
                expected = math.sqrt(skm.mean_squared_error(truth[period], predicted[period]))
            assert f.details[key] == pytest.approx(expected, abs=1e-6)
        assert (
            f.effect_size is not None and f.effect_size < 0
        )  # a loss that rose: reference minus window is negative


@pytest.mark.parametrize(
    "stream",
    [
        lambda seed: _binary(25_000, seed, 0.94, 0),
        lambda seed: _multiclass(25_000, seed),
        lambda seed: _values(25_000, seed),
    ],
    ids=["binary-scored", "multiclass", "values"],
)
def test_stationary_streams_raise_no_metric(stream: object) -> None:
    # 12 streams x 10 windows, each window's metrics (up to 31) tested together at
    # alpha 1e-4: about 0.012 false alarms expected per kind of stream.
    alarms = [f.signal for seed in range(12) for f in _run(stream(500 + seed), 2500)]  # type: ignore[operator]
    assert alarms == []


def test_findings_do_not_depend_on_batches_or_a_reload() -> None:
    joined = _multiclass(13_000, seed=4, confused_from=REFERENCE)
    whole = _run(joined, len(joined.seq))
    assert whole
    assert whole == _run(joined, 1)
    assert whole == _run(joined, 613, reload_at=5)
    assert whole == _run(joined, 613, reload_at=12)


def test_a_state_saved_before_per_class_metrics_loads() -> None:
    """A state without the classes of each label: where every label was scored, the
    scored labels stand for them; otherwise the period has no per-class metrics."""
    scored = _binary(15_000, seed=21, accuracy_after=0.6, at=REFERENCE)
    unscored = _multiclass(13_000, seed=4, confused_from=REFERENCE)
    for joined, per_class_after in ((scored, True), (unscored, False)):
        watch = PerformanceWatch()
        watch.observe(cut(joined, 0, REFERENCE + 100))
        state = json.loads(json.dumps(watch.dump()))
        for period in ("reference", "current"):
            del state[period]["class_predicted"], state[period]["class_truth"]
        old = PerformanceWatch.load(state)
        rest = cut(joined, REFERENCE + 100, len(joined.seq))
        found = old.observe(rest)
        assert any(f.signal == "performance:accuracy" for f in found)
        assert any(f.signal.count(":") == 2 for f in found) == per_class_after
        if per_class_after:  # the same findings as a watch that never restarted
            watch.observe(rest)
            assert json.dumps(old.dump()) == json.dumps(watch.dump())


def test_benjamini_hochberg_matches_a_direct_computation() -> None:
    rng = np.random.default_rng(1)
    p = list(rng.random(20) ** 3)
    adjusted = tests.bh_adjusted(p)
    m = len(p)
    ranked = sorted(p)
    for value, q in zip(p, adjusted, strict=True):
        # The smallest of p_(j) * m / j over the ranks j at or above this p's.
        k = ranked.index(value) + 1
        expected = min(1.0, min(ranked[j - 1] * m / j for j in range(k, m + 1)))
        assert q == pytest.approx(expected, rel=1e-12)
    # Weighted: p / weight in place of p; a weight above 1 is rejected sooner.
    weights = [2.5 if i < 4 else 0.625 for i in range(m)]
    assert sum(weights) == m
    weighted = tests.bh_adjusted(p, weights)
    direct = tests.bh_adjusted([v / w for v, w in zip(p, weights, strict=True)])
    assert weighted == pytest.approx(direct, rel=1e-12)
    assert all(a <= b for a, b in zip(weighted[:4], adjusted[:4], strict=True))
    assert weighted != pytest.approx(adjusted)


@pytest.mark.parametrize(
    "stream",
    [lambda seed: _binary(25_000, seed, 0.94, 0), lambda seed: _multiclass(25_000, seed)],
    ids=["binary-scored", "multiclass"],
)
def test_a_windows_joint_test_keeps_its_false_alarm_rate(stream: object) -> None:
    """At alpha 0.01, with every violation reported (no recovery wait): at most 1% of
    stationary windows alarm, in expectation, however many metrics each tests."""
    alarmed = windows = 0
    for seed in range(60):
        watch = PerformanceWatch(alpha=0.01, recover_windows=0)
        found = watch.observe(stream(2000 + seed))  # type: ignore[operator]
        windows += (watch.count - REFERENCE) // WINDOW
        alarmed += len({f.details["event_index"] for f in found})
    assert windows == 600
    # Nominal at most 6; 12 or more has probability under 2% at 6 (Poisson). The
    # normal approximation for a class's precision and recall alarmed about twice as often.
    assert alarmed < 12
