"""``driftwarden demo`` end to end: broker, daemon, traffic, webhooks, summary, clean stop."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from kafka.admin import KafkaAdminClient

from monitor.notify.signing import decode_secret, signature_headers
from simulation.demo.receiver import DemoReceiver, new_secret
from simulation.simulator import schedule

pytestmark = pytest.mark.kafka
ROOT = Path(__file__).resolve().parents[2]
EVENTS = 60_000


def _demo_command() -> list[str]:
    return [sys.executable, "-m", "monitor.cli", "demo"]


def _run_demo(cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_demo_command(), "--events", str(EVENTS)],
        cwd=cwd,
        env={**env, "PYTHONPATH": str(ROOT), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=420,
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie or a reused pid is not the daemon.
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"monitor.cli" in cmdline


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def _check_summary(result: subprocess.CompletedProcess[str], cwd: Path) -> int:
    """The common checks of a demo run; returns the daemon's pid."""
    out = result.stdout
    assert result.returncode == 0, f"stdout:\n{out}\nstderr:\n{result.stderr}"
    assert "MISSED" not in out
    for injected in schedule(EVENTS):
        row = next((line for line in out.splitlines() if f" {injected.kind} " in line), None)
        assert row is not None, f"{injected.kind} is not in the table:\n{out}"
        assert f"{injected.model}/{injected.signal}" in row
        assert re.search(r"\d[\d,]* events, [\d,.]+ s", row), row
    caught = len(schedule(EVENTS))
    assert f"caught {caught} of {caught} injected incidents" in out
    notifications = [line for line in out.splitlines() if line.startswith("webhook  ")]
    assert notifications, out
    assert all("REJECTED" not in line for line in notifications)
    assert any("trigger/new" in line for line in notifications)
    assert "signed correctly" in out and "NOT signed" not in out
    assert (cwd / "demo-out" / "demo.db").is_file()
    assert (cwd / "demo-out" / "demo.toml").is_file()
    match = re.search(r"^daemon: pid (\d+)", out, re.MULTILINE)
    assert match, out
    pid = int(match.group(1))
    assert not _alive(pid), f"the daemon (pid {pid}) is still running"
    assert re.search(rf"daemon \(pid {pid}\) stopped by SIGTERM, exit code 0", out), out
    ops = re.search(r"ops http://127\.0\.0\.1:(\d+)/metrics", out)
    assert ops and not _port_open(int(ops.group(1))), "the daemon's ops port still answers"
    hook = re.search(r"webhook receiver: http://127\.0\.0\.1:(\d+)/hook", out)
    assert hook and not _port_open(int(hook.group(1))), "the receiver still answers"
    return pid


def test_demo_on_the_session_broker(kafka_bootstrap: str, tmp_path: Path) -> None:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
    result = _run_demo(tmp_path, env)
    _check_summary(result, tmp_path)
    assert "(from KAFKA_BOOTSTRAP_SERVERS)" in result.stdout
    assert "starting a local Apache Kafka broker" not in result.stdout
    topic = re.search(r"^topic: (\S+)", result.stdout, re.MULTILINE)
    assert topic, result.stdout
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, request_timeout_ms=30_000)
    try:
        assert topic.group(1) not in admin.list_topics(), "the demo left its topic behind"
    finally:
        admin.close()


def test_demo_from_a_clean_clone_starts_and_stops_its_own_broker(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    result = _run_demo(tmp_path, env)
    _check_summary(result, tmp_path)
    match = re.search(
        r"^broker: 127\.0\.0\.1:(\d+) \(started by the demo", result.stdout, re.MULTILINE
    )
    assert match, result.stdout
    port = int(match.group(1))
    assert f"broker on port {port} stopped" in result.stdout
    assert not _port_open(port), f"the demo's broker on port {port} still takes connections"
    run_root = os.environ.get("DRIFTWARDEN_KAFKA_RUN") or os.path.join(
        os.environ.get("TMPDIR", "/tmp"), "driftwarden-kafka"
    )
    assert not Path(f"{run_root}-{port}", "pid").exists(), "scripts/kafka still lists the broker"


def test_the_receiver_takes_signed_notifications_once_and_refuses_bad_signatures() -> None:
    secret = new_secret()
    lines: list[str] = []
    body = (
        b'{"kind": "trigger", "reason": "new", "model": "fraud", "signal": "amount", '
        b'"detector": "ks", "severity": "warning", "summary": "[warning] fraud: ks on amount", '
        b'"incident": {"id": 1}, "alerts": [{"detector": "ks", "signal": "amount"}]}'
    )
    with DemoReceiver(secret, emit=lines.append) as receiver:

        def post(headers: dict[str, str]) -> int:
            request = urllib.request.Request(receiver.url, data=body, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=5) as answer:
                    return int(answer.status)
            except urllib.error.HTTPError as exc:
                return exc.code

        signed = signature_headers(decode_secret(secret), "msg_1", body)
        assert post(signed) == 200
        assert post(signed) == 200  # a retry: answered, counted once
        forged = signature_headers(b"not-the-secret", "msg_2", body)
        assert post(forged) == 401
        assert post({"webhook-id": "msg_3"}) == 401
    assert [n.webhook_id for n in receiver.received()] == ["msg_1"]
    assert receiver.duplicates == 1 and receiver.rejected == 2
    note = receiver.received()[0]
    assert note.mentions("fraud", "amount") and not note.mentions("churn", "amount")
    assert lines[0].startswith("webhook  trigger/new") and "fraud/amount by ks" in lines[0]
    assert sum("REJECTED" in line for line in lines) == 2
