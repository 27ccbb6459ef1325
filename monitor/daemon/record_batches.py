"""Kafka record batches decoded in a few steps per record, for the fetch process.

kafka-python turns each record of a fetch into a ``DefaultRecord`` through a
dozen property reads and calls, then into a ``ConsumerRecord``: ~7 µs a record
on these machines, most of the fetch process's time (issue 16). For a fetch
whose batches are all plain (message format v2, neither control batches nor
transactional, compressed with a codec kafka-python has, if at all), this
decodes the whole fetch here, one ``struct`` read per batch and one loop of
varints per record, and yields the same ``ConsumerRecord``\\ s kafka-python
would, with the same positions. Anything else, and anything that does not
decode cleanly (a bad CRC, a length that does not add up), goes kafka-python's
own way, which also raises its errors: this never decides that a fetch is bad.

It is installed on one consumer (``install``), the fetch process's, and only
for kafka-python 3.0.x, whose ``Fetcher.PartitionRecords`` it extends.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import kafka
from kafka.codec import gzip_decode, lz4_decode, snappy_decode, zstd_decode
from kafka.consumer.fetcher import ConsumerRecord, Fetcher
from kafka.record.util import calc_crc32c

# baseOffset, batchLength, partitionLeaderEpoch, magic, crc, attributes, lastOffsetDelta,
# baseTimestamp, maxTimestamp, producerId, producerEpoch, baseSequence, recordCount.
_HEADER = struct.Struct(">qiibIhiqqqhii")
HEADER_SIZE = _HEADER.size  # 61
LOG_OVERHEAD = 12  # baseOffset and batchLength: what batchLength does not count
ATTRIBUTES_OFFSET = 21  # where the CRC's bytes begin
_CODEC = 0x07
_LOG_APPEND_TIME = 0x08
_TRANSACTIONAL = 0x10
_CONTROL = 0x20
_new_record = tuple.__new__
_DECOMPRESS = {1: gzip_decode, 2: snappy_decode, 3: lz4_decode, 4: zstd_decode}

# offset, timestamp, timestamp type, key, value, headers, and the record's length as
# kafka-python counts it in its metrics (without the length's own varint)
Decoded = tuple[int, int, int, bytes | None, bytes | None, list[tuple[str, bytes | None]], int]


class NotPlain(Exception):
    """The fetch is not one this module decodes: kafka-python's own path takes it."""


def decode_fetch(
    buffer: bytes | bytearray | memoryview, check_crcs: bool
) -> list[tuple[int, int, list[Decoded]]]:
    """Every complete batch of a fetch as (leader epoch, next offset, records); a last
    batch cut short by the fetch's size limit is left out, as kafka-python leaves it.
    Raises ``NotPlain`` for anything but plain, well-formed v2 batches."""
    view = memoryview(buffer)
    batches = []
    pos, size = 0, len(view)
    while size - pos >= LOG_OVERHEAD:
        (length,) = struct.unpack_from(">i", view, pos + 8)
        end = pos + LOG_OVERHEAD + length
        if end > size:
            break  # cut short: the next fetch starts at it
        if length < HEADER_SIZE - LOG_OVERHEAD:
            raise NotPlain("a batch shorter than its header")
        (base, _, epoch, magic, crc, attributes, last_delta, first_ts, max_ts, *_, count) = (
            _HEADER.unpack_from(view, pos)
        )
        if magic != 2 or attributes & (_TRANSACTIONAL | _CONTROL) or count < 0:
            raise NotPlain("not a plain v2 batch")
        if check_crcs and calc_crc32c(view[pos + ATTRIBUTES_OFFSET : end]) != crc:
            raise NotPlain("CRC mismatch")
        body = view[pos + HEADER_SIZE : end]
        codec = attributes & _CODEC
        if codec:
            decompress = _DECOMPRESS.get(codec)
            if decompress is None:
                raise NotPlain("an unknown codec")
            try:
                body = memoryview(decompress(bytes(body)))
            except Exception as exc:  # a codec not installed, or data it refuses
                raise NotPlain(f"could not decompress: {exc}") from None
        append_time = max_ts if attributes & _LOG_APPEND_TIME else None
        records = _records(body, count, base, first_ts, append_time)
        batches.append((epoch, base + last_delta + 1, records))
        pos = end
    return batches


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """A zig-zag varint at ``pos``, and the position after it."""
    byte = buf[pos]
    if byte < 0x80:
        return (byte >> 1) ^ -(byte & 1), pos + 1
    value, shift = byte & 0x7F, 7
    while True:
        pos += 1
        byte = buf[pos]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return (value >> 1) ^ -(value & 1), pos + 1
        shift += 7
        if shift > 63:
            raise NotPlain("a varint longer than 64 bits")


def _records(
    buf: memoryview, count: int, base: int, first_ts: int, append_time: int | None
) -> list[Decoded]:
    kind = 0 if append_time is None else 1
    out: list[Decoded] = []
    append = out.append
    # Slices of bytes are bytes: one copy of the batch here instead of a memoryview and
    # a copy for every key and value.
    data = bytes(buf)
    pos, varint = 0, _varint
    try:
        for _ in range(count):
            # Each field's usual one- or two-byte varint is read inline: a call per field
            # was most of what a record cost.
            byte = data[pos]
            if byte < 0x80:
                length, pos = (byte >> 1) ^ -(byte & 1), pos + 1
            elif data[pos + 1] < 0x80:  # two bytes: a record under 8 kB
                byte = (byte & 0x7F) | data[pos + 1] << 7
                length, pos = (byte >> 1) ^ -(byte & 1), pos + 2
            else:
                length, pos = varint(data, pos)
            start = pos
            # The record's attributes, unused in format v2: read as kafka-python reads them.
            pos = pos + 1 if data[pos] < 0x80 else varint(data, pos)[1]
            byte = data[pos]
            if byte < 0x80:
                ts_delta, pos = (byte >> 1) ^ -(byte & 1), pos + 1
            else:
                ts_delta, pos = varint(data, pos)
            byte = data[pos]
            if byte < 0x80:
                offset_delta, pos = (byte >> 1) ^ -(byte & 1), pos + 1
            elif data[pos + 1] < 0x80:  # two bytes: offsets 64 to 8191 into the batch
                byte = (byte & 0x7F) | data[pos + 1] << 7
                offset_delta, pos = (byte >> 1) ^ -(byte & 1), pos + 2
            else:
                offset_delta, pos = varint(data, pos)
            byte = data[pos]
            if byte == 1:  # zig-zag -1: no key
                key, pos = None, pos + 1
            elif byte < 0x80 and not byte & 1:
                end = pos + 1 + (byte >> 1)
                key, pos = data[pos + 1 : end], end
            else:
                key, pos = _nullable_bytes(data, pos)
            byte = data[pos]
            if byte < 0x80 or not (byte & 1 or data[pos + 1] & 0x80):
                if byte < 0x80:
                    size, pos = (byte >> 1) ^ -(byte & 1), pos + 1
                else:  # two bytes, the second the last, the sign bit clear: under 8 kB
                    size, pos = ((byte & 0x7F) | data[pos + 1] << 7) >> 1, pos + 2
                if size < 0:
                    value = None
                else:
                    end = pos + size
                    value, pos = data[pos:end], end
            else:
                value, pos = _nullable_bytes(data, pos)
            headers: list[tuple[str, bytes | None]] = []
            if data[pos] == 0:  # no headers
                pos += 1
            else:
                header_count, pos = varint(data, pos)
                if header_count:
                    pos = _headers(data, pos, header_count, headers)
            if pos - start != length:
                raise NotPlain("a record's length does not match its fields")
            timestamp = first_ts + ts_delta if append_time is None else append_time
            append((base + offset_delta, timestamp, kind, key, value, headers, length))
    except (IndexError, UnicodeDecodeError):
        raise NotPlain("a record runs past its batch") from None
    if pos != len(data):
        raise NotPlain("bytes left after the batch's records")
    return out


def _nullable_bytes(buf: bytes, pos: int) -> tuple[bytes | None, int]:
    """A varint length and that many bytes (a negative length: None), and the position
    after them."""
    length, pos = _varint(buf, pos)
    if length < 0:
        return None, pos
    return bytes(buf[pos : pos + length]), pos + length


def _headers(buf: bytes, pos: int, count: int, into: list[tuple[str, bytes | None]]) -> int:
    if count < 0:
        raise NotPlain("a negative header count")
    for _ in range(count):
        key_len, pos = _varint(buf, pos)
        if key_len < 0:
            raise NotPlain("a header without a key")
        key = bytes(buf[pos : pos + key_len]).decode("utf-8")
        pos += key_len
        value, pos = _nullable_bytes(buf, pos)
        into.append((key, value))
    return pos


class PlainPartitionRecords(Fetcher.PartitionRecords):  # type: ignore[misc]
    """kafka-python's records of one partition's fetch, decoded here when they are plain."""

    def _unpack_records(
        self, tp: Any, records: Any, key_deserializer: Any, value_deserializer: Any
    ) -> Iterator[ConsumerRecord]:
        buffer = getattr(records, "_buffer", None)
        try:
            if key_deserializer is not None or value_deserializer is not None:
                raise NotPlain("deserializers")
            if not isinstance(buffer, bytes | bytearray | memoryview):
                raise NotPlain("no buffer")
            batches = decode_fetch(buffer, self.check_crcs)
        except NotPlain:
            yield from super()._unpack_records(tp, records, key_deserializer, value_deserializer)
            return
        topic, partition = tp.topic, tp.partition
        for epoch, _, decoded in batches:
            self.leader_epoch = epoch
            # The fetch's figures for kafka-python's metrics, a batch at a time.
            self.records_read += len(decoded)
            self.bytes_read += sum(record[6] for record in decoded)
            for offset, timestamp, kind, key, value, headers, _ in decoded:
                self.next_fetch_offset = offset + 1
                # tuple.__new__ in C: the namedtuple's own __new__ is a Python call
                yield _new_record(
                    ConsumerRecord,
                    (
                        topic,
                        partition,
                        epoch,
                        offset,
                        timestamp,
                        kind,
                        key,
                        value,
                        headers,
                        None,
                        -1 if key is None else len(key),
                        -1 if value is None else len(value),
                        -1 if not headers else _header_size(headers),
                    ),
                )
        if batches:
            # Format v2 keeps a batch's last offset even when compaction removed its record.
            self.next_fetch_offset = batches[-1][1]
        self.drain()


def _header_size(headers: list[tuple[str, bytes | None]]) -> int:
    if not headers:
        return -1
    return sum(len(k.encode("utf-8")) + (0 if v is None else len(v)) for k, v in headers)


def install(consumer: Any) -> bool:
    """Decode ``consumer``'s fetches here when they are plain; False (and nothing changed)
    if its kafka-python is not the one this was written for."""
    fetcher = getattr(consumer, "_fetcher", None)
    if not kafka.__version__.startswith("3.0.") or fetcher is None:
        return False
    if getattr(fetcher, "PartitionRecords", None) is not Fetcher.PartitionRecords:
        return False
    fetcher.PartitionRecords = PlainPartitionRecords
    return True
