"""Where a stored prediction is, by the hash of its id: one generation of rows per flush.

The newest batches' (hash, number) pairs are in memory (``label_store``'s level
0); when a pipeline's models hold ``LEVEL0_BUDGET`` pairs in all, a flush writes
a model's to ``label_index`` (the largest models' first) as one *generation*: a
row per shard (the hash's top ``SHARD_BITS`` bits) of pairs (``PAIR``: the
number's offset from the row's ``base``, the hash's low 32 bits), 8 bytes each,
in no order. A generation is never rewritten: it goes whole once every
prediction in it is gone (its ``part``, the last number in it, below the
store's floor), so a flush writes each pair once and nothing else, however many
predictions are pending. Rows are keyed (model, part, shard): a generation is
appended after the ones before it and deleted as one range.

A lookup reads its shard's row in every generation (one query, a seek and a
row of at most a few hundred bytes per generation: their number is about the
predictions pending in all the pipeline's models over ``LEVEL0_BUDGET``) and
compares the low 32 bits; a match is only a candidate, the stored id text
decides (``label_store``).
"""

from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate

import numpy as np
import sqlite_utils

SHARD_BITS = 14  # ~64 pairs a row: rows of ~512 bytes, kept whole in their B-tree page
OFFSET_SPAN = 1 << 32  # a generation's numbers lie within base .. base + OFFSET_SPAN - 1
PAIR = np.dtype([("offset", "<u4"), ("low", "<u4")])
_SHIFT = np.uint64(64 - SHARD_BITS)
_LOW_BITS = np.uint64(0xFFFFFFFF)


def shard_of(h: int) -> int:
    return h >> (64 - SHARD_BITS)


class IndexedShard:
    """One shard's pairs in every generation, as read by a lookup."""

    __slots__ = ("bases", "ends", "lows", "nbytes", "offsets")

    def __init__(self, rows: list[tuple[int, bytes]]) -> None:
        pairs = np.frombuffer(b"".join(row[1] for row in rows), dtype=PAIR)
        self.lows, self.offsets = pairs["low"], pairs["offset"]
        # Row k holds the pairs from ends[k - 1] to ends[k], numbered from bases[k].
        self.ends = list(accumulate(len(row[1]) // PAIR.itemsize for row in rows))
        self.bases = [int(row[0]) for row in rows]
        self.nbytes = pairs.nbytes

    def numbers(self, h: int) -> list[int]:
        """The numbers of the pairs whose hash ends like ``h``'s (``h``'s shard)."""
        hits = np.flatnonzero(self.lows == np.uint32(h & 0xFFFFFFFF)).tolist()
        return [self.bases[bisect_right(self.ends, k)] + int(self.offsets[k]) for k in hits]


def read_shard(db: sqlite_utils.Database, model: str, parts: list[int], shard: int) -> IndexedShard:
    if not parts:
        return IndexedShard([])
    rows = db.conn.execute(
        f"SELECT base, pairs FROM label_index WHERE model = ? "
        f"AND part IN ({', '.join('?' * len(parts))}) AND shard = ?",
        [model, *parts, shard],
    ).fetchall()
    return IndexedShard(rows)


def index_parts(db: sqlite_utils.Database, model: str) -> list[int]:
    """The model's generations (their parts, ascending): one seek each, not a scan."""
    parts: list[int] = []
    query = "SELECT min(part) FROM label_index WHERE model = ? AND part > ?"
    part = db.execute(query, [model, -(2**63)]).fetchone()[0]
    while part is not None:
        parts.append(int(part))
        part = db.execute(query, [model, parts[-1]]).fetchone()[0]
    return parts


def write_generation(
    db: sqlite_utils.Database, model: str, hs: np.ndarray, numbers: np.ndarray
) -> list[int]:
    """Write the pairs (hash ``hs``, number) as one generation, or several if their numbers
    span more than ``OFFSET_SPAN`` (a store moved from the row-per-prediction layout may
    have gaps); their parts, ascending. Every number must be above the model's parts."""
    if not len(numbers):
        return []
    if int(numbers.max()) - int(numbers.min()) < OFFSET_SPAN:
        return [_write_one(db, model, hs, numbers)]
    order = np.argsort(numbers, kind="stable")
    hs, numbers = hs[order], numbers[order]
    parts, start = [], 0
    while start < len(numbers):
        stop = int(np.searchsorted(numbers, int(numbers[start]) + OFFSET_SPAN, side="left"))
        parts.append(_write_one(db, model, hs[start:stop], numbers[start:stop]))
        start = stop
    return parts


def _write_one(db: sqlite_utils.Database, model: str, hs: np.ndarray, numbers: np.ndarray) -> int:
    base, part = int(numbers.min()), int(numbers.max())
    shards = (hs >> _SHIFT).astype(np.uint16)
    order = np.argsort(shards, kind="stable")  # 16-bit keys: a radix sort
    pairs = np.empty(len(hs), dtype=PAIR)
    pairs["offset"] = numbers[order] - base
    pairs["low"] = hs[order] & _LOW_BITS
    edges = np.searchsorted(shards[order], np.arange((1 << SHARD_BITS) + 1), side="left")
    rows = [
        (model, part, s, base, pairs[a:b].tobytes())
        for s, (a, b) in enumerate(zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True))
        if b > a
    ]
    db.conn.executemany(
        "INSERT INTO label_index (model, part, shard, base, pairs) VALUES (?, ?, ?, ?, ?)", rows
    )
    return part


def drop_generations(db: sqlite_utils.Database, model: str, floor: int) -> None:
    """Delete the generations whose predictions are all below ``floor`` (all gone)."""
    db.execute("DELETE FROM label_index WHERE model = ? AND part < ?", [model, floor])
