"""A reference you choose: a model's baseline built from a sample of a file, not its warm-up.

``driftwarden baseline set`` (and ``replay --reference``) records a sample in
the store's ``baseline_references`` table, like a ``baseline reset`` request.
Whoever holds the model carries it out, under the store's transaction: a
running pipeline drops the model's state at its next checkpoint (step 6 of
``monitor.pipeline.checkpoint``), and when the model next loads, ``apply_pending``
builds its detectors from the sample, writes that state, marks the request
done and says so in the audit log. From then on the reference lives in the
model's saved state, and survives restarts, until the next ``baseline set`` or
``baseline reset`` (which supersedes it: the model warms up from its stream again).

At most one reference per model is in force (``superseded_at IS NULL``); a
``replay --overwrite`` that empties the store arms it again, so the replay
starts from the same reference.
"""

from __future__ import annotations

import logging
import math
import time
import zlib
from dataclasses import dataclass

import sqlite_utils

from detectors.performance.estimated import ScoredRow
from detectors.suite.model_detectors import ModelDetectors
from detectors.suite.settings import SuiteSettings
from monitor.audit.chain import AuditLog
from monitor.incidents import signal_states
from monitor.ingest.events import Event
from monitor.pipeline.reference_sample import ModelSample, ReferenceFile, unpack, unpack_events
from monitor.store.store import CheckpointRows, Store

log = logging.getLogger("driftwarden.pipeline")
MIN_EVENTS = 2  # a reference of fewer events has no spread to test against


@dataclass(frozen=True)
class ReferenceRequest:
    """A sample to build a model's reference from, and what the audit log says of it."""

    model: str
    who: str
    source: str  # the file's name
    sha256: str
    rows_read: int
    sample_size: int
    sample: bytes  # ``ModelSample.packed()``

    @classmethod
    def of(cls, found: ReferenceFile, sample: ModelSample, who: str) -> ReferenceRequest:
        return cls(
            sample.model,
            who,
            found.path.name[:200],
            found.sha256,
            sample.rows_read,
            len(sample.events),
            sample.packed(),
        )

    def audit_content(self) -> dict[str, object]:
        """The ``baseline_change`` row of ``baseline set``."""
        return {
            "source": "reference set",
            "by": self.who,
            "file": self.source,
            "sha256": self.sha256,
            "rows_read": self.rows_read,
            "sample_size": self.sample_size,
        }


def record(
    db: sqlite_utils.Database, found: ReferenceFile, sample: ModelSample, who: str, now: float
) -> None:
    """Make ``sample`` the model's pending reference; call inside a write transaction."""
    request = ReferenceRequest.of(found, sample, who)
    record_request(db, request, now)
    AuditLog.append(db, "baseline_change", f"model:{sample.model}", request.audit_content())


def record_request(db: sqlite_utils.Database, request: ReferenceRequest, now: float) -> int:
    """The reference pending in the store, superseding the one in force; its row id. No
    audit row: ``record`` writes it (cluster mode: the command, on the alerts topic)."""
    supersede(db, request.model, now)
    cursor = db.execute(
        "INSERT INTO baseline_references (model, requested_at, requested_by, source, sha256, "
        "rows_read, sample_size, sample) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            request.model,
            now,
            request.who,
            request.source,
            request.sha256,
            request.rows_read,
            request.sample_size,
            request.sample,
        ],
    )
    return int(cursor.lastrowid or 0)


def supersede(db: sqlite_utils.Database, model: str, now: float) -> None:
    """The model's reference in force (applied or not) gives way to a newer set or a reset;
    its sample is dropped, its row kept as history."""
    db.execute(
        "UPDATE baseline_references SET superseded_at = ?, sample = X'' "
        "WHERE model = ? AND superseded_at IS NULL",
        [now, model],
    )


def pending(db: sqlite_utils.Database) -> set[str]:
    """Models whose reference in force is not yet built."""
    rows = db.execute(
        "SELECT DISTINCT model FROM baseline_references "
        "WHERE done_at IS NULL AND superseded_at IS NULL"
    )
    return {row[0] for row in rows.fetchall()}


def rearm(db: sqlite_utils.Database) -> None:
    """After a store's detector state is emptied: build each reference in force again."""
    db.execute("UPDATE baseline_references SET done_at = NULL WHERE superseded_at IS NULL")


def apply_pending(
    store: Store, model: str, settings: SuiteSettings, categorical: frozenset[str] = frozenset()
) -> ModelDetectors | None:
    """The model's detectors built from its pending reference, now saved; None if none waits.

    Call after carrying out any pending reset of the model: the reference was
    set after it (a reset supersedes an earlier reference).
    """
    if model not in pending(store.db):
        return None  # the usual case: a read, without taking the write lock
    with store.transaction() as db:
        row = db.execute(
            "SELECT id, sample, sha256, sample_size FROM baseline_references "
            "WHERE model = ? AND done_at IS NULL AND superseded_at IS NULL",
            [model],
        ).fetchone()
        if row is None:
            return None  # another process built it meanwhile
        ref_id, sample, sha256, sample_size = row
        now = time.time()
        built = _built(db, model, ref_id, sample, settings, now, categorical)
        if built is None:
            return None
        detectors, estimated = built
        store.delete_model_state(db, model)
        signal_states.clear_model(db, model, None, now)  # its signals start again, ok
        store.write_checkpoint(db, CheckpointRows(model_states={model: (detectors.dump(), 0)}))
        db.execute("UPDATE baseline_references SET done_at = ? WHERE id = ?", [now, ref_id])
        content = {
            "source": "reference carried out",
            "sha256": sha256,
            "sample_size": sample_size,
            "reference_events": min(int(sample_size), settings.reference_size),
            # scored predictions CBPE took as its reference (0: it warms up on the stream)
            "estimated_reference": estimated,
        }
        AuditLog.append(db, "baseline_change", f"model:{model}", content)
    log.warning(
        f"model {model}: the reference set from a file is carried out; its baseline is "
        "built from that sample",
        extra={"model": model, "sha256": sha256},
    )
    return detectors


def scored_events(events: list[Event]) -> list[ScoredRow]:
    """A sample's scored predictions, then their labels, as CBPE takes them."""
    # Imported here: the pipeline imports this module.
    from monitor.pipeline.pipeline import class_name, scored_row

    out: list[ScoredRow] = []
    for seq, e in enumerate(events):
        if e.type == "label":
            if e.id is not None and e.label is not None:
                out.append((seq, e.ts, e.id, None, math.nan, None, class_name(e.label)))
        elif e.prediction is not None:
            scored = scored_row(seq, e.ts, e.id, e.prediction, e.score, e.probabilities)
            if scored is not None:
                out.append(scored)
    return out


def _built(
    db: sqlite_utils.Database,
    model: str,
    ref_id: int,
    sample: bytes,
    settings: SuiteSettings,
    now: float,
    categorical: frozenset[str],
) -> tuple[ModelDetectors, int] | None:
    """Detectors whose reference is the sample, and the scored predictions CBPE took from
    it; None, loudly, if the stored sample is unusable (a damaged row): it is set aside,
    so that it cannot fail every start the same way."""
    detectors = ModelDetectors(settings)
    try:
        detectors.set_reference(unpack(sample, categorical))
        estimated = detectors.set_scored_reference(scored_events(unpack_events(sample)))
        return detectors, estimated
    except (zlib.error, ValueError, TypeError) as exc:
        why = str(exc) or type(exc).__name__
    db.execute("UPDATE baseline_references SET superseded_at = ? WHERE id = ?", [now, ref_id])
    content = {"source": "reference unusable", "error": why[:500]}
    AuditLog.append(db, "baseline_change", f"model:{model}", content)
    log.error(
        f"model {model}: the reference set from a file cannot be built ({why}); the model "
        "keeps its baseline or warms up from its stream: set the reference again",
        extra={"model": model, "error": why[:500]},
    )
    return None
