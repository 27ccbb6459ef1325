"""The hash-chained audit log names the first row that was changed, inserted or deleted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.audit import chain as audit
from monitor.audit.chain import AuditLog, row_hash
from monitor.store import schema
from monitor.store.store import Store

ROWS = 8


def _filled(path: Path) -> Store:
    store = Store(path)
    schema.ensure_schema(store.db)
    with store.transaction() as db:
        for i in range(ROWS):
            kind = audit.KINDS[i % len(audit.KINDS)]
            AuditLog.append(db, kind, f"subject:{i}", {"n": i, "text": "é ✓"}, ts=1e9 + i)
    return store


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[Store]:
    store = _filled(tmp_path / "audit.db")
    yield store
    store.close()


def _row(store: Store, row_id: int) -> tuple[Any, ...]:
    return tuple(
        store.db.execute(
            "SELECT id, ts, kind, subject, content, prev_hash, hash FROM audit WHERE id = ?",
            [row_id],
        ).fetchone()
    )


def test_an_untouched_chain_is_intact(chain: Store) -> None:
    assert AuditLog.verify(chain.db) is None
    assert AuditLog.verify(chain.db, anchor=AuditLog.head(chain.db)) is None


@pytest.mark.parametrize("row_id", range(1, ROWS + 1))
@pytest.mark.parametrize(
    "column, value",
    [
        ("content", '{"n":999}'),
        ("kind", "alert"),
        ("subject", "forged"),
        ("ts", 0.5),
        ("prev_hash", "f" * 64),
        ("hash", "0" * 64),
    ],
)
def test_editing_any_column_of_any_row_names_that_row(
    chain: Store, row_id: int, column: str, value: object
) -> None:
    if column == "kind" and _row(chain, row_id)[2] == "alert":
        value = "notification"
    chain.db.execute(f"UPDATE audit SET {column} = ? WHERE id = ?", [value, row_id])
    problem = AuditLog.verify(chain.db)
    assert problem is not None and problem[0] == row_id, problem


@pytest.mark.parametrize("row_id", range(1, ROWS))
def test_editing_a_row_and_recomputing_its_hash_names_that_row(chain: Store, row_id: int) -> None:
    _, ts, kind, subject, _, prev, _ = _row(chain, row_id)
    content = '{"n":-1}'
    forged = row_hash(prev, row_id, ts, kind, subject, content)
    chain.db.execute(
        "UPDATE audit SET content = ?, hash = ? WHERE id = ?", [content, forged, row_id]
    )
    problem = AuditLog.verify(chain.db)
    assert problem is not None and problem[0] == row_id, problem
    assert "changed" in problem[1]


@pytest.mark.parametrize("row_id", range(1, ROWS))
def test_deleting_any_row_names_it(chain: Store, row_id: int) -> None:
    chain.db.execute("DELETE FROM audit WHERE id = ?", [row_id])
    problem = AuditLog.verify(chain.db)
    assert problem is not None and problem[0] == row_id, problem
    assert problem[1].startswith(f"row {row_id} is missing")


@pytest.mark.parametrize("row_id", range(1, ROWS))
def test_deleting_a_row_and_renumbering_names_its_place(chain: Store, row_id: int) -> None:
    chain.db.execute("DELETE FROM audit WHERE id = ?", [row_id])
    chain.db.execute("UPDATE audit SET id = -(id - 1) WHERE id > ?", [row_id])
    chain.db.execute("UPDATE audit SET id = -id WHERE id < 0")
    problem = AuditLog.verify(chain.db)
    assert problem is not None and problem[0] == row_id, problem


@pytest.mark.parametrize("row_id", range(1, ROWS + 1))
def test_inserting_a_well_formed_row_names_it(chain: Store, row_id: int) -> None:
    """Even a forger who computes a valid hash for the new row is caught at that row."""
    chain.db.execute("UPDATE audit SET id = -(id + 1) WHERE id >= ?", [row_id])
    chain.db.execute("UPDATE audit SET id = -id WHERE id < 0")
    prev = _row(chain, row_id - 1)[6] if row_id > 1 else audit.GENESIS
    content = '{"forged":true}'
    digest = row_hash(prev, row_id, 1e9, "alert", "alert:0", content)
    chain.db.execute(
        "INSERT INTO audit (id, ts, kind, subject, content, prev_hash, hash) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [row_id, 1e9, "alert", "alert:0", content, prev, digest],
    )
    problem = AuditLog.verify(chain.db)
    assert problem is not None and problem[0] == row_id, problem
    assert "inserted" in problem[1]


def test_appending_a_forged_row_without_the_key_is_caught(chain: Store) -> None:
    chain.db.execute(
        "INSERT INTO audit (id, ts, kind, subject, content, prev_hash, hash) "
        "VALUES (?, 1e9, 'alert', 'alert:0', '{}', ?, ?)",
        [ROWS + 1, "1" * 64, "2" * 64],
    )
    assert _first_bad(chain) == ROWS + 1


def test_cutting_off_the_end_needs_the_anchor(chain: Store) -> None:
    anchor = AuditLog.head(chain.db)
    chain.db.execute("DELETE FROM audit WHERE id >= ?", [ROWS - 1])
    assert AuditLog.verify(chain.db) is None  # a chain alone cannot tell
    assert AuditLog.verify(chain.db, anchor=anchor) == (
        ROWS - 1,
        f"rows {ROWS - 1} to {ROWS} are missing: cut off",
    )


@settings(max_examples=40, deadline=None)
@given(
    row_id=st.integers(1, ROWS),
    column=st.sampled_from(["ts", "subject", "content"]),
    data=st.data(),
)
def test_any_edit_is_named(
    tmp_path_factory: pytest.TempPathFactory, row_id: int, column: str, data: st.DataObject
) -> None:
    store = _filled(tmp_path_factory.mktemp("h") / "audit.db")
    try:
        old = _row(store, row_id)[{"ts": 1, "subject": 3, "content": 4}[column]]
        value: float | str
        if column == "ts":
            value = data.draw(st.floats(allow_nan=False).filter(lambda v: v != old))
        else:
            value = data.draw(st.text(max_size=20).filter(lambda v: v != old))
        store.db.execute(f"UPDATE audit SET {column} = ? WHERE id = ?", [value, row_id])
        assert _first_bad(store) == row_id
    finally:
        store.close()


def _first_bad(store: Store) -> int:
    problem = AuditLog.verify(store.db)
    assert problem is not None, "the chain verified"
    return problem[0]
