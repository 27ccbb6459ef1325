"""Malformed records go to the quarantine and, when configured, to a dead-letter topic."""

from __future__ import annotations

import hashlib
import time
import urllib.request
from pathlib import Path

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from monitor.store.store import Store
from simulation.simulator import MALFORMED_KINDS
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


def _metrics(port: int) -> dict[tuple[str, str], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, sample.labels.get("model", "")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_malformed_records_reach_the_dead_letter_topic(
    kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    """With the caps: a large malformed record goes whole to the dead letters and cut
    to [limits] quarantine_raw_bytes to the quarantine; a full quarantine buffer calls
    a checkpoint; each cap that bites shows in /metrics."""
    dead = f"{topic}-dead"
    store = tmp_path / "live.db"
    port = free_port()
    config = write_config(tmp_path / "live.toml", kafka_bootstrap, topic, store, port)
    text = config.read_text().replace(
        "session_timeout_ms = 6000", f'session_timeout_ms = 6000\ndead_letter_topic = "{dead}"'
    )
    config.write_text(text + "\n[limits]\nquarantine_buffer_records = 5\n")
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    now = time.time()
    large = b"{" + b"x" * 200_000
    bad = [MALFORMED_KINDS[i % len(MALFORMED_KINDS)] for i in range(39)] + [large]
    wide = {"model": "fraud", "ts": now - 7200, "features": {f"f{j}": j for j in range(600)}}
    producer.send(topic, key=b"fraud", value=orjson.dumps(wide))
    for i in range(400):
        good = f'{{"model": "fraud", "ts": {now - 3600 + i}, "score": 0.5}}'.encode()
        producer.send(topic, key=b"fraud", value=good)
        if i % 10 == 0:
            producer.send(topic, key=b"fraud", value=bad[i // 10])
    for i in range(5):
        producer.send(topic, key=b"ghost", value=f'{{"model": "ghost{i}", "ts": {now}}}'.encode())
    producer.flush()
    producer.close()
    daemon = start_daemon(config, tmp_path / "daemon.log")
    try:
        wait_until(lambda: consumed(store) >= 446, 120, "every record checkpointed")
        wait_until(
            lambda: _metrics(port).get(("driftwarden_quarantine_truncated_total", "")) == 1,
            30,
            "the truncation counted",
        )
        metrics = _metrics(port)
    finally:
        assert stop(daemon) == 0
    assert metrics[("driftwarden_features_dropped_total", "fraud")] == 100
    assert metrics[("driftwarden_quarantine_checkpoints_total", "")] >= 1
    assert metrics[("driftwarden_records_consumed_total", "(unlisted)")] == 5
    assert metrics[("driftwarden_records_consumed_total", "fraud")] == 401
    live = Store(store)
    try:
        rows = live.db.execute(
            "SELECT reason, raw, raw_length, raw_sha256 FROM quarantine"
        ).fetchall()
    finally:
        live.close()
    assert len(rows) == 40 and all(reason for reason, *_ in rows)
    whole = {(raw, length, digest) for _, raw, length, digest in rows if length == len(raw)}
    assert whole == {(b, len(b), hashlib.sha256(b).hexdigest()) for b in bad[:-1]}
    cut = [row[1:] for row in rows if row[2] != len(row[1])]
    assert cut == [(large[:65536], len(large), hashlib.sha256(large).hexdigest())]

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
