"""One worker's transactional producer, with a deadline on every wait.

kafka-python 3.0's ``commit_transaction``, ``abort_transaction`` and
``send_offsets_to_transaction`` enqueue a request and then wait for its
result without a timeout: a broker gone mid-commit would hang the worker,
its heartbeats going on and its partitions never moving. ``commit`` does
what those methods do (enqueue through the producer's transaction manager,
wake its sender) and waits for each result at most until the transaction's
deadline. Any failure aborts (within the same bound) and raises
``TransactionFailed``: the producer is then unusable, and its owner makes a
new one, whose ``init_transactions`` fences whatever this one left open.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from kafka import KafkaProducer, TopicPartition
from kafka.consumer.group import ConsumerGroupMetadata
from kafka.errors import KafkaError, KafkaTimeoutError
from kafka.structs import OffsetAndMetadata

from monitor.cluster.records import KafkaRecord

log = logging.getLogger("driftwarden.cluster")


class TransactionFailed(Exception):
    """A checkpoint's Kafka transaction did not commit (or may not have: a timeout)."""


class TransactionalProducer:
    def __init__(self, bootstrap_servers: Sequence[str], transactional_id: str, timeout_ms: int):
        self.transactional_id = transactional_id
        self.timeout_ms = timeout_ms
        self.producer = KafkaProducer(
            bootstrap_servers=list(bootstrap_servers),
            transactional_id=transactional_id,
            transaction_timeout_ms=timeout_ms,
            acks="all",
            linger_ms=5,
            batch_size=1024 * 1024,
            max_request_size=1024 * 1024,
            max_block_ms=max(timeout_ms, 10_000),
            request_timeout_ms=max(timeout_ms, 15_000),
            retry_backoff_ms=50,
        )
        try:
            # Fences an earlier life of this worker slot: its open transaction is aborted.
            self.producer.init_transactions()
        except KafkaError:
            self.producer.close(timeout=0)
            raise

    def commit(
        self,
        records: Sequence[KafkaRecord],
        offsets: dict[TopicPartition, OffsetAndMetadata],
        group: ConsumerGroupMetadata | None,
    ) -> dict[tuple[str, int], int]:
        """Produce ``records`` and commit ``offsets`` for ``group`` in one transaction.

        Returns the offset of the last record written to each partition.
        """
        deadline = time.monotonic() + self.timeout_ms / 1000
        producer = self.producer
        manager: Any = producer._transaction_manager  # private: see the module docstring
        last: dict[tuple[str, int], int] = {}
        try:
            producer.begin_transaction()
            sent = [
                producer.send(r.topic, key=r.key, value=r.value, partition=r.partition)
                for r in records
            ]
            for future in sent:
                meta = future.get(timeout=_left(deadline))
                where = (meta.topic, meta.partition)
                last[where] = max(last.get(where, -1), meta.offset)
            if offsets:
                assert group is not None, "offsets go to a transaction with their group"
                self._wait(manager.send_offsets_to_transaction(offsets, group), deadline)
            self._wait(manager.begin_commit(), deadline)
        except (KafkaError, ValueError, TypeError) as exc:
            self._abort(deadline)
            raise TransactionFailed(f"{type(exc).__name__}: {exc}") from exc
        return last

    def _wait(self, result: Any, deadline: float) -> None:
        self.producer._sender.wakeup()
        if not result.wait(timeout_ms=_left(deadline) * 1000):
            raise KafkaTimeoutError("the transaction did not complete before its deadline")

    def _abort(self, deadline: float) -> None:
        """Abort within the transaction's deadline (plus a second); failing that, leave
        it to the broker's transaction timeout or to the next producer's fencing."""
        try:
            manager: Any = self.producer._transaction_manager
            self._wait(manager.begin_abort(), max(deadline, time.monotonic() + 1.0))
        except Exception as exc:  # the producer is discarded either way
            log.warning("aborting the transaction failed", extra={"error": str(exc)})

    def close(self) -> None:
        try:
            self.producer.close(timeout=2)
        except Exception as exc:  # closing a failed producer is best effort
            log.warning("closing the producer failed", extra={"error": str(exc)})


def _left(deadline: float) -> float:
    return max(0.001, deadline - time.monotonic())
