"""One JSON log line per alert written, for log pipelines that alert on the daemon's log.

The alerts are read back from the store after their checkpoint committed,
so a line stands for an alert that exists (never one lost in a crash), and
one reader serves the single process and the supervised workers alike.
Alerts written before the daemon started are not logged again.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from monitor.config import Config
from monitor.notify.alertmanager import AlertmanagerPusher, AlertmanagerTarget
from monitor.notify.payloads import iso

log = logging.getLogger("driftwarden.alerts")
POLL_SECONDS = 1.0
# At most this many lines per pass: a burst is logged over the next passes.
LINES_PER_PASS = 1000


class AlertLog:
    def __init__(self, store_path: str) -> None:
        self.store_path = store_path
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._db = sqlite3.connect(
            f"{Path(store_path).resolve().as_uri()}?mode=ro",
            uri=True,
            timeout=10,
            check_same_thread=False,
        )
        self.last_id = int(
            self._db.execute("SELECT coalesce(max(id), 0) FROM alerts").fetchone()[0]
        )

    def log_new(self) -> int:
        """Log the alerts written since the last call; returns how many."""
        rows = self._db.execute(
            "SELECT id, model, detector, signal, severity, event_ts, incident_id FROM alerts "
            "WHERE id > ? ORDER BY id LIMIT ?",
            [self.last_id, LINES_PER_PASS],
        ).fetchall()
        for alert_id, model, detector, signal, severity, event_ts, incident_id in rows:
            log.warning(
                "alert",
                extra={
                    "alert_id": alert_id,
                    "model": model,
                    "detector": detector,
                    "signal": signal,
                    "severity": severity,
                    "event_time": iso(event_ts),
                    "incident_id": incident_id,
                },
            )
            self.last_id = alert_id
        return len(rows)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="alert-log", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self._db.close()

    def _run(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            try:
                while self.log_new() == LINES_PER_PASS:
                    pass
            except sqlite3.Error as exc:  # a busy store: try again on the next pass
                log.warning("reading new alerts failed", extra={"error": str(exc)})


def start_store_readers(config: Config) -> Callable[[], None]:
    """Start what follows the store beside the consumers: the alert log and the
    Alertmanager pushes (``[[alertmanagers]]``); returns what stops them."""
    alert_log = AlertLog(config.store.path)
    alert_log.start()
    pusher = AlertmanagerPusher(
        config.store.path,
        [AlertmanagerTarget(am.url, am.resend_seconds) for am in config.alertmanagers],
        external_url=config.notifications.external_url,
    )
    pusher.start()

    def stop() -> None:
        pusher.stop(timeout=5)  # a push in flight is abandoned: it is sent again next time
        alert_log.stop()

    return stop
