"""Driving the real daemon in tests: produce a file to Kafka, start and stop processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import orjson
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from monitor.store.store import Store

ROOT = Path(__file__).resolve().parents[2]


def produce_file(bootstrap: str, topic: str, path: Path) -> int:
    """Every line as one record, keyed by its model (unkeyed when it has none)."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=256 * 1024)
    count = 0
    with path.open("rb") as lines:
        for line in lines:
            value = line.rstrip(b"\n")
            try:
                model = orjson.loads(value).get("model")
                key = model.encode() if isinstance(model, str) else None
            except (orjson.JSONDecodeError, AttributeError):
                key = None
            producer.send(topic, key=key, value=value)
            count += 1
    producer.flush()
    producer.close()
    return count


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(
    path: Path,
    bootstrap: str,
    topic: str,
    store: Path,
    ops_port: int,
    group: str = "dw-test",
    kafka_extra: str = "",
) -> Path:
    path.write_text(
        f"""
[store]
path = "{store}"

[kafka]
bootstrap_servers = "{bootstrap}"
topics = ["{topic}"]
group_id = "{group}"
session_timeout_ms = 6000
{kafka_extra}

[checkpoint]
every_records = 2000
every_seconds = 1.0

[ops]
port = {ops_port}

[[models]]
name = "fraud"

[[models]]
name = "churn"
"""
    )
    return path


def start_daemon(
    config: Path, log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    handle = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "run", "--config", str(config)],
        cwd=ROOT,
        stdout=handle,
        stderr=handle,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30) -> int:
    if process.poll() is None:
        process.send_signal(sig)
    return process.wait(timeout=timeout)


def readyz(port: int) -> tuple[int, str]:
    """The daemon's /readyz status and text; 0 while nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()
    except OSError as exc:
        return 0, str(exc)


def metric_totals(port: int) -> dict[str, float]:
    """The daemon's /metrics samples, each summed over its labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
        text = response.read().decode()
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[sample.name] = values.get(sample.name, 0.0) + sample.value
    return values


def consumed(store_path: Path) -> int:
    """Records whose effects are checkpointed: the sum of stored next offsets (every group)."""
    if not store_path.exists():
        return 0
    store = Store(store_path)
    try:
        return int(
            store.db.execute("SELECT coalesce(sum(next_offset), 0) FROM offsets").fetchone()[0]
        )
    finally:
        store.close()


def alerts_and_quarantined(store_path: Path) -> tuple[list[dict[str, object]], int]:
    """The store's alerts and how many records it quarantined."""
    store = Store(store_path)
    try:
        return store.alerts(), store.count("quarantine")
    finally:
        store.close()


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def signal_states(store_path: Path) -> list[tuple[object, ...]]:
    """Every signal's state, apart from the wall-clock time it was written."""
    store = Store(store_path)
    try:
        return store.db.execute(
            "SELECT model, detector, signal, state, severity, since_ts, last_tested_ts, "
            "last_violation_ts, resolved_ts, statistic, p_value, threshold, effect_size "
            "FROM signal_state ORDER BY model, detector, signal"
        ).fetchall()
    finally:
        store.close()


def replay_alerts(config: Path, events: Path, store: Path) -> list[dict[str, object]]:
    """The alerts of ``driftwarden replay`` over the same events: what the daemon must match."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "monitor.cli",
            "replay",
            "--config",
            str(config),
            "--input",
            str(events),
            "--store",
            str(store),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    replayed = Store(store)
    try:
        return replayed.alerts()
    finally:
        replayed.close()
