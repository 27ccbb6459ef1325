"""The consume loop's handle on its fetch process (``monitor.daemon.fetch_child``).

The loop tells it which partitions to read from where (``assign``) and takes
its parsed batches (``receive``). The fetch process keeps at most a few
batches waiting (``fetch_child.AHEAD``) and blocks while the loop is busy:
memory stays bounded however far behind the stream is.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import monitor
from monitor.config import Config
from monitor.daemon.fetch_child import Assign, FetchFailed, FetchSettings
from monitor.errors import DriftwardenError
from monitor.ingest.fetched import Fetched

log = logging.getLogger("driftwarden.daemon")
STOP_SECONDS = 5.0


class FetchProcessGone(DriftwardenError):
    pass


class FetchProcess:
    def __init__(self, config: Config, consumer_settings: dict[str, Any]) -> None:
        events = config.events
        settings = FetchSettings(
            consumer=consumer_settings,
            earliest_ts=events.earliest_ts(),
            max_future_seconds=events.max_future_seconds,
            default_time_zone=events.default_time_zone,
            log_level=config.ops.log_level,
            models=frozenset(model.name for model in config.models),
        )
        ours, theirs = socket.socketpair()
        # The tree this process runs from, whether installed or put on sys.path.
        tree = str(Path(monitor.__file__).resolve().parents[1])
        path = os.environ.get("PYTHONPATH")
        env = {**os.environ, "PYTHONPATH": tree + (os.pathsep + path if path else "")}
        with theirs:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "monitor.daemon.fetch_child", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                env=env,
                stdin=subprocess.DEVNULL,
            )
        self._conn = Connection(ours.detach())
        self._closed = False
        self._lost = False  # found gone by ``assign``
        self._conn.send(settings)

    @property
    def pid(self) -> int:
        return self._process.pid

    def assign(self, epoch: int, positions: dict[tuple[str, int], int | None]) -> None:
        """Tell the process what to read. It never raises: the rebalance callbacks call
        it, and kafka-python would turn an exception there into an error on every poll
        after. A process found gone here is reported by the next ``receive``."""
        try:
            self._conn.send(Assign(epoch, positions))
        except OSError:
            self._lost = True

    def receive(self, timeout: float) -> Fetched | None:
        """The next batch, or None when none came within ``timeout`` seconds."""
        if self._lost:
            raise self._gone()
        try:
            if not self._conn.poll(timeout):
                return None
            message = self._conn.recv()
        except (EOFError, OSError):
            raise self._gone() from None
        if isinstance(message, FetchFailed):
            raise FetchProcessGone(message.reason)
        assert isinstance(message, Fetched)
        return message

    def close(self) -> None:
        """End the process: it ends when its socket closes; a stuck one is killed."""
        if self._closed:
            return
        self._closed = True
        self._conn.close()
        try:
            self._process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            log.warning("the fetch process did not end; killing it", extra={"pid": self.pid})
            self._process.kill()
            self._process.wait()

    def _gone(self) -> FetchProcessGone:
        code = self._process.poll()
        how = f"exited with {code}" if code is not None else "closed its socket"
        return FetchProcessGone(f"the fetch process (pid {self.pid}) {how}")
