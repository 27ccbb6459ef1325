"""Following the changelog after a restore, for the requests of `baseline reset`/`set`.

Once its partitions are restored, a member goes on reading their changelog
partitions (``read_committed``) from where the restore ended. Almost all it
reads is its own checkpoints' writes: they are dropped by the first bytes of
their key, unparsed. Records of requests (``requests.KEY_PREFIX``) are kept
until their row's key has come (a large sample's chunks come first, in the
same transaction, though a poll may end between them) and then handed over,
with their chunks, to be written into the store as a restore writes rows.

``safe`` is where a restore of each partition may read on from: the position
reached, or the first chunk still waiting for its row's key.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import orjson
from kafka import TopicPartition

from monitor.cluster.records import CHUNK_MARK
from monitor.cluster.requests import KEY_PREFIX
from monitor.cluster.restore import changelog_reader

# A changelog key [table, model, request id]; a chunk's has ["#", i] after it.
ROW_KEY_LENGTH = 3
# Chunks waiting for their row's key, per partition: a sample of several hundred MB is
# no request's (``baseline set`` samples at most ``reference_size`` events).
WAITING_BYTES = 256 * 1024 * 1024
log = logging.getLogger("driftwarden.cluster")


class ChangelogFollower:
    def __init__(
        self,
        bootstrap_servers: Sequence[str],
        topic: str,
        positions: dict[int, int],
        client_id: str,
        max_poll_records: int = 20_000,
    ) -> None:
        self.consumer = changelog_reader(bootstrap_servers, client_id, max_poll_records)
        self.tps = {p: TopicPartition(topic, p) for p in sorted(positions)}
        self.consumer.assign(list(self.tps.values()))
        for partition, offset in positions.items():
            self.consumer.seek(self.tps[partition], offset)
        # Per partition: chunks read whose row's key has not come yet, and their offsets.
        self.chunks: dict[int, dict[bytes, tuple[int, bytes]]] = {p: {} for p in positions}

    def step(self) -> dict[int, dict[bytes, bytes | None]]:
        """What a poll brought of requests: per partition, each row key read and the
        chunks of those rows (the latest value of each key), ready to be written."""
        found: dict[int, dict[bytes, bytes | None]] = {}
        for tp, records in self.consumer.poll(timeout_ms=0).items():
            waiting = self.chunks[tp.partition]
            rows: dict[bytes, bytes | None] = {}
            last_row = -1
            for record in records:
                key = record.key
                if key is None or not key.startswith(KEY_PREFIX):
                    continue  # a checkpoint's own write
                name = _name(key)
                if name is None:
                    continue  # no daemon's or command's: a restore counts it as refused
                if len(name) == ROW_KEY_LENGTH:
                    rows[key] = record.value
                    last_row = record.offset
                elif record.value is not None:  # a chunk's tombstone stands for nothing
                    waiting[key] = (record.offset, record.value)
            if rows:
                ready = {key: value for key, value in rows.items()}
                for key in list(waiting):
                    if _row_of(key) in rows:
                        ready[key] = waiting.pop(key)[1]
                found[tp.partition] = ready
            _drop_orphans(waiting, last_row, tp.partition)
        return found

    def safe(self) -> dict[int, int]:
        """Per partition, the offset below which the store holds all the changelog says."""
        reached = {p: self.consumer.position(tp) for p, tp in self.tps.items()}
        for partition, waiting in self.chunks.items():
            if waiting:
                first = min(offset for offset, _ in waiting.values())
                reached[partition] = min(reached[partition], first)
        return reached

    def close(self) -> None:
        self.consumer.close(autocommit=False)


def _drop_orphans(waiting: dict[bytes, tuple[int, bytes]], last_row: int, partition: int) -> None:
    """A request's chunks come just before its row's key, in one transaction: chunks older
    than a row key read since are no request's (nor are chunks past ``WAITING_BYTES``)."""
    orphans = [key for key, (offset, _) in waiting.items() if offset < last_row]
    if sum(len(value) for _, value in waiting.values()) > WAITING_BYTES:
        orphans = list(waiting)
    for key in orphans:
        del waiting[key]
    if orphans:
        log.error(
            "changelog chunks of no baseline request were dropped",
            extra={"partition": partition, "chunks": len(orphans)},
        )


def _row_of(chunk: bytes) -> bytes:
    """The row key of a chunk's key: ``[table, model, id, "#", i]`` → ``[table, model, id]``."""
    name = _name(chunk)
    if name is None or len(name) != ROW_KEY_LENGTH + 2 or name[ROW_KEY_LENGTH] != CHUNK_MARK:
        return b""
    return orjson.dumps(name[:ROW_KEY_LENGTH])


def _name(key: bytes) -> list[object] | None:
    """A changelog key as the list it encodes; None for a key that is not one."""
    try:
        name = orjson.loads(key)
    except orjson.JSONDecodeError:
        return None
    return name if isinstance(name, list) else None
