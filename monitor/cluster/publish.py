"""The records of one checkpoint's Kafka transaction, from what the checkpoint wrote.

- changelog: each state row it changed, on the changelog partition of the
  model's records (chunks first, then the row's key; tombstones for rows and
  chunks no longer there);
- alerts topic: per model, its new alerts, signal history, performance
  windows and audit rows of its baseline (``baseline_change``: when and what),
  keyed by model, as one ``{"model", "part", "parts", "alerts",
  "signal_history", "performance_windows", "baseline_changes"}`` record
  (several parts when they exceed ``CHUNK_BYTES``), each table's rows in the
  order written;
- quarantine topic: each quarantined record, keyed by where it was read.

Row ids and wall-clock columns of the worker's store are left out: they mean
nothing in another store (an audit row keeps its time: the notifier's audit
log records when the baseline changed).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import sqlite_utils

from monitor.cluster import cache
from monitor.cluster.capture import ChangeCapture
from monitor.cluster.records import (
    CHUNK_BYTES,
    KafkaRecord,
    encode_row,
    native_row,
    row_key,
    state_records,
)
from monitor.cluster.settings import ClusterTopics

log = logging.getLogger("driftwarden.cluster")
OUTPUTS = ("alerts", "signal_history", "performance_windows", "baseline_changes")
# Columns of the worker's own store: row ids, its incidents, its wall clock.
LOCAL_COLUMNS = frozenset({"id", "created_at", "incident_id"})
# A quarantined record's raw bytes as the topic carries them (base64 grows them by 4/3).
QUARANTINE_RAW_BYTES = 512 * 1024


@dataclass
class Outgoing:
    records: list[KafkaRecord] = field(default_factory=list)


def outgoing(
    db: sqlite_utils.Database,
    capture: ChangeCapture,
    topics: ClusterTopics,
    partition_of: Mapping[str, int],
    history_before: Mapping[str, float] | None = None,
) -> Outgoing:
    """Everything noted since the last checkpoint, as records; the notes are cleared
    (inside the caller's SQLite transaction, so a failed one keeps them)."""
    out = Outgoing()
    changed = capture.changed()
    outputs = {table: capture.written(table) for table in (*OUTPUTS[:-1], "quarantine")}
    outputs["baseline_changes"] = [baseline_change(row) for row in capture.written("audit")]
    for alert in outputs["alerts"]:  # what a consumer needs to file it as this store did
        found = db.execute("SELECT kind FROM incidents WHERE id = ?", [alert["incident_id"]])
        alert["kind"] = (found.fetchone() or (None,))[0]
    capture.clear()
    placed: dict[str, int] = {}
    chunks = cache.all_chunks(db)
    for table, key, row in changed:
        model = key[0]
        partition = partition_of.get(model)
        if partition is None:  # no record of it read yet: it goes with the next checkpoint
            capture.keep(table, key)
            continue
        placed[model] = partition
        out.records += _state_records(db, chunks, topics.changelog, partition, table, key, row)
    cache.set_model_partitions(db, placed.items())
    out.records += output_records(
        topics.alerts, {table: outputs[table] for table in OUTPUTS}, history_before or {}
    )
    out.records += [_quarantined(topics.quarantine, row) for row in outputs["quarantine"]]
    return out


def _state_records(
    db: sqlite_utils.Database,
    chunks: dict[bytes, int],
    topic: str,
    partition: int,
    table: str,
    key: list[Any],
    row: dict[str, Any] | None,
) -> list[KafkaRecord]:
    main_key = row_key(table, key)
    before = chunks.get(main_key, 0)
    value = None if row is None else encode_row(row)
    records = state_records(topic, partition, table, key, value, before)
    # The records with a value are the row's key and its chunks.
    now = max(0, sum(1 for r in records if r.value is not None) - 1)
    if now != before:
        cache.set_chunks(db, main_key, now)
    return records


def baseline_change(audit_row: dict[str, Any]) -> dict[str, Any]:
    """A ``baseline_change`` row of the audit log as the alerts topic carries it: the model
    (its subject is ``model:<name>``), when, and what (the row's JSON text, as written)."""
    subject = str(audit_row["subject"])
    return {
        "model": subject.removeprefix("model:"),
        "ts": audit_row["ts"],
        "content": audit_row["content"],
    }


def output_records(
    topic: str,
    outputs: dict[str, list[dict[str, Any]]],
    history_before: Mapping[str, float] | None = None,
) -> list[KafkaRecord]:
    """Per model, one record of everything the checkpoint found for it, its audit log's
    ``baseline_change`` rows too (more, numbered ``part`` of ``parts``, when that exceeds
    ``CHUNK_BYTES``): a consumer takes a model's checkpoint whole, its signal changes and
    alerts together, as the checkpoint did. ``history_before``: per model, the event time
    the checkpoint pruned its history before, sent as ``history_before`` with its record."""
    by_model: dict[str, list[tuple[str, bytes]]] = {}
    for table, rows in outputs.items():
        for row in rows:
            shared = {k: v for k, v in row.items() if k not in LOCAL_COLUMNS}
            by_model.setdefault(row["model"], []).append((table, encode_row(shared)))
    records = []
    for model, items in by_model.items():
        parts: list[dict[str, list[bytes]]] = [{}]
        # What a record holds besides the rows: its head (part numbers up to 10 digits) and
        # the lists' names.
        overhead = len(orjson.dumps({"model": model, "part": 10**10, "parts": 10**10}))
        overhead += len(',"history_before":-1.2345678901234567e+300')
        overhead += sum(len(table) + 6 for table in OUTPUTS)
        size = overhead
        for table, item in items:
            if size > overhead and size + len(item) + 1 > CHUNK_BYTES:
                parts.append({})
                size = overhead
            parts[-1].setdefault(table, []).append(item)
            size += len(item) + 1
        pruned = (history_before or {}).get(model)
        for i, part in enumerate(parts):
            fields: dict[str, Any] = {"model": model, "part": i, "parts": len(parts)}
            if pruned is not None:
                fields["history_before"] = pruned
            head = orjson.dumps(fields)[:-1]
            lists = b"".join(
                b',"' + table.encode() + b'":[' + b",".join(part.get(table, [])) + b"]"
                for table in OUTPUTS
            )
            records.append(KafkaRecord(topic, model.encode(), head + lists + b"}"))
    return records


def _quarantined(topic: str, row: dict[str, Any]) -> KafkaRecord:
    shared = {k: v for k, v in row.items() if k not in LOCAL_COLUMNS}
    raw = shared.get("raw")
    if isinstance(raw, bytes) and len(raw) > QUARANTINE_RAW_BYTES:
        shared["raw"] = raw[:QUARANTINE_RAW_BYTES]  # raw_length and raw_sha256 keep the whole
    where = orjson.dumps([row["source"], row["topic"], row["partition"], row["offset"]])
    return KafkaRecord(topic, where, encode_row(shared))


def alert_rows(values: list[bytes]) -> list[dict[str, Any]]:
    """The alerts among records of the alerts topic (their values, in topic order)."""
    found = []
    for value in values:
        found += [native_row(row) for row in orjson.loads(value)["alerts"]]
    return found
