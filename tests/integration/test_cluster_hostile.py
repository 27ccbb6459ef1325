"""The notifier against records no worker wrote on the alerts topic: refused, never fatal."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from kafka import KafkaProducer

from monitor.store.store import Store
from simulation.simulator import write_simulation
from tests.integration.cluster_support import (
    cluster_topics,
    committed_total,
    start_notifier,
    store_rows,
    write_cluster_config,
)
from tests.integration.daemon_support import (
    free_port,
    produce_file,
    replay_alerts,
    start_daemon,
    stop,
    wait_until,
)

pytestmark = pytest.mark.kafka


def _part(**fields: object) -> bytes:
    return orjson.dumps(fields)


# Each: (key, value, the words its quarantine reason must hold).
HOSTILE: list[tuple[bytes | None, bytes | None, str]] = [
    (b"fraud", b"not json {", "not JSON"),
    (b"\xff\xfe\x1b[2J", _part(model="fraud", part=0, parts=1), "names no model"),
    (None, _part(model="fraud", part=0, parts=1), "names no model"),
    (b"fraud", _part(model="churn", part=0, parts=1), "whose model is its key"),
    (b"fraud", _part(model="fraud", part=0, parts=10**12), "part and parts"),
    (b"fraud", _part(model="fraud", part="0", parts=1), "part and parts"),
    (b"fraud", _part(model="fraud", part=1, parts=2), "without the ones before"),
    (
        b"fraud",
        _part(
            model="fraud",
            part=0,
            parts=1,
            alerts=[{"detector": 1, "signal": "\x1b[31mred"}],
            signal_history=[],
            performance_windows=[],
        ),
        "not a checkpoint's",
    ),
]


def test_records_no_worker_wrote_are_quarantined_and_the_notifier_goes_on(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    write_simulation(events, events=30_000, seed=17)
    notify_store, notify_log = tmp_path / "notify.db", tmp_path / "notify.log"
    with cluster_topics(kafka_bootstrap, partitions=2) as topics:
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
        for key, value, _ in HOSTILE:  # before the workers' records, on every partition
            for partition in (0, 1):
                producer.send(topics.alerts, key=key, value=value, partition=partition)
        producer.flush()
        producer.close()
        config = write_cluster_config(
            tmp_path / "c.toml", kafka_bootstrap, topics, tmp_path / "worker.db", free_port()
        )
        expected = replay_alerts(config, events, tmp_path / "replay.db")
        assert expected, "the stream holds drift"
        total = produce_file(kafka_bootstrap, topics.events, events)
        worker = start_daemon(config, tmp_path / "worker.log")
        notifier = start_notifier(config, notify_store, notify_log)
        try:
            wait_until(
                lambda: committed_total(kafka_bootstrap, topics.group) >= total, 240, "the stream"
            )
            wait_until(
                lambda: (
                    store_rows(notify_store, "SELECT count(*) FROM alerts") == [(len(expected),)]
                ),
                90,
                "the notifier to file every alert",
            )
        finally:
            worker.kill()
            worker.wait(timeout=30)
            code = stop(notifier)
    assert code == 0, notify_log.read_text()[-3000:]
    notified = Store(notify_store)
    try:
        assert notified.alerts() == expected
    finally:
        notified.close()
    refused = store_rows(
        notify_store,
        "SELECT partition, reason, raw FROM quarantine WHERE source = 'alerts_topic' ORDER BY id",
    )
    assert len(refused) == 2 * len(HOSTILE)
    for partition in (0, 1):
        rows = [(reason, raw) for p, reason, raw in refused if p == partition]
        for (reason, raw), (_, value, words) in zip(rows, HOSTILE, strict=True):
            assert words in str(reason)
            assert raw == (value or b"")
            assert "\x1b" not in str(reason)  # escaped before it reaches a terminal
    assert '"msg":"alerts topic record refused"' in notify_log.read_text()
