"""Parsing CONTRACT §1 records: typed events, or a reason; never an exception."""

from __future__ import annotations

import dataclasses
import json
import math

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.ingest import events
from monitor.ingest.events import MAX_NAME_CHARS, Event, Malformed, TimeBounds, parse_event


def test_contract_examples_parse() -> None:
    lines = [
        b'{"type": "prediction", "id": "req-81f2", "ts": "2026-11-26T07:44:15.123Z",'
        b' "model": "fraud", "version": "3.2.1", "client": "api-key-17",'
        b' "features": {"amount": 12.5, "country": "DE", "is_new": true},'
        b' "prediction": "fraud", "score": 0.93, "probabilities": {"fraud": 0.93, "ok": 0.07}}',
        b'{"type": "input", "id": "req-81f3", "model": "fraud", "client": "api-key-17",'
        b' "ts": 1764143055.1, "features": {"amount": 980.0, "country": "NG", "is_new": false}}',
        b'{"type": "label", "id": "req-81f2", "model": "fraud", "ts": 1764143055.5, "label": "ok"}',
        b'{"type": "metric", "model": "fraud", "name": "latency_ms", "value": 41.7,'
        b' "ts": 1764143055.5}',
    ]
    events = [parse_event(line) for line in lines]
    assert all(isinstance(e, Event) for e in events), events
    first = events[0]
    assert isinstance(first, Event)
    assert first.ts == 1795679055.123
    assert first.features == {"amount": 12.5, "country": "DE", "is_new": True}
    assert [e.type for e in events if isinstance(e, Event)] == [
        "prediction",
        "input",
        "label",
        "metric",
    ]


def test_missing_ts_takes_the_default_and_type_defaults_to_prediction() -> None:
    event = parse_event(b'{"model": "m", "score": 0.2}', default_ts=12.0)
    assert isinstance(event, Event)
    assert (event.ts, event.type) == (12.0, "prediction")


def test_nan_and_infinity_are_data() -> None:
    event = parse_event(b'{"model": "m", "ts": 1, "score": NaN, "features": {"x": Infinity}}')
    assert isinstance(event, Event)
    assert event.score is not None and math.isnan(event.score)
    assert event.features == {"x": math.inf}


def test_each_malformation_has_a_reason() -> None:
    cases = {
        b"{oops": "invalid JSON",
        b"[1, 2]": "not a JSON object",
        b'{"ts": 1}': "missing 'model'",
        b'{"model": "", "ts": 1}': "'model' must be a non-empty string",
        b'{"model": "m", "ts": 1, "type": "click"}': "'type' must be one of",
        b'{"model": "m", "ts": "noon"}': "not an RFC 3339 time",
        b'{"model": "m", "ts": "2026-11-26T07:44:15"}': "no time zone",
        b'{"model": "m", "ts": 1, "features": {"a": [1]}}': "feature 'a' must be",
        b'{"model": "m", "ts": 1, "score": "high"}': "'score' must be a number",
        b'{"model": "m", "ts": 1, "type": "metric", "value": 3}': "needs a non-empty string 'name'",
        b'{"model": "m", "ts": 1, "type": "label", "label": 1}': "needs the 'id'",
        b'{"model": "m"}': "no 'ts'",
    }
    for raw, reason in cases.items():
        result = parse_event(raw)
        assert isinstance(result, Malformed), raw
        assert reason in result.reason, (raw, result.reason)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_raise(raw: bytes) -> None:
    assert isinstance(parse_event(raw, default_ts=0.0), Event | Malformed)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=500, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "type",
                "model",
                "ts",
                "id",
                "client",
                "features",
                "prediction",
                "score",
                "probabilities",
                "label",
                "name",
                "value",
                "extra",
            ]
        ),
        json_values,
    )
)
def test_random_json_objects_never_raise(obj: dict[str, object]) -> None:
    # The standard library writes what orjson refuses (NaN, integers beyond 64 bits).
    raw = json.dumps(obj).encode()
    result = parse_event(raw, default_ts=1.0)
    assert isinstance(result, Event | Malformed)
    if isinstance(result, Event):
        assert isinstance(result.model, str) and result.model
        assert math.isfinite(result.ts)
        # Whatever passes can be written to the store and the logs: valid Unicode only.
        orjson.dumps(dataclasses.asdict(result))


def test_text_that_is_not_unicode_is_quarantined_with_the_true_reason() -> None:
    surrogates = {
        b'{"model": "m", "ts": 1, "features": {"\\ud800": 1.0}}': "\\ud800",
        b'{"model": "m", "ts": 1, "features": {"c": "a\\udc80"}}': "\\udc80",
        b'{"model": "m", "ts": 1, "client": "\\udfff"}': "\\udfff",
        b'{"model": "m", "ts": 1, "type": "metric", "name": "\\ud800", "value": 1}': "\\ud800",
        b'{"model": "m", "ts": 1, "prediction": "\\ud800"}': "\\ud800",
        b'{"model": "\\ud800", "ts": 1}': "\\ud800",
    }
    for raw, shown in surrogates.items():
        result = parse_event(raw)
        assert isinstance(result, Malformed), raw
        assert f"lone surrogate ({shown})" in result.reason, result.reason
    pair = parse_event(b'{"model": "m", "ts": 1, "client": "\\ud83d\\ude00", "score": NaN}')
    assert isinstance(pair, Event) and pair.client == "\U0001f600"
    for raw in (b'{"model": "m\xff", "ts": 1}', b'{"model": "m", "ts": 1, "x": "\xed\xa0\x80"}'):
        result = parse_event(raw)
        assert isinstance(result, Malformed) and result.reason.startswith("not valid UTF-8"), raw


def test_event_times_outside_the_bounds_are_quarantined() -> None:
    bounds = TimeBounds(946_684_800.0, 1_800_000_000.0)
    for ts in (b"1e18", b"-1e18", b"0", b"1800000001", b'"9999-12-31T23:59:59Z"'):
        result = parse_event(b'{"model": "m", "ts": ' + ts + b"}", bounds=bounds)
        assert isinstance(result, Malformed) and "outside the accepted event times" in result.reason
    far = parse_event(b'{"model": "m", "ts": "0001-01-01T00:00:00+14:00"}')
    assert isinstance(far, Malformed)
    assert isinstance(parse_event(b'{"model": "m", "ts": 1800000000}', bounds=bounds), Event)
    # A record timestamp out of bounds is refused too, when the record has no time.
    late = parse_event(b'{"model": "m"}', default_ts=1e18, bounds=bounds)
    assert isinstance(late, Malformed) and "record timestamp" in late.reason


def test_names_longer_than_the_limit_are_quarantined() -> None:
    long = "x" * (MAX_NAME_CHARS + 1)
    for obj in (
        {"model": long},
        {"model": "m", "features": {long: 1}},
        {"model": "m", "features": {long: 1.0}},
        {"model": "m", "version": long},
        {"model": "m", "prediction": long},
        {"model": "m", "features": {"a": long}},
        {"model": "m", "client": long},
        {"model": "m", "id": long},
        {"model": "m", "type": "metric", "name": long, "value": 1},
        {"model": "m", "probabilities": {long: 1.0}},
    ):
        result = parse_event(orjson.dumps({**obj, "ts": 1}))
        assert isinstance(result, Malformed) and "longer than" in result.reason, obj
    ok = parse_event(orjson.dumps({"model": "m", "ts": 1, "client": "x" * MAX_NAME_CHARS}))
    assert isinstance(ok, Event)


_names = st.sampled_from(["a", "b", "é", "x" * MAX_NAME_CHARS, "y" * (MAX_NAME_CHARS + 1)])
_feature_values = st.none() | st.booleans() | st.integers() | st.floats() | _names


@settings(max_examples=400, deadline=None)
@given(
    features=st.none() | st.dictionaries(_names, _feature_values, max_size=4),
    texts=st.dictionaries(
        st.sampled_from(["id", "client", "version", "prediction"]),
        st.none() | st.integers(min_value=-(2**70), max_value=2**70) | _names,
    ),
    score=st.none() | st.floats() | st.integers() | st.booleans(),
    padding=st.sampled_from([0, 2000]),
)
def test_the_fast_path_for_predictions_agrees_with_the_checks_by_key(
    features: dict[str, object] | None, texts: dict[str, object], score: object, padding: int
) -> None:
    """Short and long records, valid or not: the same event, or the same reason."""
    obj: dict[str, object] = {"model": "m", "ts": 1.5, **texts, "score": score}
    if features is not None:
        obj["features"] = features
    if padding:
        obj["unknown"] = "p" * padding  # a long record: the length checks are not skipped
    raw = json.dumps(obj).encode()
    result = parse_event(raw)
    try:
        decoded = events._decode(raw)  # as parse_event decodes
        expected: Event | Malformed = events._check_by_keys(decoded, "prediction", "m", 1.5)
    except events._Invalid as exc:
        expected = Malformed(str(exc))
    assert type(result) is type(expected)
    if isinstance(result, Malformed):
        assert result == expected
    else:
        # repr: NaN is data, and a NaN equals no other
        assert repr(dataclasses.asdict(result)) == repr(dataclasses.asdict(expected))
