"""Rows of the store as Kafka records, and back: keys, values, chunks.

A changelog key is the JSON array ``[table, *primary key]``; its value the
row as a JSON object (bytes as ``{"$b": base64}``, infinities and NaN as
``{"$f": "inf"}``: JSON has neither), or no value at all (a tombstone) for a
row that is gone. A value longer than ``CHUNK_BYTES`` is cut into chunks
under keys ``[table, *primary key, "#", i]``; the row's own key then holds
``{"$chunks": n, "$sha256": ...}``, so the latest value of each key, all a
compacted topic keeps, still joins into the latest row.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

# Under a broker's default max.message.bytes (1 MB) with room for the key and headers.
CHUNK_BYTES = 900 * 1024
CHUNK_MARK = "#"
# The rows of `baseline reset`/`baseline set` requests (``monitor.cluster.requests``).
REQUEST_TABLE = "baseline_requests"


@dataclass(frozen=True)
class KafkaRecord:
    """One record to produce: ``partition`` None lets the producer pick by key."""

    topic: str
    key: bytes
    value: bytes | None
    partition: int | None = None


def row_key(table: str, primary_key: list[Any]) -> bytes:
    return orjson.dumps([table, *primary_key])


def chunk_key(table: str, primary_key: list[Any], index: int) -> bytes:
    return orjson.dumps([table, *primary_key, CHUNK_MARK, index])


def encode_row(row: Mapping[str, Any]) -> bytes:
    if any(type(v) is float and not math.isfinite(v) for v in row.values()):
        return orjson.dumps({column: _plain(value) for column, value in row.items()})
    return orjson.dumps(row, default=_bytes)  # the usual row: orjson calls back for bytes only


def _bytes(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"$b": base64.b64encode(value).decode()}
    raise TypeError(f"a store value of type {type(value).__name__} has no JSON form")


def decode_row(data: bytes) -> dict[str, Any]:
    return native_row(orjson.loads(data))


def native_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row as JSON carried it, with its bytes and non-finite numbers back."""
    return {column: _native(value) for column, value in row.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"$b": base64.b64encode(value).decode()}
    if isinstance(value, float) and not math.isfinite(value):
        return {"$f": repr(value)}
    return value


def _native(value: Any) -> Any:
    if isinstance(value, dict):
        if "$b" in value:
            return base64.b64decode(value["$b"])
        if "$f" in value:
            return float(value["$f"])
    return value


def chunked(value: bytes) -> tuple[bytes, list[bytes]]:
    """A value as the row key holds it, and its chunks (none when it fits whole)."""
    if len(value) <= CHUNK_BYTES:
        return value, []
    pieces = [value[i : i + CHUNK_BYTES] for i in range(0, len(value), CHUNK_BYTES)]
    head = orjson.dumps({"$chunks": len(pieces), "$sha256": hashlib.sha256(value).hexdigest()})
    return head, pieces


def state_records(
    topic: str,
    partition: int,
    table: str,
    primary_key: list[Any],
    value: bytes | None,
    chunks_before: int,
) -> list[KafkaRecord]:
    """A row's records on the changelog: its chunks, then its key (None: a tombstone), then
    tombstones for the chunks of its previous value (``chunks_before``) no longer used."""
    records = []
    pieces: list[bytes] = []
    head = None
    if value is not None:
        head, pieces = chunked(value)
        records += [
            KafkaRecord(topic, chunk_key(table, primary_key, i), piece, partition)
            for i, piece in enumerate(pieces)
        ]
    records.append(KafkaRecord(topic, row_key(table, primary_key), head, partition))
    records += [
        KafkaRecord(topic, chunk_key(table, primary_key, i), None, partition)
        for i in range(len(pieces), chunks_before)
    ]
    return records


def chunk_count(head: bytes) -> int:
    """How many chunks a row key's value stands for (0: it is the row itself)."""
    if not head.startswith(b'{"$chunks"'):
        return 0
    return int(orjson.loads(head)["$chunks"])


def joined(head: bytes, pieces: list[bytes | None]) -> bytes:
    """The value a chunked row key stands for; ``ValueError`` if a chunk is missing or stale."""
    expected = orjson.loads(head)
    if any(piece is None for piece in pieces):
        raise ValueError("a chunk of the row is missing from the changelog")
    value = b"".join(piece for piece in pieces if piece is not None)
    if hashlib.sha256(value).hexdigest() != expected["$sha256"]:
        raise ValueError("the row's chunks do not add up to the row (its checksum differs)")
    return value
