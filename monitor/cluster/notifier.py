"""``driftwarden notify``: the alerts topic into incidents, notifications and the audit log.

One process per consumer group of workers (a consumer group of its own,
``<group_id>-notify``). It reads the alerts topic (``read_committed``: only
what workers' committed checkpoints wrote), and applies each model's
checkpoint to its own store (``incoming``): signal states, alerts filed under
incidents, performance windows, audit rows, outbox rows for the webhooks,
with the alerts topic's offsets, in ONE SQLite transaction per poll, as the
single-machine daemon does. A crash re-reads from the offsets in its store;
a lost store is rebuilt from the topic's beginning. Webhooks go out from the
outbox (``monitor.notify.delivery``), Alertmanager pushes from the signal
states (``start_store_readers``), repeats and CLI changes every 30 s.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import threading
import time
from types import FrameType

import sqlite_utils
from kafka import TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import KafkaError

from monitor import early_signals
from monitor.audit import chain as audit
from monitor.cli.safe_text import printable
from monitor.cluster import deliveries, incoming
from monitor.cluster.deliveries import DeliveryLog
from monitor.cluster.settings import topics
from monitor.config import Config
from monitor.daemon.kafka_client import open_consumer
from monitor.incidents.grouping import AlertPolicy
from monitor.notify.delivery import DeliveryWorker
from monitor.notify.policy import NotificationPolicy
from monitor.notify.targets import WebhookTarget
from monitor.store.store import QuarantinedRecord, Store

log = logging.getLogger("driftwarden.notify")
SWEEP_SECONDS = 30.0
# A refused record's reason quotes what it held: bounded, escaped.
REASON_LIMIT = 300
NOTIFIED_TABLE = """CREATE TABLE IF NOT EXISTS cluster_notified (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, model TEXT NOT NULL,
    next_offset INTEGER NOT NULL, PRIMARY KEY (topic, partition, model))"""


def worker_config(config: Config) -> Config:
    """A cluster-mode worker's config: it never notifies (``driftwarden notify`` does, once
    for the whole group, where every worker would send each notification again)."""
    if not config.cluster.enabled or not (config.webhooks or config.alertmanagers):
        return config
    log.info("cluster mode: notifications are sent by `driftwarden notify`, not by workers")
    return dataclasses.replace(config, webhooks=[], alertmanagers=[])


def notify_group(config: Config) -> str:
    return f"{config.kafka.group_id}-notify"


class Notifier:
    def __init__(self, config: Config, store: Store, targets: list[WebhookTarget]) -> None:
        self.config = config
        self.store = store
        self.group = notify_group(config)
        cluster_topics = topics(config.cluster, config.kafka.group_id)
        self.topic = cluster_topics.alerts
        self.policy = AlertPolicy(tuple(config.alerting.group_by))
        self.models = frozenset(m.name for m in config.models)
        self.notifications = NotificationPolicy.for_config(config)
        key = audit.key_from_env(config.audit.key_env, os.environ)
        audit.bind_key(store.db, key)
        with store.transaction() as db:
            audit.check_key(db, key, config.audit.key_env)
        self.delivery = DeliveryWorker.for_config(config, targets, key)
        # Parts of a model's checkpoint seen so far, and where its first part was.
        self._parts: dict[str, list[bytes]] = {}
        self._first: dict[str, tuple[TopicPartition, int]] = {}
        # Per partition and model, the offset after its last checkpoint applied: the
        # partition's offset stops at an incomplete checkpoint, other models' go on.
        self._done: dict[tuple[TopicPartition, str], int] = {}
        self.deliveries = DeliveryLog(
            config.kafka.bootstrap_servers, cluster_topics.deliveries, self.group
        )
        with store.transaction() as db:
            db.execute(NOTIFIED_TABLE)
            db.execute(deliveries.TABLE)
            finished = self.deliveries.load(db)
            settled = deliveries.settle(db, time.time())
        log.info(
            "deliveries topic read",
            extra={"topic": cluster_topics.deliveries, "finished": finished, "settled": settled},
        )
        if self.delivery is not None:
            self.delivery.on_finished = self.deliveries.finished
        self.consumer = open_consumer(
            config.kafka.bootstrap_servers,
            group_id=self.group,
            client_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            session_timeout_ms=config.kafka.session_timeout_ms,
        )
        self.consumer.subscribe([self.topic], listener=_SeekToStored(self))

    def run(self, stop: threading.Event) -> None:
        if self.delivery is not None:
            self.delivery.start()
        last_sweep = time.monotonic()
        try:
            while not stop.is_set():
                try:
                    polled = self.consumer.poll(timeout_ms=500)
                except KafkaError as exc:  # an outage: the store holds where to go on from
                    log.warning("poll failed; retrying", extra={"error": str(exc)})
                    stop.wait(1.0)
                    continue
                if polled:
                    self._apply(polled)
                if time.monotonic() - last_sweep >= SWEEP_SECONDS:
                    last_sweep = time.monotonic()
                    self._sweep()
        finally:
            if self.delivery is not None:
                self.delivery.close()
            self.deliveries.close()  # after the worker: its last notes go out
            self.consumer.close(autocommit=False, timeout_ms=5000)

    def _apply(self, polled: dict[TopicPartition, list]) -> None:  # type: ignore[type-arg]
        """One transaction: every model checkpoint completed by this poll, and the offsets
        up to (not past) the first part of one still incomplete."""
        with self.store.transaction() as db:
            now = time.time()
            reached: dict[TopicPartition, int] = {}
            for tp, records in polled.items():
                for record in records:
                    model = record.key.decode(errors="replace") if record.key else ""
                    reached[tp] = record.offset + 1
                    if record.offset < self._done.get((tp, model), 0):
                        continue  # applied before a restart, with a model still incomplete
                    try:
                        number, count = incoming.part_number(record.value, model, self.models)
                        if number and len(self._parts.get(model, ())) != number:
                            raise incoming.RefusedRecord(f"part {number} without the ones before")
                        held = sum(len(v) for v in self._parts.get(model, ())) if number else 0
                        if held + len(record.value or b"") > incoming.MAX_PENDING_BYTES:
                            self._parts.pop(model, None)
                            self._first.pop(model, None)
                            raise incoming.RefusedRecord("its parts add up to over 256 MB")
                    except incoming.RefusedRecord as exc:
                        self._refuse(db, tp, record.offset, record.value, str(exc), now)
                        continue
                    if number == 0:
                        self._parts[model] = []
                        self._first[model] = (tp, record.offset)
                    self._parts[model].append(record.value)
                    if len(self._parts[model]) == count:
                        first = self._first.pop(model)
                        self._apply_whole(db, model, first, self._parts.pop(model), now)
                        self._done[tp, model] = record.offset + 1
                        db.execute(
                            "INSERT OR REPLACE INTO cluster_notified VALUES (?, ?, ?, ?)",
                            [tp.topic, tp.partition, model, record.offset + 1],
                        )
            for tp in reached:
                waiting = [o for t, o in self._first.values() if t == tp]
                next_offset = min([reached[tp], *waiting])
                db.execute(
                    "INSERT OR REPLACE INTO offsets "
                    "(group_id, topic, partition, next_offset, updated_at) VALUES (?, ?, ?, ?, ?)",
                    [self.group, tp.topic, tp.partition, next_offset, now],
                )
            if self.notifications is not None:
                self.notifications.enqueue_changes(db, now)
                deliveries.settle(db, now)
        if self.delivery is not None:
            self.delivery.wake()

    def _apply_whole(
        self,
        db: sqlite_utils.Database,
        model: str,
        first: tuple[TopicPartition, int],
        parts: list[bytes],
        now: float,
    ) -> None:
        """One model's checkpoint, or nothing of it and a quarantined record if its rows
        are not a worker's (a savepoint: a record that fails half-way leaves nothing)."""
        try:
            with self.store.transaction():
                incoming.apply(db, incoming.merged(parts), self.policy, now)
        except incoming.MALFORMED as exc:
            reason = f"its rows are not a checkpoint's: {type(exc).__name__}: {exc}"
            self._refuse(db, first[0], first[1], b"\n".join(parts), reason, now)

    def _refuse(
        self,
        db: sqlite_utils.Database,
        tp: TopicPartition,
        offset: int,
        raw: bytes | None,
        reason: str,
        now: float,
    ) -> None:
        """Quarantine a record of the alerts topic that no worker wrote; the topic goes on."""
        reason = printable(reason, REASON_LIMIT)
        log.warning(
            "alerts topic record refused",
            extra={"partition": tp.partition, "offset": offset, "reason": reason},
        )
        refused = QuarantinedRecord(
            source="alerts_topic",
            reason=reason,
            raw=raw or b"",
            topic=tp.topic,
            partition=tp.partition,
            offset=offset,
        ).bounded(self.config.limits.quarantine_raw_bytes)
        db.table("quarantine").insert(
            {
                "source": refused.source,
                "topic": refused.topic,
                "partition": refused.partition,
                "offset": refused.offset,
                "reason": refused.reason,
                "raw": refused.raw,
                "created_at": now,
                "raw_length": refused.raw_length,
                "raw_sha256": refused.raw_sha256,
            }
        )

    def _sweep(self) -> None:
        if self.notifications is not None:
            with self.store.transaction() as db:
                now = time.time()
                self.notifications.enqueue_changes(db, now)
                deliveries.settle(db, now)
        if self.delivery is not None:
            self.delivery.wake()

    def seek_to_stored(self, partitions: set[TopicPartition]) -> None:
        stored = self.store.stored_offsets(self.group)
        self._parts, self._first = {}, {}
        rows = self.store.db.execute("SELECT * FROM cluster_notified").fetchall()
        self._done = {(TopicPartition(t, p), m): o for t, p, m, o in rows}
        for tp in partitions:
            offset = stored.get((tp.topic, tp.partition))
            if offset is not None:
                self.consumer.seek(tp, offset)
        log.info(
            "alerts topic assigned", extra={"partitions": sorted(tp.partition for tp in partitions)}
        )


class _SeekToStored(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        pass  # every poll's work is in the store already

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.notifier.seek_to_stored(assigned)


def run_notify(config: Config, targets: list[WebhookTarget]) -> int:
    """``driftwarden notify`` until SIGTERM or SIGINT; exit 0. Store errors end it (exit 2)."""
    from monitor.daemon.alert_log import start_store_readers
    from monitor.daemon.logs import setup_logging
    from monitor.store.errors import ending_on_store_errors
    from monitor.store.lease import StoreLease

    setup_logging(config.ops.log_level)
    path = config.store.path
    lease = StoreLease.shared(path, "driftwarden notify", notify_group(config))
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", extra={"signal": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    early = early_signals.first_noted()
    if early is not None:  # it came while the command was starting
        on_signal(early, None)
    try:
        with ending_on_store_errors(path, log):
            store = Store(path)
            try:
                notifier = Notifier(config, store, targets)
                stop_readers = start_store_readers(config)  # alert log lines, Alertmanager
                log.info("started", extra={"store": path, "topic": notifier.topic})
                try:
                    notifier.run(stop)
                finally:
                    stop_readers()
            finally:
                store.close()
    finally:
        lease.release()
    log.info("stopped")
    return 0
