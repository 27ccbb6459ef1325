"""The demo's webhook receiver: what on-call would get, one readable line per notification.

A local HTTP server on 127.0.0.1 (a free port) in a thread. Each POST must carry
a valid Standard Webhooks signature made with the demo's secret; a bad one is
refused with 401 and said so. Retries of one ``webhook-id`` are answered but
counted once.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from monitor.notify.signing import verify_signature

SECRET_ENV = "DRIFTWARDEN_DEMO_SECRET"


def new_secret() -> str:
    """A fresh Standard Webhooks secret (``whsec_`` + base64 of 24 random bytes)."""
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


@dataclass(frozen=True)
class Notification:
    received_at: float  # time.monotonic()
    webhook_id: str
    kind: str
    reason: str
    model: str
    signal: str
    detector: str
    severity: str
    summary: str
    incident_id: int | None
    signals: tuple[tuple[str, str], ...]  # (detector, signal) of every alert in the payload

    def line(self) -> str:
        what = f"{self.kind}/{self.reason}"
        return (
            f"webhook  {what:<17} {self.severity:<8} {self.model}/{self.signal} "
            f"by {self.detector}: {self.summary}"
        )

    def mentions(self, model: str, signal: str) -> bool:
        return self.model == model and any(s == signal for _, s in self.signals)


def parse_notification(webhook_id: str, body: bytes) -> Notification:
    """A generic-format payload (CONTRACT §5) as a ``Notification``."""
    payload: dict[str, Any] = orjson.loads(body)
    incident = payload.get("incident") or {}
    alerts = payload.get("alerts") or []
    return Notification(
        received_at=time.monotonic(),
        webhook_id=webhook_id,
        kind=str(payload.get("kind", "?")),
        reason=str(payload.get("reason", "?")),
        model=str(payload.get("model", "?")),
        signal=str(payload.get("signal", "?")),
        detector=str(payload.get("detector", "?")),
        severity=str(payload.get("severity", "?")),
        summary=str(payload.get("summary", "")),
        incident_id=incident.get("id"),
        signals=tuple((str(a.get("detector")), str(a.get("signal"))) for a in alerts),
    )


class DemoReceiver:
    """Receives signed webhooks on 127.0.0.1; ``emit`` gets one line per new notification."""

    def __init__(self, secret: str, emit: Callable[[str], None] = print) -> None:
        self.secret = secret
        self.emit = emit
        self.notifications: list[Notification] = []
        self.rejected = 0
        self.duplicates = 0
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the receiver is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def start(self) -> str:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="demo-webhook-receiver", daemon=True
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> DemoReceiver:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def received(self) -> list[Notification]:
        with self._lock:
            return list(self.notifications)

    def take(self, headers: dict[str, str], body: bytes) -> int:
        """Handle one POST; returns the HTTP status to answer."""
        if not verify_signature(self.secret, headers, body):
            with self._lock:
                self.rejected += 1
            self.emit("webhook  REJECTED: missing or invalid signature")
            return 401
        webhook_id = headers.get("webhook-id", "")
        try:
            notification = parse_notification(webhook_id, body)
        except (orjson.JSONDecodeError, AttributeError, TypeError):
            self.emit(f"webhook  REJECTED {webhook_id}: not a generic JSON payload")
            return 400
        with self._lock:
            if webhook_id in self._seen:
                self.duplicates += 1
                return 200
            self._seen.add(webhook_id)
            self.notifications.append(notification)
        self.emit(notification.line())
        return 200


def _handler(receiver: DemoReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            status = receiver.take(headers, body)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler
