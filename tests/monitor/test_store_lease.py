"""The store's lease: a live daemon's store is not rewritten, a dead one's lock never blocks.

The holders here are real processes taking the lease exactly as ``driftwarden
run`` does (``StoreLease.shared``) without a broker; the integration tests do
the same with the real daemon.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from monitor.errors import DriftwardenError
from monitor.store.lease import StoreLease, holders, lock_path
from tests.monitor.fs_support import CLI, ROOT, one_line_error, run, used_store

HOLD = """
import sys, time
from monitor.store.lease import StoreLease
lease = StoreLease.shared(sys.argv[1], "driftwarden run", sys.argv[2])
print("held", flush=True)
time.sleep(600)
"""


Holding = Callable[..., "subprocess.Popen[str]"]


@pytest.fixture
def hold() -> Iterator[Holding]:
    """Start processes that hold a store's lease as a daemon would; SIGKILLed at the end."""
    started: list[subprocess.Popen[str]] = []

    def start(store: Path, group: str = "live") -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(store), group],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "held", "the holder could not start"
        return process

    yield start
    for process in started:
        process.kill()
        process.wait(timeout=30)


def _alerts(store: Path) -> int:
    with sqlite3.connect(store) as db:
        return int(db.execute("SELECT count(*) FROM alerts").fetchone()[0])


def test_replay_overwrite_refuses_a_held_store_and_leaves_it_whole(
    tmp_path: Path, hold: Holding
) -> None:
    store, config, events = used_store(tmp_path)
    alerts = _alerts(store)
    assert alerts > 0
    daemon = hold(store)
    at = ["--config", str(config), "--input", str(events), "--store", str(store)]
    replay = [*CLI, "replay", *at]
    refused = run([*replay, "--overwrite"])
    line = one_line_error(refused, f"is in use by driftwarden run (pid {daemon.pid})")
    assert "stop it first" in line
    assert _alerts(store) == alerts, "a refused replay changed the store"

    # Readers are never blocked by the lease.
    listed = run([*CLI, "incidents", "list", "--store", str(store)])
    assert listed.returncode == 0, listed.stderr
    assert "critical" in listed.stdout or "warning" in listed.stdout, listed.stdout
    report = run([*CLI, "report", "--store", str(store), "--out", str(tmp_path / "r.html")])
    assert report.returncode == 0, report.stderr

    daemon.send_signal(signal.SIGKILL)  # the kernel drops its lock with it
    daemon.wait(timeout=30)
    again = run([*replay, "--overwrite"])
    assert again.returncode == 0, again.stderr
    assert holders(store) == [], "the replay's lease ends with it"


def test_daemons_of_one_group_share_a_store_and_another_group_is_refused(
    tmp_path: Path, hold: Holding
) -> None:
    store = tmp_path / "shared.db"
    first = hold(store, "blue")
    second = hold(store, "blue")
    assert {h.pid for h in holders(store)} == {first.pid, second.pid}
    with pytest.raises(DriftwardenError) as refused:
        StoreLease.shared(store, "driftwarden run", "green")
    message = str(refused.value)
    assert "belongs to consumer group 'blue'" in message and "(group 'green')" in message
    assert f"pid {first.pid}" in message or f"pid {second.pid}" in message
    with pytest.raises(DriftwardenError, match=r"in use by driftwarden run \(pid \d+\), "):
        StoreLease.exclusive(store, "driftwarden replay", "stop it first")
    (tmp_path / "alias.db").symlink_to(store)  # the same store under another name
    with pytest.raises(DriftwardenError, match="in use by driftwarden run"):
        StoreLease.exclusive(tmp_path / "alias.db", "driftwarden replay", "stop it first")


def test_a_store_held_by_a_replay_keeps_a_daemon_out(tmp_path: Path) -> None:
    store = tmp_path / "replayed.db"
    with StoreLease.exclusive(store, "driftwarden replay", "stop it first"):
        result = run([sys.executable, "-c", HOLD, str(store), "live"])
        line = one_line_error_of_daemon(result)
        assert f"in use by driftwarden replay (pid {os.getpid()})" in line
    with StoreLease.shared(store, "driftwarden run", "live"):
        assert [h.command for h in holders(store)] == ["driftwarden run"]


def one_line_error_of_daemon(result: subprocess.CompletedProcess[str]) -> str:
    """The holder script is not the CLI: its refusal is the last line of a traceback."""
    assert result.returncode != 0 and "held" not in result.stdout
    return result.stderr.strip().splitlines()[-1]


def test_stale_lines_of_dead_holders_are_not_named(tmp_path: Path, hold: Holding) -> None:
    store = tmp_path / "s.db"
    live = hold(store, "g")
    dead = hold(store, "g")
    dead.kill()
    dead.wait(timeout=30)
    assert [h.pid for h in holders(store)] == [live.pid]
    assert str(dead.pid) in lock_path(store).read_text(), "its line is still in the file"
    live.kill()
    live.wait(timeout=30)
    with StoreLease.shared(store, "driftwarden run", "g"):
        text = lock_path(store).read_text()
    assert str(live.pid) not in text and str(dead.pid) not in text, "a lone holder starts afresh"


def test_the_lock_file_is_private_and_never_a_symlink(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        with StoreLease.shared(tmp_path / "a.db", "driftwarden run", "g"):
            pass
    finally:
        os.umask(previous)
    assert lock_path(tmp_path / "a.db").stat().st_mode & 0o777 == 0o600

    victim = tmp_path / "precious.txt"
    victim.write_text("keep me\n")
    lock_path(tmp_path / "b.db").symlink_to(victim)
    with pytest.raises(DriftwardenError, match="cannot open its lock file"):
        StoreLease.exclusive(tmp_path / "b.db", "driftwarden replay", "stop it first")
    assert victim.read_text() == "keep me\n"
