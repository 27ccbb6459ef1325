"""``driftwarden run``: a Kafka consumer group feeding the per-model pipeline.

Exactly-once effects over an at-least-once stream: every checkpoint
(``monitor.pipeline.checkpoint``) writes alerts, incidents, quarantined
records, detector state and the next offset of each partition in ONE SQLite
transaction; Kafka commits follow, best effort. On
(re)assignment the consumer seeks to the offsets in SQLite, so after a crash
the records since the last checkpoint are read again and their effects, which
never landed, are made exactly once. In cluster mode (``monitor.cluster``) a
checkpoint is a Kafka transaction carrying its effects and offsets, committed
before the SQLite transaction: Kafka holds the truth, the store is a cache.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

from kafka import KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from monitor.audit import chain as audit
from monitor.cluster.member import CONSUMER_SETTINGS as CLUSTER_CONSUMER
from monitor.cluster.member import ClusterMember
from monitor.cluster.transaction import TransactionFailed
from monitor.config import Config
from monitor.daemon.fetch_process import FetchProcess, FetchProcessGone
from monitor.daemon.kafka_client import CONNECT_TIMEOUT_MS, open_consumer
from monitor.daemon.ops import DaemonMetrics
from monitor.daemon.poll_idle import PollIdle
from monitor.daemon.rebalance import DaemonStatus, Rebalance, partition_names
from monitor.ingest.events import Malformed
from monitor.ingest.fetched import Fetched, parse_records
from monitor.ingest.row_runs import RowRun
from monitor.notify.delivery import DeliveryWorker
from monitor.notify.outbox import WebhookOutbox
from monitor.notify.policy import NotificationPolicy
from monitor.notify.targets import WebhookTarget
from monitor.pipeline.checkpoint import Checkpoint, CheckpointResult
from monitor.pipeline.limits import UNLISTED_LABEL, UNLISTED_OTHER
from monitor.pipeline.pipeline import Pipeline, collect_garbage_rarely
from monitor.pipeline.routing import deliver
from monitor.store.store import Store

log = logging.getLogger("driftwarden.daemon")
OUTAGE_GRACE_SECONDS = 3.0
# Repeats and resolves from the CLI must go out even while no records arrive.
NOTIFY_SWEEP_SECONDS = 30.0
# Between restarts of a fetch process that died; so many deaths within the window end the
# daemon instead (a fetch process that cannot start at all would otherwise loop forever).
FETCH_RESTART_SECONDS = 1.0
FETCH_RESTARTS_AT_MOST = 5
FETCH_RESTART_WINDOW_SECONDS = 60.0


class Daemon:
    def __init__(
        self,
        config: Config,
        store: Store,
        metrics: DaemonMetrics,
        targets: list[WebhookTarget] | None = None,
        slot: int = 0,
    ) -> None:
        self.config = config
        self.store = store
        self.metrics = metrics
        self.notifier = NotificationPolicy.for_config(config)
        group = config.kafka.group_id
        self.pipeline = Pipeline(config, store, notifier=self.notifier, offsets_group=group)
        claimed = store.claim_legacy_offsets(group)
        if claimed:
            log.warning(
                "offsets stored without a consumer group are taken as this group's",
                extra={"group_id": group, "partitions": claimed},
            )
        self.delivery = DeliveryWorker.for_config(config, targets, audit.bound_key(store.db))
        self._last_sweep = time.monotonic()
        self.status = DaemonStatus()
        self._lock = threading.RLock()
        every = config.checkpoint
        self._checkpoint = Checkpoint(every.every_records, every.every_seconds)
        self._down_since: float | None = None
        # A store error in a rebalance callback, which the consumer would swallow.
        self._store_failure: sqlite3.Error | None = None
        self._abandoned = False
        self.poll_idle = PollIdle(metrics.registry)
        kafka = config.kafka
        log.info("connecting to Kafka", extra={"bootstrap_servers": kafka.bootstrap_servers})
        fetching: dict[str, Any] = dict(
            client_id=f"driftwarden-{kafka.group_id}",
            enable_auto_commit=False,
            auto_offset_reset=kafka.auto_offset_reset,
            max_poll_records=kafka.max_poll_records,
            fetch_max_wait_ms=kafka.fetch_max_wait_ms,
            retry_backoff_ms=20,
            reconnect_backoff_ms=200,
            reconnect_backoff_max_ms=5000,
        )
        self.consumer = open_consumer(
            kafka.bootstrap_servers,
            group_id=kafka.group_id,
            session_timeout_ms=kafka.session_timeout_ms,
            heartbeat_interval_ms=max(1000, kafka.session_timeout_ms // 4),
            **fetching,
            **(CLUSTER_CONSUMER if config.cluster.enabled else {}),
        )
        # Records are fetched and parsed by a process of its own (monitor.daemon.fetch_child),
        # except in cluster mode, whose transactions need them read by the group's member.
        self._fetch_settings: dict[str, Any] = {
            **fetching,
            "client_id": f"driftwarden-{kafka.group_id}-fetch",
            "group_id": kafka.group_id,  # for the committed offsets; it never joins the group
            "bootstrap_servers": list(kafka.bootstrap_servers),
            "bootstrap_timeout_ms": CONNECT_TIMEOUT_MS,
            "request_timeout_ms": max(CONNECT_TIMEOUT_MS, 15_000),
        }
        use_fetcher = kafka.fetch_process and not config.cluster.enabled
        self.fetcher = FetchProcess(config, self._fetch_settings) if use_fetcher else None
        # Which assignment the fetch process reads for: its batches of an earlier one are dropped.
        self._epoch = 0
        self._fetch_restarts: list[float] = []  # when, in monotonic seconds
        self._assigned: set[TopicPartition] = set()
        # Cluster mode (monitor.cluster): checkpoints are Kafka transactions, partitions restore.
        self.cluster = (
            ClusterMember(config, store, self.consumer, slot) if config.cluster.enabled else None
        )
        self.consumer.subscribe(kafka.topics, listener=Rebalance(self))
        self.dead_letters: KafkaProducer | None = None
        if kafka.dead_letter_topic:
            self.dead_letters = KafkaProducer(bootstrap_servers=kafka.bootstrap_servers)

    def ready(self) -> tuple[bool, str]:
        if not self.status.started:
            return False, "starting"
        if not self.status.broker_up:
            return False, "broker unreachable"
        return True, f"ok: {self.status.assigned} partition(s) assigned"

    def run(
        self,
        stop: threading.Event,
        heartbeat: Callable[[], None] | None = None,
        stopping: Callable[[], None] | None = None,
    ) -> None:
        """Consume until ``stop`` is set, then a final checkpoint.

        ``heartbeat`` is called once per loop while running, ``stopping`` once
        when the loop ends: both from this thread, so no heartbeat follows it.
        """
        collect_garbage_rarely()
        self.status.started = True
        self.status.broker_up = True
        self.metrics.broker_up.set(1)
        if self.delivery is not None:
            self.delivery.start()
        try:
            self._consume(stop, heartbeat)
        except BaseException:
            self.abandon()  # no final checkpoint: the store is what failed, or we are dying
            raise
        if stopping is not None:
            stopping()
        self.close()

    def _consume(self, stop: threading.Event, heartbeat: Callable[[], None] | None) -> None:
        while not stop.is_set():
            if self.fetcher is not None:
                self._take_fetched(stop)
            else:
                self._poll_records()
            if self.cluster is not None:
                with self._lock:
                    self.cluster.step()
            if self._checkpoint_due():
                self.checkpoint(commit=True)
            if time.monotonic() - self._last_sweep >= NOTIFY_SWEEP_SECONDS:
                self._sweep_notifications()
            if heartbeat is not None:
                heartbeat()
            self.poll_idle.loop_ended()

    def _poll_records(self) -> None:
        """One poll of the group's consumer, its records parsed and processed here."""
        self.poll_idle.poll_started()
        # While a restore reads the changelog, this poll only keeps the member alive.
        restoring = self.cluster is not None and self.cluster.restoring
        polled = self._poll_group(0 if restoring else 500)
        if polled is None:
            return
        self.poll_idle.poll_ended()
        if not polled:
            return
        started = time.perf_counter()
        with self._lock:
            bounds = self.config.events.live_bounds(time.time())
            for tp, records in polled.items():
                highwater = self.consumer.highwater(tp)
                fetched = parse_records(
                    self._epoch, tp.topic, tp.partition, records, bounds, highwater
                )
                self._process(fetched)
        self.metrics.latency.observe(time.perf_counter() - started)

    def _take_fetched(self, stop: threading.Event) -> None:
        """The group's consumer polled for rebalances only (its partitions are paused),
        then a batch from the fetch process, if one comes within the poll's wait."""
        assert self.fetcher is not None
        if self._poll_group(0 if self._assigned else 500) is None or not self._assigned:
            return
        self.poll_idle.poll_started()
        try:
            fetched = self.fetcher.receive(timeout=0.5)
        except FetchProcessGone as exc:
            if not stop.is_set():  # while stopping, the loop needs it no more
                self._restart_fetcher(str(exc))
            return
        self.poll_idle.poll_ended()
        if fetched is None or fetched.epoch != self._epoch:
            return  # nothing yet, or read for an assignment that has ended
        started = time.perf_counter()
        with self._lock:
            self._process(fetched)
        self.metrics.latency.observe(time.perf_counter() - started)

    def _poll_group(self, timeout_ms: int) -> dict[TopicPartition, list[Any]] | None:
        """One poll of the group's consumer; None when it failed (said, and waited out)."""
        try:
            polled: dict[TopicPartition, list[Any]] = self.consumer.poll(timeout_ms=timeout_ms)
        except KafkaError as exc:
            if self._store_failure is not None:
                raise self._store_failure from None
            log.warning("poll failed; retrying", extra={"error": str(exc)})
            self._broker_state(self._connected(), str(exc))
            time.sleep(1.0)
            return None
        if self._store_failure is not None:
            raise self._store_failure
        self._broker_state(self._connected(), "")
        return polled

    def _restart_fetcher(self, why: str) -> None:
        """A new fetch process, reading on from the last checkpoint (taken first)."""
        now = time.monotonic()
        self._fetch_restarts = [
            t for t in self._fetch_restarts if now - t < FETCH_RESTART_WINDOW_SECONDS
        ]
        if len(self._fetch_restarts) >= FETCH_RESTARTS_AT_MOST:
            raise FetchProcessGone(
                f"the fetch process failed {len(self._fetch_restarts) + 1} times within "
                f"{FETCH_RESTART_WINDOW_SECONDS:.0f} s (last: {why}); set [kafka] "
                "fetch_process = false to read records in the consume loop instead"
            )
        self._fetch_restarts.append(now)
        log.error("the fetch process failed; starting another", extra={"error": why})
        assert self.fetcher is not None
        self.fetcher.close()
        time.sleep(FETCH_RESTART_SECONDS)
        with self._lock:
            self.checkpoint(commit=True)
            self.fetcher = FetchProcess(self.config, self._fetch_settings)
            stored = self.store.stored_offsets(self.config.kafka.group_id)
            self._hand_to_fetcher(self._assigned, stored)

    def _hand_to_fetcher(
        self, partitions: set[TopicPartition], stored: dict[tuple[str, int], int]
    ) -> None:
        """The fetch process reads ``partitions`` from the stored offsets, for a new epoch."""
        assert self.fetcher is not None
        self._epoch += 1
        names = [(tp.topic, tp.partition) for tp in partitions]
        positions = {name: stored.get(name) for name in names}
        self.fetcher.assign(self._epoch, positions)

    def _sweep_notifications(self) -> None:
        self._last_sweep = time.monotonic()
        if self.notifier is not None:
            with self._lock, self.store.transaction() as db:
                self.notifier.enqueue_changes(db, time.time())
        if self.delivery is not None:
            self.delivery.wake()
        self.metrics.outbox_depth.set(WebhookOutbox.depth(self.store.db))

    def close(self) -> None:
        """The final checkpoint, then leave the group."""
        self.checkpoint(commit=True)
        if self.delivery is not None:
            self.delivery.close()
        try:
            self.consumer.close(autocommit=False, timeout_ms=5000)
        except Exception as exc:  # leaving politely is best effort
            log.warning("closing the consumer failed", extra={"error": str(exc)})
        if self.fetcher is not None:  # after the group's leaving, which tells it to stop
            self.fetcher.close()
        if self.dead_letters is not None:
            self.dead_letters.close(timeout=5)
        if self.cluster is not None:
            self.cluster.close()

    def abandon(self) -> None:
        """Stop delivery and leave the group without a checkpoint, after a fatal error."""
        self._abandoned = True
        if self.delivery is not None:
            self.delivery.stop(timeout=5)
        try:
            self.consumer.close(autocommit=False, timeout_ms=5000)
        except Exception as exc:
            log.warning("closing the consumer failed", extra={"error": str(exc)})
        if self.fetcher is not None:
            self.fetcher.close()
        if self.cluster is not None:
            self.cluster.close()

    def _process(self, fetched: Fetched) -> None:
        pipeline, topic, partition = self.pipeline, fetched.topic, fetched.partition
        per_model: dict[str, int] = {}
        source = f"kafka:{topic}"
        bad = iter(fetched.bad)
        for parsed in fetched.parsed:
            count = 1
            if type(parsed) is tuple:  # the usual prediction
                model: str | None = parsed[0]
                listed = pipeline.feed_row(parsed)
            elif type(parsed) is RowRun:  # a model's usual predictions, as columns
                model, count = parsed.model, parsed.n
                listed = pipeline.feed_run(parsed)
            elif type(parsed) is Malformed:
                record = next(bad)
                deliver(pipeline, parsed, source, topic, partition, record.offset, record.value)
                self.metrics.quarantined.inc()
                if self.dead_letters is not None:
                    self.dead_letters.send(
                        self.config.kafka.dead_letter_topic, value=record.value, key=record.key
                    )
                continue
            else:
                assert not isinstance(parsed, RowRun)
                model, _, listed = deliver(pipeline, parsed, source, topic, partition, None, b"")
            # Unlisted models share one label: a series per name would be unbounded.
            model = model if listed else UNLISTED_LABEL
            assert model is not None
            per_model[model] = per_model.get(model, 0) + count
        # One metric update per model and poll: labels() per record costs more than parsing.
        for model, count in per_model.items():
            self.metrics.records.labels(model).inc(count)
        if self.cluster is not None:
            self.cluster.saw(partition, per_model)
        self._checkpoint.advance(topic, partition, fetched.last_offset + 1)
        self._checkpoint.count(fetched.records)
        if fetched.highwater is not None:
            behind = fetched.highwater - fetched.last_offset - 1
            tp = TopicPartition(topic, partition)
            self.metrics.lag.labels(topic, str(partition)).set(behind)
            self.poll_idle.lag(tp, behind)

    def _checkpoint_due(self) -> bool:
        why = self._checkpoint.due(self.pipeline.quarantine_full)
        if why == "quarantine":
            self.metrics.quarantine_checkpoints.inc()
        return why is not None

    def checkpoint(self, commit: bool) -> None:
        """Write everything since the last checkpoint in one transaction, then commit to Kafka."""
        with self._lock:
            offsets = self._checkpoint.offsets
            if self.cluster is not None:
                written = self._cluster_checkpoint(offsets)
                if written is None:
                    return
                commit = False  # the offsets went with the transaction
            else:
                written = self.pipeline.checkpoint(offsets)
            self._checkpoint.taken()
            self.metrics.checkpointed()
            for model, count in written.alerts_by_model.items():
                if count:
                    self.metrics.alerts.labels(model).inc(count)
            self._count_caps()
        if self.delivery is not None:
            self.delivery.wake()
        if commit and offsets:
            try:
                self.consumer.commit(
                    {
                        TopicPartition(t, p): OffsetAndMetadata(o, "", -1)
                        for (t, p), o in offsets.items()
                    }
                )
            except Exception as exc:  # SQLite holds the truth; Kafka's copy can lag
                log.warning("offset commit to Kafka failed", extra={"error": str(exc)})

    def _cluster_checkpoint(self, offsets: dict[tuple[str, int], int]) -> CheckpointResult | None:
        """The checkpoint as one Kafka transaction; None when it failed and every partition
        is being restored, to be read again from its committed offset."""
        assert self.cluster is not None
        try:
            return self.cluster.checkpoint(lambda: self.pipeline.checkpoint(offsets), offsets)
        except TransactionFailed as exc:
            log.error(
                "the checkpoint's transaction failed; its records will be read again",
                extra={"error": str(exc)},
            )
        self.pipeline.forget_models()
        every = self.config.checkpoint
        self._checkpoint = Checkpoint(every.every_records, every.every_seconds)
        self.cluster.recover()
        return None

    def _count_caps(self) -> None:
        """The caps' counters in /metrics, up to the pipeline's totals."""
        stats, metrics = self.pipeline.stats, self.metrics
        for model, count in stats.features_dropped.items():
            metrics.advance(metrics.features_dropped, count, model)
        for model, count in stats.metric_points_dropped.items():
            metrics.advance(metrics.metric_points_dropped, count, model)
        metrics.advance(metrics.unlisted_other, stats.unlisted.get(UNLISTED_OTHER, 0))
        for name, count in stats.unknown_fields.items():
            metrics.advance(metrics.unknown_fields, count, name)
        metrics.advance(metrics.quarantine_truncated, self.pipeline.quarantine_truncated)
        for model, counts in self.pipeline.label_counts().items():
            for outcome, count in counts.as_dict().items():
                metrics.advance(metrics.labels, count, model, outcome)

    def on_revoked(self, partitions: set[TopicPartition]) -> None:
        # Runs on the consumer's IO thread: SQLite only, no blocking Kafka call, but in
        # cluster mode the final checkpoint's transaction (bounded by its timeout).
        if self._abandoned:
            return  # leaving after a store error: the effects since the last checkpoint are lost
        with self._lock:
            try:
                self.checkpoint(commit=False)
            except sqlite3.Error as exc:
                self._store_failure = exc
                raise
            self.pipeline.forget_models()
            self._checkpoint.forget()
            self.poll_idle.forget()
            self.status.assigned = 0
            self._assigned = set()
            if self.fetcher is not None:
                self._hand_to_fetcher(set(), {})
            if self.cluster is not None:
                self.cluster.revoked(partitions)
        log.info("partitions revoked", extra={"partitions": partition_names(partitions)})

    def on_assigned(self, partitions: set[TopicPartition]) -> None:
        if self.cluster is not None:  # the changelog, not this store, says where to begin
            with self._lock:
                self.status.assigned = len(partitions)
                self.cluster.assigned(partitions)
            log.info("partitions assigned", extra={"partitions": partition_names(partitions)})
            return
        try:
            stored = self.store.stored_offsets(self.config.kafka.group_id)
        except sqlite3.Error as exc:
            self._store_failure = exc
            raise
        with self._lock:
            self.status.assigned = len(partitions)
            self._assigned = set(partitions)
            if self.fetcher is not None:
                # The fetch process reads them: this consumer only keeps the membership.
                self.consumer.pause(*partitions)
                self._hand_to_fetcher(self._assigned, stored)
            else:
                for tp in partitions:
                    offset = stored.get((tp.topic, tp.partition))
                    if offset is not None:
                        self.consumer.seek(tp, offset)
        log.info(
            "partitions assigned",
            extra={"partitions": partition_names(partitions)},
        )

    def _connected(self) -> bool:
        client = self.consumer._client  # kafka-python exposes connection state only here
        return any(client.connected(broker.node_id) for broker in client.cluster.brokers())

    def _broker_state(self, up: bool, why: str) -> None:
        now = time.monotonic()
        if up:
            self._down_since = None
        else:
            # A connection can drop for a moment; call it an outage after a grace period.
            self._down_since = self._down_since or now
            if now - self._down_since < OUTAGE_GRACE_SECONDS:
                return
        if up == self.status.broker_up:
            return
        self.status.broker_up = up
        self.metrics.broker_up.set(1 if up else 0)
        if up:
            if self.status.outage_since is not None:
                lasted = round(now - self.status.outage_since, 1)
                log.warning("broker reachable again", extra={"outage_seconds": lasted})
            self.status.outage_since = None
        else:
            self.status.outage_since = self._down_since
            log.error("broker unreachable; waiting with backoff", extra={"error": why})
