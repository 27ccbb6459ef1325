"""Feedback that disagrees with the model in one segment of its traffic.

Poisoned feedback rarely moves a model's overall error: an attacker flips the
labels of one class in one corner of the traffic (one merchant, one country,
one range of amounts). This watch tests every segment of
:mod:`detectors.performance.segments` (signal ``feedback:<feature>=<segment>``)
in every *direction*: for class predictions, predicted class ``a`` labelled
``b`` (each of the first ``max_classes`` predicted classes, the rest as
"(other)"); for value predictions, a label above or below the prediction.

- **Reference.** The first ``reference_labels`` labels whose predictions have
  a segment key count, per segment and direction, the trials (labels of
  predicted class ``a``; every label for values) and the disagreements. A
  segment's reference rate is shrunk towards its feature's pooled rate
  (a Beta prior of as many labels as the segments' spread in the reference
  allows, empirical Bayes, at least ``prior_strength``) and taken at the
  ``quantile`` of its posterior: a rate estimated from few labels is not
  trusted to be low, and segments that look alike share their evidence.
  The reference grows: every ``AGE_BLOCKS`` blocks of ``block_labels``
  labels, the labels tested ``AGE_BLOCKS`` to twice as many blocks before
  join it, except in a cell whose CUSUM stands at a quarter of its threshold
  or more (a suspect segment does not learn its suspect labels as normal).
- **Relative to the rest.** A change of the model's error everywhere (drift,
  a bad release) is not poisoning: realized performance speaks of it. So a
  segment's null rate is its reference rate with its odds lifted by the rise
  of the *rest of its feature* (the other segments, same direction) in the
  recent labels (the previous block and the current one up to the current
  step of ``STEP_LABELS``; renewed every step, in the watch's order, so never
  dependent on the batching) over its reference, the recent rate taken
  ``LIFT_Z`` standard errors low (the rest's noise does not lift it), and
  never below the segment's reference rate. A rise everywhere lifts the nulls
  within a block; until then a segment's CUSUM may climb, so a violation
  is a finding only if its CUSUM's run *stands apart* from the rest in the
  same labels (:meth:`FeedbackWatch._apart`: more of the run's disagreements
  fall in the segment than its share of trials and its reference risk ratio,
  at least 1, allow; binomial test at ``CONFIRM_P``). A flip in one segment
  leaves the rest, and its null, alone. Nothing waits for later labels: a
  finding is raised at the label that crosses.
- **Test.** Each segment and direction runs a Bernoulli CUSUM of the log
  likelihood ratio of a rate whose odds are ``odds_ratio`` times the null's
  against the null rate, in integer thousandths of a nat (exact whatever the
  batching). Lorden's bound makes each CUSUM's run between false alarms at
  least ``exp(h)`` of its trials when the true rate is at most the null
  rate; with ``h = ln(false_alarm_labels * T)``, where ``T`` is the number of
  trials one label makes across all CUSUMs, the whole watch raises at most
  one false alarm per ``false_alarm_labels`` labels: a Bonferroni budget
  spread over segments in proportion to their traffic. The exact average
  run is longer than ``exp(h)`` by a factor that depends on the null rate
  (:func:`arl_factor`, from the CUSUM's Markov chain; 7 to 14 for rates of
  13% to 5%): each cell's threshold is ``h`` less its log, taken at twice the
  cell's reference rate and at most ``ln MAX_ARL_FACTOR``.
- **Alarms.** A CUSUM at or above its threshold is a violation (critical
  ``ln 100`` higher, where it is held); the segment's signal fires, and
  returns to ok once ``recover_labels`` labels pass with no violation.

Labels count in the watch's own order (``count``), so findings never depend on
how the labels were batched; ``details.event_index`` is the label's position
in the model's stream.

Page, E. S. (1954). Continuous inspection schemes. *Biometrika*, 41(1/2),
100-115. Lorden, G. (1971). Procedures for reacting to a change in
distribution. *The Annals of Mathematical Statistics*, 42(6), 1897-1908.
"""

from __future__ import annotations

import base64
import functools
import math
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse, stats
from scipy.sparse import linalg as sparse_linalg

from detectors.base import Finding, Severity
from detectors.codec import encode_float
from detectors.performance.segments import BINS, SegmentLayout, bounded_text
from detectors.suite.alarms import AlarmTracker
from detectors.suite.error_stream import JoinedLabels, value_error

DETECTOR = "feedback"
SCALE = 1000  # CUSUM units per nat
VERSION = 2  # states of version 1 (blocks tested when the next was complete) load
# Pseudo-trials at the rest's reference rate added to the rest's recent trials: a rest
# without recent labels leaves the null at its reference.
REST_PRIOR = 20.0
# Labels between renewals of the null rates: a rise of the model's error everywhere is in
# every null within this many labels (fewer: more work per label).
STEP_LABELS = 100
ARL_UNIT = 0.01  # nats: the grid of the CUSUM's states in arl_factor
# At most this factor (3 nats) off Lorden's threshold: for a rate near zero the exact
# factor grows without bound, and the rate is an estimate.
MAX_ARL_FACTOR = 20.0
ARL_RATES = np.geomspace(1e-4, 0.5, 24)  # where arl_factor computes the run length
# A violation raises a finding only if its run's disagreements fall in the segment more
# than its share and risk ratio allow at this level (see FeedbackWatch._apart).
CONFIRM_P = 1e-4
# The reference grows by the labels tested between AGE_BLOCKS and 2 * AGE_BLOCKS blocks ago.
AGE_BLOCKS = 3
ABOVE, BELOW = 0, 1  # the directions of value predictions
CRITICAL_NATS = math.log(100.0)
# The pooling of a feature's segments (FeedbackWatch._pooling) takes the spread between
# them from its homogeneity statistic less this quantile of its chi-square law under no
# spread: at the upper end of what the reference allows, so pooling is not over-trusted.
SPREAD_QUANTILE = 0.25
# The rest of a feature lifts its segments' nulls by its recent rise at this many standard
# errors below its recent rate: a rise that is there, not the noise of ~1,000 labels.
LIFT_Z = 1.645


# A violation: (label in the piece, cell, CUSUM value, the trials and disagreements of its
# run, and those of its feature and direction in the same labels).
Violation = tuple[int, int, int, int, int, int, int]


def _pack(a: np.ndarray) -> dict[str, Any]:
    """An int array as plain data: zlib of its little-endian int32 bytes (mostly zeros;
    counts and CUSUM values stay far below 2**31). Level 1: a checkpoint writes it."""
    raw = np.ascontiguousarray(a, dtype="<i4").tobytes()
    return {"shape": list(a.shape), "z": base64.b64encode(zlib.compress(raw, 1)).decode()}


def _unpack(d: dict[str, Any]) -> np.ndarray:
    raw = zlib.decompress(base64.b64decode(d["z"]))
    return np.frombuffer(raw, dtype="<i4").astype(np.int32).reshape(d["shape"])


def arl_factor(rates: np.ndarray, odds_ratio: float, nats: float) -> np.ndarray:
    """How many times ``exp(nats)`` trials a Bernoulli CUSUM of a rate with ``odds_ratio``
    times the odds of ``rates`` against ``rates`` runs on average, at that rate, before it
    reaches ``nats`` (Lorden's bound: at least once; its overshoot and its stay at zero
    make it several times more for rare disagreements). Exact on a grid of ARL_UNIT nats
    (Markov chain of the CUSUM's value), at 24 rates from 1e-4 to 0.5 (interpolated in
    log rate, rounded down to the smaller factor of the two around it), never below 1."""
    grid = ARL_RATES
    found = np.array(_arl_grid(odds_ratio, round(nats, 9))) / math.exp(nats)
    where = np.clip(np.searchsorted(grid, rates), 1, len(grid) - 1)
    # The factor falls as the rate rises: the grid point above is the smaller.
    smaller = np.minimum(found[where - 1], found[where])
    return np.clip(smaller, 1.0, MAX_ARL_FACTOR)


@functools.lru_cache(maxsize=64)
def _arl_grid(odds_ratio: float, nats: float) -> tuple[float, ...]:
    return tuple(_arl(float(p), odds_ratio, nats) for p in ARL_RATES)


def _arl(p0: float, odds_ratio: float, nats: float) -> float:
    """Average trials of the CUSUM (steps rounded to ARL_UNIT) at rate ``p0`` until ``nats``."""
    odds = odds_ratio * p0 / (1 - p0)
    p1 = odds / (1 + odds)
    up = max(1, round(math.log(p1 / p0) / ARL_UNIT))
    down = min(-1, round(math.log((1 - p1) / (1 - p0)) / ARL_UNIT))
    states = math.ceil(nats / ARL_UNIT)
    # E[run from s] = 1 + p0 E[run from s + up] + (1 - p0) E[run from max(0, s + down)].
    s = np.arange(states)
    rising = s + up < states
    rows = np.r_[s, s[rising], s]
    cols = np.r_[s, (s + up)[rising], np.maximum(0, s + down)]
    values = np.r_[np.ones(states), np.full(int(rising.sum()), -p0), np.full(states, p0 - 1)]
    system = sparse.csc_matrix((values, (rows, cols)), shape=(states, states))
    return float(sparse_linalg.spsolve(system, np.ones(states))[0])


class FeedbackWatch:
    """Per-segment, per-direction disagreement of labels with predictions (module docstring)."""

    def __init__(
        self,
        false_alarm_labels: float = 1e7,
        reference_labels: int = 5_000,
        odds_ratio: float = 6.0,
        max_classes: int = 5,
        prior_strength: float = 50.0,
        quantile: float = 0.65,
        recover_labels: int = 5000,
        block_labels: int = 1000,
    ) -> None:
        if not false_alarm_labels >= 100:
            raise ValueError(f"false_alarm_labels must be at least 100, got {false_alarm_labels}")
        if reference_labels < 100:
            raise ValueError(f"reference_labels must be at least 100, got {reference_labels}")
        if not odds_ratio > 1:
            raise ValueError(f"odds_ratio must be above 1, got {odds_ratio}")
        if not 100 <= block_labels <= 100_000 or block_labels % STEP_LABELS:
            raise ValueError(
                f"block_labels must be a multiple of {STEP_LABELS} from 100 to 100,000, "
                f"got {block_labels}"
            )
        if not 1 <= max_classes <= 20:
            raise ValueError(f"max_classes must be 1 to 20, got {max_classes}")
        if not prior_strength >= 0 or not 0.5 <= quantile < 1:
            raise ValueError("prior_strength must be >= 0 and quantile in [0.5, 1)")
        self.false_alarm_labels = float(false_alarm_labels)
        self.reference_labels = reference_labels
        self.odds_ratio = float(odds_ratio)
        self.max_classes = max_classes
        self.prior_strength = float(prior_strength)
        self.quantile = float(quantile)
        self.recover_labels = recover_labels
        self.block_labels = block_labels
        # Labels not counted, ever: without a key of the current layout (made in the
        # model's warm-up, or before its baseline was rebuilt), or not comparable.
        self.skipped = 0
        self._start(None)

    def _start(self, layout: SegmentLayout | None) -> None:
        """Forget everything and begin a reference period under ``layout``."""
        self.layout = layout
        self.alarms = AlarmTracker(recover_after=self.recover_labels)
        self.kind: str | None = None  # "class" or "value", set by the first label
        self.classes: list[str] = []
        self.count = 0  # labels counted (reference included)
        features = 0 if layout is None else len(layout.features)
        # int32 throughout: 20 features make 8,640 cells.
        self.trials = np.zeros((features, BINS, 0), dtype=np.int32)
        self.hits = np.zeros_like(self.trials)
        # After the reference: each CUSUM's increments, value and current run.
        self.up: np.ndarray | None = None
        self.down: np.ndarray | None = None
        self.cusum: np.ndarray | None = None
        self.run_trials: np.ndarray | None = None
        self.run_hits: np.ndarray | None = None
        # Trials and disagreements of each CUSUM's feature and direction in its run, and
        # of each direction in the piece being tested (see _direction_totals).
        self.run_feature = np.zeros((2, 0), np.int32)
        self.totals: list[np.ndarray] = []
        self.baseline: np.ndarray | None = None  # each CUSUM's null rate in the current step
        self.recent: np.ndarray | None = None  # see _begin_tests
        self.aging = np.zeros((0,), np.int32)
        # From the reference: the rest of each cell's feature's rate, at its lower quantile
        # (for _apart) and its mean (what the rest's recent rate is compared with).
        self.rest_reference: np.ndarray | None = None
        self.rest_mean: np.ndarray | None = None
        self.reference_rate: np.ndarray | None = None  # the segment's, at its quantile
        # Each CUSUM's threshold and critical level, in SCALE units.
        self.threshold = self.critical = np.zeros((features, BINS, 0), np.int32)

    @property
    def in_reference(self) -> bool:
        return self.count < self.reference_labels

    @property
    def directions(self) -> int:
        return 2 if self.kind == "value" else (self.max_classes + 1) ** 2

    # -- labels -------------------------------------------------------------
    def observe(self, joined: JoinedLabels, layout: SegmentLayout | None) -> list[Finding]:
        """Take the next joined labels; ``layout`` is the model's current one (None: none yet)."""
        if layout is None:
            self.skipped += len(joined.seq)
            return []
        if self.layout is None or self.layout.digest != layout.digest:
            self._start(layout)  # a new baseline: its segments are new ones
        kept, codes, predicted, truth = self._comparable(joined)
        if not kept:
            return []
        found: list[Finding] = []
        start = 0
        if self.in_reference:
            take = min(len(kept), self.reference_labels - self.count)
            cells, hits, _ = self._trials(codes[:take], predicted[:take], truth[:take])
            size = self.trials.size
            self.trials += np.bincount(cells, minlength=size).reshape(self.trials.shape)
            self.hits += np.bincount(cells[hits], minlength=size).reshape(self.trials.shape)
            self.count += take
            start = take
            if not self.in_reference:
                self._fit()
                self._begin_tests()
        rows = np.array(kept[start:], dtype=np.int64)
        seq = np.asarray(joined.seq, dtype=np.int64)[rows]
        ts = np.asarray(joined.ts, dtype=np.float64)[rows]
        a = 0
        while a < len(rows):
            # A piece ends where the null rates are renewed: every STEP_LABELS labels
            # (which are also block boundaries), counted in the watch's order.
            tested = self.count - self.reference_labels
            b = a + min(STEP_LABELS - tested % STEP_LABELS, len(rows) - a)
            piece = _Piece(
                codes[start + a : start + b],
                predicted[start + a : start + b],
                truth[start + a : start + b],
                seq[a:b],
                ts[a:b],
            )
            found += self._test(piece, self.count)
            a = b
        return found

    def _comparable(
        self, joined: JoinedLabels
    ) -> tuple[list[int], np.ndarray, np.ndarray, np.ndarray]:
        """The labels this watch counts (positions in ``joined``), their bins, and their
        predicted and true class slots (values: 0 and the sign of the error)."""
        assert self.layout is not None
        digest, width = self.layout.digest, len(self.layout.features)
        kept: list[int] = []
        keys: list[bytes] = []
        predicted: list[int] = []
        truth: list[int] = []
        segments = joined.segments if len(joined.segments) == len(joined.seq) else ()
        for i, key in enumerate(segments):
            if key is None or len(key) != len(digest) + width or not key.startswith(digest):
                continue
            slots = self._slots(joined.predicted[i], joined.truth[i])
            if slots is None:
                continue
            kept.append(i)
            keys.append(key[len(digest) :])
            predicted.append(slots[0])
            truth.append(slots[1])
        self.skipped += len(joined.seq) - len(kept)
        codes = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(kept), width)
        return kept, codes, np.array(predicted, np.int64), np.array(truth, np.int64)

    def _slots(self, predicted: str | float, truth: object) -> tuple[int, int] | None:
        kind = "class" if isinstance(predicted, str) else "value"
        if self.kind is None:
            self.kind = kind
            shape = (len(self.trials), BINS, self.directions)
            self.trials, self.hits = np.zeros(shape, np.int32), np.zeros(shape, np.int32)
        if kind != self.kind:
            return None
        if isinstance(predicted, str):
            text = ("true" if truth else "false") if isinstance(truth, bool) else str(truth)
            return self._class_slot(predicted, True), self._class_slot(text, False)
        error = value_error(predicted, truth)
        if error is None or not math.isfinite(error):
            return None
        return 0, (1 if error > 0 else -1 if error < 0 else 0)

    def _class_slot(self, name: str, may_add: bool) -> int:
        """A class's slot: the first ``max_classes`` predicted in the reference; else other."""
        try:
            return self.classes.index(name)
        except ValueError:
            if may_add and self.in_reference and len(self.classes) < self.max_classes:
                self.classes.append(name)
                return len(self.classes) - 1
            return self.max_classes

    def _trials(
        self, codes: np.ndarray, predicted: np.ndarray, truth: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every trial the labels make, in stream order: the flat CUSUM cell (feature,
        bin, direction), whether it is a disagreement, and the label it comes from."""
        n, width = codes.shape
        if self.kind == "value":
            directions = np.broadcast_to(np.array([ABOVE, BELOW]), (n, 2))
            hits = np.stack([truth > 0, truth < 0], axis=1)
        else:
            k = self.max_classes + 1
            # During the reference every slot is a target, whether or not its class has
            # come yet: which trials a label makes never depends on the batching.
            targets = np.arange(k) if self.in_reference else self._targets()
            mask = targets[None, :] != predicted[:, None]
            per = len(targets) - 1  # the predicted slot is always among the targets
            chosen = np.broadcast_to(targets, mask.shape)[mask].reshape(n, per)
            directions = predicted[:, None] * k + chosen
            hits = chosen == truth[:, None]
        per = directions.shape[1]
        base = (np.arange(width)[None, :] * BINS + codes) * self.directions  # (n, width)
        cells = (base[:, :, None] + directions[:, None, :]).reshape(-1)
        hit = np.broadcast_to(hits[:, None, :], (n, width, per)).reshape(-1)
        label = np.repeat(np.arange(n), width * per)
        return cells.astype(np.int64), hit, label

    def _targets(self) -> np.ndarray:
        return np.array([*range(len(self.classes)), self.max_classes])

    def _trials_per_label(self) -> int:
        width = len(self.trials)
        return width * (2 if self.kind == "value" else len(self.classes))

    # -- the reference's rates and the CUSUMs ---------------------------------
    def _fit(self) -> None:
        """Turn the reference counts into each CUSUM's reference rate, its odds ratio to the
        rest of its feature, and its threshold."""
        trials = self.trials.astype(np.float64)
        hits = self.hits.astype(np.float64)
        pooled_trials = trials.sum(axis=1, keepdims=True)
        pooled = np.divide(
            hits.sum(axis=1, keepdims=True),
            pooled_trials,
            out=np.zeros_like(pooled_trials),
            where=pooled_trials > 0,
        )
        m = self._pooling(trials, hits, pooled)
        a = hits + m * pooled + 0.5
        b = trials - hits + m * (1 - pooled) + 0.5
        # A cell without reference trials has its prior's rate; only the others need
        # a quantile of their own (scipy's is slow, and most cells are empty).
        p0 = np.broadcast_to(
            stats.beta.ppf(self.quantile, m * pooled + 0.5, m * (1 - pooled) + 0.5), trials.shape
        ).copy()
        seen = trials > 0
        p0[seen] = stats.beta.ppf(self.quantile, a[seen], b[seen])
        p0 = np.clip(p0, 1e-6, 1 - 1e-6)
        # The rest's reference rate at the lower quantile: the ratio of the two, like the
        # segment's rate, is not trusted to be low for having been seen on few labels.
        rest_trials = pooled_trials - trials
        rest_hits = hits.sum(axis=1, keepdims=True) - hits
        rest = stats.beta.ppf(1 - self.quantile, rest_hits + 0.5, rest_trials - rest_hits + 0.5)
        rest = np.clip(rest, 1e-6, 1 - 1e-6)
        self.rest_reference = rest
        self.rest_mean = (rest_hits + 0.5) / (rest_trials + 1.0)
        self.reference_rate = p0
        # Lorden's bound: at most one false alarm per exp(h) trials of a CUSUM whose null
        # rate is not below the true one; exp(h) = false_alarm_labels * T trials gives the
        # watch at most one per false_alarm_labels labels. The CUSUM's exact run between
        # false alarms is longer, by a factor that depends on its null rate (arl_factor):
        # each cell's threshold takes it at twice its reference rate, as a null raised
        # with the rest of its feature has a smaller factor.
        nats = math.log(self.false_alarm_labels * max(self._trials_per_label(), 1))
        factor = arl_factor(np.minimum(2 * p0, 0.5), self.odds_ratio, nats)
        self.threshold = np.ceil(SCALE * (nats - np.log(factor))).astype(np.int32)
        self.critical = self.threshold + math.ceil(SCALE * CRITICAL_NATS)

    def _pooling(self, trials: np.ndarray, hits: np.ndarray, pooled: np.ndarray) -> np.ndarray:
        """The strength (pseudo-labels) of each feature and direction's prior for its
        segments' rates, from how much they differ in the reference (empirical Bayes; at
        least ``prior_strength``, at most the feature's trials in the direction: the
        pooled rate is known no better than its labels make it). If the segments' true rates are
        spread as a Beta of strength ``m`` around the pooled rate ``mu``, a segment's
        disagreements vary ``1 + (n - 1) / (m + 1)`` times as much as a binomial's, and the
        homogeneity statistic ``Q`` (its squared deviations over binomial variances) has
        mean ``K - 1 + rho * sum(n - 1)`` over ``K`` segments, ``rho = 1 / (m + 1)``. ``rho``
        is taken with ``Q`` less a low quantile (SPREAD_QUANTILE) of its chi-square law
        with no spread: segments that look alike share their labels' evidence (a segment's
        rate rests on its feature's thousands of labels, not its own hundreds); segments
        that differ keep their own."""
        seen = trials > 0
        segments = seen.sum(axis=1, keepdims=True)
        variance = np.maximum(pooled * (1 - pooled), 1e-12)
        deviations = (hits - trials * pooled) ** 2 / np.maximum(trials, 1) / variance
        q = np.where(seen, deviations, 0).sum(axis=1, keepdims=True)
        allowed = stats.chi2.ppf(SPREAD_QUANTILE, np.maximum(segments - 1, 1))
        room = np.where(seen, trials - 1, 0).sum(axis=1, keepdims=True)
        rho = np.maximum(q - allowed, 0) / np.maximum(room, 1)
        most = np.maximum(trials.sum(axis=1, keepdims=True), self.prior_strength)
        m = np.where(rho > 0, 1 / np.maximum(rho, 1e-12) - 1, most)
        m = np.clip(m, self.prior_strength, most)
        return np.where((segments >= 2) & (pooled > 0), m, self.prior_strength)

    def _begin_tests(self) -> None:
        """The reference is complete: every CUSUM at zero, its null at its reference."""
        shape = self.trials.shape
        self.cusum = np.zeros(shape, np.int32)
        self.run_trials = np.zeros(shape, np.int32)
        self.run_hits = np.zeros(shape, np.int32)
        self.run_feature = np.zeros((2, *shape), np.int32)
        # Trials and disagreements of each cell: in the previous block, the current one
        # before the current step, and the current step (the nulls of a step never
        # depend on its own labels, so they are the same whatever the batching).
        self.recent = np.zeros((6, *shape), np.int32)
        # Trials and disagreements of each cell since the reference last grew, and in the
        # AGE_BLOCKS blocks before (see _absorb).
        self.aging = np.zeros((4, *shape), np.int32)

    def _nulls(self) -> np.ndarray:
        """Each CUSUM's null rate now: its reference rate, its odds lifted as much as the
        rest of its feature has risen in the recent labels (the previous block and the
        current one so far), taken LIFT_Z standard errors low: a rest that rose lifts it,
        the noise of the rest's ~1,000 recent labels does not (it was the null's own
        noise, and lost power). Never below the reference rate: a rest that improves (or
        one segment of a two-segment feature that disagrees less) does not make the
        others suspect."""
        assert self.rest_mean is not None and self.rest_reference is not None
        assert self.reference_rate is not None and self.recent is not None
        trials = (self.recent[0] + self.recent[2]).astype(np.float64)
        agreed = (self.recent[1] + self.recent[3]).astype(np.float64)
        rest_trials = trials.sum(axis=1, keepdims=True) - trials
        rest_hits = agreed.sum(axis=1, keepdims=True) - agreed
        n = rest_trials + REST_PRIOR
        rest = (rest_hits + REST_PRIOR * self.rest_mean) / n
        low = np.clip(rest - LIFT_Z * np.sqrt(rest * (1 - rest) / n), 1e-6, 1 - 1e-6)
        lift = np.maximum(1.0, (low / (1 - low)) / (self.rest_mean / (1 - self.rest_mean)))
        odds = lift * self.reference_rate / (1 - self.reference_rate)
        null: np.ndarray = np.clip(
            np.maximum(odds / (1 + odds), self.reference_rate), 1e-6, 1 - 1e-6
        ).astype(np.float64)
        return null

    def _count_recent(self, cells: np.ndarray, hits: np.ndarray) -> None:
        """Add a piece's trials to the current step's; at the end of a step, to the current
        block's; at the end of a block, it becomes the previous one."""
        assert self.recent is not None
        size = self.trials.size
        self.recent[4] += np.bincount(cells, minlength=size).reshape(self.trials.shape)
        self.recent[5] += np.bincount(cells[hits], minlength=size).reshape(self.trials.shape)
        tested = self.count - self.reference_labels
        if tested % STEP_LABELS == 0:
            self.recent[2:4] += self.recent[4:6]
            self.recent[4:6] = 0
        if tested % self.block_labels == 0:
            self.aging[0:2] += self.recent[2:4]
            self.recent[0:2] = self.recent[2:4]
            self.recent[2:4] = 0
            if tested % (AGE_BLOCKS * self.block_labels) == 0:
                self._absorb()

    def _absorb(self) -> None:
        """The reference grows: labels tested between ``AGE_BLOCKS`` and twice as many blocks
        ago join it, but not in a cell whose CUSUM stands at a quarter of its threshold or more
        (a segment under suspicion does not learn its suspect labels as normal)."""
        assert self.cusum is not None
        calm = self.cusum < self.threshold // 4
        self.trials += np.where(calm, self.aging[2], 0)
        self.hits += np.where(calm, self.aging[3], 0)
        self.aging[2:4] = self.aging[0:2]
        self.aging[0:2] = 0
        self._fit()

    def _increments(self, p0: np.ndarray) -> None:
        """Each CUSUM's steps for a disagreement and an agreement against null rates ``p0``."""
        odds = self.odds_ratio * p0 / (1 - p0)
        p1 = odds / (1 + odds)
        self.baseline = p0.astype(np.float32)  # for the details
        self.up = np.rint(SCALE * np.log(p1 / p0)).astype(np.int32)
        self.down = np.rint(SCALE * np.log((1 - p1) / (1 - p0))).astype(np.int32)

    def _test(self, piece: _Piece, first: int) -> list[Finding]:
        """Run the CUSUMs over a piece of labels (counted from ``first``) against the nulls
        of the recent labels before it; then count its trials among the recent ones."""
        assert self.cusum is not None and self.recent is not None
        assert self.run_trials is not None and self.run_hits is not None
        cells, hits, labels = self._trials(piece.codes, piece.predicted, piece.truth)
        self.count += len(piece.seq)
        if not len(cells):  # a model without features
            return self._report(piece, first, [])
        if (first - self.reference_labels) % STEP_LABELS == 0 or self.up is None:
            self._increments(self._nulls())
        assert self.up is not None and self.down is not None
        self._direction_totals(cells, hits, labels, len(piece.seq))
        counted = cells, hits
        order = np.argsort(cells, kind="stable")  # each cell's trials, in stream order
        cells, hits, labels = cells[order], hits[order], labels[order]
        steps = np.where(hits, self.up.flat[cells], self.down.flat[cells]).astype(np.int64)
        starts = np.flatnonzero(np.r_[True, cells[1:] != cells[:-1]])
        stops = np.r_[starts[1:], len(cells)]
        groups = np.repeat(np.arange(len(starts)), stops - starts)
        owners = cells[starts]
        begin = self.cusum.flat[owners].astype(np.int64)
        # Within a cell, S_t = C_t - min(0, min_{s<=t} C_s) with C the running sum from S_0.
        total = np.cumsum(steps)
        before = np.r_[0, total][starts]
        running = total - before[groups] + begin[groups]
        spread = 2 * (int(np.abs(steps).sum()) + int(begin.max()) + 1)
        shifted = running - groups * spread  # cells apart: a running minimum per cell
        lowest = np.minimum.accumulate(shifted) + groups * spread
        value = running - np.minimum(lowest, 0)
        peak = np.maximum.reduceat(value, starts)
        limit = self.threshold.flat[owners]
        sequential = (peak >= limit) | (begin >= limit)
        # Cells that never reach the threshold: their value and run, from the arrays.
        position = np.arange(len(cells))
        last_zero = np.maximum.reduceat(np.where(value == 0, position, -1), starts)
        hit_total = np.r_[0, np.cumsum(hits)]
        calm = ~sequential
        c_owner, c_zero, c_start, c_stop = owners[calm], last_zero[calm], starts[calm], stops[calm]
        restarted = c_zero >= 0
        self.cusum.flat[c_owner] = value[c_stop - 1]
        new_trials = np.where(restarted, c_stop - 1 - c_zero, c_stop - c_start)
        from_ = np.where(restarted, c_zero + 1, c_start)
        new_hits = hit_total[c_stop] - hit_total[from_]
        self.run_trials.flat[c_owner] = np.where(restarted, 0, self.run_trials.flat[c_owner])
        self.run_hits.flat[c_owner] = np.where(restarted, 0, self.run_hits.flat[c_owner])
        self.run_trials.flat[c_owner] += new_trials
        self.run_hits.flat[c_owner] += new_hits
        # The trials and disagreements of each cell's feature and direction in its run:
        # the labels after the one of its last trial at zero (or the whole piece).
        way = c_owner % self.directions
        after = np.where(restarted, labels[np.maximum(c_zero, 0)] + 1, 0)
        for layer, totals in enumerate(self.totals):
            kept = np.where(restarted, 0, self.run_feature[layer].flat[c_owner])
            self.run_feature[layer].flat[c_owner] = kept + totals[way, -1] - totals[way, after]
        violations: list[Violation] = []
        for g in np.flatnonzero(sequential):
            violations += self._walk(
                int(owners[g]),
                steps[starts[g] : stops[g]],
                hits[starts[g] : stops[g]],
                labels[starts[g] : stops[g]],
            )
        violations.sort()
        found = self._report(piece, first, violations)
        # Last: at the end of a block the reference may grow, and with it the thresholds,
        # which must not change within a step (whatever the batching).
        self._count_recent(*counted)
        return found

    def _direction_totals(
        self, cells: np.ndarray, hits: np.ndarray, labels: np.ndarray, n: int
    ) -> None:
        """Trials and disagreements of each direction among a piece's labels up to each one:
        ``totals[0 or 1][direction, j]`` counts labels before label ``j`` (every label makes
        the same trials in every feature: feature 0's are counted)."""
        first = cells < BINS * self.directions
        way = cells[first] % self.directions
        self.totals = []
        for counted in (np.ones(int(first.sum()), bool), hits[first]):
            grid = np.zeros((self.directions, n + 1), np.int64)
            np.add.at(grid, (way[counted], labels[first][counted] + 1), 1)
            self.totals.append(np.cumsum(grid, axis=1))

    def _walk(
        self, cell: int, steps: np.ndarray, hits: np.ndarray, labels: np.ndarray
    ) -> list[Violation]:
        """One cell's trials one by one, held at the critical level: its violations."""
        assert self.cusum is not None and self.run_trials is not None
        assert self.run_hits is not None
        value = int(self.cusum.flat[cell])
        threshold, critical = int(self.threshold.flat[cell]), int(self.critical.flat[cell])
        n, k = int(self.run_trials.flat[cell]), int(self.run_hits.flat[cell])
        way = cell % self.directions
        trials, agreed = (t[way] for t in self.totals)
        # The run's trials of the feature and direction before this piece, and from where
        # in the piece it counts them.
        carried = [int(layer.flat[cell]) for layer in self.run_feature]
        since = 0
        out = []
        for step, hit, label in zip(steps.tolist(), hits.tolist(), labels.tolist(), strict=True):
            value = min(critical, max(0, value + step))
            if value == 0:
                n, k, carried, since = 0, 0, [0, 0], label + 1
                continue
            n, k = n + 1, k + int(hit)
            if value >= threshold:
                feature_n = carried[0] + int(trials[label + 1] - trials[since])
                feature_k = carried[1] + int(agreed[label + 1] - agreed[since])
                out.append((label, cell, value, n, k, feature_n, feature_k))
        self.cusum.flat[cell] = value
        self.run_trials.flat[cell] = n
        self.run_hits.flat[cell] = k
        self.run_feature[0].flat[cell] = carried[0] + int(trials[-1] - trials[since])
        self.run_feature[1].flat[cell] = carried[1] + int(agreed[-1] - agreed[since])
        return out

    def _report(self, piece: _Piece, first: int, violations: list[Violation]) -> list[Finding]:
        last = len(piece.seq) - 1

        def moment(point: int) -> float:
            """The time of the first label counted at or after ``point``."""
            return float(piece.ts[min(max(point - first, 0), last)])

        found: list[Finding] = []
        for label, cell, value, n, k, feature_n, feature_k in violations:
            if not self._apart(cell, n, k, feature_n - n, feature_k - k):
                continue
            index = first + label
            ts = float(piece.ts[label])
            self.alarms.resolve_due(index - 1, moment)
            severity: Severity = "critical" if value >= self.critical.flat[cell] else "warning"
            feature, segment, direction = self._describe(cell)
            signal = f"feedback:{feature}={segment}"
            state = self.alarms.report(f"{DETECTOR}|{signal}", severity, index, ts)
            if state is None:
                continue
            details = {
                "state": state,
                "event_index": int(piece.seq[label]),
                "feature": feature,
                "segment": segment,
                "direction": direction,
            }
            found.append(self._finding(cell, signal, ts, severity, (value, n, k), details))
        self.alarms.resolve_due(first + last, moment)
        return found

    def _apart(self, cell: int, n: int, k: int, rest_n: int, rest_k: int) -> bool:
        """Whether a segment's run (``k`` disagreements in ``n`` trials) stands apart from
        the rest of its feature in the same labels (``rest_k`` in ``rest_n``): of the run's
        disagreements, more fall in the segment than its share of trials and its reference
        risk ratio to the rest (at least 1) allow (a binomial test at CONFIRM_P). A rise of
        the error everywhere lifts a segment's CUSUM while its null (the rest of late)
        catches up; it fails this test, as the rest rose in the same labels."""
        assert self.reference_rate is not None and self.rest_reference is not None
        if rest_n <= 0 or n <= 0:
            return True
        # At least 1: a segment that seemed to disagree less than the rest in the reference
        # may have been lucky there (one of hundreds), and a rise everywhere would show it.
        ratio = max(1.0, float(self.reference_rate.flat[cell] / self.rest_reference.flat[cell]))
        share = n * ratio / (n * ratio + rest_n)
        return bool(stats.binom.sf(k - 1, k + rest_k, share) <= CONFIRM_P)

    def _finding(
        self,
        cell: int,
        signal: str,
        ts: float,
        severity: Severity,
        run: tuple[int, int, int],
        details: dict[str, Any],
    ) -> Finding:
        """The finding of a violation: ``run`` is the CUSUM's value, and the trials and
        disagreements since it last stood at zero."""
        assert self.baseline is not None
        value, n, k = run
        trials, hits = int(self.trials.flat[cell]), int(self.hits.flat[cell])
        reference = hits / trials if trials else 0.0
        current = k / n if n else 0.0
        details |= {
            "reference_rate": round(reference, 6),
            "reference_trials": trials,
            "reference_disagreements": hits,
            "baseline_rate": round(float(self.baseline.flat[cell]), 6),
            "current_rate": round(current, 6),
            "current_trials": n,
            "current_disagreements": k,
            "reference_labels": self.reference_labels,
            "block_labels": self.block_labels,
            # What on-call reads first: labels of this direction, before and now.
            "summary": f"{details['direction']} {reference:.1%} → {current:.1%} of labels",
        }
        return Finding(
            DETECTOR,
            signal,
            ts,
            severity,
            value / SCALE,
            int(self.threshold.flat[cell]) / SCALE,
            None,
            current - reference,
            details,
        )

    def _describe(self, cell: int) -> tuple[str, str, str]:
        """The feature, segment and direction (``fraud → ok``) of a CUSUM cell."""
        assert self.layout is not None
        rest, direction = divmod(cell, self.directions)
        index, code = divmod(rest, BINS)
        bins = self.layout.features[index]
        if self.kind == "value":
            way = "label above prediction" if direction == ABOVE else "label below prediction"
        else:
            a, b = divmod(direction, self.max_classes + 1)
            way = f"{self._class_name(a)} → {self._class_name(b)}"
        return bins.name, bins.segment(code), way

    def _class_name(self, slot: int) -> str:
        return bounded_text(self.classes[slot]) if slot < len(self.classes) else "(other)"

    # -- state ----------------------------------------------------------------
    def dump(self) -> dict[str, Any]:
        fitted = self.cusum is not None
        return {
            "version": VERSION,
            "false_alarm_labels": encode_float(self.false_alarm_labels),
            "reference_labels": self.reference_labels,
            "odds_ratio": encode_float(self.odds_ratio),
            "max_classes": self.max_classes,
            "prior_strength": encode_float(self.prior_strength),
            "quantile": encode_float(self.quantile),
            "recover_labels": self.recover_labels,
            "block_labels": self.block_labels,
            "layout": None if self.layout is None else self.layout.dump(),
            "kind": self.kind,
            "classes": list(self.classes),
            "count": self.count,
            "skipped": self.skipped,
            "trials": _pack(self.trials),
            "hits": _pack(self.hits),
            "cusum": _pack(self.cusum) if fitted else None,  # type: ignore[arg-type]
            "run_trials": _pack(self.run_trials) if fitted else None,  # type: ignore[arg-type]
            "run_hits": _pack(self.run_hits) if fitted else None,  # type: ignore[arg-type]
            "recent": _pack(self.recent) if fitted else None,  # type: ignore[arg-type]
            "aging": _pack(self.aging) if fitted else None,
            "run_feature": _pack(self.run_feature) if fitted else None,
            "alarms": self.alarms.dump(),
        }

    @classmethod
    def load(cls, state: dict[str, Any]) -> FeedbackWatch:
        watch = cls(
            float(state["false_alarm_labels"]),
            int(state["reference_labels"]),
            float(state["odds_ratio"]),
            int(state["max_classes"]),
            float(state["prior_strength"]),
            float(state["quantile"]),
            int(state["recover_labels"]),
            int(state.get("block_labels", 1000)),  # states from before blocks: 1,000
        )
        layout = None if state["layout"] is None else SegmentLayout.load(state["layout"])
        watch._start(layout)
        watch.kind = state["kind"]
        watch.classes = [str(c) for c in state["classes"]]
        watch.count = int(state["count"])
        watch.skipped = int(state["skipped"])
        watch.trials = _unpack(state["trials"])
        watch.hits = _unpack(state["hits"])
        if state["cusum"] is not None:
            watch._fit()  # the rates and thresholds follow from the reference, exactly
            watch._begin_tests()
            watch.cusum = _unpack(state["cusum"])
            watch.run_trials = _unpack(state["run_trials"])
            watch.run_hits = _unpack(state["run_hits"])
            if state.get("recent") is not None:
                watch.recent = _unpack(state["recent"])
                watch.aging = _unpack(state["aging"])
                watch.run_feature = _unpack(state["run_feature"])
            # A state of the block test before (no "recent"): its labels still waiting for
            # their block are not tested (at most two blocks); its CUSUMs go on.
        watch.alarms = AlarmTracker.load(state["alarms"])
        return watch


@dataclass(frozen=True)
class _Piece:
    """Labels tested together (between two renewals of the null rates): their segment bins,
    class slots, stream positions and times."""

    codes: np.ndarray  # (labels, features) uint8
    predicted: np.ndarray
    truth: np.ndarray
    seq: np.ndarray
    ts: np.ndarray
