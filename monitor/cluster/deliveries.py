"""Notifications the notifier has finished, on a compacted topic of their own.

A notifier's store can be rebuilt from the alerts topic; its outbox then holds
again the notifications of incidents still open. So that it sends none of them
twice, every notification it finishes (delivered, failed, given up) goes, by
its ``webhook-id``, to the deliveries topic (``[cluster] deliveries_topic``,
compacted, keyed by the id), and at start the notifier reads that topic into
its store; an outbox row whose id is there is settled as it was, not sent.

The record goes out after the receiver answered, outside any transaction: a
notifier that dies between the two sends that one again after a rebuild,
under the same ``webhook-id`` (at least once, as webhooks are). Records are
checked before they are kept: an id of at most ``ID_LIMIT`` characters and a
known state; anything else is skipped.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence

import orjson
import sqlite_utils
from kafka import KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from monitor.daemon.kafka_client import open_consumer
from monitor.errors import DriftwardenError
from monitor.notify.delivery import audit_finished

log = logging.getLogger("driftwarden.notify")
TABLE = """CREATE TABLE IF NOT EXISTS cluster_delivered (
    webhook_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    finished_at REAL NOT NULL
)"""
STATES = frozenset({"delivered", "failed", "gave_up"})
FINISHED_AT = {"delivered": "delivered_at", "failed": "failed_at", "gave_up": "gave_up_at"}
ID_LIMIT = 200  # webhook-ids are ``<incident>-<sequence>-<url>`` digests: far shorter
READ_SECONDS = 120.0
REBUILT = "finished before this store was rebuilt"


class DeliveryLog:
    def __init__(self, bootstrap_servers: Sequence[str], topic: str, client_id: str) -> None:
        self.bootstrap_servers = list(bootstrap_servers)
        self.topic = topic
        self.client_id = client_id
        self.producer: KafkaProducer | None = None

    def load(self, db: sqlite_utils.Database) -> int:
        """Every finished notification on the topic into the store; returns how many."""
        consumer = open_consumer(
            self.bootstrap_servers,
            group_id=None,
            client_id=self.client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        try:
            partitions = consumer.partitions_for_topic(self.topic)
            if not partitions:
                raise DriftwardenError(
                    f"cluster mode: topic {self.topic} does not exist: create it "
                    "(driftwarden cluster-topics --config FILE --create) or set [cluster] "
                    "deliveries_topic"
                )
            tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            end = consumer.end_offsets(tps)
            deadline = time.monotonic() + READ_SECONDS
            kept = 0
            while any(consumer.position(tp) < end[tp] for tp in tps):
                if time.monotonic() > deadline:
                    raise KafkaError(f"reading {self.topic} took over {READ_SECONDS:.0f} s")
                for records in consumer.poll(timeout_ms=500).values():
                    rows = [row for r in records if (row := _row(r.key, r.value)) is not None]
                    db.conn.executemany(
                        "INSERT OR REPLACE INTO cluster_delivered VALUES (?, ?, ?)", rows
                    )
                    kept += len(rows)
            return kept
        finally:
            consumer.close(autocommit=False)

    def finished(self, webhook_id: str, state: str, at: float) -> None:
        """Note a finished notification on the topic (asynchronously; a failure is logged:
        that notification may then be sent again after a rebuild)."""
        try:
            if self.producer is None:
                self.producer = KafkaProducer(
                    bootstrap_servers=self.bootstrap_servers, client_id=self.client_id
                )
            value = orjson.dumps({"state": state, "at": at})
            self.producer.send(self.topic, key=webhook_id.encode(), value=value)
        except KafkaError as exc:
            log.warning(
                "a finished notification could not be noted on the deliveries topic",
                extra={"webhook_id": webhook_id, "error": str(exc)},
            )

    def close(self) -> None:
        if self.producer is not None:
            self.producer.close(timeout=10)


def _row(key: bytes | None, value: bytes | None) -> tuple[str, str, float] | None:
    """A record as ``(webhook_id, state, finished_at)``; None for one no notifier wrote."""
    if key is None or value is None or len(key) > ID_LIMIT:
        return None
    try:
        webhook_id, record = key.decode(), orjson.loads(value)
    except (UnicodeDecodeError, orjson.JSONDecodeError):
        return None
    if not isinstance(record, dict) or record.get("state") not in STATES:
        return None
    at = record.get("at")
    if not isinstance(at, float | int) or not math.isfinite(at):
        return None
    return webhook_id, str(record["state"]), float(at)


def settle(db: sqlite_utils.Database, now: float) -> int:
    """Outbox rows still to send that a previous life of the store finished: settled as
    they were (an audit row each), never sent again. Returns how many."""
    rows = db.execute(
        "SELECT o.id, o.webhook_id, o.incident_id, o.url_index, o.kind, d.state, d.finished_at "
        "FROM outbox o JOIN cluster_delivered d ON d.webhook_id = o.webhook_id "
        "WHERE o.state = 'pending'"
    ).fetchall()
    for row_id, webhook_id, incident_id, url_index, kind, state, finished_at in rows:
        db.execute(
            f"UPDATE outbox SET state = ?, {FINISHED_AT[state]} = ?, last_error = ? WHERE id = ?",
            [state, finished_at, REBUILT, row_id],
        )
        audit_finished(db, (webhook_id, incident_id, url_index, kind), state, None, REBUILT, now)
    return len(rows)
