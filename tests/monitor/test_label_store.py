"""The batch layout of pending predictions joins exactly as the join's rules say.

A plain dictionary model of the rules (the latest prediction of each id, the
watermark, horizon and max_pending) is the reference; the join runs on a real
store with checkpoints and restarts anywhere, its index flushed and merged
often (a small budget for level 0), and with every id hashing alike (collisions
decided by the id text).
"""

from __future__ import annotations

import math
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from monitor.pipeline import label_cache, label_index, label_store
from monitor.pipeline.label_ids import encoded, hash_one, hashes
from monitor.pipeline.label_join import ModelLabelJoin, write_all
from monitor.pipeline.label_store import waiting_predictions
from monitor.store.store import Store

T0 = 1.6e9
HORIZON = 50.0
MAX_PENDING = 300
BUDGET = 256  # pairs of level 0: a flush every few hundred predictions


class RulesModel:
    """The join's rules, with every prediction in memory."""

    def __init__(self, max_pending: int, horizon: float) -> None:
        self.max_pending, self.horizon = max_pending, horizon
        self.latest: dict[str, list[Any]] = {}  # id -> [ins, ts, predicted, joined]
        self.all: list[list[Any]] = []
        self.watermark = -math.inf

    def prediction(self, request: str, ts: float, predicted: str | float) -> None:
        self.watermark = max(self.watermark, ts)
        entry = [len(self.all), ts, predicted, False]
        self.all.append(entry)
        self.latest[request] = entry

    def label(self, request: str, ts: float) -> tuple[str, Any]:
        self.watermark = max(self.watermark, ts)
        found = self.latest.get(request)
        if found is None or found[0] < len(self.all) - self.max_pending:
            return "unmatched", None
        age = self.watermark - found[1]
        if age > 2 * self.horizon:
            return "unmatched", None
        if age > self.horizon:
            return "late", None
        if found[3]:
            return "duplicate", None
        found[3] = True
        return "joined", (found[1], found[2])

    def gone_unlabelled(self) -> int:
        evict_below, gone_before = (
            len(self.all) - self.max_pending,
            self.watermark - 2 * self.horizon,
        )
        return sum(1 for e in self.all if (e[0] < evict_below or e[1] < gone_before) and not e[3])


def _stream(n: int, seed: int) -> list[tuple[str, str, float, str | float]]:
    """Predictions with ids that repeat and times that jump back and forth; labels for
    recent, old, unknown and already labelled ids."""
    rng = np.random.default_rng(seed)
    events: list[tuple[str, str, float, str | float]] = []
    clock = T0
    for i in range(n):
        clock += float(rng.exponential(0.4))
        ts = clock - float(rng.exponential(20)) if rng.random() < 0.2 else clock
        request = f"r{int(rng.integers(0, 700))}" if rng.random() < 0.3 else f"p{i}"
        predicted: str | float = "ab"[int(rng.integers(0, 2))] if i % 3 else float(i)
        events.append(("prediction", request, ts, predicted))
        if rng.random() < 0.6:
            back = int(rng.integers(1, min(i, 600) + 2))
            target = events[max(0, len(events) - back)][1]
            if rng.random() < 0.05:
                target = f"nobody{i}"
            events.append(("label", target, clock, "a"))
    return events


def _run(
    events: list[tuple[str, str, float, str | float]],
    path: Path,
    seed: int,
    max_pending: int = MAX_PENDING,
    horizon: float = HORIZON,
) -> None:
    rng = np.random.default_rng(seed)
    model = RulesModel(max_pending, horizon)
    store = Store(path)
    join = ModelLabelJoin("m", store.db, horizon, max_pending)
    for k, (kind, request, ts, value) in enumerate(events):
        if kind == "prediction":
            model.prediction(request, ts, value)
            join.prediction(request, ts, value, 0.25 if isinstance(value, str) else None)
        else:
            want, joined = model.label(request, ts)
            assert join.label(k, request, ts, value) == want, (k, request)
            if want == "joined":
                taken = join.take_joined()
                assert taken is not None
                assert (taken.predicted_ts[0], taken.predicted[0]) == joined
        if rng.random() < 0.01:  # a checkpoint, now and then a restart after it
            with store.transaction() as db:
                write_all(db, [join], budget=BUDGET)
            join.written()
            if rng.random() < 0.3:
                store.close()
                store = Store(path)
                join = ModelLabelJoin("m", store.db, horizon, max_pending)
    with store.transaction() as db:
        write_all(db, [join], budget=BUDGET)
    join.written()
    assert join.counts.evicted + join.counts.expired == model.gone_unlabelled()
    waiting = [p for p in waiting_predictions(store.db, "m") if not p.joined]
    row = store.db.execute("SELECT pending FROM label_counts WHERE model = 'm'").fetchone()
    assert row[0] == len(waiting) > 0
    store.close()


@pytest.fixture
def small_index(monkeypatch: pytest.MonkeyPatch) -> None:
    """Level 0 merged past 2 runs (``_run`` flushes it every few hundred predictions, and
    so does a store's move from an older layout); the caches of chunks and shards read
    so small that they forget all the time."""
    monkeypatch.setattr(label_cache, "CHUNKS", 3)
    monkeypatch.setattr(label_cache, "SHARD_BYTES", 1024)
    monkeypatch.setattr(label_store, "LEVEL0_BUDGET", BUDGET)
    monkeypatch.setattr(label_store, "LEVEL0_RUNS", 2)


@pytest.mark.parametrize("span", [None, 100])
def test_the_join_follows_its_rules_across_checkpoints_restarts_and_index_flushes(
    tmp_path: Path, small_index: None, monkeypatch: pytest.MonkeyPatch, span: int | None
) -> None:
    if span is not None:  # a flush's numbers split into generations of at most 100
        monkeypatch.setattr(label_index, "OFFSET_SPAN", span)
    events = _stream(6_000, seed=1)
    _run(events, tmp_path / "s.db", seed=2)
    with sqlite3.connect(tmp_path / "s.db") as db:
        generations = db.execute(
            "SELECT part, min(base), count(*) FROM label_index GROUP BY part ORDER BY part"
        ).fetchall()
        batches = db.execute("SELECT count(*), min(first) FROM label_batches").fetchone()
        flushes = db.execute("SELECT index_flushes FROM label_counts").fetchone()[0]
    assert flushes > 5 and generations  # the index was used, a generation per flush or more
    assert batches[1] > 0  # batches whose predictions had all gone were deleted
    assert generations[0][1] > 0  # and so were the generations all below the floor
    assert all(part >= batches[1] for part, *_ in generations)
    if span is not None:
        assert max(part - base for part, base, _ in generations) < span


def test_ids_with_the_same_hash_are_told_apart_by_their_text(
    tmp_path: Path, small_index: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(label_store, "hash_one", lambda request: 7)
    monkeypatch.setattr(
        label_store, "hashes", lambda data, ends, ids: np.full(len(ends), 7, dtype=np.uint64)
    )
    _run(_stream(1_500, seed=3), tmp_path / "s.db", seed=4)


def test_one_id_hashes_alike_alone_and_among_many() -> None:
    ids = ["", "r1", "é", "\ud800lone", "x" * 256, "请求-42", "r1 "]
    data, ends = encoded(ids)
    assert hashes(data, ends).tolist() == [hash_one(i) for i in ids]
    # ASCII ids of up to 64 bytes are hashed as rows of a padded matrix: the same hashes,
    # whatever the padding (trailing NULs, empty ids, lengths side by side).
    ascii_ids = ["", "a\x00", "\x00", "r1", "r1 ", "x" * 64, "y" * 63]
    data, ends = encoded(ascii_ids)
    assert hashes(data, ends, ascii_ids).tolist() == [hash_one(i) for i in ascii_ids]
    assert hashes(data, ends, ascii_ids).tolist() == hashes(data, ends).tolist()
    assert len(set(hashes(*encoded([f"r{i}" for i in range(100_000)])).tolist())) == 100_000


OLD_LABEL_PENDING = """
CREATE TABLE label_pending (
    model TEXT NOT NULL, id TEXT NOT NULL, ins INTEGER NOT NULL, ts REAL NOT NULL,
    predicted TEXT, value REAL, score REAL, joined INTEGER NOT NULL DEFAULT 0,
    segments BLOB, PRIMARY KEY (model, id)
) WITHOUT ROWID;
CREATE INDEX label_pending_ins ON label_pending(model, ins);
CREATE INDEX label_pending_ts ON label_pending(model, ts);
"""


def test_a_store_of_the_row_per_prediction_layout_keeps_its_predictions(
    tmp_path: Path, small_index: None
) -> None:
    path = tmp_path / "old.db"
    Store(path).close()
    with sqlite3.connect(path) as db:  # as the layout before batches left it
        db.executescript(OLD_LABEL_PENDING)
        rows = [
            ("m", f"q{i}", 3 * i, T0 + i, "a" if i % 2 else None, None if i % 2 else i / 2)
            for i in range(70_000)
        ]
        db.executemany(
            "INSERT INTO label_pending (model, id, ins, ts, predicted, value, score, joined, "
            "segments) VALUES (?, ?, ?, ?, ?, ?, 0.5, 0, x'0102')",
            rows,
        )
        db.execute("UPDATE label_pending SET joined = 1, segments = NULL WHERE id = 'q7'")
        db.execute(
            "INSERT INTO label_counts (model, inserted, watermark, labels, joined, late, "
            "unmatched, duplicate, evicted, expired, delays) "
            "VALUES ('m', 210000, ?, 1, 1, 0, 0, 0, 0, 0, ?)",
            [T0 + 70_000, "[" + ",".join(["0"] * 162) + "]"],
        )
    store = Store(path)
    tables = {r[0] for r in store.db.execute("SELECT name FROM sqlite_master")}
    assert "label_pending" not in tables
    indexed = store.db.execute("SELECT sum(length(pairs)) / 8 FROM label_index").fetchone()
    assert indexed == (70_000,)  # every moved prediction indexed as it moved
    assert store.db.execute("SELECT count(*) FROM label_batches WHERE indexed = 0").fetchone() == (
        0,
    )
    assert store.db.execute("SELECT pending FROM label_counts").fetchone() == (69_999,)
    join = ModelLabelJoin("m", store.db, horizon=86_400.0, max_pending=10_000_000)
    now = T0 + 70_001
    assert [join.label(k, f"q{k}", now, "a") for k in (5, 7, 68_000)] == ["joined"] * 1 + [
        "duplicate",
        "joined",
    ]
    assert join.label(9, "q_absent", now, "a") == "unmatched"
    taken = join.take_joined()
    assert taken is not None
    assert taken.predicted == ["a", 34_000.0]
    assert taken.score.tolist() == [0.5, 0.5] and taken.segments == [b"\x01\x02"] * 2
    assert taken.predicted_ts.tolist() == [T0 + 5, T0 + 68_000]
    # A new prediction goes on from the old numbering: the old ones are not evicted.
    join.prediction("new", now, "b", None)
    with store.transaction() as db:
        join.write(db)
    join.written()
    assert join.counts.evicted == join.counts.expired == 0
    assert store.db.execute("SELECT pending FROM label_counts").fetchone() == (69_998,)
    store.close()


def test_a_checkpoint_that_did_not_commit_is_written_again_the_same(tmp_path: Path) -> None:
    def fill(join: ModelLabelJoin) -> None:
        for i in range(400):  # the first 100 evicted (max_pending 300), some expired
            join.prediction(f"p{i}", T0 + i if i % 7 else T0 - 1_000, "a", None)
        join.label(0, "p399", T0 + 400, "a")

    counts = []
    for name, fail_first in (("once.db", False), ("again.db", True)):
        store = Store(tmp_path / name)
        join = ModelLabelJoin("m", store.db, HORIZON, MAX_PENDING)
        fill(join)
        if fail_first:
            with pytest.raises(RuntimeError), store.transaction() as db:
                join.write(db)
                raise RuntimeError("the checkpoint fails after the join wrote")
        with store.transaction() as db:
            join.write(db)
        join.written()
        counts.append((join.counts.as_dict(), join.pending, waiting_predictions(store.db, "m")))
        store.close()
    assert counts[0] == counts[1]
    assert counts[0][0]["evicted"] > 0 and counts[0][0]["expired"] > 0


def test_a_checkpoint_whose_flush_did_not_commit_is_written_again_the_same(
    tmp_path: Path,
) -> None:
    """Two models over a budget of 300 pairs: the larger one's level 0 goes into the index;
    a checkpoint that fails after that leaves memory as it was, and its retry writes the
    same as one that never failed."""
    results = []
    for name, fail_first in (("once.db", False), ("again.db", True)):
        store = Store(tmp_path / name)
        joins = [ModelLabelJoin(m, store.db, 1e6, 10_000) for m in ("a", "b")]
        for i in range(150):
            joins[0].prediction(f"p{i}", T0 + i, "x", None)
        for i in range(100):
            joins[1].prediction(f"q{i}", T0 + i, "y", None)
        with store.transaction() as db:
            write_all(db, joins, budget=300)  # 250 pairs: under it
        for join in joins:
            join.written()
        for i in range(150, 250):
            joins[0].prediction(f"p{i}", T0 + i, "x", None)
        if fail_first:
            with pytest.raises(RuntimeError), store.transaction() as db:
                write_all(db, joins, budget=300)
                raise RuntimeError("the checkpoint fails after the flush")
            assert [join.store.pairs for join in joins] == [150, 100]
            assert [join.store.parts for join in joins] == [[], []]
        with store.transaction() as db:
            write_all(db, joins, budget=300)
        for join in joins:
            join.written()
        assert [join.store.pairs for join in joins] == [0, 100]  # the largest went
        outcomes = [joins[0].label(0, "p3", T0 + 250, "a"), joins[1].label(1, "q3", T0 + 250, "a")]
        results.append(
            (
                outcomes,
                store.db.execute("SELECT model, index_flushes FROM label_counts").fetchall(),
                store.db.execute("SELECT * FROM label_index").fetchall(),
                store.db.execute("SELECT model, first, indexed FROM label_batches").fetchall(),
            )
        )
        store.close()
    assert results[0] == results[1]
    assert results[0][0] == ["joined", "joined"]
    assert results[0][1] == [("a", 1), ("b", 0)] and results[0][2]


def _marks(db: sqlite3.Connection) -> list[tuple[str, int, int]]:
    return db.execute(
        "SELECT model, first, bits FROM label_joined ORDER BY model, first"
    ).fetchall()


def _marked_numbers(db: sqlite3.Connection) -> list[tuple[str, int]]:
    """The labelled predictions as the layout before marks per chunk listed them."""
    bits = {(m, f): b for m, f, b in _marks(db)}
    rows = []
    for model, first, raw_ins, records in db.execute(
        "SELECT model, first, ins, records FROM label_chunks ORDER BY model, first"
    ):
        n = len(records) // label_store.RECORD.itemsize
        numbers = range(first, first + n) if raw_ins is None else np.frombuffer(raw_ins, np.int64)
        mask = bits.get((model, first), 0)
        rows += [(model, int(i)) for k, i in enumerate(numbers) if mask >> k & 1]
    return rows


@pytest.mark.parametrize("gaps", [False, True])
def test_a_store_with_a_labelled_row_per_prediction_gets_the_same_marks_per_chunk(
    tmp_path: Path, small_index: None, gaps: bool
) -> None:
    path = tmp_path / "s.db"
    if gaps:  # numbers with gaps, as a store moved from the row-per-prediction layout
        Store(path).close()
        with sqlite3.connect(path) as db:
            db.executescript(OLD_LABEL_PENDING)
            db.executemany(
                "INSERT INTO label_pending (model, id, ins, ts, predicted, joined) "
                "VALUES ('m', ?, ?, ?, 'a', ?)",
                [(f"q{i}", 3 * i, T0 + i, int(i % 5 == 0)) for i in range(5_000)],
            )
        store = Store(path)
        join = ModelLabelJoin("m", store.db, HORIZON * 1e6, 10_000_000)
        assert [join.label(k, f"q{k}", T0 + 5_000, "a") for k in (3, 4, 10)] == [
            "joined",
            "joined",
            "duplicate",
        ]
        with store.transaction() as db:
            join.write(db)
        join.written()
        store.close()
    else:
        _run(_stream(3_000, seed=5), path, seed=6)
    with sqlite3.connect(path) as db:
        marks, labelled = _marks(db), _marked_numbers(db)
        db.execute("DROP TABLE label_joined")
        db.execute(
            "CREATE TABLE label_joined (model TEXT NOT NULL, ins INTEGER NOT NULL, "
            "PRIMARY KEY (model, ins)) WITHOUT ROWID"
        )
        db.executemany("INSERT INTO label_joined (model, ins) VALUES (?, ?)", labelled)
    assert len(labelled) > 20
    store = Store(path)  # moves the marks
    with sqlite3.connect(path) as db:
        assert _marks(db) == marks
        assert "label_joined_by_ins" not in {
            r[0] for r in db.execute("SELECT name FROM sqlite_master")
        }
    store.close()


def test_a_label_read_from_a_cached_chunk_sees_the_marks_of_the_checkpoints_since(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "s.db")
    join = ModelLabelJoin("m", store.db, 1e6, MAX_PENDING)
    for i in range(100):
        join.prediction(f"p{i}", T0 + i, "a", None)

    def checkpoint(fail: bool = False) -> None:
        if fail:
            with pytest.raises(RuntimeError), store.transaction() as db:
                join.write(db)
                raise RuntimeError("the checkpoint fails after the join wrote")
            return
        with store.transaction() as db:
            join.write(db)
        join.written()

    checkpoint()
    now = T0 + 100
    assert [join.label(k, f"p{k}", now, "a") for k in (5, 6)] == ["joined", "joined"]
    checkpoint()  # p5's chunk is cached from before: its marks must follow
    outcomes = [join.label(k, f"p{k}", now, "a") for k in (5, 7, 8)]
    assert outcomes == ["duplicate", "joined", "joined"]
    checkpoint(fail=True)  # p7 and p8 not marked in the store: still labelled since
    assert join.label(9, "p8", now, "a") == "duplicate"
    checkpoint()
    outcomes = [join.label(k, f"p{k}", now, "a") for k in (6, 7, 9)]
    assert outcomes == ["duplicate", "duplicate", "joined"]
    store.close()
    store = Store(tmp_path / "s.db")  # from the store alone, no cache (p9: not checkpointed)
    join = ModelLabelJoin("m", store.db, 1e6, MAX_PENDING)
    outcomes = [join.label(k, f"p{k}", now, "a") for k in (5, 8, 9, 10)]
    assert outcomes == ["duplicate", "duplicate", "joined", "joined"]
    store.close()


OLD_LABEL_INDEX = """
CREATE TABLE label_index (
    model TEXT NOT NULL, shard INTEGER NOT NULL, part INTEGER NOT NULL,
    hashes BLOB NOT NULL, refs BLOB NOT NULL, PRIMARY KEY (model, shard, part)
);
"""


def _index_pairs(db: sqlite3.Connection, floor: int) -> set[tuple[int, int]]:
    """The (number, low 32 bits of the hash) pairs of the index, from ``floor`` on."""
    found = set()
    for base, raw in db.execute("SELECT base, pairs FROM label_index"):
        pairs = np.frombuffer(raw, dtype=label_index.PAIR)
        numbers = (base + pairs["offset"].astype(np.int64)).tolist()
        found |= set(zip(numbers, pairs["low"].tolist(), strict=True))
    return {p for p in found if p[0] >= floor}


def _as_runs_per_shard(path: Path) -> None:
    """Rewrite the store's index as the layout before generations left it: per shard of
    4,096, runs of (hash, ins) sorted by hash, one per flush (two flushes here)."""
    with sqlite3.connect(path) as db:
        hs, refs = [], []
        for first, last, raw_ins, raw in db.execute(
            "SELECT first, last, ins, hashes FROM label_batches WHERE indexed = 1"
        ):
            hs.append(np.frombuffer(raw, dtype=np.uint64))
            refs.append(np.arange(first, last + 1) if raw_ins is None else np.frombuffer(raw_ins))
        h, ins = np.concatenate(hs), np.concatenate(refs).astype(np.int64)
        db.execute("DROP TABLE label_index")
        db.executescript(OLD_LABEL_INDEX)
        middle = int(np.median(ins))
        for flush in (ins <= middle, ins > middle):
            part = int(ins[flush].max())
            for shard in np.unique(h[flush] >> np.uint64(52)).tolist():
                picked = flush & (h >> np.uint64(52) == shard)
                order = np.argsort(h[picked])
                db.execute(
                    "INSERT INTO label_index VALUES ('m', ?, ?, ?, ?)",
                    [shard, part, h[picked][order].tobytes(), ins[picked][order].tobytes()],
                )


def test_a_store_of_the_index_before_generations_joins_the_same_after_it_moves(
    tmp_path: Path, small_index: None
) -> None:
    _run(_stream(4_000, seed=7), tmp_path / "new.db", seed=8, max_pending=3_000, horizon=1e4)
    shutil.copy(tmp_path / "new.db", tmp_path / "old.db")
    _as_runs_per_shard(tmp_path / "old.db")
    outcomes, pairs = [], []
    for name in ("new.db", "old.db"):
        store = Store(tmp_path / name)  # the old one's index is rebuilt as generations
        floor = store.db.execute("SELECT min(first) FROM label_batches").fetchone()[0]
        pairs.append(_index_pairs(store.db.conn, floor))
        assert "pairs" in {r[1] for r in store.db.execute("PRAGMA table_info(label_index)")}
        join = ModelLabelJoin("m", store.db, 1e4, 3_000)
        ids = [p.id for p in waiting_predictions(store.db, "m")]
        now = join.watermark
        labelled = [join.label(k, i, now, "a") for k, i in enumerate([*ids, *ids[:50], "none"])]
        taken = join.take_joined()
        assert taken is not None
        outcomes.append((labelled, taken.predicted_ts.tolist(), taken.predicted))
        store.close()
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0].count("joined") > 100 and "duplicate" in outcomes[0][0]
    assert pairs[0] == pairs[1] and len(pairs[0]) > 1_000
