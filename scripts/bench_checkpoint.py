"""Checkpoint cost and memory of one model's detector state.

    .venv/bin/python scripts/bench_checkpoint.py [--repeats 30]

Builds one model of 20 features (the events of ``bench_daemon.py``: 16 numeric
and 4 categorical features, client, request id, score, prediction) past its
reference, then, in one run, alternately:
- ``by digest``: the checkpoint as the pipeline writes it (``dump(stored)``:
  references and fitted tables the store holds are named, not encoded);
- ``as text``: the state dumped whole every time (``dump()``), the store
  hashing every long text to find it unchanged;
each the fastest of ``--repeats`` checkpoints (dump, split, SQLite write, in one
transaction). First the memory the model holds (tracemalloc), before and after
three checkpoints: what a dump leaves behind.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_daemon import make_events  # noqa: E402

from detectors.suite.model_detectors import ModelDetectors  # noqa: E402
from monitor.ingest.batching import row_batch  # noqa: E402
from monitor.ingest.events import Event, parse_event  # noqa: E402
from monitor.store.store import CheckpointRows, Store  # noqa: E402


def checkpoint(store: Store, model: ModelDetectors, by_digest: bool) -> float:
    started = time.perf_counter()
    state = model.dump(store.stored_blobs("m")) if by_digest else model.dump()
    with store.transaction() as db:
        store.write_checkpoint(db, CheckpointRows(model_states={"m": (state, 1)}))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    lines = make_events(14_000, 1, seed=3)
    events = [e for e in map(parse_event, lines) if isinstance(e, Event)]
    gc.collect()
    tracemalloc.start()
    empty = tracemalloc.get_traced_memory()[0]
    model = ModelDetectors()
    for start in range(0, len(events), 2000):
        chunk = events[start : start + 2000]
        model.observe_rows(row_batch(chunk, list(range(start, start + len(chunk)))))
    built = tracemalloc.get_traced_memory()[0]
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "s.db")
        for by_digest in (True, False, True):
            checkpoint(store, model, by_digest)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()  # it slows every allocation: the timings run without it
        best = {True: float("inf"), False: float("inf")}
        for _ in range(args.repeats):
            for by_digest in (True, False):
                best[by_digest] = min(best[by_digest], checkpoint(store, model, by_digest))
        store.close()
    print(f"model of 20 features: {(built - empty) / 1e6:.2f} MB held after its reference")
    print(f"  after 3 checkpoints: {(after - empty) / 1e6:.2f} MB held")
    for by_digest, label in ((True, "by digest"), (False, "as text")):
        print(f"checkpoint of its state, {label:9}: {best[by_digest] * 1e3:.2f} ms (fastest)")
    print(f"ratio as text / by digest: {best[False] / best[True]:.1f}")


if __name__ == "__main__":
    main()
