"""The SQLite store (CONTRACT §4): one file holding the truth.

Alerts, incidents, quarantined records, per-model detector state and the next
offset of each Kafka partition for each consumer group. A checkpoint
(``monitor.pipeline.checkpoint``) lands one unit of work in ONE transaction: a crash leaves
either all of it or none. A new store and its -wal and -shm files are readable
by their owner only (SQLite gives the journal files the store's own mode).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import sqlite_utils

from monitor.errors import DriftwardenError
from monitor.store import state_blobs
from monitor.store.errors import explain
from monitor.store.lease import StoreLease
from monitor.store.schema import ensure_schema

# How long a connection waits for another's write lock before "database is locked".
BUSY_TIMEOUT_MS = 10_000
# The consumer group under which `replay --topic` records where it read to: no
# daemon reads it, so a replay never moves a live group's offsets.
REPLAY_GROUP = "(replay)"


class StateLost(Exception):
    """A model's stored detector state cannot be read back (e.g. a blob of it is gone)."""


def connect_read_only(path: str | Path, hint: str = "") -> sqlite3.Connection:
    """A read-only connection to an existing store, or a one-line error saying what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise DriftwardenError(f"no such store: {path}{hint}")
    try:
        return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise explain(exc, path) from None


def fingerprint(model: str, detector: str, signal: str) -> str:
    """Stable hash of (model, detector, signal): the same problem, the same fingerprint."""
    digest = hashlib.sha256(f"{model}\x00{detector}\x00{signal}".encode())
    return digest.hexdigest()[:16]


@dataclass
class QuarantinedRecord:
    """A malformed record; ``raw`` may be cut short, ``raw_length`` and ``raw_sha256``
    describe the whole record (``None``: ``raw`` is whole)."""

    source: str
    reason: str
    raw: bytes
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    raw_length: int | None = None
    raw_sha256: str | None = None

    def bounded(self, limit: int) -> QuarantinedRecord:
        """This record keeping at most ``limit`` raw bytes, with the whole one's length and hash."""
        if self.raw_length is not None:
            return self
        return dataclasses.replace(
            self,
            raw=self.raw[:limit],
            raw_length=len(self.raw),
            raw_sha256=hashlib.sha256(self.raw).hexdigest(),
        )


@dataclass
class CheckpointRows:
    """The rows of a checkpoint the store writes itself, with ``Store.write_checkpoint``
    inside the checkpoint's transaction (``monitor.pipeline.checkpoint``)."""

    quarantined: list[QuarantinedRecord] = field(default_factory=list)
    model_states: dict[str, tuple[dict[str, Any], int]] = field(default_factory=dict)
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    # The consumer group the offsets belong to (``REPLAY_GROUP`` for a replay).
    group_id: str | None = None


class Store:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        # A lease (``monitor.store.lease``) handed over by whoever opened the
        # store for a command that owns it; released with the store.
        self.lease: StoreLease | None = None
        # Blob digests known to be in the file, per model: what a checkpoint may skip,
        # and what a model's dump may name instead of encoding (``stored_blobs``).
        self._blobs_written: dict[str, frozenset[str]] = {}
        # What the transaction under way leaves there; known once it commits.
        self._blobs_pending: dict[str, frozenset[str]] = {}
        if self.path.parent and not self.path.parent.exists():
            raise DriftwardenError(
                f"store {self.path}: folder {self.path.parent} does not exist; create it first"
            )
        _create_private(self.path)
        try:
            # The consumer's rebalance callbacks run on its IO thread; callers
            # serialise access, so the connection may cross threads.
            conn = sqlite3.connect(self.path, check_same_thread=False)
            self.db = sqlite_utils.Database(conn)
            self.db.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_MS)}")
            _switch_to_wal(conn)
            self.db.execute("PRAGMA synchronous=NORMAL")
            ensure_schema(self.db)
        except sqlite3.Error as exc:
            raise explain(exc, self.path) from None

    def close(self) -> None:
        self.db.close()
        if self.lease is not None:
            self.lease.release()
            self.lease = None

    @contextmanager
    def transaction(self) -> Iterator[sqlite_utils.Database]:
        """One write transaction that takes the lock first: other writers wait, never fail."""
        from monitor.audit.chain import write_transaction

        outermost = not self.db.conn.in_transaction
        try:
            with write_transaction(self.db):
                yield self.db
        finally:
            pending, self._blobs_pending = self._blobs_pending, {}
        if outermost:  # committed: the blobs it wrote are in the file
            self._blobs_written.update(pending)
        else:
            self._blobs_pending = pending

    def stored_blobs(self, model: str) -> frozenset[str]:
        """Digests of ``model``'s blobs the file holds, as far as this store wrote or read
        them: texts a dump for ``write_checkpoint`` may name instead of carrying."""
        return self._blobs_written.get(model, frozenset())

    def write_checkpoint(self, db: sqlite_utils.Database, checkpoint: CheckpointRows) -> None:
        """Write a checkpoint's rows; call inside ``transaction()``."""
        now = time.time()
        if checkpoint.quarantined:
            whole = [q.bounded(len(q.raw)) for q in checkpoint.quarantined]
            db.table("quarantine").insert_all(
                (
                    {
                        "source": q.source,
                        "topic": q.topic,
                        "partition": q.partition,
                        "offset": q.offset,
                        "reason": q.reason,
                        "raw": q.raw,
                        "created_at": now,
                        "raw_length": q.raw_length,
                        "raw_sha256": q.raw_sha256,
                    }
                    for q in whole
                ),
                batch_size=500,
            )
        for model, (state, events) in checkpoint.model_states.items():
            blobs: dict[str, str] = {}
            # Forgotten until the transaction commits: a rollback leaves the file as it was.
            known = self._blobs_written.pop(model, frozenset())
            skeleton, referred = state_blobs.split_blobs(state, blobs, known)
            if referred != known:
                new = [(model, d, data) for d, data in blobs.items() if d not in known]
                db.conn.executemany(
                    "INSERT OR IGNORE INTO state_blobs (model, digest, data) VALUES (?, ?, ?)", new
                )
                # A new baseline replaces the old one: drop blobs nothing refers to.
                marks = ",".join("?" * len(referred))
                db.execute(
                    f"DELETE FROM state_blobs WHERE model = ? AND digest NOT IN ({marks})",
                    [model, *referred],
                )
            self._blobs_pending[model] = frozenset(referred)
            db.execute(
                "INSERT OR REPLACE INTO model_state (model, state, events, updated_at) "
                "VALUES (?, ?, ?, ?)",
                [model, orjson.dumps(skeleton), events, now],
            )
        if checkpoint.offsets and checkpoint.group_id is None:
            raise ValueError("a checkpoint with offsets must name their consumer group")
        for (topic, partition), next_offset in checkpoint.offsets.items():
            db.execute(
                "INSERT OR REPLACE INTO offsets "
                "(group_id, topic, partition, next_offset, updated_at) VALUES (?, ?, ?, ?, ?)",
                [checkpoint.group_id, topic, partition, next_offset, now],
            )

    def delete_model_state(self, db: sqlite_utils.Database, model: str) -> None:
        """Drop a model's detector state and its blobs; call inside ``transaction()``."""
        db.execute("DELETE FROM model_state WHERE model = ?", [model])
        db.execute("DELETE FROM state_blobs WHERE model = ?", [model])
        self._blobs_written.pop(model, None)
        self._blobs_pending.pop(model, None)

    def load_model_state(self, model: str) -> tuple[dict[str, Any], int] | None:
        """A model's detector state and event count; raises ``StateLost`` if it is unreadable."""
        with self._snapshot():  # the state and its blobs as one checkpoint left them
            row = self.db.execute(
                "SELECT state, events FROM model_state WHERE model = ?", [model]
            ).fetchone()
            if row is None:
                self._blobs_written.pop(model, None)
                return None
            blobs = dict(
                self.db.execute(
                    "SELECT digest, data FROM state_blobs WHERE model = ?", [model]
                ).fetchall()
            )
        self._blobs_written[model] = frozenset(blobs)
        try:
            return state_blobs.join_blobs(orjson.loads(row[0]), blobs), int(row[1])
        except KeyError as exc:
            raise StateLost(
                f"its state refers to blob {exc.args[0]}, missing from state_blobs"
            ) from None
        except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
            raise StateLost(f"its state is unreadable: {exc}") from None

    @contextmanager
    def _snapshot(self) -> Iterator[None]:
        """Reads that see one committed state of the file, not two checkpoints' halves."""
        if self.db.conn.in_transaction:
            yield
            return
        self.db.execute("BEGIN")
        try:
            yield
        finally:
            if self.db.conn.in_transaction:
                self.db.execute("COMMIT")

    def stored_offsets(self, group_id: str) -> dict[tuple[str, int], int]:
        """The next offset of each partition, as checkpointed by consumer group ``group_id``."""
        rows = self.db.execute(
            "SELECT topic, partition, next_offset FROM offsets WHERE group_id = ?", [group_id]
        ).fetchall()
        return {(topic, partition): offset for topic, partition, offset in rows}

    def claim_legacy_offsets(self, group_id: str) -> int:
        """Take offsets stored without a group as ``group_id``'s, unless it has its own."""
        legacy = "SELECT 1 FROM offsets WHERE group_id = '' LIMIT 1"
        if self.db.execute(legacy).fetchone() is None:
            return 0  # the usual case: a read, without taking the write lock
        with self.transaction() as db:
            own = db.execute("SELECT 1 FROM offsets WHERE group_id = ? LIMIT 1", [group_id])
            if own.fetchone() is not None:
                return 0
            cursor = db.execute("UPDATE offsets SET group_id = ? WHERE group_id = ''", [group_id])
            return int(cursor.rowcount)

    def count(self, table: str) -> int:
        return int(self.db.execute(f"SELECT count(*) FROM [{table}]").fetchone()[0])

    def alerts(self) -> list[dict[str, Any]]:
        """Alerts in a stable order, without ``id`` and ``created_at``: what replays compare."""
        rows = self.db.execute(
            "SELECT fingerprint, model, detector, signal, severity, event_ts, details "
            "FROM alerts ORDER BY model, event_ts, detector, signal, id"
        ).fetchall()
        keys = ("fingerprint", "model", "detector", "signal", "severity", "event_ts", "details")
        return [dict(zip(keys, row, strict=True)) for row in rows]


def _switch_to_wal(conn: sqlite3.Connection) -> None:
    """Put the store in WAL mode, waiting out another process doing the same.

    Two processes opening a new, empty store at once (the daemon starting, a
    command or a probe reading it) both switch its journal mode; SQLite answers
    the loser "database is locked" at once, without its busy handler, so the
    wait is here, for as long as any other lock.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _create_private(path: Path) -> None:
    """Create a missing store file readable by its owner only (0600, whatever the umask).

    SQLite gives the -wal and -shm files the mode of the store file. An existing
    store keeps the mode its owner gave it.
    """
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    except FileExistsError:
        pass
    except OSError as exc:
        raise DriftwardenError(f"store {path}: cannot create it: {exc.strerror}") from None
