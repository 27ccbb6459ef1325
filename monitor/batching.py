"""Turn one model's parsed events into the columns the detectors take."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from detectors.base import RowBatch
from monitor.events import Event


def row_batch(events: Sequence[Event]) -> RowBatch:
    """Columns of prediction/input events, in stream order.

    Numbers become numeric features, strings and bools categorical ones; a
    feature that is None, or absent from an event that has features, is missing.
    """
    n = len(events)
    ts = np.fromiter((e.ts for e in events), dtype=np.float64, count=n)
    numeric: dict[str, np.ndarray] = {}
    categorical: dict[str, np.ndarray] = {}
    score = np.full(n, np.nan)
    prediction = np.full(n, None, dtype=object)
    prediction_value = np.full(n, np.nan)
    client = np.full(n, None, dtype=object)
    has_features = np.ones(n, dtype=bool)
    any_score = any_prediction = any_value = any_client = False
    for i, event in enumerate(events):
        features = event.features
        if features is None:
            has_features[i] = False
        else:
            for name, value in features.items():
                if value is None:
                    continue
                if isinstance(value, bool):
                    _column(categorical, name, n, object)[i] = "true" if value else "false"
                elif isinstance(value, str):
                    _column(categorical, name, n, object)[i] = value
                else:
                    _column(numeric, name, n, np.float64)[i] = value
        if event.score is not None:
            score[i] = event.score
            any_score = True
        out = event.prediction
        if out is not None:
            if isinstance(out, bool):
                prediction[i] = "true" if out else "false"
                any_prediction = True
            elif isinstance(out, str):
                prediction[i] = out
                any_prediction = True
            else:
                prediction_value[i] = out
                any_value = True
        if event.client is not None:
            client[i] = event.client
            any_client = True
    return RowBatch(
        ts=ts,
        numeric=numeric,
        categorical=categorical,
        score=score if any_score else None,
        prediction=prediction if any_prediction else None,
        prediction_value=prediction_value if any_value else None,
        client=client if any_client else None,
        has_features=None if has_features.all() else has_features,
    )


def _column(columns: dict[str, np.ndarray], name: str, n: int, dtype: type) -> np.ndarray:
    column = columns.get(name)
    if column is None:
        column = np.full(n, np.nan) if dtype is np.float64 else np.full(n, None, dtype=object)
        columns[name] = column
    return column
