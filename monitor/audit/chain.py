"""The hash-chained audit log: what was detected, decided and sent, tamper-evident.

Each row's hash covers the previous row's hash and the row's own id, time, kind,
subject and content, so changing, inserting or deleting a row breaks the chain
at that row. A row's ``scheme`` says how its hash is made: ``sha256`` (unkeyed,
what anyone can recompute) or ``hmac-sha256`` (keyed with the secret named by
``[audit] key_env``, which only its holders can recompute). Once a row is keyed,
every later row must be: the unkeyed rows before it, written before the key was
set, are sealed by the first keyed row's hash.

A chain alone cannot show that rows were cut off its end (or that the whole
chain was rewritten): keep ``AuditLog.head`` somewhere else and pass it to
``verify`` as the anchor to catch that too (see ``monitor.audit.verify``).
"""

from __future__ import annotations

import hashlib
import hmac
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import orjson
import sqlite_utils

from monitor.errors import DriftwardenError

KINDS = (
    "alert",
    "incident_transition",
    "notification",
    "config_load",
    "baseline_change",
    "silence",
)
GENESIS = "0" * 64
UNKEYED = "sha256"
KEYED = "hmac-sha256"
SCHEMES = (UNKEYED, KEYED)
MIN_KEY_CHARS = 16


Problem = tuple[int, str]
KeySource = bytes | None | Callable[[sqlite_utils.Database], bytes | None]

# The key each connection appends with. Kept in memory only: never in the store
# or a log line. A callable is asked at each append (given the connection), so a
# command that only reads never needs the key.
_KEYS: weakref.WeakKeyDictionary[sqlite_utils.Database, KeySource] = weakref.WeakKeyDictionary()


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


def row_hash(
    prev_hash: str,
    row_id: int,
    ts: float,
    kind: str,
    subject: str,
    content: str,
    key: bytes | None = None,
) -> str:
    """A row's hash: SHA-256 without a key, HMAC-SHA256 with one, over the same bytes."""
    canonical = orjson.dumps(
        {"content": content, "id": row_id, "kind": kind, "subject": subject, "ts": ts},
        option=orjson.OPT_SORT_KEYS,
    )
    message = prev_hash.encode() + canonical
    if key is None:
        return hashlib.sha256(message).hexdigest()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def key_from_env(key_env: str, environ: Mapping[str, str]) -> bytes | None:
    """The audit key held by the variable ``key_env`` names; None when it names none."""
    if not key_env:
        return None
    raw = environ.get(key_env, "").strip()
    if not raw:
        raise DriftwardenError(
            f"[audit] key_env names {key_env}, which is not set: export the audit key in it "
            '(or set key_env = "" for an unkeyed audit log)'
        )
    if len(raw) < MIN_KEY_CHARS:
        raise DriftwardenError(
            f"{key_env} holds {len(raw)} characters: an audit key needs at least "
            f"{MIN_KEY_CHARS} (e.g. the output of `openssl rand -hex 32`)"
        )
    return raw.encode()


def bind_key(db: sqlite_utils.Database, key: KeySource) -> None:
    """Append on this connection with ``key`` (or what the callable returns); None: unkeyed."""
    if key is None:
        _KEYS.pop(db, None)
    else:
        _KEYS[db] = key


def bound_key(db: sqlite_utils.Database) -> bytes | None:
    source = _KEYS.get(db)
    return source(db) if callable(source) else source


def check_key(db: sqlite_utils.Database, key: bytes | None, key_env: str = "") -> None:
    """Refuse to write to a keyed log without its key, or with another key.

    Compares ``key`` with the log's last keyed row: a writer with a wrong key
    would otherwise make every row it appends look forged.
    """
    row = db.execute(
        "SELECT id, ts, kind, subject, content, prev_hash, hash FROM audit "
        "WHERE scheme = ? ORDER BY id DESC LIMIT 1",
        [KEYED],
    ).fetchone()
    if row is None:
        return
    row_id, ts, kind, subject, content, prev_hash, stored = row
    if key is None:
        raise DriftwardenError(
            f"the audit log is keyed (row {row_id} has an HMAC): set [audit] key_env in the "
            "config to the variable holding its key, and export it"
        )
    if row_hash(prev_hash, row_id, ts, kind, subject, content, key) != stored:
        raise DriftwardenError(
            f"the audit key in {key_env or 'the environment'} does not match audit row {row_id}: "
            "another key, or the row was changed (`driftwarden audit verify` tells which)"
        )


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
        """Append one row inside the caller's transaction, keyed if ``bind_key`` gave a key."""
        if kind not in KINDS:
            raise ValueError(f"unknown audit kind {kind!r}: use one of {', '.join(KINDS)}")
        key = bound_key(db)
        # Take the write lock before reading the head, so two writers cannot both
        # chain onto the same row.
        db.execute("UPDATE audit SET id = id WHERE id = -1")
        head = db.execute("SELECT id, hash, scheme FROM audit ORDER BY id DESC LIMIT 1").fetchone()
        prev_id, prev_hash = (0, GENESIS) if head is None else (int(head[0]), str(head[1]))
        if key is None and head is not None and head[2] == KEYED:
            raise DriftwardenError(
                "the audit log is keyed: this command has no key to append with; give the "
                "config (--config FILE) whose [audit] key_env names it"
            )
        row_id = prev_id + 1
        stamp = time.time() if ts is None else float(ts)
        text = orjson.dumps(content, option=orjson.OPT_SORT_KEYS).decode()
        digest = row_hash(prev_hash, row_id, stamp, kind, subject, text, key)
        scheme = UNKEYED if key is None else KEYED
        db.execute(
            "INSERT INTO audit (id, ts, kind, subject, content, prev_hash, hash, scheme) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [row_id, stamp, kind, subject, text, prev_hash, digest, scheme],
        )
        return row_id

    @staticmethod
    def append_new_alerts(db: sqlite_utils.Database, ts: float | None = None) -> int:
        """Append an ``alert`` row per alert not yet logged; call in the alerts' transaction.

        The row records every column of the alert but its id (the subject has
        it), so ``audit verify`` can tell an alert edited in the ``alerts`` table.
        """
        last = db.execute(
            "SELECT subject FROM audit WHERE kind = 'alert' ORDER BY id DESC LIMIT 1"
        ).fetchone()
        after = int(last[0].removeprefix("alert:")) if last else 0
        rows = db.execute(
            "SELECT id, fingerprint, model, detector, signal, severity, event_ts, details, "
            "incident_id, created_at FROM alerts WHERE id > ? ORDER BY id",
            [after],
        ).fetchall()
        names = ("fingerprint", "model", "detector", "signal", "severity", "event_ts")
        for alert_id, *values, details, incident, created in rows:
            content = dict(zip(names, values, strict=True))
            content.update(details=orjson.loads(details), incident_id=incident, created_at=created)
            AuditLog.append(db, "alert", f"alert:{alert_id}", content, ts=ts)
        return len(rows)

    @staticmethod
    def head(db: sqlite_utils.Database) -> tuple[int, str]:
        """(id, hash) of the last row: an anchor to keep outside the store."""
        row = db.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
        return (0, GENESIS) if row is None else (int(row[0]), str(row[1]))

    @staticmethod
    def verify(
        db: sqlite_utils.Database,
        anchor: tuple[int, str] | None = None,
        key: bytes | None = None,
    ) -> Problem | None:
        """None when the chain is intact, else (row id, what is wrong) for the first bad row.

        Raises ``DriftwardenError`` when keyed rows could not be checked for want of the key.
        """
        from monitor.audit.verify import need_key, verify_chain

        report = verify_chain(db, key, anchor)
        if report.problem is None and report.unchecked_from is not None:
            raise need_key(report.unchecked_from)
        return report.problem
