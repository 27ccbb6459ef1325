"""A kafka-python 3.x consumer group against the real broker: consume, commit, resume."""

from __future__ import annotations

import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

pytestmark = pytest.mark.kafka


def _consume(
    bootstrap: str, topic: str, group: str, want: int, timeout_s: float = 60
) -> list[bytes]:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=100,
    )
    seen: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(seen) < want and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500, max_records=want - len(seen)).values():
                seen.extend(r.value for r in records)
        consumer.commit()
    finally:
        consumer.close()
    return seen


def test_group_consumes_commits_and_resumes_after_restart(kafka_bootstrap: str, topic: str) -> None:
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=5)
    sent = [f"event-{i}".encode() for i in range(300)]
    for i, value in enumerate(sent):
        producer.send(topic, key=f"model-{i % 7}".encode(), value=value)
    producer.flush()
    producer.close()

    first = _consume(kafka_bootstrap, topic, "resume-group", want=120)
    assert len(first) == 120
    second = _consume(kafka_bootstrap, topic, "resume-group", want=180)
    assert len(second) == 180
    assert sorted(first + second) == sorted(sent), "a restarted member re-read or skipped records"

    check = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id="resume-group")
    try:
        committed = sum(check.committed(TopicPartition(topic, p)) or 0 for p in range(3))
    finally:
        check.close()
    assert committed == 300
