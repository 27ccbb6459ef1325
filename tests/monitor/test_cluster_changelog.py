"""Cluster mode's changelog without a broker: what a checkpoint changed, as records, and back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from monitor.audit.chain import AuditLog
from monitor.cluster import cache, publish
from monitor.cluster.capture import STATE_TABLES, ChangeCapture
from monitor.cluster.records import CHUNK_BYTES, KafkaRecord, chunk_count, row_key
from monitor.cluster.restore import Restored, apply
from monitor.cluster.settings import ClusterTopics
from monitor.config import parse_config
from monitor.pipeline.pipeline import Pipeline
from monitor.pipeline.routing import route
from monitor.store.store import Store
from simulation.simulator import write_simulation

TOPICS = ClusterTopics("changelog", "alerts", "quarantine")


def _open(path: Path) -> tuple[Store, ChangeCapture]:
    store = Store(path)
    with store.transaction() as db:
        cache.ensure_tables(db)
    return store, ChangeCapture(store.db)


def _publish(store: Store, capture: ChangeCapture, placed: dict[str, int]) -> list[KafkaRecord]:
    with store.transaction() as db:
        return publish.outgoing(db, capture, TOPICS, placed).records


def _latest(records: list[KafkaRecord]) -> dict[int, dict[bytes, bytes | None]]:
    """What a compacted changelog keeps: the latest value of each key, per partition."""
    latest: dict[int, dict[bytes, bytes | None]] = {}
    for record in records:
        if record.topic == TOPICS.changelog:
            assert record.partition is not None
            latest.setdefault(record.partition, {})[record.key] = record.value
    return latest


def _state(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    return {
        table: store.db.execute(f"SELECT * FROM [{table}] ORDER BY 1, 2").fetchall()
        for table in STATE_TABLES
        if table != "model_state"
    } | {
        "model_state": store.db.execute(
            "SELECT model, state, events FROM model_state ORDER BY model"
        ).fetchall()
    }


def _checkpointed(
    tmp_path: Path, events: int, seed: int, malformed: int = 0
) -> tuple[Store, ChangeCapture, list[KafkaRecord]]:
    """A simulated stream of fraud and churn through a pipeline into ``a.db``, and its
    one checkpoint's records, fraud's on partition 0 and churn's on 1."""
    path = tmp_path / "events.jsonl"
    write_simulation(path, events=events, seed=seed, malformed=malformed)
    config = parse_config({"models": [{"name": "fraud"}, {"name": "churn"}]}, "test")
    source, capture = _open(tmp_path / "a.db")
    pipeline = Pipeline(config, source, offsets_group="g")
    bounds = config.events.replay_bounds(2e9)
    with path.open("rb") as lines:
        for line in lines:
            route(pipeline, line.rstrip(b"\n"), None, bounds, "file")
    with source.transaction() as db:
        pipeline.checkpoint()
        records = publish.outgoing(db, capture, TOPICS, {"fraud": 0, "churn": 1}).records
    return source, capture, records


def test_a_checkpoints_state_restores_into_an_empty_store_row_for_row(tmp_path: Path) -> None:
    placed = {"fraud": 0, "churn": 1}
    source, capture, records = _checkpointed(tmp_path, events=15_000, seed=3, malformed=5)
    assert {r.partition for r in records if r.topic == TOPICS.changelog} == {0, 1}
    alerts = publish.alert_rows([r.value for r in records if r.topic == TOPICS.alerts and r.value])
    assert [a["fingerprint"] for a in alerts] == [a["fingerprint"] for a in source.alerts()]
    assert len([r for r in records if r.topic == TOPICS.quarantine]) == 5
    assert _publish(source, capture, placed) == [], "published notes are cleared"

    target, target_capture = _open(tmp_path / "b.db")
    result = Restored([0, 1], full=[0, 1])
    apply(target, target_capture, TOPICS.changelog, _latest(records), {0: 7, 1: 9}, result)
    assert result.models == {"fraud", "churn"}
    assert _state(target) == _state(source)
    assert target.load_model_state("fraud") == source.load_model_state("fraud")
    assert cache.changelog_offset(target.db, TOPICS.changelog, 1) == 9
    with target.transaction() as db:  # a cache from before a tombstone could be compacted away
        db.execute("UPDATE cluster_changelog SET reached_at = reached_at - 13 * 3600")
    assert cache.changelog_offset(target.db, TOPICS.changelog, 1) is None
    assert _publish(target, target_capture, placed) == [], "a restore is not published again"


def test_a_row_over_the_chunk_size_goes_in_chunks_and_its_stale_chunks_are_tombstoned(
    tmp_path: Path,
) -> None:
    source, capture = _open(tmp_path / "a.db")
    big = "x" * (2 * CHUNK_BYTES + 10)
    with source.transaction() as db:
        db.execute("INSERT INTO state_blobs (model, digest, data) VALUES ('m', 'd1', ?)", [big])
    first = _publish(source, capture, {"m": 2})
    assert [len(r.value or b"") <= CHUNK_BYTES for r in first] == [True] * 4
    head = first[-1]
    assert head.value is not None and chunk_count(head.value) == 3
    with source.transaction() as db:
        db.execute("UPDATE state_blobs SET data = 'small' WHERE digest = 'd1'")
    second = _publish(source, capture, {"m": 2})
    assert [r.value is None for r in second] == [False, True, True, True], "3 stale chunks"

    target, target_capture = _open(tmp_path / "b.db")
    only_first = Restored([2], full=[2])
    apply(target, target_capture, TOPICS.changelog, _latest(first), {2: 5}, only_first)
    assert target.db.execute("SELECT data FROM state_blobs").fetchall() == [(big,)]
    both = Restored([2])
    apply(target, target_capture, TOPICS.changelog, _latest(second), {2: 9}, both)
    assert target.db.execute("SELECT data FROM state_blobs").fetchall() == [("small",)]

    with source.transaction() as db:
        db.execute("DELETE FROM state_blobs")
    gone = _publish(source, capture, {"m": 2})
    assert [(r.value, r.partition) for r in gone] == [(None, 2)]
    apply(target, target_capture, TOPICS.changelog, _latest(gone), {2: 10}, Restored([2]))
    assert target.count("state_blobs") == 0


def test_a_row_with_a_chunk_missing_is_skipped_not_written_wrong(tmp_path: Path) -> None:
    """A compaction or a writer that is no daemon can leave a chunked row incomplete: the
    row is skipped and counted (its model then loads without it, as a lost state does),
    never written from the wrong bytes, and the restore goes on."""
    source, capture = _open(tmp_path / "a.db")
    with source.transaction() as db:
        db.execute(
            "INSERT INTO state_blobs (model, digest, data) VALUES ('m', 'd', ?)",
            ["y" * (CHUNK_BYTES + 1)],
        )
    records = _publish(source, capture, {"m": 0})
    latest = _latest(records)
    del latest[0][records[0].key]
    target, target_capture = _open(tmp_path / "b.db")
    result = Restored([0])
    apply(target, target_capture, TOPICS.changelog, latest, {0: 3}, result)
    assert result.refused == 1
    assert target.count("state_blobs") == 0, "nothing of the incomplete row is written"
    assert cache.changelog_offset(target.db, TOPICS.changelog, 0) == 3, "the restore went on"


def test_rows_of_a_model_with_no_partition_yet_wait_for_the_next_checkpoint(
    tmp_path: Path,
) -> None:
    source, capture = _open(tmp_path / "a.db")
    with source.transaction() as db:
        db.execute("INSERT INTO state_blobs (model, digest, data) VALUES ('m', 'd', 'v')")
    assert _publish(source, capture, {}) == []
    assert [r.partition for r in _publish(source, capture, {"m": 4})] == [4]


def test_a_models_checkpoint_over_the_record_limit_goes_in_numbered_parts(tmp_path: Path) -> None:
    source, capture = _open(tmp_path / "a.db")
    rows = [("m", "ks", f"feature:{i:05d}", float(i), "tested", "ok", "info") for i in range(9000)]
    with source.transaction() as db:
        db.conn.executemany(
            "INSERT INTO signal_history (model, detector, signal, event_ts, change, state, "
            "severity) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(*row[:2], row[2] + "x" * 100, *row[3:]) for row in rows],
        )
        db.execute(
            "INSERT INTO alerts (fingerprint, model, detector, signal, severity, event_ts, "
            "created_at, details) VALUES ('f', 'm', 'ks', 's', 'warning', 1.5, 0, '{}')"
        )
    records = _publish(source, capture, {})
    parts = [orjson.loads(r.value or b"") for r in records]
    assert len(parts) >= 2
    assert all(len(r.value or b"") <= CHUNK_BYTES for r in records)
    assert [(p["part"], p["parts"]) for p in parts] == [(i, len(parts)) for i in range(len(parts))]
    history = [row["event_ts"] for p in parts for row in p["signal_history"]]
    assert history == [float(i) for i in range(9000)], "every row once, in order"
    assert publish.alert_rows([r.value or b"" for r in records]) == [
        {
            "fingerprint": "f",
            "model": "m",
            "detector": "ks",
            "signal": "s",
            "severity": "warning",
            "event_ts": 1.5,
            "details": "{}",
            "kind": None,  # the kind of its incident: none here
        }
    ]


def _request(**changes: object) -> bytes:
    """A reset request for fraud on partition 0, as `driftwarden baseline reset` writes it."""
    row = {
        "model": "fraud",
        "request_id": "r1",
        "kind": "reset",
        "partition": 0,
        "requested_at": 1.5,
        "requested_by": "ops",
    }
    return orjson.dumps(row | changes)


def test_changelog_records_no_daemon_wrote_are_skipped_and_counted(tmp_path: Path) -> None:
    """Anyone allowed to write to the changelog topic can send anything; a restore skips
    what does not decode as a daemon's row and restores the rest as before."""
    source, _, records = _checkpointed(tmp_path, events=6_000, seed=4)
    latest = _latest(records)
    ghost = row_key("model_state", ["ghost"])
    request = row_key("baseline_requests", ["fraud", "r1"])
    hostile: list[tuple[bytes, bytes | None]] = [
        (b"not json", b"{}"),  # keys that are no table's row
        (b'{"table": 1}', b"{}"),
        (b"[]", b"{}"),
        (b'["model_state", {"model": 1}]', b"{}"),
        (ghost, b"\xff not json"),  # values that are no row
        (ghost, b"[1, 2]"),
        (ghost, b'{"model": "ghost", "state": [1], "events": 1, "updated_at": 1.0}'),
        (ghost, b'{"$chunks": 1000000000000, "$sha256": "00"}'),
        (ghost, b'{"model": "ghost", "events": 1, "updated_at": 1.0}'),  # no state: NOT NULL
        (
            ghost,
            b'{"model": "fraud", "state": "{}", "events": 1, "updated_at": 1.0}',
        ),  # not its key's
        (ghost, b'{"$chunks": 1, "$sha256": "00"}'),  # its chunk never came
        (ghost, b'{"$chunks": 1}'),
        (request, _request(partition=5)),  # a request naming another partition
        (request, _request(kind="wipe")),
        (request, _request(requested_at="soon")),
        (request, _request(sample=[1])),
    ]
    target, target_capture = _open(tmp_path / "b.db")
    for key, value in hostile:
        trial = {p: dict(rows) for p, rows in latest.items()}
        trial[0][key] = value
        result = Restored([0, 1], full=[0, 1])
        apply(target, target_capture, TOPICS.changelog, trial, {0: 7, 1: 9}, result)
        assert result.refused == 1, (key, value)
        assert result.models == {"fraud", "churn"}
        assert _state(target) == _state(source), key
        assert target.load_model_state("ghost") is None


def test_the_notifier_keeps_the_history_and_baseline_log_a_worker_keeps(tmp_path: Path) -> None:
    """Checkpoints of a worker whose model's history outgrows ``[history] retention_days``
    (about half an hour of event time here), applied as the notifier applies the alerts
    topic: the notifier's store holds the worker's history row for row (the old rows gone
    from both), and the model's warm-up in its audit log."""
    import time

    import numpy as np

    from monitor.cluster import incoming
    from monitor.incidents.grouping import AlertPolicy

    config = parse_config(
        {
            "models": [{"name": "m"}],
            "detection": {"reference_size": 400, "window": 200},
            "history": {"retention_days": 0.02},
        },
        "test",
    )
    worker, capture = _open(tmp_path / "worker.db")
    pipeline = Pipeline(config, worker, offsets_group="g")
    notifier = Store(tmp_path / "notify.db")
    policy = AlertPolicy(tuple(config.alerting.group_by))
    start = time.time() - 86_400
    values = np.random.default_rng(5).normal(0.0, 1.0, size=6000)
    bounds = config.events.replay_bounds(time.time())
    published = 0
    for first in range(0, 6000, 500):
        for i in range(first, first + 500):
            line = orjson.dumps(
                {"model": "m", "ts": start + i, "features": {"x": float(values[i])}}
            )
            route(pipeline, line, None, bounds, "file")
        result = pipeline.checkpoint()
        with worker.transaction() as db:
            records = publish.outgoing(db, capture, TOPICS, {"m": 0}, result.history_before).records
        with notifier.transaction() as db:
            for record in records:
                if record.topic == TOPICS.alerts and record.value is not None:
                    whole = incoming.merged([record.value])
                    published += len(whole["signal_history"])
                    incoming.apply(db, whole, policy, time.time())
    columns = "model, detector, signal, event_ts, change, state, severity, statistic, p_value"
    query = f"SELECT {columns} FROM signal_history ORDER BY event_ts, detector, signal, change"
    kept = worker.db.execute(query).fetchall()
    assert kept == notifier.db.execute(query).fetchall()
    assert 0 < len(kept) < published, "the oldest history went"
    assert min(row[3] for row in kept) >= start + 6000 - 0.02 * 86_400 - 500
    log = notifier.db.execute("SELECT subject, content FROM audit WHERE kind = 'baseline_change'")
    assert [(s, orjson.loads(c)["source"]) for s, c in log.fetchall()] == [("model:m", "warm-up")]
    worker.close()
    notifier.close()


def test_an_upsert_of_a_row_already_noted_is_noted_once(tmp_path: Path) -> None:
    """A trigger fired by an upsert's DO UPDATE runs under the upsert's ABORT: a note
    taken with INSERT OR IGNORE failed there on a row changed twice in one checkpoint."""
    store, capture = _open(tmp_path / "a.db")
    upsert = (
        "INSERT INTO label_joined (model, first, bits) VALUES (?, ?, ?) "
        "ON CONFLICT (model, first) DO UPDATE SET bits = bits | excluded.bits"
    )
    with store.transaction() as db:
        for bits in (1, 2, 4):  # an insert, then two updates of the same row
            db.conn.execute(upsert, ["fraud", 0, bits])
        db.conn.execute(upsert, ["fraud", 64, 1])
    changed = [(table, key) for table, key, _ in capture.changed()]
    assert sorted(changed) == [("label_joined", ["fraud", 0]), ("label_joined", ["fraud", 64])]
    assert store.db.execute("SELECT bits FROM label_joined WHERE first = 0").fetchone() == (7,)


def test_the_notes_of_models_gone_to_another_member_are_forgotten(tmp_path: Path) -> None:
    """A change noted here but never committed (a failed transaction, a load before it)
    must not be published once the model's partition has moved: its new owner publishes
    the model's state, from the changelog."""
    store, capture = _open(tmp_path / "a.db")
    with store.transaction() as db:
        for model in ("gone", "kept"):
            db.execute(
                "INSERT INTO model_state (model, state, events, updated_at) VALUES (?, '{}', 1, 1)",
                [model],
            )
            AuditLog.append(db, "baseline_change", f"model:{model}", {"source": "reset"})
    with store.transaction():
        capture.forget({"gone"})
    assert [key for _, key, _ in capture.changed()] == [["kept"]]
    assert [row["subject"] for row in capture.written("audit")] == ["model:kept"]
