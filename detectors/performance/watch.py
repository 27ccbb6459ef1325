"""Realized performance per window of joined labels, tested against the reference period.

The first ``reference_labels`` joined labels are the reference period; then
every ``window`` joined labels close a window, and each metric that can be
computed is tested against the reference's (one-sided: is it worse?):

- ``performance:accuracy``: labels of class predictions (two-proportion test);
- ``performance:mae``: labels of value predictions (test of mean absolute errors);
- ``performance:roc_auc``: where predictions had scores and the labels take two
  classes; the positive class is the one predicted with the higher mean score
  in the reference (a score is the positive class's probability).

A violation (p below ``alpha``; critical below ``alpha / 100``) reports the
signal to an ``AlarmTracker``: the signal fires, and returns to ok after
``recover_windows`` windows with no violation. Windows close by label count,
so findings never depend on how the labels were batched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from detectors.base import Finding, Severity
from detectors.codec import decode_float, encode_float
from detectors.performance import tests
from detectors.suite.alarms import AlarmTracker
from detectors.suite.error_stream import JoinedLabels, label_error

DETECTOR = "performance"


@dataclass
class _Labels:
    """Joined labels of one period: classes right/wrong, value errors, scored binary labels."""

    correct: list[int] = field(default_factory=list)
    abs_errors: list[float] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    truths: list[str] = field(default_factory=list)
    predicted: list[str] = field(default_factory=list)

    def add(self, predicted: str | float, truth: object, score: float) -> None:
        error = label_error(predicted, truth)
        if error is None or not math.isfinite(error):
            return  # a label that cannot be compared, or an infinite value: no metric has it
        if isinstance(predicted, str):
            self.correct.append(int(error == 0.0))
            if math.isfinite(score):
                self.scores.append(score)
                self.truths.append(
                    "true" if truth is True else "false" if truth is False else str(truth)
                )
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
        }

    @classmethod
    def load(cls, state: dict[str, Any]) -> _Labels:
        return cls(
            [int(v) for v in state["correct"]],
            [decode_float(v) for v in state["abs_errors"]],
            [decode_float(v) for v in state["scores"]],
            [str(v) for v in state["truths"]],
            [str(v) for v in state["predicted"]],
        )


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
        for metric, tested in self._tests():
            z, p, ref_value, win_value, n = tested
            if p >= self.alpha:
                continue
            severity: Severity = "critical" if p < self.alpha / 100 else "warning"
            signal = f"performance:{metric}"
            state = self.alarms.report(f"{DETECTOR}|{signal}", severity, self.count, ts)
            if state is None:
                continue
            details = {
                "state": state,
                "event_index": index,
                "reference_value": round(ref_value, 6),
                "window_value": round(win_value, 6),
                "window_labels": n,
                "reference_labels": self.reference_labels,
            }
            # The threshold is the p-value's, as for the other tests with a p-value (the
            # report plots both on one −log10 scale); z's own is in the details.
            details["z_threshold"] = round(float(stats.norm.isf(self.alpha)), 6)
            found.append(
                Finding(
                    DETECTOR, signal, ts, severity, z, self.alpha, p, ref_value - win_value, details
                )
            )
        self.alarms.resolve_due(self.count, lambda _: ts)
        self.current = _Labels()
        return found

    def _tests(self) -> list[tuple[str, tuple[float, float, float, float, int]]]:
        ref, win = self.reference, self.current
        out: list[tuple[str, tuple[float, float, float, float, int]]] = []
        if len(ref.correct) >= 100 and len(win.correct) >= 100:
            rc, rn, wc, wn = sum(ref.correct), len(ref.correct), sum(win.correct), len(win.correct)
            z, p = tests.accuracy_drop(rc, rn, wc, wn)
            out.append(("accuracy", (z, p, rc / rn, wc / wn, wn)))
        if len(ref.abs_errors) >= 100 and len(win.abs_errors) >= 100:
            r = np.array(ref.abs_errors)
            w = np.array(win.abs_errors)
            z, p = tests.mae_rise(len(r), float(r.sum()), float((r * r).sum()), w)
            # For an error that rises, "worse" is a larger value: the effect stays ref - window.
            out.append(("mae", (z, p, float(r.mean()), float(w.mean()), len(w))))
        positive = self._positive_class()
        if positive is not None:
            ref_auc = tests.auc(np.array(ref.scores), np.array(ref.truths) == positive)
            win_auc = tests.auc(np.array(win.scores), np.array(win.truths) == positive)
            if ref_auc is not None and win_auc is not None and len(win.scores) >= 100:
                z, p = tests.auc_drop(ref_auc, win_auc)
                out.append(("roc_auc", (z, p, ref_auc[0], win_auc[0], len(win.scores))))
        return out

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
