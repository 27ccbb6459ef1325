"""Firing signals pushed to real Alertmanagers (``[[alertmanagers]]``), as Prometheus does.

Prometheus' way: every firing alert is posted to ``POST <url>/api/v2/alerts``
again and again (every ``resend_seconds``) with ``endsAt`` a few resends ahead,
so that an Alertmanager which restarted, or a Driftwarden that died, lets
the alert expire instead of firing forever; a resolved alert is posted once
more with ``endsAt`` = now.

The truth is the store's ``signal_state``. What each Alertmanager was last
told is firing is kept in ``alertmanager_pushes``, so that a signal which
returned to ok while Driftwarden was stopped, or while the Alertmanager was
unreachable, is still resolved there after a restart. A failed push is tried
again with capped exponential backoff and jitter; the pushes run on their own
threads and connection, never in the consumer's way.
"""

from __future__ import annotations

import json
import logging
import math
import random
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitor import __version__
from monitor.incidents.kinds import kind_of, title
from monitor.notify.outbox import url_key
from monitor.notify.payloads import iso

log = logging.getLogger("driftwarden.alertmanager")

# Alerts per POST: Alertmanager takes any number, but one request stays small.
ALERTS_PER_POST = 500
# Label and annotation values are cut to this many characters.
MAX_VALUE_CHARS = 512
# endsAt = now + this many resend intervals, as Prometheus does (4 x its resend delay).
ENDS_AFTER_RESENDS = 4


@dataclass(frozen=True)
class AlertmanagerTarget:
    url: str  # the Alertmanager's base URL, e.g. http://alertmanager:9093
    resend_seconds: float = 60.0


@dataclass(frozen=True)
class PushPolicy:
    timeout: float = 10.0
    base_delay: float = 1.0
    max_delay: float = 300.0
    poll_seconds: float = 1.0


@dataclass(frozen=True)
class Signal:
    model: str
    detector: str
    signal: str
    severity: str
    since_ts: float | None
    statistic: float | None
    p_value: float | None
    threshold: float | None
    effect_size: float | None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.model, self.detector, self.signal)


def _cut(value: str) -> str:
    return value[:MAX_VALUE_CHARS]


def _figure(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.4g}"


def signal_labels(s: Signal) -> dict[str, str]:
    """The alert's identity in Alertmanager: what its routes group and its silences match."""
    kind = kind_of(s.signal)
    return {
        "alertname": f"Driftwarden{kind.capitalize()}",
        "model": _cut(s.model),
        "detector": _cut(s.detector),
        "signal": _cut(s.signal),
        "kind": kind,
        "severity": s.severity,
    }


def firing_alert(
    s: Signal, starts_at: float, now: float, resend: float, external_url: str
) -> dict[str, Any]:
    kind = kind_of(s.signal)
    annotations = {
        "summary": _cut(title(s.model, kind, s.detector, s.signal)),
        "description": _cut(
            f"{s.detector} on {s.signal} of model {s.model} fires ({s.severity}): "
            f"statistic {_figure(s.statistic)} against threshold {_figure(s.threshold)}, "
            f"p-value {_figure(s.p_value)}, effect size {_figure(s.effect_size)}; "
            f"since {iso(s.since_ts) if s.since_ts is not None else 'unknown'} (event time)"
        ),
    }
    alert: dict[str, Any] = {
        "labels": signal_labels(s),
        "annotations": annotations,
        "startsAt": iso(starts_at),
        "endsAt": iso(now + ENDS_AFTER_RESENDS * resend),
    }
    if external_url:
        annotations["report"] = _cut(external_url)
        alert["generatorURL"] = _cut(external_url)
    return alert


def resolved_alert(labels: dict[str, str], starts_at: float, now: float) -> dict[str, Any]:
    return {"labels": labels, "startsAt": iso(starts_at), "endsAt": iso(max(now, starts_at))}


def read_firing(db: sqlite3.Connection) -> list[Signal]:
    rows = db.execute(
        "SELECT model, detector, signal, severity, since_ts, statistic, p_value, threshold, "
        "effect_size FROM signal_state WHERE state = 'firing' ORDER BY model, detector, signal"
    ).fetchall()
    return [Signal(*row) for row in rows]


class AlertmanagerPusher:
    """One thread per Alertmanager; drive it with ``push_once`` in tests or ``start`` it."""

    def __init__(
        self,
        store_path: str | Path,
        targets: Sequence[AlertmanagerTarget],
        external_url: str = "",
        policy: PushPolicy | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.store_path = str(store_path)
        self.targets = list(targets)
        self.external_url = external_url
        self.policy = policy or PushPolicy()
        self._clock = clock
        self._rng = rng or random.Random()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.store_path, timeout=10.0, check_same_thread=False)
        db.execute("PRAGMA busy_timeout=10000")
        return db

    def push_once(self, target: AlertmanagerTarget, db: sqlite3.Connection) -> str | None:
        """Tell ``target`` what fires and what stopped firing; None on success, else why not."""
        now = self._clock()
        key = url_key(target.url)
        firing = read_firing(db)
        told = {
            (m, d, s): (json.loads(labels), starts_at, pushed_at)
            for m, d, s, labels, starts_at, pushed_at in db.execute(
                "SELECT model, detector, signal, labels, starts_at, pushed_at "
                "FROM alertmanager_pushes WHERE url_key = ?",
                [key],
            )
        }
        alerts: list[dict[str, Any]] = []
        starts: dict[tuple[str, str, str], tuple[Signal, float]] = {}
        for s in firing:
            previous = told.get(s.key)
            # startsAt never in the future: Alertmanager refuses endsAt before startsAt.
            starts_at = previous[1] if previous else min(s.since_ts or now, now)
            starts[s.key] = (s, starts_at)
            alerts.append(firing_alert(s, starts_at, now, target.resend_seconds, self.external_url))
        stale = ENDS_AFTER_RESENDS * target.resend_seconds
        resolved = [k for k in told if k not in starts]
        for k in resolved:
            labels, starts_at, pushed_at = told[k]
            if now - pushed_at < stale:  # older ones expired there on their own
                alerts.append(resolved_alert(labels, starts_at, now))
        # Nothing fires and nothing to resolve: nothing to say (Prometheus sends nothing either).
        for begin in range(0, len(alerts), ALERTS_PER_POST):
            error = self._post(target.url, alerts[begin : begin + ALERTS_PER_POST])
            if error is not None:
                return error
        with db:
            db.executemany(
                "DELETE FROM alertmanager_pushes WHERE url_key = ? AND model = ? "
                "AND detector = ? AND signal = ?",
                [(key, *k) for k in resolved],
            )
            db.executemany(
                "INSERT OR REPLACE INTO alertmanager_pushes "
                "(url_key, model, detector, signal, labels, starts_at, pushed_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (key, *k, json.dumps(signal_labels(s)), starts_at, now)
                    for k, (s, starts_at) in starts.items()
                ],
            )
        if resolved:
            log.info(
                "alertmanager told of resolved signals",
                extra={"alertmanager": target.url, "resolved": len(resolved)},
            )
        return None

    def _post(self, base: str, alerts: list[dict[str, Any]]) -> str | None:
        body = json.dumps(alerts).encode()
        request = urllib.request.Request(
            base.rstrip("/") + "/api/v2/alerts",
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": f"driftwarden/{__version__}",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.policy.timeout) as response:
                response.read(65536)
            return None
        except urllib.error.HTTPError as exc:
            detail = exc.read(512).decode(errors="replace").strip()
            return f"HTTP {exc.code} {exc.reason}: {detail}"
        except (urllib.error.URLError, OSError) as exc:
            return f"network: {type(exc).__name__}: {getattr(exc, 'reason', exc)}"

    def changed(self, target: AlertmanagerTarget, db: sqlite3.Connection) -> bool:
        """Whether the firing signals differ from those the Alertmanager was last told of."""
        firing = {s.key for s in read_firing(db)}
        told = set(
            db.execute(
                "SELECT model, detector, signal FROM alertmanager_pushes WHERE url_key = ?",
                [url_key(target.url)],
            ).fetchall()
        )
        return firing != told

    def start(self) -> None:
        self._stop.clear()
        for index, target in enumerate(self.targets):
            thread = threading.Thread(
                target=self._run, args=(target,), name=f"alertmanager-{index}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []

    def _run(self, target: AlertmanagerTarget) -> None:
        db = self._connect()
        due_at = 0.0  # the first pass pushes at once: Alertmanager may have restarted too
        failures = 0
        try:
            while not self._stop.is_set():
                now = self._clock()
                try:
                    if now >= due_at or (failures == 0 and self.changed(target, db)):
                        error = self.push_once(target, db)
                        if error is None:
                            failures, due_at = 0, now + target.resend_seconds
                        else:
                            failures += 1
                            ceiling = min(
                                self.policy.max_delay, self.policy.base_delay * 2 ** (failures - 1)
                            )
                            due_at = now + self._rng.uniform(ceiling / 2, ceiling)
                            log.warning(
                                "alertmanager push failed; retrying",
                                extra={
                                    "alertmanager": target.url,
                                    "error": error,
                                    "retry_in_seconds": round(due_at - now, 1),
                                },
                            )
                except sqlite3.Error as exc:  # a locked store must not end the pushes
                    log.warning("alertmanager pass failed", extra={"error": str(exc)})
                wait = max(0.01, min(self.policy.poll_seconds, due_at - self._clock()))
                self._wake.wait(wait)
                self._wake.clear()
        finally:
            db.close()
