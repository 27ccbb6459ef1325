"""The keyed audit chain: HMAC rows, stores written before the key, and writers without it."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from monitor.audit import chain as audit
from monitor.audit.chain import GENESIS, KEYED, UNKEYED, AuditLog, row_hash
from monitor.audit.verify import verify_chain
from monitor.cli import main as cli
from monitor.config import parse_config
from monitor.errors import DriftwardenError
from monitor.ingest.events import Event
from monitor.notify.delivery import DeliveryWorker
from monitor.pipeline.pipeline import Pipeline
from monitor.store import schema
from monitor.store.store import Store

KEY_ENV = "DRIFTWARDEN_TEST_AUDIT_KEY"
KEY = b"0123456789abcdef0123456789abcdef"
OLD_SCHEMA = """
CREATE TABLE audit (
    id INTEGER PRIMARY KEY, ts REAL NOT NULL, kind TEXT NOT NULL, subject TEXT NOT NULL,
    content TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL
);
"""


def _append(store: Store, n: int, start: int = 0) -> None:
    with store.transaction() as db:
        for i in range(start, start + n):
            AuditLog.append(db, "silence", f"silence:{i}", {"n": i}, ts=1e9 + i)


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "keyed.db")
    schema.ensure_schema(store.db)
    audit.bind_key(store.db, KEY)
    _append(store, 6)
    yield store
    store.close()


def _legacy(path: Path, rows: int) -> None:
    """A store written before rows had a scheme: the old table, unkeyed hashes."""
    conn = sqlite3.connect(path)
    conn.executescript(OLD_SCHEMA)
    prev = GENESIS
    for i in range(1, rows + 1):
        content = f'{{"n":{i}}}'
        digest = row_hash(prev, i, 1e9 + i, "silence", f"silence:{i}", content)
        conn.execute(
            "INSERT INTO audit VALUES (?, ?, 'silence', ?, ?, ?, ?)",
            [i, 1e9 + i, f"silence:{i}", content, prev, digest],
        )
        prev = digest
    conn.commit()
    conn.close()


def test_keyed_rows_carry_an_hmac_that_only_the_key_checks(keyed: Store) -> None:
    schemes = {s for (s,) in keyed.db.execute("SELECT DISTINCT scheme FROM audit")}
    assert schemes == {KEYED}
    assert AuditLog.verify(keyed.db, key=KEY) is None
    assert AuditLog.verify(keyed.db, anchor=AuditLog.head(keyed.db), key=KEY) is None
    with pytest.raises(DriftwardenError, match="keyed from row 1"):
        AuditLog.verify(keyed.db)


def test_a_row_edited_and_rehashed_without_the_key_is_named(keyed: Store) -> None:
    _, ts, kind, subject, _, prev = keyed.db.execute(
        "SELECT id, ts, kind, subject, content, prev_hash FROM audit WHERE id = 3"
    ).fetchone()
    forged = row_hash(prev, 3, ts, kind, subject, '{"n":-1}')
    keyed.db.execute("UPDATE audit SET content = '{\"n\":-1}', hash = ? WHERE id = 3", [forged])
    assert AuditLog.verify(keyed.db, key=KEY) == (
        3,
        "row 3 was changed: its content does not match its keyed hash (or the key is not its own)",
    )


def test_rows_rewritten_unkeyed_after_keyed_ones_are_caught_even_without_the_key(
    keyed: Store,
) -> None:
    rows = keyed.db.execute(
        "SELECT id, ts, kind, subject, content, prev_hash FROM audit WHERE id >= 4 ORDER BY id"
    ).fetchall()
    prev = rows[0][5]
    for row_id, ts, kind, subject, content, _ in rows:
        digest = row_hash(prev, row_id, ts, kind, subject, content)
        keyed.db.execute(
            "UPDATE audit SET prev_hash = ?, hash = ?, scheme = ? WHERE id = ?",
            [prev, digest, UNKEYED, row_id],
        )
        prev = digest
    for key in (None, KEY):
        problem = verify_chain(keyed.db, key).problem
        assert problem is not None and problem[0] == 4 and "unkeyed after keyed" in problem[1]


def test_a_store_written_before_keys_is_migrated_and_sealed_by_the_first_keyed_row(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    _legacy(path, 5)
    store = Store(path)
    try:
        schema.ensure_schema(store.db)  # adds the scheme column
        assert AuditLog.verify(store.db) is None
        audit.bind_key(store.db, KEY)
        _append(store, 3, start=6)
        report = verify_chain(store.db, KEY, AuditLog.head(store.db))
        assert report.problem is None and report.keyed_from == 6 and report.rows == 8
        # Rewriting the unkeyed rows before the key no longer passes: row 6 sealed them.
        store.db.execute("UPDATE audit SET content = '{\"n\":0}' WHERE id = 2")
        prev = GENESIS
        for row_id, ts, kind, subject, content in store.db.execute(
            "SELECT id, ts, kind, subject, content FROM audit WHERE id <= 5 ORDER BY id"
        ).fetchall():
            prev_before, prev = prev, row_hash(prev, row_id, ts, kind, subject, content)
            store.db.execute(
                "UPDATE audit SET prev_hash = ?, hash = ? WHERE id = ?", [prev_before, prev, row_id]
            )
        assert verify_chain(store.db, KEY).problem == (
            5,
            "row 5 was changed: row 6 recorded another hash for it",
        )
    finally:
        store.close()


def test_a_verify_of_a_store_not_yet_migrated_reads_it_as_unkeyed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "old.db"
    _legacy(path, 4)
    assert cli.main(["audit", "verify", "--store", str(path)]) == 0
    assert "4 row(s), unkeyed" in capsys.readouterr().out


def test_writers_refuse_a_keyed_log_without_its_key_or_with_another(keyed: Store) -> None:
    audit.bind_key(keyed.db, None)
    with pytest.raises(DriftwardenError, match="the audit log is keyed"):
        _append(keyed, 1, start=100)
    with pytest.raises(DriftwardenError, match="the audit log is keyed"):
        audit.check_key(keyed.db, None)
    with pytest.raises(DriftwardenError, match="does not match audit row 6"):
        audit.check_key(keyed.db, b"another key of the right length", KEY_ENV)
    audit.check_key(keyed.db, KEY, KEY_ENV)
    assert keyed.count("audit") == 6


def test_the_key_comes_from_the_named_variable() -> None:
    assert audit.key_from_env("", {"X": "whatever"}) is None
    assert audit.key_from_env(KEY_ENV, {KEY_ENV: f" {KEY.decode()}\n"}) == KEY
    with pytest.raises(DriftwardenError, match=f"names {KEY_ENV}, which is not set"):
        audit.key_from_env(KEY_ENV, {})
    with pytest.raises(DriftwardenError, match="at least 16"):
        audit.key_from_env(KEY_ENV, {KEY_ENV: "short"})


def _config(tmp_path: Path, store: Path, key_env: str = KEY_ENV) -> Path:
    path = tmp_path / "dw.toml"
    path.write_text(
        f'[store]\npath = "{store}"\n\n[audit]\nkey_env = "{key_env}"\n\n'
        '[[models]]\nname = "m"\n\n[detection]\nreference_size = 500\nwindow = 200\n'
    )
    return path


def test_the_pipeline_writes_with_the_configs_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "s.db"
    raw = {
        "store": {"path": str(path)},
        "audit": {"key_env": KEY_ENV},
        "models": [{"name": "m"}],
        "detection": {"reference_size": 500, "window": 200},
    }
    config = parse_config(raw, "test")
    store = Store(path)
    try:
        monkeypatch.delenv(KEY_ENV, raising=False)
        with pytest.raises(DriftwardenError, match="which is not set"):
            Pipeline(config, store)
        monkeypatch.setenv(KEY_ENV, KEY.decode())
        pipeline = Pipeline(config, store)
        rng = np.random.default_rng(3)
        for i, x in enumerate(rng.normal(size=600)):
            pipeline.feed(Event("prediction", "m", 1e9 + i, features={"x": float(x)}, score=0.3))
        pipeline.checkpoint()
        schemes = store.db.execute("SELECT DISTINCT scheme FROM audit").fetchall()
        assert schemes == [(KEYED,)]
    finally:
        store.close()
    config_path = _config(tmp_path, path)
    assert cli.main(["audit", "verify", "--config", str(config_path)]) == 0
    assert "keyed" in capsys.readouterr().out


def test_commands_append_with_the_configs_key_and_refuse_without(
    keyed: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keyed.db.execute(
        "INSERT INTO incidents (key, model, severity, title, first_event_ts, last_event_ts, "
        "opened_at, updated_at) VALUES ('k1', 'm', 'warning', 't', 1, 1, 1, 1)"
    )
    store = str(keyed.path)
    assert cli.main(["incidents", "ack", "1", "--by", "ana", "--store", store]) == 2
    err = capsys.readouterr().err
    assert "the audit log is keyed" in err and err.count("\n") == 1
    config = str(_config(tmp_path, keyed.path))
    with pytest.MonkeyPatch.context() as env:
        env.setenv(KEY_ENV, KEY.decode())
        assert cli.main(["incidents", "list", "--config", config]) == 0
        assert cli.main(["incidents", "ack", "1", "--by", "ana", "--config", config]) == 0
        assert cli.main(["audit", "verify", "--config", config]) == 0
    assert keyed.db.execute("SELECT scheme FROM audit WHERE id = 7").fetchone() == (KEYED,)
    with pytest.MonkeyPatch.context() as env:
        env.setenv(KEY_ENV, "another key, long enough")
        assert cli.main(["incidents", "resolve", "1", "--by", "ana", "--config", config]) == 2
        assert "does not match audit row 7" in capsys.readouterr().err
    # Reading needs no key, even with a config that names one.
    assert cli.main(["incidents", "list", "--config", config]) == 0
    assert keyed.count("audit") == 7


def test_the_delivery_worker_appends_with_the_key_it_is_given(keyed: Store) -> None:
    worker = DeliveryWorker(keyed.path, [], audit_key=KEY)
    try:
        assert audit.bound_key(worker.db) == KEY
    finally:
        worker.close()
