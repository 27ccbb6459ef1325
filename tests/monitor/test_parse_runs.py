"""The fetch process's parse, checked by column, makes exactly what the record-by-record
parse and the grouping make (``parse_records`` then ``group_runs``), whatever the records."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any, NamedTuple

import orjson
import pytest

from monitor.ingest import parse_runs as parse_runs_module
from monitor.ingest.events import MAX_NAME_CHARS, TimeBounds
from monitor.ingest.fetched import Fetched, parse_records
from monitor.ingest.parse_runs import parse_runs
from monitor.ingest.row_runs import RowRun, group_runs
from tests.monitor.exact_support import same

START = 1_790_000_000.0  # 2026-09-21: in the past, as replayed events are
BOUNDS = TimeBounds(START - 10**6, START + 10**6)
MODELS = frozenset({"fraud", "churn"})
LONG = "x" * (MAX_NAME_CHARS + 1)


class Record(NamedTuple):
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None


def _usual(rng: random.Random, i: int, wide: bool) -> dict[str, Any]:
    features: dict[str, Any] = {
        "amount": rng.choice([rng.gauss(0, 1), 12.5, None]),
        "age": rng.choice([rng.randint(0, 90), 33.0, None]),
        "country": rng.choice(["fr", "de", "", None]),
        "flag": rng.choice([True, False, "true", None]),
    }
    if wide:  # a record over MAX_NAME_CHARS bytes, its names all short enough
        features.update({f"extra_feature_{j}": rng.random() for j in range(40)})
    record: dict[str, Any] = {
        "model": rng.choice(["fraud", "churn"]),
        "ts": START + i + rng.random(),
        "id": f"req-{i}",
        "client": rng.choice(["c1", "c2", None]),
        "features": features,
        "prediction": rng.choice(["yes", "no", 1, 0.5, True, None]),
        "score": rng.choice([rng.random(), None]),
    }
    if rng.random() < 0.2:
        record["type"] = "input"
    if rng.random() < 0.2:
        record["version"] = "v2"
    if rng.random() < 0.1:
        del record["ts"]  # the record's Kafka timestamp stands in
    return record


# Each makes a usual record something else: valid or not, a row or not.
CHANGES: list[Callable[[dict[str, Any]], object]] = [
    lambda r: r.update(ts=int(r.get("ts", START))),
    lambda r: r.update(ts="2026-09-21T10:00:00Z"),
    lambda r: r.update(ts=START + 10**7),
    lambda r: r.update(ts=-1e308),
    lambda r: r.update(ts=None),
    lambda r: r.update(id=7),
    lambda r: r.update(client=["c"]),
    lambda r: r.update(version=LONG),
    lambda r: r.update(id=LONG),
    lambda r: r.update(score=1),
    lambda r: r.update(score="0.5"),
    lambda r: r.update(prediction={"a": 1}),
    lambda r: r.update(prediction=LONG),
    lambda r: r.update(prediction=2**70),
    lambda r: r.update(features=["amount", "age", "country", "flag"]),
    lambda r: r.update(features=None),
    lambda r: r.update(features={}),
    lambda r: r["features"].update(amount=2**60),
    lambda r: r["features"].update(amount=2**70),
    lambda r: r["features"].update(amount=[1.0]),
    lambda r: r["features"].update(country=LONG),
    lambda r: r["features"].update({LONG: 1.0}),
    lambda r: r["features"].update(extra=1.5),
    lambda r: r["features"].pop("age"),
    lambda r: r.update(probabilities={"yes": 0.5}),
    lambda r: r.update(unknown_field=1),
    lambda r: r.update(type="label", label="yes"),
    lambda r: r.update(type="metric", name="latency", value=3.5),
    lambda r: r.update(type="bogus"),
    lambda r: r.update(model="other"),
    lambda r: r.update(model=""),
    lambda r: r.update(model=["fraud"]),
]


def _dumps(record: dict[str, Any]) -> bytes:
    """JSON of ``record``; the standard library's for integers orjson will not write."""
    try:
        return orjson.dumps(record)
    except TypeError:
        return json.dumps(record).encode()


def _records(rng: random.Random, n: int, hostile: float) -> list[Record]:
    wide = rng.random() < 0.3
    out = []
    for i in range(n):
        pick = rng.random()
        if pick < hostile * 0.05:
            value: bytes | None = rng.choice([b"{not json", b"\xff\xfe", b"[1, 2]", b"null", None])
        else:
            record = _usual(rng, i, wide)
            if pick < hostile:
                rng.choice(CHANGES)(record)
            value = _dumps(record)
        out.append(Record(100 + i, int((START + i) * 1000), b"k", value))
    return out


def _expected(records: list[Record], min_run: int) -> Fetched:
    fetched = parse_records(3, "events", 1, records, BOUNDS, 999)
    fetched.parsed = group_runs(fetched.parsed, MODELS, min_run)
    return fetched


@pytest.mark.parametrize("seed", range(60))
def test_the_columns_check_makes_what_the_rows_make(seed: int) -> None:
    rng = random.Random(seed)
    hostile = rng.choice([0.0, 0.002, 0.02, 0.2])
    for _ in range(4):
        records = _records(rng, rng.randint(1, 600), hostile)
        min_run = rng.choice([1, 2, 16])
        got = parse_runs(3, "events", 1, records, BOUNDS, 999, MODELS, min_run)
        assert same(got, _expected(records, min_run))


def test_every_change_alone_makes_what_the_rows_make() -> None:
    rng = random.Random(5)
    for k, change in enumerate(CHANGES):
        for wide in (False, True):
            records = []
            for i in range(200):
                record = _usual(rng, i, wide)
                if i == 120:
                    change(record)
                records.append(Record(i, int((START + i) * 1000), None, _dumps(record)))
            got = parse_runs(3, "events", 1, records, BOUNDS, 999, MODELS, 16)
            assert same(got, _expected(records, 16)), (k, wide)


def test_usual_records_need_no_record_by_record_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    """Usual rows, and a run the columns' check refuses but whose rows are usual (a time
    given as an integer, checked one by one), never send the poll back to the
    record-by-record parse."""
    rng = random.Random(9)
    records = _records(rng, 1000, 0.0)
    value = records[7].value
    assert value is not None
    records[7] = records[7]._replace(value=_dumps({**orjson.loads(value), "ts": int(START)}))
    want = _expected(records, 16)

    def refused(*args: object) -> Fetched:
        raise AssertionError("parsed again record by record")

    monkeypatch.setattr(parse_runs_module, "parse_records", refused)
    got = parse_runs(3, "events", 1, records, BOUNDS, 999, MODELS, 16)
    assert same(got, want)
    assert sum(isinstance(item, RowRun) for item in got.parsed) >= 2
