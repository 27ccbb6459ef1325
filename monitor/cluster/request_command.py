"""The Kafka side of `baseline reset` and `baseline set` in cluster mode: send a request.

One Kafka transaction holds the request, a row of ``baseline_requests`` on
the changelog partition of the model's records (chunked when its sample is
large), and its audit row (``reset requested`` or ``reference set``) on the
alerts topic, for the notifier's audit log: both or neither. The command
returns once the transaction has committed. The partition is the one Kafka's
default partitioner gives a record keyed by the model's name (murmur2, as the
Java client and kafka-python place them): what "records keyed by model"
means. The transactional id is the group's own for these requests, so a
command that died mid-way is fenced by the next.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from kafka.errors import KafkaError
from kafka.partitioner.default import murmur2

from monitor.cluster.publish import output_records
from monitor.cluster.records import REQUEST_TABLE, KafkaRecord, encode_row, state_records
from monitor.cluster.settings import topics
from monitor.cluster.transaction import TransactionalProducer, TransactionFailed
from monitor.config import Config
from monitor.daemon.kafka_client import open_consumer
from monitor.errors import DriftwardenError
from monitor.pipeline.reference_file import ReferenceRequest

# How long the command waits for a broker before it says none answers.
CONNECT_TIMEOUT_MS = 10_000


@dataclass(frozen=True)
class Sent:
    topic: str
    partition: int
    request_id: str


def partition_of(model: str, partitions: int) -> int:
    """Where Kafka's default partitioner puts a record keyed by the model's name."""
    return int(murmur2(model.encode()) & 0x7FFFFFFF) % partitions


def send_reset(config: Config, model: str, who: str, audit: dict[str, Any]) -> Sent:
    return _send(config, model, {"kind": "reset", "requested_by": who}, audit)


def send_reference(config: Config, request: ReferenceRequest) -> Sent:
    row = {
        "kind": "set",
        "requested_by": request.who,
        "source": request.source,
        "sha256": request.sha256,
        "rows_read": request.rows_read,
        "sample_size": request.sample_size,
        "sample": request.sample,
    }
    return _send(config, request.model, row, request.audit_content())


def _send(config: Config, model: str, fields: dict[str, Any], audit: dict[str, Any]) -> Sent:
    kafka = config.kafka
    names = topics(config.cluster, kafka.group_id)
    partitions = _partitions(config, names.changelog, names.alerts)
    now = time.time()
    # Sortable by time: requests of one model are armed in the order they were made.
    request_id = f"{time.time_ns():020d}-{uuid.uuid4().hex[:12]}"
    partition = partition_of(model, partitions)
    row = {"model": model, "request_id": request_id, "partition": partition, "requested_at": now}
    row.update(fields)
    records = state_records(
        names.changelog, partition, REQUEST_TABLE, [model, request_id], encode_row(row), 0
    )
    change = {
        "model": model,
        "ts": now,
        "content": orjson.dumps(audit, option=orjson.OPT_SORT_KEYS).decode(),
    }
    records += output_records(names.alerts, {"baseline_changes": [change]})
    _commit(config, records)
    return Sent(names.changelog, partition, request_id)


def _partitions(config: Config, changelog: str, alerts: str) -> int:
    """The input topic's partition count, once the cluster's topics are known to exist."""
    kafka = config.kafka
    consumer = open_consumer(kafka.bootstrap_servers, timeout_ms=CONNECT_TIMEOUT_MS)
    try:
        counts = {
            name: len(consumer.partitions_for_topic(name) or ())
            for name in (kafka.topics[0], changelog, alerts)
        }
    except KafkaError as exc:
        raise DriftwardenError(f"cannot read the cluster's topics from Kafka: {exc}") from None
    finally:
        consumer.close(autocommit=False)
    for name, count in counts.items():
        if count == 0:
            raise DriftwardenError(
                f"cluster mode: topic {name} does not exist: create it "
                "(driftwarden cluster-topics --config FILE --create) or set its name in the "
                "config; nothing was sent"
            )
    if counts[changelog] != counts[kafka.topics[0]]:
        raise DriftwardenError(
            f"cluster mode: changelog topic {changelog} has {counts[changelog]} partitions and "
            f"{kafka.topics[0]} {counts[kafka.topics[0]]}: give it as many; nothing was sent"
        )
    return counts[kafka.topics[0]]


def _commit(config: Config, records: list[KafkaRecord]) -> None:
    kafka = config.kafka
    transactional_id = f"driftwarden-{kafka.group_id}-baseline-requests"
    try:
        producer = TransactionalProducer(
            kafka.bootstrap_servers, transactional_id, config.cluster.transaction_timeout_ms
        )
    except KafkaError as exc:
        raise DriftwardenError(
            f"cannot start a Kafka transaction at {','.join(kafka.bootstrap_servers)} ({exc}): "
            "check the broker and try again; nothing was sent"
        ) from None
    try:
        producer.commit(records, {}, None)
    except TransactionFailed as exc:
        raise DriftwardenError(
            f"the request's Kafka transaction failed ({exc}): nothing was sent; try again"
        ) from None
    finally:
        producer.close()
