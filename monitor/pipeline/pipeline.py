"""The per-model pipeline shared by replay and the daemon.

Events are buffered per model and handed to the detectors in micro-batches;
since the detectors give the same findings for any split of the stream, the
buffer size is a matter of speed only. ``checkpoint`` hands everything since
the last one to ``monitor.pipeline.checkpoint``, which writes it in one
transaction.
"""

from __future__ import annotations

import gc
import logging
import math
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

import numpy as np

from detectors.base import Finding, SignalChange
from detectors.performance.estimated import ScoredRow, WindowResult
from detectors.suite.model_detectors import ModelDetectors
from detectors.suite.settings import SuiteSettings
from monitor.audit import chain as audit
from monitor.audit.chain import AuditLog
from monitor.cli.safe_text import printable
from monitor.config import Config
from monitor.incidents import signal_states
from monitor.incidents.grouping import AlertPolicy
from monitor.ingest.batching import RunSlice, measured, rows_batch, runs_batch
from monitor.ingest.events import Event, Row, event_row
from monitor.ingest.row_runs import RowRun
from monitor.notify.policy import NotificationPolicy
from monitor.pipeline import baseline_reset, checkpoint, reference_file
from monitor.pipeline.checkpoint import CheckpointResult, UnitOfWork
from monitor.pipeline.event_clock import EventClock
from monitor.pipeline.label_join import LabelCounts, ModelLabelJoin
from monitor.pipeline.label_store import LEVEL0_BUDGET
from monitor.pipeline.limits import (
    MAX_UNKNOWN_FIELDS,
    UNKNOWN_OTHER,
    QuarantineBuffer,
    count_named,
    count_unlisted,
    keep_features,
)
from monitor.store.store import CheckpointRows, QuarantinedRecord, StateLost, Store

log = logging.getLogger("driftwarden.pipeline")
FLUSH_EVENTS = 2048
# The cyclic collector's gen-0 threshold, in net container allocations. Events,
# their feature dicts and column tuples form no cycles and are freed by reference
# counting, yet at the default of 700 the collector ran every ~150 events and took
# ~10% of the pipeline's time (3.5 us per event, measured with gc.callbacks).
GC_GEN0_THRESHOLD = 50_000


def collect_garbage_rarely() -> None:
    """Tune the process's cyclic garbage collector for streaming many small events:
    collections run ~70 times less often; cycles are still collected."""
    gc.set_threshold(GC_GEN0_THRESHOLD, 20, 100)


@dataclass
class ModelPipeline:
    name: str
    detectors: ModelDetectors
    events: int = 0
    labels: int = 0
    baseline_logged: bool = False
    clock: EventClock = field(default_factory=EventClock)
    times: list[float] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    # Or, instead of rows (never both), slices of the fetch process's runs: see ``add_run``.
    runs: list[RunSlice] = field(default_factory=list)
    remembered: int = 0  # rows whose predictions the label join has (a prefix of rows)
    row_seq: list[int] = field(default_factory=list)
    # Labels join their predictions as they come, in stream order (None: labels are ignored).
    label_join: ModelLabelJoin | None = None
    # Signal evaluations and state changes since the last checkpoint, in stream order.
    changes: list[SignalChange] = field(default_factory=list)
    metrics: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    # Scored class predictions and labels with ids, interleaved in stream order (CBPE),
    # as tuples of ``Scored``'s fields: transposed into columns at a flush.
    scored: list[ScoredRow] = field(default_factory=list)
    # Estimated and realized performance per window since the last checkpoint.
    performance_windows: list[WindowResult] = field(default_factory=list)
    buffered: int = 0
    features_dropped: int = 0  # values of feature names the model does not track
    metric_points_dropped: int = 0  # points of metric series beyond the cap
    caps_logged: bool = False
    # Features that are categories whatever their values (models[].categorical).
    categorical: frozenset[str] = frozenset()
    # The feature names worth a column; an event with others is filtered first.
    feature_filter: set[str] | frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        self.feature_filter = self.detectors.feature_filter

    def add(self, event: Event) -> bool:
        """Buffer one event; True when the buffer is worth flushing.

        Every event, labels included, counts towards the flush: the label join
        needs each flush to span fewer events than its horizon.
        """
        if event.type != "metric" and event.type != "label":
            return self.add_row(event_row(event), event.probabilities)
        seq = self.events
        self.events += 1
        self.times.append(event.ts)
        if event.type == "metric":
            assert event.name is not None and event.value is not None
            points = self.metrics.get(event.name)
            if points is None and self.detectors.caps.metrics.admit(event.name):
                points = self.metrics[event.name] = []
            if points is None:
                self.metric_points_dropped += 1
            else:
                points.append((event.ts, event.value))
        else:
            self.labels += 1
            if self.label_join is not None and event.id is not None:
                self._remember_predictions()  # the label may be of one just buffered
                self.label_join.label(seq, event.id, event.ts, event.label)
            if event.id is not None and event.label is not None:
                label = class_name(event.label)
                self.scored.append((seq, event.ts, event.id, None, math.nan, None, label))
        self.buffered += 1
        return self.buffered >= FLUSH_EVENTS

    def add_row(self, row: Row, probabilities: dict[str, float] | None = None) -> bool:
        """Buffer one prediction or input (``add`` for a ``Row``); True when worth flushing.

        The hot path: no object of its own per event, a few list appends."""
        if self.runs:
            self._runs_to_rows()
        seq = self.events
        self.events += 1
        _, ts, ident, _, features, prediction, score, _, _ = row
        self.times.append(ts)
        if prediction is not None:
            scored = scored_row(seq, ts, ident, prediction, score, probabilities)
            if scored is not None:
                self.scored.append(scored)
        if features is not None and not self.feature_filter.issuperset(features):
            row = (*row[:4], self._keep_features(features), *row[5:])
        self.rows.append(row)
        self.row_seq.append(seq)
        self.buffered += 1
        return self.buffered >= FLUSH_EVENTS

    def add_run(self, run: RowRun, start: int, end: int) -> bool:
        """Buffer the rows ``start:end`` of a run (``add_row`` for each, in effect); True
        when worth flushing. The rows stay columns unless a feature is outside the filter
        or rows are buffered already: then they are read back and added one by one."""
        if self.rows or not self.feature_filter.issuperset(run.keys):
            wanted = False
            for row in run.rows(start, end):
                wanted = self.add_row(row)
            return wanted
        seq, count = self.events, end - start
        self.events += count
        ts, ids = run.ts[start:end], run.ids[start:end]
        predictions, scores = run.predictions[start:end], run.scores[start:end]
        self.times += ts
        sequence = range(seq, seq + count)
        if _plain_scored(predictions, scores):  # what scored_row makes of each, at once
            self.scored += zip(sequence, ts, ids, predictions, scores, repeat(None), repeat(None))
        else:
            for k, ident, prediction, score in zip(sequence, ids, predictions, scores, strict=True):
                if prediction is not None:
                    scored = scored_row(k, ts[k - seq], ident, prediction, score, None)
                    if scored is not None:
                        self.scored.append(scored)
        self.runs.append((run, start, end))
        self.row_seq += sequence
        self.buffered += count
        return self.buffered >= FLUSH_EVENTS

    def _runs_to_rows(self) -> None:
        """The buffered runs as rows, before a row of another form joins them."""
        self.rows = self._buffered_rows()
        self.runs = []

    def _buffered_rows(self) -> list[Row]:
        if not self.runs:
            return self.rows
        return [row for run, start, end in self.runs for row in run.rows(start, end)]

    def _remember_predictions(self) -> None:
        """Hand the predictions buffered since the last call to the label join."""
        if self.label_join is None:
            return
        if self.runs:
            at = 0
            for run, start, end in self.runs:  # the slices past what the join has
                skip = max(0, self.remembered - at)
                at += end - start
                if start + skip < end:
                    self.label_join.predictions_of_columns(
                        run.ts[start + skip : end],
                        run.ids[start + skip : end],
                        run.predictions[start + skip : end],
                        run.scores[start + skip : end],
                        at - (end - start - skip),
                    )
            self.remembered = at
        elif self.remembered < len(self.rows):
            self.label_join.predictions_of_rows(self.rows, self.remembered)
            self.remembered = len(self.rows)

    def buffered_features(self) -> list[dict[str, Any] | None]:
        """The features of the predictions and inputs buffered for the next flush."""
        return [row[4] for row in self._buffered_rows()]

    def _keep_features(self, features: dict[str, Any]) -> dict[str, Any]:
        """The slow path: an event with feature names outside the filter."""
        det = self.detectors
        warm_up = (
            not det.has_reference
            and det.rows_observed + len(self.rows) < det.settings.reference_size
        )
        kept, untracked = keep_features(features, self.feature_filter, det, warm_up)
        self.features_dropped += untracked
        return kept

    def flush(self) -> list[Finding]:
        findings: list[Finding] = []
        self.buffered = 0
        self.clock.observe(self.times)
        self.times = []
        if self.rows or self.runs:
            self._remember_predictions()
            self.remembered = 0
            if self.runs:
                batch = runs_batch(self.runs, self.row_seq, self.categorical)
            else:
                batch = rows_batch(self.rows, self.row_seq, self.categorical)
            had, before = self.detectors.has_reference, self.detectors.rows_observed
            findings += self.detectors.observe_rows(batch)
            if self.label_join is not None:
                self.label_join.segment_rows(batch, self.detectors, before, had)
            self.detectors.forget_batch()
            self.rows, self.runs, self.row_seq = [], [], []
            self.feature_filter = self.detectors.feature_filter  # the reference's, once built
        if self.scored:  # predictions and labels in stream order: flushes cannot reorder them
            findings += self.detectors.observe_scored_rows(self.scored)
            self.scored = []
            self.performance_windows += self.detectors.take_performance_windows()
        joined = None if self.label_join is None else self.label_join.take_joined()
        if joined is not None:
            findings += self.detectors.observe_labels(joined)
            performance = self.label_join.performance  # type: ignore[union-attr]
            findings += performance.observe(joined)
            self.changes += performance.alarms.take_changes()
            join = self.label_join
            assert join is not None
            findings += join.feedback.observe(joined, join.layout(self.detectors))
            self.changes += join.feedback.alarms.take_changes()
        for name in sorted(self.metrics):
            points = np.array(self.metrics[name], dtype=np.float64)
            findings += self.detectors.observe_metric(name, points[:, 0], measured(points[:, 1]))
        self.metrics = {}
        self.changes += self.detectors.take_changes()
        return findings


def scored_row(
    seq: int,
    ts: float,
    ident: str | None,
    prediction: Any,
    score: float | None,
    probabilities: dict[str, float] | None,
) -> ScoredRow | None:
    """What CBPE takes of a prediction: a class with a score, or with probabilities (a
    number is a class only with probabilities); None for anything else."""
    if probabilities is not None:
        name = prediction if type(prediction) is str else class_name(prediction)
        return (seq, ts, ident, name, math.nan if score is None else score, probabilities, None)
    if score is None or not math.isfinite(score):
        return None
    if type(prediction) is str:
        return (seq, ts, ident, prediction, score, None, None)
    if type(prediction) is bool:
        return (seq, ts, ident, class_name(prediction), score, None, None)
    return None


def _plain_scored(predictions: list[object], scores: list[float | None]) -> bool:
    """Whether every prediction is a class name with a finite score: ``scored_row`` then
    makes each one's tuple of its fields as they are."""
    return (
        set(map(type, predictions)) == {str}
        and set(map(type, scores)) == {float}
        and all(map(math.isfinite, scores))  # type: ignore[arg-type]
    )


def class_name(value: object) -> str:
    """A class label as CBPE compares classes: bools as "true"/"false", integral numbers
    as integers (``1.0`` is class ``1``), anything else as its text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass
class PipelineStats:
    processed: int = 0
    quarantined: int = 0
    alerts: int = 0
    alerts_by_model: Counter[str] = field(default_factory=Counter)
    # Events of models not in the config, by name: at most [limits] max_unlisted_models
    # names (cut to 100 characters), then one "(other models)" count.
    unlisted: Counter[str] = field(default_factory=Counter)
    features_dropped: Counter[str] = field(default_factory=Counter)
    metric_points_dropped: Counter[str] = field(default_factory=Counter)
    # Events carrying top-level fields CONTRACT §1 does not name, by field name (bounded).
    unknown_fields: Counter[str] = field(default_factory=Counter)
    # Each model's label outcomes as of the last checkpoint (running totals from the store).
    labels: dict[str, LabelCounts] = field(default_factory=dict)


class Pipeline:
    def __init__(
        self,
        config: Config,
        store: Store,
        policy: AlertPolicy | None = None,
        notifier: NotificationPolicy | None = None,
        offsets_group: str | None = None,
    ) -> None:
        self.config = config
        self.store = store
        # The consumer group whose offsets ``checkpoint`` records.
        self.offsets_group = offsets_group
        self.policy = policy or AlertPolicy(tuple(config.alerting.group_by))
        self.notifier = notifier
        # Audit rows go keyed with the config's key; refused early if it is not the log's.
        key = audit.key_from_env(config.audit.key_env, os.environ)
        audit.bind_key(store.db, key)
        with store.transaction() as db:
            audit.check_key(db, key, config.audit.key_env)
        self.models: dict[str, ModelPipeline] = {}
        self.stats = PipelineStats()
        self._findings: dict[str, list[Finding]] = {}
        self._quarantine = QuarantineBuffer(config.limits)
        self._touched: set[str] = set()
        # Pairs of the label index's level 0 its models hold in memory, all together
        # (``label_join.write_all``).
        self.level0_budget = LEVEL0_BUDGET

    def model(self, name: str) -> ModelPipeline | None:
        pipeline = self.models.get(name)
        if pipeline is None and self.config.model(name) is not None:
            settings = self.config.suite_settings(name)
            reset = self._reset_on_load(name)
            categorical = frozenset(self.config.model(name).categorical)  # type: ignore[union-attr]
            chosen = reference_file.apply_pending(self.store, name, settings, categorical)
            saved = None if reset or chosen is not None else self._load(name)
            if chosen is not None:  # a reference set from a file (`baseline set`)
                pipeline = ModelPipeline(name, chosen, baseline_logged=True)
            elif saved is None:
                pipeline = ModelPipeline(name, ModelDetectors(settings))
            else:
                detectors, events = saved
                _warn_if_settings_changed(name, detectors.settings, settings)
                pipeline = ModelPipeline(
                    name, detectors, events=events, baseline_logged=detectors.has_reference
                )
            pipeline.categorical = categorical
            labels = self.config.labels
            pipeline.label_join = ModelLabelJoin(
                name,
                self.store.db,
                labels.horizon_seconds(),
                labels.max_pending,
                pipeline.detectors.settings.false_alarm_events,
                labels.feedback_reference,
            )
            self.models[name] = pipeline
        return pipeline

    def _load(self, name: str) -> tuple[ModelDetectors, int] | None:
        """A model's saved detectors; None, loudly, if there are none or they are unreadable.

        A state that cannot be read back (a blob deleted from the store, a
        damaged row) would fail the same way at every start: the model's
        baseline starts again instead, and the log and the audit log say so.
        """
        try:
            saved = self.store.load_model_state(name)
            if saved is None:
                return None
            state, events = saved
            return ModelDetectors.load(state), events
        except (StateLost, KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            why = str(exc) or type(exc).__name__
        with self.store.transaction() as db:
            self.store.delete_model_state(db, name)
            signal_states.clear_model(db, name, None, time.time())
            content = {"source": "state lost", "error": why}
            AuditLog.append(db, "baseline_change", f"model:{name}", content)
        log.error(
            f"model {name}: its saved baseline is lost ({why}); it warms up again "
            "from the events that follow",
            extra={"model": name, "error": why},
        )
        return None

    def _reset_on_load(self, name: str) -> bool:
        """Carry out a pending baseline reset of a model about to load; True if there was one."""
        if name not in baseline_reset.pending(self.store.db):
            return False  # the usual case: a read, without taking the write lock
        with self.store.transaction() as db:
            if name not in baseline_reset.pending(db):
                return False  # another process carried it out meanwhile
            self.store.delete_model_state(db, name)
            signal_states.clear_model(db, name, None, time.time())
            baseline_reset.carry_out(db, name, time.time())
        log.warning("baseline reset carried out; the model warms up again", extra={"model": name})
        return True

    def feed_row(self, row: Row) -> bool:
        """Take one prediction or input as ``parse_record`` gives it (``feed`` without the
        ``Event``); False if its model is not in the config (counted and skipped)."""
        name = row[0]
        pipeline = self.models.get(name) or self.model(name)
        if pipeline is None:
            count_unlisted(self.stats.unlisted, name, self.config.limits.max_unlisted_models)
            return False
        self.stats.processed += 1
        self._touched.add(name)
        if pipeline.add_row(row):
            self._findings.setdefault(name, []).extend(pipeline.flush())
        return True

    def feed_run(self, run: RowRun) -> bool:
        """Take a run of one model's rows (``feed_row`` for each, in effect), flushing where
        rows one by one would; False if its model is not in the config."""
        name = run.model
        pipeline = self.models.get(name) or self.model(name)
        if pipeline is None:
            for _ in range(run.n):
                count_unlisted(self.stats.unlisted, name, self.config.limits.max_unlisted_models)
            return False
        self.stats.processed += run.n
        self._touched.add(name)
        start = 0
        while start < run.n:
            end = min(run.n, start + FLUSH_EVENTS - pipeline.buffered)
            if pipeline.add_run(run, start, end):
                self._findings.setdefault(name, []).extend(pipeline.flush())
            start = end
        return True

    def feed(self, event: Event) -> bool:
        """Take one event; False if its model is not in the config (counted and skipped)."""
        pipeline = self.model(event.model)
        if pipeline is None:
            count_unlisted(self.stats.unlisted, event.model, self.config.limits.max_unlisted_models)
            return False
        self.stats.processed += 1
        if event.unknown is not None:
            self._count_unknown(event.unknown)
        self._touched.add(event.model)
        if pipeline.add(event):
            self._findings.setdefault(event.model, []).extend(pipeline.flush())
        return True

    def _count_unknown(self, names: list[str]) -> None:
        """Count fields the detectors ignore; say so once per name (a typo such as
        ``y_pred`` for ``prediction`` would otherwise go unnoticed)."""
        for name in names:
            if count_named(self.stats.unknown_fields, name, MAX_UNKNOWN_FIELDS, UNKNOWN_OTHER):
                log.warning(
                    "events carry a field Driftwarden does not know; it is ignored (the "
                    "fields are type, model, ts, id, client, version, features, prediction, "
                    "score, probabilities, label, name and value)",
                    extra={"field": printable(name, 100)},
                )

    def quarantine(self, record: QuarantinedRecord) -> bool:
        """Keep a malformed record (its raw bytes cut to the limit) for the next checkpoint;
        True when the records waiting reach their limit and a checkpoint is due now."""
        self.stats.quarantined += 1
        self._quarantine.add(record)
        return self._quarantine.full

    @property
    def quarantine_full(self) -> bool:
        """The quarantined records waiting reach their limit: checkpoint now."""
        return self._quarantine.full

    @property
    def quarantine_truncated(self) -> int:
        """Quarantined records whose raw bytes were cut to [limits] quarantine_raw_bytes."""
        return self._quarantine.truncated

    def checkpoint(self, offsets: dict[tuple[str, int], int] | None = None) -> CheckpointResult:
        """Flush every model and write all effects in one transaction (``checkpoint.write``)."""
        touched = sorted(self._touched)
        for name in touched:
            self._findings.setdefault(name, []).extend(self.models[name].flush())
        for name in touched:
            self._count_drops(self.models[name])
        rows = CheckpointRows(
            quarantined=self._quarantine.records,
            model_states={
                # References the store holds already go by digest, not as text again.
                name: (
                    self.models[name].detectors.dump(self.store.stored_blobs(name)),
                    self.models[name].events,
                )
                for name in touched
            },
            offsets=offsets or {},
            group_id=self.offsets_group,
        )
        idle = (m.label_join for n, m in self.models.items() if n not in self._touched)
        unit = UnitOfWork(
            self._findings,
            [self.models[name] for name in touched],
            rows,
            history_seconds=self.config.history.retention_days * 86_400.0,
            level0_idle=sum(join.store.pairs for join in idle if join is not None),
            level0_budget=self.level0_budget,
        )
        result = checkpoint.write(
            self.store, unit, self.policy, self.notifier, set(self.models.keys())
        )
        for name in touched:
            self.models[name].changes = []
            self.models[name].performance_windows = []
            join = self.models[name].label_join
            if join is not None:
                join.written()
        self.stats.labels.update(self.label_counts())
        for name in result.models_reset:
            del self.models[name]
        self.stats.alerts_by_model.update(result.alerts_by_model)
        self.stats.alerts += result.alerts
        self._findings = {}
        self._quarantine.clear()
        self._touched = set()
        return result

    def label_counts(self) -> dict[str, LabelCounts]:
        """Each loaded model's label outcomes (running totals, kept in the store)."""
        return {
            name: m.label_join.counts
            for name, m in sorted(self.models.items())
            if m.label_join is not None and m.label_join.counts.labels
        }

    def _count_drops(self, model: ModelPipeline) -> None:
        """Move a model's drop counts into the stats; say once when a cap first bites."""
        features, points = model.features_dropped, model.metric_points_dropped
        if not features and not points:
            return
        self.stats.features_dropped[model.name] += features
        self.stats.metric_points_dropped[model.name] += points
        model.features_dropped = model.metric_points_dropped = 0
        if not model.caps_logged:
            model.caps_logged = True
            settings = model.detectors.settings
            log.warning(
                "dropping feature values or metric points this model does not track: feature "
                "names beyond [detection] max_features or new after the warm-up, metric series "
                "beyond max_metric_series",
                extra={
                    "model": model.name,
                    "max_features": settings.max_features,
                    "max_metric_series": settings.max_metric_series,
                    "features_dropped": features,
                    "metric_points_dropped": points,
                },
            )

    def forget_models(self) -> None:
        """Drop in-memory detector state; it reloads from the store when next needed.

        Called after a checkpoint when partitions move: another process may own
        these models now, and the store is the only state both can trust.
        """
        self.models = {}


def _warn_if_settings_changed(model: str, saved: SuiteSettings, configured: SuiteSettings) -> None:
    """A changed [detection] applies only after a baseline reset: say so, once per load."""
    before, now = saved.dump(), configured.dump()
    changed = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
    if changed:
        log.warning(
            "detection settings changed since this model's baseline was built; the saved ones "
            f"stay in force until `driftwarden baseline reset --model {model}`",
            extra={"model": model, "changed": changed},
        )
