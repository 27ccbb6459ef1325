"""``driftwarden notify`` on the real broker: the alerts topic into incidents and webhooks."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from monitor.store.store import Store
from simulation.simulator import write_simulation
from tests.integration.cluster_support import (
    ClusterTopics,
    cluster_topics,
    committed_total,
    write_cluster_config,
)
from tests.integration.daemon_support import (
    ROOT,
    free_port,
    produce_file,
    replay_alerts,
    start_daemon,
    stop,
    wait_until,
)
from tests.webhook_receiver import WebhookReceiver, start_receiver

__all__ = ["start_receiver"]
pytestmark = pytest.mark.kafka
SECRET = "whsec_" + "c2VjcmV0LWZvci10aGUtdGVzdC1yZWNlaXZlcg=="
INCIDENT_COLUMNS = (
    "model, kind, title, status, severity, first_event_ts, last_event_ts, alert_count, "
    "signals, resolved_event_ts"
)


def _start_notifier(config: Path, store: Path, log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("ab")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "monitor.cli",
            "notify",
            "--config",
            str(config),
            "--store",
            str(store),
        ],
        cwd=ROOT,
        stdout=handle,
        stderr=handle,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "HOOK_SECRET": SECRET},
    )


def _rows(store: Path, query: str) -> list[tuple[object, ...]]:
    if not store.exists():
        return []
    with sqlite3.connect(store) as db:
        try:
            return db.execute(query).fetchall()
        except sqlite3.OperationalError:  # its tables are not created yet
            return []


def _caught_up(bootstrap: str, topics: ClusterTopics, store: Path) -> bool:
    """The notifier's stored offsets reached the end of the alerts topic."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed")
    try:
        tps = [
            TopicPartition(topics.alerts, p) for p in consumer.partitions_for_topic(topics.alerts)
        ]
        end = consumer.end_offsets(tps)
    finally:
        consumer.close()
    stored = dict(
        ((t, p), o)
        for t, p, o in _rows(
            store,
            "SELECT topic, partition, next_offset FROM offsets WHERE group_id LIKE '%-notify'",
        )
    )
    # An offset at the end, or past the last record to the commit marker after it.
    return all(stored.get((tp.topic, tp.partition), 0) >= end[tp] - 1 for tp in tps if end[tp])


def _delivered(store: Path) -> bool:
    states = _rows(store, "SELECT state FROM outbox")
    return bool(states) and all(state == "delivered" for (state,) in states)


def test_the_notifier_files_what_a_single_machine_would_and_rebuilds_from_the_topic(
    kafka_bootstrap: str, tmp_path: Path, start_receiver: Callable[..., WebhookReceiver]
) -> None:
    receiver = start_receiver()
    events = tmp_path / "events.jsonl"
    write_simulation(events, events=40_000, seed=13)
    notify_store, notify_log = tmp_path / "notify.db", tmp_path / "notify.log"
    with cluster_topics(kafka_bootstrap, partitions=2) as topics:
        config = write_cluster_config(
            tmp_path / "c.toml", kafka_bootstrap, topics, tmp_path / "worker.db", free_port()
        )
        config.write_text(
            config.read_text() + f'\n[[webhooks]]\nurl = "{receiver.url()}"\nformat = "generic"\n'
            'secret_env = "HOOK_SECRET"\nmin_severity = "info"\n'
        )
        total = produce_file(kafka_bootstrap, topics.events, events)
        worker = start_daemon(config, tmp_path / "worker.log")
        notifier = _start_notifier(config, notify_store, notify_log)
        try:
            wait_until(
                lambda: committed_total(kafka_bootstrap, topics.group) >= total, 240, "the stream"
            )
            assert stop(worker) == 0, (tmp_path / "worker.log").read_text()[-2000:]
            wait_until(lambda: _caught_up(kafka_bootstrap, topics, notify_store), 60, "notify")
            wait_until(lambda: _delivered(notify_store), 60, "every notification delivered")
            first_ids = [r for (r,) in _rows(notify_store, "SELECT webhook_id FROM outbox")]
            first_incidents = _rows(notify_store, f"SELECT {INCIDENT_COLUMNS} FROM incidents")
            # Killed, its store lost: rebuilt from the alerts topic.
            notifier.send_signal(signal.SIGKILL)
            notifier.wait(timeout=30)
            for suffix in ("", "-wal", "-shm"):
                Path(f"{notify_store}{suffix}").unlink(missing_ok=True)
            notifier = _start_notifier(config, notify_store, notify_log)
            wait_until(lambda: _caught_up(kafka_bootstrap, topics, notify_store), 60, "rebuilt")
            wait_until(lambda: _delivered(notify_store), 60, "the rebuilt outbox delivered")
        finally:
            worker.kill()
            code = stop(notifier)
    assert code == 0, notify_log.read_text()[-2000:]
    replay_store = tmp_path / "replay.db"
    expected = replay_alerts(config, events, replay_store)
    assert expected
    rebuilt = Store(notify_store)
    try:
        assert rebuilt.alerts() == expected
    finally:
        rebuilt.close()
    order = "ORDER BY model, first_event_ts, title"
    incidents = _rows(notify_store, f"SELECT {INCIDENT_COLUMNS} FROM incidents {order}")
    assert incidents == _rows(replay_store, f"SELECT {INCIDENT_COLUMNS} FROM incidents {order}")
    assert sorted(first_incidents) == sorted(incidents), "the rebuild files the same incidents"
    ids = [r for (r,) in _rows(notify_store, "SELECT webhook_id FROM outbox")]
    # A rebuild sends again what is still news (the open incidents), under the ids the
    # first life used, so a receiver that keeps webhook-ids takes each once; it sends no
    # incident that resolved long ago, and nothing under a new id.
    assert ids and set(ids) <= set(first_ids)
    accepted = Counter(r.headers["webhook-id"] for r in receiver.accepted())
    assert set(accepted) == set(first_ids)
    assert max(accepted.values()) <= 2, "at most once from each life of the notifier's store"
