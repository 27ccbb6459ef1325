"""Fixtures for alerting tests: a real SQLite store and a real local webhook receiver."""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from detectors.base import Finding
from monitor import cli, notify_policy
from monitor.alerting import AlertPolicy
from monitor.audit import write_transaction
from monitor.incident_commands import register
from monitor.store import Store


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


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "store.db")
    notify_policy.ensure_schema(store.db)
    yield store
    store.close()


def finding(
    signal: str = "amount",
    event_ts: float = 1_764_140_000.0,
    severity: str = "warning",
    detector: str = "ks",
    statistic: float = 0.31,
) -> Finding:
    return Finding(
        detector=detector,
        signal=signal,
        event_ts=event_ts,
        severity=severity,  # type: ignore[arg-type]
        statistic=statistic,
        threshold=0.2,
        p_value=1e-6,
        effect_size=statistic,
        details={"window_events": 1000, "window_start_ts": event_ts - 600.0},
    )


@pytest.fixture
def make_finding() -> Callable[..., Finding]:
    return finding


@pytest.fixture
def record() -> Callable[..., int]:
    """Write findings as the pipeline does: alerts, incidents, outbox in one transaction."""

    def write(store: Store, model: str, *findings: Finding, policy: object = None) -> int:
        with write_transaction(store.db) as db:
            written = AlertPolicy().record(db, model, findings)
            if policy is not None:
                policy.enqueue_changes(db, time.time())  # type: ignore[attr-defined]
        return written

    return write


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch) -> Callable[..., int]:
    """``driftwarden ARGS`` in-process, with the incident commands registered."""
    original = cli._parser

    def parser_with_incidents() -> argparse.ArgumentParser:
        parser = original()
        commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        if "incidents" not in commands.choices:
            register(commands)
        return parser

    monkeypatch.setattr(cli, "_parser", parser_with_incidents)
    monkeypatch.setenv("COLUMNS", "200")  # rich would wrap tables at 80 columns
    return lambda *argv: cli.main(list(argv))
