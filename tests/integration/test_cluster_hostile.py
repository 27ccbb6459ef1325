"""The notifier against records no worker wrote on the alerts topic: refused, never fatal."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from kafka import KafkaProducer

from monitor.cluster import deliveries
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


def test_the_notifier_needs_its_deliveries_topic(kafka_bootstrap: str, tmp_path: Path) -> None:
    """Without the topic it keeps finished notifications on, the notifier refuses to start,
    in one line naming it (a rebuild could not tell what it sent)."""
    with cluster_topics(kafka_bootstrap, partitions=2) as topics:
        config = write_cluster_config(
            tmp_path / "c.toml", kafka_bootstrap, topics, tmp_path / "worker.db", free_port()
        )
        config.write_text(config.read_text().replace(topics.deliveries, "no-such-deliveries"))
        log = tmp_path / "notify.log"
        notifier = start_notifier(config, tmp_path / "notify.db", log)
        assert notifier.wait(timeout=60) == 2, log.read_text()[-2000:]
    said = log.read_text().strip().splitlines()[-1]
    assert said.startswith("driftwarden: cluster mode: topic no-such-deliveries does not exist")


def test_records_on_the_deliveries_topic_no_notifier_wrote_are_skipped() -> None:
    assert deliveries._row(b"abc", b'{"state": "delivered", "at": 1.5}') == (
        "abc",
        "delivered",
        1.5,
    )
    for key, value in [
        (None, b'{"state": "delivered", "at": 1}'),
        (b"x" * (deliveries.ID_LIMIT + 1), b'{"state": "delivered", "at": 1}'),
        (b"\xff", b'{"state": "delivered", "at": 1}'),
        (b"abc", None),
        (b"abc", b"not json"),
        (b"abc", b"[1]"),
        (b"abc", b'{"state": "sent", "at": 1}'),
        (b"abc", b'{"state": "delivered", "at": "soon"}'),
        (b"abc", b'{"state": "delivered", "at": 1e999}'),
    ]:
        assert deliveries._row(key, value) is None, (key, value)
