"""Real file-system conditions for store tests: a full disk, a read-only file system,
a user without permission; each through Linux namespaces, without root."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "monitor.cli"]

_SMALL_FS = 'mount -t tmpfs -o size="$1" tmpfs "$2" && shift 2 && exec "$@"'
_READ_ONLY = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'
_NAMESPACE = ["unshare", "--user", "--map-root-user", "--mount"]


@functools.cache
def namespaces_work() -> bool:
    """Whether this machine lets a process mount in its own user and mount namespace."""
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        [*_NAMESPACE, "sh", "-c", "mount -t tmpfs tmpfs /mnt || mount -t tmpfs tmpfs /tmp"],
        capture_output=True,
        timeout=30,
    )
    return probe.returncode == 0


def on_small_fs(folder: Path, size: str, command: list[str]) -> list[str]:
    """``command`` run with a fresh tmpfs of ``size`` mounted on ``folder``: its disk fills."""
    return [*_NAMESPACE, "sh", "-c", _SMALL_FS, "sh", size, str(folder), *command]


def on_read_only_fs(folder: Path, command: list[str]) -> list[str]:
    """``command`` run with ``folder`` remounted read-only (for it alone)."""
    return [*_NAMESPACE, "sh", "-c", _READ_ONLY, "sh", str(folder), *command]


def without_privileges(command: list[str]) -> list[str]:
    """``command`` run so that file permissions apply to it, even when the tests run as root.

    As root, the command runs in a user namespace where it has no capability
    over the host's files: a file of mode 000 is as closed to it as to anyone.
    """
    if os.geteuid() != 0:
        return command
    return ["unshare", "--user", *command]


def run(
    command: list[str], env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def used_store(folder: Path, events: int = 12_000) -> tuple[Path, Path, Path]:
    """(store, config, events file): a store written by ``driftwarden replay``, with alerts."""
    from monitor.cli.main import main
    from simulation.simulator import write_simulation

    folder.mkdir(parents=True, exist_ok=True)
    stream = folder / "events.jsonl"
    write_simulation(stream, events=events, seed=3)
    store = folder / "store.db"
    config = folder / "config.toml"
    config.write_text(
        f'[store]\npath = "{store}"\n\n[[models]]\nname = "fraud"\n\n[[models]]\nname = "churn"\n'
    )
    assert main(["replay", "--config", str(config), "--input", str(stream)]) == 0
    return store, config, stream


def one_line_error(result: subprocess.CompletedProcess[str], words: str) -> str:
    """The one stderr line of a failed command, checked: exit 2, no traceback, ``words`` in it."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith("driftwarden: ") and "unexpected" not in lines[0], lines[0]
    assert words in lines[0], lines[0]
    return lines[0]
