"""Turn one model's parsed events into the columns the detectors take.

This runs for every event and feature, so it is written for speed: events are
grouped by their feature names (in a stable schema, one group), each group is
transposed at C speed with ``zip``, and each column becomes a numpy array in
one call. Only a column that mixes numbers and labels is split value by value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from detectors.base import RowBatch
from monitor.ingest.events import Event, Row, Scalar, event_row
from monitor.ingest.row_runs import RowRun, objects

_BOOL_LABELS = {True: "true", False: "false"}
MAX_MAGNITUDE = 1e100
_NONE = type(None)
_NUMERIC_TYPES = frozenset({int, float, _NONE})
_LABEL_TYPES = frozenset({str, _NONE})
_BOOL_TYPES = frozenset({str, bool, _NONE})


class _Columns:
    """Feature columns of length ``n``, filled group by group; the features named in
    ``as_categories`` are categorical whatever their values look like."""

    def __init__(self, n: int, as_categories: frozenset[str] = frozenset()) -> None:
        self.n = n
        self.numeric: dict[str, np.ndarray] = {}
        self.categorical: dict[str, np.ndarray] = {}
        self.as_categories = as_categories

    def add(self, name: str, rows: list[int] | None, values: tuple[object, ...]) -> None:
        """One group's values of a feature; ``rows`` None means every event, in order."""
        types = set(map(type, values))
        if types == {_NONE}:
            return  # missing everywhere in the group: nothing says what kind it is
        if name in self.as_categories:
            self._put(self.categorical, name, rows, objects(tuple(map(category, values))), None)
        elif types <= _NUMERIC_TYPES:
            # None becomes NaN in the conversion: missing, as it should.
            self._put(self.numeric, name, rows, np.array(values, dtype=np.float64), np.nan)
        elif types <= _LABEL_TYPES:
            self._put(self.categorical, name, rows, objects(values), None)
        elif types <= _BOOL_TYPES:
            labels = tuple(_BOOL_LABELS[v] if type(v) is bool else v for v in values)
            self._put(self.categorical, name, rows, objects(labels), None)
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
            self._put(self.categorical, name, list(rows_l), objects(vals_l), None)

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


def row_batch(
    events: Sequence[Event],
    seq: Sequence[int] | None = None,
    as_categories: frozenset[str] = frozenset(),
) -> RowBatch:
    """Columns of prediction/input events, in stream order (see ``rows_batch``)."""
    return rows_batch([event_row(e) for e in events], seq, as_categories)


def rows_batch(
    rows: Sequence[Row],
    seq: Sequence[int] | None = None,
    as_categories: frozenset[str] = frozenset(),
) -> RowBatch:
    """Columns of prediction/input rows (``parse_record``'s), in stream order.

    Numbers become numeric features, strings and bools categorical ones, and so
    do the features named in ``as_categories`` (``models[].categorical``); a
    feature that is None, or absent from an event that has features, is missing.
    ``seq`` gives the events' positions in the model's stream, for the label join.
    The rows are transposed into fields in one C call (``zip``): this runs for
    every event.
    """
    n = len(rows)
    _, ts, ids, clients, features, predictions, scores, _, _ = zip(*rows, strict=True)
    columns = _Columns(n, as_categories)
    without_features: list[int] = []
    for names, group_rows in _schemas(features, without_features).items():
        whole = None if len(group_rows) == n else group_rows
        group = features if whole is None else [features[i] for i in group_rows]
        for name, column in zip(names, zip(*map(dict.values, group), strict=True), strict=True):
            columns.add(name, whole, column)
    has_features = None
    if without_features:
        has_features = np.ones(n, dtype=bool)
        has_features[without_features] = False
    fields = (ids, clients, predictions, scores)
    return _assembled(ts, columns.numeric, columns.categorical, fields, has_features, seq)


def _assembled(
    ts: Sequence[float],
    numeric: dict[str, np.ndarray],
    categorical: dict[str, np.ndarray],
    fields: tuple[Sequence[str | None], Sequence[str | None], Sequence[Any], Sequence[Any]],
    has_features: np.ndarray | None,
    seq: Sequence[int] | None,
) -> RowBatch:
    """The batch of the rows' columns and their ``fields`` (ids, clients, predictions and
    scores, in stream order): numbers beyond ``MAX_MAGNITUDE`` made NaN, and a field
    given by no row None."""
    ids, clients, predictions, scores = fields
    labels, values = _predictions(predictions)
    return RowBatch(
        ts=np.array(ts, dtype=np.float64),
        numeric={name: measured(column) for name, column in numeric.items()},
        categorical=categorical,
        score=None
        if scores.count(None) == len(scores)
        else measured(np.array(scores, dtype=np.float64)),
        prediction=labels,
        prediction_value=None if values is None else measured(values),
        client=_optional_objects(clients),
        has_features=has_features,
        ids=_optional_objects(ids),
        seq=None if seq is None else np.array(seq, dtype=np.int64),
    )


RunSlice = tuple[RowRun, int, int]  # rows start:end of a run


def runs_batch(
    slices: Sequence[RunSlice], seq: Sequence[int], as_categories: frozenset[str] = frozenset()
) -> RowBatch:
    """``rows_batch`` of the rows of ``slices``, in order, from the runs' columns.

    The same batch, value for value and in the same column order: runs of one
    schema concatenate their columns, a feature missing from a run's columns being
    None there. Anything else (runs of different schemas, a feature of
    ``as_categories``) goes through ``rows_batch`` on the runs' own rows.
    """
    keys = slices[0][0].keys
    if as_categories.intersection(keys) or any(run.keys != keys for run, _, _ in slices):
        rows = [row for run, start, end in slices for row in run.rows(start, end)]
        return rows_batch(rows, seq, as_categories)
    numeric: dict[str, np.ndarray] = {}
    categorical: dict[str, np.ndarray] = {}
    for name in keys:  # a feature in both (numbers in one run, labels in another) is in both
        column = _joined(slices, name, numeric=True)
        if column is not None:
            numeric[name] = column
        column = _joined(slices, name, numeric=False)
        if column is not None:
            categorical[name] = column
    ts: list[float] = []
    ids: list[str | None] = []
    clients: list[str | None] = []
    predictions: list[object] = []
    scores: list[float | None] = []
    for run, start, end in slices:
        ts += run.ts[start:end]
        ids += run.ids[start:end]
        clients += run.clients[start:end]
        predictions += run.predictions[start:end]
        scores += run.scores[start:end]
    return _assembled(ts, numeric, categorical, (ids, clients, predictions, scores), None, seq)


def _joined(slices: Sequence[RunSlice], name: str, numeric: bool) -> np.ndarray | None:
    """One feature's column over the slices (missing where a slice has none of it), or
    None if no slice has it of that kind: a slice where it is None throughout has none."""
    parts = []
    for run, start, end in slices:
        part = (run.numeric if numeric else run.categorical).get(name)
        nones = run.nones.get(name)
        if part is not None and nones is not None and nones[start:end].all():
            part = None
        parts.append(part)
    if all(part is None for part in parts):
        return None
    missing: object = np.nan if numeric else None
    dtype = np.float64 if numeric else object
    return np.concatenate(
        [
            np.full(end - start, missing, dtype=dtype) if part is None else part[start:end]
            for part, (_, start, end) in zip(parts, slices, strict=True)
        ]
    )


def category(value: object) -> str | None:
    """A feature value as a category label: ``3``, ``3.0`` and ``"3"`` are one
    category (what pandas writes for an integer column with gaps); NaN is missing."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return _BOOL_LABELS[value]
    if isinstance(value, float):
        if value != value:  # NaN
            return None
        if value.is_integer() and abs(value) < 2**63:
            return str(int(value))
    return str(value)


def measured(values: np.ndarray) -> np.ndarray:
    """``values`` with magnitudes beyond ``MAX_MAGNITUDE`` made NaN, in place.

    No measurement is that large; such a value is an overflow upstream or an
    attack (1e308 overflows every sum it enters), and counts as invalid, like an
    infinity. Sums of a million values below the limit stay finite.
    """
    with np.errstate(invalid="ignore"):
        values[np.abs(values) > MAX_MAGNITUDE] = np.nan
    return values


def _schemas(
    features: Sequence[dict[str, Scalar | None] | None], without: list[int]
) -> dict[tuple[str, ...], list[int]]:
    """Row numbers grouped by feature names in order; rows with no features go to ``without``."""
    first = features[0]
    if first is not None and None not in features:
        names = list(first)
        if all(list(f) == names for f in features):  # type: ignore[arg-type]
            return {tuple(names): list(range(len(features)))}  # a stable schema: the usual case
    schemas: dict[tuple[str, ...], list[int]] = {}
    for i, row in enumerate(features):
        if row is None:
            without.append(i)
        else:
            schemas.setdefault(tuple(row), []).append(i)
    return schemas


def _predictions(
    outputs: Sequence[Scalar | None],
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Predictions as labels (strings, bools) and values (numbers), each None if never given."""
    types = set(map(type, outputs))
    if types <= _LABEL_TYPES:
        return _optional_objects(outputs), None  # type: ignore[arg-type]
    if types <= _NUMERIC_TYPES:
        return None, np.array(outputs, dtype=np.float64)
    n = len(outputs)
    labels: list[str | None] = [None] * n
    values = np.full(n, np.nan)
    given_labels = given_values = False
    for i, out in enumerate(outputs):
        kind = type(out)
        if kind is str or kind is bool:
            labels[i] = _BOOL_LABELS[out] if kind is bool else out  # type: ignore[index, assignment]
            given_labels = True
        elif out is not None:
            values[i] = out
            given_values = True
    return (objects(tuple(labels)) if given_labels else None), (values if given_values else None)


def _optional_objects(values: Sequence[str | None]) -> np.ndarray | None:
    if values.count(None) == len(values):
        return None
    return objects(tuple(values))
