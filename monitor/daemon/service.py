"""The daemon's life: start-up, signals, systemd, the ops server, a bounded stop."""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from monitor import early_signals
from monitor.audit import chain as audit
from monitor.audit.chain import AuditLog
from monitor.config import Config
from monitor.daemon.alert_log import start_store_readers
from monitor.daemon.daemon import Daemon
from monitor.daemon.logs import setup_logging
from monitor.daemon.ops import DaemonMetrics, OpsServer
from monitor.daemon.supervisor import Supervisor
from monitor.daemon.systemd import SystemdNotifier
from monitor.notify.targets import WebhookTarget
from monitor.store.errors import ending_on_store_errors
from monitor.store.lease import StoreLease
from monitor.store.store import Store

log = logging.getLogger("driftwarden.service")


def run_daemon(
    config: Config,
    targets: list[WebhookTarget],
    notify_socket: str | None,
    owner_pid: int | None = None,
) -> int:
    """Run until SIGTERM, SIGINT or the end of ``owner_pid``; a final checkpoint, then exit 0.

    The daemon holds its store's lease for its whole life, so that no command
    rewrites the store under it. An error of the store (a full disk, a lock
    held too long) is logged and ends the daemon with exit 2: a service manager
    starts it again, from its last checkpoint.
    """
    setup_logging(config.ops.log_level)
    path = config.store.path
    lease = StoreLease.shared(path, "driftwarden run", config.kafka.group_id)
    try:
        with ending_on_store_errors(path, log):
            return _serve(config, targets, notify_socket, owner_pid)
    finally:
        lease.release()


def _serve(
    config: Config,
    targets: list[WebhookTarget],
    notify_socket: str | None,
    owner_pid: int | None,
) -> int:
    notifier = SystemdNotifier(notify_socket)
    audit_key = audit.key_from_env(config.audit.key_env, os.environ)
    store = Store(config.store.path)
    audit.bind_key(store.db, audit_key)
    _warn_if_others_may_read(config.store.path)
    _audit_config_load(store, config)
    stop_readers = start_store_readers(config)  # the alert log, the Alertmanager pushes
    try:
        return _consume(config, targets, store, audit_key, notifier, owner_pid)
    finally:
        stop_readers()


def _consume(
    config: Config,
    targets: list[WebhookTarget],
    store: Store,
    audit_key: bytes | None,
    notifier: SystemdNotifier,
    owner_pid: int | None,
) -> int:
    supervised = config.kafka.consumer_processes > 1
    # The supervisor waits stop_timeout_seconds for its workers, so it gets a little more.
    stop = _stop_on_signals(
        config.ops.stop_timeout_seconds + (5.0 if supervised else 0.0), owner_pid
    )
    if supervised:
        store.close()
        code = Supervisor(config, targets, audit_key).run(stop, notifier)
        log.info("stopped after the workers' final checkpoints", extra={"exit_code": code})
        return code
    metrics = DaemonMetrics(
        store_path=config.store.path,
        models=[m.name for m in config.models],
        max_signal_series=config.ops.max_signal_series,
    )
    daemon = Daemon(config, store, metrics, targets)
    ops = OpsServer(config.ops.host, config.ops.port, metrics.registry, daemon.ready)
    ops.start()
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
    try:
        daemon.run(stop, notifier.watchdog, notifier.stopping)
    finally:
        ops.stop()
        store.close()
    log.info("stopped after a final checkpoint")
    return 0


def _stop_on_signals(timeout: float, owner_pid: int | None = None) -> threading.Event:
    """An event set by SIGTERM, SIGINT or the end of ``owner_pid``.

    A stop that takes longer than ``timeout`` exits 1.
    """
    stop = threading.Event()

    def request_stop(reason: dict[str, object]) -> None:
        log.info("stopping", extra=reason)
        if stop.is_set():
            return
        stop.set()
        # A stuck stop must still end within the bound systemd and containers expect.
        timer = threading.Timer(timeout, _force_exit)
        timer.daemon = True
        timer.start()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        request_stop({"signal": signal.Signals(signum).name})

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    early = early_signals.first_noted()
    if early is not None:  # it came while the command was starting
        request_stop({"signal": early.name, "during": "start-up"})
    if owner_pid is not None:
        threading.Thread(
            target=_watch_owner, args=(owner_pid, stop, request_stop), name="owner", daemon=True
        ).start()
    return stop


def _watch_owner(
    pid: int, stop: threading.Event, request_stop: Callable[[dict[str, object]], None]
) -> None:
    """Stop when the process that started this one is gone, even if it was SIGKILLed."""
    while not stop.wait(1.0):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            request_stop({"owner_pid": pid, "why": "the owner process is gone"})
            return
        except PermissionError:
            pass  # alive, owned by another user


def _audit_config_load(store: Store, config: Config) -> None:
    """Which config the daemon ran with, in the tamper-evident log."""
    try:
        digest = hashlib.sha256(Path(config.source).read_bytes()).hexdigest()
    except OSError:
        digest = ""
    content = {
        "sha256": digest,
        "models": [m.name for m in config.models],
        "webhooks": [{"format": w.format, "min_severity": w.min_severity} for w in config.webhooks],
    }
    with store.transaction() as db:
        audit.check_key(db, audit.bound_key(db), config.audit.key_env)
        AuditLog.append(db, "config_load", config.source, content)


def _warn_if_others_may_read(path: str) -> None:
    """An existing store keeps the mode its owner gave it; say so if others may open it."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return
    if mode & 0o077:
        log.warning(
            f"store {path} may be opened by other users (mode {mode:04o}): it holds quarantined "
            f"records and the audit log; `chmod 600 {path}*` unless that is meant",
            extra={"store": path},
        )


def _force_exit() -> None:
    log.error("the stop took too long; exiting without a final checkpoint")
    os._exit(1)
