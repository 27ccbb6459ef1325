"""Performance estimated without labels (CBPE), per window of predictions.

Signals ``estimated:accuracy``, ``estimated:f1`` and ``estimated:roc_auc`` of
a classifier whose predictions carry a ``score`` or ``probabilities``. The
stream is fed in stream order, predictions and labels interleaved
(:class:`Scored`), so everything happens at a point of the stream and nothing
depends on how it was batched:

- the first ``reference`` scored predictions are the reference; labels with
  their ids are kept for them;
- the predictions after it form windows of ``window``; when the first window
  closes, the calibration is fitted on the reference's labels joined by then
  (isotonic, P(class | probability), one-vs-rest and renormalised for more than
  two classes), where it makes the scores better calibrated on held-out labels
  (NannyML's test); with fewer than ``min_labels`` labels the scores are taken
  as calibrated, and every finding says so;
- at that point too the reference's estimated metrics and their spread over
  windows of ``window`` rows (bootstrap from the reference, seeded) are fixed;
- every window is estimated when it closes: a metric ``z`` spreads below the
  reference value (one-sided, p below ``alpha``; critical below ``alpha / 100``)
  is a violation for an ``AlarmTracker`` (recovering after ``recover_windows``
  clean windows);
- ``realized_after`` windows later, the labels that came for the window's
  predictions give its realized metrics, side by side with the estimate
  (:meth:`take_results`).

What ``score`` means is read from the reference: when each predicted class
has a mean score of at least 0.5, it is the confidence in the prediction;
otherwise it is the probability of the class predicted with the higher mean
score. With ``probabilities`` on most reference predictions, those are used.
For two classes, F1 and ROC AUC are the positive class's: the class the score
is the probability of, else the class predicted less often in the reference.
At most ``max_classes`` classes are tracked; a prediction with more
probabilities than that is taken without them.
"""

from __future__ import annotations

import math
import operator
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import compress
from typing import Any

import numpy as np
from scipy import special

from detectors.base import Finding, Severity, SignalChange
from detectors.codec import decode_float, encode_float
from detectors.performance import bootstrap, cbpe
from detectors.performance.calibration import Calibration, Rows
from detectors.suite.alarms import AlarmTracker

DETECTOR = "cbpe"
BOOTSTRAP_DRAWS = 200
BAND_Z = 1.96  # the bands hold the realized value 95% of the time if the calibration is right
MIN_ROWS = 100  # fewer usable rows than this in a window: no estimate


@dataclass(slots=True)
class Scored:
    """One event of the model's stream: a prediction (``predicted`` set) or a label."""

    seq: int
    ts: float
    id: str | None
    predicted: str | None = None
    score: float = math.nan
    probabilities: dict[str, float] | None = None
    truth: str | None = None


# A ``Scored``'s fields as a tuple, in order: what a caller buffers per event.
ScoredRow = tuple[int, float, str | None, str | None, float, dict[str, float] | None, str | None]


@dataclass(slots=True)
class ScoredColumns:
    """A stretch of the model's stream as columns of ``Scored``'s fields: predictions
    (``predicted`` set) and labels (``predicted`` None, ``truth`` set) interleaved."""

    seq: Sequence[int]
    ts: Sequence[float]
    ids: Sequence[str | None]
    predicted: Sequence[str | None]
    score: Sequence[float]
    probabilities: Sequence[dict[str, float] | None]
    truth: Sequence[str | None]

    @classmethod
    def of(cls, rows: Sequence[ScoredRow]) -> ScoredColumns:
        """Rows transposed into columns (in C: this runs per event)."""
        if not rows:
            return cls((), (), (), (), (), (), ())
        return cls(*zip(*rows, strict=True))

    @classmethod
    def of_events(cls, events: Sequence[Scored]) -> ScoredColumns:
        return cls.of(scored_rows(events))


def scored_rows(events: Sequence[Scored]) -> list[ScoredRow]:
    return [(e.seq, e.ts, e.id, e.predicted, e.score, e.probabilities, e.truth) for e in events]


# A row's fields, each taken from all rows of a batch by ``map``: unlike ``zip(*rows)``,
# which makes an iterator per row (garbage collected objects, so collections follow),
# these allocate nothing per row.
_ID, _PREDICTED, _SCORE, _PROBABILITIES = map(operator.itemgetter, range(2, 6))


def _rows(events: ScoredColumns) -> Iterable[ScoredRow]:
    """The events of columns as tuples again, in order."""
    fields = (events.seq, events.ts, events.ids, events.predicted, events.score)
    return zip(*fields, events.probabilities, events.truth, strict=True)


def _bounded(probabilities: dict[str, float], max_classes: int) -> dict[str, float] | None:
    """Probabilities as floats (a number too large for one is infinite, so its row is
    unusable); None when there are more classes than are tracked."""
    if len(probabilities) > max_classes:
        return None
    out = {}
    for name, value in probabilities.items():
        try:
            out[name] = float(value)
        except OverflowError:
            out[name] = math.inf
    return out


@dataclass(frozen=True)
class WindowResult:
    """One metric of one window: estimated, or realized from the labels that came."""

    window: int
    end_ts: float
    metric: str
    kind: str  # "estimated" or "realized"
    value: float
    band_low: float | None
    band_high: float | None
    rows: int
    alarm_below: float | None = None


class EstimatedPerformance:
    """CBPE per window of predictions (see the module docstring).

    Parameters
    ----------
    window
        Predictions per window.
    reference
        Predictions in the reference (the calibration's and the bands' data).
    alpha
        One-sided false-alarm probability of a window's test, per metric.
    recover_windows
        Clean windows after which a firing signal resolves.
    realized_after
        Windows after its close at which a window's labels are counted.
    min_labels
        Reference labels needed to calibrate; fewer: scores taken as calibrated.
    max_classes
        Classes tracked at most.

    Examples
    --------
    A binary model whose confidence is right on the reference, then falls to
    about 0.6 (labels only for the reference):

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> est = EstimatedPerformance(window=500, reference=2000)
    >>> events = []
    >>> for i in range(5000):
    ...     confidence = rng.uniform(0.7, 1.0) if i < 3500 else rng.uniform(0.5, 0.7)
    ...     predicted = "fraud" if rng.random() < 0.3 else "ok"
    ...     other = "ok" if predicted == "fraud" else "fraud"
    ...     events.append(Scored(2 * i, 1.6e9 + i, f"r{i}", predicted, confidence))
    ...     truth = predicted if rng.random() < confidence else other
    ...     if i < 2000:
    ...         events.append(Scored(2 * i + 1, 1.6e9 + i, f"r{i}", truth=truth))
    >>> found = est.observe(events)
    >>> print(found[0].details["summary"])
    estimated accuracy 0.85 → 0.60 (alarm below 0.83)

    References
    ----------
    Kapoor et al., confidence-based performance estimation (CBPE), as NannyML
    implements it (https://nannyml.readthedocs.io); Zadrozny and Elkan (2002),
    transforming classifier scores into accurate multiclass probability
    estimates (isotonic calibration, one-vs-rest and renormalised).
    """

    def __init__(
        self,
        window: int = 2000,
        reference: int = 10_000,
        alpha: float = 1e-4,
        recover_windows: int = 3,
        realized_after: int = 3,
        min_labels: int = 200,
        max_classes: int = 50,
    ) -> None:
        if window < MIN_ROWS or reference < window:
            raise ValueError(
                f"window must be at least {MIN_ROWS} predictions and the reference at least "
                f"one window, got window {window} and reference {reference}"
            )
        if not 0 < alpha < 0.5:
            raise ValueError(f"alpha must be between 0 and 0.5, got {alpha}")
        self.window = window
        self.reference_size = reference
        self.alpha = alpha
        self.recover_windows = recover_windows
        self.realized_after = realized_after
        self.min_labels = min_labels
        self.max_classes = max_classes
        self.count = 0  # scored predictions seen
        self.reference = Rows()
        self.windows: list[Rows] = []  # the open window last; closed ones wait for labels
        self.first_window = 0  # the number of windows[0]
        # Request id -> the latest place among the kept scored predictions (``count``
        # before it: the reference's rows first, then each window's, see ``_place``) of
        # those below ``_indexed``. Made only when a label is looked up, from the rows'
        # ids (``_index``): most streams have no labels, or few, and a map of every
        # prediction was a fifth of a model's memory. An int is cheaper than a (window,
        # row) pair to make, to compare, and for the garbage collector.
        self.ids: dict[str, int] = {}
        self._indexed = 0  # the places below it are indexed (or forgotten)
        # The last place indexed whose id was none or a key already (sent again), -1 for
        # none: a window starting after it has all its indexed ids in the map, pointing
        # at it (``_forget`` needs no look-ups).
        self._repeated = -1
        self.calibration: Calibration | None = None
        self.unsupported = ""  # why the model cannot be estimated (then nothing is kept)
        self.alarms = AlarmTracker(recover_after=recover_windows * window)
        self._results: list[WindowResult] = []
        self._tested: list[SignalChange] = []
        # Where predictions go now, and how many more before a boundary (0: work it out).
        self._rows = self.reference
        self._room = 0

    # -- the stream ------------------------------------------------------
    def observe(self, events: list[Scored]) -> list[Finding]:
        """Feed the next events of the stream, in stream order; the findings they raise."""
        return self.observe_rows(scored_rows(events))

    def observe_rows(self, rows: Sequence[ScoredRow]) -> list[Finding]:
        """``observe`` for ``Scored``'s fields as tuples (what the service buffers)."""
        n = len(rows)
        predicted = list(map(_PREDICTED, rows))
        probabilities = map(_PROBABILITIES, rows)
        if self.unsupported or None in predicted or operator.countOf(probabilities, None) < n:
            return self.observe_columns(ScoredColumns.of(rows), rows)  # as it says why
        score = list(map(_SCORE, rows))
        if not _all_finite(score):
            return self.observe_columns(ScoredColumns.of(rows), rows)
        return self._extend(
            list(map(_ID, rows)), predicted, score, lambda i: (rows[i][1], rows[i][0])
        )

    def observe_columns(
        self, events: ScoredColumns, as_rows: Iterable[ScoredRow] | None = None
    ) -> list[Finding]:
        """``observe`` for columns: predictions alone go in by slices, up to each boundary.
        ``as_rows``, when given, are the same events as tuples (saves transposing back)."""
        each = _rows(events) if as_rows is None else as_rows
        if None in events.predicted:  # labels among them: event by event, in stream order
            return self._each(each)
        if self.unsupported:
            return []
        n = len(events.predicted)
        score = events.score
        if events.probabilities.count(None) < n or not all(map(math.isfinite, score)):
            return self._each(each)  # rows to bound or skip one by one
        return self._extend(
            events.ids,
            events.predicted,  # type: ignore[arg-type]
            score,
            lambda i: (events.ts[i], events.seq[i]),
        )

    def _extend(
        self,
        ids: Sequence[str | None],
        predicted: Sequence[str],
        score: Sequence[float],
        moment: Callable[[int], tuple[float, int]],
    ) -> list[Finding]:
        """The hot path: predictions alone, each with a finite score and no probabilities;
        ``moment(i)`` is the (time, stream position) of the i-th. Where predictions go is
        worked out at the reference's end and at each window's start, so a batch is a
        few list extends per boundary it crosses."""
        found: list[Finding] = []
        n, at = len(predicted), 0
        while at < n and not self.unsupported:
            if self._room == 0:
                self._open()
            rows = self._rows
            take = min(self._room, n - at)
            rows.add_ids(ids[at : at + take])
            rows.predicted.extend(predicted[at : at + take])
            rows.score.extend(score[at : at + take])
            rows.truth.pad(take)  # no label, and no probabilities (nothing to keep)
            self._room -= take
            self.count += take
            at += take
            after = self.count - self.reference_size
            if after > 0 and after % self.window == 0:  # the batch filled a window
                found += self._close(*moment(at - 1))
        return found

    def _each(self, events: Iterable[ScoredRow]) -> list[Finding]:
        """Event by event: labels among the predictions, probabilities to bound, scores
        that cannot be used. A few list appends per prediction, a look-up per label.
        The first label indexes the ids not indexed yet; the predictions after it are
        indexed as they come (where labels are, the map is whole at each of them)."""
        found: list[Finding] = []
        ids, reference, window = self.ids, self.reference_size, self.window
        indexing = False  # the map is whole: ``_indexed`` is ``count``
        for seq, ts, request, predicted, score, probabilities, truth in events:
            if predicted is None:
                if request is None:
                    continue
                if not indexing:
                    self._index()
                    indexing = True
                where = ids.get(request)
                if where is not None:
                    self._truth(where, truth)
                continue
            if self.unsupported:
                continue
            if probabilities is not None:
                probabilities = _bounded(probabilities, self.max_classes)
            if probabilities is None and not math.isfinite(score):
                continue
            if self._room == 0:
                self._open()
            rows = self._rows
            rows.ids.append(request)
            dense = rows.probabilities.dense  # a list once most rows have some
            if dense is not None and len(dense) == len(rows.predicted):
                dense.append(probabilities)
            elif probabilities is not None:
                rows.probabilities.put(len(rows.predicted), probabilities)
            rows.predicted.append(predicted)
            rows.score.append(score)
            rows.truth.codes.append(0)  # no label yet
            self._room -= 1
            if indexing:
                known = len(ids)
                if request is not None:
                    ids[request] = self.count
                if len(ids) == known:
                    self._repeated = self.count
                self._indexed = self.count + 1
            self.count += 1
            after = self.count - reference
            if after > 0 and after % window == 0:
                found += self._close(ts, seq)
        return found

    def _open(self) -> None:
        """Where the next predictions go: the reference, or the window they fall in."""
        if self.count < self.reference_size:
            self._rows = self.reference
            self._room = self.reference_size - self.count
            return
        number = (self.count - self.reference_size) // self.window
        if number == self.first_window + len(self.windows):  # the first of a window
            self.windows.append(Rows())
        self._rows = self.windows[-1]
        self._room = self.window - len(self._rows.predicted)

    def _place(self, place: int) -> tuple[int, int]:
        """(window number, or -1 for the reference; row) of a scored prediction's place."""
        if place < self.reference_size:
            return -1, place
        return divmod(place - self.reference_size, self.window)

    def _start(self, number: int) -> int:
        """The place of window ``number``'s first row (-1: the reference's)."""
        return 0 if number == -1 else self.reference_size + number * self.window

    def _index(self) -> None:
        """Put the ids of the kept predictions from ``_indexed`` up to ``count`` in the map,
        in stream order (the latest place of an id wins). In C: a dict insert per id."""
        ids, start, stop = self.ids, self._indexed, self.count
        if start >= stop:
            return
        kept = [(0, self.reference)]
        kept += [(self._start(self.first_window + k), w) for k, w in enumerate(self.windows)]
        for first, rows in kept:
            low, high = max(start, first), min(stop, first + rows.id_count())
            if low < high:
                part = rows.kept_ids(low - first, high - first)
                known = len(ids)
                ids.update(zip(part, range(low, high), strict=True))  # type: ignore[arg-type]
                ids.pop(None, None)  # type: ignore[call-overload]  # a None id went in
                if len(ids) - known != high - low:
                    self._repeated = high - 1
        self._indexed = stop

    def _truth(self, where: int, truth: str | None) -> None:
        number, row = self._place(where)
        rows = self.reference if number == -1 else self.windows[number - self.first_window]
        rows.truth.fill(row, truth)  # the first label of a prediction holds

    def _close(self, ts: float, seq: int) -> list[Finding]:
        """The window just filled closes at the prediction of time ``ts``, stream
        position ``seq``."""
        if self.calibration is None:
            self._fit()
            if self.calibration is None:
                return []
        number = self.first_window + len(self.windows) - 1
        self.windows[-1].end_ts = ts
        self.windows[-1].seal()  # no prediction comes to it any more
        found = self._estimate(number, self.windows[-1], ts, seq)
        self.alarms.resolve_due(self.count, lambda _: ts)
        while len(self.windows) > self.realized_after:
            self._realize(self.first_window, self.windows.pop(0))
            self.first_window += 1
        return found

    # -- calibration -------------------------------------------------------
    def _fit(self) -> None:
        ref = self.reference
        calibration = self._choose_source(ref)
        self._forget(-1, ref)
        self.reference = Rows()
        if calibration is None:
            self._give_up()
            return
        raw, predicted, truth = calibration.with_truth(ref)
        labelled = truth >= 0
        if int(labelled.sum()) >= self.min_labels:
            calibration.labels = int(labelled.sum())
            if len(calibration.classes) == 2:
                columns = [calibration.positive]
            else:
                columns = list(range(len(calibration.classes)))
            rng = np.random.default_rng(42)
            for c in columns:
                x, y = raw[labelled, c], truth[labelled] == c
                if cbpe.needs_calibration(x, y, rng):
                    xp, fp = cbpe.fit_isotonic(x, y)
                    calibration.curves.append([xp.tolist(), fp.tolist()])
                else:
                    calibration.curves.append(None)
        calibrated = calibration.calibrate(raw)
        if len(predicted) < MIN_ROWS:
            self.unsupported = f"only {len(predicted)} usable reference predictions"
            self._give_up()
            return
        self._fix_reference(calibration, calibrated, raw, predicted)
        self.calibration = calibration

    def _fix_reference(
        self,
        calibration: Calibration,
        calibrated: np.ndarray,
        raw: np.ndarray,
        predicted: np.ndarray,
    ) -> None:
        """The reference's estimates; their spread over windows drawn from its rows (the
        alarm limits); and how far a window's realized value strays from its estimate
        when labels are drawn from the calibrated probabilities (the bands)."""
        value = cbpe.estimate(calibrated, raw, predicted, calibration.positive)
        # The windows' estimates and realized values all at once (each window's
        # ``cbpe.estimate`` and ``cbpe.realized`` of ``cbpe.draw_labels``, the same figures).
        draws = bootstrap.Draws.of(
            np.random.default_rng(0), len(predicted), self.window, BOOTSTRAP_DRAWS
        )
        drawn, realized = bootstrap.metrics(calibrated, raw, predicted, calibration.positive, draws)
        # The reference value is itself estimated from `reference` rows: widen for it.
        widen = math.sqrt(1 + self.window / len(predicted))
        for metric in cbpe.METRICS:
            spread, gap = drawn[metric], realized[metric] - drawn[metric]
            if math.isfinite(value[metric]) and np.isfinite(spread).all():
                finite = gap[np.isfinite(gap)]
                calibration.reference[metric] = [
                    value[metric],
                    float(np.std(spread, ddof=1)) * widen,
                    float(np.std(finite, ddof=1)) if len(finite) > 1 else math.nan,
                ]

    def _give_up(self) -> None:
        """The model cannot be estimated (``unsupported`` says why): keep nothing. In
        place: ``observe`` holds the id map while it runs."""
        self.windows.clear()
        self.ids.clear()
        self._indexed = self.count

    def _choose_source(self, ref: Rows) -> Calibration | None:
        with_probabilities = ref.probabilities.present()
        if len(with_probabilities) * 2 >= len(ref.predicted):
            seen: dict[str, int] = {}
            for probs in with_probabilities:
                for name in probs:
                    seen[name] = seen.get(name, 0) + 1
            for name in ref.classes():
                seen[name] = seen.get(name, 0) + 1
            frequent = sorted(seen, key=lambda c: (-seen[c], c))[: self.max_classes]
            classes = sorted(frequent)
            if len(classes) < 2:
                self.unsupported = "fewer than two classes in the reference"
                return None
            return Calibration("probabilities", classes, self._positive(classes, ref))
        scores = np.array(ref.score, dtype=np.float64)
        predicted = np.array(ref.classes(), dtype=object)
        finite = np.isfinite(scores)
        classes = sorted({str(p) for p in predicted[finite]})
        if len(classes) != 2:
            self.unsupported = (
                "scores without probabilities need exactly two predicted classes in the "
                f"reference, found {len(classes)}"
            )
            return None
        means = [float(scores[finite & (predicted == c)].mean()) for c in classes]
        if min(means) >= 0.5:
            return Calibration("confidence", classes, self._positive(classes, ref))
        # The score is the probability of a class: that class is the positive one.
        of = int(np.argmax(means))
        return Calibration("score", classes, of, score_class=of)

    @staticmethod
    def _positive(classes: list[str], ref: Rows) -> int:
        if len(classes) != 2:
            return 0
        counts = [sum(1 for p in ref.classes() if p == c) for c in classes]
        return 0 if counts[0] < counts[1] else 1

    # -- windows -----------------------------------------------------------
    def _estimate(self, number: int, rows: Rows, ts: float, seq: int) -> list[Finding]:
        calibration = self.calibration
        assert calibration is not None
        raw, predicted, _ = calibration.matrix(rows)
        if len(predicted) < MIN_ROWS:
            return []
        calibrated = calibration.calibrate(raw)
        estimate = cbpe.estimate(calibrated, raw, predicted, calibration.positive)
        rows.estimate = {m: v for m, v in estimate.items() if math.isfinite(v)}
        threshold = normal_isf(self.alpha)
        found: list[Finding] = []
        for metric, value in rows.estimate.items():
            ref = calibration.reference.get(metric)
            limit = None if ref is None else ref[0] - threshold * ref[1]
            low = high = None
            if ref is not None and math.isfinite(ref[2]):
                low, high = value - BAND_Z * ref[2], value + BAND_Z * ref[2]
            self._results.append(
                WindowResult(
                    number, ts, metric, "estimated", value, low, high, len(predicted), limit
                )
            )
            if ref is None or ref[1] <= 0:
                continue
            found += self._test(metric, value, ref, (low, high), len(predicted), ts, seq)
        return found

    def _test(
        self,
        metric: str,
        value: float,
        ref: list[float],
        band: tuple[float | None, float | None],
        n: int,
        ts: float,
        seq: int,
    ) -> list[Finding]:
        calibration = self.calibration
        assert calibration is not None
        z = (ref[0] - value) / ref[1]
        p = normal_sf(z)
        threshold = normal_isf(self.alpha)
        signal = f"estimated:{metric}"
        key = f"{DETECTOR}|{signal}"
        broke = p < self.alpha
        severity: Severity = "critical" if p < self.alpha / 100 else "warning"
        state = self.alarms.report(key, severity, self.count, ts) if broke else None
        self._tested.append(
            SignalChange(
                "tested",
                DETECTOR,
                signal,
                ts,
                severity if broke else "info",
                firing=self.alarms.is_firing(key),
                statistic=z,
                threshold=self.alpha,  # a p-value test: its threshold is the p cut-off
                p_value=p,
                effect_size=ref[0] - value,
            )
        )
        if state is None:
            return []
        limit = ref[0] - threshold * ref[1]
        details = {
            "state": state,
            "event_index": seq,
            "summary": f"estimated {metric} {ref[0]:.2f} → {value:.2f} (alarm below {limit:.2f})",
            "estimated_value": round(value, 6),
            "reference_value": round(ref[0], 6),
            "alarm_below": round(limit, 6),
            "band": [None if b is None else round(b, 6) for b in band],
            "window_predictions": n,
            "reference_predictions": self.reference_size,
            "calibration": calibration.describe(),
            "calibrated": calibration.labels > 0,
        }
        return [Finding(DETECTOR, signal, ts, severity, z, self.alpha, p, ref[0] - value, details)]

    def _realize(self, number: int, rows: Rows) -> None:
        """The realized metrics of a window whose labels had ``realized_after`` windows to come."""
        self._forget(number, rows)
        if len(rows.truth) - rows.truth.count_none() < MIN_ROWS:
            return  # too few labels came, whatever their classes: nothing to compute
        calibration = self.calibration
        assert calibration is not None
        raw, predicted, truth = calibration.with_truth(rows)
        labelled = truth >= 0
        if int(labelled.sum()) < MIN_ROWS:
            return
        value = cbpe.realized(
            raw[labelled], predicted[labelled], truth[labelled], calibration.positive
        )
        for metric, v in value.items():
            if math.isfinite(v) and metric in rows.estimate:
                self._results.append(
                    WindowResult(
                        number, rows.end_ts, metric, "realized", v, None, None, int(labelled.sum())
                    )
                )

    def _forget(self, number: int, rows: Rows) -> None:
        """Drop the ids of ``rows`` (window ``number``, the oldest kept) that were indexed
        and still point at them (an id sent again later points at its later row); what
        was not indexed never will be. In C: an indexed id, a look-up (none when no id
        indexed since the window's start was missing or sent again)."""
        start = self._start(number)
        kept = rows.id_count()
        stop = start + kept
        indexed = min(self._indexed, stop) - start
        if indexed > 0:
            ids: dict[str | None, int] = self.ids  # type: ignore[assignment]
            part = rows.kept_ids(0, indexed)
            if self._repeated < start:  # all are there: no look-ups
                deque(map(ids.__delitem__, part), maxlen=0)
            else:
                places = range(start, start + indexed)
                here = map(operator.eq, map(ids.get, part), places)  # None is never a key
                deque(map(ids.__delitem__, compress(part, here)), maxlen=0)
        self._indexed = max(self._indexed, stop)

    # -- results -----------------------------------------------------------
    def set_reference(self, events: Sequence[ScoredRow]) -> int:
        """Make ``events`` the reference instead of the stream's first predictions: scored
        predictions and labels (joined by id, the first label of each) of data the user
        trusts, such as a sample of a validation file. Returns the predictions taken. With
        fewer than one window of them nothing changes: the reference fills from the stream.
        The calibration is fixed, as always, when the first window after it closes."""
        sample = EstimatedPerformance(**{**self.params(), "reference": 2**62})
        sample.observe_rows(events)
        taken = sample.count
        if taken < self.window or sample.unsupported:
            return 0
        self.reference_size = self.count = taken
        self.reference = sample.reference
        # Its labels are joined: later ones are not for it, so its ids are let go (and
        # the rows are as if indexed, each without an id).
        self.reference.forget_ids()
        self.windows, self.first_window, self.ids = [], 0, {}
        self._indexed, self._repeated = taken, taken - 1
        self.calibration, self.unsupported = None, ""
        self._rows, self._room = self.reference, 0
        return taken

    def take_results(self) -> list[WindowResult]:
        """Window results since the last call, in stream order; then forget them."""
        results, self._results = self._results, []
        return results

    def take_changes(self) -> list[SignalChange]:
        """Each window's tests and the signals' state changes since the last call."""
        changes, self._tested = self._tested, []
        return changes + self.alarms.take_changes()

    def params(self) -> dict[str, Any]:
        return {
            "window": self.window,
            "reference": self.reference_size,
            "alpha": self.alpha,
            "recover_windows": self.recover_windows,
            "realized_after": self.realized_after,
            "min_labels": self.min_labels,
            "max_classes": self.max_classes,
        }

    def dump(self) -> dict[str, Any]:
        return {
            "params": {**self.params(), "alpha": encode_float(self.alpha)},
            "count": self.count,
            "reference": self.reference.dump(),
            "windows": [w.dump() for w in self.windows],
            "first_window": self.first_window,
            "calibration": None if self.calibration is None else self.calibration.dump(),
            "unsupported": self.unsupported,
            "alarms": self.alarms.dump(),
        }

    @classmethod
    def load(cls, state: dict[str, Any]) -> EstimatedPerformance:
        params = dict(state["params"])
        params["alpha"] = decode_float(params["alpha"])
        est = cls(**params)
        est.count = int(state["count"])
        est.reference = Rows.load(state["reference"])
        est.windows = [Rows.load(w) for w in state["windows"]]
        for closed in est.windows:
            if not math.isnan(closed.end_ts):
                closed.seal()
        est.first_window = int(state["first_window"])
        # The id map is made again from the rows' ids when a label comes. A state saved
        # by an earlier version holds it too: what the rows give (each id's latest place
        # among the kept rows), but that a reference given by ``set_reference`` was never
        # in it. So when no id in it points into the reference, the reference's ids are
        # let go: they are such a reference's, or all sent again later (the later wins).
        saved_ids = state.get("ids")
        if saved_ids is not None and all(v[0] != -1 for v in saved_ids.values()):
            est.reference.forget_ids()
        saved = state["calibration"]
        est.calibration = None if saved is None else Calibration.load(saved)
        est.unsupported = str(state["unsupported"])
        est.alarms = AlarmTracker.load(state["alarms"])
        return est


def _all_finite(values: list[float]) -> bool:
    """Whether every value is surely a finite number, at a few ns a value: their float sum
    is finite (a NaN or an infinity makes it not; an int too large for a float raises).
    False is no verdict: huge values may overflow the sum, and anything it will not take
    is for the caller's value-by-value check to judge (and to raise on, as it would)."""
    try:
        return math.isfinite(sum(values, 0.0))
    except Exception:
        return False


def normal_sf(z: float) -> float:
    """``scipy.stats.norm.sf(z)``, the same number (scipy computes it so), without the
    distribution object's argument handling, which costs ~50 times the function."""
    return float(special.ndtr(-z))


def normal_isf(q: float) -> float:
    """``scipy.stats.norm.isf(q)``, the same number, as ``normal_sf``."""
    return float(-special.ndtri(q))
