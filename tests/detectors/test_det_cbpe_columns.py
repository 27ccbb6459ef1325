"""CBPE's compact columns hold what a plain list would: the same values, of the same
types (``True``, ``1``, ``1.0`` and ``-0.0`` are not ``1`` or ``0.0``), through random
appends, extends, paddings, fills and overwrites, past the table of coded strings and past
the point where a sparse column turns into a list; and rows dumped, through JSON and
loaded dump the same JSON, with the same types."""

from __future__ import annotations

import json
import math
from array import array
from typing import Any

import numpy as np
import pytest

from detectors.performance.calibration import Rows
from detectors.performance.columns import Codes, Sparse


class Label(str):
    """A str of a type of its own: kept as it is, not coded."""


def typed(values: list[Any]) -> list[tuple[type, str]]:
    return [(type(v), repr(v)) for v in values]


def _value(rng: np.random.Generator, many: bool) -> Any:
    roll = rng.random()
    if roll < 0.4:
        return None
    if roll < 0.7:
        return ["yes", "no"][int(rng.integers(2))][:1] + "es"[: int(rng.integers(0, 3))]
    if roll < 0.85 and many:
        return f"class-{int(rng.integers(400))}"  # more than the table holds
    odd: list[Any] = [True, False, 1, 0, 1.0, -0.0, 0.0, math.inf, Label("yes"), b"no", ("t",)]
    return odd[int(rng.integers(len(odd)))]


@pytest.mark.parametrize("seed", range(20))
def test_codes_hold_what_a_list_holds(seed: int) -> None:
    rng = np.random.default_rng(seed)
    many = seed % 2 == 1
    codes, plain = Codes(), []
    for _ in range(1500):
        roll = rng.random()
        if roll < 0.3:
            value = _value(rng, many)
            codes.append(value)
            plain.append(value)
        elif roll < 0.45:
            values = [_value(rng, many) for _ in range(int(rng.integers(0, 40)))]
            if rng.random() < 0.5:
                values = [v for v in values if v is None or type(v) is str]  # the fast way
            codes.extend(iter(values))
            plain.extend(values)
        elif roll < 0.55:
            n = int(rng.integers(0, 30))
            codes.pad(n)
            plain.extend([None] * n)
        elif plain:
            row = int(rng.integers(-len(plain), len(plain)))
            if roll < 0.7:
                assert typed([codes[row]]) == typed([plain[row]])
            elif roll < 0.85:  # a label for a row that may have one already
                value = _value(rng, many)
                codes.fill(row % len(plain), value)
                if plain[row] is None:
                    plain[row] = value
            else:
                value = _value(rng, many)
                codes[row] = value
                plain[row] = value
        assert len(codes) == len(plain)
    assert typed(codes.tolist()) == typed(plain) == typed(list(codes))
    assert codes.count_none() == plain.count(None)
    assert all(a is b for a, b in zip(codes.tolist(), plain, strict=True) if type(a) is not str)
    assert len(codes.names) <= 255 and codes.codes.itemsize == 1
    if many:
        assert len(codes.names) == 255  # the table filled: the rest kept as they are


def test_equal_strings_are_coded_once() -> None:
    values = [c[:1] + c[1:] for c in ["yes", "no"] * 500]  # a string object each
    codes = Codes.of(values)
    assert codes.tolist() == values and len({id(v) for v in codes}) == 2
    assert codes.other == {} and len(codes.codes) == 1000


@pytest.mark.parametrize("share", [0.0, 0.01, 0.1, 0.2, 0.9, 1.0])
def test_sparse_holds_what_a_list_holds(share: float) -> None:
    rng = np.random.default_rng(int(share * 100))
    sparse, plain = Sparse(), []
    for row in range(3000):
        value = {"yes": float(rng.random())} if rng.random() < share else None
        if value is not None:
            sparse.put(row, value)
        plain.append(value)
        if row % 97 == 0:
            assert sparse.values(row + 1) == plain
    n = len(plain) + 5  # rows past the last put are None
    plain += [None] * 5
    got = sparse.values(n)
    assert got == plain and all(a is b for a, b in zip(got, plain, strict=True))
    assert sparse.count() == n - plain.count(None)
    assert sparse.present() == [v for v in plain if v is not None]
    assert (sparse.dense is None) == (share <= 0.1)  # a list once dense, not before


def _rows(rng: np.random.Generator, n: int, sealed: bool) -> Rows:
    rows = Rows()
    for i in range(n):
        rows.ids.append(None if rng.random() < 0.05 else f"r{i}")
        rows.predicted.append(["yes", "no", "maybe"][int(rng.integers(3))])
        rows.score.append(float(rng.random()) if rng.random() < 0.9 else math.nan)
        if rng.random() < 0.3:
            p = float(rng.random())
            rows.probabilities.put(i, {"yes": p, "no": 1 - p, "odd": [math.inf, -0.0][i % 2]})
        rows.truth.append(_value(rng, many=True) if rng.random() < 0.5 else None)
    if sealed:
        rows.end_ts = 1.6e9 + n
        rows.estimate = {"accuracy": 0.5, "f1": math.nan}
        rows.seal()
    return rows


def _json_safe(rows: Rows) -> None:
    """Labels JSON carries as they are (no str subclass, bytes or tuple)."""
    for row, value in enumerate(rows.truth.tolist()):
        if isinstance(value, (Label, bytes, tuple)):
            rows.truth[row] = "yes"


@pytest.mark.parametrize("sealed", [False, True])
@pytest.mark.parametrize("seed", range(6))
def test_rows_dump_load_and_dump_the_same(seed: int, sealed: bool) -> None:
    rows = _rows(np.random.default_rng(seed), 700, sealed)
    _json_safe(rows)
    first = rows.dump()
    text = json.dumps(first)
    loaded = Rows.load(json.loads(text))
    if sealed:
        loaded.seal()
    again = loaded.dump()
    assert json.dumps(again) == text
    assert typed(again["truth"]) == typed(first["truth"]) == typed(json.loads(text)["truth"])
    assert typed(loaded.classes()) == typed(rows.classes())
    assert loaded.probability_rows() == rows.probability_rows()


def test_rows_written_as_lists_load() -> None:
    """A state as every version wrote it (plain lists): loaded and dumped, the same."""
    score = array("d", [0.9, 0.8, math.nan])
    state = Rows(["a", None, "c"], ["yes", "no", "yes"], score).dump()
    state["probabilities"] = [None, [["yes", 0.25], ["no", "nan"]], None]
    state["truth"] = [True, None, 1.0]
    loaded = Rows.load(json.loads(json.dumps(state)))
    assert json.dumps(loaded.dump()) == json.dumps(state)
    assert typed(loaded.truth.tolist()) == typed([True, None, 1.0])
    p = loaded.probability_rows()[1]
    assert p is not None and list(p) == ["yes", "no"] and p["yes"] == 0.25 and math.isnan(p["no"])
