"""Memory per model of many models over a long stream of predictions with request ids.

``--models`` models (100) of 20 features (16 numeric, 4 categorical) at the
default config each get ``--predictions`` predictions (100,000) with a request
id and no label, interleaved 200 at a time per model, with a checkpoint every
``--checkpoint`` events (20,000: at a daemon's rate, about what
``checkpoint.every_seconds`` makes). Reported per model: the growth of resident
memory from the empty pipeline (at a tenth of the stream and at its end: flat
in stream length or not), and the bytes of the label index's level 0 (the
(hash, number) pairs not yet in ``label_index``, 16 bytes each) at the end and
at its largest after a checkpoint. Each source tree runs in a process of its
own; ``--old REV`` adds the code of git revision REV (``git archive``).

With ``--lookups N`` the same models and predictions go through the label join
alone (``ModelLabelJoin``, no detectors) into two stores: level 0 within one
budget for all the models (``write_all`` of them all), and within one budget
per model (``write_all`` of each alone: the rule before); then three rounds of
``N`` labels of random predictions among each model's oldest 80% (older than
its level 0 where the budget is shared): CPU time per label, the stores
alternating.

    .venv/bin/python scripts/bench_level0.py --old 96d0b9a
    .venv/bin/python scripts/bench_level0.py --lookups 3000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BLOCK = 200  # a model's predictions in a row
BASE = 2_000  # distinct events, their ids, times and model changed as they repeat
T0 = 1.6e9


def resident_mb() -> float:
    status = Path("/proc/self/status").read_text().splitlines()
    fields = dict(line.split(":", 1) for line in status if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024


def measure(models: int, predictions: int, every: int, workdir: Path) -> dict[str, float]:
    """In this process, on the ``monitor`` first on its path."""
    from monitor.config import parse_config
    from monitor.ingest.events import Event, parse_event
    from monitor.pipeline.pipeline import Pipeline
    from monitor.store.store import Store

    config = parse_config(
        {
            "store": {"path": str(workdir / "level0.db")},
            "models": [{"name": f"m{i}"} for i in range(models)],
        },
        "bench",
    )
    lines = (workdir.parent / "events.jsonl").read_bytes().splitlines()
    base = [e for e in map(parse_event, lines) if isinstance(e, Event)]
    store = Store(config.store.path)
    pipeline = Pipeline(config, store)
    names = [f"m{i}" for i in range(models)]

    def level0_pairs() -> int:
        return sum(
            sum(len(run[0]) for run in m.label_join.store.level0)
            for m in pipeline.models.values()
            if m.label_join is not None
        )

    before = resident_mb()
    fed = 0
    peak_pairs = 0
    tenth = float("nan")
    rounds = predictions // BLOCK
    for r in range(rounds):
        start = (r * BLOCK) % BASE
        block = base[start : start + BLOCK]
        for i, name in enumerate(names):
            for k, event in enumerate(block):
                n = r * BLOCK + k
                pipeline.feed(
                    replace(event, model=name, id=f"{i}-{n}", ts=1_793_491_200 + n * 0.01)
                )
            fed += len(block)
            if fed % every == 0:
                pipeline.checkpoint()
                peak_pairs = max(peak_pairs, level0_pairs())
        if r + 1 == rounds // 10:
            tenth = resident_mb()
    pipeline.checkpoint()
    after = resident_mb()
    pairs = level0_pairs()
    flushes = store.db.execute("SELECT sum(index_flushes) FROM label_counts").fetchone()[0]
    generations = store.db.execute(
        "SELECT count(*) FROM (SELECT DISTINCT model, part FROM label_index)"
    ).fetchone()[0]
    store.close()
    return {
        "rss_tenth_kb": (tenth - before) * 1024 / models,
        "rss_end_kb": (after - before) * 1024 / models,
        "level0_end_kb": pairs * 16 / 1024 / models,
        "level0_peak_kb": peak_pairs * 16 / 1024 / models,
        "flushes": float(flushes or 0),
        "generations": float(generations),
    }


def lookups(models: int, predictions: int, labels: int, tmp: Path) -> None:
    """``--lookups``: labels older than level 0, level 0 within one budget or one per model."""
    paths = {True: tmp / "shared.db", False: tmp / "per-model.db"}
    for shared, path in paths.items():
        began = time.process_time()
        fill_joins(path, models, predictions, shared)
        print(f"filled, shared={shared}: {time.process_time() - began:.0f} s CPU", flush=True)
    spent: dict[bool, list[float]] = {True: [], False: []}
    for round_ in range(3):
        for shared, path in paths.items():
            per_label, generations = label_old(path, models, predictions, labels, round_)
            spent[shared].append(per_label)
            print(
                f"round {round_}: level 0 within {'one budget' if shared else 'a budget each'}: "
                f"{per_label:.1f} µs a label, {generations:.1f} generations a model",
                flush=True,
            )
    print(
        f"least of the rounds: one budget {min(spent[True]):.1f}, a budget each "
        f"{min(spent[False]):.1f} µs a label; ratio {min(spent[True]) / min(spent[False]):.2f}"
    )


def joins_of(store: Any, models: int) -> list[Any]:
    from monitor.pipeline.label_join import ModelLabelJoin

    return [ModelLabelJoin(f"m{i}", store.db, 30 * 86_400.0, 10_000_000) for i in range(models)]


def fill_joins(path: Path, models: int, predictions: int, shared: bool) -> None:
    from monitor.pipeline.label_join import write_all
    from monitor.store.store import Store

    store = Store(path)
    joins = joins_of(store, models)
    for r in range(predictions // BLOCK):
        numbers = range(r * BLOCK, (r + 1) * BLOCK)
        times = [T0 + n * 0.01 for n in numbers]
        for i, join in enumerate(joins):
            ids = [f"{i}-{n}" for n in numbers]
            join.predictions_of_columns(times, ids, ["a"] * BLOCK, [0.4] * BLOCK, 0)
        with store.transaction() as db:
            if shared:
                write_all(db, joins)
            else:
                for join in joins:
                    write_all(db, [join])
        for join in joins:
            join.written()
    store.close()


def label_old(
    path: Path, models: int, predictions: int, labels: int, seed: int
) -> tuple[float, float]:
    """CPU µs per label of random predictions among the oldest 80%; generations a model."""
    from monitor.store.store import Store

    store = Store(path)
    joins = joins_of(store, models)
    rng = random.Random(seed)
    picks = [(rng.randrange(models), rng.randrange(predictions * 4 // 5)) for _ in range(labels)]
    now = T0 + predictions * 0.01
    began = time.process_time()
    outcomes = [joins[i].label(0, f"{i}-{n}", now, "a") for i, n in picks]
    spent = time.process_time() - began
    generations = store.db.execute(
        "SELECT count(*) FROM (SELECT DISTINCT model, part FROM label_index)"
    ).fetchone()[0]
    store.close()
    assert outcomes.count("joined") + outcomes.count("duplicate") == labels
    return spent / labels * 1e6, generations / models


def tree_of(revision: str, tmp: Path) -> Path:
    tree = tmp / f"rev-{revision}"
    tree.mkdir()
    archive = subprocess.run(
        ["git", "archive", revision, "monitor", "detectors"],
        capture_output=True,
        check=True,
        cwd=ROOT,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--predictions", type=int, default=100_000, help="per model")
    parser.add_argument("--checkpoint", type=int, default=20_000, help="events")
    parser.add_argument("--old", metavar="REV", help="also run the code of git revision REV")
    parser.add_argument("--lookups", type=int, metavar="N", help="labels a round (see above)")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # a workdir: measure here
    args = parser.parse_args()
    if args.checkpoint % BLOCK:
        parser.error(f"--checkpoint must be a multiple of {BLOCK}")
    if args.child:
        result = measure(args.models, args.predictions, args.checkpoint, Path(args.child))
        print(json.dumps(result), flush=True)
        return
    with tempfile.TemporaryDirectory() as tmp:
        if args.lookups:
            sys.path.insert(0, str(ROOT))
            lookups(args.models, args.predictions, args.lookups, Path(tmp))
            return
        sys.path.insert(0, str(ROOT / "scripts"))
        from bench_daemon import make_events  # the daemon benchmark's events of 20 features

        (Path(tmp) / "events.jsonl").write_bytes(b"\n".join(make_events(BASE, 1, seed=3)))
        trees = [("new", ROOT)]
        if args.old:
            trees.append((f"old ({args.old})", tree_of(args.old, Path(tmp))))
        for label, tree in trees:
            workdir = Path(tmp) / f"work-{len(trees)}-{label.split()[0]}"
            workdir.mkdir()
            options = ["--models", args.models, "--predictions", args.predictions]
            options += ["--checkpoint", args.checkpoint, "--child", workdir]
            child = subprocess.run(
                [sys.executable, str(Path(__file__).resolve()), *map(str, options)],
                env={**os.environ, "PYTHONPATH": str(tree)},
                stdout=subprocess.PIPE,
                text=True,
                check=True,
            )
            r = json.loads(child.stdout.splitlines()[-1])
            print(
                f"{label}: {args.models} models x {args.predictions:,} predictions: resident "
                f"memory per model {r['rss_tenth_kb']:,.0f} kB at a tenth of the stream, "
                f"{r['rss_end_kb']:,.0f} kB at its end; level 0 per model "
                f"{r['level0_end_kb']:,.0f} kB at the end, {r['level0_peak_kb']:,.0f} kB at "
                f"most; {r['flushes']:.0f} flushes, {r['generations']:.0f} generations left",
                flush=True,
            )


if __name__ == "__main__":
    main()
