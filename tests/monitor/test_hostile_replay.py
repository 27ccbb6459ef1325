"""No record, whatever its bytes, stops a replay: a fuzz run through the real pipeline."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from monitor.cli.progress import Progress
from monitor.config import load_config
from monitor.replay.file_replay import replay_file
from monitor.store.store import Store
from simulation.simulator import write_simulation
from tests.hostile_records import hostile_lines

ROOT = Path(__file__).resolve().parents[2]
CLI = (sys.executable, "-m", "monitor.cli")
SMALLEST = (
    '[store]\npath = "unused.db"\n\n[[models]]\nname = "fraud"\n\n[[models]]\nname = "churn"\n'
)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    path = tmp_path_factory.mktemp("hostile") / "simulated.jsonl"
    write_simulation(path, events=60_000, seed=5)
    return path.read_bytes().splitlines()


def test_a_hundred_thousand_hostile_records_never_stop_a_replay(
    simulated: list[bytes], tmp_path: Path
) -> None:
    hostile = list(hostile_lines(simulated, 100_000, seed=17))
    rng = np.random.default_rng(3)
    # Interleave: each hostile record lands at a random place in the ordinary stream.
    slots = np.sort(rng.integers(0, len(simulated) + 1, size=len(hostile)))
    lines: list[bytes] = []
    taken = 0
    for i, line in enumerate(simulated):
        while taken < len(hostile) and slots[taken] == i:
            lines.append(hostile[taken])
            taken += 1
        lines.append(line)
    lines += hostile[taken:]
    events = tmp_path / "hostile.jsonl"
    events.write_bytes(b"\n".join(lines) + b"\n")
    config_path = tmp_path / "smallest.toml"
    config_path.write_text(SMALLEST)
    store = Store(tmp_path / "hostile.db")
    try:
        result = replay_file(load_config(config_path), store, events, Progress("t", False))
        quarantined_rows = store.count("quarantine")
        reasons = [r for (r,) in store.db.execute("SELECT DISTINCT reason FROM quarantine")]
    finally:
        store.close()
    read = sum(1 for line in events.read_bytes().split(b"\n") if line.strip())
    stats = result.stats
    skipped = sum(stats.unlisted.values())
    assert stats.processed + stats.quarantined + skipped == read
    assert quarantined_rows == stats.quarantined
    assert stats.processed >= len(simulated)  # every ordinary record still counts
    assert not any(r.startswith("unreadable record") for r in reasons), reasons
    assert any("lone surrogate" in r for r in reasons)
    assert any("not valid UTF-8" in r for r in reasons)
    assert any("outside the accepted event times" in r for r in reasons)


def test_the_poison_record_of_the_report_is_quarantined_and_the_replay_exits_0(
    simulated: list[bytes], tmp_path: Path
) -> None:
    poison = b'{"model":"fraud","ts":1793491200,"features":{"\\ud800":1.0},"score":0.5}'
    events = tmp_path / "poison.jsonl"
    events.write_bytes(b"\n".join([*simulated[:3000], poison, *simulated[3000:3100]]) + b"\n")
    config = tmp_path / "smallest.toml"
    config.write_text(SMALLEST)
    store = tmp_path / "poison.db"
    done = subprocess.run(
        [*CLI, "replay", "--config", str(config), "--input", str(events), "--store", str(store)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    reopened = Store(store)
    try:
        ((reason, offset),) = reopened.db.execute("SELECT reason, offset FROM quarantine")
    finally:
        reopened.close()
    assert offset == 3001 and "lone surrogate (\\ud800)" in reason
