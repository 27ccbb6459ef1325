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
    readyz,
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
    now = time.time()
    for i in range(400):
        good = f'{{"model": "fraud", "ts": {now - 3600 + i}, "score": 0.5}}'.encode()
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


POISON = (
    b'{"model":"fraud","ts":%d,"features":{"\\ud800":1.0},"score":0.5}',
    b'{"model":"fraud","ts":%d,"client":"\\udfff","score":0.5}',
    b'{"model":"fraud","ts":%d,"type":"metric","name":"\\ud800","value":1}',
    b'{"model":"fraud","ts":%d,"prediction":"\\ud800"}',
    b'{"model":"fraud","ts":%d,"features":{"amount":1e308,"x":-1.7e308},"score":1e308}',
    b'{"model":"fraud","ts":1e18,"score":0.5,"n":%d}',
    b'{"model":"fraud","ts":"9999-12-31T23:59:59Z","score":0.5,"n":%d}',
    b'{"model":"fraud\xff","ts":%d}',
)


def test_poison_records_never_stop_the_daemon(
    kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    """Records that once crashed the checkpoint for good are quarantined; the stream goes on
    through them, and a restarted daemon continues instead of dying on them again."""
    store, port = tmp_path / "live.db", free_port()
    config = write_config(tmp_path / "live.toml", kafka_bootstrap, topic, store, port)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    now = int(time.time())
    for i in range(3000):
        good = f'{{"model": "fraud", "ts": {now - 7200 + i}, "features": {{"a": {i % 7}}}}}'
        producer.send(topic, key=b"fraud", value=good.encode())
    for template in POISON:
        producer.send(topic, key=b"fraud", value=template % now)
    for i in range(1000):
        good = f'{{"model": "fraud", "ts": {now - 3600 + i}, "features": {{"a": {i % 7}}}}}'
        producer.send(topic, key=b"fraud", value=good.encode())
    producer.flush()
    producer.close()
    daemon = start_daemon(config, tmp_path / "daemon.log")
    try:
        wait_until(lambda: consumed(store) >= 4000 + len(POISON), 120, "every record checkpointed")
    finally:
        assert stop(daemon) == 0, (tmp_path / "daemon.log").read_text()[-2000:]
    live = Store(store)
    try:
        reasons = [r for (r,) in live.db.execute("SELECT reason FROM quarantine ORDER BY offset")]
        events = live.db.execute("SELECT events FROM model_state WHERE model = 'fraud'").fetchone()
    finally:
        live.close()
    # The 1e308 record is data (invalid values), not malformed: the other seven are quarantined.
    assert len(reasons) == len(POISON) - 1
    assert sum("lone surrogate" in r for r in reasons) == 4
    assert sum("outside the accepted event times" in r for r in reasons) == 2
    assert any(r.startswith("not valid UTF-8") for r in reasons)
    assert events == (4001,)
    again = start_daemon(config, tmp_path / "daemon.log")
    try:
        wait_until(lambda: readyz(port)[0] == 200, 90, "the restarted daemon ready")
        assert again.poll() is None, "the daemon stopped on its own"
    finally:
        assert stop(again) == 0
