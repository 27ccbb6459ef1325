"""A store that cannot be opened, is locked too long or fills the disk: one line, exit 2.

Every case is real: a real SQLite file, a real lock held by another
connection, a real full file system and real permissions (in a user namespace
when the tests run as root, where chmod alone would not stop a read).
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from monitor.cli.main import main
from monitor.errors import DriftwardenError
from monitor.pipeline.pipeline import Pipeline
from monitor.store.errors import explain
from monitor.store.store import Store
from tests.monitor.fs_support import (
    CLI,
    namespaces_work,
    on_read_only_fs,
    on_small_fs,
    one_line_error,
    run,
    used_store,
    without_privileges,
)
from tests.monitor.test_baseline_reset import _config, _feed


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return used_store(tmp_path_factory.mktemp("errors"))


@pytest.fixture
def copy(original: tuple[Path, Path, Path], tmp_path: Path) -> Path:
    """A private copy of the used store, for a test to break."""
    folder = tmp_path / "state"
    folder.mkdir()
    shutil.copy(original[0], folder / "store.db")
    return folder / "store.db"


def _commands(store: Path, config: Path, events: Path) -> dict[str, list[str]]:
    at = ["--store", str(store)]
    return {
        "incidents list": ["incidents", "list", *at],
        "incidents ack": ["incidents", "ack", "1", *at],
        "silence add": ["silence", "add", "--for", "1h", *at],
        "baseline reset": ["baseline", "reset", "--model", "fraud", *at],
        "audit verify": ["audit", "verify", *at],
        "report": ["report", "--out", str(store.parent / "r.html"), *at],
        "replay": ["replay", "--config", str(config), "--input", str(events), "--overwrite", *at],
    }


def _in_process(capsys: pytest.CaptureFixture[str], command: list[str]) -> CompletedProcess[str]:
    """``driftwarden COMMAND`` run by ``main`` in this process (quicker than a new one)."""
    capsys.readouterr()
    code = main(command)
    out, err = capsys.readouterr()
    return CompletedProcess(command, code, out, err)


def test_a_folder_or_a_file_that_is_no_database(
    original: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, config, events = original
    folder = tmp_path / "folder.db"
    folder.mkdir()
    text = tmp_path / "notes.db"
    text.write_text("these are notes, not a database\n" * 200)
    for name, command in _commands(folder, config, events).items():
        # Commands on an existing store look for a file first; replay may create one.
        words = "cannot open it" if name == "replay" else "no such"
        one_line_error(_in_process(capsys, command), words)
    for command in _commands(text, config, events).values():
        one_line_error(_in_process(capsys, command), "is not a SQLite database")
    assert text.read_text().startswith("these are notes"), "a failed command changed the file"
    one_line_error(run([*CLI, *_commands(text, config, events)["replay"]]), "not a SQLite")


def test_an_unreadable_store(original: tuple[Path, Path, Path], copy: Path, tmp_path: Path) -> None:
    _, config, events = original
    before = copy.read_bytes()
    copy.chmod(0o000)
    try:
        commands = _commands(copy, config, events)
        for name in ("incidents list", "incidents ack", "report", "replay"):
            result = run(without_privileges([*CLI, *commands[name]]))
            one_line_error(result, "cannot open it")
            assert str(copy) in result.stderr, name
    finally:
        copy.chmod(0o600)
    assert copy.read_bytes() == before


def test_a_store_this_user_may_only_read(original: tuple[Path, Path, Path], copy: Path) -> None:
    _, config, events = original
    copy.chmod(0o400)
    try:
        commands = _commands(copy, config, events)
        for name in ("incidents ack", "silence add"):
            result = run(without_privileges([*CLI, *commands[name]]))
            one_line_error(result, "is read-only for this user")
        readers = run(without_privileges([*CLI, *commands["incidents list"]]))
        assert readers.returncode == 0, readers.stderr
    finally:
        copy.chmod(0o600)


def test_a_store_locked_by_another_connection(
    original: tuple[Path, Path, Path], copy: Path
) -> None:
    _, config, events = original
    holder = sqlite3.connect(copy, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    commands = _commands(copy, config, events)
    try:
        for name in ("incidents ack", "silence add", "baseline reset", "replay"):
            started = time.monotonic()
            result = run([*CLI, *commands[name]], env={"DRIFTWARDEN_BUSY_TIMEOUT_MS": "300"})
            line = one_line_error(result, "is locked")
            assert "0.3 s" in line
            assert time.monotonic() - started < 30, "the busy timeout was not the one given"
        reader = run([*CLI, *commands["incidents list"]])
        assert reader.returncode == 0, "a reader must not wait for a writer"
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    freed = run([*CLI, *commands["incidents ack"]], env={"DRIFTWARDEN_BUSY_TIMEOUT_MS": "300"})
    assert freed.returncode == 0, freed.stderr
    wrong = run([*CLI, *commands["incidents list"]], env={"DRIFTWARDEN_BUSY_TIMEOUT_MS": "soon"})
    one_line_error(wrong, "DRIFTWARDEN_BUSY_TIMEOUT_MS")


@pytest.mark.skipif(not namespaces_work(), reason="needs unprivileged user and mount namespaces")
def test_a_replay_onto_a_full_disk(original: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, config, events = original
    small = tmp_path / "small"
    small.mkdir()
    store = small / "store.db"
    replay = ["replay", "--config", str(config), "--input", str(events), "--store", str(store)]
    result = run(on_small_fs(small, "256k", [*CLI, *replay]))
    one_line_error(result, "the disk is full; free space on")


@pytest.mark.skipif(not namespaces_work(), reason="needs unprivileged user and mount namespaces")
def test_a_store_on_a_read_only_file_system(original: tuple[Path, Path, Path], copy: Path) -> None:
    _, config, events = original
    commands = _commands(copy, config, events)
    for name, words in (
        ("replay", "cannot open its lock file"),  # its lease comes first
        ("incidents ack", "cannot open it"),  # SQLite cannot create the -shm file
    ):
        result = run(on_read_only_fs(copy.parent, [*CLI, *commands[name]]))
        line = one_line_error(result, words)
        assert str(copy) in line


def test_a_checkpoint_that_finds_the_store_full(tmp_path: Path) -> None:
    """SQLITE_FULL at a checkpoint, with the store capped at its size (max_page_count)."""
    path = tmp_path / "s.db"
    store = Store(path)
    pipeline = Pipeline(_config(path), store)
    _feed(pipeline, 300, seed=1)
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(sqlite3.OperationalError) as failed:
        _feed(pipeline, 600, seed=2)  # the reference forms: its blobs need new pages
    error = explain(failed.value, path)
    assert isinstance(error, DriftwardenError)
    assert str(error) == f"store {path}: the disk is full; free space on {tmp_path} and try again"
    store.close()
