"""The changelog through the real broker: transactions, chunks over 1 MB, restores, fencing."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from kafka.consumer.group import ConsumerGroupMetadata

from monitor.cluster import cache, publish
from monitor.cluster.capture import ChangeCapture
from monitor.cluster.restore import ChangelogRestore
from monitor.cluster.settings import ClusterTopics
from monitor.cluster.transaction import TransactionalProducer, TransactionFailed
from monitor.store.store import Store
from tests.integration.cluster_support import cluster_topics, read_topic
from tests.integration.daemon_support import wait_until

pytestmark = pytest.mark.kafka
NO_GROUP = ConsumerGroupMetadata(group_id=None)


def _open(path: Path) -> tuple[Store, ChangeCapture]:
    store = Store(path)
    with store.transaction() as db:
        cache.ensure_tables(db)
    return store, ChangeCapture(store.db)


def _commit(
    producer: TransactionalProducer, store: Store, capture: ChangeCapture, topics: ClusterTopics
) -> dict[tuple[str, int], int]:
    with store.transaction() as db:
        out = publish.outgoing(db, capture, topics, {"big": 1})
        return producer.commit(out.records, {}, NO_GROUP)


def _restore(bootstrap: str, topic: str, store: Store, capture: ChangeCapture) -> int:
    restore = ChangelogRestore([bootstrap], topic, [0, 1, 2], store, capture, "test-restore")
    wait_until(restore.step, 60, "the restore to reach the changelog's end")
    return restore.finish().records


def test_a_state_over_a_megabyte_goes_through_a_transaction_and_restores(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    with cluster_topics(kafka_bootstrap) as names:
        topics = ClusterTopics(names.changelog, names.alerts, names.quarantine)
        source, capture = _open(tmp_path / "a.db")
        big = uuid.uuid4().hex * 80_000  # 2.56 MB: three chunks
        with source.transaction() as db:
            db.execute("INSERT INTO model_state VALUES ('big', '{}', 5, 0)")
            db.execute("INSERT INTO state_blobs VALUES ('big', 'd', ?)", [big])
        producer = TransactionalProducer([kafka_bootstrap], f"t-{uuid.uuid4().hex}", 10_000)
        try:
            last = _commit(producer, source, capture, topics)
            # 3 chunks, the blob's row, the model's row: offsets 0 to 4, the commit marker 5.
            assert last == {(topics.changelog, 1): 4}
            target, target_capture = _open(tmp_path / "b.db")
            assert _restore(kafka_bootstrap, topics.changelog, target, target_capture) == 5
            assert target.db.execute("SELECT data FROM state_blobs").fetchall() == [(big,)]
            assert cache.changelog_offset(target.db, topics.changelog, 1) == 6, "past the marker"

            with source.transaction() as db:
                db.execute("UPDATE state_blobs SET data = 'small'")
            _commit(producer, source, capture, topics)
            # From the cached offset: the new row and three tombstones, nothing before.
            assert _restore(kafka_bootstrap, topics.changelog, target, target_capture) == 4
            assert target.db.execute("SELECT data FROM state_blobs").fetchall() == [("small",)]
            assert target.load_model_state("big") == ({}, 5)
        finally:
            producer.close()


def test_a_second_producer_of_the_same_slot_fences_the_first(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """What a restarted worker does to its earlier life: that one's transaction aborts, and
    what it wrote is never read."""
    with cluster_topics(kafka_bootstrap) as names:
        topics = ClusterTopics(names.changelog, names.alerts, names.quarantine)
        source, capture = _open(tmp_path / "a.db")
        slot = f"t-{uuid.uuid4().hex}"
        zombie = TransactionalProducer([kafka_bootstrap], slot, 10_000)
        successor = TransactionalProducer([kafka_bootstrap], slot, 10_000)
        try:
            with source.transaction() as db:
                db.execute("INSERT INTO model_state VALUES ('big', '{}', 1, 0)")
            with pytest.raises(TransactionFailed):
                _commit(zombie, source, capture, topics)
            target, target_capture = _open(tmp_path / "b.db")
            assert _restore(kafka_bootstrap, topics.changelog, target, target_capture) == 0
            # The failed transaction's notes stay in the store: the next one carries the row.
            assert _commit(successor, source, capture, topics) == {(topics.changelog, 1): 0}
            assert _restore(kafka_bootstrap, topics.changelog, target, target_capture) == 1
            assert target.load_model_state("big") == ({}, 1)
        finally:
            zombie.close()
            successor.close()


def test_a_restore_after_compaction_holds_the_latest_rows_and_none_deleted(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Forty checkpoints rewrite one model's rows; the broker compacts the changelog (its
    segments roll every 100 ms, the cleaner takes any dirt): a restore of what is left
    gives the latest rows, and a row deleted stays deleted."""
    with cluster_topics(kafka_bootstrap) as names:
        topics = ClusterTopics(names.changelog, names.alerts, names.quarantine)
        source, capture = _open(tmp_path / "a.db")
        producer = TransactionalProducer([kafka_bootstrap], f"t-{uuid.uuid4().hex}", 10_000)
        try:
            with source.transaction() as db:
                db.execute("INSERT INTO state_blobs VALUES ('big', 'gone', 'soon deleted')")
            for version in range(40):
                with source.transaction() as db:
                    db.execute(
                        "INSERT OR REPLACE INTO model_state VALUES ('big', '{}', ?, 0)", [version]
                    )
                    if version == 20:
                        db.execute("DELETE FROM state_blobs")
                _commit(producer, source, capture, topics)
                time.sleep(0.15)  # a segment a checkpoint: every one but the last is compactable
            written = 41 + 1  # the rows and the tombstone (markers are not records)
            wait_until(
                lambda: len(read_topic(kafka_bootstrap, topics.changelog)) < written / 2,
                90,
                "the log cleaner to compact the changelog",
            )
            target, target_capture = _open(tmp_path / "b.db")
            _restore(kafka_bootstrap, topics.changelog, target, target_capture)
            assert target.load_model_state("big") == ({}, 39)
            assert target.count("state_blobs") == 0
        finally:
            producer.close()
