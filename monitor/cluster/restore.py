"""Restore on assignment: the changelog of the partitions a worker is given, into its store.

A consumer of no group (``read_committed``: only what committed checkpoints
wrote) reads each changelog partition from the offset the store's cache
reached (``cache.changelog_offset``), or from the beginning when the store has
none, or one the topic no longer holds (compacted or deleted meanwhile; the
store's rows of that partition's models are then dropped first). It reads
until its position reaches the end offsets taken at the start: the last
stable offset, which counts the commit markers of transactions (each takes an
offset), so the last record's offset + 1 may never be reached, and the end is
the position, never the high watermark - 1.

``step`` reads for a short while and returns; the daemon keeps polling its
group consumer between steps (its partitions paused), so the group does not
take it for dead during a long restore. ``finish`` writes the latest value of
every key in one SQLite transaction.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from kafka import KafkaConsumer, TopicPartition

from monitor.cluster import cache
from monitor.cluster.capture import STATE_TABLES, ChangeCapture
from monitor.cluster.records import (
    REQUEST_TABLE,
    chunk_count,
    chunk_key,
    decode_row,
    joined,
    native_row,
)
from monitor.daemon.kafka_client import open_consumer
from monitor.store.store import Store

log = logging.getLogger("driftwarden.cluster")
STEP_MS = 200
# What a store column can hold; a row with anything else is not a daemon's.
SCALARS = (type(None), int, float, str, bytes)
# Chunks of 900 KB: far past any row; a count beyond is not a daemon's.
MAX_CHUNKS = 100_000


@dataclass
class Restored:
    partitions: list[int]
    records: int = 0
    rows: int = 0
    models: set[str] = field(default_factory=set)
    full: list[int] = field(default_factory=list)
    seconds: float = 0.0
    # Records no daemon wrote (a key or a row that does not decode): skipped.
    refused: int = 0
    # Per partition, the offset read up to: where following the changelog goes on.
    reached: dict[int, int] = field(default_factory=dict)


def changelog_reader(
    bootstrap_servers: Sequence[str], client_id: str, max_poll_records: int = 50_000
) -> KafkaConsumer:
    """A consumer of no group that sees committed transactions only, to be assigned
    changelog partitions (a restore's, or a follower's after it)."""
    return open_consumer(
        bootstrap_servers,
        group_id=None,
        client_id=client_id,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        max_poll_records=max_poll_records,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_wait_ms=100,
    )


class ChangelogRestore:
    def __init__(
        self,
        bootstrap_servers: Sequence[str],
        topic: str,
        partitions: Sequence[int],
        store: Store,
        capture: ChangeCapture,
        client_id: str,
    ) -> None:
        self.topic = topic
        self.store = store
        self.capture = capture
        self.started = time.monotonic()
        self.consumer = changelog_reader(bootstrap_servers, client_id)
        self.tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        self.consumer.assign(self.tps)
        beginning = self.consumer.beginning_offsets(self.tps)
        self.end: dict[TopicPartition, int] = self.consumer.end_offsets(self.tps)
        self.result = Restored(sorted(partitions))
        self.latest: dict[int, dict[bytes, bytes | None]] = {p: {} for p in partitions}
        for tp in self.tps:
            cached = cache.changelog_offset(store.db, topic, tp.partition)
            if cached is None or not beginning[tp] <= cached <= self.end[tp]:
                self.result.full.append(tp.partition)
                cached = beginning[tp]
            self.consumer.seek(tp, cached)

    def step(self) -> bool:
        """Read for up to ``STEP_MS``; True once every partition reached its end."""
        if self._reached():
            return True
        polled = self.consumer.poll(timeout_ms=STEP_MS)
        for tp, records in polled.items():
            latest = self.latest[tp.partition]
            for record in records:
                latest[record.key] = record.value
            self.result.records += len(records)
        return self._reached()

    def _reached(self) -> bool:
        return all(self.consumer.position(tp) >= self.end[tp] for tp in self.tps)

    def finish(self) -> Restored:
        """Write what was read into the store, with the offsets reached; close the reader."""
        reached = {tp.partition: self.consumer.position(tp) for tp in self.tps}
        self.result.reached = reached
        self.consumer.close(autocommit=False)
        apply(self.store, self.capture, self.topic, self.latest, reached, self.result)
        self.result.seconds = time.monotonic() - self.started
        return self.result


def apply(
    store: Store,
    capture: ChangeCapture,
    topic: str,
    latest: dict[int, dict[bytes, bytes | None]],
    reached: dict[int, int],
    result: Restored,
) -> None:
    """The latest value of each changelog key, per partition, into the store, in one
    transaction whose writes are not published again; ``result.full`` names partitions
    whose models' rows go first (their changelog was read from the beginning)."""
    keys = capture.keys
    with store.transaction() as db, capture.paused():
        info = {
            table: db.execute(f"PRAGMA main.table_info([{table}])").fetchall() for table in keys
        }
        columns = {table: {c[1] for c in described} for table, described in info.items()}
        # Columns a row must carry: NOT NULL without a default (cid, name, type, notnull,
        # default, pk).
        required = {
            table: {c[1] for c in described if c[3] and c[4] is None}
            for table, described in info.items()
        }
        for partition in result.full:
            for model in cache.models_on(db, partition):
                for table in STATE_TABLES:
                    db.execute(f"DELETE FROM [{table}] WHERE model = ?", [model])
        chunks = cache.all_chunks(db)
        for partition, values in latest.items():
            placed: set[str] = set()
            gone: dict[str, list[list[Any]]] = {table: [] for table in keys}
            # Rows by table and columns (a row written by an older or newer store than this
            # one has other columns: those this store lacks are dropped, its own defaulted).
            rows: dict[tuple[str, tuple[str, ...]], list[list[Any]]] = {}
            for key, value in values.items():
                name = _key_name(key)
                if name is None:
                    result.refused += 1
                    continue
                table, primary = name[0], name[1:]
                if table not in keys or len(primary) != len(keys[table]):
                    continue  # a chunk (read with its row), or a table this store lacks
                count = 0 if value is None else _chunk_count(value)
                if count is None:
                    result.refused += 1
                    continue
                if count != chunks.get(key, 0):
                    cache.set_chunks(db, key, count)
                if value is None:
                    gone[table].append(primary)
                    continue
                if count:
                    pieces = [values.get(chunk_key(table, primary, i)) for i in range(count)]
                    try:
                        value = joined(value, pieces)
                    except (ValueError, KeyError, TypeError):  # missing, stale or not chunks
                        result.refused += 1
                        continue
                row = _row(value)
                if (
                    row is None
                    or not _fits(row, primary, keys[table], required[table])
                    or (table == REQUEST_TABLE and not _request_fits(row, partition))
                ):
                    result.refused += 1
                    continue
                names = tuple(c for c in row if c in columns[table])
                rows.setdefault((table, names), []).append([row[c] for c in names])
                placed.add(primary[0])
            for table, primaries in gone.items():
                where = " AND ".join(f"[{c}] = ?" for c in keys[table])
                db.conn.executemany(f"DELETE FROM [{table}] WHERE {where}", primaries)
            for (table, names), values_in_order in rows.items():
                listed = ", ".join(f"[{c}]" for c in names)
                marks = ", ".join("?" * len(names))
                insert = f"INSERT OR REPLACE INTO [{table}] ({listed}) VALUES ({marks})"
                db.conn.executemany(insert, values_in_order)
                result.rows += len(values_in_order)
            cache.set_model_partitions(db, ((model, partition) for model in placed))
            result.models |= placed
        cache.set_changelog_offsets(db, topic, reached)


def _key_name(key: bytes | None) -> list[Any] | None:
    """A changelog key's ``[table, *primary key]``; None for a key no daemon wrote."""
    try:
        name = orjson.loads(key) if key is not None else None
    except orjson.JSONDecodeError:
        return None
    if not (isinstance(name, list) and name and all(isinstance(v, SCALARS) for v in name)):
        return None
    return name if isinstance(name[0], str) and all(isinstance(v, str) for v in name[1:2]) else None


def _row(value: bytes) -> dict[str, Any] | None:
    """A changelog row; None for a value no daemon wrote."""
    try:
        row = decode_row(value)
    except (orjson.JSONDecodeError, TypeError, ValueError, AttributeError):
        return None
    if not isinstance(row, dict):
        return None
    if not all(isinstance(c, str) and isinstance(v, SCALARS) for c, v in row.items()):
        return None
    return row


def _chunk_count(value: bytes) -> int | None:
    """How many chunks a row key's value stands for; None for a value no daemon wrote."""
    try:
        count = chunk_count(value)
    except (orjson.JSONDecodeError, TypeError, ValueError, KeyError):
        return None
    return count if 0 <= count <= MAX_CHUNKS else None


def _fits(row: dict[str, Any], primary: list[Any], key: Sequence[str], required: set[str]) -> bool:
    """Whether a row is its key's (its key columns hold the key's values) and carries
    every column its table requires."""
    wanted = native_row(dict(zip(key, primary, strict=True)))
    return all(row.get(c) == v for c, v in wanted.items()) and required <= row.keys()


def _request_fits(row: dict[str, Any], partition: int) -> bool:
    """A baseline request as ``driftwarden baseline`` writes it, on the partition it names
    (whoever holds that partition carries it out and tombstones it there)."""
    figures = (row.get("requested_at"), row.get("rows_read", 0), row.get("sample_size", 0))
    texts = (row.get("requested_by"), row.get("source", ""), row.get("sha256", ""))
    return (
        row.get("partition") == partition
        and row.get("kind") in ("reset", "set")
        and all(isinstance(f, int | float) and math.isfinite(f) for f in figures)
        and all(isinstance(t, str) for t in texts)
        and isinstance(row.get("sample", b""), bytes)
    )
