"""Malformed records go to the quarantine and, when configured, to a dead-letter topic."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from monitor.simulator import MALFORMED_KINDS
from monitor.store import Store
from tests.integration.daemon_support import (
    consumed,
    free_port,
    start_daemon,
    stop,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.kafka


def test_malformed_records_reach_the_dead_letter_topic(
    kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    dead = f"{topic}-dead"
    store = tmp_path / "live.db"
    config = write_config(tmp_path / "live.toml", kafka_bootstrap, topic, store, free_port())
    text = config.read_text().replace(
        "session_timeout_ms = 6000", f'session_timeout_ms = 6000\ndead_letter_topic = "{dead}"'
    )
    config.write_text(text)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    bad = [MALFORMED_KINDS[i % len(MALFORMED_KINDS)] for i in range(40)]
    for i in range(400):
        good = f'{{"model": "fraud", "ts": {1.8e9 + i}, "score": 0.5}}'.encode()
        producer.send(topic, key=b"fraud", value=good)
        if i % 10 == 0:
            producer.send(topic, key=b"fraud", value=bad[i // 10])
    producer.flush()
    producer.close()
    daemon = start_daemon(config, tmp_path / "daemon.log")
    try:
        wait_until(lambda: consumed(store) >= 440, 120, "every record checkpointed")
    finally:
        assert stop(daemon) == 0
    live = Store(store)
    try:
        reasons = [r for (r,) in live.db.execute("SELECT reason FROM quarantine")]
    finally:
        live.close()
    assert len(reasons) == 40 and all(reasons)

    reader = KafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
    partitions = [TopicPartition(dead, p) for p in reader.partitions_for_topic(dead) or ()]
    reader.assign(partitions)
    reader.seek_to_beginning(*partitions)
    letters: list[bytes] = []
    deadline = time.monotonic() + 30
    while len(letters) < 40 and time.monotonic() < deadline:
        for records in reader.poll(timeout_ms=500).values():
            letters += [r.value for r in records]
    reader.close()
    assert sorted(letters) == sorted(bad)
