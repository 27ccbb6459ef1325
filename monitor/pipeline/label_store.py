"""Pending predictions in the store: one row per checkpoint, an index by id hash.

The join (``label_join``) decides every outcome by its logical rules; this is
where the predictions it may still need wait, laid out so that a checkpoint
costs a few large writes instead of one B-tree insert per prediction:

- ``label_batches``: the predictions of one model written by one checkpoint,
  numbered ``first..last`` (the model's prediction numbers, ``ins``): the hash
  of each id (``label_ids``) and event time as arrays; ``gone`` counts those
  the rules took out (evicted or expired). A batch is deleted once all its
  predictions are gone and every older batch is deleted, so the stored
  predictions are always those numbered from ``floor`` on: a hash that points
  below it is a prediction gone.
- ``label_chunks``: the predictions themselves, ``CHUNK`` per row (a label
  reads one small row: SQLite reads a large blob from its start): id text
  (the hash only narrows the search: the text decides), and as one record
  array (``RECORD``) event time, predicted class or value, score, where its
  id and segment key end.
- the index: the (hash, ins) pairs of the batches not yet indexed are held in
  memory (level 0: runs sorted by hash, merged into one past ``LEVEL0_RUNS``;
  rebuilt from the batches on load); a flush moves a model's level 0 to
  ``label_index`` as one generation (``label_index``: a row per shard, never
  rewritten, dropped whole once all its predictions are gone). ``write`` never
  flushes: the checkpoint decides, for all of a pipeline's models together
  (``label_join.write_all``), so that their level 0 holds fewer than
  ``LEVEL0_BUDGET`` pairs in all. The memory held is bounded whatever the
  number pending and the number of models.
- ``label_joined``: the stored predictions labelled already, one row per chunk
  with any: a 64-bit mask of its slots (a checkpoint whose labels fall in few
  chunks writes few rows).

A label's lookup searches level 0 from its newest run, else reads its shard's
row in each generation, and then one chunk; the chunks and shards read lately are kept
(``label_cache``, bounded), so labels in about prediction order seldom read.
"""

from __future__ import annotations

import math
from collections.abc import Container, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

import numpy as np
import orjson
import sqlite_utils

from monitor.pipeline.label_cache import ChunkCache, ShardCache
from monitor.pipeline.label_ids import decoded, encoded, hash_one, hashes
from monitor.pipeline.label_index import (
    IndexedShard,
    drop_generations,
    index_parts,
    read_shard,
    shard_of,
    write_generation,
)

# (hash, ins) pairs of level 0 in memory for all of a pipeline's models together, 16 bytes
# each: 16 MB at most whatever the number of models (a budget per model let 100 models hold
# 1.6 GB). A model alone flushes at this many, as when the bound was per model; many
# models flush sooner, in smaller generations (a label of a prediction in the index reads
# one row per generation: their number is the predictions pending over all the models
# divided by the budget).
LEVEL0_BUDGET = 1 << 20
LEVEL0_RUNS = 8  # more and level 0 is merged into one run
CHUNK = 64
# A stored prediction's fixed-size fields (code: its index in the chunk's classes, -1 a
# value; id_end and segment_end: offsets in the chunk's ids and segments).
RECORD = np.dtype(
    [
        ("ts", "<f8"),
        ("value", "<f8"),
        ("score", "<f8"),
        ("code", "<i4"),
        ("id_end", "<i4"),
        ("segment_end", "<i4"),
        ("keyed", "u1"),
    ]
)


@dataclass(slots=True)
class Pending:
    ins: int  # the model's prediction number: eviction goes by it
    ts: float
    predicted: str | float
    score: float  # NaN: none
    joined: bool = False
    segments: bytes | None = None  # its segment key, once its micro-batch is flushed
    chunk: int = -1  # a stored one: its chunk (first) and slot there, for its mark
    slot: int = -1


@dataclass
class SegmentKeys:
    """Segment keys of predictions: whether each has one, where each ends in ``data``."""

    keyed: np.ndarray  # uint8
    ends: np.ndarray  # int64
    data: bytes


@dataclass
class Predictions:
    """Predictions numbered ``first`` on, as a checkpoint writes them (``ins``: their
    numbers when they are not consecutive, as in a store moved from the old layout)."""

    first: int
    ids: list[str]
    ts: list[float]
    predicted: list[str | float]
    scores: np.ndarray  # float64, NaN: none
    segments: SegmentKeys
    joined: np.ndarray  # bool per prediction
    ins: np.ndarray | None = None

    def numbers(self) -> np.ndarray:
        if self.ins is not None:
            return self.ins
        return np.arange(self.first, self.first + len(self.ids), dtype=np.int64)


@dataclass
class Written:
    """What a checkpoint's ``write`` changed in the counts, and the index state to take
    on once it commits."""

    evicted: int = 0
    expired: int = 0
    pending: int = 0  # change in the predictions waiting
    level0: list[tuple[np.ndarray, np.ndarray, int]] = field(default_factory=list)
    floor: int = 0
    parts: list[int] = field(default_factory=list)  # the index's generations
    flushed: bool = False
    marks: list[tuple[int, int]] = field(default_factory=list)  # (chunk, slot) labelled

    @property
    def pairs(self) -> int:
        """The pairs of level 0 once it commits."""
        return level0_pairs(self.level0)


class LabelStore:
    """One model's stored predictions (see the module docstring)."""

    def __init__(self, model: str, db: sqlite_utils.Database, inserted: int) -> None:
        self.model = model
        self.db = db
        first = db.execute(
            "SELECT min(first) FROM label_batches WHERE model = ?", [model]
        ).fetchone()[0]
        self.floor = inserted if first is None else int(first)
        # Level 0: (hashes sorted, their ins, the batch's last ins) per batch not indexed.
        runs = []
        for batch_first, last, raw in db.execute(
            "SELECT first, last, hashes FROM label_batches "
            "WHERE model = ? AND indexed = 0 ORDER BY first",
            [model],
        ):
            ins = self._ins_of(int(batch_first), int(last), len(raw) // 8)
            runs.append((np.frombuffer(raw, dtype=np.uint64), ins, int(last)))
        self.level0 = [_merged(runs)] if runs else []
        self.parts = index_parts(db, model)
        self._chunks: ChunkCache[_Chunk] = ChunkCache()
        self._shards: ShardCache[IndexedShard] = ShardCache()

    @property
    def pairs(self) -> int:
        """The (hash, ins) pairs level 0 holds in memory."""
        return level0_pairs(self.level0)

    def _ins_of(self, first: int, last: int, count: int) -> np.ndarray:
        if last - first + 1 == count:
            return np.arange(first, last + 1, dtype=np.int64)
        row = self.db.execute(
            "SELECT ins FROM label_batches WHERE model = ? AND first = ?", [self.model, first]
        ).fetchone()
        return np.frombuffer(row[0], dtype=np.int64)

    # --- a label's lookup

    def find(self, request: str, joined_since: Container[int]) -> Pending | None:
        """The latest stored prediction with id ``request``; None if there is none or it
        is gone. ``joined_since``: stored predictions labelled since the last checkpoint."""
        h = hash_one(request)
        key = np.uint64(h)
        # Level 0 holds the newest batches, its runs in prediction order: a prediction
        # found there is the latest, and one found in a later run is later than any in
        # the runs before it (which need no search then).
        found, gone = None, False
        for hs, refs, _ in reversed(self.level0):
            found, gone = self._latest(_matches(key, [(hs, refs)]), request)
            if found is not None or gone:
                break
        if found is None and not gone:
            found, _ = self._latest(self._shard(shard_of(h)).numbers(h), request)
        if found is not None:
            found.joined = found.joined or found.ins in joined_since
        return found

    def _latest(self, candidates: list[int], request: str) -> tuple[Pending | None, bool]:
        """The latest of ``candidates`` with id ``request``, and whether the search met a
        prediction gone (then every older one is gone too: no need to look further)."""
        for ins in sorted(candidates, reverse=True):
            if ins < self.floor:
                return None, True
            found = self._read(ins, request)
            if found is not None:
                return found, False
        return None, False

    def _shard(self, shard: int) -> IndexedShard:
        found = self._shards.get(shard)
        if found is None:
            found = read_shard(self.db, self.model, self.parts, shard)
            self._shards.put(shard, found)
        return found

    def _read(self, ins: int, request: str) -> Pending | None:
        """The stored prediction ``ins`` if its id is ``request``."""
        chunk = self._chunks.get(ins)
        if chunk is None:
            row = self.db.conn.execute(
                "SELECT first, classes, ins, records, ids, segments, "
                "(SELECT bits FROM label_joined AS j WHERE j.model = ?1 AND j.first = c.first) "
                "FROM label_chunks AS c WHERE model = ?1 AND first <= ?2 "
                "ORDER BY first DESC LIMIT 1",
                [self.model, ins],
            ).fetchone()
            chunk = _Chunk(row)
            self._chunks.put(chunk)
        slot = chunk.slot(ins)
        if slot is None or chunk.id(slot) != request:
            return None  # another id with the same hash
        found = chunk.pending(slot, ins)
        found.joined = bool(chunk.bits >> slot & 1)
        return found

    # --- a checkpoint

    def write(
        self,
        db: sqlite_utils.Database,
        new: Predictions,
        joined_stored: list[tuple[int, int]],
        bounds: tuple[int, float],
        counted: tuple[int, float],
    ) -> Written:
        """Store ``new`` and the stored predictions labelled since (``joined_stored``: their
        chunk and slot), count what went since the bounds ``counted`` (evict below ins,
        expire below ts) up to ``bounds``, and drop what nothing can join any more."""
        out = Written()
        ins = new.numbers()
        # The labelled ones among the new: their chunks are CHUNK at a time from the first.
        labelled = np.flatnonzero(new.joined)
        chunks = np.concatenate(
            [
                np.array([m[0] for m in joined_stored], dtype=np.int64),
                ins[::CHUNK][labelled // CHUNK],
            ]
        )
        slots = np.concatenate(
            [np.array([m[1] for m in joined_stored], dtype=np.int64), labelled % CHUNK]
        )
        write_marks(db, self.model, chunks, slots)
        out.marks = list(zip(chunks.tolist(), slots.tolist(), strict=True))
        out.pending -= len(joined_stored)
        newly_gone = self._count_gone(db, bounds, counted, out)
        level0 = list(self.level0)
        if new.ids:
            hs = self._insert(db, new, ins, bounds, out)
            level0.append(_sorted_run(hs, ins, int(ins[-1])))
        with fast_deletes(db):
            out.floor = self._drop_gone_prefix(db, newly_gone)
            out.parts = [part for part in self.parts if part >= out.floor]
            if len(out.parts) < len(self.parts):
                drop_generations(db, self.model, out.floor)
        level0 = [run for run in level0 if run[2] >= out.floor]
        if len(level0) > LEVEL0_RUNS:  # a label looks in each run: keep them few
            level0 = [_merged(level0)]
        out.level0 = level0
        return out

    def flush(self, db: sqlite_utils.Database, out: Written) -> None:
        """Move the level 0 that ``write`` left in ``out`` into ``label_index`` as a new
        generation, in the same transaction; memory follows once it commits (``written``)."""
        if not out.level0:
            return
        out.parts = [*out.parts, *self._flush(db, out.level0)]
        out.level0, out.flushed = [], True

    def written(self, out: Written) -> None:
        self.level0, self.floor, self.parts = out.level0, out.floor, out.parts
        self._chunks.committed(out.marks, out.floor)
        if out.flushed:
            self._shards.clear()

    def _insert(
        self,
        db: sqlite_utils.Database,
        new: Predictions,
        ins: np.ndarray,
        bounds: tuple[int, float],
        out: Written,
    ) -> np.ndarray:
        data, id_ends = encoded(new.ids)
        hs = hashes(data, id_ends, new.ids)
        ts = np.array(new.ts, dtype=np.float64)
        n = len(ts)
        evicted = ins < bounds[0]
        gone = evicted | (ts < bounds[1])
        waiting = ~new.joined
        out.evicted += int(np.count_nonzero(gone & waiting & evicted))
        out.expired += int(np.count_nonzero(gone & waiting & ~evicted))
        out.pending += int(np.count_nonzero(~gone & waiting))
        codes, classes = _class_codes(new.predicted)
        records = np.zeros(n, dtype=RECORD)
        records["ts"], records["score"], records["code"] = ts, new.scores, codes
        records["value"] = math.nan
        numeric = codes < 0
        if numeric.any():
            records["value"][numeric] = [p for p in new.predicted if type(p) is not str]
        segment_ends, segments = new.segments.ends, new.segments.data
        records["keyed"] = new.segments.keyed
        # Offsets in the chunk: from the end of the chunk before.
        starts = np.arange(0, n, CHUNK)
        records["id_end"] = id_ends - np.repeat(_ends_before(id_ends, starts), CHUNK)[:n]
        records["segment_end"] = (
            segment_ends - np.repeat(_ends_before(segment_ends, starts), CHUNK)[:n]
        )
        db.conn.execute(
            "INSERT INTO label_batches (model, first, last, count, gone, min_ts, max_ts, "
            "indexed, ins, hashes, ts) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)",
            [
                self.model,
                int(ins[0]),
                int(ins[-1]),
                n,
                int(np.count_nonzero(gone)),
                float(ts.min()),
                float(ts.max()),
                None if new.ins is None else new.ins.tobytes(),
                hs.tobytes(),
                ts.tobytes(),
            ],
        )
        names = orjson.dumps(classes).decode()
        id_edges = [0, *id_ends[CHUNK - 1 :: CHUNK].tolist(), int(id_ends[-1])]
        segment_edges = [0, *segment_ends[CHUNK - 1 :: CHUNK].tolist(), int(segment_ends[-1])]
        firsts = ins[::CHUNK].tolist()
        rows = [
            (
                self.model,
                firsts[k],
                names,
                None if new.ins is None else new.ins[a : a + CHUNK].tobytes(),
                records[a : a + CHUNK].tobytes(),
                data[id_edges[k] : id_edges[k + 1]],
                segments[segment_edges[k] : segment_edges[k + 1]],
            )
            for k, a in enumerate(range(0, n, CHUNK))
        ]
        db.conn.executemany(
            "INSERT INTO label_chunks (model, first, classes, ins, records, ids, segments) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        return hs

    def _count_gone(
        self,
        db: sqlite_utils.Database,
        bounds: tuple[int, float],
        counted: tuple[int, float],
        out: Written,
    ) -> dict[int, int]:
        """Count the stored predictions that went since ``counted`` (unlabelled ones are
        evicted or expired), in the batches the bounds moved into; how many went in each
        (by its first)."""
        (evict_below, gone_before), (was_below, was_before) = bounds, counted
        newly_gone = {}
        rows = db.execute(
            "SELECT first, last, ts, ins FROM label_batches WHERE model = ? "
            "AND gone < count AND ((first < ? AND last >= ?) OR (min_ts < ? AND max_ts >= ?))",
            [self.model, evict_below, was_below, gone_before, was_before],
        ).fetchall()
        for first, last, raw_ts, raw_ins in rows:
            ts = np.frombuffer(raw_ts, dtype=np.float64)
            if raw_ins is None:
                ins = np.arange(int(first), int(last) + 1, dtype=np.int64)
            else:
                ins = np.frombuffer(raw_ins, dtype=np.int64)
            evicted = ins < evict_below
            newly = (evicted | (ts < gone_before)) & ~((ins < was_below) | (ts < was_before))
            if not newly.any():
                continue
            waiting = newly & ~self._labelled(db, ins)
            out.evicted += int(np.count_nonzero(waiting & evicted))
            out.expired += int(np.count_nonzero(waiting & ~evicted))
            out.pending -= int(np.count_nonzero(waiting))
            newly_gone[int(first)] = int(np.count_nonzero(newly))
        return newly_gone

    def _labelled(self, db: sqlite_utils.Database, ins: np.ndarray) -> np.ndarray:
        """Which of one batch's predictions (numbered ``ins``) are labelled."""
        rows = db.execute(
            "SELECT first, bits FROM label_joined WHERE model = ? AND first BETWEEN ? AND ?",
            [self.model, int(ins[0]), int(ins[-1])],
        ).fetchall()
        return labelled_mask(ins, rows)

    def _drop_gone_prefix(self, db: sqlite_utils.Database, newly_gone: dict[int, int]) -> int:
        """Add ``newly_gone`` to the batches' counts of gone predictions, and delete the
        oldest batches while all their predictions are gone; the new floor."""
        dropped: list[tuple[int, int]] = []
        floor = None
        for first, last, count, gone in db.execute(
            "SELECT first, last, count, gone FROM label_batches WHERE model = ? ORDER BY first",
            [self.model],
        ):
            if gone + newly_gone.get(first, 0) < count:
                floor = int(first)
                break
            dropped.append((int(first), int(last)))
        # A batch's row is rewritten whole (its arrays too) when its count changes size:
        # the count of one about to go is left as it is.
        for first, newly in newly_gone.items():
            if floor is not None and first >= floor:
                db.execute(
                    "UPDATE label_batches SET gone = gone + ? WHERE model = ? AND first = ?",
                    [newly, self.model, first],
                )
        for first, _ in dropped:
            db.execute(
                "DELETE FROM label_batches WHERE model = ? AND first = ?", [self.model, first]
            )
        if dropped:
            db.execute(
                "DELETE FROM label_chunks WHERE model = ? AND first <= ?",
                [self.model, dropped[-1][1]],
            )
            db.execute(
                "DELETE FROM label_joined WHERE model = ? AND first <= ?",
                [self.model, dropped[-1][1]],
            )
        if floor is None:  # nothing stored: everything up to the last dropped is gone
            floor = dropped[-1][1] + 1 if dropped else self.floor
        return floor

    def _flush(
        self, db: sqlite_utils.Database, level0: list[tuple[np.ndarray, np.ndarray, int]]
    ) -> list[int]:
        """Move level 0 into ``label_index`` as a new generation; its parts."""
        hs = np.concatenate([run[0] for run in level0])
        refs = np.concatenate([run[1] for run in level0])
        parts = write_generation(db, self.model, hs, refs)
        db.execute(
            "UPDATE label_batches SET indexed = 1 WHERE model = ? AND indexed = 0", [self.model]
        )
        return parts


@contextmanager
def fast_deletes(db: sqlite_utils.Database) -> Iterator[None]:
    """SQLite's ``secure_delete`` at FAST rather than ON for the deletes of what nothing
    can join any more: ON (the default of some builds, Debian's and Ubuntu's among them)
    writes zeros over every page freed, which doubled the pages a checkpoint wrote; the
    freed pages hold the next checkpoints' predictions soon. FAST still clears what was
    deleted on the pages written anyway."""
    if db.execute("PRAGMA secure_delete").fetchone()[0] != 1:
        yield
        return
    db.execute("PRAGMA secure_delete = FAST")
    try:
        yield
    finally:
        db.execute("PRAGMA secure_delete = ON")


def _ends_before(ends: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """For each chunk starting at ``starts``, where the one before it ended in ``ends``."""
    before = np.zeros(len(starts), dtype=np.int64)
    before[1:] = ends[starts[1:] - 1]
    return before


def _class_codes(predicted: list[str | float]) -> tuple[np.ndarray, list[str]]:
    """Each prediction's class as its index in the classes (-1: a value), and the classes."""
    distinct = dict.fromkeys(predicted)
    if all(type(p) is str for p in distinct):  # classes only: mapped in C
        index = {p: k for k, p in enumerate(distinct)}
        codes = np.fromiter(map(index.__getitem__, predicted), np.int32, len(predicted))
        return codes, list(index)  # type: ignore[arg-type]
    names: dict[str, int] = {}
    codes = np.fromiter(
        (names.setdefault(p, len(names)) if type(p) is str else -1 for p in predicted),
        dtype=np.int32,
        count=len(predicted),
    )
    return codes, list(names)


def level0_pairs(level0: list[tuple[np.ndarray, np.ndarray, int]]) -> int:
    return sum(len(run[0]) for run in level0)


def _matches(key: np.uint64, runs: list[tuple[np.ndarray, np.ndarray]]) -> list[int]:
    """The ins of the pairs with hash ``key`` in runs sorted by hash."""
    found = []
    for hs, refs in runs:
        at = int(hs.searchsorted(key))
        while at < len(hs) and hs[at] == key:
            found.append(int(refs[at]))
            at += 1
    return found


def _merged(runs: list[tuple[np.ndarray, np.ndarray, int]]) -> tuple[np.ndarray, np.ndarray, int]:
    hs = np.concatenate([run[0] for run in runs])
    order = np.argsort(hs, kind="stable")  # a merge of sorted runs: timsort sees them
    return hs[order], np.concatenate([run[1] for run in runs])[order], max(r[2] for r in runs)


def _sorted_run(hs: np.ndarray, ins: np.ndarray, last: int) -> tuple[np.ndarray, np.ndarray, int]:
    order = np.argsort(hs)
    return hs[order], ins[order], last


def write_marks(
    db: sqlite_utils.Database, model: str, chunks: np.ndarray, slots: np.ndarray
) -> None:
    """Mark the predictions at (chunk first, slot) labelled: one row per chunk."""
    if not len(chunks):
        return
    order = np.lexsort((slots, chunks))
    chunks, bits = chunks[order], np.left_shift(np.uint64(1), slots[order].astype(np.uint64))
    starts = np.flatnonzero(np.r_[True, chunks[1:] != chunks[:-1]])
    masks = np.bitwise_or.reduceat(bits, starts).view(np.int64)  # SQLite's INTEGER is signed
    db.conn.executemany(
        "INSERT INTO label_joined (model, first, bits) VALUES (?, ?, ?) "
        "ON CONFLICT (model, first) DO UPDATE SET bits = bits | excluded.bits",
        zip(repeat(model), chunks[starts].tolist(), masks.tolist()),
    )


def labelled_mask(ins: np.ndarray, marks: list[Any]) -> np.ndarray:
    """Which predictions of one batch (numbered ``ins``, in order) the (chunk first, bits)
    rows ``marks`` of its chunks say are labelled: chunk k holds positions CHUNK*k on."""
    labelled = np.zeros(len(ins), dtype=bool)
    if not marks:
        return labelled
    firsts = np.array([m[0] for m in marks], dtype=np.int64)
    bits = np.array([m[1] for m in marks], dtype=np.int64).view(np.uint64)
    base = np.searchsorted(ins[::CHUNK], firsts) * CHUNK
    for slot in range(CHUNK):  # CHUNK steps, each over the batch's marked chunks
        hit = (bits >> np.uint64(slot)) & np.uint64(1) == 1
        at = base[hit] + slot
        labelled[at[at < len(ins)]] = True
    return labelled


def segment_keys(segments: list[bytes | None]) -> SegmentKeys:
    """The segment keys of predictions, from each one's key or None."""
    n = len(segments)
    if None not in segments:
        keyed = np.ones(n, dtype=np.uint8)
        data = b"".join(segments)  # type: ignore[arg-type]
        lengths = np.fromiter(map(len, segments), dtype=np.int64, count=n)  # type: ignore[arg-type]
    else:
        keyed = np.fromiter((s is not None for s in segments), dtype=np.uint8, count=n)
        data = b"".join(s for s in segments if s is not None)
        lengths = np.fromiter((len(s) if s else 0 for s in segments), dtype=np.int64, count=n)
    return SegmentKeys(keyed, np.cumsum(lengths), data)


class _Chunk:
    """One ``label_chunks`` row as read: (first, classes, ins, records, ids, segments[,
    labelled mask])."""

    def __init__(self, row: Any) -> None:
        self.row = row
        self.records = np.frombuffer(row[3], dtype=RECORD)
        self.first = int(row[0])
        n = len(self.records)
        self.last = (
            self.first + n - 1 if row[2] is None else int(np.frombuffer(row[2], np.int64)[-1])
        )
        self.bits = int(row[6] or 0) if len(row) > 6 else 0
        self._classes: list[str] | None = None
        # The records as Python tuples, once a second prediction of the chunk is read (a
        # cached chunk is read again and again; one read once would only pay for them).
        self._fields: list[tuple[float, float, float, int, int, int, int]] | None = None
        self._reads = 0

    def slot(self, ins: int) -> int | None:
        """Where prediction ``ins`` is in the chunk (None: not there); a lookup's read."""
        self._reads += 1
        if self.row[2] is None:
            slot = ins - self.first
            return slot if slot < len(self.records) else None
        numbers = np.frombuffer(self.row[2], dtype=np.int64)
        at = int(numbers.searchsorted(ins))
        return at if at < len(numbers) and numbers[at] == ins else None

    def numbers(self) -> list[int]:
        if self.row[2] is None:
            return list(range(self.first, self.first + len(self.records)))
        return np.frombuffer(self.row[2], dtype=np.int64).tolist()  # type: ignore[no-any-return]

    def fields(self, slot: int) -> tuple[float, float, float, int, int, int, int]:
        """Record ``slot`` as (ts, value, score, code, id_end, segment_end, keyed)."""
        if self._fields is None:
            if self._reads <= 1:
                r = self.records[slot]
                return (
                    float(r["ts"]),
                    float(r["value"]),
                    float(r["score"]),
                    int(r["code"]),
                    int(r["id_end"]),
                    int(r["segment_end"]),
                    int(r["keyed"]),
                )
            self._fields = self.records.tolist()
        return self._fields[slot]

    def read_all(self) -> None:
        self._fields = self.records.tolist()

    def id(self, slot: int) -> str:
        start = 0 if slot == 0 else self.fields(slot - 1)[4]
        return decoded(self.row[4][start : self.fields(slot)[4]])

    def pending(self, slot: int, ins: int) -> Pending:
        ts, value, score, code, _, segment_end, keyed = self.fields(slot)
        if code < 0:
            predicted: str | float = value
        else:
            if self._classes is None:
                self._classes = [str(c) for c in orjson.loads(self.row[1])]
            predicted = self._classes[code]
        segments = None
        if keyed:
            start = 0 if slot == 0 else self.fields(slot - 1)[5]
            segments = bytes(self.row[5][start:segment_end])
        return Pending(ins, ts, predicted, score, False, segments, self.first, slot)


@dataclass(frozen=True)
class StoredPrediction:
    id: str
    ins: int
    ts: float
    predicted: str | float
    score: float | None
    joined: bool
    segments: bytes | None


def waiting_predictions(db: sqlite_utils.Database, model: str) -> list[StoredPrediction]:
    """Every stored prediction of ``model`` not gone at its last checkpoint, labelled or not
    (one replaced by a later prediction with its id included), in ins order. Reads them
    all: for tests and inspection, not for the join."""
    bounds = db.execute(
        "SELECT counted_ins, counted_ts FROM label_counts WHERE model = ?", [model]
    ).fetchone()
    evict_below, gone_before = (-(2**63), -math.inf) if bounds is None else bounds
    marks = {
        int(first): int(bits)
        for first, bits in db.execute(
            "SELECT first, bits FROM label_joined WHERE model = ?", [model]
        )
    }
    found = []
    for row in db.execute(
        "SELECT first, classes, ins, records, ids, segments FROM label_chunks WHERE model = ? "
        "ORDER BY first",
        [model],
    ):
        chunk = _Chunk(row)
        chunk.read_all()
        bits = marks.get(int(row[0]), 0)
        for slot, ins in enumerate(chunk.numbers()):
            p = chunk.pending(slot, ins)
            if ins < evict_below or p.ts < gone_before:
                continue
            score = None if math.isnan(p.score) else p.score
            found.append(
                StoredPrediction(
                    chunk.id(slot),
                    ins,
                    p.ts,
                    p.predicted,
                    score,
                    bool(bits >> slot & 1),
                    p.segments,
                )
            )
    return found
