"""`baseline reset` and `baseline set` in cluster mode: requests on the changelog.

The command (``monitor.cluster.request_command``) writes a request as a row of
the table ``baseline_requests``, keyed ``["baseline_requests", model,
request_id]`` on the model's changelog partition (its sample in chunks when it
is large), in a transaction with the request's audit row on the alerts topic.
The member holding the partition reads it into its store like any changelog
row (at restore, or as it follows the changelog: ``follow``); then:

- ``sync`` turns each request the store holds into the store's own request
  (``baseline_resets`` or ``baseline_references``), as the command does in
  single-machine mode, so the pipeline carries it out as it would there (at its
  next checkpoint, or when it next loads the model); ``cluster_armed`` remembers
  which row each request became. A request gone from the changelog before it
  was carried out here (another member carried it out) is withdrawn again.
- ``finish``, in the checkpoint's transaction, takes each request the pipeline
  carried out off the changelog: a tombstone for its key (and its chunks), in
  the same Kafka transaction as the state change and the audit rows it caused.
  A member that dies before that commit leaves the request on the changelog,
  and whoever restores the partition next carries it out: exactly once.

Each request has its own key (not one per model): a later request never
shares a key with an earlier one a member is about to tombstone. Both steps
concern the partitions the member holds only: the worker processes of one
daemon share its store, and a request is the business of the worker holding
its partition (whose checkpoint carries the state change it causes).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection

import sqlite_utils

from monitor.cluster import cache
from monitor.cluster.capture import ChangeCapture
from monitor.cluster.records import REQUEST_TABLE, KafkaRecord, row_key, state_records
from monitor.pipeline import baseline_reset, reference_file
from monitor.pipeline.reference_file import ReferenceRequest

log = logging.getLogger("driftwarden.cluster")
TABLE = REQUEST_TABLE
# Every changelog key of a request, its chunks' too, starts so (``follow`` keeps only these).
KEY_PREFIX = b'["' + TABLE.encode() + b'",'


def sync(
    db: sqlite_utils.Database, partitions: Collection[int], restored: bool = False
) -> list[tuple[str, int]]:
    """Each request of the store on ``partitions`` armed as the store's own, each one gone
    withdrawn; call in a write transaction after requests were read. Returns the models
    armed, each with its request's partition.

    ``restored``: the partitions were just restored. A request still on the changelog
    then never reached it as carried out, even if this store carried it out (when the
    model loaded, then the daemon died or its transaction failed before the checkpoint
    that publishes it): it is armed again, and carried out again from the restored
    state. (While following, such a request waits for its checkpoint: not again.)"""
    held = sorted(partitions)
    marks = ", ".join("?" * len(held))
    armed = {
        (model, rid): (kind, row_id)
        for model, rid, kind, row_id in db.execute(
            "SELECT model, request_id, kind, row_id FROM cluster_armed "
            f"WHERE partition IN ({marks})",
            held,
        ).fetchall()
    }
    cursor = db.execute(
        f"SELECT model, request_id, kind, requested_at, requested_by, source, sha256, "
        f"rows_read, sample_size, sample, partition FROM {TABLE} WHERE partition IN ({marks}) "
        "ORDER BY requested_at, request_id",
        held,
    )
    waiting = {(row[0], row[1]): row for row in cursor.fetchall()}
    now = time.time()
    if restored:
        for (model, rid), (kind, row_id) in list(armed.items()):
            if (model, rid) in waiting and _carried_out(db, kind, row_id):
                del armed[model, rid]
                db.execute(
                    "DELETE FROM cluster_armed WHERE model = ? AND request_id = ?", [model, rid]
                )
    for (model, rid), (kind, row_id) in armed.items():
        if (model, rid) not in waiting:
            _withdraw(db, kind, row_id, now)
            log.info(
                "baseline request gone from the changelog (carried out by another member)",
                extra={"model": model, "request": rid, "kind": kind},
            )
            db.execute("DELETE FROM cluster_armed WHERE model = ? AND request_id = ?", [model, rid])
    models: list[tuple[str, int]] = []
    for (model, rid), row in waiting.items():
        if (model, rid) in armed:
            continue
        kind, requested_at, who = row[2], float(row[3]), str(row[4])
        if kind == "set":
            request = ReferenceRequest(model, who, row[5], row[6], row[7], row[8], row[9])
            row_id = reference_file.record_request(db, request, requested_at)
        else:
            row_id = baseline_reset.record(db, model, who, requested_at)
        db.execute(
            "INSERT INTO cluster_armed (model, request_id, kind, partition, row_id) "
            "VALUES (?, ?, ?, ?, ?)",
            [model, rid, "set" if kind == "set" else "reset", row[10], row_id],
        )
        models.append((model, int(row[10])))
        log.info(
            "baseline request read from the changelog",
            extra={"model": model, "request": rid, "kind": kind, "by": who},
        )
    return models


def _withdraw(db: sqlite_utils.Database, kind: str, row_id: int, now: float) -> None:
    """A request armed here that another member carried out: not again here."""
    if kind == "set":
        db.execute(
            "UPDATE baseline_references SET superseded_at = ?, sample = X'' "
            "WHERE id = ? AND done_at IS NULL AND superseded_at IS NULL",
            [now, row_id],
        )
    else:
        db.execute("DELETE FROM baseline_resets WHERE id = ? AND done_at IS NULL", [row_id])


def finish(
    db: sqlite_utils.Database, capture: ChangeCapture, topic: str, partitions: Collection[int]
) -> list[KafkaRecord]:
    """Tombstones for the requests on ``partitions`` the pipeline carried out (a reference
    built or given way to a later request, a reset done), their rows gone from the store;
    call in the checkpoint's transaction, before its records are published."""
    held = sorted(partitions)
    armed = db.execute(
        "SELECT model, request_id, kind, row_id, partition FROM cluster_armed "
        f"WHERE partition IN ({', '.join('?' * len(held))})",
        held,
    ).fetchall()
    records: list[KafkaRecord] = []
    chunks = cache.all_chunks(db)
    for model, rid, kind, row_id, partition in armed:
        if not _carried_out(db, kind, row_id):
            continue
        key = row_key(TABLE, [model, rid])
        records += state_records(topic, partition, TABLE, [model, rid], None, chunks.get(key, 0))
        cache.set_chunks(db, key, 0)
        with capture.paused():  # its tombstone is the one above, on the request's partition
            db.execute(f"DELETE FROM {TABLE} WHERE model = ? AND request_id = ?", [model, rid])
        db.execute("DELETE FROM cluster_armed WHERE model = ? AND request_id = ?", [model, rid])
    return records


def _carried_out(db: sqlite_utils.Database, kind: str, row_id: int) -> bool:
    if kind == "set":
        found = db.execute(
            "SELECT done_at IS NOT NULL OR superseded_at IS NOT NULL "
            "FROM baseline_references WHERE id = ?",
            [row_id],
        ).fetchone()
    else:
        found = db.execute(
            "SELECT done_at IS NOT NULL FROM baseline_resets WHERE id = ?", [row_id]
        ).fetchone()
    return found is None or bool(found[0])
