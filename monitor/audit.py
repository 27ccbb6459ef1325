"""The hash-chained audit log: what was detected, decided and sent, tamper-evident.

Each row's hash covers the previous row's hash and the row's own id, time, kind,
subject and content, so changing, inserting or deleting a row breaks the chain
at that row. A chain alone cannot show that rows were cut off its end (or that
the whole chain was rewritten): keep ``AuditLog.head`` somewhere else and pass
it to ``verify`` as the anchor to catch that too.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import sqlite_utils

KINDS = (
    "alert",
    "incident_transition",
    "notification",
    "config_load",
    "baseline_change",
    "silence",
)
GENESIS = "0" * 64

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    content TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_kind ON audit(kind, id);
"""

Problem = tuple[int, str]


def ensure_schema(db: sqlite_utils.Database) -> None:
    db.executescript(SCHEMA)


@contextmanager
def write_transaction(db: sqlite_utils.Database) -> Iterator[sqlite_utils.Database]:
    """A transaction that takes the write lock first (BEGIN IMMEDIATE).

    With another connection writing too (the delivery worker, the CLI), a
    transaction that reads before it writes would fail on its first write if
    the other committed in between; taking the lock first waits instead.
    Nested inside a transaction it is a savepoint of that transaction.
    """
    if db.conn.in_transaction:
        with db.atomic():
            yield db
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        if db.conn.in_transaction:
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def row_hash(prev_hash: str, row_id: int, ts: float, kind: str, subject: str, content: str) -> str:
    canonical = orjson.dumps(
        {"content": content, "id": row_id, "kind": kind, "subject": subject, "ts": ts},
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(prev_hash.encode() + canonical).hexdigest()


class AuditLog:
    """Appends to and checks the ``audit`` table; holds no state of its own."""

    @staticmethod
    def append(
        db: sqlite_utils.Database,
        kind: str,
        subject: str,
        content: dict[str, Any],
        ts: float | None = None,
    ) -> int:
        """Append one row inside the caller's transaction; returns its id."""
        if kind not in KINDS:
            raise ValueError(f"unknown audit kind {kind!r}: use one of {', '.join(KINDS)}")
        # Take the write lock before reading the head, so two writers cannot both
        # chain onto the same row.
        db.execute("UPDATE audit SET id = id WHERE id = -1")
        head = db.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
        prev_id, prev_hash = (0, GENESIS) if head is None else (int(head[0]), str(head[1]))
        row_id = prev_id + 1
        stamp = time.time() if ts is None else float(ts)
        text = orjson.dumps(content, option=orjson.OPT_SORT_KEYS).decode()
        digest = row_hash(prev_hash, row_id, stamp, kind, subject, text)
        db.execute(
            "INSERT INTO audit (id, ts, kind, subject, content, prev_hash, hash) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [row_id, stamp, kind, subject, text, prev_hash, digest],
        )
        return row_id

    @staticmethod
    def append_new_alerts(db: sqlite_utils.Database, ts: float | None = None) -> int:
        """Append an ``alert`` row per alert not yet logged; call in the alerts' transaction."""
        last = db.execute(
            "SELECT subject FROM audit WHERE kind = 'alert' ORDER BY id DESC LIMIT 1"
        ).fetchone()
        after = int(last[0].removeprefix("alert:")) if last else 0
        rows = db.execute(
            "SELECT id, fingerprint, model, detector, signal, severity, event_ts, details, "
            "incident_id FROM alerts WHERE id > ? ORDER BY id",
            [after],
        ).fetchall()
        for alert_id, fp, model, detector, signal, severity, event_ts, details, incident in rows:
            content = {
                "fingerprint": fp,
                "model": model,
                "detector": detector,
                "signal": signal,
                "severity": severity,
                "event_ts": event_ts,
                "details": orjson.loads(details),
                "incident_id": incident,
            }
            AuditLog.append(db, "alert", f"alert:{alert_id}", content, ts=ts)
        return len(rows)

    @staticmethod
    def head(db: sqlite_utils.Database) -> tuple[int, str]:
        """(id, hash) of the last row: an anchor to keep outside the store."""
        row = db.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
        return (0, GENESIS) if row is None else (int(row[0]), str(row[1]))

    @staticmethod
    def verify(db: sqlite_utils.Database, anchor: tuple[int, str] | None = None) -> Problem | None:
        """None when the chain is intact, else (row id, what is wrong) for the first bad row."""
        rows = db.execute(
            "SELECT id, ts, kind, subject, content, prev_hash, hash FROM audit ORDER BY id"
        )
        prev_id, prev_hash = 0, GENESIS
        before_prev_hash: str | None = None
        anchor_seen: str | None = None
        for row_id, ts, kind, subject, content, stored_prev, stored_hash in rows:
            own_ok = row_hash(stored_prev, row_id, ts, kind, subject, content) == stored_hash
            if row_id != prev_id + 1:
                missing = prev_id + 1
                return missing, f"row {missing} is missing: deleted (next row is {row_id})"
            if stored_prev != prev_hash:
                if stored_prev == before_prev_hash:
                    return prev_id, f"row {prev_id} was inserted: row {row_id} chains past it"
                if own_ok and prev_id > 0:
                    return prev_id, (
                        f"row {prev_id} was changed: row {row_id} recorded another hash for it"
                    )
                return row_id, (
                    f"row {row_id} does not chain to row {prev_id}: "
                    "it was changed or a row before it was deleted"
                )
            if not own_ok:
                return row_id, f"row {row_id} was changed: its content does not match its hash"
            if anchor is not None and row_id == anchor[0]:
                anchor_seen = stored_hash
            before_prev_hash, prev_id, prev_hash = prev_hash, row_id, stored_hash
        if anchor is not None:
            anchor_id, anchor_hash = anchor
            if anchor_id > prev_id:
                return prev_id + 1, f"rows {prev_id + 1} to {anchor_id} are missing: cut off"
            if anchor_id > 0 and anchor_seen != anchor_hash:
                return anchor_id, f"row {anchor_id} does not match the anchor: chain rewritten"
        return None
