"""The daemon's default [kafka] settings keep its loop busy on one busy partition.

With a poll smaller than a partition fetch, kafka-python leaves the part-read
partition out of the next fetch request, which the broker holds for the other,
empty partitions; the daemon then waited idle most of its time (issue 16). The
daemon measures that wait itself (``driftwarden_poll_waiting_seconds`` over
``driftwarden_poll_behind_seconds``): the test reads that share, not a speed.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import orjson
import pytest
from kafka import KafkaProducer

from tests.integration.daemon_support import (
    free_port,
    metric_totals,
    readyz,
    start_daemon,
    stop,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.kafka

EVENTS = 40_000


def _produce_one_model(bootstrap: str, topic: str) -> None:
    """Every event of one model, keyed by it: one partition of the topic holds them all."""
    rng = random.Random(16)
    start = time.time() - 86_400
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=256 * 1024)
    for i in range(EVENTS):
        features: dict[str, object] = {f"x{j}": round(rng.gauss(0, 1), 4) for j in range(16)}
        features.update({f"c{j}": rng.choice("abcd") for j in range(4)})
        event = {
            "model": "fraud",
            "ts": start + i * 0.01,
            "client": f"client-{i % 37}",
            "id": f"req-{i}",
            "features": features,
            "score": round(rng.random(), 4),
        }
        producer.send(topic, key=b"fraud", value=orjson.dumps(event))
    producer.flush()
    producer.close()


def test_the_defaults_do_not_wait_idle_while_one_partition_has_records(
    kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    # The backlog is in place before the daemon starts: it is behind from its first fetch.
    _produce_one_model(kafka_bootstrap, topic)
    port = free_port()
    config = write_config(
        tmp_path / "live.toml", kafka_bootstrap, topic, tmp_path / "live.db", port, "dw-fetch"
    )
    process = start_daemon(config, tmp_path / "daemon.log")
    try:
        wait_until(lambda: readyz(port)[0] == 200, 60, "/readyz")
        wait_until(
            lambda: metric_totals(port).get("driftwarden_records_consumed_total", 0) >= EVENTS,
            180,
            "the daemon to consume the backlog",
        )
        figures = metric_totals(port)
    finally:
        code = stop(process)
    assert code == 0
    behind = figures["driftwarden_poll_behind_seconds_total"]
    waiting = figures["driftwarden_poll_waiting_seconds_total"]
    # Several fetches' worth of records (~12 MB in 1 MB fetches) were consumed while behind.
    assert behind > 0
    # With polls of 500 records the broker held every other fetch for 500 ms and the
    # share was ~0.9; pipelined fetches keep it near 0 (room left for a loaded machine).
    assert waiting / behind < 0.4, (waiting, behind)
