"""What the demo tells its user as it goes: lines, one live progress line, the store's figures."""

from __future__ import annotations

import sqlite3
import sys
import threading
import time
from pathlib import Path

STATUS_SECONDS = 5.0  # how often the progress line is repeated when stdout is not a terminal


class Say:
    """Lines on stdout, plus one progress line that rewrites itself on a terminal."""

    def __init__(self) -> None:
        self.tty = sys.stdout.isatty()
        self._lock = threading.Lock()
        self._status = ""
        self._last_plain = 0.0
        self.started = time.monotonic()

    def __call__(self, text: str) -> None:
        with self._lock:
            if self.tty and self._status:
                sys.stdout.write("\r\033[K")
            sys.stdout.write(text + "\n")
            if self.tty and self._status:
                sys.stdout.write(self._status)
            sys.stdout.flush()

    def status(self, text: str, force: bool = False) -> None:
        text = f"  [{time.monotonic() - self.started:5.0f} s] {text}"
        with self._lock:
            if self.tty:
                self._status = text
                sys.stdout.write("\r\033[K" + text)
                sys.stdout.flush()
            elif force or time.monotonic() - self._last_plain >= STATUS_SECONDS:
                self._last_plain = time.monotonic()
                sys.stdout.write(text + "\n")
                sys.stdout.flush()

    def end_status(self) -> None:
        with self._lock:
            if self.tty and self._status:
                sys.stdout.write("\r\033[K" + self._status + "\n")
                sys.stdout.flush()
            self._status = ""


def store_progress(path: Path) -> tuple[int, int, int]:
    """(records checkpointed, notifications pending, alerts) of the daemon's store."""
    if not path.exists():
        return 0, 0, 0
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2.0)
    except sqlite3.Error:
        return 0, 0, 0
    try:
        consumed = db.execute("SELECT coalesce(sum(next_offset), 0) FROM offsets").fetchone()[0]
        alerts = db.execute("SELECT count(*) FROM alerts").fetchone()[0]
        try:
            pending = db.execute("SELECT count(*) FROM outbox WHERE state = 'pending'").fetchone()
        except sqlite3.OperationalError:
            pending = (0,)
        return int(consumed), int(pending[0]), int(alerts)
    except sqlite3.Error:
        return 0, 0, 0
    finally:
        db.close()
