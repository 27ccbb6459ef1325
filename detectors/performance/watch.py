"""Realized performance per window of joined labels, tested against the reference period.

The first ``reference_labels`` joined labels are the reference period; then
every ``window`` joined labels close a window, and each metric that can be
computed (:mod:`detectors.performance.realized`) is tested against the
reference's, one-sided (is it worse?); each is a signal ``performance:<metric>``:

- labels of class predictions: ``accuracy`` and, for the classes most
  frequent in the reference, ``precision:<class>``, ``recall:<class>``,
  ``f1:<class>``;
- where predictions had scores and the labels take two classes: ``roc_auc``,
  ``brier`` and ``log_loss``; the positive class is the one predicted with the
  higher mean score in the reference (a score is the positive class's probability);
- labels of value predictions: ``mae`` and ``rmse``.

A window's p-values are adjusted together (Benjamini-Hochberg, weighted: half
the budget to ``accuracy``, ``roc_auc`` and ``mae``, half to the rest), so a
window of a stationary stream alarms with probability at most ``alpha``
however many metrics it tests. A violation (adjusted p below ``alpha``; critical below
``alpha / 100``) reports the signal to an ``AlarmTracker``: the signal fires,
and returns to ok after ``recover_windows`` windows with no violation; its
details state the metric before and after (``summary``: ``accuracy 0.944 →
0.915``). Windows close by label count, so findings never depend on how the
labels were batched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from detectors.base import Finding, Severity
from detectors.codec import decode_float, encode_float
from detectors.performance import realized, tests
from detectors.suite.alarms import AlarmTracker
from detectors.suite.error_stream import JoinedLabels, label_error

DETECTOR = "performance"


@dataclass
class _Labels:
    """Joined labels of one period: classes right/wrong and the classes of each
    (``class_predicted``, ``class_truth``), value errors, scored labels (``scores``
    with their ``truths`` and ``predicted``)."""

    correct: list[int] = field(default_factory=list)
    abs_errors: list[float] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    truths: list[str] = field(default_factory=list)
    predicted: list[str] = field(default_factory=list)
    class_predicted: list[str] = field(default_factory=list)
    class_truth: list[str] = field(default_factory=list)

    def add(self, predicted: str | float, truth: object, score: float) -> None:
        error = label_error(predicted, truth)
        if error is None or not math.isfinite(error):
            return  # a label that cannot be compared, or an infinite value: no metric has it
        if isinstance(predicted, str):
            self.correct.append(int(error == 0.0))
            label = "true" if truth is True else "false" if truth is False else str(truth)
            self.class_predicted.append(predicted)
            self.class_truth.append(label)
            if math.isfinite(score):
                self.scores.append(score)
                self.truths.append(label)
                self.predicted.append(predicted)
        else:
            self.abs_errors.append(error)

    def dump(self) -> dict[str, Any]:
        return {
            "correct": self.correct,
            "abs_errors": [encode_float(v) for v in self.abs_errors],
            "scores": [encode_float(v) for v in self.scores],
            "truths": self.truths,
            "predicted": self.predicted,
            "class_predicted": self.class_predicted,
            "class_truth": self.class_truth,
        }

    @classmethod
    def load(cls, state: dict[str, Any]) -> _Labels:
        labels = cls(
            [int(v) for v in state["correct"]],
            [decode_float(v) for v in state["abs_errors"]],
            [decode_float(v) for v in state["scores"]],
            [str(v) for v in state["truths"]],
            [str(v) for v in state["predicted"]],
        )
        if "class_truth" in state:
            labels.class_predicted = [str(v) for v in state["class_predicted"]]
            labels.class_truth = [str(v) for v in state["class_truth"]]
        elif len(labels.truths) == len(labels.correct):
            # Saved before the classes of every label were kept: where every label
            # was scored, its scored labels are all of them; otherwise the period
            # has no per-class metrics (a reference's, never).
            labels.class_predicted = list(labels.predicted)
            labels.class_truth = list(labels.truths)
        return labels


class PerformanceWatch:
    def __init__(
        self,
        window: int = 2000,
        reference_labels: int = 5000,
        alpha: float = 1e-4,
        recover_windows: int = 3,
    ) -> None:
        if window < 100 or reference_labels < window:
            raise ValueError(
                "window must be at least 100 labels and the reference at least one window"
            )
        if not 0 < alpha < 0.5:
            raise ValueError(f"alpha must be between 0 and 0.5, got {alpha}")
        self.window = window
        self.reference_labels = reference_labels
        self.alpha = alpha
        self.recover_windows = recover_windows
        self.count = 0  # joined labels seen
        self.reference = _Labels()
        self.current = _Labels()
        self.alarms = AlarmTracker(recover_after=recover_windows * window)

    @property
    def in_reference(self) -> bool:
        return self.count < self.reference_labels

    def observe(self, joined: JoinedLabels) -> list[Finding]:
        found: list[Finding] = []
        scores = joined.score if len(joined.score) == len(joined.seq) else None
        for i in range(len(joined.seq)):
            score = float(scores[i]) if scores is not None else math.nan
            target = self.reference if self.in_reference else self.current
            target.add(joined.predicted[i], joined.truth[i], score)
            self.count += 1
            if not self.in_reference and (self.count - self.reference_labels) % self.window == 0:
                found += self._close(int(joined.seq[i]), float(joined.ts[i]))
        return found

    def _close(self, index: int, ts: float) -> list[Finding]:
        """Test the window that just closed; its findings; then a new window."""
        found: list[Finding] = []
        tested = self._tests()
        weights = realized.weights(tested)
        adjusted = tests.bh_adjusted([t.p for t in tested], weights)
        violations = sum(q < self.alpha for q in adjusted)
        for t, q, weight in zip(tested, adjusted, weights, strict=True):
            if q >= self.alpha:
                continue
            severity: Severity = "critical" if q < self.alpha / 100 else "warning"
            signal = f"performance:{t.metric}"
            state = self.alarms.report(f"{DETECTOR}|{signal}", severity, self.count, ts)
            if state is None:
                continue
            details = {
                "state": state,
                "event_index": index,
                "reference_value": round(t.reference, 6),
                "window_value": round(t.window, 6),
                "summary": t.summary,
                "window_labels": t.labels,
                "reference_labels": self.reference_labels,
                "metrics_tested": len(tested),
                "unadjusted_p_value": t.p,
                "test_weight": round(weight, 6),
            }
            # The threshold is the adjusted p-value's, as for the other tests with a p-value
            # (the report plots both on one −log10 scale); z's own is in the details: what
            # the unadjusted p had to be under for Benjamini-Hochberg to reject it here.
            z_limit = stats.norm.isf(self.alpha * weight * violations / len(tested))
            details["z_threshold"] = round(float(z_limit), 6)
            effect = t.reference - t.window  # for a loss, worse is larger: negative
            found.append(
                Finding(DETECTOR, signal, ts, severity, t.z, self.alpha, q, effect, details)
            )
        self.alarms.resolve_due(self.count, lambda _: ts)
        self.current = _Labels()
        return found

    def _tests(self) -> list[realized.Tested]:
        ref, win = self.reference, self.current
        out = realized.accuracy(ref.correct, win.correct)
        classes = realized.top_classes(ref.class_truth)
        out += realized.per_class(
            (ref.class_predicted, ref.class_truth), (win.class_predicted, win.class_truth), classes
        )
        positive = self._positive_class()
        if positive is not None:
            out += realized.scored(
                (np.array(ref.scores), np.array(ref.truths) == positive),
                (np.array(win.scores), np.array(win.truths) == positive),
            )
        return out + realized.valued(ref.abs_errors, win.abs_errors)

    def _positive_class(self) -> str | None:
        """The class of binary labels a score is the probability of (None: not binary)."""
        ref = self.reference
        classes = sorted(set(ref.truths) | set(ref.predicted))
        if len(classes) != 2 or len(ref.scores) < 100:
            return None
        scores = np.array(ref.scores)
        predicted = np.array(ref.predicted)
        means = [
            float(scores[predicted == c].mean()) if (predicted == c).any() else -math.inf
            for c in classes
        ]
        return classes[int(np.argmax(means))]

    def dump(self) -> dict[str, Any]:
        return {
            "window": self.window,
            "reference_labels": self.reference_labels,
            "alpha": encode_float(self.alpha),
            "recover_windows": self.recover_windows,
            "count": self.count,
            "reference": self.reference.dump(),
            "current": self.current.dump(),
            "alarms": self.alarms.dump(),
        }

    @classmethod
    def load(cls, state: dict[str, Any]) -> PerformanceWatch:
        watch = cls(
            state["window"],
            state["reference_labels"],
            decode_float(state["alpha"]),
            state["recover_windows"],
        )
        watch.count = int(state["count"])
        watch.reference = _Labels.load(state["reference"])
        watch.current = _Labels.load(state["current"])
        watch.alarms = AlarmTracker.load(state["alarms"])
        return watch
