"""The Reproduce command of a store written from Kafka, run against a real broker."""

from __future__ import annotations

import shlex
import sqlite3
import uuid
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from kafka.admin import KafkaAdminClient, NewTopic

from simulation.simulator import write_simulation
from simulation.traffic import produce_file
from tests.report.test_report_history import _plots, _render

pytestmark = pytest.mark.kafka


@pytest.fixture
def produced_topic(kafka_bootstrap: str) -> Iterator[str]:
    """A fresh topic of one partition (record times: when produced, as in production)."""
    topic = f"report-{uuid.uuid4().hex[:10]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, request_timeout_ms=30_000)
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    try:
        yield topic
    finally:
        admin.delete_topics([topic])
        admin.close()


def _alerts(store: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(store) as db:
        return db.execute(
            "SELECT model, detector, signal, severity, event_ts, details FROM alerts ORDER BY id"
        ).fetchall()


def test_the_reproduce_command_of_a_kafka_store_replays_the_same_alerts(
    kafka_bootstrap: str, produced_topic: str, driftwarden: Any, tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    write_simulation(events, 40_000, seed=11)
    produce_file(kafka_bootstrap, produced_topic, events)
    config = tmp_path / "kafka.toml"
    config.write_text(
        f'[store]\npath = "{tmp_path / "unused.db"}"\n\n[kafka]\n'
        f'bootstrap_servers = "{kafka_bootstrap}"\ntopics = ["not-this-one"]\n'
        'group_id = "unused"\n\n[[models]]\nname = "fraud"\n\n[[models]]\nname = "churn"\n'
    )
    original = tmp_path / "original.db"
    done = driftwarden(
        "replay", "--config", str(config), "--topic", produced_topic, "--since", "0",
        "--store", str(original),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(original) as db:
        number = db.execute("SELECT min(id) FROM incidents").fetchone()[0]
    html = _render(
        driftwarden, original, tmp_path / "r.html", "--config", str(config), "--incident",
        str(number),
    )  # fmt: skip
    (block,) = _plots(html).reproduce
    lines = unescape(block).splitlines()
    assert len(lines) == 2, lines  # from the topic's start, and a shorter range
    for i, line in enumerate(lines):
        args = shlex.split(line)
        assert args[args.index("--topic") + 1] == produced_topic, "the topic read, not the config's"
        new = tmp_path / f"new-{i}.db"
        args = [str(new) if a == "NEW.db" else a for a in args]
        done = driftwarden(*args[1:])
        assert done.returncode == 0, done.stderr
        replayed = _alerts(new)
        if i == 0:
            assert replayed == _alerts(original) and len(replayed) >= 10
        else:
            assert replayed, "the shorter range re-finds drift"
