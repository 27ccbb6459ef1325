"""Turn one model's parsed events into the columns the detectors take.

This runs for every event and feature, so it is written for speed: events are
grouped by their feature names (in a stable schema, one group), each group is
transposed at C speed with ``zip``, and each column becomes a numpy array in
one call. Only a column that mixes numbers and labels is split value by value.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from detectors.base import RowBatch
from monitor.events import Event

_BOOL_LABELS = {True: "true", False: "false"}
_NONE = type(None)
_NUMERIC_TYPES = frozenset({int, float, _NONE})
_LABEL_TYPES = frozenset({str, _NONE})
_BOOL_TYPES = frozenset({str, bool, _NONE})


class _Columns:
    """Feature columns of length ``n``, filled group by group."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.numeric: dict[str, np.ndarray] = {}
        self.categorical: dict[str, np.ndarray] = {}

    def add(self, name: str, rows: list[int] | None, values: tuple[object, ...]) -> None:
        """One group's values of a feature; ``rows`` None means every event, in order."""
        types = set(map(type, values))
        if types == {_NONE}:
            return  # missing everywhere in the group: nothing says what kind it is
        if types <= _NUMERIC_TYPES:
            # None becomes NaN in the conversion: missing, as it should.
            self._put(self.numeric, name, rows, np.array(values, dtype=np.float64), np.nan)
        elif types <= _LABEL_TYPES:
            self._put(self.categorical, name, rows, _objects(values), None)
        elif types <= _BOOL_TYPES:
            labels = tuple(_BOOL_LABELS[v] if type(v) is bool else v for v in values)
            self._put(self.categorical, name, rows, _objects(labels), None)
        else:
            self._add_mixed(name, rows, values)

    def _add_mixed(self, name: str, rows: list[int] | None, values: tuple[object, ...]) -> None:
        """A feature that is a number in some events and a label in others: split by value."""
        index = range(len(values)) if rows is None else rows
        numbers = [(i, v) for i, v in zip(index, values, strict=True) if type(v) in (int, float)]
        labels = [
            (i, _BOOL_LABELS[v] if type(v) is bool else v)
            for i, v in zip(index, values, strict=True)
            if type(v) in (str, bool)
        ]
        if numbers:
            rows_n, vals_n = zip(*numbers, strict=True)
            self._put(self.numeric, name, list(rows_n), np.array(vals_n, dtype=np.float64), np.nan)
        if labels:
            rows_l, vals_l = zip(*labels, strict=True)
            self._put(self.categorical, name, list(rows_l), _objects(vals_l), None)

    def _put(
        self,
        columns: dict[str, np.ndarray],
        name: str,
        rows: list[int] | None,
        values: np.ndarray,
        missing: object,
    ) -> None:
        if rows is None and name not in columns:
            columns[name] = values
            return
        column = columns.get(name)
        if column is None:
            column = np.full(self.n, missing, dtype=values.dtype)
            columns[name] = column
        column[slice(None) if rows is None else rows] = values


def row_batch(events: Sequence[Event], seq: Sequence[int] | None = None) -> RowBatch:
    """Columns of prediction/input events, in stream order.

    Numbers become numeric features, strings and bools categorical ones; a
    feature that is None, or absent from an event that has features, is missing.
    ``seq`` gives the events' positions in the model's stream, for the label join.
    """
    n = len(events)
    scores: tuple[list[int], list[float]] = ([], [])
    labels: tuple[list[int], list[str]] = ([], [])
    values: tuple[list[int], list[float]] = ([], [])
    clients: tuple[list[int], list[str]] = ([], [])
    ids: tuple[list[int], list[str]] = ([], [])
    without_features: list[int] = []
    schemas: dict[tuple[str, ...], list[int]] = {}
    for i, event in enumerate(events):
        features = event.features
        if features is None:
            without_features.append(i)
        else:
            names = tuple(features)
            group = schemas.get(names)
            if group is None:
                schemas[names] = [i]
            else:
                group.append(i)
        if event.score is not None:
            scores[0].append(i)
            scores[1].append(event.score)
        out = event.prediction
        if out is not None:
            kind = type(out)
            if kind is str or kind is bool:
                labels[0].append(i)
                labels[1].append(_BOOL_LABELS[out] if kind is bool else out)  # type: ignore[index, arg-type]
            else:
                values[0].append(i)
                values[1].append(out)  # type: ignore[arg-type]
        if event.client is not None:
            clients[0].append(i)
            clients[1].append(event.client)
        if event.id is not None:
            ids[0].append(i)
            ids[1].append(event.id)
    columns = _Columns(n)
    for names, rows in schemas.items():
        table = [tuple(events[i].features.values()) for i in rows]  # type: ignore[union-attr]
        whole = None if len(rows) == n else rows
        for name, column in zip(names, zip(*table, strict=True), strict=True):
            columns.add(name, whole, column)
    has_features = None
    if without_features:
        has_features = np.ones(n, dtype=bool)
        has_features[without_features] = False
    return RowBatch(
        ts=np.fromiter((e.ts for e in events), dtype=np.float64, count=n),
        numeric=columns.numeric,
        categorical=columns.categorical,
        score=_scatter_floats(n, scores) if scores[0] else None,
        prediction=_scatter_objects(n, labels) if labels[0] else None,
        prediction_value=_scatter_floats(n, values) if values[0] else None,
        client=_scatter_objects(n, clients) if clients[0] else None,
        has_features=has_features,
        ids=_scatter_objects(n, ids) if ids[0] else None,
        seq=None if seq is None else np.array(seq, dtype=np.int64),
    )


def _objects(values: tuple[object, ...]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _scatter_floats(n: int, column: tuple[list[int], list[float]]) -> np.ndarray:
    index, values = column
    if len(index) == n:
        return np.array(values, dtype=np.float64)
    out = np.full(n, np.nan)
    out[index] = values
    return out


def _scatter_objects(n: int, column: tuple[list[int], list[str]]) -> np.ndarray:
    index, values = column
    out = np.full(n, None, dtype=object)
    out[index] = values
    return out
