"""SQLite's errors about the store file, said in one line with what to do.

A full disk, a store locked by another process for longer than the busy
timeout, a file that is not a store or cannot be opened: each is a problem the
user fixes, so it becomes a ``DriftwardenError`` (one line, exit 2) instead of
an unexpected ``OperationalError``. Errors that are not about the file (a bug
in a statement) stay unexpected.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from monitor.errors import DriftwardenError

# SQLite's primary result codes (the low byte of an extended code).
_BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB = 5, 6, 8, 10, 11, 13, 14, 26
_BY_TEXT = (
    ("database is locked", _BUSY),
    ("database table is locked", _LOCKED),
    ("database or disk is full", _FULL),
    ("unable to open", _CANTOPEN),
    ("disk i/o error", _IOERR),
    ("readonly database", _READONLY),
    ("not a database", _NOTADB),
    ("malformed", _CORRUPT),
)


def _code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF
    text = str(exc).lower()
    return next((c for phrase, c in _BY_TEXT if phrase in text), None)


def describe(exc: sqlite3.Error, path: str | Path | None) -> str | None:
    """What is wrong with the store and what to do, or None if the error is not about it."""
    store = f"store {path}" if path is not None else "the store"
    where = f"{Path(path).resolve().parent}" if path is not None else "its folder"
    code = _code(exc)
    if code in (_BUSY, _LOCKED):
        from monitor.store.store import BUSY_TIMEOUT_MS

        return (
            f"{store} is locked: another process held its write lock for more than "
            f"{BUSY_TIMEOUT_MS / 1000:g} s (DRIFTWARDEN_BUSY_TIMEOUT_MS); find it with `fuser` "
            "or `lsof` on the store (an open sqlite3 shell, a stuck command) and try again "
            "when it is done"
        )
    if code == _FULL:
        return f"{store}: the disk is full; free space on {where} and try again"
    if code == _CANTOPEN:
        return (
            f"{store}: cannot open it: check that it is a file that this user may read and "
            f"write, in a folder ({where}) where it may create the -wal and -shm files"
        )
    if code == _READONLY:
        return (
            f"{store} is read-only for this user: make the store, its -wal and -shm files and "
            f"its folder ({where}) writable by the user running driftwarden"
        )
    if code == _IOERR:
        return (
            f"{store}: disk I/O error ({exc}): check the disk (dmesg) and that the store's "
            "folder is on a local, writable file system"
        )
    if code == _NOTADB:
        return f"{store} is not a SQLite database: check --store or the config's store.path"
    if code == _CORRUPT:
        return (
            f"{store} is damaged ({exc}): restore it from a backup, or save what is left with "
            "`sqlite3 STORE .recover | sqlite3 NEW.db`"
        )
    return None


def explain(exc: sqlite3.Error, path: str | Path | None) -> DriftwardenError:
    """The user-facing error for ``exc``; errors not about the file keep SQLite's words."""
    said = describe(exc, path)
    if said is None:
        store = f"store {path}" if path is not None else "the store"
        said = f"{store}: {type(exc).__name__}: {exc}"
    return DriftwardenError(said)


@contextmanager
def store_errors(path: str | Path) -> Iterator[None]:
    """Turn SQLite's errors about the store file at ``path`` into one-line errors."""
    try:
        yield
    except sqlite3.Error as exc:
        if describe(exc, path) is None:
            raise
        raise explain(exc, path) from None


@contextmanager
def ending_on_store_errors(path: str, log: logging.Logger) -> Iterator[None]:
    """For a long-running command (``run``, ``notify``): an error of its store is logged,
    then raised as one line (exit 2), for a service manager to start it again."""
    try:
        yield
    except sqlite3.Error as exc:
        error = explain(exc, path)
        log.error(f"stopping on a store error: {error}", extra={"store": path})
        raise error from None
