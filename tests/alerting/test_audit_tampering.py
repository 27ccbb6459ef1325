"""`driftwarden audit head` and `audit verify [--anchor]` against each way of tampering.

Each test writes a real store as the pipeline does (alerts with their audit rows,
incident transitions, silences), tampers with the file through its own SQLite
connection, as someone with write access to it would, and runs the CLI.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from detectors.base import Finding
from monitor.audit import chain as audit
from monitor.audit.chain import GENESIS, AuditLog, row_hash
from monitor.cli import main as cli
from monitor.incidents.grouping import AlertPolicy
from monitor.store import schema
from monitor.store.store import Store

KEY_ENV = "DRIFTWARDEN_TEST_AUDIT_KEY"
KEY = "4f1c0d2e9a7b6c5d4e3f2a1b0c9d8e7f"
ALERTS = 4


@pytest.fixture
def write_store(tmp_path: Path, make_finding: Callable[..., Finding]) -> Callable[..., Path]:
    """A store of ALERTS alerts, each with its audit row, and a silence row after each."""

    def write(key: str | None = None, name: str = "store.db") -> Path:
        path = tmp_path / name
        store = Store(path)
        schema.ensure_schema(store.db)
        audit.bind_key(store.db, key.encode() if key else None)
        try:
            for i in range(ALERTS):
                with store.transaction() as db:
                    finding = make_finding("amount", 1_764_140_000.0 + 600 * i, "warning")
                    AlertPolicy().record(db, "fraud", [finding])
                    AuditLog.append_new_alerts(db)
                    AuditLog.append(db, "silence", f"silence:{i}", {"n": i, "by": "ana"})
        finally:
            store.close()
        return path

    return write


@pytest.fixture
def keyed_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], str]:
    """A config naming the store and, in [audit], the key's variable, which is set."""
    monkeypatch.setenv(KEY_ENV, KEY)

    def config_for(store: Path) -> str:
        path = tmp_path / "keyed.toml"
        path.write_text(
            f'[store]\npath = "{store}"\n\n[audit]\nkey_env = "{KEY_ENV}"\n\n'
            '[[models]]\nname = "fraud"\n'
        )
        return str(path)

    return config_for


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def head(capsys: pytest.CaptureFixture[str], path: Path) -> str:
    code, out = run(capsys, "audit", "head", "--store", str(path))
    assert code == 0, out
    return out.strip().splitlines()[-1]


def tamper(path: Path, *statements: str) -> None:
    conn = sqlite3.connect(path)
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()


def recompute_chain(path: Path, scheme: str = "sha256") -> None:
    """What a forger without the key can do: recompute every hash, unkeyed."""
    conn = sqlite3.connect(path)
    prev = GENESIS
    rows = conn.execute("SELECT id, ts, kind, subject, content FROM audit ORDER BY id").fetchall()
    for row_id, ts, kind, subject, content in rows:
        digest = row_hash(prev, row_id, ts, kind, subject, content)
        conn.execute(
            "UPDATE audit SET prev_hash = ?, hash = ?, scheme = ? WHERE id = ?",
            [prev, digest, scheme, row_id],
        )
        prev = digest
    conn.commit()
    conn.close()


def verify(capsys: pytest.CaptureFixture[str], path: Path, *extra: str) -> tuple[int, str]:
    return run(capsys, "audit", "verify", "--store", str(path), *extra)


def test_head_is_one_token_on_the_last_line(
    write_store: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_store()
    code, out = run(capsys, "audit", "head", "--store", str(path))
    assert code == 0
    lines = out.strip().splitlines()
    assert len(lines) == 2 and "row(s)" in lines[0]
    assert re.fullmatch(r"\d+:[0-9a-f]{64}", lines[-1])
    store = Store(path)
    try:
        assert lines[-1] == "{}:{}".format(*AuditLog.head(store.db))
    finally:
        store.close()


def test_an_empty_log_has_a_defined_head_and_verifies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "empty.db"
    Store(path).close()
    assert head(capsys, path) == f"0:{GENESIS}"
    assert verify(capsys, path)[0] == 0
    assert verify(capsys, path, "--anchor", f"0:{GENESIS}")[0] == 0


@pytest.mark.parametrize("keyed", [False, True], ids=["unkeyed", "keyed"])
def test_an_intact_store_verifies_with_and_without_the_anchor(
    write_store: Callable[..., Path],
    keyed_config: Callable[[Path], str],
    capsys: pytest.CaptureFixture[str],
    keyed: Store,
) -> None:
    path = write_store(KEY if keyed else None)
    anchor = head(capsys, path)
    source = ("--config", keyed_config(path)) if keyed else ("--store", str(path))
    for extra in ((), ("--anchor", anchor)):
        code, out = run(capsys, "audit", "verify", *source, *extra)
        assert code == 0, out
        assert "intact" in out and f"{ALERTS} alert(s) match" in out
        assert ("keyed" in out) if keyed else ("unkeyed" in out)


def test_an_old_anchor_still_verifies_after_more_rows(
    write_store: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_store()
    anchor = head(capsys, path)
    store = Store(path)
    schema.ensure_schema(store.db)
    with store.transaction() as db:
        AuditLog.append(db, "silence", "silence:9", {"n": 9})
    store.close()
    assert head(capsys, path) != anchor
    code, out = verify(capsys, path, "--anchor", anchor)
    assert code == 0, out


def test_an_edited_row_is_named(
    write_store: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_store()
    tamper(path, """UPDATE audit SET content = '{"n":7,"by":"eve"}' WHERE id = 4""")
    code, out = verify(capsys, path)
    assert code == 1
    assert out.startswith("audit log tampered at row 4: row 4 was changed"), out


def test_a_deleted_middle_row_is_named(
    write_store: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_store()
    tamper(path, "DELETE FROM audit WHERE id = 3")
    code, out = verify(capsys, path)
    assert code == 1
    assert out.startswith("audit log tampered at row 3: row 3 is missing"), out


def test_a_deleted_tail_needs_the_anchor(
    write_store: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_store()
    anchor = head(capsys, path)
    last = int(anchor.split(":")[0])
    tamper(path, f"DELETE FROM audit WHERE id >= {last - 1} AND kind = 'silence'")
    assert verify(capsys, path)[0] == 0  # the chain alone cannot tell
    code, out = verify(capsys, path, "--anchor", anchor)
    assert code == 1
    assert out.startswith(f"audit log tampered at row {last}: row {last} is missing: cut off")


def test_all_rows_deleted_fail_with_the_anchor(
    write_store: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_store()
    anchor = head(capsys, path)
    tamper(path, "DELETE FROM audit")
    code, out = verify(capsys, path)
    assert code == 1 and "alert 1 has no audit row" in out  # the alerts still tell
    tamper(path, "DELETE FROM alerts")
    assert verify(capsys, path)[0] == 0  # nothing left to compare, but...
    code, out = verify(capsys, path, "--anchor", anchor)
    assert code == 1
    assert "every row was deleted" in out, out


def test_a_dropped_audit_table_fails_with_the_anchor(
    write_store: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_store()
    anchor = head(capsys, path)
    tamper(path, "DROP TABLE audit", "DELETE FROM alerts")
    code, out = verify(capsys, path, "--anchor", anchor)
    assert code == 1 and "every row was deleted" in out, out


def test_a_recomputed_chain_passes_only_unkeyed_verify_without_anchor(
    write_store: Callable[..., Path],
    keyed_config: Callable[[Path], str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = write_store(KEY)
    anchor = head(capsys, path)
    tamper(
        path,
        "UPDATE alerts SET severity = 'info' WHERE id = 2",
        "UPDATE audit SET content = json_set(content, '$.severity', 'info') "
        "WHERE subject = 'alert:2'",
    )
    recompute_chain(path)
    code, out = verify(capsys, path)
    assert code == 0, out  # without the key and the anchor, a rewrite is undetectable
    code, out = verify(capsys, path, "--anchor", anchor)
    assert code == 1 and "does not match the anchor" in out, out
    code, out = run(capsys, "audit", "verify", "--config", keyed_config(path))
    assert code == 1 and "no row is keyed" in out, out


def test_a_chain_recomputed_as_keyed_without_the_key_fails_at_row_1(
    write_store: Callable[..., Path],
    keyed_config: Callable[[Path], str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = write_store(KEY)
    recompute_chain(path, scheme="hmac-sha256")
    code, out = run(capsys, "audit", "verify", "--config", keyed_config(path))
    assert code == 1
    assert out.startswith("audit log tampered at row 1: row 1 was changed"), out


def test_an_unkeyed_chain_recomputed_fails_with_the_anchor(
    write_store: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_store()
    anchor = head(capsys, path)
    tamper(path, """UPDATE audit SET content = '{"n":0,"by":"eve"}' WHERE id = 2""")
    recompute_chain(path)
    assert verify(capsys, path)[0] == 0
    code, out = verify(capsys, path, "--anchor", anchor)
    assert code == 1, out


@pytest.mark.parametrize("keyed", [False, True], ids=["unkeyed", "keyed"])
def test_reordered_rows_are_caught(
    write_store: Callable[..., Path],
    keyed_config: Callable[[Path], str],
    capsys: pytest.CaptureFixture[str],
    keyed: Store,
) -> None:
    path = write_store(KEY if keyed else None)
    columns = "ts, kind, subject, content, prev_hash, hash, scheme"
    conn = sqlite3.connect(path)
    two, three = (
        conn.execute(f"SELECT {columns} FROM audit WHERE id = ?", [i]).fetchone() for i in (2, 3)
    )
    sets = ", ".join(f"{c} = ?" for c in columns.split(", "))
    conn.execute(f"UPDATE audit SET {sets} WHERE id = 2", three)
    conn.execute(f"UPDATE audit SET {sets} WHERE id = 3", two)
    conn.commit()
    conn.close()
    source = ("--config", keyed_config(path)) if keyed else ("--store", str(path))
    code, out = run(capsys, "audit", "verify", *source)
    assert code == 1
    assert out.startswith("audit log tampered at row 2:"), out


@pytest.mark.parametrize(
    "column, value",
    [
        ("severity", "'critical'"),
        ("details", """json_set(details, '$.p_value', 0.5)"""),
        ("event_ts", "event_ts + 1"),
        ("signal", "'country'"),
        ("incident_id", "incident_id + 1"),
    ],
)
def test_an_edited_alert_is_named(
    write_store: Callable[..., Path], capsys: pytest.CaptureFixture[str], column: str, value: object
) -> None:
    path = write_store()
    tamper(path, f"UPDATE alerts SET {column} = {value} WHERE id = 3")
    code, out = verify(capsys, path)
    assert code == 1
    assert out.startswith("audit log tampered at alert 3: alert 3 was changed"), out
    assert column in out, out


def test_a_deleted_alert_is_named(
    write_store: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_store()
    tamper(path, "DELETE FROM alerts WHERE id = 2")
    code, out = verify(capsys, path)
    assert code == 1
    assert "alert 2 was deleted from the alerts table" in out, out


def test_an_alert_without_audit_row_is_named(
    write_store: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_store()
    tamper(
        path,
        "INSERT INTO alerts (fingerprint, model, detector, signal, severity, event_ts, "
        "created_at, details, incident_id) SELECT fingerprint, model, detector, signal, "
        "severity, event_ts, created_at, details, incident_id FROM alerts WHERE id = 1",
    )
    code, out = verify(capsys, path)
    assert code == 1
    assert f"alert {ALERTS + 1} has no audit row" in out, out


def test_a_keyed_log_needs_its_key(
    write_store: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = write_store(KEY)
    code, out = verify(capsys, path)
    assert code == 2 and "keyed from row 1" in out and out.count("\n") == 1, out
    monkeypatch.setenv(KEY_ENV, KEY)
    code, out = verify(capsys, path, "--key-env", KEY_ENV)
    assert code == 0, out
    monkeypatch.setenv(KEY_ENV, "another key, long enough")
    code, out = verify(capsys, path, "--key-env", KEY_ENV)
    assert code == 1 and "row 1 was changed" in out, out


def test_usage_and_store_errors_are_one_line_exit_2(
    write_store: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(write_store())
    not_sqlite = tmp_path / "not.db"
    not_sqlite.write_text("just text, not a database, long enough to have a header" * 40)
    for argv, says in (
        (("audit", "verify", "--store", path, "--anchor", "12"), "is not a head"),
        (("audit", "verify", "--store", path, "--anchor", f"0:{'1' * 64}"), "is not a head"),
        (("audit", "verify", "--store", path, "--key-env", "DW_UNSET_VAR"), "is not set"),
        (("audit", "verify", "--store", str(tmp_path / "none.db")), "no such store"),
        (("audit", "head", "--store", str(not_sqlite)), "is not a SQLite database"),
        (("audit", "head"), "give --store DB or --config FILE"),
    ):
        code, out = run(capsys, *argv)
        assert code == 2, (argv, out)
        assert says in out and out.count("\n") == 1, out


def test_the_key_is_never_written_to_the_store(write_store: Callable[..., Path]) -> None:
    path = write_store(KEY)
    for file in path.parent.glob(path.name + "*"):
        assert KEY.encode() not in file.read_bytes()
