"""The fetch process's record decoding gives exactly what kafka-python's gives.

``PlainPartitionRecords`` decodes plain v2 batches itself and hands anything
else to kafka-python. Compared here with kafka-python's own
``Fetcher.PartitionRecords`` on the same fetch buffers: the records, the
positions and figures it leaves behind, and the errors, for plain batches,
batches it must pass on (control, transactional, legacy), cut-short fetches,
and a few thousand random corruptions with and without CRC checks.
"""

from __future__ import annotations

import random
import struct
from typing import Any

import pytest
from kafka import TopicPartition
from kafka.consumer.fetcher import Fetcher
from kafka.record.default_records import DefaultRecordBatchBuilder
from kafka.record.legacy_records import LegacyRecordBatchBuilder
from kafka.record.memory_records import MemoryRecords
from kafka.record.util import calc_crc32c

from monitor.daemon import record_batches
from monitor.daemon.record_batches import PlainPartitionRecords, decode_fetch

TP = TopicPartition("events", 2)


def _batch(
    rng: random.Random,
    base: int,
    count: int,
    compression: int = 0,
    headers: bool = False,
) -> bytes:
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=compression,
        is_transactional=False,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=2**30,
    )
    for i in range(count):
        key = None if rng.random() < 0.3 else f"m{rng.randrange(5)}".encode()
        value = (
            None
            if rng.random() < 0.05
            else bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300)))
        )
        extra = [("trace", b"abc"), ("é", None)] if headers and rng.random() < 0.5 else []
        builder.append(
            i,
            timestamp=1_700_000_000_000 + rng.randrange(10**6),
            key=key,
            value=value,
            headers=extra,
        )
    built = bytearray(builder.build())
    struct.pack_into(">q", built, 0, base)
    struct.pack_into(">i", built, 12, rng.randrange(5))  # a leader epoch
    return bytes(built)


def _with_attributes(batch: bytes, bits: int) -> bytes:
    """``batch`` with attribute ``bits`` set and its CRC made right again."""
    out = bytearray(batch)
    (attributes,) = struct.unpack_from(">h", out, 21)
    struct.pack_into(">h", out, 21, attributes | bits)
    struct.pack_into(">I", out, 17, calc_crc32c(bytes(out[21:])))
    return bytes(out)


def _outcome(cls: Any, buffer: bytes, check_crcs: bool, fetch_offset: int = 0) -> tuple[Any, ...]:
    """What a fetch of ``buffer`` gives: the records of each take, then the error, if any,
    and the state left behind."""
    records = cls(fetch_offset, TP, MemoryRecords(buffer), check_crcs=check_crcs)
    taken: list[list[Any]] = []
    error = None
    try:
        while records:  # until drained, as kafka-python's fetcher takes them
            taken.append(records.take(7))
    except Exception as exc:  # kafka-python's own errors, compared by type and text
        error = (type(exc).__name__, str(exc))
    return (
        taken,
        error,
        records.next_fetch_offset,
        records.records_read,
        records.bytes_read,
        records.leader_epoch,
    )


def _same(buffer: bytes, check_crcs: bool = True, fetch_offset: int = 0) -> tuple[Any, ...]:
    ours = _outcome(PlainPartitionRecords, buffer, check_crcs, fetch_offset)
    theirs = _outcome(Fetcher.PartitionRecords, buffer, check_crcs, fetch_offset)
    assert ours == theirs
    return ours


@pytest.mark.parametrize("compression", [0, 1])  # none, gzip (others need libraries)
def test_plain_fetches_decode_as_kafka_python_decodes_them(compression: int) -> None:
    rng = random.Random(compression)
    buffer = b"".join(
        _batch(rng, base, count, compression, headers=True)
        for base, count in ((100, 40), (140, 1), (141, 0), (150, 25))
    )
    assert len(decode_fetch(buffer, True)) == 4  # taken here, not passed on
    taken, error, next_offset, read, *_ = _same(buffer)
    records = [r for part in taken for r in part]
    assert error is None and read == len(records) == 66
    assert next_offset == 175
    assert any(r.headers for r in records) and any(r.key is None for r in records)
    # A fetch that begins inside a batch skips the records before its offset.
    _same(buffer, fetch_offset=120)


def test_a_fetch_cut_short_leaves_its_last_batch_for_the_next_fetch() -> None:
    rng = random.Random(1)
    whole = _batch(rng, 0, 30) + _batch(rng, 30, 30)
    for cut in (len(whole) - 1, len(whole) - 200, len(whole) // 2 + 10, 11, 0):
        outcome = _same(whole[:cut])
        assert outcome[1] is None


def test_log_append_time_batches_take_the_batch_time() -> None:
    batch = _with_attributes(_batch(random.Random(2), 0, 20), 0x08)
    taken = _same(batch)[0]
    records = [r for part in taken for r in part]
    assert {r.timestamp_type for r in records} == {1}
    assert len({r.timestamp for r in records}) == 1


def test_control_transactional_and_legacy_batches_go_kafka_pythons_way() -> None:
    rng = random.Random(3)
    plain = _batch(rng, 0, 10)
    transactional = _with_attributes(_batch(rng, 10, 10), 0x10)
    legacy = LegacyRecordBatchBuilder(magic=1, compression_type=0, batch_size=2**20)
    for i in range(5):
        legacy.append(i, timestamp=1_700_000_000_000, key=None, value=b"v")
    for buffer in (plain + transactional, bytes(legacy.build())):
        with pytest.raises(record_batches.NotPlain):
            decode_fetch(buffer, True)
        _same(buffer)


def test_random_corruptions_give_what_kafka_python_gives() -> None:
    rng = random.Random(4)
    clean = _batch(rng, 0, 12, headers=True) + _batch(rng, 12, 12, compression=1)
    decoded_here = 0
    for trial in range(3000):
        buffer = bytearray(clean)
        for _ in range(rng.choice((1, 1, 2, 5))):
            buffer[rng.randrange(len(buffer))] = rng.randrange(256)
        check_crcs = trial % 2 == 0
        _same(bytes(buffer), check_crcs)
        try:
            decode_fetch(bytes(buffer), check_crcs)
            decoded_here += buffer != clean
        except record_batches.NotPlain:
            pass
    # Without CRC checks, a changed value byte still decodes: this path was compared too.
    assert decoded_here > 300


def test_installed_only_on_the_kafka_python_it_was_written_for() -> None:
    class Consumer:
        def __init__(self) -> None:
            self._fetcher = type("F", (), {"PartitionRecords": Fetcher.PartitionRecords})()

    consumer = Consumer()
    assert record_batches.install(consumer)
    assert consumer._fetcher.PartitionRecords is PlainPartitionRecords
    assert not record_batches.install(consumer)  # already replaced: left alone
    assert not record_batches.install(object())
