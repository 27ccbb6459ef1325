"""Who owns a store: an advisory lock on ``<store>.lock`` next to the SQLite file.

A running daemon (the single process, the supervisor and each of its workers)
holds a shared ``flock`` on the lock file for its whole life; daemons of one
consumer group may share a store, so they share the lock. A command that
rewrites the store (``replay``, the demo's fresh start) takes it exclusively
and refuses, naming the holder, when a live process holds it. The kernel drops
a process's lock when it dies, even by ``kill -9``, so a stale lock never
blocks anyone. Readers (``incidents list``, ``report``) take no lock at all.

The lock file says who holds it: one JSON line per holder (pid, command,
consumer group, process start time, so that a reused pid is not taken for the
holder). A holder that finds itself alone empties it first, so it holds only
the lines of processes that ran alongside a live holder.
"""

from __future__ import annotations

import fcntl
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

from monitor.errors import DriftwardenError

SUFFIX = ".lock"
# A shared holder converts its exclusive lock to a shared one (not atomic in
# flock): another process may see the lock busy for that instant, so it retries.
SHARED_WAIT_SECONDS = 1.0


def lock_path(store: str | Path) -> Path:
    """``<store>.lock`` next to the real file, however the store's path is spelt (a symlink)."""
    return Path(f"{os.path.realpath(store)}{SUFFIX}")


@dataclass(frozen=True)
class Holder:
    pid: int
    command: str
    group: str | None = None
    started: str | None = None

    @classmethod
    def me(cls, command: str, group: str | None = None) -> Holder:
        return cls(os.getpid(), command, group, _process_start(os.getpid()))

    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # alive, owned by another user
        return self.started is None or _process_start(self.pid) in (None, self.started)

    def describe(self) -> str:
        return f"{self.command} (pid {self.pid})"


class StoreLease:
    """A held lock on a store's lock file; ``release`` (or the process's end) drops it."""

    def __init__(self, fd: int, path: Path) -> None:
        self._fd: int | None = fd
        self.path = path

    @classmethod
    def shared(cls, store: str | Path, command: str, group: str) -> StoreLease:
        """The daemon's lease: shared with the other processes of its consumer group.

        Refused while a command holds the store exclusively, and while daemons
        of another consumer group hold it: a store keeps one group's state.
        """
        path = lock_path(store)
        fd = _open(path, store)
        me = Holder.me(command, group)
        try:
            if _try(fd, fcntl.LOCK_EX):
                os.ftruncate(fd, 0)  # alone: whoever is named in the file is gone
                _append(fd, me)
                got = _wait_shared(fd)
            else:
                got = _wait_shared(fd)
                if got:
                    _append(fd, me)
            if not got:
                raise _in_use(
                    store,
                    path,
                    _holders(fd),
                    "wait until it is done, or give this "
                    "daemon another store (store.path or --store)",
                )
            others = [h for h in _holders(fd) if h.pid != me.pid and h.group not in (None, group)]
            if others:
                raise DriftwardenError(
                    f"store {store} belongs to consumer group {others[0].group!r}: "
                    f"{others[0].describe()} holds it, and a store keeps one group's offsets "
                    f"and detector state; stop it or give this daemon (group {group!r}) "
                    "another store (store.path or --store)"
                )
        except BaseException:
            os.close(fd)
            raise
        return cls(fd, path)

    @classmethod
    def exclusive(cls, store: str | Path, command: str, advice: str) -> StoreLease:
        """The lease of a command that rewrites the store: refused while anyone holds it."""
        path = lock_path(store)
        fd = _open(path, store)
        if not _try(fd, fcntl.LOCK_EX):
            holders = _holders(fd)
            os.close(fd)
            raise _in_use(store, path, holders, advice)
        os.ftruncate(fd, 0)
        _append(fd, Holder.me(command))
        return cls(fd, path)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor drops the flock
            self._fd = None

    def __enter__(self) -> StoreLease:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()


def holders(store: str | Path) -> list[Holder]:
    """The live processes named in a store's lock file (empty when there is none)."""
    try:
        fd = os.open(lock_path(store), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return []
    try:
        return _holders(fd)
    finally:
        os.close(fd)


def _open(path: Path, store: str | Path) -> int:
    # O_NOFOLLOW: a symlink planted in the store's folder must not make us
    # truncate another file. 0600: only the store's owner takes its lease.
    flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(path, flags, 0o600)
    except FileNotFoundError:
        raise DriftwardenError(
            f"store {store}: folder {path.parent} does not exist; create it first"
        ) from None
    except OSError as exc:
        raise DriftwardenError(
            f"store {store}: cannot open its lock file {path}: {exc.strerror}; the store's "
            "folder must be writable by this user, and the lock file a regular file"
        ) from None


def _try(fd: int, kind: int) -> bool:
    try:
        fcntl.flock(fd, kind | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _wait_shared(fd: int) -> bool:
    deadline = time.monotonic() + SHARED_WAIT_SECONDS
    while not _try(fd, fcntl.LOCK_SH):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _append(fd: int, holder: Holder) -> None:
    os.write(fd, orjson.dumps(asdict(holder)) + b"\n")  # O_APPEND: one atomic write


def _holders(fd: int) -> list[Holder]:
    size = os.fstat(fd).st_size
    text = os.pread(fd, min(size, 1 << 20), 0)
    found: list[Holder] = []
    for line in text.splitlines():
        try:
            raw = orjson.loads(line)
            holder = Holder(
                int(raw["pid"]), str(raw["command"]), raw.get("group"), raw.get("started")
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            continue
        if holder.alive() and holder not in found:
            found.append(holder)
    return found


def _in_use(store: str | Path, path: Path, found: list[Holder], advice: str) -> DriftwardenError:
    if not found:
        who = f"another process (one holds {path})"
    else:
        who = ", ".join(h.describe() for h in found[:3])
        if len(found) > 3:
            who += f" and {len(found) - 3} more"
    return DriftwardenError(f"store {store} is in use by {who}: {advice}")


def _process_start(pid: int) -> str | None:
    """The start time of a process (Linux), to tell it from a later one with its pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None
