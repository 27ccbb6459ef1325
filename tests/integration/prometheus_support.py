"""Real Prometheus and Alertmanager for tests: Debian's binaries (scripts/install-prometheus),
each on 127.0.0.1 with a free port and a temporary config and data directory, stopped by pid."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.daemon_support import free_port

ALERTMANAGER = Path("/usr/bin/prometheus-alertmanager")
PROMETHEUS = Path("/usr/bin/prometheus")

# Alertmanager groups Driftwarden's alerts as its incidents do: by model and kind.
ALERTMANAGER_CONFIG = """
route:
  receiver: "null"
  group_by: [model, kind]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: "null"
"""


def need(binary: Path) -> None:
    if not binary.exists():
        pytest.fail(f"{binary} is missing: run scripts/install-prometheus (make test does)")


@dataclass
class Service:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(self.url + path + query, timeout=10) as response:
            return json.loads(response.read())

    def post(self, path: str, body: Any) -> Any:
        request = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"null")


def _wait_ready(service: Service, path: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise AssertionError(f"exited {service.process.returncode}: {service.log.read_text()}")
        try:
            with urllib.request.urlopen(service.url + path, timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise AssertionError(f"{service.url}{path} not ready after {timeout} s")


@contextmanager
def _running(command: list[str], port: int, log: Path, ready_path: str) -> Iterator[Service]:
    handle = log.open("ab")
    process = subprocess.Popen(command, stdout=handle, stderr=handle)
    service = Service(process, port, log)
    try:
        _wait_ready(service, ready_path)
        yield service
    finally:
        if process.poll() is None:
            process.terminate()  # this process, by its pid
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        handle.close()


@contextmanager
def alertmanager(directory: Path, port: int | None = None) -> Iterator[Service]:
    need(ALERTMANAGER)
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "alertmanager.yml"
    config.write_text(ALERTMANAGER_CONFIG)
    port = port or free_port()
    command = [
        str(ALERTMANAGER),
        f"--config.file={config}",
        f"--storage.path={directory / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",  # a single instance: no gossip port
    ]
    with _running(command, port, directory / "alertmanager.log", "/-/ready") as service:
        yield service


@contextmanager
def prometheus(directory: Path, scrape_port: int) -> Iterator[Service]:
    need(PROMETHEUS)
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "prometheus.yml"
    config.write_text(
        f"""
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: driftwarden
    static_configs:
      - targets: ["127.0.0.1:{scrape_port}"]
"""
    )
    port = free_port()
    command = [
        str(PROMETHEUS),
        f"--config.file={config}",
        f"--storage.tsdb.path={directory / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with _running(command, port, directory / "prometheus.log", "/-/ready") as service:
        yield service


def active_alerts(am: Service, **filters: str) -> list[dict[str, Any]]:
    """Alertmanager's alerts (``GET /api/v2/alerts``): those not resolved."""
    alerts: list[dict[str, Any]] = am.get("/api/v2/alerts", **filters)
    return alerts


def query(prom: Service, expression: str) -> list[dict[str, Any]]:
    answer = prom.get("/api/v1/query", query=expression)
    assert answer["status"] == "success", answer
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result
