"""Labels joined to their predictions by request id, durably, in stream order.

A prediction with an ``id`` waits for its label in the store
(``label_store``: one row per checkpoint, an index by id hash), not in memory:
a label joins whenever it comes, across restarts and partition moves.
Predictions since the last checkpoint are held in memory (``recent``,
``label_recent``) and looked up before the store, so the join of each label is decided
in stream order and never depends on where checkpoints fall:

- the model's *watermark* is the latest event time seen so far in its stream;
- a label finds the latest prediction with its id (a later prediction with an
  id replaces an earlier one);
- it *joins* if that prediction is at most ``horizon`` older than the
  watermark, and was not labelled already (else it is a *duplicate*);
- it is *late* if the prediction is older than that but at most twice the
  horizon (predictions are kept that long to tell late from unknown);
- it is *unmatched* otherwise: no such id, the prediction gone (older than
  twice the horizon), or *evicted* (more than ``max_pending`` predictions
  came after it: oldest first, whatever their time).

Each prediction is stored with its *segment key* (the bin of each of its
features, :mod:`detectors.performance.segments`), computed for the whole
micro-batch at once when the pipeline flushes (``segment_rows``): a joined label
carries it to the per-segment feedback test (``feedback``). Predictions made
before the model's reference exists have none.

A checkpoint (``write``) stores the recent predictions and labels, counts
those that went (the *evicted* and the *expired*: gone, never labelled; a
prediction replaced by a later one with its id is counted too, when it goes)
and deletes what nothing can join any more, with the counts, in the
checkpoint's transaction. The logical rules above hold whether a prediction is
still stored or already deleted, which is what makes the join deterministic.
The checkpoint writes all of a pipeline's models at once (``write_all``), which
keeps the index's level 0 in memory within one budget for them all; where a
prediction's (hash, number) pair lives, memory or ``label_index``, changes no
outcome.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import sqlite_utils

from detectors.base import RowBatch
from detectors.performance.feedback import FeedbackWatch
from detectors.performance.segments import SegmentLayout
from detectors.performance.watch import PerformanceWatch
from detectors.suite.error_stream import JoinedLabels
from detectors.suite.model_detectors import ModelDetectors
from monitor.ingest.events import Row
from monitor.pipeline.label_recent import RecentPredictions
from monitor.pipeline.label_store import LEVEL0_BUDGET, LabelStore, Pending, Written

# Label delays (label time minus prediction time) are counted in log-spaced
# bins: bin 0 is under a second, then four bins per doubling.
DELAY_BINS = 4 * 40 + 2
OUTCOMES = ("joined", "late", "unmatched", "duplicate", "evicted", "expired")


@dataclass
class LabelCounts:
    """A model's label outcomes since its first label; ``labels`` counts them all."""

    labels: int = 0
    joined: int = 0
    late: int = 0
    unmatched: int = 0
    duplicate: int = 0
    evicted: int = 0  # predictions pushed out by max_pending before their label
    expired: int = 0  # predictions never labelled within the horizon
    delays: list[int] = field(default_factory=lambda: [0] * DELAY_BINS)

    def delay_quantile(self, q: float) -> float | None:
        """The ``q`` quantile of joined labels' delays, in seconds (a bin's upper edge)."""
        total = sum(self.delays)
        if total == 0:
            return None
        target = q * total
        running = 0
        for k, count in enumerate(self.delays):
            running += count
            if running >= target and count:
                return delay_upper_edge(k)
        return delay_upper_edge(DELAY_BINS - 1)

    def as_dict(self) -> dict[str, int]:
        return {name: int(getattr(self, name)) for name in ("labels", *OUTCOMES)}


def delay_bin(seconds: float) -> int:
    if not seconds >= 1.0:  # NaN too
        return 0
    return min(int(4 * math.log2(seconds)) + 1, DELAY_BINS - 1)


def delay_upper_edge(k: int) -> float:
    return 1.0 if k == 0 else float(2.0 ** (k / 4))


def normalised_prediction(prediction: object) -> str | float | None:
    """A prediction as the error stream compares it: a class (str) or a finite value."""
    if isinstance(prediction, bool):
        return "true" if prediction else "false"
    if isinstance(prediction, str):
        return prediction
    if isinstance(prediction, int | float) and math.isfinite(prediction):
        return float(prediction)
    return None


class ModelLabelJoin:
    """One model's join (see the module docstring); ``db`` is the store it reads and writes."""

    def __init__(
        self,
        model: str,
        db: sqlite_utils.Database,
        horizon: float,
        max_pending: int,
        false_alarm_labels: float = 1e7,
        feedback_reference: int = 5_000,
    ) -> None:
        self.model = model
        self.db = db
        self.horizon = horizon
        self.max_pending = max_pending
        self.counts = LabelCounts()
        self.watermark = -math.inf
        self._counted: tuple[int, float] = (-(2**63), -1e300)  # bounds gone ones were counted to
        self._flushes = 0  # level 0's flushes into the index (label_store)
        self._pending = 0  # stored predictions waiting: neither labelled nor gone
        # Predictions since the last checkpoint; the stored predictions labelled since (by
        # ins); the labels joined since take_joined (with the slot of a recent prediction).
        self.recent = RecentPredictions(0)
        self._joined_stored: dict[int, tuple[int, int]] = {}  # ins: (chunk, slot)
        self._joined: list[tuple[int, float, object, Pending, int]] = []
        # What a write changed, until its transaction commits (``written``), and the
        # counts before it, for a write again if it did not.
        self._staged: Written | None = None
        self._before: tuple[int, int, int, tuple[int, float], int] = (0, 0, 0, self._counted, 0)
        self._layout: tuple[ModelDetectors, SegmentLayout | None] | None = None
        # Realized performance and the per-segment feedback test of the joined labels
        # (their states are kept with the counts).
        self.performance = PerformanceWatch()
        self.feedback = FeedbackWatch(false_alarm_labels, feedback_reference)
        self._load(feedback_reference)
        self.store = LabelStore(model, db, self.inserted)

    @property
    def inserted(self) -> int:
        """Predictions remembered so far: the next one's number (``ins``)."""
        return self.recent.first + len(self.recent)

    def _load(self, feedback_reference: int) -> None:
        row = self.db.execute(
            "SELECT inserted, watermark, labels, joined, late, unmatched, duplicate, evicted, "
            "expired, delays, performance, feedback, pending, counted_ins, counted_ts, "
            "index_flushes FROM label_counts WHERE model = ?",
            [self.model],
        ).fetchone()
        if row is None:
            return
        self.recent, self.watermark = RecentPredictions(int(row[0])), float(row[1])
        self._pending, self._flushes = int(row[12]), int(row[15])
        self._counted = (int(row[13]), float(row[14]))
        values = dict(zip(("labels", *OUTCOMES), (int(v) for v in row[2:9]), strict=True))
        self.counts = LabelCounts(**values, delays=orjson.loads(row[9]))
        if row[10] is not None:
            self.performance = PerformanceWatch.load(orjson.loads(row[10]))
        if row[11] is not None:
            self.feedback = FeedbackWatch.load(orjson.loads(row[11]))
            if self.feedback.layout is None:  # not begun: the configured reference applies
                self.feedback.reference_labels = feedback_reference

    def prediction(
        self, request: str, ts: float, prediction: object, score: float | None, row: int = -1
    ) -> None:
        """Remember a prediction with an id (one that is neither a class nor a value is not);
        ``row`` is its position in the micro-batch whose ``segment_rows`` keys it."""
        if ts > self.watermark:
            self.watermark = ts
        if type(prediction) is not str:  # a class as it comes: the usual case, kept cheap
            prediction = normalised_prediction(prediction)
            if prediction is None:
                return
        recent = self.recent
        recent.ids.append(request)
        recent.ts.append(ts)
        recent.predicted.append(prediction)
        recent.scores.append(score)
        recent.batch_rows.append(row)

    def predictions_of_rows(self, rows: Sequence[Row], start: int) -> None:
        """Remember the predictions of ``rows[start:]`` (a micro-batch's buffered rows,
        each at its position there): ``prediction`` for each row with an id, at once.

        The pipeline hands over its rows when a label or a flush needs them, not one call
        per event: with plain ids and classes that is a transposition and five
        ``list.extend`` in C."""
        if start >= len(rows):
            return
        _, times, ids, _, _, predicted, scores, _, _ = zip(*rows[start:], strict=True)
        self.predictions_of_columns(times, ids, predicted, scores, start)

    def predictions_of_columns(
        self,
        times: Sequence[float],
        ids: Sequence[str | None],
        predicted: Sequence[Any],
        scores: Sequence[float | None],
        start: int,
    ) -> None:
        """``predictions_of_rows`` for rows given as columns: the first at ``start`` in
        the micro-batch, the others after it."""
        plain = None not in ids and set(map(type, predicted)) == {str}
        if not plain:  # an event without an id, or a value or odd class: one at a time
            for k, (ident, ts, prediction, score) in enumerate(
                zip(ids, times, predicted, scores, strict=True), start
            ):
                if ident is not None:
                    self.prediction(ident, ts, prediction, score, k)
            return
        latest = max(times)
        if latest > self.watermark:
            self.watermark = latest
        recent = self.recent
        recent.ids.extend(ids)  # type: ignore[arg-type]  # plain: no None among them
        recent.ts.extend(times)
        recent.predicted.extend(predicted)
        recent.scores.extend(scores)
        recent.batch_rows.extend(range(start, start + len(ids)))

    def layout(self, detectors: ModelDetectors) -> SegmentLayout | None:
        """The segments of the model's reference (None while it warms up)."""
        if self._layout is None or self._layout[0] is not detectors or self._layout[1] is None:
            built = None
            if detectors.has_reference:
                built = SegmentLayout.build(detectors.feature_references())
            self._layout = (detectors, built)
        return self._layout[1]

    def segment_rows(
        self, batch: RowBatch, detectors: ModelDetectors, rows_before: int, had_reference: bool
    ) -> None:
        """Key the predictions of ``batch`` (the micro-batch just given to ``detectors``, which
        had seen ``rows_before`` rows). Rows of the warm-up get no key, wherever it ends."""
        slots, rows = self.recent.unkeyed()
        layout = self.layout(detectors)
        if layout is None or not len(slots):
            return
        first = max(0, 0 if had_reference else detectors.settings.reference_size - rows_before)
        kept = rows >= first
        if not kept.all():
            slots, rows = slots[kept], rows[kept]
        if len(slots):
            coded = detectors.category_codes(batch)
            self.recent.add_keys(slots, layout.key_matrix(batch, rows, coded))

    def label(self, seq: int, request: str, ts: float, truth: object) -> str:
        """Join one label (the model's stream position ``seq``); its outcome (``OUTCOMES``)."""
        if ts > self.watermark:
            self.watermark = ts
        counts = self.counts
        counts.labels += 1
        slot = self.recent.slot_of(request)
        if slot >= 0:
            found: Pending | None = self.recent.pending(slot)
        else:
            found = self.store.find(request, self._joined_stored)
        outcome = self._outcome(found)
        setattr(counts, outcome, getattr(counts, outcome) + 1)
        if outcome == "joined":
            assert found is not None
            if slot >= 0:
                self.recent.joined.add(slot)
            else:
                self._joined_stored[found.ins] = (found.chunk, found.slot)
            counts.delays[delay_bin(ts - found.ts)] += 1
            self._joined.append((seq, ts, truth, found, slot))
        return outcome

    def _outcome(self, found: Pending | None) -> str:
        if found is None or found.ins < self.inserted - self.max_pending:
            return "unmatched"
        age = self.watermark - found.ts
        if age > 2 * self.horizon:
            return "unmatched"
        if age > self.horizon:
            return "late"
        return "duplicate" if found.joined else "joined"

    def take_joined(self) -> JoinedLabels | None:
        """The labels joined since the last call, for the detectors; None if there are none."""
        if not self._joined:
            return None
        rows, self._joined = self._joined, []
        self._key_joined(rows)
        return JoinedLabels(
            seq=np.array([r[0] for r in rows], dtype=np.int64),
            ts=np.array([r[1] for r in rows], dtype=np.float64),
            predicted=[r[3].predicted for r in rows],
            truth=[r[2] for r in rows],
            predicted_ts=np.array([r[3].ts for r in rows], dtype=np.float64),
            score=np.array([r[3].score for r in rows], dtype=np.float64),
            segments=[r[3].segments for r in rows],
        )

    def _key_joined(self, rows: list[tuple[int, float, object, Pending, int]]) -> None:
        """A recent prediction's key comes when its micro-batch is flushed: take it now."""
        for r in rows:
            if r[4] >= 0 and r[3].segments is None:
                r[3].segments = self.recent.key(r[4])

    @property
    def pending(self) -> int:
        """Predictions waiting for a label: stored ones not gone at the last checkpoint,
        and recent ones (gone ones among them are counted at the next)."""
        return self._pending + len(self.recent) - len(self.recent.joined)

    def write(self, db: sqlite_utils.Database) -> None:
        """Store the recent predictions and the counts; drop what nothing can join any more.
        Call inside the checkpoint's transaction, then ``written`` once it commits."""
        c = self.counts
        if self._staged is None:
            self._before = (c.evicted, c.expired, self._pending, self._counted, self._flushes)
        else:  # the last write's transaction did not commit: this one does it again
            c.evicted, c.expired, self._pending, self._counted, self._flushes = self._before
        self._key_joined(self._joined)  # before the recent predictions go
        new = self.recent.predictions()
        bounds = (self.inserted - self.max_pending, self.watermark - 2 * self.horizon)
        out = self.store.write(db, new, list(self._joined_stored.values()), bounds, self._counted)
        self._staged = out
        c.evicted += out.evicted
        c.expired += out.expired
        self._pending += out.pending
        self._counted = (bounds[0], max(bounds[1], -1e300))
        db.execute(
            "INSERT OR REPLACE INTO label_counts (model, inserted, watermark, labels, joined, "
            "late, unmatched, duplicate, evicted, expired, delays, performance, feedback, "
            "pending, counted_ins, counted_ts, index_flushes) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                self.model,
                self.inserted,
                self.watermark if math.isfinite(self.watermark) else -1e300,
                *c.as_dict().values(),
                orjson.dumps(c.delays).decode(),
                orjson.dumps(self.performance.dump()).decode(),
                orjson.dumps(self.feedback.dump()).decode(),
                self._pending,
                *self._counted,
                self._flushes,
            ],
        )

    @property
    def staged_pairs(self) -> int:
        """The pairs of level 0 the last ``write`` leaves, once it commits."""
        assert self._staged is not None
        return self._staged.pairs

    def flush_level0(self, db: sqlite_utils.Database) -> None:
        """Move the level 0 the last ``write`` leaves into the index, in its transaction."""
        assert self._staged is not None
        if not self._staged.level0:
            return
        self.store.flush(db, self._staged)
        self._flushes += 1  # restored with the counts if the transaction does not commit
        db.execute(
            "UPDATE label_counts SET index_flushes = ? WHERE model = ?",
            [self._flushes, self.model],
        )

    def written(self) -> None:
        """The checkpoint holding ``write``'s rows committed: the recent ones are in the store."""
        if self._staged is not None:
            self.store.written(self._staged)
            self._staged = None
        self.recent = RecentPredictions(self.inserted)
        self._joined_stored = {}


def write_all(
    db: sqlite_utils.Database,
    joins: Sequence[ModelLabelJoin],
    idle_pairs: int = 0,
    budget: int = LEVEL0_BUDGET,
) -> None:
    """A checkpoint's ``write`` of each of ``joins`` (the models it writes), then level 0
    kept under ``budget`` pairs for all of the pipeline's models together: while the pairs
    these leave and ``idle_pairs`` (those of its models not written now) reach it, the
    model with the largest level 0 is flushed into the index, in the same transaction.

    The largest first: the fewest flushes get under the budget, each generation as large
    as it can be (a label of a prediction in the index reads one row per generation).
    Only the models written now are flushed (another's flush would need a write of its
    own); that suffices: an idle model's level 0 has not changed since the last
    checkpoint, which left the pipeline's total under the budget, and a model loaded
    since is written now (it loads for an event). Level 0 is rebuilt from the batches
    when a model loads, so which models flush changes no outcome, only the index."""
    for join in joins:
        join.write(db)
    total = idle_pairs + sum(join.staged_pairs for join in joins)
    for join in sorted(joins, key=lambda j: (-j.staged_pairs, j.model)):
        pairs = join.staged_pairs
        if total < budget or not pairs:
            break
        join.flush_level0(db)
        total -= pairs
