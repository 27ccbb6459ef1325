"""The checkpoint: when one is due, and everything one unit of work changes, in ONE transaction.

``Checkpoint`` is the one owner of a source's positions and of the decision to
checkpoint; the daemon, the file replay and the Kafka replay all use it. It
holds the next offset of each partition read since the last checkpoint and
refuses one that goes backwards. A checkpoint is due after ``every_records``
records, after ``every_seconds`` with at least one record, or at once when the
quarantine buffer is full.

``write`` lands a unit of work in one SQLite transaction, in this order:

1. signal states, history, alerts and incidents, model by model in event
   order (``monitor.incidents.signal_states``): a signal that fires brings its
   alert, filed under an incident by the alert policy; incidents none of whose
   signals fires any more resolve; and the estimated and realized
   performance of the windows closed (``performance_windows``);
2. audit rows for the new alerts;
3. history (and performance windows) older than ``[history] retention_days``
   of the model's event clock goes;
4. the baseline log: an audit row when a model's reference is first fixed;
5. notifications enqueued in the outbox (the daemon only: replays never notify);
6. baseline resets requested by ``driftwarden baseline reset``: the model's
   state is deleted instead of written and the model warms up again; a
   reference set by ``driftwarden baseline set`` likewise, and the model's
   baseline is built from it when it next loads (``reference_file``);
7. quarantined records;
8. model state (detector state, its long strings as blobs), and each model's
   label join: predictions waiting for labels, and its counts; then the
   largest models' level 0 flushed into the index while the pipeline's models
   hold ``label_store.LEVEL0_BUDGET`` pairs in all (``label_join.write_all``);
9. offsets: the next offset of each partition, under the consumer group.

A crash leaves all of it or none. Kafka commits, if any, follow the
transaction (``monitor.daemon.daemon``). ``write`` returns what it wrote.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import sqlite_utils

from detectors.base import Finding
from monitor.audit.chain import AuditLog
from monitor.incidents import signal_states
from monitor.pipeline import baseline_reset, label_join, performance_windows, reference_file
from monitor.pipeline.label_store import LEVEL0_BUDGET
from monitor.store.store import CheckpointRows, Store

if TYPE_CHECKING:
    from monitor.incidents.grouping import AlertPolicy
    from monitor.notify.policy import NotificationPolicy
    from monitor.pipeline.pipeline import ModelPipeline

log = logging.getLogger("driftwarden.pipeline")
Partition = tuple[str, int]


class Checkpoint:
    """Positions read since the last checkpoint, and when the next one is due."""

    def __init__(
        self,
        every_records: int,
        every_seconds: float = math.inf,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if every_records < 1:
            raise ValueError(f"every_records must be 1 or more, not {every_records}")
        self.every_records = every_records
        self.every_seconds = every_seconds
        self._clock = clock
        self._offsets: dict[Partition, int] = {}
        self._last: dict[Partition, int] = {}  # offsets already checkpointed
        self._records = 0
        self._since = clock()

    def advance(self, topic: str, partition: int, next_offset: int) -> None:
        """Record that ``partition`` was read up to ``next_offset`` (exclusive)."""
        key = (topic, partition)
        known = self._offsets.get(key, self._last.get(key))
        if known is not None and next_offset < known:
            raise ValueError(
                f"offset of {topic}[{partition}] goes backwards: {next_offset} after {known}"
            )
        self._offsets[key] = next_offset

    def count(self, records: int = 1) -> None:
        """Records read (or lines, for a file) since the last checkpoint."""
        self._records += records

    def due(self, quarantine_full: bool = False) -> str | None:
        """Why a checkpoint is due now (``quarantine``, ``records``, ``seconds``), or None."""
        if quarantine_full:
            return "quarantine"
        if self._records >= self.every_records:
            return "records"
        if self._records > 0 and self._clock() - self._since >= self.every_seconds:
            return "seconds"
        return None

    @property
    def offsets(self) -> dict[Partition, int]:
        """The next offset of each partition read since the last checkpoint."""
        return dict(self._offsets)

    def taken(self) -> None:
        """A checkpoint of ``offsets`` was written: start counting again."""
        self._last.update(self._offsets)
        self._offsets = {}
        self._records = 0
        self._since = self._clock()

    def forget(self) -> None:
        """Partitions moved (a rebalance): the next positions start afresh."""
        self._last = {}


@dataclass
class CheckpointResult:
    """What one checkpoint wrote."""

    alerts_by_model: Counter[str] = field(default_factory=Counter)
    quarantined: int = 0
    models_written: int = 0
    models_reset: list[str] = field(default_factory=list)
    offsets: dict[Partition, int] = field(default_factory=dict)
    # Per model, the event time its history and performance windows were pruned before
    # (step 3): cluster mode sends it on, for the notifier's store.
    history_before: dict[str, float] = field(default_factory=dict)

    @property
    def alerts(self) -> int:
        return self.alerts_by_model.total()


@dataclass
class UnitOfWork:
    """Everything a pipeline has to write since its last checkpoint."""

    findings: Mapping[str, Sequence[Finding]]
    models: Sequence[ModelPipeline]  # the models that saw events, in name order
    rows: CheckpointRows
    history_seconds: float = 30 * 86_400.0  # [history] retention_days, in seconds
    # The pairs of level 0 the pipeline's models not in ``models`` hold, and the budget
    # for all of them (``label_join.write_all``).
    level0_idle: int = 0
    level0_budget: int = LEVEL0_BUDGET


def write(
    store: Store,
    unit: UnitOfWork,
    policy: AlertPolicy,
    notifier: NotificationPolicy | None,
    loaded: set[str],
) -> CheckpointResult:
    """Write ``unit`` in one transaction, in the numbered steps of this module's docstring.

    ``loaded`` names the models held in memory: a pending baseline reset of one
    of them is carried out here (step 6) and listed in the result.
    """
    result = CheckpointResult(
        quarantined=len(unit.rows.quarantined), offsets=dict(unit.rows.offsets)
    )
    with store.transaction() as db:
        now = time.time()
        for model in unit.models:  # 1
            findings = unit.findings.get(model.name, ())
            written = signal_states.apply(db, model.name, model.changes, findings, policy, now)
            result.alerts_by_model[model.name] += written
            performance_windows.write(db, model.name, model.performance_windows)
        if result.alerts:  # 2
            AuditLog.append_new_alerts(db)
        for model in unit.models:
            if math.isfinite(model.clock.now):  # 3
                before = model.clock.now - unit.history_seconds
                signal_states.prune_history(db, model.name, before)
                performance_windows.prune(db, model.name, before)
                result.history_before[model.name] = before
            _log_new_baseline(db, model)  # 4
        if notifier is not None:  # 5
            notifier.enqueue_changes(db, time.time())
        resets = baseline_reset.pending(db)
        for name in sorted((resets | reference_file.pending(db)) & loaded):  # 6
            # Its findings so far stand; its state is neither written nor kept.
            unit.rows.model_states.pop(name, None)
            store.delete_model_state(db, name)
            signal_states.clear_model(db, name, None, time.time())
            result.models_reset.append(name)
            if name in resets:
                baseline_reset.carry_out(db, name, time.time())
                log.warning(
                    "baseline reset carried out; the model warms up again", extra={"model": name}
                )
            # A reference set from a file is built when the model next loads.
        result.models_written = len(unit.rows.model_states)
        joins = [m.label_join for m in unit.models if m.label_join is not None]
        # 8: the label join, even of a model reset in 6
        label_join.write_all(db, joins, unit.level0_idle, unit.level0_budget)
        store.write_checkpoint(db, unit.rows)  # 7, 8, 9
    return result


def _log_new_baseline(db: sqlite_utils.Database, model: ModelPipeline) -> None:
    """The audit log records when a model's reference is fixed, and from how many events."""
    if model.baseline_logged or not model.detectors.has_reference:
        return
    settings = model.detectors.settings
    content = {"source": "warm-up", "reference_events": settings.reference_size}
    AuditLog.append(db, "baseline_change", f"model:{model.name}", content)
    model.baseline_logged = True
