"""The store as a cache of the changelog: what it holds, and how far it has read.

Three tables of the store, written in the same SQLite transaction as the
rows they describe (by a checkpoint, after its Kafka transaction commits, or
by a restore):

- ``cluster_changelog``: per changelog partition, the offset up to which the
  store holds its content, and when (wall clock); a restore reads on from
  there, unless that is older than ``TRUSTED_SECONDS``: a compacted topic drops
  a tombstone ``delete.retention.ms`` (24 hours by default) after writing it,
  so a cache older than that could keep a row deleted meanwhile;
- ``cluster_models``: the partition each model's state lives on, so that a
  restore from the beginning can first drop what the store has of them;
- ``cluster_chunks``: rows that went out in chunks, and how many, so that a
  row which shrinks or goes has its stale chunks tombstoned;
- ``baseline_requests`` and ``cluster_armed``: the `baseline reset`/`baseline set`
  requests read from the changelog, and the store's own request each was turned
  into (``monitor.cluster.requests``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import sqlite_utils

# Half the broker's default delete.retention.ms: a cache this old is read afresh.
TRUSTED_SECONDS = 12 * 3600.0

TABLES = """
CREATE TABLE IF NOT EXISTS cluster_changelog (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    reached_at REAL NOT NULL,
    PRIMARY KEY (topic, partition)
);
CREATE TABLE IF NOT EXISTS cluster_models (
    model TEXT PRIMARY KEY,
    partition INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS cluster_chunks (
    key BLOB PRIMARY KEY,
    chunks INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS baseline_requests (
    model TEXT NOT NULL,
    request_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    partition INTEGER NOT NULL,
    requested_at REAL NOT NULL,
    requested_by TEXT NOT NULL,
    source TEXT NOT NULL DEFAULT '',
    sha256 TEXT NOT NULL DEFAULT '',
    rows_read INTEGER NOT NULL DEFAULT 0,
    sample_size INTEGER NOT NULL DEFAULT 0,
    sample BLOB NOT NULL DEFAULT X'',
    PRIMARY KEY (model, request_id)
);
CREATE TABLE IF NOT EXISTS cluster_armed (
    model TEXT NOT NULL,
    request_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    partition INTEGER NOT NULL,
    row_id INTEGER NOT NULL,
    PRIMARY KEY (model, request_id)
);
"""


def ensure_tables(db: sqlite_utils.Database) -> None:
    """Create the cache's tables; inside a transaction (``executescript`` would commit it)."""
    for statement in TABLES.split(";"):
        if statement.strip():
            db.execute(statement)


def changelog_offset(db: sqlite_utils.Database, topic: str, partition: int) -> int | None:
    """Where a restore of ``partition`` reads on from; None: from the beginning."""
    row = db.execute(
        "SELECT next_offset, reached_at FROM cluster_changelog WHERE topic = ? AND partition = ?",
        [topic, partition],
    ).fetchone()
    if row is None or time.time() - row[1] > TRUSTED_SECONDS:
        return None
    return int(row[0])


def set_changelog_offsets(db: sqlite_utils.Database, topic: str, reached: dict[int, int]) -> None:
    now = time.time()
    db.conn.executemany(
        "INSERT OR REPLACE INTO cluster_changelog (topic, partition, next_offset, reached_at) "
        "VALUES (?, ?, ?, ?)",
        [(topic, partition, offset, now) for partition, offset in reached.items()],
    )


def models_on(db: sqlite_utils.Database, partition: int) -> list[str]:
    rows = db.execute("SELECT model FROM cluster_models WHERE partition = ?", [partition])
    return [model for (model,) in rows.fetchall()]


def set_model_partitions(db: sqlite_utils.Database, placed: Iterable[tuple[str, int]]) -> None:
    db.conn.executemany(
        "INSERT OR REPLACE INTO cluster_models (model, partition) VALUES (?, ?)", list(placed)
    )


def all_chunks(db: sqlite_utils.Database) -> dict[bytes, int]:
    """Every row that went out in chunks, and how many (rows over 900 KB: few)."""
    return dict(db.execute("SELECT key, chunks FROM cluster_chunks").fetchall())


def set_chunks(db: sqlite_utils.Database, key: bytes, chunks: int) -> None:
    if chunks:
        db.execute(
            "INSERT OR REPLACE INTO cluster_chunks (key, chunks) VALUES (?, ?)", [key, chunks]
        )
    else:
        db.execute("DELETE FROM cluster_chunks WHERE key = ?", [key])
