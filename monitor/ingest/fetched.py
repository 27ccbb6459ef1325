"""One poll's records of one partition, parsed: what the consume loop feeds its pipeline.

The daemon's fetch process (``monitor.daemon.fetch_child``) parses the records it
fetches into a ``Fetched`` batch and hands it to the consume loop; in cluster
mode the loop parses its own polls the same way. Either way the same function
parses, so both paths make the same rows, events and quarantine reasons.

Only what the loop needs crosses the process boundary: the parsed records, and
for the malformed ones alone (quarantine, dead letters) their offset, value and
key. This module stays light: the fetch process imports it, and nothing of the
detectors.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from monitor.ingest.events import Event, Malformed, Row, TimeBounds, parse_record
from monitor.ingest.row_runs import RowRun

Parsed = Row | Event | Malformed


class KafkaRecord(Protocol):
    """What a kafka-python ``ConsumerRecord`` gives this module."""

    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


@dataclass(frozen=True)
class BadRecord:
    """A malformed record as it came: what a quarantine and a dead-letter topic keep."""

    offset: int
    value: bytes
    key: bytes | None

    @classmethod
    def of(cls, record: KafkaRecord) -> BadRecord:
        """The record as kept (a value that is not bytes, a tombstone's None, as empty)."""
        value = record.value
        return cls(record.offset, value if isinstance(value, bytes) else b"", record.key)


@dataclass(slots=True)
class Fetched:
    """``parsed`` in offset order, ``bad`` one per ``Malformed`` among them, in order.

    ``epoch`` is the assignment the fetch belongs to: a batch of an earlier one
    (fetched before a rebalance) is dropped, its records read again from the
    checkpoint's offsets by whoever holds the partition now.
    """

    epoch: int
    topic: str
    partition: int
    last_offset: int
    highwater: int | None
    parsed: list[Parsed | RowRun] = field(default_factory=list)
    bad: list[BadRecord] = field(default_factory=list)
    records: int = 0  # records read: ``parsed`` holds fewer items once rows form runs


def parse_records(
    epoch: int,
    topic: str,
    partition: int,
    records: Iterable[KafkaRecord],
    bounds: TimeBounds,
    highwater: int | None,
) -> Fetched:
    """Parse a poll's records of one partition (at least one); a record without its own
    ``ts`` takes its Kafka timestamp."""
    parsed: list[Parsed | RowRun] = []
    bad: list[BadRecord] = []
    append = parsed.append
    last = -1
    for record in records:
        value = record.value
        result = parse_record(value, record.timestamp / 1000.0, bounds)  # type: ignore[arg-type]
        append(result)
        last = record.offset
        if type(result) is Malformed:
            bad.append(BadRecord.of(record))
    return Fetched(epoch, topic, partition, last, highwater, parsed, bad, len(parsed))
