"""The processes ``driftwarden demo`` starts and stops: a local Kafka broker and the daemon."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from monitor.errors import DriftwardenError
from simulation.demo.receiver import SECRET_ENV

ROOT = Path(__file__).resolve().parents[2]  # simulation/demo/processes.py -> the checkout
KAFKA_SCRIPT = ROOT / "scripts" / "kafka"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_broker(port: int) -> str:
    """Start the local broker of ``scripts/kafka`` on ``port``; its bootstrap address."""
    # The script's own messages (fetching, started) go straight to stderr.
    started = subprocess.run(
        [str(KAFKA_SCRIPT), "start", "--port", str(port), "--owner-pid", str(os.getpid())],
        stdout=subprocess.PIPE,
        text=True,
        timeout=900,
    )
    lines = started.stdout.strip().splitlines()
    if started.returncode != 0 or not lines or not lines[-1].startswith("bootstrap="):
        raise DriftwardenError(
            f"the local broker did not start (scripts/kafka exit code {started.returncode}; "
            "its message is above); or set KAFKA_BOOTSTRAP_SERVERS to a running broker"
        )
    return lines[-1].removeprefix("bootstrap=")


def stop_broker(port: int) -> None:
    subprocess.run(
        [str(KAFKA_SCRIPT), "stop", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=120,
    )


def start_daemon(config_path: Path, log_path: Path, secret: str) -> subprocess.Popen[bytes]:
    """``driftwarden run`` in a child process, its output appended to ``log_path``."""
    log = log_path.open("ab")
    try:
        return subprocess.Popen(
            [
                *(sys.executable, "-m", "monitor.cli", "run", "--config", str(config_path)),
                *("--owner-pid", str(os.getpid())),  # it stops even if the demo is SIGKILLed
            ],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            env={**os.environ, SECRET_ENV: secret, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,  # Ctrl-C reaches the demo, which stops it in order
        )
    finally:
        log.close()


def daemon_ready(ops_port: int) -> bool:
    try:
        url = f"http://127.0.0.1:{ops_port}/readyz"
        with urllib.request.urlopen(url, timeout=1.0) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def check_daemon(daemon: subprocess.Popen[bytes] | None, log_path: Path) -> None:
    """Raise when the daemon has exited, with the last line of its log."""
    if daemon is not None and daemon.poll() is not None:
        tail = _last_line(log_path)
        raise DriftwardenError(
            f"the daemon exited with code {daemon.returncode}: {tail} (log {log_path})"
        )


def stop_daemon(daemon: subprocess.Popen[bytes], say: Callable[[str], None]) -> None:
    """SIGTERM first; a kill only when the daemon has not exited 40 s later."""
    if daemon.poll() is not None:
        say(f"daemon (pid {daemon.pid}) had exited with code {daemon.returncode}")
        return
    daemon.send_signal(signal.SIGTERM)
    try:
        daemon.wait(timeout=40)
    except subprocess.TimeoutExpired:
        daemon.kill()
        daemon.wait(timeout=10)
    say(f"daemon (pid {daemon.pid}) stopped by SIGTERM, exit code {daemon.returncode}")


def _last_line(path: Path) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return lines[-1][:300] if lines else "no output"


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    """A new topic of ``partitions`` partitions, or a one-line error saying why not."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap.split(","),
            client_id="driftwarden-demo",
            request_timeout_ms=30_000,
        )
    except KafkaError:
        raise DriftwardenError(f"no Kafka broker answers at {bootstrap}") from None
    try:
        admin.create_topics([NewTopic(topic, partitions, 1)])
    except KafkaError as exc:
        raise DriftwardenError(f"cannot create topic {topic}: {exc}") from None
    finally:
        admin.close()


def delete_topic(bootstrap: str, topic: str) -> None:
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","), request_timeout_ms=15_000)
    try:
        admin.delete_topics([topic])
    finally:
        admin.close()
