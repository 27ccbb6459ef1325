"""One worker process of ``driftwarden run`` with ``kafka.consumer_processes`` > 1.

It runs a ``Daemon`` and talks to the supervisor over one pipe (see
``monitor.workers``).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from multiprocessing.connection import Connection

from prometheus_client import CollectorRegistry

from monitor.config import Config
from monitor.daemon import Daemon
from monitor.logs import setup_logging
from monitor.ops import DaemonMetrics
from monitor.store import Store

log = logging.getLogger("driftwarden.workers")
STATUS_SECONDS = 0.5


class _WorkerLogs(logging.Filter):
    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index

    def filter(self, record: logging.LogRecord) -> bool:
        record.worker = self.index
        return True


def worker_main(config: Config, index: int, conn: Connection) -> None:
    """One worker: a ``Daemon`` until SIGTERM or the supervisor's pipe closes."""
    setup_logging(config.ops.log_level)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_WorkerLogs(index))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _s, _f: stop.set())
    # Ctrl-C reaches the whole process group; the supervisor turns it into SIGTERM.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    store = Store(config.store.path)
    metrics = DaemonMetrics()
    try:
        daemon = Daemon(config, store, metrics)
    except Exception as exc:
        store.close()
        conn.send(("failed", str(exc)))
        raise SystemExit(2) from None
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
