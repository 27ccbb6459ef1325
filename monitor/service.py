"""The daemon's life: start-up, signals, systemd, the ops server, a bounded stop."""

from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType

from monitor.config import Config
from monitor.daemon import Daemon
from monitor.logs import setup_logging
from monitor.ops import DaemonMetrics, OpsServer
from monitor.store import Store
from monitor.systemd import SystemdNotifier

log = logging.getLogger("driftwarden.service")


def run_daemon(config: Config, notify_socket: str | None) -> int:
    """Run until SIGTERM or SIGINT; a final checkpoint, then exit 0."""
    setup_logging(config.ops.log_level)
    notifier = SystemdNotifier(notify_socket)
    store = Store(config.store.path)
    metrics = DaemonMetrics()
    daemon = Daemon(config, store, metrics)
    ops = OpsServer(config.ops.host, config.ops.port, metrics, daemon.ready)
    ops.start()
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", extra={"signal": signal.Signals(signum).name})
        notifier.stopping()
        stop.set()
        # A stuck stop must still end within the bound systemd and containers expect.
        timer = threading.Timer(config.ops.stop_timeout_seconds, _force_exit)
        timer.daemon = True
        timer.start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info(
        "started",
        extra={
            "config": config.source,
            "store": config.store.path,
            "topics": config.kafka.topics,
            "group_id": config.kafka.group_id,
            "ops": f"http://{config.ops.host}:{ops.port}",
        },
    )
    notifier.ready(f"consuming {', '.join(config.kafka.topics)}")
    last_watchdog = 0.0

    def heartbeat() -> None:
        nonlocal last_watchdog
        now = time.monotonic()
        if now - last_watchdog >= 2.0:
            notifier.watchdog()
            last_watchdog = now

    try:
        daemon.run(stop, heartbeat)
    finally:
        ops.stop()
        store.close()
    log.info("stopped after a final checkpoint")
    return 0


def _force_exit() -> None:
    import os

    log.error("the stop took too long; exiting without a final checkpoint")
    os._exit(1)
