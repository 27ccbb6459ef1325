"""The worker that delivers the webhook outbox (CONTRACT §5).

It posts due rows, each outcome in its own small transaction, and retries with
capped exponential backoff and full jitter until the receiver takes it, refuses
it for good (a 4xx other than 429), or the row grows too old. Rows of one
incident to one URL go out in order: a resolve never overtakes the trigger it
resolves.
"""

from __future__ import annotations

import email.utils
import logging
import random
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlite_utils

from monitor import __version__
from monitor.audit import chain as audit
from monitor.audit.chain import AuditLog, write_transaction
from monitor.notify.outbox import url_key
from monitor.notify.signing import signature_headers
from monitor.notify.targets import WebhookTarget, body_for_target

if TYPE_CHECKING:
    from monitor.config import Config

# Named after the module this code came from, so log records keep the logger
# name that log filters and dashboards already match on.
log = logging.getLogger("driftwarden.outbox")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """urllib would turn a redirected POST into a GET without body; refuse instead."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


@dataclass(frozen=True)
class Attempt:
    status: int | None
    error: str | None = None
    retry_after: float | None = None


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - now)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard delivery tries: backoff ``base_delay * 2**n`` capped, full jitter."""

    timeout: float = 10.0
    base_delay: float = 1.0
    max_delay: float = 600.0
    max_age: float = 24 * 3600.0
    slack_interval: float = 1.0
    poll_seconds: float = 1.0


def audit_finished(
    db: sqlite_utils.Database,
    row: tuple[str, int, int, str],
    state: str,
    status: int | None,
    error: str | None,
    now: float,
) -> None:
    """The audit row of a finished notification; ``row`` is its outbox row's
    ``(webhook_id, incident_id, url_index, kind)``."""
    webhook_id, incident_id, url_index, kind = row
    content: dict[str, Any] = {
        "event": state,
        "webhook_id": webhook_id,
        "webhook": url_index,
        "kind": kind,
        "status": status,
        "error": error,
    }
    AuditLog.append(db, "notification", f"incident:{incident_id}", content, ts=now)


class DeliveryWorker:
    """Posts due outbox rows. Drive it with ``deliver_due`` or let ``start`` run a thread."""

    @classmethod
    def for_config(
        cls, config: Config, targets: Sequence[WebhookTarget] | None, audit_key: bytes | None
    ) -> DeliveryWorker | None:
        """The worker delivering a config's outbox to ``targets``; None without targets
        (the daemon's, its supervisor's, and ``driftwarden notify``'s)."""
        if not targets:
            return None
        retry = RetryPolicy(max_age=config.notifications.max_age_seconds)
        return cls(config.store.path, targets, retry=retry, audit_key=audit_key)

    def __init__(
        self,
        store_path: str | Path,
        targets: Sequence[WebhookTarget],
        retry: RetryPolicy | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        audit_key: bytes | None = None,
    ) -> None:
        self.targets = list(targets)
        self.retry = retry or RetryPolicy()
        self._rng = rng or random.Random()
        self._clock = clock
        # Its own connection, shared by the caller's thread and the worker thread
        # under ``_lock``, so delivery never holds the pipeline's connection.
        conn = sqlite3.connect(str(store_path), check_same_thread=False, timeout=10.0)
        self.db = sqlite_utils.Database(conn)
        self.db.execute("PRAGMA busy_timeout=10000")
        audit.bind_key(self.db, audit_key)  # the notification rows it appends
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._lanes: list[_Lane] = []
        self._slack_sent: dict[str, float] = dict(
            self.db.execute(
                "SELECT url_key, max(last_attempt_at) FROM outbox WHERE format = 'slack' "
                "AND last_attempt_at IS NOT NULL GROUP BY url_key"
            ).fetchall()
        )
        # Per URL key: when a Slack row held back by the rate limit may go.
        self._slack_wait_until: dict[str, float] = {}
        # Told of each notification finished (webhook-id, state, when): the cluster
        # notifier keeps them on its deliveries topic.
        self.on_finished: Callable[[str, str, float], None] | None = None

    def _target(self, key: str, fmt: str) -> WebhookTarget | None:
        return next((t for t in self.targets if url_key(t.url) == key and t.format == fmt), None)

    def deliver_due(self, now: float | None = None, lane: _Lane | None = None) -> int:
        """One pass over the due rows (of one lane's URLs, if given); returns those delivered.

        The store is touched under the lock, the HTTP request outside it: lanes
        post at the same time, so a slow receiver delays only its own rows.
        """
        now = self._clock() if now is None else now
        scope, params = ("", []) if lane is None else lane.condition()
        with self._lock:
            rows = self.db.execute(
                "SELECT id, webhook_id, url_key, format, body, created_at, attempts FROM outbox o "
                f"WHERE state = 'pending' AND next_attempt_at <= ? {scope} AND NOT EXISTS ("
                "  SELECT 1 FROM outbox p WHERE p.incident_id = o.incident_id "
                "  AND p.url_key = o.url_key AND p.state = 'pending' AND p.id < o.id) "
                "ORDER BY id LIMIT 200",
                [now, *params],
            ).fetchall()
        for key in list(self._slack_wait_until):
            if lane is None or lane.holds(key):
                del self._slack_wait_until[key]  # this pass decides again what waits
        delivered = 0
        for row_id, webhook_id, key, fmt, body, created_at, attempts in rows:
            if self._stop.is_set():
                break  # a stop waits for one request per lane at most
            target = self._target(key, fmt)
            if target is None:
                if now - created_at >= self.retry.max_age:
                    with self._lock:
                        self._finish(row_id, "gave_up", now, None, "webhook no longer configured")
                continue
            if fmt == "slack" and not self._slack_ready(key):
                continue
            outcome = self._post(target, webhook_id, bytes(body))
            with self._lock:
                delivered += self._record(
                    row_id, webhook_id, outcome, now, created_at, attempts + 1
                )
        return delivered

    def _slack_ready(self, key: str) -> bool:
        """Slack takes about one message per second per webhook URL."""
        last = self._slack_sent.get(key)
        if last is None:
            return True
        ready_at = last + self.retry.slack_interval
        if self._clock() >= ready_at:
            self._slack_wait_until.pop(key, None)
            return True
        self._slack_wait_until[key] = ready_at
        return False

    def _post(self, target: WebhookTarget, webhook_id: str, stored: bytes) -> Attempt:
        body = body_for_target(stored, target)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"driftwarden/{__version__}",
            **signature_headers(target.secret, webhook_id, body, int(self._clock())),
        }
        if target.format == "slack":
            self._slack_sent[url_key(target.url)] = self._clock()
        request = urllib.request.Request(target.url, data=body, headers=headers, method="POST")
        try:
            with _OPENER.open(request, timeout=self.retry.timeout) as response:
                response.read(65536)
                return Attempt(int(response.status))
        except urllib.error.HTTPError as exc:
            retry_after = parse_retry_after(exc.headers.get("Retry-After"), self._clock())
            return Attempt(exc.code, f"HTTP {exc.code} {exc.reason}", retry_after)
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            return Attempt(None, f"network: {type(exc).__name__}: {reason}")

    def _record(
        self,
        row_id: int,
        webhook_id: str,
        outcome: Attempt,
        now: float,
        created_at: float,
        attempts: int,
    ) -> int:
        status = outcome.status
        if status is not None and 200 <= status < 300:
            self._finish(row_id, "delivered", now, status, None, attempts)
            return 1
        retryable = status is None or status == 429 or status >= 500
        if not retryable:
            self._finish(row_id, "failed", now, status, outcome.error, attempts)
        elif now - created_at >= self.retry.max_age:
            self._finish(row_id, "gave_up", now, status, outcome.error, attempts)
        else:
            delay = self._rng.uniform(
                0.0, min(self.retry.max_delay, self.retry.base_delay * 2 ** (attempts - 1))
            )
            if outcome.retry_after is not None:
                delay = min(outcome.retry_after, self.retry.max_age)
            with write_transaction(self.db):
                self.db.execute(
                    "UPDATE outbox SET attempts = ?, next_attempt_at = ?, last_attempt_at = ?, "
                    "last_status = ?, last_error = ? WHERE id = ?",
                    [attempts, now + delay, now, status, outcome.error, row_id],
                )
            log.info(
                "webhook %s not delivered (%s); retry in %.1f s",
                webhook_id,
                outcome.error,
                delay,
            )
        return 0

    def _finish(
        self,
        row_id: int,
        state: str,
        now: float,
        status: int | None,
        error: str | None,
        attempts: int | None = None,
    ) -> None:
        column = {"delivered": "delivered_at", "failed": "failed_at", "gave_up": "gave_up_at"}
        with write_transaction(self.db):
            self.db.execute(
                f"UPDATE outbox SET state = ?, {column[state]} = ?, last_attempt_at = ?, "
                "last_status = ?, last_error = ?, attempts = coalesce(?, attempts) WHERE id = ?",
                [state, now, now, status, error, attempts, row_id],
            )
            row = self.db.execute(
                "SELECT webhook_id, incident_id, url_index, kind FROM outbox WHERE id = ?",
                [row_id],
            ).fetchone()
            audit_finished(self.db, row, state, status, error, now)
        if self.on_finished is not None:
            self.on_finished(row[0], state, now)
        if state != "delivered":
            log.warning("webhook %s %s: %s", row[0], state.replace("_", " "), error)

    def next_wake(self, now: float, lane: _Lane | None = None) -> float:
        """Seconds until something (of one lane's URLs) may be due, at most ``poll_seconds``.

        Rows due now were just tried, are waiting for the Slack rate limit, or
        wait behind an earlier row of their incident, so only later times count.
        """
        scope, params = ("", []) if lane is None else lane.condition()
        with self._lock:
            row = self.db.execute(
                "SELECT min(next_attempt_at) FROM outbox "
                f"WHERE state = 'pending' AND next_attempt_at > ? {scope}",
                [now, *params],
            ).fetchone()
        wait = self.retry.poll_seconds
        if row[0] is not None:
            wait = min(wait, row[0] - now)
        for key, ready_at in list(self._slack_wait_until.items()):
            if lane is None or lane.holds(key):
                wait = min(wait, ready_at - now)
        return max(0.01, wait)

    def wake(self) -> None:
        """Look at the outbox now, e.g. right after a checkpoint enqueued rows."""
        for lane in self._lanes:
            lane.wake.set()

    def start(self) -> None:
        """One delivery thread per webhook URL, and one that retires rows of removed URLs."""
        self._stop.clear()
        keys = sorted({url_key(t.url) for t in self.targets})
        self._lanes = [_Lane(frozenset({key}), inside=True) for key in keys]
        self._lanes.append(_Lane(frozenset(keys), inside=False))
        for index, lane in enumerate(self._lanes):
            lane.thread = threading.Thread(
                target=self._run, args=(lane,), name=f"webhook-delivery-{index}", daemon=True
            )
            lane.thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Ask the threads to stop and wait; a request in flight finishes (or times out) first."""
        self._stop.set()
        self.wake()
        for lane in self._lanes:
            if lane.thread is not None:
                lane.thread.join(timeout)
        self._lanes = []

    def close(self) -> None:
        self.stop()
        self.db.close()

    def _run(self, lane: _Lane) -> None:
        while not self._stop.is_set():
            try:
                self.deliver_due(lane=lane)
                wait = self.next_wake(self._clock(), lane)
            except Exception:
                # Delivery must outlive a bad moment (a locked store, a full disk).
                log.exception("webhook delivery pass failed")
                wait = self.retry.poll_seconds
            lane.wake.wait(wait)
            lane.wake.clear()


@dataclass
class _Lane:
    """The outbox rows one delivery thread owns: those of ``keys``, or of every other URL."""

    keys: frozenset[str]
    inside: bool
    wake: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def holds(self, key: str) -> bool:
        return (key in self.keys) == self.inside

    def condition(self) -> tuple[str, list[str]]:
        """The SQL that selects this lane's rows, and its parameters."""
        if not self.keys:
            return ("", []) if not self.inside else ("AND 0", [])
        marks = ", ".join("?" * len(self.keys))
        verb = "IN" if self.inside else "NOT IN"
        return f"AND url_key {verb} ({marks})", sorted(self.keys)
