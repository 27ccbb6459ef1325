"""``driftwarden run`` with ``kafka.consumer_processes`` > 1: a supervisor and its workers.

Parsing and detection are Python work bound to one core, so one process cannot
use a machine's other cores. Each worker here is a full member of the consumer
group, with its own ``Daemon``: its share of the partitions, its own
checkpoints into the same SQLite store (one transaction each, serialised by
SQLite's write lock), so everything the single-process daemon guarantees holds
per worker, and a worker that dies is replaced by one that starts from the
checkpointed state. The supervisor owns what must exist once: signals, systemd
notifications, the ops server and webhook delivery.

A worker talks to the supervisor over one pipe: every half second it sends its
readiness and how long ago its consuming loop last turned; asked for metrics,
it sends its registry's families, which the supervisor serves with a ``worker``
label. When the supervisor disappears the pipe closes and the worker stops
after a final checkpoint. The worker's side is ``monitor.daemon.worker``.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

import sqlite_utils
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import Metric

from monitor.config import Config
from monitor.daemon.ops import OpsServer
from monitor.daemon.store_figures import StoreFigures
from monitor.daemon.systemd import SystemdNotifier
from monitor.daemon.worker import STATUS_SECONDS, worker_main
from monitor.errors import DriftwardenError
from monitor.notify.delivery import DeliveryWorker
from monitor.notify.outbox import WebhookOutbox
from monitor.notify.targets import WebhookTarget
from monitor.store import store
from monitor.store.store import connect_read_only

log = logging.getLogger("driftwarden.workers")
# A worker whose loop has not turned for this long is stuck: systemd's watchdog
# is then starved, and restarts the whole service.
STUCK_SECONDS = 20.0
RESTART_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)
# A worker that ran this long before dying starts again after the shortest delay.
STABLE_SECONDS = 60.0


@dataclass
class WorkerStatus:
    ready: bool = False
    why: str = "starting"
    loop_age: float = 0.0
    received: float = field(default_factory=time.monotonic)
    reported: bool = False  # the worker's daemon is constructed and talking


class WorkerHandle:
    """One worker process as the supervisor sees it: the process, its pipe, its last status."""

    def __init__(self, index: int, config: Config) -> None:
        self.index = index
        self.config = config
        self.process: multiprocessing.process.BaseProcess | None = None
        self.conn: Connection | None = None
        self.status = WorkerStatus()
        self.started_at = 0.0
        self.failures = 0
        self.start_error: str | None = None
        self.fatal: str | None = None  # a store error: the whole daemon stops
        self.starts = 0
        self.restart_at: float | None = None
        self._send_lock = threading.Lock()
        self._replies: list[list[Metric]] = []
        self._reply = threading.Condition()

    def start(self) -> None:
        self._release()
        context = multiprocessing.get_context("spawn")
        parent_end, child_end = context.Pipe()
        self.process = context.Process(
            target=worker_main,
            args=(self.config, self.index, child_end, store.BUSY_TIMEOUT_MS),
            name=f"driftwarden-worker-{self.index}",
            daemon=False,
        )
        self.process.start()
        child_end.close()
        self.conn = parent_end
        self.status = WorkerStatus()
        self.started_at = time.monotonic()
        self.restart_at = None
        self.start_error = self.fatal = None
        self.starts += 1
        threading.Thread(
            target=self._read, args=(parent_end,), name=f"worker-{self.index}-pipe", daemon=True
        ).start()
        log.info("worker started", extra={"worker": self.index, "pid": self.process.pid})

    def _release(self) -> None:
        """Close the pipe and process handle of a worker that has ended, before a new start."""
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        if self.process is not None and not self.process.is_alive():
            self.process.join(0)
            self.process.close()
            self.process = None

    @property
    def alive(self) -> bool:
        process = self.process  # one read: a restart may replace it meanwhile
        if process is None:
            return False
        try:
            return process.is_alive()
        except ValueError:
            return False  # a handle closed by a restart in another thread

    def _read(self, conn: Connection) -> None:
        while True:
            try:
                kind, payload = conn.recv()
            except (EOFError, OSError):
                return
            if kind == "status":
                self.status = WorkerStatus(**payload, reported=True)
            elif kind == "failed":
                self.start_error = payload
            elif kind == "fatal":
                self.fatal = payload
            elif kind == "metrics":
                with self._reply:
                    self._replies.append(payload)
                    self._reply.notify_all()

    def metrics(self, timeout: float = 2.0) -> list[Metric]:
        """The worker's metric families now; empty if it does not answer in time."""
        conn = self.conn
        if conn is None or not self.alive:
            return []
        with self._send_lock:
            with self._reply:
                self._replies.clear()
            try:
                conn.send(("metrics", None))
            except (OSError, ValueError):
                return []
            with self._reply:
                self._reply.wait_for(lambda: bool(self._replies), timeout)
                return self._replies.pop() if self._replies else []

    def terminate(self) -> None:
        if self.alive and self.process is not None and self.process.pid is not None:
            os.kill(self.process.pid, signal.SIGTERM)


class WorkerMetrics:
    """Every worker's metrics, each sample labelled with its ``worker``.

    The outbox is one table for all: its depth is the supervisor's own metric.
    """

    def __init__(self, workers: list[WorkerHandle], skip: frozenset[str]) -> None:
        self.workers = workers
        self.skip = skip

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        for worker in self.workers:
            for family in worker.metrics():
                if family.name in self.skip:
                    continue
                out = merged.get(family.name)
                if out is None:
                    out = Metric(family.name, family.documentation, family.type, family.unit)
                    merged[family.name] = out
                for sample in family.samples:
                    labels = {**sample.labels, "worker": str(worker.index)}
                    out.add_sample(sample.name, labels, sample.value, sample.timestamp)
        yield from merged.values()


class Supervisor:
    def __init__(
        self, config: Config, targets: list[WebhookTarget], audit_key: bytes | None = None
    ) -> None:
        self.config = config
        count = config.kafka.consumer_processes
        self.workers = [WorkerHandle(i, config) for i in range(count)]
        self.registry = CollectorRegistry()
        models = [m.name for m in config.models]
        self.registry.register(
            StoreFigures(config.store.path, models, config.ops.max_signal_series)
        )
        self.registry.register(WorkerMetrics(self.workers, frozenset({"driftwarden_outbox_depth"})))
        self.restarts = Counter(
            "driftwarden_worker_restarts",
            "Workers started again after dying",
            registry=self.registry,
        )
        self.alive = Gauge(
            "driftwarden_workers_alive", "Worker processes running", registry=self.registry
        )
        self.alive.set_function(lambda: sum(w.alive for w in self.workers))
        self.outbox_depth = Gauge(
            "driftwarden_outbox_depth", "Notifications waiting for delivery", registry=self.registry
        )
        self.outbox_depth.set_function(self._outbox_depth)
        self.delivery = DeliveryWorker.for_config(config, targets, audit_key)

    def _outbox_depth(self) -> float:
        # Read-only, per scrape: the supervisor never competes with workers for the write lock.
        db = sqlite_utils.Database(connect_read_only(self.config.store.path))
        try:
            return float(WebhookOutbox.depth(db))
        except sqlite3.Error:
            return 0.0  # a store not yet created by its first worker
        finally:
            db.close()

    def ready(self) -> tuple[bool, str]:
        for worker in self.workers:
            if not worker.alive:
                return False, f"worker {worker.index}: not running"
            if not worker.status.ready:
                return False, f"worker {worker.index}: {worker.status.why}"
        return True, f"ok: {len(self.workers)} workers; " + "; ".join(
            f"worker {w.index}: {w.status.why}" for w in self.workers
        )

    def healthy(self) -> bool:
        """Every running worker reports, and its loop turns: what the systemd watchdog hears."""
        now = time.monotonic()
        for worker in self.workers:
            if not worker.alive:
                continue  # dead workers are restarted; that is the supervisor's job
            if now - worker.status.received > STUCK_SECONDS:
                return False
            if worker.status.loop_age > STUCK_SECONDS:
                return False
        return True

    def run(self, stop: threading.Event, notifier: SystemdNotifier) -> int:
        ops = OpsServer(self.config.ops.host, self.config.ops.port, self.registry, self.ready)
        ops.start()
        if self.delivery is not None:
            self.delivery.start()
        for worker in self.workers:
            worker.start()
        log.info(
            "started",
            extra={
                "config": self.config.source,
                "store": self.config.store.path,
                "topics": self.config.kafka.topics,
                "group_id": self.config.kafka.group_id,
                "workers": len(self.workers),
                "ops": f"http://{self.config.ops.host}:{ops.port}",
            },
        )
        announced = False
        try:
            while not stop.wait(STATUS_SECONDS):
                failed = self._failed_start()
                if failed is not None:
                    self._stop_workers()
                    raise DriftwardenError(failed)
                self._replace_dead()
                # READY once every worker runs, as the single process says it once it
                # consumes; an unreachable broker shows in /readyz, not here.
                if not announced and all(w.status.reported for w in self.workers):
                    notifier.ready(f"{len(self.workers)} workers consuming")
                    announced = True
                if announced and self.healthy():
                    notifier.watchdog()
            notifier.stopping()
            return self._stop_workers()
        finally:
            if self.delivery is not None:
                self.delivery.close()
            ops.stop()

    def _failed_start(self) -> str | None:
        """Why a worker of the first generation could not start (a wrong config, no broker),
        or why any worker stopped on a store error (a full disk, a lock held too long).

        Restarting would not help, so the whole daemon stops with that one line,
        as the single process does.
        """
        for worker in self.workers:
            if worker.fatal is not None and not worker.alive:
                return worker.fatal
            first = worker.starts == 1
            if first and worker.start_error is not None and not worker.alive:
                return worker.start_error
        return None

    def _replace_dead(self) -> None:
        now = time.monotonic()
        for worker in self.workers:
            if worker.alive:
                continue
            if worker.restart_at is None:
                ran = now - worker.started_at
                worker.failures = 0 if ran >= STABLE_SECONDS else worker.failures + 1
                delay = RESTART_DELAYS[min(worker.failures, len(RESTART_DELAYS) - 1)]
                worker.restart_at = now + delay
                code = worker.process.exitcode if worker.process is not None else None
                log.error(
                    "worker died; starting another",
                    extra={"worker": worker.index, "exit_code": code, "in_seconds": delay},
                )
            elif now >= worker.restart_at:
                self.restarts.inc()
                worker.start()

    def _stop_workers(self) -> int:
        """SIGTERM to every worker, each makes its final checkpoint; 0 if all exit 0 in time."""
        for worker in self.workers:
            worker.terminate()
        deadline = time.monotonic() + self.config.ops.stop_timeout_seconds
        code = 0
        for worker in self.workers:
            process = worker.process
            if process is None:
                continue
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.error("worker did not stop in time; killing it", extra={"worker": worker.index})
                process.kill()
                process.join(5)
                code = 1
            elif process.exitcode not in (0, None) and worker.restart_at is None:
                log.error(
                    "worker exited with an error",
                    extra={"worker": worker.index, "exit_code": process.exitcode},
                )
                code = 1
        return code
