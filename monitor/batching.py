"""Turn one model's parsed events into the columns the detectors take.

This runs once per event and feature, so it is written for speed: values are
gathered into plain lists keyed by column and turned into numpy arrays once per
batch, instead of assigning numpy elements one by one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from detectors.base import RowBatch
from monitor.events import Event

_BOOL_LABELS = {True: "true", False: "false"}


def row_batch(events: Sequence[Event]) -> RowBatch:
    """Columns of prediction/input events, in stream order.

    Numbers become numeric features, strings and bools categorical ones; a
    feature that is None, or absent from an event that has features, is missing.
    """
    n = len(events)
    numeric: dict[str, tuple[list[int], list[float]]] = {}
    categorical: dict[str, tuple[list[int], list[str]]] = {}
    scores: tuple[list[int], list[float]] = ([], [])
    labels: tuple[list[int], list[str]] = ([], [])
    values: tuple[list[int], list[float]] = ([], [])
    clients: tuple[list[int], list[str]] = ([], [])
    without_features: list[int] = []
    for i, event in enumerate(events):
        features = event.features
        if features is None:
            without_features.append(i)
        else:
            for name, value in features.items():
                kind = type(value)
                if kind is float or kind is int:
                    column = numeric.get(name)
                    if column is None:
                        column = numeric[name] = ([], [])
                    column[0].append(i)
                    column[1].append(value)  # type: ignore[arg-type]
                elif kind is str or kind is bool:
                    label = _BOOL_LABELS[value] if kind is bool else value  # type: ignore[index]
                    group = categorical.get(name)
                    if group is None:
                        group = categorical[name] = ([], [])
                    group[0].append(i)
                    group[1].append(label)  # type: ignore[arg-type]
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
    has_features = None
    if without_features:
        has_features = np.ones(n, dtype=bool)
        has_features[without_features] = False
    return RowBatch(
        ts=np.fromiter((e.ts for e in events), dtype=np.float64, count=n),
        numeric={name: _floats(n, column) for name, column in numeric.items()},
        categorical={name: _objects(n, group) for name, group in categorical.items()},
        score=_floats(n, scores) if scores[0] else None,
        prediction=_objects(n, labels) if labels[0] else None,
        prediction_value=_floats(n, values) if values[0] else None,
        client=_objects(n, clients) if clients[0] else None,
        has_features=has_features,
    )


def _floats(n: int, column: tuple[list[int], list[float]]) -> np.ndarray:
    index, values = column
    if len(index) == n:
        return np.array(values, dtype=np.float64)
    out = np.full(n, np.nan)
    out[index] = values
    return out


def _objects(n: int, column: tuple[list[int], list[str]]) -> np.ndarray:
    index, values = column
    out = np.full(n, None, dtype=object)
    out[index] = values
    return out
