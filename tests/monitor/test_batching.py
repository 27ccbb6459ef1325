"""Events to detector columns: the fast column builder agrees with the plain definition."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.ingest.batching import MAX_MAGNITUDE, row_batch
from monitor.ingest.events import Event

values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["a", "b", "DE", ""]),
)
features = st.one_of(
    st.none(), st.dictionaries(st.sampled_from(["x", "y", "z", "w"]), values, max_size=4)
)
events = st.lists(
    st.builds(
        Event,
        type=st.just("prediction"),
        model=st.just("m"),
        ts=st.floats(0, 1e9),
        features=features,
        score=st.one_of(st.none(), st.floats(0, 1), st.sampled_from([1e308, -1e101])),
        prediction=st.one_of(
            st.none(), st.booleans(), st.sampled_from(["ok", "fraud"]), st.floats(-5, 5)
        ),
        client=st.one_of(st.none(), st.sampled_from(["k1", "k2"])),
        id=st.one_of(st.none(), st.sampled_from(["r1", "r2", "r3"])),
    ),
    min_size=1,
    max_size=30,
)


def _plain(batch_events: list[Event]) -> tuple[dict[str, list[float]], dict[str, list[str | None]]]:
    """The definition: numbers are numeric, strings and bools labels, None or absent missing."""
    n = len(batch_events)
    numeric: dict[str, list[float]] = {}
    labels: dict[str, list[str | None]] = {}
    for i, event in enumerate(batch_events):
        for name, value in (event.features or {}).items():
            if value is None:
                continue
            if isinstance(value, bool | str):
                text = ("true" if value else "false") if isinstance(value, bool) else value
                labels.setdefault(name, [None] * n)[i] = text
            else:
                # Beyond the largest plausible measurement, a number counts as invalid.
                number = float(value) if abs(float(value)) <= MAX_MAGNITUDE else math.nan
                numeric.setdefault(name, [math.nan] * n)[i] = number
    return numeric, labels


@settings(max_examples=300, deadline=None)
@given(events)
def test_columns_match_the_definition(batch_events: list[Event]) -> None:
    batch = row_batch(batch_events)
    numeric, labels = _plain(batch_events)
    assert set(batch.numeric) == set(numeric)
    for name, expected in numeric.items():
        np.testing.assert_array_equal(batch.numeric[name], np.array(expected))
    assert set(batch.categorical) == set(labels)
    for name, shown in labels.items():
        assert batch.categorical[name].tolist() == shown
    without = [e.features is None for e in batch_events]
    if any(without):
        assert batch.has_features is not None
        assert batch.has_features.tolist() == [not w for w in without]
    else:
        assert batch.has_features is None
    assert batch.ts.tolist() == [e.ts for e in batch_events]


def _nan_list(values: list[float | None]) -> list[float]:
    return [math.nan if v is None or abs(v) > MAX_MAGNITUDE else float(v) for v in values]


@settings(max_examples=300, deadline=None)
@given(events)
def test_outputs_clients_and_ids_match_the_definition(batch_events: list[Event]) -> None:
    batch = row_batch(batch_events)
    scores = [e.score for e in batch_events]
    if all(s is None for s in scores):
        assert batch.score is None
    else:
        assert batch.score is not None
        np.testing.assert_array_equal(batch.score, np.array(_nan_list(scores)))
    outputs = [e.prediction for e in batch_events]
    labels = [
        ("true" if o else "false") if isinstance(o, bool) else o if isinstance(o, str) else None
        for o in outputs
    ]
    numbers = [
        float(o) if o is not None and not isinstance(o, bool | str) else None for o in outputs
    ]
    if all(v is None for v in labels):
        assert batch.prediction is None
    else:
        assert batch.prediction is not None and batch.prediction.tolist() == labels
    if all(v is None for v in numbers):
        assert batch.prediction_value is None
    else:
        assert batch.prediction_value is not None
        np.testing.assert_array_equal(batch.prediction_value, np.array(_nan_list(numbers)))
    for column, expected in (
        (batch.client, [e.client for e in batch_events]),
        (batch.ids, [e.id for e in batch_events]),
    ):
        if all(v is None for v in expected):
            assert column is None
        else:
            assert column is not None and column.tolist() == expected
