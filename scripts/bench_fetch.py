"""What the fetch process spends on a record, by part: decoding the fetch, parsing the
records into runs, pickling the batch for the consume loop.

The fetch process sets the daemon's rate when the loop waits for it (BENCHMARKS,
issue 16), and a daemon run mixes its parts with Kafka's own and the machine's
noise. This measures them alone, on the daemon benchmark's records (16 numeric and
4 categorical features; ``--wide K`` adds K numeric features, which takes a record
past 1,024 bytes), as the fetch process meets them: fetches of 2,000 records in
record batches of 500, parsed in polls of ``BATCH_RECORDS``.

    .venv/bin/python scripts/bench_fetch.py                       # this tree
    .venv/bin/python scripts/bench_fetch.py --against /tmp/tree    # and another, alternating

Each figure is the best of ``--repeats`` passes, in microseconds a record.
"""

from __future__ import annotations

import argparse
import os
import pickle
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
FETCH = 2000  # records a fetch
BATCH = 500  # records a record batch


def _events(count: int, wide: int) -> list[bytes]:
    sys.path.insert(0, str(ROOT / "scripts"))
    from bench_daemon import make_events

    lines = make_events(count, 1, seed=3)
    if not wide:
        return lines
    out = []
    for line in lines:
        event = orjson.loads(line)
        event["features"].update({f"extra_feature_{j}": 0.5 + j for j in range(wide)})
        out.append(orjson.dumps(event))
    return out


def _fetches(lines: list[bytes]) -> list[bytes]:
    from kafka.record.default_records import DefaultRecordBatchBuilder

    fetches = []
    for start in range(0, len(lines) - FETCH + 1, FETCH):
        batches = []
        for first in range(start, start + FETCH, BATCH):
            builder = DefaultRecordBatchBuilder(
                magic=2,
                compression_type=0,
                is_transactional=False,
                producer_id=-1,
                producer_epoch=-1,
                base_sequence=-1,
                batch_size=2**30,
            )
            for i in range(BATCH):
                builder.append(
                    i,
                    timestamp=1_793_491_200_000 + first + i,
                    key=b"m0",
                    value=lines[first + i],
                    headers=[],
                )
            built = bytearray(builder.build())
            struct.pack_into(">q", built, 0, first)
            batches.append(bytes(built))
        fetches.append(b"".join(batches))
    return fetches


def _parser() -> Any:
    """This tree's poll parse: parse_runs, or parse_records then group_runs before it."""
    from monitor.ingest.events import TimeBounds

    bounds = TimeBounds(0.0, 2e9, None)
    models = frozenset({"m0"})
    try:
        from monitor.ingest.parse_runs import parse_runs
    except ImportError:
        from monitor.ingest.fetched import parse_records
        from monitor.ingest.row_runs import group_runs

        def parse(records: list[Any]) -> Any:
            fetched = parse_records(0, "t", 0, records, bounds, None)
            fetched.parsed = group_runs(fetched.parsed, models)
            return fetched

        return parse

    return lambda records: parse_runs(0, "t", 0, records, bounds, None, models)


def measure(count: int, wide: int, repeats: int) -> dict[str, float]:
    """Microseconds a record of each part, the best of ``repeats`` passes."""
    from kafka import TopicPartition
    from kafka.record.memory_records import MemoryRecords

    from monitor.daemon.fetch_child import BATCH_RECORDS
    from monitor.daemon.record_batches import PlainPartitionRecords

    fetches = _fetches(_events(count, wide))
    total = len(fetches) * FETCH
    parse = _parser()
    tp = TopicPartition("t", 0)
    best = {"decode": float("inf"), "parse": float("inf"), "pickle": float("inf")}
    for _ in range(repeats):
        spent = dict.fromkeys(best, 0.0)
        for n, buffer in enumerate(fetches):
            t0 = time.perf_counter()
            records = PlainPartitionRecords(n * FETCH, tp, MemoryRecords(buffer)).take()
            t1 = time.perf_counter()
            parsed = [
                parse(records[s : s + BATCH_RECORDS]) for s in range(0, len(records), BATCH_RECORDS)
            ]
            t2 = time.perf_counter()
            for batch in parsed:
                pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)
            t3 = time.perf_counter()
            spent["decode"] += t1 - t0
            spent["parse"] += t2 - t1
            spent["pickle"] += t3 - t2
        best = {k: min(best[k], spent[k] / total * 1e6) for k in best}
    return best


def _in_tree(tree: Path, args: argparse.Namespace) -> dict[str, float]:
    """``measure`` with ``tree``'s code, in a process of its own."""
    done = subprocess.run(
        [
            sys.executable,
            __file__,
            "--records",
            str(args.records),
            "--wide",
            str(args.wide),
            "--repeats",
            str(args.repeats),
            "--json",
        ],
        env={**os.environ, "PYTHONPATH": str(tree)},
        cwd=tree,
        capture_output=True,
        check=True,
    )
    result: dict[str, float] = orjson.loads(done.stdout.splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--wide", type=int, default=0, help="numeric features to add")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--against", type=Path, help="another source tree, measured alternately")
    parser.add_argument("--rounds", type=int, default=3, help="alternations with --against")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.json:
        print(orjson.dumps(measure(args.records, args.wide, args.repeats)).decode())
        return
    trees = [("this tree", ROOT)] + ([("against", args.against.resolve())] if args.against else [])
    best: dict[str, dict[str, float]] = {}
    for _ in range(args.rounds if args.against else 1):
        for label, tree in trees:
            result = _in_tree(tree, args)
            seen = best.setdefault(label, result)
            best[label] = {k: min(seen[k], result[k]) for k in result}
    print(f"{args.records:,} records of {len(_events(1, args.wide)[0])} bytes, us a record:")
    for label, parts in best.items():
        figures = ", ".join(f"{k} {v:.2f}" for k, v in parts.items())
        print(f"  {label}: {figures}, in all {sum(parts.values()):.2f}")
    if args.against:
        ours, theirs = sum(best["this tree"].values()), sum(best["against"].values())
        print(f"  ratio (against / this tree): {theirs / ours:.2f}")


if __name__ == "__main__":
    main()
