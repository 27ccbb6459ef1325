"""`driftwarden baseline set` with the daemon running: built from its next checkpoint on."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from simulation.simulator import write_simulation
from tests.integration.daemon_support import (
    ROOT,
    consumed,
    free_port,
    produce_file,
    start_daemon,
    stop,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.kafka


def test_a_running_daemon_builds_the_reference_set_from_a_file(
    kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    write_simulation(events, events=12_000, seed=11)
    reference = tmp_path / "known-good.jsonl"
    write_simulation(reference, events=6_000, seed=12)
    store = tmp_path / "live.db"
    config = write_config(tmp_path / "live.toml", kafka_bootstrap, topic, store, free_port())
    log = tmp_path / "daemon.log"
    daemon = start_daemon(config, log)
    try:
        total = produce_file(kafka_bootstrap, topic, events)
        wait_until(lambda: consumed(store) >= total, 180, "the first pass checkpointed")
        command = ["baseline", "set", "--model", "fraud", "--input", str(reference)]
        chosen = subprocess.run(
            [sys.executable, "-m", "monitor.cli", *command, "--config", str(config), "--by", "ops"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert chosen.returncode == 0, chosen.stderr
        assert "model fraud: reference set from known-good.jsonl: sample of" in chosen.stdout
        more = produce_file(kafka_bootstrap, topic, events)
        wait_until(lambda: consumed(store) >= total + more, 180, "the second pass checkpointed")
    finally:
        code = stop(daemon)
    assert code == 0, log.read_text()[-3000:]

    with sqlite3.connect(store) as db:
        done = db.execute("SELECT model, done_at FROM baseline_references").fetchall()
        audit = [
            orjson.loads(content)
            for (content,) in db.execute(
                "SELECT content FROM audit WHERE kind = 'baseline_change' "
                "AND subject = 'model:fraud' ORDER BY id"
            )
        ]
        [(fraud_events,)] = db.execute("SELECT events FROM model_state WHERE model = 'fraud'")
    assert [(model, at is not None) for model, at in done] == [("fraud", True)]
    sha256 = hashlib.sha256(reference.read_bytes()).hexdigest()
    assert [a["source"] for a in audit][-2:] == ["reference set", "reference carried out"]
    assert audit[-1]["sha256"] == audit[-2]["sha256"] == sha256
    # Counted from the reference on: fewer than the model's events over both passes.
    fraud_per_pass = sum(b'"model":"fraud"' in line for line in events.read_bytes().splitlines())
    assert 0 < fraud_events < 2 * fraud_per_pass
    assert "the reference set from a file is carried out" in log.read_text()
    audited = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "audit", "verify", "--store", str(store)],
        cwd=ROOT,
        timeout=120,
    )
    assert audited.returncode == 0
