"""Replay over a file: malformed lines quarantined with reasons, deterministic alerts."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.store.store import Store
from simulation.simulator import MALFORMED_KINDS, write_simulation

ROOT = Path(__file__).resolve().parents[2]


def _replay(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor.cli", "replay", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )


@pytest.fixture(scope="module")
def events_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("replay") / "events.jsonl"
    write_simulation(path, events=30_000, seed=11, malformed=300)
    return path


def test_replay_quarantines_malformed_lines_and_is_deterministic(
    events_file: Path, tmp_path: Path
) -> None:
    config = ROOT / "configs" / "demo.toml"
    first, second = tmp_path / "first.db", tmp_path / "second.db"
    lines = events_file.read_bytes().count(b"\n")
    assert lines > 30_300, "30,000 simulated events, their feedback labels, 300 malformed lines"
    for store in (first, second):
        result = _replay(
            "--config", str(config), "--input", str(events_file), "--store", str(store)
        )
        assert result.returncode == 0, result.stderr
        expected = f"{lines - 300:,} events processed, 300 quarantined"
        assert expected in result.stdout, result.stdout

    with sqlite3.connect(first) as db:
        rows = db.execute(
            "SELECT source, offset, reason, raw FROM quarantine ORDER BY offset"
        ).fetchall()
    assert len(rows) == 300
    assert all(reason for _, _, reason, _ in rows)
    records = events_file.read_bytes().split(b"\n")
    for source, offset, _, raw in rows:
        assert source == "file:events.jsonl"
        assert records[offset - 1] == raw, "quarantine must keep the record and its position"
        assert raw in MALFORMED_KINDS

    a, b = Store(first), Store(second)
    try:
        assert a.alerts() == b.alerts()
        assert a.count("alerts") > 0, "the simulation holds drift; replay found none"
        assert a.count("model_state") == 2
        baselines = a.db.execute(
            "SELECT subject FROM audit WHERE kind = 'baseline_change' ORDER BY subject"
        ).fetchall()
        assert baselines == [("model:churn",), ("model:fraud",)]
    finally:
        a.close()
        b.close()


def test_replay_refuses_to_mix_into_a_used_store(events_file: Path, tmp_path: Path) -> None:
    config = ROOT / "configs" / "demo.toml"
    store = tmp_path / "used.db"
    assert (
        _replay(
            "--config", str(config), "--input", str(events_file), "--store", str(store)
        ).returncode
        == 0
    )
    again = _replay("--config", str(config), "--input", str(events_file), "--store", str(store))
    assert again.returncode == 2 and "--overwrite" in again.stderr
    before = _table_counts(store)
    forced = _replay(
        "--config", str(config), "--input", str(events_file), "--store", str(store), "--overwrite"
    )
    assert forced.returncode == 0, forced.stderr
    # Started afresh: the same rows as the first replay, none of its left behind.
    assert _table_counts(store) == before
    assert before["signal_history"] > 0 and before["signal_state"] > 0


def _table_counts(store: Path) -> dict[str, int]:
    with sqlite3.connect(store) as db:
        return {
            t: db.execute(f"SELECT count(*) FROM [{t}]").fetchone()[0]
            for t in ("alerts", "incidents", "signal_history", "signal_state", "label_batches")
        }


def test_replay_errors_are_one_line(tmp_path: Path) -> None:
    config = ROOT / "configs" / "demo.toml"
    missing = _replay("--config", str(config), "--input", str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 2
    assert missing.stderr.strip().count("\n") == 0 and "no such input file" in missing.stderr
