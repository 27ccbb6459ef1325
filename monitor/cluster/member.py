"""A daemon worker as a member of a cluster: its transactions, restores and partitions.

The daemon (``monitor.daemon.daemon``) calls in at a few points, and only in
cluster mode:

- ``saw``: which partition a poll's models came from (a model's state goes to
  the changelog partition of its records);
- ``checkpoint``: the checkpoint's SQLite writes, then one Kafka transaction
  with what they changed and the consumed offsets, then the SQLite commit;
- ``assigned`` / ``revoked`` / ``step``: new partitions are paused, their
  changelog restored step by step between polls, then they resume at the
  group's committed offsets; from then on ``step`` follows their changelog for
  the requests of `baseline reset` and `baseline set` (``requests``);
- ``recover``: after a transaction that failed (a fenced zombie, a broker
  gone), a new producer, and every partition restored again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from monitor.cluster import cache, publish, requests
from monitor.cluster.capture import ChangeCapture
from monitor.cluster.follow import ChangelogFollower
from monitor.cluster.restore import ChangelogRestore, Restored, apply
from monitor.cluster.settings import topics, transactional_id
from monitor.cluster.transaction import TransactionalProducer, TransactionFailed
from monitor.config import Config
from monitor.errors import DriftwardenError
from monitor.pipeline.checkpoint import CheckpointResult
from monitor.store.store import Store

log = logging.getLogger("driftwarden.cluster")
# How often a member tries again to open its changelog follower.
FOLLOW_RETRY_S = 5.0
# Every consumer of cluster mode sees committed transactions only.
CONSUMER_SETTINGS: dict[str, Any] = {"isolation_level": "read_committed"}


class ClusterMember:
    def __init__(self, config: Config, store: Store, consumer: KafkaConsumer, slot: int) -> None:
        kafka = config.kafka
        self.servers = kafka.bootstrap_servers
        self.group = kafka.group_id
        self.topics = topics(config.cluster, kafka.group_id)
        self.input_topic = kafka.topics[0]
        self.store = store
        self.consumer = consumer
        self.timeout_ms = config.cluster.transaction_timeout_ms
        with store.transaction() as db:
            cache.ensure_tables(db)
        self.capture = ChangeCapture(store.db)
        self.transactional_id = transactional_id(
            config.cluster, kafka.group_id, config.store.path, slot
        )
        self._check_topics()
        self.producer: TransactionalProducer | None = None
        self._open_producer()
        self.partition_of: dict[str, int] = {}
        self._moved_logged: set[str] = set()
        self.paused: set[TopicPartition] = set()
        self.restore: ChangelogRestore | None = None
        self.follower: ChangelogFollower | None = None
        # The partitions restored and not revoked since: the requests this member handles.
        self.held: set[int] = set()
        # Where following the changelog starts (a restore's end), until a follower opens.
        self._follow_from: dict[int, int] | None = None
        self._follow_tried = 0.0
        self._committed: dict[TopicPartition, int | None] = {}
        # Where a partition with no committed offset was first read from: after a failed
        # transaction it is read again from there (the fetch position is past the
        # records whose effects the failed checkpoint lost).
        self._first_position: dict[TopicPartition, int] = {}
        log.info(
            "cluster mode",
            extra={"transactional_id": self.transactional_id, "changelog": self.topics.changelog},
        )

    def _check_topics(self) -> None:
        wanted = len(self.consumer.partitions_for_topic(self.input_topic) or ())
        for name in (self.topics.changelog, self.topics.alerts, self.topics.quarantine):
            found = self.consumer.partitions_for_topic(name)
            if not found:
                raise DriftwardenError(
                    f"cluster mode: topic {name} does not exist: create it "
                    "(driftwarden cluster-topics --config FILE --create) or set its name in "
                    "[cluster]"
                )
        changelog = len(self.consumer.partitions_for_topic(self.topics.changelog) or ())
        if wanted and changelog != wanted:
            raise DriftwardenError(
                f"cluster mode: changelog topic {self.topics.changelog} has {changelog} "
                f"partitions and {self.input_topic} {wanted}: give it as many"
            )

    def _open_producer(self) -> bool:
        try:
            self.producer = TransactionalProducer(
                self.servers, self.transactional_id, self.timeout_ms
            )
            return True
        except KafkaError as exc:
            log.warning("cannot start the transactional producer", extra={"error": str(exc)})
            self.producer = None
            return False

    def saw(self, partition: int, models: Iterable[str]) -> None:
        for model in models:
            before = self.partition_of.get(model)
            if before is not None and before != partition and model not in self._moved_logged:
                self._moved_logged.add(model)
                log.error(
                    "a model's records come on two partitions; in cluster mode its state "
                    "follows the latest: key the records by model",
                    extra={"model": model, "partitions": [before, partition]},
                )
            self.partition_of[model] = partition

    def checkpoint(
        self, write: Callable[[], CheckpointResult], offsets: dict[tuple[str, int], int]
    ) -> CheckpointResult:
        """``write`` (the pipeline's checkpoint) and its Kafka transaction, then the SQLite
        commit; ``TransactionFailed`` rolls the SQLite transaction back."""
        if self.producer is None and not self._open_producer():
            raise TransactionFailed("no transactional producer (is the broker reachable?)")
        assert self.producer is not None
        with self.store.transaction() as db:
            result = write()
            finished = requests.finish(db, self.capture, self.topics.changelog, self.held)
            out = publish.outgoing(
                db, self.capture, self.topics, self.partition_of, result.history_before
            )
            out.records += finished
            consumed = {
                TopicPartition(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in offsets.items()
            }
            if not out.records and not consumed:
                return result
            group = self.consumer.group_metadata()
            if group.generation_id < 0 or not group.member_id:
                # Removed from the group (a session timeout) and not yet joined again: the
                # broker takes offsets sent without a generation as a non-member's and does
                # not fence them, so a woken zombie's transaction would commit beside the
                # partitions' new owner. Nothing goes out until the member has joined again.
                raise TransactionFailed("not a member of the group's current generation")
            try:
                self.producer.commit(out.records, consumed, group)
            except TransactionFailed:
                self.producer.close()
                self.producer = None
                raise
            if self.follower is not None:
                # Not past the records just written: a request may have come before them,
                # not yet read; the store holds all the changelog has below the follower.
                cache.set_changelog_offsets(db, self.topics.changelog, self.follower.safe())
        return result

    def assigned(self, partitions: Iterable[TopicPartition]) -> None:
        """Pause new partitions until their models' state is restored (by ``step``, from
        the poll loop: a rebalance callback must not wait on the network)."""
        fresh = set(partitions)
        if not fresh:
            return
        self.consumer.pause(*fresh)
        self.paused |= fresh
        self._stop_restore()
        self._stop_follower()

    def revoked(self, partitions: Iterable[TopicPartition]) -> None:
        gone = set(partitions)
        numbers = {tp.partition for tp in gone}
        self.paused -= gone
        self.held -= numbers
        moved = {model for model, partition in self.partition_of.items() if partition in numbers}
        for model in moved:
            del self.partition_of[model]
        with self.store.transaction():
            self.capture.forget(moved)
        self._stop_restore()
        self._stop_follower()

    def recover(self) -> None:
        """After a failed transaction: every partition held is restored again before
        it is read on, from its committed offset."""
        self._stop_restore()
        self.assigned(self.consumer.assignment())

    @property
    def restoring(self) -> bool:
        return bool(self.paused)

    def step(self) -> None:
        """Some restoring; when done, the partitions resume at their committed offsets."""
        if self.restore is None:
            if not self.paused:
                self._follow()
                return
            self._start_restore()
            if self.restore is None:
                return
        try:
            if not self.restore.step():
                return
            restored = self.restore.finish()
        except KafkaError as exc:
            log.warning("restoring the changelog failed; trying again", extra={"error": str(exc)})
            self._stop_restore()
            return
        self.restore = None
        self.held |= set(restored.partitions)
        self._arm_requests(restored=True)
        self._start_follower(restored)
        for tp in self.paused:
            committed = self._committed.get(tp)
            if committed is None:  # nothing committed yet: where it first started reading
                if tp not in self._first_position:
                    self._first_position[tp] = self.consumer.position(tp)
                committed = self._first_position[tp]
            self.consumer.seek(tp, committed)
        self.consumer.resume(*self.paused)
        log.info(
            "changelog restored",
            extra={
                "partitions": restored.partitions,
                "from_beginning": restored.full,
                "records": restored.records,
                "rows": restored.rows,
                "models": sorted(restored.models),
                "seconds": round(restored.seconds, 3),
                "refused": restored.refused,
            },
        )
        if restored.refused:
            log.error(
                "changelog records no daemon wrote were skipped: give only the daemons the "
                "right to write to the changelog topic",
                extra={"refused": restored.refused, "partitions": restored.partitions},
            )
        self.paused = set()

    def _start_restore(self) -> None:
        self._stop_restore()
        try:
            # The committed offsets first: a read_committed consumer's fetch waits out
            # transactions still completing, so every checkpoint they stand for is in the
            # changelog below the end offsets the restore takes next.
            self._committed = {tp: self.consumer.committed(tp) for tp in self.paused}
            self.restore = ChangelogRestore(
                self.servers,
                self.topics.changelog,
                sorted(tp.partition for tp in self.paused),
                self.store,
                self.capture,
                client_id=f"{self.transactional_id}-restore",
            )
        except (KafkaError, DriftwardenError) as exc:
            log.warning("cannot read the changelog yet", extra={"error": str(exc)})
            self.restore = None

    def _arm_requests(self, restored: bool = False) -> None:
        with self.store.transaction() as db:
            armed = requests.sync(db, self.held, restored)
        for model, partition in armed:
            records_on = self.partition_of.get(model)
            if records_on is not None and records_on != partition:
                # The command puts a request where Kafka's default partitioner puts a record
                # keyed by the model's name; these producers place the model elsewhere.
                log.error(
                    "a baseline request came on another partition than the model's records: "
                    "it waits there; key the records by the model's name with Kafka's "
                    "default partitioner (murmur2)",
                    extra={
                        "model": model,
                        "request_partition": partition,
                        "records_on": records_on,
                    },
                )

    def _start_follower(self, restored: Restored) -> None:
        """Follow the changelog of every partition held, from where the restore ended."""
        self._stop_follower()
        self._follow_from = restored.reached
        self._follow_tried = 0.0
        self._open_follower()

    def _open_follower(self) -> None:
        if self._follow_from is None or time.monotonic() - self._follow_tried < FOLLOW_RETRY_S:
            return
        self._follow_tried = time.monotonic()
        try:
            self.follower = ChangelogFollower(
                self.servers,
                self.topics.changelog,
                self._follow_from,
                client_id=f"{self.transactional_id}-follow",
            )
            self._follow_from = None
        except (KafkaError, DriftwardenError) as exc:  # requests wait; tried again soon
            log.warning("cannot follow the changelog yet", extra={"error": str(exc)})

    def _follow(self) -> None:
        """Requests read from the changelog since the last step, into the store, armed."""
        if self.follower is None:
            self._open_follower()
            return
        try:
            found = self.follower.step()
            if not found:
                return
            safe = self.follower.safe()
        except KafkaError as exc:  # the reader stays where it was, and tries again
            log.warning("following the changelog failed", extra={"error": str(exc)})
            return
        read = Restored(sorted(found))
        try:
            apply(self.store, self.capture, self.topics.changelog, found, safe, read)
        except ValueError as exc:  # a chunk missing: cannot happen within a transaction
            log.error(
                "a baseline request read from the changelog is incomplete; skipped",
                extra={"error": str(exc), "partitions": sorted(found)},
            )
            return
        if read.refused:
            log.error(
                "changelog records no daemon or baseline command wrote were skipped",
                extra={"refused": read.refused, "partitions": read.partitions},
            )
        self._arm_requests()

    def _stop_follower(self) -> None:
        self._follow_from = None
        if self.follower is not None:
            try:
                self.follower.close()
            except Exception as exc:  # a reader of no group: nothing to leave politely
                log.warning("closing the changelog follower failed", extra={"error": str(exc)})
            self.follower = None

    def _stop_restore(self) -> None:
        if self.restore is not None:
            try:
                self.restore.consumer.close(autocommit=False)
            except Exception as exc:  # a reader of no group: nothing to leave politely
                log.warning("closing the changelog reader failed", extra={"error": str(exc)})
            self.restore = None

    def close(self) -> None:
        self._stop_restore()
        self._stop_follower()
        if self.producer is not None:
            self.producer.close()
            self.producer = None
