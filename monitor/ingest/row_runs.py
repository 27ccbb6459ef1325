"""Runs of one model's usual rows, turned into columns by the fetch process.

The consume loop's core is the daemon's bottleneck, and a third of what it
spent per event went to taking rows apart: unpickling a feature dict per event,
and transposing the buffered rows into the detectors' columns (``rows_batch``).
The fetch process has a core of its own, so it does the transposition: each
model's usual rows of a batch become one ``RowRun``, its numeric features as
float64 arrays (a copy of memory to unpickle, not an object per value).

Exactness comes first. A run gives its rows back exactly as they were parsed
(``RowRun.rows``: the usual row's feature values are numbers, labels, bools and
None, and the columns keep where the Nones and bools were), so wherever the
loop cannot use the columns as they are (a feature outside the model's filter,
a ``models[].categorical`` feature, a micro-batch mixing runs with rows or with
another schema), it takes the rows back and the path it always took.

Grouping a batch's rows by model keeps each model's own order, and every event
of another kind stays in place: one of a model (a label, a metric) first hands
over the runs begun up to that model's, and a malformed record every run.
Records of models outside the config are never grouped: their names are
counted in the order they come. So each model sees the events it saw before,
in the order it saw them.

This module is imported by the fetch process: numpy and the event types only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import TypeVar

import numpy as np

from monitor.ingest.events import (
    FEATURE_TYPES,
    MAX_NAME_CHARS,
    Event,
    Malformed,
    Row,
    TimeBounds,
    is_text,
)

T = TypeVar("T")
# Fewer rows than this stay rows: a run's fixed cost would outweigh what it saves.
MIN_RUN = 16
_NONE = type(None)
_NUMERIC = frozenset({float, int, _NONE})
# An integer goes into a float64 column and comes back by ``int``: exactly, within this.
_EXACT_INT = 2**53
_LABELS = frozenset({str, _NONE})
_BOOLS = frozenset({str, bool, _NONE})
_BOOL_LABELS: dict[object, str] = {True: "true", False: "false"}
_FLOATS = frozenset({float})
_DICTS = frozenset({dict})
_SCORES = frozenset({float, _NONE})
_LABEL_BOOLS = {"true": True, "false": False}


@dataclass(slots=True)
class RowRun:
    """``n`` usual rows of ``model`` in stream order, as columns.

    ``keys`` is the feature names every row has, in the same order; ``numeric``
    holds each feature whose values are numbers (None as NaN, not yet bounded
    by ``measured``), ``categorical`` each whose values are labels (bools as
    "true" and "false"); a feature that is None in every row is in neither, as
    ``rows_batch`` leaves it out.
    """

    model: str
    n: int
    ts: list[float]
    ids: list[str | None]
    clients: list[str | None]
    predictions: list[object]
    scores: list[float | None]
    keys: tuple[str, ...]
    numeric: dict[str, np.ndarray]
    categorical: dict[str, np.ndarray]
    # Where a column's value is None, for the columns with one: a slice of the run where
    # a feature is None throughout has no column, as rows_batch has none for its rows.
    nones: dict[str, np.ndarray]
    bools: dict[str, np.ndarray]  # where a labels column's value was a bool
    ints: dict[str, np.ndarray]  # where a numbers column's value was an integer
    kinds: list[str]  # "prediction" or "input"
    versions: list[str | None]

    def rows(self, start: int = 0, end: int | None = None) -> list[Row]:
        """The run's rows ``start:end`` exactly as parsed: the same values of the same
        types, the features in the same order (the slow path)."""
        end = self.n if end is None else end
        count = end - start
        columns = []
        for name in self.keys:
            column = self.numeric.get(name)
            if column is None:
                column = self.categorical.get(name)
            values = [None] * count if column is None else column[start:end].tolist()
            nones = self.nones.get(name)
            if nones is not None and column is not None:
                for i in np.flatnonzero(nones[start:end]).tolist():
                    values[i] = None
            bools = self.bools.get(name)
            if bools is not None:
                for i in np.flatnonzero(bools[start:end]).tolist():
                    values[i] = _LABEL_BOOLS[values[i]]  # type: ignore[index]
            ints = self.ints.get(name)
            if ints is not None:
                for i in np.flatnonzero(ints[start:end]).tolist():
                    values[i] = int(values[i])  # type: ignore[arg-type]
            columns.append(values)
        keys = self.keys
        features = (
            [dict(zip(keys, values, strict=True)) for values in zip(*columns, strict=True)]
            if keys
            else [{} for _ in range(count)]
        )
        return list(
            zip(
                repeat(self.model, count),
                self.ts[start:end],
                self.ids[start:end],
                self.clients[start:end],
                features,
                self.predictions[start:end],
                self.scores[start:end],
                self.kinds[start:end],
                self.versions[start:end],
                strict=True,
            )
        )


Item = Row | Event | Malformed | RowRun


def group_runs(
    parsed: Sequence[Item], models: frozenset[str], min_run: int = MIN_RUN
) -> list[Item]:
    """``parsed`` with the usual rows of each of ``models`` (the config's) gathered into
    ``RowRun``s where they can be.

    A model's rows wait until an event of that model, a malformed record, or the end
    comes; then the runs begun up to that point are handed over in the order they
    began. Everything of a model outside ``models`` stays in place: such events are
    counted by name, in the order the names come. Rows that cannot make a run (a
    feature that is a number in one event and a label in another, another schema) are
    handed over as rows.
    """
    out: list[Item] = []
    waiting: dict[str, list[Row]] = {}  # in the order their first rows came
    for item in parsed:
        if type(item) is tuple and item[0] in models:
            rows = waiting.get(item[0])
            if rows is None:
                waiting[item[0]] = [item]
            else:
                rows.append(item)
            continue
        if type(item) is tuple or type(item) is Event:
            model = item[0] if type(item) is tuple else item.model  # type: ignore[union-attr]
            while model in waiting:  # those begun up to this model's run, the last
                name = next(iter(waiting))
                _hand_over(out, waiting.pop(name), min_run)
        else:  # a malformed record: every run first
            for rows in waiting.values():
                _hand_over(out, rows, min_run)
            waiting.clear()
        out.append(item)
    for rows in waiting.values():
        _hand_over(out, rows, min_run)
    return out


def _hand_over(out: list[Item], rows: list[Row], min_run: int) -> None:
    run = None if len(rows) < min_run else make_run(rows)
    if run is None:
        out.extend(rows)
    else:
        out.append(run)


def make_run(
    rows: list[Row], unchecked: TimeBounds | None = None, long: bool = True
) -> RowRun | None:
    """The rows of one model as a run; None if they do not all have the first row's
    feature names in its order, or a feature's values are not all numbers or all labels.

    ``unchecked``: the rows are as decoded, not yet checked one by one (``parse_runs``),
    and these are the event times accepted. Every field is then checked by column
    against what ``parse_record`` takes as it is, and None means that some row may not
    be a usual row at all. ``long``: whether a record was longer than ``MAX_NAME_CHARS``
    bytes; if none was, no text can be longer than a name may be, and none is measured."""
    try:
        return _columns_of(rows, unchecked, long)
    except (OverflowError, ValueError):  # what the loop's own path reports, from the rows
        return None


def _columns_of(rows: list[Row], unchecked: TimeBounds | None, long: bool) -> RowRun | None:
    model, ts, ids, clients, features, predictions, scores, kinds, versions = zip(
        *rows, strict=True
    )
    first = features[0]
    if type(first) is not dict:
        return None
    keys = tuple(first)
    if not all(f is not None and tuple(f) == keys for f in features):
        return None
    if unchecked is not None and not _usual(
        unchecked, rows[0][0], keys, ts, features, ids, clients, versions, scores, predictions, long
    ):
        return None
    numeric: dict[str, np.ndarray] = {}
    categorical: dict[str, np.ndarray] = {}
    nones: dict[str, np.ndarray] = {}
    bools: dict[str, np.ndarray] = {}
    ints: dict[str, np.ndarray] = {}
    columns = zip(*map(dict.values, features), strict=True) if keys else ()
    for name, values in zip(keys, columns, strict=True):
        types = set(map(type, values))
        if types == {_NONE}:
            continue
        if _NONE in types:
            nones[name] = np.array([v is None for v in values], dtype=bool)
        if long and unchecked is not None and str in types and _longest(values) > MAX_NAME_CHARS:
            return None
        if types <= _NUMERIC:
            numeric[name] = np.array(values, dtype=np.float64)
            if int in types:
                if max(abs(v) for v in values if type(v) is int) > _EXACT_INT:
                    return None  # would not come back exactly: the rows stay rows
                ints[name] = np.array([type(v) is int for v in values], dtype=bool)
        elif types <= _LABELS:
            categorical[name] = objects(values)
        elif types <= _BOOLS:  # true and false are labels, as rows_batch makes them
            categorical[name] = objects(tuple(_BOOL_LABELS.get(v, v) for v in values))
            bools[name] = np.array([type(v) is bool for v in values], dtype=bool)
        else:
            return None
    return RowRun(
        model=model[0],
        n=len(rows),
        ts=list(ts),
        ids=list(ids),
        clients=shared(clients),
        predictions=shared(predictions),
        scores=list(scores),
        keys=keys,
        numeric=numeric,
        categorical=categorical,
        nones=nones,
        bools=bools,
        ints=ints,
        kinds=list(kinds),
        versions=list(versions),
    )


def _usual(
    bounds: TimeBounds,
    model: str,
    keys: tuple[str, ...],
    ts: tuple[object, ...],
    features: tuple[object, ...],
    ids: tuple[object, ...],
    clients: tuple[object, ...],
    versions: tuple[object, ...],
    scores: tuple[object, ...],
    predictions: tuple[object, ...],
    long: bool,
) -> bool:
    """Whether decoded rows hold what ``parse_record`` takes as it is, in C by column
    rather than a dozen tests a row: float times within ``bounds`` (NaN fails both
    comparisons), ids, callers and versions as text or none, float scores, plain
    predictions, features as objects, and no name or text longer than a name may be
    (measured only if a record was ``long``). The feature values are checked with their
    columns (``_columns_of``)."""
    if set(map(type, ts)) != _FLOATS or set(map(type, features)) != _DICTS:
        return False
    times = np.array(ts, dtype=np.float64)
    if not bool(((times >= bounds.earliest) & (times <= bounds.latest)).all()):
        return False
    texts = (ids, clients, versions)
    if not all(set(map(type, column)) <= _LABELS for column in texts):
        return False
    if not set(map(type, scores)) <= _SCORES or not set(map(type, predictions)) <= FEATURE_TYPES:
        return False
    if not long:
        return True
    longest = max(len(model), max(map(len, keys), default=0), _longest(predictions))
    return max(longest, *map(_longest, texts)) <= MAX_NAME_CHARS


def _longest(values: tuple[object, ...]) -> int:
    """The length of the longest text among ``values`` (0 without any)."""
    return max(map(len, filter(is_text, values)), default=0)  # type: ignore[arg-type]


def shared(values: tuple[T, ...]) -> list[T]:
    """``values`` with equal labels as one object, when all are labels or None: a model
    has a few classes and callers, and each row's own copy of their text would be
    pickled, unpickled and then kept (CBPE's windows, the caller windows hold 8,000 a
    model). Numbers are left as they are: ``True == 1 == 1.0`` as keys would merge them."""
    if not set(map(type, values)) <= _LABELS:
        return list(values)
    first = dict(zip(values, values, strict=True))  # each key's value: its last copy
    return list(map(first.__getitem__, values))


def objects(values: tuple[object, ...]) -> np.ndarray:
    """``values`` as a numpy array of objects (never a 2-d array of tuples or strings)."""
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out
