"""Whether two source trees write the same results for the same events.

    .venv/bin/python scripts/compare_replays.py --code before=/tmp/before after=.
        [--events 60000] [--malformed 100] [--seed 0] [--config configs/demo.toml]

Simulates ``--events`` events with ``--malformed`` malformed lines mixed in
(``driftwarden simulate``, this tree's), replays the file with each tree
(``driftwarden replay``, the tree first on ``PYTHONPATH``) into a store of its
own, then compares what the stores hold, row for row: alerts, incidents,
signal history and states, performance windows, quarantined records and the
label join's counts and stored predictions. Columns
of wall-clock time (``*_at``) are left out: they differ from run to run. Exits
1 when any table differs, naming the first differing row.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TABLES = {
    "alerts": "id",
    "incidents": "id",
    "signal_history": "id",
    "signal_state": "model, detector, signal",
    "performance_windows": "id",
    "quarantine": "id",
    # The label join: its counts and states, and what it stores, byte for byte. Where a
    # prediction's (hash, number) pair lives (level 0 in memory or ``label_index``) shows
    # in ``label_index``, ``label_batches.indexed`` and ``label_counts.index_flushes``
    # only: a change of when level 0 is flushed may differ there and nowhere else.
    "label_counts": "model",
    "label_batches": "model, first",
    "label_chunks": "model, first",
    "label_joined": "model, first",
    "label_index": "model, part, shard",
}


def replay(tree: Path, config: Path, events: Path, store: Path) -> float:
    """Replay ``events`` with the code of ``tree`` into ``store``; its CPU seconds."""
    command = [sys.executable, "-m", "monitor.cli", "replay", "--config", str(config)]
    command += ["--input", str(events), "--store", str(store)]
    before = os.times()
    env = {**os.environ, "PYTHONPATH": str(tree.resolve())}
    subprocess.run(command, check=True, env=env, cwd=store.parent, stdout=subprocess.DEVNULL)
    after = os.times()
    return sum(after[2:4]) - sum(before[2:4])  # the children's user and system time


def rows(store: Path, table: str) -> tuple[list[str], list[tuple[object, ...]]]:
    """The table's rows in key order, without its wall-clock columns."""
    db = sqlite3.connect(store)
    try:
        names = [r[1] for r in db.execute(f"PRAGMA table_info({table})")]
        kept = [n for n in names if not n.endswith("_at")]
        listed = ", ".join(f'"{n}"' for n in kept)
        return kept, list(db.execute(f"SELECT {listed} FROM {table} ORDER BY {TABLES[table]}"))
    finally:
        db.close()


def compare(first: Path, second: Path) -> list[str]:
    """What differs between two stores, one line per table (empty: nothing)."""
    problems = []
    for table in TABLES:
        columns, a = rows(first, table)
        _, b = rows(second, table)
        if len(a) != len(b):
            problems.append(f"{table}: {len(a)} rows against {len(b)}")
            continue
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if repr(x) != repr(y):  # repr: NaN equals no NaN, and 0.0 == -0.0
                differing = [c for c, u, v in zip(columns, x, y, strict=True) if repr(u) != repr(v)]
                problems.append(f"{table}: row {i} differs in {', '.join(differing)}")
                break
    return problems


def counts(store: Path) -> str:
    return ", ".join(f"{table} {len(rows(store, table)[1]):,}" for table in TABLES)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--code", nargs=2, metavar="LABEL=DIR", required=True)
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--malformed", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "demo.toml")
    args = parser.parse_args()
    trees = []
    for item in args.code:
        label, _, directory = item.partition("=")
        if not label or not (Path(directory) / "monitor").is_dir():
            parser.error(f"--code {item}: give LABEL=DIR, DIR a Driftwarden source tree")
        trees.append((label, Path(directory)))
    with tempfile.TemporaryDirectory(prefix="driftwarden-compare-") as tmp:
        events = Path(tmp) / "events.jsonl"
        simulate = [sys.executable, "-m", "monitor.cli", "simulate", "--out", str(events)]
        simulate += ["--events", str(args.events), "--malformed", str(args.malformed)]
        subprocess.run([*simulate, "--seed", str(args.seed)], check=True, cwd=ROOT)
        stores = []
        for label, tree in trees:
            out = Path(tmp) / label
            out.mkdir()
            started = time.perf_counter()
            store = out / "store.db"
            cpu = replay(tree, args.config.resolve(), events, store)
            wall = time.perf_counter() - started
            print(f"{label}: replayed in {wall:.1f} s ({cpu:.1f} s CPU): {counts(store)}")
            stores.append(store)
        problems = compare(*stores)
    if problems:
        print("DIFFERENT:\n  " + "\n  ".join(problems))
        return 1
    print(f"the same rows in {', '.join(TABLES)} (wall-clock columns aside)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
