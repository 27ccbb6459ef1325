"""The fetch process: Kafka fetching, record decoding and parsing, beside the consume loop.

kafka-python decodes every record in Python, and with JSON parsing that is
about half of what one event costs the daemon (issue 16). This process does
that work on a core of its own and hands the consume loop ``Fetched`` batches
over a socket, so the loop spends its core on the detectors.

It is a plain Kafka consumer of the partitions the loop tells it (``Assign``),
never a member of the group: the loop's own consumer stays the member, pauses
every partition it is given, and keeps rebalances, commits and checkpoints as
before. A position of None is left to this consumer, which shares the group id:
the group's committed offset, else ``auto_offset_reset``.

Started by ``monitor.daemon.fetch_process`` as ``python -m
monitor.daemon.fetch_child FD``, FD one end of a socket pair. It imports no
detector. It ends when the loop closes its end of the socket, or is gone.
"""

from __future__ import annotations

import collections
import logging
import pickle
import signal
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any
from zoneinfo import ZoneInfo

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from monitor.daemon import record_batches
from monitor.daemon.logs import setup_logging
from monitor.ingest.events import TimeBounds
from monitor.ingest.fetched import Fetched
from monitor.ingest.parse_runs import parse_runs

log = logging.getLogger("driftwarden.fetch")
# How long a poll waits for records: an assignment from the loop waits at most this.
POLL_MS = 100
# Records per batch handed over: the loop starts on a poll's first records while the
# rest are parsed, and a batch's objects stay a few MB.
BATCH_RECORDS = 2048
# Pickled batches parsed ahead of the loop, waiting to be written: at most this many
# bytes (a batch of 2,048 records of 20 features is ~0.4 MB), and one batch whatever
# its size. The loop takes batches in bursts (a window's close, a checkpoint): with four
# batches in hand the fetch process stopped in each burst and the loop then waited for
# it, a third of its time on 8 models over 2 partitions (issue 16; BENCHMARKS, eighth
# round). Memory stays bounded however far behind the stream is.
AHEAD_BYTES = 16 * 2**20
RETRY_SECONDS = 1.0


@dataclass(frozen=True)
class FetchSettings:
    """The consumer's keyword arguments and the daemon's event-time bounds, as plain values."""

    consumer: dict[str, Any]
    earliest_ts: float
    max_future_seconds: float
    default_time_zone: str
    log_level: str
    models: frozenset[str]  # the config's: only their rows form runs


@dataclass(frozen=True)
class Assign:
    """Read these partitions from these offsets (None: the group's committed offset), and
    tag what is read with ``epoch``."""

    epoch: int
    positions: dict[tuple[str, int], int | None]


@dataclass(frozen=True)
class FetchFailed:
    """The process cannot go on (its consumer could not be made): why, in one line."""

    reason: str


def serve(conn: Connection) -> None:
    settings: FetchSettings = conn.recv()
    setup_logging(settings.log_level)
    zone = ZoneInfo(settings.default_time_zone) if settings.default_time_zone else None
    try:
        consumer = KafkaConsumer(**settings.consumer)
    except KafkaError as exc:
        conn.send(FetchFailed(f"the fetch process could not reach Kafka: {exc}"))
        return
    decoder = "plain v2 batches here" if record_batches.install(consumer) else "kafka-python"
    log.info("fetch process started", extra={"records_decoded_by": decoder})
    outbox = Outbox(conn)
    epoch = -1
    try:
        while outbox.open:
            wait = 0.0 if consumer.assignment() else 0.5
            while conn.poll(wait):
                order: Assign = conn.recv()
                epoch = order.epoch
                _assign(consumer, order.positions)
                wait = 0.0
            if not consumer.assignment():
                continue
            try:
                polled = consumer.poll(timeout_ms=POLL_MS)
            except KafkaError as exc:  # the loop's own consumer reports the broker's state
                log.debug("fetch failed; retrying: %s", exc)
                time.sleep(RETRY_SECONDS)
                continue
            bounds = TimeBounds(
                settings.earliest_ts, time.time() + settings.max_future_seconds, zone
            )
            for tp, records in polled.items():
                highwater = consumer.highwater(tp)
                for start in range(0, len(records), BATCH_RECORDS):
                    part = records[start : start + BATCH_RECORDS]
                    fetched = parse_runs(
                        epoch, tp.topic, tp.partition, part, bounds, highwater, settings.models
                    )
                    outbox.put(fetched)
    finally:
        outbox.close()
        consumer.close(autocommit=False)


class Outbox:
    """Batches pickled here and written to the socket by a thread of their own, up to
    ``limit`` bytes of them waiting (``AHEAD_BYTES``): the process fetches and parses on
    while the loop is busy, instead of waiting for the loop to take each batch before
    the next. The write releases the GIL."""

    def __init__(self, conn: Connection, limit: int = AHEAD_BYTES) -> None:
        self._conn = conn
        self._limit = limit
        self._waiting: collections.deque[bytes | None] = collections.deque()
        self._bytes = 0  # of the batches waiting and the one being written
        self._changed = threading.Condition()
        self.open = True
        self._thread = threading.Thread(target=self._write, name="fetch-outbox", daemon=True)
        self._thread.start()

    def put(self, batch: Fetched) -> None:
        data = pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)
        with self._changed:
            # One batch goes however large: a loop that is gone takes nothing more.
            while self.open and self._bytes and self._bytes + len(data) > self._limit:
                self._changed.wait(0.5)
            if not self.open:
                return
            self._waiting.append(data)
            self._bytes += len(data)
            self._changed.notify_all()

    def close(self) -> None:
        """Write what waits, then stop (``put`` takes nothing more)."""
        with self._changed:
            self.open = False
            self._waiting.append(None)
            self._changed.notify_all()

    def _write(self) -> None:
        while True:
            with self._changed:
                while not self._waiting:
                    self._changed.wait()
                data = self._waiting.popleft()
            if data is None:
                return
            try:
                self._conn.send_bytes(data)
            except OSError:  # the loop closed its end: it is stopping, or gone
                with self._changed:
                    self.open = False
                    self._changed.notify_all()
                return
            with self._changed:
                self._bytes -= len(data)
                self._changed.notify_all()


def _assign(consumer: KafkaConsumer, positions: dict[tuple[str, int], int | None]) -> None:
    partitions = {TopicPartition(topic, part): at for (topic, part), at in positions.items()}
    consumer.assign(list(partitions))  # none: unsubscribes, and drops what was fetched
    for tp, at in partitions.items():
        if at is not None:
            consumer.seek(tp, at)


def main() -> None:
    # A terminal's Ctrl-C goes to the whole process group, and systemd's SIGTERM to the
    # whole control group: the loop stops this process, by closing its socket, once it
    # has stopped reading from it (a fetch process that ended first would look failed).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    conn = Connection(int(sys.argv[1]))
    try:
        serve(conn)
    except (EOFError, BrokenPipeError, ConnectionResetError):
        pass  # the consume loop is gone or stopping: nothing is owed to it
    finally:
        conn.close()


if __name__ == "__main__":
    main()
