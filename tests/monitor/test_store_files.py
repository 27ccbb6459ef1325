"""Who may open the store: a new store, its -wal and -shm files and its lock are 0600."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
from pathlib import Path

import orjson
import pytest

from tests.monitor.fs_support import ROOT, run

# Opens a store the way `driftwarden run` does (lease, then store, then a write)
# under the umask given, and tells the modes of every file while it is open.
OPEN_AND_LOOK = """
import os, sys, orjson
os.umask(int(sys.argv[2], 8))
from monitor.store.store import Store
from monitor.store.lease import StoreLease
path = sys.argv[1]
with StoreLease.shared(path, "driftwarden run", "g"):
    store = Store(path)
    with store.transaction() as db:
        db["quarantine"].insert({"source": "t", "reason": "r", "raw": b"", "created_at": 0})
    modes = {
        name: oct(os.stat(os.path.join(os.path.dirname(path), name)).st_mode & 0o777)
        for name in sorted(os.listdir(os.path.dirname(path)))
    }
    store.close()
print(orjson.dumps(modes).decode())
"""


def _open_and_look(path: Path, umask: str) -> dict[str, str]:
    result = run([str(ROOT / ".venv" / "bin" / "python"), "-c", OPEN_AND_LOOK, str(path), umask])
    assert result.returncode == 0, result.stderr
    return dict(orjson.loads(result.stdout.strip().splitlines()[-1]))


def test_a_new_store_and_its_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    modes = _open_and_look(tmp_path / "s.db", "000")
    assert modes == {
        "s.db": "0o600",
        "s.db-shm": "0o600",
        "s.db-wal": "0o600",
        "s.db.lock": "0o600",
    }


def test_an_existing_store_keeps_the_mode_its_owner_gave_it(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (x)")
    path.chmod(0o640)  # e.g. a group of on-call readers
    modes = _open_and_look(path, "022")
    assert modes["s.db"] == "0o640", "the store's mode must not change"
    assert modes["s.db-wal"] == "0o640" and modes["s.db-shm"] == "0o640", "SQLite copies it"
    assert modes["s.db.lock"] == "0o600"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


def test_the_daemon_says_when_other_users_may_open_its_store(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from monitor.daemon.service import _warn_if_others_may_read

    path = tmp_path / "s.db"
    path.write_bytes(b"")
    path.chmod(0o600)
    with caplog.at_level(logging.WARNING, logger="driftwarden.service"):
        _warn_if_others_may_read(str(path))
        assert not caplog.records
        path.chmod(0o644)
        _warn_if_others_may_read(str(path))
    [record] = caplog.records
    assert f"store {path} may be opened by other users (mode 0644)" in record.getMessage()
    assert f"chmod 600 {path}*" in record.getMessage()
