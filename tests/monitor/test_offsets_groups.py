"""Stored offsets belong to a consumer group; stores from before groups are migrated."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from monitor.store.store import CheckpointRows as Checkpoint
from monitor.store.store import Store

OLD_OFFSETS = """
CREATE TABLE offsets (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (topic, partition)
);
INSERT INTO offsets VALUES ('events', 0, 120, 1.0), ('events', 1, 80, 1.0);
"""


def _write(store: Store, group: str | None, offsets: dict[tuple[str, int], int]) -> None:
    with store.transaction() as db:
        store.write_checkpoint(db, Checkpoint(offsets=offsets, group_id=group))


def test_each_group_reads_only_its_own_offsets(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    _write(store, "blue", {("events", 0): 10, ("events", 1): 20})
    _write(store, "green", {("events", 0): 99})
    assert store.stored_offsets("blue") == {("events", 0): 10, ("events", 1): 20}
    assert store.stored_offsets("green") == {("events", 0): 99}
    assert store.stored_offsets("red") == {}
    with pytest.raises(ValueError, match="consumer group"):
        _write(store, None, {("events", 0): 1})
    store.close()


def test_offsets_of_an_old_store_go_to_the_first_group_that_starts(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript(OLD_OFFSETS)
    store = Store(path)
    columns = [row[1] for row in store.db.execute("PRAGMA table_info(offsets)").fetchall()]
    assert columns[0] == "group_id"
    assert store.stored_offsets("") == {("events", 0): 120, ("events", 1): 80}
    assert store.claim_legacy_offsets("blue") == 2
    assert store.stored_offsets("blue") == {("events", 0): 120, ("events", 1): 80}
    assert store.claim_legacy_offsets("green") == 0
    assert store.stored_offsets("green") == {}
    store.close()
    reopened = Store(path)  # migrates once
    assert reopened.stored_offsets("blue") == {("events", 0): 120, ("events", 1): 80}
    reopened.close()


def test_a_group_with_offsets_of_its_own_leaves_the_old_ones_alone(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript(OLD_OFFSETS)
    store = Store(path)
    _write(store, "blue", {("events", 0): 5})
    assert store.claim_legacy_offsets("blue") == 0
    assert store.stored_offsets("blue") == {("events", 0): 5}
    store.close()
