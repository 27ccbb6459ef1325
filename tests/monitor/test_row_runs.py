"""Runs of rows made by the fetch process: the columns, the grouping and the pipeline's
results are exactly those of the rows one by one."""

from __future__ import annotations

import random
import re
import sqlite3
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from detectors.base import RowBatch
from monitor.config import load_config
from monitor.ingest.batching import RunSlice, rows_batch, runs_batch
from monitor.ingest.events import Event, Malformed, Row, parse_record
from monitor.ingest.row_runs import RowRun, group_runs, make_run
from monitor.pipeline.pipeline import Pipeline
from monitor.pipeline.routing import deliver
from monitor.store.store import Store
from simulation.simulator import write_simulation
from tests.monitor.exact_support import same

START = 1_790_000_000.0  # 2026-09-21: in the past, as replayed events are
KEYS = ("a", "b", "c", "d", "e")


def _value(rng: random.Random, kind: str) -> Any:
    """A feature value of a column of ``kind``, None now and then."""
    if rng.random() < 0.1:
        return None
    if kind == "float":
        return rng.choice([rng.gauss(0, 1), 1e300, float("inf"), float("nan"), 0.5])
    if kind == "int":  # integers, floats among them now and then, as a producer sends
        return rng.choice([rng.randint(-5, 5), 2**53, -(2**53), 444, 1.5])
    if kind == "label":
        return rng.choice(["x", "y", "3", ""])
    if kind == "bool":
        return rng.choice([True, False, "maybe"])
    return None  # "none": missing throughout


def _rows(rng: random.Random, n: int, kinds: dict[str, str], first: int) -> list[Row]:
    rows: list[Row] = []
    for i in range(first, first + n):
        features = {k: _value(rng, kinds[k]) for k in KEYS}
        prediction = rng.choice(["yes", "no", True, 1.0, 2, None])
        score = rng.choice([rng.random(), None, float("inf"), 0.25])
        ident = rng.choice([f"r{i}", None])
        client = rng.choice(["c1", "c2", None])
        rows.append(
            ("m", START + i, ident, client, features, prediction, score, "prediction", None)
        )
    return rows


def _assert_same_batch(got: RowBatch, want: RowBatch) -> None:
    for name in ("numeric", "categorical"):
        got_columns, want_columns = getattr(got, name), getattr(want, name)
        assert list(got_columns) == list(want_columns), name  # the same order too
        for key, column in want_columns.items():
            _assert_same_array(got_columns[key], column)
    for name in ("ts", "score", "prediction", "prediction_value", "client", "ids", "seq"):
        got_array, want_array = getattr(got, name), getattr(want, name)
        assert (got_array is None) == (want_array is None), name
        if want_array is not None:
            _assert_same_array(got_array, want_array)
    assert got.has_features is None and want.has_features is None


def _assert_same_array(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape
    if want.dtype == object:
        assert got.tolist() == want.tolist()
    else:
        assert np.array_equal(got, want, equal_nan=True)


@pytest.mark.parametrize("seed", range(40))
def test_columns_of_runs_are_rows_batch_of_their_rows(seed: int) -> None:
    """Runs whose columns differ in kind (numbers in one, labels or bools in another,
    missing throughout in a third), sliced anywhere: the same batch as the rows give."""
    rng = random.Random(seed)
    slices: list[RunSlice] = []
    rows: list[Row] = []
    first = 0
    for _ in range(rng.randint(1, 5)):
        kinds = {k: rng.choice(["float", "int", "label", "bool", "none"]) for k in KEYS}
        run_rows = _rows(rng, rng.randint(1, 40), kinds, first)
        first += len(run_rows)
        run = make_run(run_rows)
        if run is None:  # a column of bools mixed with "maybe" is still labels: never None
            pytest.fail("rows of one schema and plain kinds must make a run")
        start = rng.randint(0, run.n - 1)
        end = rng.randint(start + 1, run.n)
        slices.append((run, start, end))
        rows += run_rows[start:end]
    seq = list(range(100, 100 + len(rows)))
    _assert_same_batch(runs_batch(slices, seq), rows_batch(rows, seq))
    # A feature taken as categorical whatever its values: the rows' own path, the same batch.
    _assert_same_batch(
        runs_batch(slices, seq, frozenset({"a"})), rows_batch(rows, seq, frozenset({"a"}))
    )


@pytest.mark.parametrize("seed", range(30))
def test_a_run_gives_back_its_rows_exactly(seed: int) -> None:
    """The slow path's rows: the same values of the same types, features in the same order."""
    rng = random.Random(seed)
    kinds = {k: rng.choice(["float", "int", "label", "bool", "none"]) for k in KEYS}
    rows = _rows(rng, rng.randint(1, 60), kinds, 0)
    more = [(rng.choice(["prediction", "input"]), rng.choice([None, "v2"])) for _ in rows]
    rows = [(*row[:7], *other) for row, other in zip(rows, more, strict=True)]
    run = make_run(rows)
    assert run is not None
    start = rng.randint(0, run.n - 1)
    end = rng.randint(start, run.n)
    assert same(run.rows(start, end), rows[start:end])
    assert same(run.rows(), rows)


def test_rows_that_cannot_be_columns_make_no_run() -> None:
    rng = random.Random(1)
    mixed = _rows(rng, 10, dict.fromkeys(KEYS, "float"), 0)
    mixed[3][4]["a"] = "label"  # type: ignore[index]  # a number here, a label there
    assert make_run(mixed) is None
    whole = _rows(rng, 10, dict.fromkeys(KEYS, "float"), 0)
    whole[2][4]["b"] = 2**53 + 1  # type: ignore[index]  # a float64 cannot give it back
    assert make_run(whole) is None
    whole[2][4]["b"] = 2**53  # type: ignore[index]  # it can this one, as an int again
    run = make_run(whole)
    assert run is not None and same(run.rows(), whole)
    reordered = _rows(rng, 10, dict.fromkeys(KEYS, "float"), 0)
    reordered[5] = (*reordered[5][:4], dict(reversed(reordered[5][4].items())), *reordered[5][5:])  # type: ignore[union-attr]
    assert make_run(reordered) is None
    without = _rows(rng, 10, dict.fromkeys(KEYS, "float"), 0)
    without[0] = (*without[0][:4], None, *without[0][5:])
    assert make_run(without) is None
    runs = make_run(_rows(rng, 10, dict.fromkeys(KEYS, "label"), 0))
    assert runs is not None and runs.rows() == runs.rows(0, 10) and len(runs.rows(2, 5)) == 3


def _stream(rng: random.Random, n: int) -> list[Row | Event | Malformed]:
    models = ["m1", "m2", "m3"]
    out: list[Row | Event | Malformed] = []
    for i in range(n):
        pick = rng.random()
        model = rng.choice(models)
        if pick < 0.75:
            out.append((model, START + i, None, None, {"a": 1.0}, "yes", 0.5, "prediction", None))
        elif pick < 0.9:
            out.append(Event("label", model, START + i, id=f"r{i}", label="yes"))
        else:
            out.append(Malformed(f"bad {i}"))
    return out


LISTED = frozenset({"m1", "m2"})


def _model(item: Row | Event) -> str:
    return item[0] if isinstance(item, tuple) else item.model


@pytest.mark.parametrize("seed", range(20))
def test_grouping_keeps_each_models_order_and_the_malformed_in_place(seed: int) -> None:
    rng = random.Random(seed)
    parsed = _stream(rng, rng.randint(1, 400))
    grouped = group_runs(parsed, LISTED, min_run=2)
    flat: list[Row | Event | Malformed] = []
    for item in grouped:
        flat += item.rows() if isinstance(item, RowRun) else [item]
    assert len(flat) == len(parsed)

    def per_model(items: list[Row | Event | Malformed]) -> dict[str, list[object]]:
        seen: dict[str, list[object]] = defaultdict(list)
        for item in items:
            if isinstance(item, Malformed):
                continue
            model = item[0] if isinstance(item, tuple) else item.model
            seen[model].append(item[1] if isinstance(item, tuple) else item.ts)
        return dict(seen)

    assert per_model(flat) == per_model(parsed)
    # A model not in the config and the malformed records stay in place: names are
    # counted in the order they come.
    in_place = [x for x in parsed if isinstance(x, Malformed) or _model(x) not in LISTED]
    assert [x for x in flat if isinstance(x, Malformed) or _model(x) not in LISTED] == in_place
    # Every record before a malformed one stays before it, every one after stays after.
    marks = [i for i, item in enumerate(parsed) if isinstance(item, Malformed)]
    flat_marks = [i for i, item in enumerate(flat) if isinstance(item, Malformed)]
    assert [parsed[i].reason for i in marks] == [flat[i].reason for i in flat_marks]  # type: ignore[union-attr]
    assert marks == flat_marks
    assert any(isinstance(item, RowRun) for item in grouped) or len(parsed) < 30


def _config(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(
        f'[store]\npath = "{tmp_path / name}.db"\n'
        "[detection]\nwindow = 500\nreference_size = 1500\n"
        '[[models]]\nname = "fraud"\n[[models]]\nname = "churn"\n'
    )
    return path


def _hostile(lines: list[bytes], rng: random.Random) -> list[bytes]:
    """Simulated lines with whole numbers as floats and bools as labels (the usual rows
    parse_record makes), some changed: a feature more (outside the model's filter once
    its reference is built), a number as a label, a model not in the config."""
    out = []
    for line in lines:
        line = re.sub(rb'":(-?[0-9]+)([,}])', rb'":\1.0\2', line)
        line = line.replace(b":false", b':"no"').replace(b":true", b':"yes"')
        pick = rng.random()
        if pick < 0.01:
            line = line.replace(b'"features":{', b'"features":{"extra":1.5,', 1)
        elif pick < 0.015:
            line = line.replace(b'"device":"web"', b'"device":7', 1)
        elif pick < 0.02:
            line = line.replace(b'"model":"churn"', b'"model":"other"', 1)
        out.append(line)
    return out


TABLES = (
    "alerts",
    "incidents",
    "signal_history",
    "signal_state",
    "performance_windows",
    "quarantine",
    "label_counts",
    "label_batches",
    "label_chunks",
    "label_joined",
    "model_state",
    "state_blobs",
)


def _tables(store: Path) -> dict[str, list[tuple[object, ...]]]:
    db = sqlite3.connect(store)
    try:
        out = {}
        for table in TABLES:
            names = [r[1] for r in db.execute(f"PRAGMA table_info({table})")]
            kept = ", ".join(n for n in names if not n.endswith("_at"))
            out[table] = db.execute(f"SELECT {kept} FROM {table} ORDER BY {kept}").fetchall()
        return out
    finally:
        db.close()


@pytest.mark.parametrize("seed", [0, 1])
def test_a_pipeline_fed_runs_writes_what_rows_write(tmp_path: Path, seed: int) -> None:
    """The simulated stream (two models with drift, labels, metrics, malformed lines, and
    some hostile changes) in batches of any size, checkpointed now and then: fed as runs
    where they form, the store ends with the same rows as fed one record at a time."""
    rng = random.Random(seed)
    write_simulation(tmp_path / "events.jsonl", events=20_000, seed=seed, malformed=40)
    lines = _hostile((tmp_path / "events.jsonl").read_bytes().splitlines(), rng)
    parsed = [parse_record(line) for line in lines]
    pipelines = []
    for name in ("rows", "runs"):
        config = load_config(_config(tmp_path, name))
        pipelines.append(Pipeline(config, Store(config.store.path)))
    by_rows, by_runs = pipelines
    runs = 0
    at = 0
    while at < len(parsed):
        batch = parsed[at : at + rng.choice([1, 7, 300, 2048, 3000])]
        at += len(batch)
        for item in batch:
            deliver(by_rows, item, "test", None, None, None, b"raw")
        for grouped in group_runs(batch, frozenset({"fraud", "churn"}), min_run=2):
            if isinstance(grouped, RowRun):
                runs += 1
                by_runs.feed_run(grouped)
            else:
                deliver(by_runs, grouped, "test", None, None, None, b"raw")
        if rng.random() < 0.3:
            by_rows.checkpoint()
            by_runs.checkpoint()
    by_rows.checkpoint()
    by_runs.checkpoint()
    assert runs > 20
    rows_tables, runs_tables = _tables(tmp_path / "rows.db"), _tables(tmp_path / "runs.db")
    assert rows_tables["alerts"] and rows_tables["label_batches"]  # the stream did something
    for table in TABLES:
        assert runs_tables[table] == rows_tables[table], table
    assert by_runs.stats.unlisted == by_rows.stats.unlisted
    assert by_runs.stats.processed == by_rows.stats.processed
    assert orjson.dumps(by_runs.stats.features_dropped) == orjson.dumps(
        by_rows.stats.features_dropped
    )


def test_a_runs_labels_are_shared_and_its_numbers_kept_apart() -> None:
    """Equal callers and classes become one object each (what is pickled and kept once),
    while predictions that are numbers or bools keep their own types."""
    rng = random.Random(3)
    rows = _rows(rng, 50, dict.fromkeys(KEYS, "float"), 0)
    labels: list[Row] = [
        (*r[:3], f"caller-{i % 2}", r[4], ["yes", "no"][i % 2], *r[6:]) for i, r in enumerate(rows)
    ]
    run = make_run(labels)
    assert run is not None and same(run.rows(), labels)
    assert len({id(c) for c in run.clients}) == 2 and len({id(p) for p in run.predictions}) == 2
    classes: list[bool | int | float | str] = [True, 1, 1.0, "1"]
    mixed: list[Row] = [(*r[:5], classes[i % 4], *r[6:]) for i, r in enumerate(rows)]
    run = make_run(mixed)
    assert run is not None and same(run.predictions, [r[5] for r in mixed])
