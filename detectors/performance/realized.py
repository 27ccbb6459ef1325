"""The realized metrics of a window of joined labels, each tested against the reference's.

Class predictions give ``accuracy`` and, for each of the ``MAX_CLASSES``
classes most frequent among the reference's labels, ``precision:<class>``,
``recall:<class>`` and ``f1:<class>`` (the class's name bounded as segment
names are). Scored binary labels give ``roc_auc``, ``brier`` and ``log_loss``
(of the score as the positive class's probability). Value predictions give
``mae`` and ``rmse``. The values are scikit-learn's definitions (log loss
clips probabilities to [eps, 1 - eps] as it does); a metric is tested only
when the reference and the window each have ``MIN_LABELS`` labels it counts.

F1 is tested through the share of true positives among the labels it counts
(true positives, false positives and false negatives): F1 = 2s / (1 + s)
rises and falls with that share s, so a test of s is a test of F1. Per-class
proportions are tested exactly (Fisher), accuracy by the two-proportion
z-test. RMSE is tested through the mean squared error it is the root of.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from detectors.performance import tests
from detectors.performance.segments import bounded_text

# The metrics a window's joint test favours: half its false-alarm budget goes to these
# (those tested), half to the per-class and loss metrics, which mostly move with them.
HEADLINE = frozenset({"accuracy", "roc_auc", "mae"})
MIN_LABELS = 100  # labels a metric counts, in the reference and in the window, to be tested
MAX_CLASSES = 10  # classes with per-class metrics: the most frequent in the reference's labels
EPS = float(np.finfo(np.float64).eps)  # scikit-learn's clipping of probabilities in log loss


@dataclass(frozen=True)
class Tested:
    """One metric of a window: its one-sided test (is it worse?) and its values."""

    metric: str  # the signal's name after "performance:"
    z: float
    p: float
    reference: float
    window: float
    labels: int  # of the window's labels, those the metric counts

    @property
    def summary(self) -> str:
        """``accuracy 0.944 → 0.915``: the metric before and after."""
        return f"{self.metric} {_shown(self.reference)} → {_shown(self.window)}"


def _shown(value: float) -> str:
    return f"{value:.3f}" if abs(value) < 1 else f"{value:.4g}"


def _proportion(
    metric: str,
    ref: tuple[int, int],
    win: tuple[int, int],
    value: Callable[[float], float] = float,
    test: Callable[[int, int, int, int], tuple[float, float]] = tests.proportion_drop_exact,
) -> list[Tested]:
    """The test of a proportion that falls when worse: (hits, counted) of each period."""
    (rh, rn), (wh, wn) = ref, win
    if rn < MIN_LABELS or wn < MIN_LABELS:
        return []
    z, p = test(rh, rn, wh, wn)
    return [Tested(metric, z, p, value(rh / rn), value(wh / wn), wn)]


def _loss(
    metric: str, ref: np.ndarray, win: np.ndarray, value: Callable[[float], float] = float
) -> list[Tested]:
    """The test of a mean loss per label that rises when worse."""
    if len(ref) < MIN_LABELS or len(win) < MIN_LABELS:
        return []
    with np.errstate(over="ignore"):
        means = float(np.mean(ref)), float(np.mean(win))
    if not all(math.isfinite(m) for m in means):
        return []  # losses beyond any float: no value to state or test
    z, p = tests.mean_rise(ref, win)
    return [Tested(metric, z, p, value(means[0]), value(means[1]), len(win))]


def weights(tested: list[Tested]) -> list[float]:
    """Each metric's weight in the window's joint test (they average 1)."""
    head = sum(t.metric in HEADLINE for t in tested)
    rest = len(tested) - head
    if head == 0 or rest == 0:
        return [1.0] * len(tested)
    m = len(tested)
    return [m / (2 * head) if t.metric in HEADLINE else m / (2 * rest) for t in tested]


def accuracy(ref: list[int], win: list[int]) -> list[Tested]:
    # Thousands of labels: the normal approximation holds (and is the test accuracy always had).
    counts = (sum(ref), len(ref)), (sum(win), len(win))
    return _proportion("accuracy", *counts, test=tests.proportion_drop)


def top_classes(truths: list[str]) -> dict[str, str]:
    """The classes with per-class metrics, each with its name in signals: the most
    frequent reference labels (ties by name), a class whose bounded name another
    took already left out."""
    out: dict[str, str] = {}
    counts = sorted(Counter(truths).items(), key=lambda kv: (-kv[1], kv[0]))
    for label, _ in counts:
        if len(out) == MAX_CLASSES:
            break
        name = bounded_text(label)
        if name not in out.values():
            out[label] = name
    return out


def _confusion(predicted: np.ndarray, truth: np.ndarray, label: str) -> tuple[int, int, int]:
    """True positives, false positives and false negatives of class ``label``."""
    said, was = predicted == label, truth == label
    tp = int(np.count_nonzero(said & was))
    return tp, int(np.count_nonzero(said)) - tp, int(np.count_nonzero(was)) - tp


def per_class(
    ref: tuple[list[str], list[str]], win: tuple[list[str], list[str]], classes: dict[str, str]
) -> list[Tested]:
    """Precision, recall and F1 of each class: (predicted, truth) of each period."""
    rp, rt = np.array(ref[0], dtype=object), np.array(ref[1], dtype=object)
    wp, wt = np.array(win[0], dtype=object), np.array(win[1], dtype=object)
    out: list[Tested] = []
    for label, name in classes.items():
        rtp, rfp, rfn = _confusion(rp, rt, label)
        wtp, wfp, wfn = _confusion(wp, wt, label)
        out += _proportion(f"precision:{name}", (rtp, rtp + rfp), (wtp, wtp + wfp))
        out += _proportion(f"recall:{name}", (rtp, rtp + rfn), (wtp, wtp + wfn))
        f1 = (rtp, rtp + rfp + rfn), (wtp, wtp + wfp + wfn)
        out += _proportion(f"f1:{name}", *f1, value=lambda s: 2 * s / (1 + s))
    return out


def scored(ref: tuple[np.ndarray, np.ndarray], win: tuple[np.ndarray, np.ndarray]) -> list[Tested]:
    """ROC AUC, Brier score and log loss: (scores, is-positive) of each period."""
    out: list[Tested] = []
    ref_auc, win_auc = tests.auc(*ref), tests.auc(*win)
    if ref_auc is not None and win_auc is not None and len(win[0]) >= MIN_LABELS:
        z, p = tests.auc_drop(ref_auc, win_auc)
        out.append(Tested("roc_auc", z, p, ref_auc[0], win_auc[0], len(win[0])))
    out += _loss("brier", _brier(*ref), _brier(*win))
    out += _loss("log_loss", _log_loss(*ref), _log_loss(*win))
    return out


def _brier(scores: np.ndarray, positive: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.square(scores - positive)
    return out


def _log_loss(scores: np.ndarray, positive: np.ndarray) -> np.ndarray:
    clipped = np.clip(scores, EPS, 1 - EPS)
    out: np.ndarray = -np.log(np.where(positive, clipped, 1 - clipped))
    return out


def valued(ref: list[float], win: list[float]) -> list[Tested]:
    """MAE and RMSE of value predictions: the absolute errors of each period."""
    r, w = np.array(ref, dtype=np.float64), np.array(win, dtype=np.float64)
    out = _loss("mae", r, w)
    with np.errstate(over="ignore"):
        out += _loss("rmse", r * r, w * w, value=math.sqrt)
    return out
