"""One worker process of ``driftwarden run`` with ``kafka.consumer_processes`` > 1.

Each worker holds the store's lease (shared with the supervisor and the other
workers) for its life, runs a ``Daemon`` and talks to the supervisor over one
pipe (see ``monitor.daemon.supervisor``). A store error (a full disk, a lock held too
long) is logged in one line and ends the worker with exit 2; the supervisor
then stops the whole daemon with that line, as a single process would.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sqlite3
import threading
import time
from multiprocessing.connection import Connection

from prometheus_client import CollectorRegistry

from monitor.config import Config
from monitor.daemon.daemon import Daemon
from monitor.daemon.logs import setup_logging
from monitor.daemon.ops import DaemonMetrics
from monitor.errors import DriftwardenError
from monitor.store import store as store_module
from monitor.store.errors import explain
from monitor.store.lease import StoreLease
from monitor.store.store import Store

log = logging.getLogger("driftwarden.workers")
STATUS_SECONDS = 0.5


class _WorkerLogs(logging.Filter):
    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index

    def filter(self, record: logging.LogRecord) -> bool:
        record.worker = self.index
        return True


def worker_main(config: Config, index: int, conn: Connection, busy_timeout_ms: int) -> None:
    """One worker: a ``Daemon`` until SIGTERM or the supervisor's pipe closes."""
    setup_logging(config.ops.log_level)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_WorkerLogs(index))
    store_module.BUSY_TIMEOUT_MS = busy_timeout_ms
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _s, _f: stop.set())
    # Ctrl-C reaches the whole process group; the supervisor turns it into SIGTERM.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    path = config.store.path
    try:
        lease = StoreLease.shared(path, f"driftwarden run (worker {index})", config.kafka.group_id)
        try:
            _work(config, conn, stop, index)
        finally:
            lease.release()
    except sqlite3.Error as exc:
        # The store is the daemon's: the supervisor stops every worker and exits 2.
        message = str(explain(exc, path))
        log.error(f"stopping on a store error: {message}", extra={"store": path})
        _tell(conn, "fatal", message)
        raise SystemExit(2) from None
    except DriftwardenError as exc:
        _tell(conn, "failed", str(exc))
        raise SystemExit(2) from None


def _tell(conn: Connection, kind: str, message: str) -> None:
    """Why this worker ends, for the supervisor; best effort."""
    with contextlib.suppress(OSError, ValueError):
        conn.send((kind, message))


def _work(config: Config, conn: Connection, stop: threading.Event, index: int) -> None:
    store = Store(config.store.path)
    metrics = DaemonMetrics()
    try:
        daemon = Daemon(config, store, metrics, slot=index)
    except sqlite3.Error:
        store.close()
        raise
    except Exception as exc:  # no broker, a wrong config: the supervisor decides
        store.close()
        raise DriftwardenError(str(exc)) from None
    loop_turned = [time.monotonic()]

    def heartbeat() -> None:
        loop_turned[0] = time.monotonic()

    link = threading.Thread(
        target=_serve_supervisor,
        args=(conn, daemon, metrics.registry, loop_turned, stop),
        name="supervisor-link",
        daemon=True,
    )
    link.start()
    try:
        daemon.run(stop, heartbeat)
    finally:
        store.close()


def _serve_supervisor(
    conn: Connection,
    daemon: Daemon,
    registry: CollectorRegistry,
    loop_turned: list[float],
    stop: threading.Event,
) -> None:
    """Status every half second, metrics on request; a closed pipe means stop."""
    last_status = 0.0
    try:
        while not stop.is_set():
            if conn.poll(STATUS_SECONDS / 2):
                kind, _ = conn.recv()
                if kind == "metrics":
                    conn.send(("metrics", list(registry.collect())))
            now = time.monotonic()
            if now - last_status >= STATUS_SECONDS:
                ready, why = daemon.ready()
                status = {"ready": ready, "why": why, "loop_age": now - loop_turned[0]}
                conn.send(("status", status))
                last_status = now
    except (EOFError, OSError):
        log.warning("the supervisor is gone; stopping after a final checkpoint")
        stop.set()
