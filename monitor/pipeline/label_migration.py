"""Move the pending predictions of a store written before the batch layout into it; mark
the labelled ones of a store written before the marks per chunk by chunk; index those of a
store written before the index generations by generation.

Such a store has one ``label_pending`` row per waiting prediction (primary key
(model, id): each id's latest prediction only). Its rows become batches of
``label_store`` in prediction-number order (numbers with gaps: the batches
keep them, ``Predictions.ins``), indexed at once, with their labelled marks;
then the table is dropped. A store of the batch layout whose ``label_joined``
has a row per labelled prediction gets one mask per chunk instead
(``mark_joined_by_chunk``). A store whose ``label_index`` holds runs per shard,
merged now and then, gets generations (``label_index``) built from its indexed
batches, whose hashes it keeps (``index_by_generation``). Each runs in the
transaction that opens the store (``monitor.store.schema``).
"""

from __future__ import annotations

import math

import numpy as np
import sqlite_utils

from monitor.pipeline import label_store
from monitor.pipeline.label_index import write_generation
from monitor.pipeline.label_store import CHUNK as STORE_CHUNK
from monitor.pipeline.label_store import LabelStore, Predictions, segment_keys, write_marks
from monitor.store.schema import LABEL_INDEX_TABLE

CHUNK = 65_536  # predictions per batch


def move_label_pending(db: sqlite_utils.Database) -> None:
    columns = {row[1] for row in db.execute("PRAGMA table_info(label_pending)").fetchall()}
    segments = "segments" if "segments" in columns else "NULL"
    models = [r[0] for r in db.execute("SELECT DISTINCT model FROM label_pending").fetchall()]
    for model in models:
        _move_model(db, str(model), segments)
    db.execute("DROP TABLE label_pending")


def _move_model(db: sqlite_utils.Database, model: str, segments: str) -> None:
    rows = db.execute(
        "SELECT id, ins, ts, predicted, value, score, joined, "
        f"{segments} FROM label_pending WHERE model = ? ORDER BY ins",
        [model],
    )
    store = LabelStore(model, db, 0)
    waiting = 0
    lowest: tuple[int, float] | None = None
    while chunk := rows.fetchmany(CHUNK):
        ins = np.array([int(r[1]) for r in chunk], dtype=np.int64)
        joined = np.array([bool(r[6]) for r in chunk])
        predictions = Predictions(
            first=int(ins[0]),
            ids=[str(r[0]) for r in chunk],
            ts=[float(r[2]) for r in chunk],
            predicted=[str(r[3]) if r[3] is not None else float(r[4]) for r in chunk],
            scores=np.array([r[5] for r in chunk], dtype=np.float64),  # None: NaN
            segments=segment_keys([None if r[7] is None else bytes(r[7]) for r in chunk]),
            joined=joined,
            ins=ins,
        )
        # Rows of the old table were all within the bounds of its last checkpoint.
        nothing_gone = (-(2**63), -math.inf)
        out = store.write(db, predictions, [], nothing_gone, nothing_gone)
        if out.pairs >= label_store.LEVEL0_BUDGET:  # memory bounded while moving
            store.flush(db, out)
        store.written(out)
        waiting += int(np.count_nonzero(~joined))
        least = (int(ins[0]), float(min(predictions.ts)))
        lowest = least if lowest is None else (lowest[0], min(lowest[1], least[1]))
    if lowest is None:
        return
    _index_all(db, store)
    # The counts go on from here: nothing stored was gone at the old layout's last checkpoint.
    db.execute(
        "UPDATE label_counts SET pending = ?, counted_ins = ?, counted_ts = ? WHERE model = ?",
        [waiting, *lowest, model],
    )


def _index_all(db: sqlite_utils.Database, store: LabelStore) -> None:
    """Index every moved batch now: level 0 is rebuilt from unindexed batches on each load."""
    if store.level0:
        hs = np.concatenate([run[0] for run in store.level0])
        refs = np.concatenate([run[1] for run in store.level0])
        store.parts += write_generation(db, store.model, hs, refs)
        db.execute("UPDATE label_batches SET indexed = 1 WHERE model = ?", [store.model])
        store.level0 = []


def index_by_generation(db: sqlite_utils.Database) -> None:
    """Turn a ``label_index`` of runs per shard (model, shard, part, hashes, refs) into
    generations: those of the indexed batches, in order, ``LEVEL0_BUDGET`` pairs or so
    each (what a model's flush writes when it is alone), one generation in memory at a time."""
    db.execute("DROP TABLE label_index")  # the batches hold every pair it had
    db.execute(LABEL_INDEX_TABLE)
    models = [str(r[0]) for r in db.execute("SELECT DISTINCT model FROM label_batches")]
    for model in models:
        hs: list[np.ndarray] = []
        refs: list[np.ndarray] = []
        held = 0
        for first, last, raw_ins, raw_hashes in db.execute(
            "SELECT first, last, ins, hashes FROM label_batches "
            "WHERE model = ? AND indexed = 1 ORDER BY first",
            [model],
        ):
            hs.append(np.frombuffer(raw_hashes, dtype=np.uint64))
            if raw_ins is None:
                refs.append(np.arange(int(first), int(last) + 1, dtype=np.int64))
            else:
                refs.append(np.frombuffer(raw_ins, dtype=np.int64))
            held += len(hs[-1])
            if held >= label_store.LEVEL0_BUDGET:
                write_generation(db, model, np.concatenate(hs), np.concatenate(refs))
                hs, refs, held = [], [], 0
        if hs:
            write_generation(db, model, np.concatenate(hs), np.concatenate(refs))


def mark_joined_by_chunk(db: sqlite_utils.Database) -> None:
    """Turn the ``label_joined`` rows of a store written before the marks per chunk (one
    row per labelled prediction: (model, ins)) into one mask per chunk."""
    db.execute("ALTER TABLE label_joined RENAME TO label_joined_by_ins")
    db.execute(
        "CREATE TABLE label_joined (model TEXT NOT NULL, first INTEGER NOT NULL, "
        "bits INTEGER NOT NULL, PRIMARY KEY (model, first)) WITHOUT ROWID"
    )
    models = [r[0] for r in db.execute("SELECT DISTINCT model FROM label_joined_by_ins")]
    for model in models:
        labelled = np.array(
            [
                r[0]
                for r in db.execute("SELECT ins FROM label_joined_by_ins WHERE model = ?", [model])
            ],
            dtype=np.int64,
        )
        chunks, slots = _chunk_slots(db, str(model), np.sort(labelled))
        write_marks(db, str(model), chunks, slots)
    db.execute("DROP TABLE label_joined_by_ins")


def _chunk_slots(
    db: sqlite_utils.Database, model: str, labelled: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The chunk (first) and slot of each stored prediction numbered ``labelled`` (sorted):
    a batch's chunks hold its predictions ``label_store.CHUNK`` at a time, in order."""
    chunks: list[np.ndarray] = []
    slots: list[np.ndarray] = []
    for first, last, raw_ins in db.execute(
        "SELECT first, last, ins FROM label_batches WHERE model = ? ORDER BY first", [model]
    ):
        a, b = np.searchsorted(labelled, [int(first), int(last) + 1])
        if a == b:
            continue
        if raw_ins is None:
            ins = np.arange(int(first), int(last) + 1, dtype=np.int64)
        else:
            ins = np.frombuffer(raw_ins, dtype=np.int64)
        at = np.searchsorted(ins, labelled[a:b])
        found = (at < len(ins)) & (ins[np.minimum(at, len(ins) - 1)] == labelled[a:b])
        at = at[found]  # a mark of a prediction no longer stored has nothing to mark
        chunks.append(ins[::STORE_CHUNK][at // STORE_CHUNK])
        slots.append(at % STORE_CHUNK)
    if not chunks:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(chunks), np.concatenate(slots)
