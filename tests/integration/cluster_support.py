"""Cluster mode in tests: its topics on the real broker, its configs, and reading what it wrote."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError

from monitor.cluster.publish import alert_rows
from tests.integration.daemon_support import ROOT, write_config


@dataclass(frozen=True)
class ClusterTopics:
    events: str
    changelog: str
    alerts: str
    quarantine: str
    group: str
    deliveries: str = ""


@contextmanager
def cluster_topics(bootstrap: str, partitions: int = 3) -> Iterator[ClusterTopics]:
    """Fresh input, changelog (compacted, as many partitions), alerts and quarantine topics."""
    name = f"cl-{uuid.uuid4().hex[:10]}"
    topics = ClusterTopics(
        f"{name}-events",
        f"{name}-changelog",
        f"{name}-alerts",
        f"{name}-quarantine",
        name,
        f"{name}-deliveries",
    )
    compact = {
        "cleanup.policy": "compact",
        "segment.ms": "100",
        "min.cleanable.dirty.ratio": "0.01",
    }
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    try:
        admin.create_topics(
            [
                NewTopic(topics.events, num_partitions=partitions, replication_factor=1),
                NewTopic(
                    topics.changelog,
                    num_partitions=partitions,
                    replication_factor=1,
                    topic_configs=compact,
                ),
                NewTopic(topics.alerts, num_partitions=2, replication_factor=1),
                NewTopic(topics.quarantine, num_partitions=1, replication_factor=1),
                NewTopic(
                    topics.deliveries,
                    num_partitions=1,
                    replication_factor=1,
                    topic_configs=compact,
                ),
            ]
        )
        yield topics
        admin.delete_topics(
            [
                topics.events,
                topics.changelog,
                topics.alerts,
                topics.quarantine,
                topics.deliveries,
            ]
        )
    finally:
        admin.close()


def write_cluster_config(
    path: Path,
    bootstrap: str,
    topics: ClusterTopics,
    store: Path,
    ops_port: int,
    models: tuple[str, ...] = ("fraud", "churn"),
    kafka_extra: str = "",
) -> Path:
    """The daemon tests' config (models fraud and churn) in cluster mode, with more models."""
    write_config(path, bootstrap, topics.events, store, ops_port, topics.group, kafka_extra)
    more = "".join(f'\n[[models]]\nname = "{m}"\n' for m in models if m not in ("fraud", "churn"))
    with path.open("a") as config:
        config.write(
            f"""
[cluster]
enabled = true
changelog_topic = "{topics.changelog}"
alerts_topic = "{topics.alerts}"
quarantine_topic = "{topics.quarantine}"
deliveries_topic = "{topics.deliveries}"
{more}"""
        )
    return path


def read_topic(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    """Every committed record of a topic, partition by partition, in offset order."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, isolation_level="read_committed", enable_auto_commit=False
    )
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        found: dict[int, list[tuple[bytes | None, bytes | None]]] = {tp.partition: [] for tp in tps}
        deadline = time.monotonic() + 120
        while any(consumer.position(tp) < end[tp] for tp in tps):
            assert time.monotonic() < deadline, f"reading {topic} took over two minutes"
            for tp, records in consumer.poll(timeout_ms=500).items():
                found[tp.partition] += [(r.key, r.value) for r in records]
        return [record for p in sorted(found) for record in found[p]]
    finally:
        consumer.close(autocommit=False)


def topic_alerts(bootstrap: str, topic: str) -> list[dict[str, object]]:
    """The alerts topic's alerts in ``Store.alerts()``'s order and form."""
    rows = alert_rows([value for _, value in read_topic(bootstrap, topic) if value is not None])
    keys = ("fingerprint", "model", "detector", "signal", "severity", "event_ts", "details")
    ordered = sorted(
        enumerate(rows),
        key=lambda r: (r[1]["model"], r[1]["event_ts"], r[1]["detector"], r[1]["signal"], r[0]),
    )
    return [{k: row[k] for k in keys} for _, row in ordered]


def committed_total(bootstrap: str, group: str) -> int:
    """The group's committed offsets, summed over partitions (records whose effects committed)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    try:
        offsets = admin.list_group_offsets(group)[group]
        return sum(max(0, meta.offset) for meta in offsets.values())
    except KafkaError:  # e.g. offsets of a transaction still completing: ask again later
        return -1
    finally:
        admin.close()


# The webhook's signing secret, in the notifier's environment as HOOK_SECRET.
SECRET = "whsec_" + "c2VjcmV0LWZvci10aGUtdGVzdC1yZWNlaXZlcg=="


def add_webhook(config: Path, url: str) -> None:
    """A generic webhook of every severity, signed with ``SECRET``, in ``config``."""
    config.write_text(
        config.read_text() + f'\n[[webhooks]]\nurl = "{url}"\nformat = "generic"\n'
        'secret_env = "HOOK_SECRET"\nmin_severity = "info"\n'
    )


def start_notifier(config: Path, store: Path, log: Path) -> subprocess.Popen[bytes]:
    """``driftwarden notify`` with its own store, logging to ``log``."""
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


def store_rows(store: Path, query: str) -> list[tuple[object, ...]]:
    if not store.exists():
        return []
    with sqlite3.connect(store) as db:
        try:
            return db.execute(query).fetchall()
        except sqlite3.OperationalError:  # its tables are not created yet
            return []


def notifier_caught_up(bootstrap: str, topics: ClusterTopics, store: Path) -> bool:
    """The notifier's store holds every alert of the alerts topic (its offsets cannot say:
    aborted transactions and commit markers take offsets no record is read at)."""
    held = store_rows(store, "SELECT count(*) FROM alerts")
    return bool(held) and held[0][0] == len(topic_alerts(bootstrap, topics.alerts))


def all_delivered(store: Path) -> bool:
    states = store_rows(store, "SELECT state FROM outbox")
    return bool(states) and all(state == "delivered" for (state,) in states)
