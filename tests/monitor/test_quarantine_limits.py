"""The quarantine's limits: bytes kept per record, records waiting for a checkpoint."""

from __future__ import annotations

import hashlib
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from monitor.cli.progress import Progress
from monitor.config import Config, load_config
from monitor.pipeline.checkpoint import CheckpointResult
from monitor.pipeline.pipeline import Pipeline
from monitor.replay.file_replay import replay_file
from monitor.store.store import REPLAY_GROUP, QuarantinedRecord, Store
from monitor.store.store import CheckpointRows as Checkpoint

ROOT = Path(__file__).resolve().parents[2]
START = 1_790_000_000.0  # 2026-09-21: in the past, as replayed events are


def _config(tmp_path: Path, extra: str = "") -> Config:
    path = tmp_path / "limits.toml"
    path.write_text(f'[store]\npath = "{tmp_path / "store.db"}"\n{extra}\n[[models]]\nname = "m"\n')
    return load_config(path)


def test_a_1_mb_malformed_record_keeps_64_kib_its_length_and_hash(tmp_path: Path) -> None:
    huge = b'{"model": "m", "features": ' + b"[1," * 350_000 + b"oops"
    assert len(huge) > 1_000_000
    events = tmp_path / "events.jsonl"
    good = orjson.dumps({"model": "m", "ts": START, "score": 0.5})
    events.write_bytes(good + b"\n" + huge + b"\n" + b"not json\n")
    config = tmp_path / "q.toml"
    config.write_text('[store]\npath = "x.db"\n[[models]]\nname = "m"\n')
    store = tmp_path / "q.db"
    result = subprocess.run(
        [
            *(sys.executable, "-m", "monitor.cli", "replay", "--config", str(config)),
            *("--input", str(events), "--store", str(store)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(store) as db:
        rows = db.execute(
            "SELECT offset, raw, raw_length, raw_sha256 FROM quarantine ORDER BY offset"
        ).fetchall()
    assert rows == [
        (2, huge[:65536], len(huge), hashlib.sha256(huge).hexdigest()),
        (3, b"not json", 8, hashlib.sha256(b"not json").hexdigest()),
    ]


def test_an_older_store_gains_the_quarantine_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE quarantine (id INTEGER PRIMARY KEY, source TEXT NOT NULL, topic TEXT, "
            "partition INTEGER, offset INTEGER, reason TEXT NOT NULL, raw BLOB, "
            "created_at REAL NOT NULL)"
        )
        db.execute(
            "INSERT INTO quarantine (source, reason, raw, created_at) VALUES ('f', 'r', x'00', 0)"
        )
    for _ in range(2):  # the second open finds the columns there
        store = Store(path)
        with store.transaction() as tx:
            store.write_checkpoint(tx, _checkpoint_of(QuarantinedRecord("f", "r", b"abc")))
        store.close()
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT raw, raw_length, raw_sha256 FROM quarantine").fetchall()
    digest = hashlib.sha256(b"abc").hexdigest()
    assert rows == [(b"\x00", None, None), (b"abc", 3, digest), (b"abc", 3, digest)]


def _checkpoint_of(record: QuarantinedRecord) -> Checkpoint:
    return Checkpoint(quarantined=[record])


class _CountingPipeline(Pipeline):
    """Notes the records quarantined so far and the offsets given at each checkpoint."""

    checkpoints: list[tuple[int, dict[tuple[str, int], int]]]

    def checkpoint(self, offsets: dict[tuple[str, int], int] | None = None) -> CheckpointResult:
        self.checkpoints.append((self.stats.quarantined, dict(offsets or {})))
        return super().checkpoint(offsets)


@pytest.mark.parametrize(
    ("limits", "per_checkpoint"),
    [
        ("quarantine_buffer_records = 10", 10),
        # Each record counts its raw bytes, its reason and 512 bytes: 1,000 bytes makes 2.
        ("quarantine_buffer_bytes = 2000\nquarantine_raw_bytes = 1000", 2),
    ],
)
def test_a_full_quarantine_buffer_calls_a_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limits: str, per_checkpoint: int
) -> None:
    config = _config(tmp_path, extra=f"[limits]\n{limits}\n")
    events = tmp_path / "bad.jsonl"
    with events.open("wb") as out:
        for i in range(95):
            out.write(orjson.dumps({"model": "m", "ts": START + i}) + b"\n")
            out.write(b"x" * 1500 + b"\n")
    checkpoints: list[tuple[int, dict[tuple[str, int], int]]] = []
    monkeypatch.setattr(_CountingPipeline, "checkpoints", checkpoints, raising=False)
    monkeypatch.setattr("monitor.replay.file_replay.Pipeline", _CountingPipeline)
    store = Store(config.store.path)
    result = replay_file(config, store, events, Progress("replay", enabled=False))
    assert result.stats.quarantined == 95
    early = [n for n, _ in checkpoints[:-1]]
    assert early == list(range(per_checkpoint, 95, per_checkpoint))
    assert store.count("quarantine") == 95
    store.close()


@pytest.mark.kafka
def test_a_full_quarantine_buffer_checkpoints_a_kafka_replay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kafka_bootstrap: str, topic: str
) -> None:
    from kafka import KafkaProducer

    from monitor.replay.kafka_replay import _replay_ranges, connect, plan_ranges

    config = _config(tmp_path, extra="[limits]\nquarantine_buffer_records = 10\n")
    values = [orjson.dumps({"model": "m", "ts": START + i}) for i in range(95)]
    values += [b"not json"] * 95
    values[::2], values[1::2] = values[:95], values[95:]  # good, bad, good, bad, ...
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    for value in values:
        producer.send(topic, key=b"m", value=value, partition=0)
    producer.flush()
    producer.close()
    checkpoints: list[tuple[int, dict[tuple[str, int], int]]] = []
    monkeypatch.setattr(_CountingPipeline, "checkpoints", checkpoints, raising=False)
    monkeypatch.setattr("monitor.replay.kafka_replay.Pipeline", _CountingPipeline)
    store = Store(config.store.path)
    consumer = connect([kafka_bootstrap])
    try:
        ranges = [r for r in plan_ranges(consumer, topic, 0.0, None) if r.records]
        result = _replay_ranges(config, store, consumer, ranges, Progress("r", False))
    finally:
        consumer.close()
    assert [(r.partition, r.records) for r in ranges] == [(0, len(values))]
    assert result.stats.quarantined == 95
    # The n-th bad record is at offset 2n - 1: each early checkpoint holds the offset after it.
    assert checkpoints[:-1] == [(n, {(topic, 0): 2 * n}) for n in range(10, 95, 10)]
    assert store.stored_offsets(REPLAY_GROUP) == {(topic, 0): len(values)}
    assert store.count("quarantine") == 95
    store.close()


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[limits]\nquarantine_raw_bytes = 0\n", "'limits.quarantine_raw_bytes' must be at"),
        ("[limits]\nmax_unlisted_models = 1.5\n", "'limits.max_unlisted_models' must be an"),
        ("[limits]\nmax_models = 3\n", "'limits.max_models'"),
        ("[detection]\nmax_features = 0\n", "max_features must be an integer >= 1"),
    ],
)
def test_bad_limits_name_the_key(tmp_path: Path, text: str, named: str) -> None:
    from monitor.errors import ConfigError

    path = tmp_path / "bad.toml"
    path.write_text(text + '[[models]]\nname = "m"\n')
    with pytest.raises(ConfigError, match=re.escape(named)):
        load_config(path)
