"""The daemon's fetch process (``kafka.fetch_process``) against the real broker.

Records are fetched and parsed by a process of its own beside the consume loop.
It must be invisible in what the daemon finds: killed, it is replaced and the
stream still gives exactly a replay's alerts and quarantine; it never outlives
its daemon, even one killed with SIGKILL; and turned off, the loop reads the
records itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest

from simulation.simulator import write_simulation
from tests.integration.daemon_support import (
    alerts_and_quarantined,
    consumed,
    free_port,
    metric_totals,
    produce_file,
    replay_alerts,
    signal_states,
    start_daemon,
    stop,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.kafka


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                text = stat.read()
        except OSError:  # gone meanwhile
            continue
        if int(text[text.rindex(")") + 2 :].split()[1]) == pid:
            found.append(int(entry))
    return found


def _fetch_process(pid: int) -> int:
    """The one fetch process of daemon ``pid``, once it has started (other children, such
    as a library's short-lived helper at start-up, are not it)."""
    holder: list[int] = []

    def started() -> bool:
        holder[:] = [c for c in _children(pid) if b"monitor.daemon.fetch_child" in _cmdline(c)]
        return len(holder) == 1

    wait_until(started, 30, "the fetch process")
    return holder[0]


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return cmdline.read()
    except OSError:  # gone meanwhile
        return b""


def _gone_or_ended(pid: int, daemon: subprocess.Popen[bytes]) -> bool:
    return _gone(pid) or daemon.poll() is not None


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie is gone too: only its parent can reap it.
    with open(f"/proc/{pid}/stat") as stat:
        text = stat.read()
    return text[text.rindex(")") + 2] == "Z"


@dataclass
class Run:
    """A simulated stream produced to ``topic`` and a daemon started on it."""

    events: Path
    total: int
    store: Path
    config: Path
    log: Path
    port: int
    process: subprocess.Popen[bytes]


def _run(
    tmp_path: Path,
    bootstrap: str,
    topic: str,
    events: int,
    seed: int,
    malformed: int = 0,
    kafka_extra: str = "",
) -> Run:
    stream = tmp_path / "events.jsonl"
    write_simulation(stream, events=events, seed=seed, malformed=malformed)
    total = produce_file(bootstrap, topic, stream)
    store, port, log = tmp_path / "live.db", free_port(), tmp_path / "daemon.log"
    config = write_config(
        tmp_path / "live.toml", bootstrap, topic, store, port, kafka_extra=kafka_extra
    )
    return Run(stream, total, store, config, log, port, start_daemon(config, log))


def test_a_killed_fetch_process_is_replaced_and_the_stream_matches_a_replay(
    kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    run = _run(tmp_path, kafka_bootstrap, topic, 60_000, seed=7, malformed=500)
    events, total, store, config = run.events, run.total, run.store, run.config
    log, port, process = run.log, run.port, run.process
    try:
        first = _fetch_process(process.pid)
        wait_until(lambda: consumed(store) >= 15_000, 180, "15,000 records checkpointed")
        os.kill(first, signal.SIGKILL)
        wait_until(lambda: _gone(first), 10, "the killed fetch process to end")
        second = _fetch_process(process.pid)
        assert second != first
        wait_until(lambda: consumed(store) >= total, 300, "the whole stream")
        metrics = metric_totals(port)
        assert metrics["driftwarden_broker_up"] == 1
    finally:
        code = stop(process)
    assert code == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert "the fetch process failed; starting another" in text
    # Both fetch processes decoded the records themselves (monitor.daemon.record_batches).
    assert text.count('"records_decoded_by":"plain v2 batches here"') == 2, text[-3000:]
    wait_until(lambda: _gone(second), 10, "the fetch process to end with its daemon")

    live_alerts, quarantined = alerts_and_quarantined(store)
    replayed = replay_alerts(config, events, tmp_path / "replay.db")
    assert live_alerts, "the stream holds drift; the daemon found none"
    assert live_alerts == replayed
    assert quarantined == 500
    assert signal_states(store) == signal_states(tmp_path / "replay.db")


def test_the_fetch_process_ends_with_a_daemon_killed_outright(
    kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    run = _run(tmp_path, kafka_bootstrap, topic, 20_000, seed=8)
    store, process = run.store, run.process
    try:
        child = _fetch_process(process.pid)
        wait_until(lambda: consumed(store) >= 2_000, 180, "a first checkpoint")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    # Its socket to the daemon closes with the daemon: it ends by itself, within its poll.
    wait_until(lambda: _gone(child), 10, "the orphaned fetch process to end")


def test_without_a_fetch_process_the_loop_reads_the_records_itself(
    kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    run = _run(
        tmp_path,
        kafka_bootstrap,
        topic,
        20_000,
        seed=9,
        malformed=100,
        kafka_extra="fetch_process = false",
    )
    events, total, store, config = run.events, run.total, run.store, run.config
    log, process = run.log, run.process
    try:
        wait_until(lambda: consumed(store) >= total, 180, "the whole stream")
        time.sleep(0.5)
        fetchers = [c for c in _children(process.pid) if b"fetch_child" in _cmdline(c)]
        assert fetchers == []
    finally:
        code = stop(process)
    assert code == 0, log.read_text()[-3000:]
    live_alerts, quarantined = alerts_and_quarantined(store)
    assert live_alerts == replay_alerts(config, events, tmp_path / "replay.db")
    assert quarantined == 100


def test_a_sigterm_to_every_process_of_the_daemon_stops_it_cleanly(
    kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    """systemd's stop sends SIGTERM to every process of the service, not only the main one."""
    run = _run(tmp_path, kafka_bootstrap, topic, 20_000, seed=10)
    total, store, log, process = run.total, run.store, run.log, run.process
    try:
        child = _fetch_process(process.pid)
        wait_until(lambda: consumed(store) >= total, 180, "the whole stream")
        os.kill(child, signal.SIGTERM)
        os.kill(process.pid, signal.SIGTERM)
        code = process.wait(timeout=30)
    finally:
        if process.poll() is None:
            stop(process)
    assert code == 0, log.read_text()[-3000:]
    assert "the fetch process failed" not in log.read_text()
    wait_until(lambda: _gone(child), 10, "the fetch process to end with its daemon")


def test_a_fetch_process_that_keeps_dying_ends_the_daemon_with_one_line(
    kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    run = _run(tmp_path, kafka_bootstrap, topic, 5_000, seed=11)
    log, process = run.log, run.process
    try:
        for _ in range(6):  # the sixth death within a minute is one too many
            child = _fetch_process(process.pid)
            os.kill(child, signal.SIGKILL)
            wait_until(partial(_gone_or_ended, child, process), 10, "the kill")
            if process.poll() is not None:
                break
        code = process.wait(timeout=30)
    finally:
        if process.poll() is None:
            stop(process)
    text = log.read_text()
    assert code == 2, text[-3000:]
    assert text.count("the fetch process failed; starting another") == 5
    assert "fetch_process = false to read records in the consume loop instead" in text
