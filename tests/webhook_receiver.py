"""A real local HTTP server that receives webhooks and answers as a test scripts it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class Received:
    at: float  # time.monotonic() when the request arrived
    path: str
    headers: dict[str, str]
    body: bytes
    status: int


@dataclass
class WebhookReceiver:
    """A local HTTP server that records every POST and answers as a test scripts it.

    ``unavailable_seconds``: answer 503 until this long after start.
    ``script``: (status, headers, delay) answers for the first requests, in order.
    """

    unavailable_seconds: float = 0.0
    script: list[tuple[int, dict[str, str], float]] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def answer(self) -> tuple[int, dict[str, str], float]:
        with self._lock:
            if self.script:
                return self.script.pop(0)
        if time.monotonic() - self.started < self.unavailable_seconds:
            return 503, {}, 0.0
        return 200, {}, 0.0

    def accepted(self) -> list[Received]:
        return [r for r in self.received if 200 <= r.status < 300]

    port: int = 0


def _handler(receiver: WebhookReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            arrived = time.monotonic()
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            status, headers, delay = receiver.answer()
            headers_in = {k.lower(): v for k, v in self.headers.items()}
            with receiver._lock:
                receiver.received.append(Received(arrived, self.path, headers_in, body, status))
            if delay:
                time.sleep(delay)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def start_receiver() -> Iterator[Callable[..., WebhookReceiver]]:
    """Start receivers on 127.0.0.1, port 0, each in a thread; all stopped at teardown."""
    servers: list[tuple[ThreadingHTTPServer, threading.Thread]] = []

    def start(**options: object) -> WebhookReceiver:
        receiver = WebhookReceiver(**options)  # type: ignore[arg-type]
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
        server.daemon_threads = True
        receiver.port = server.server_address[1]
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        receiver.started = time.monotonic()
        servers.append((server, thread))
        return receiver

    yield start
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(5)
