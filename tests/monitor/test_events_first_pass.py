"""The first pass of the parser agrees with the checks by rule.

``parse_record`` takes the usual prediction in one pass of exact-type tests and
hands anything else to ``parse_checked`` (each field by its rule). Whatever a
producer sends, both must give the same event, or the same reason.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.ingest import events
from monitor.ingest.events import (
    MAX_NAME_CHARS,
    Event,
    Malformed,
    Row,
    TimeBounds,
    event_row,
    parse_checked,
    parse_record,
)
from tests.hostile_records import hostile_lines

BOUNDS = TimeBounds(1.0e9, 2.0e9)


def _same(raw: bytes | str, default_ts: float | None = 1.5e9) -> Row | Event | Malformed:
    """Parse ``raw`` both ways; assert they agree; return what ``parse_record`` gave."""
    first = parse_record(raw, default_ts, BOUNDS)
    checked = parse_checked(raw, default_ts, BOUNDS)
    if isinstance(checked, Malformed) or isinstance(first, Malformed):
        assert first == checked, raw
        return first
    # A ``Row`` and an ``Event`` stand for the same thing when their fields agree;
    # repr, since NaN is data and equals no other NaN.
    as_row = [event_row(x) if isinstance(x, Event) else x for x in (first, checked)]
    assert repr(as_row[0]) == repr(as_row[1]), raw
    assert [type(v) for v in as_row[0]] == [type(v) for v in as_row[1]], raw
    if isinstance(checked, Event):
        assert (checked.probabilities is None and checked.unknown is None) or type(first) is Event
    return first


def _base_lines(n: int) -> list[bytes]:
    rng = np.random.default_rng(5)
    lines = []
    for i in range(n):
        features: dict[str, object] = {
            f"x{j}": round(float(v), 4) for j, v in enumerate(rng.normal(size=4))
        }
        features["c0"] = ["a", "b", "é", "\U0001f600"][i % 4]
        record = {
            "model": "fraud",
            "ts": 1.6e9 + i,
            "id": f"r{i}",
            "client": f"c{i % 7}",
            "features": features,
            "score": float(rng.random()),
            "prediction": ["yes", "no"][i % 2],
        }
        lines.append(json.dumps(record).encode())
    return lines


def test_the_usual_records_take_the_first_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = _base_lines(50)
    for line in lines:
        assert type(_same(line)) is tuple
    checked: list[bytes | str] = []
    monkeypatch.setattr(events, "parse_checked", lambda raw, *_: checked.append(raw))
    for line in lines:
        assert type(parse_record(line, None, BOUNDS)) is tuple
        assert type(parse_record(line, 1.5e9, BOUNDS)) is tuple
    parse_record(lines[0].replace(b'"fraud"', b'"fraud", "label": null'), None, BOUNDS)
    assert checked == [lines[0].replace(b'"fraud"', b'"fraud", "label": null')]


def test_hostile_records_agree() -> None:
    base = _base_lines(50)
    kinds = {tuple: 0, Event: 0, Malformed: 0}
    for line in hostile_lines(base, 3000, seed=23):
        kinds[type(_same(line))] += 1
        try:
            text = line.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            continue
        kinds[type(_same(text))] += 1
    assert all(kinds.values()), kinds  # each outcome was met


EDGES = [
    b'{"model":"m","score":1}',
    b'{"model":"m","score":-0}',
    b'{"model":"m","score":1e400}',
    b'{"model":"m","score":' + b"1" * 400 + b"}",
    b'{"model":"m","score":18446744073709551615}',
    b'{"model":"m","score":9223372036854775808}',
    b'{"model":"m","ts":1e400}',
    b'{"model":"m","ts":' + b"1" * 400 + b"}",
    b'{"model":"m","ts":1500000000}',
    b'{"model":"m","ts":"2017-07-14T02:40:00Z"}',
    b'{"model":"m","ts":"2017-07-14T02:40:00"}',
    b'{"model":"m","ts":true}',
    b'{"model":"m","ts":null}',
    b'{"model":"m","id":"\\ud800"}',
    b'{"model":"m","id":"\\udc00"}',
    b'{"model":"m","id":"\\ud800x"}',
    b'{"model":"m","id":"\\ud800\\udc00"}',
    b'{"model":"m","id":"\xff"}',
    b'{"model":"m","id":"\xed\xa0\x80"}',
    b'{"model":"m","id":"\\u0000"}',
    b'{"model":"m","id":3}',
    b'{"model":"m","id":3.0}',
    b'{"model":"m","client":null,"version":"1"}',
    b'{"model":"a","model":"b"}',
    b'{"model":"a","features":{"x":1,"y":2,"x":3}}',
    b'{"model":"a","features":{"x":9223372036854775807}}',
    b'{"model":"a","features":{"x":9223372036854775808}}',
    b'{"model":"a","features":{"x":9223372036854775809}}',
    b'{"model":"a","features":{"x":18446744073709551616}}',
    b'{"model":"a","features":{"x":-9223372036854775808}}',
    b'{"model":"a","features":{"x":-9223372036854775809}}',
    b'{"model":"a","prediction":18446744073709551617}',
    b'{"model":"a","prediction":9223372036854775808}',
    b'{"model":"a","prediction":-1}',
    b'{"model":"a","prediction":true,"score":0.5}',
    b'{"model":"a","features":{"x":1.0e-320,"y":-0.0,"z":1E5,"w":0.1,"v":2.2250738585072011e-308}}',
    b'{"model":"a","features":{"x":1.7976931348623157e308,"y":1.8e308}}',
    b'{"model":"a","features":{"x":123456789012345678901234567890.5,"y":0.30000000000000004441}}',
    b'{"model":"a","features":{"x":NaN}}',
    b'{"model":"a","features":{"x":Infinity}}',
    b'{"model":"a","features":{"x":[1]}}',
    b'{"model":"a","features":{"x":{"y":1}}}',
    b'{"model":"a","features":[]}',
    b'{"model":"a","features":{}}',
    b'{"model":"a","features":null}',
    b'\xef\xbb\xbf{"model":"a"}',
    b'{"model":"a"} ',
    b' {"model":"a"}\n',
    b'{"model":"a"} x',
    b'{"model":"a"',
    b'[{"model":"a"}]',
    b'"model"',
    b"",
    b'{"model":""}',
    b'{"model":null}',
    b'{"model":1}',
    b'{"ts":1.6e9}',
    b'{"model":"' + "é".encode() * MAX_NAME_CHARS + b'"}',
    b'{"model":"' + "é".encode() * (MAX_NAME_CHARS + 1) + b'"}',
    b'{"model":"' + "\U0001f600".encode() * MAX_NAME_CHARS + b'"}',
    b'{"model":"' + "\U0001f600".encode() * (MAX_NAME_CHARS + 1) + b'"}',
    b'{"model":"a","features":{"' + b"k" * MAX_NAME_CHARS + b'":1.0}}',
    b'{"model":"a","features":{"' + b"k" * (MAX_NAME_CHARS + 1) + b'":1.0}}',
    b'{"model":"a","features":{"k":"' + b"v" * (MAX_NAME_CHARS + 1) + b'"}}',
    b'{"model":"a","prediction":"' + b"v" * (MAX_NAME_CHARS + 1) + b'"}',
    b'{"model":"a","id":"' + b"v" * (MAX_NAME_CHARS + 1) + b'"}',
    b'{"model":"a","type":null}',
    b'{"model":"a","type":"input"}',
    b'{"model":"a","type":"label","id":"r","label":"x"}',
    b'{"model":"a","type":"metric","name":"n","value":1}',
    b'{"model":"a","type":"other"}',
    b'{"model":"a","label":null}',
    b'{"model":"a","probabilities":null}',
    b'{"model":"a","probabilities":{"x":0.5},"prediction":"x"}',
    b'{"model":"a","y_pred":"x"}',
    b'{"model":"a","score":true}',
    b'{"model":"a","score":"0.5"}',
]


def test_edge_records_agree() -> None:
    for raw in EDGES:
        _same(raw)
        _same(raw, default_ts=None)
        try:
            text = raw.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            continue
        _same(text)


def test_text_holding_lone_surrogates_agrees() -> None:
    for text in ('{"model":"m","id":"\ud800"}', '{"model":"m","features":{"\udc80":1.0}}'):
        assert isinstance(_same(text), Malformed)


_names = st.sampled_from(["a", "b", "é", "x" * MAX_NAME_CHARS, "y" * (MAX_NAME_CHARS + 1)])
_values = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _names
)


@settings(max_examples=500, deadline=None)
@given(
    features=st.none() | st.dictionaries(_names, _values, max_size=4),
    fields=st.dictionaries(
        st.sampled_from(["id", "client", "version", "prediction", "score", "ts", "type"]),
        _values | st.sampled_from(["prediction", "input", "label", "2017-07-14T02:40:00Z"]),
    ),
)
def test_any_prediction_agrees(
    features: dict[str, object] | None, fields: dict[str, object]
) -> None:
    obj: dict[str, object] = {"model": "m", **fields}
    if features is not None:
        obj["features"] = features
    _same(json.dumps(obj).encode())
    _same(json.dumps(obj).encode(), default_ts=None)
