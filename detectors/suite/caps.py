"""Bounds on the names a model's stream brings: feature names and metric series.

Every name a model tracks costs memory: a feature is a warm-up column as long as
the warm-up, then a reference; a metric series has detectors of its own. A
broken or hostile producer can send new names with every event, so a model
tracks only the first ``limit`` distinct names its stream shows, in stream
order, and drops the others. The admitted names are part of the model's saved
state: a restart or a replay admits the same ones, whatever the batches.

Feature names are admitted during the warm-up only; a name first seen after it
has no reference to be tested against, and is dropped like one beyond the cap.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from detectors.base import RowBatch

if TYPE_CHECKING:
    from detectors.suite.settings import SuiteSettings


class NameCap:
    """At most ``limit`` admitted names, the first ones offered."""

    def __init__(self, limit: int, names: Iterable[str] = ()) -> None:
        self.limit = limit
        self.names: set[str] = set(names)

    @property
    def full(self) -> bool:
        return len(self.names) >= self.limit

    def admit(self, name: str) -> bool:
        """True if ``name`` is admitted, now or before."""
        if name in self.names:
            return True
        if len(self.names) >= self.limit:
            return False
        self.names.add(name)
        return True

    def admit_all(self, names: Iterable[str]) -> None:
        """Admit names in the order given until the cap is reached."""
        room = self.limit - len(self.names)
        for name in names:
            if room <= 0:
                return
            if name not in self.names:
                self.names.add(name)
                room -= 1

    def dump(self) -> list[str]:
        return sorted(self.names)


class StreamCaps:
    """One model's admitted feature names and metric series, and what they refused.

    The names are saved with the model's state; the drop counts are since this
    object was made (a process's own figures, as for a Prometheus counter).
    """

    def __init__(self, settings: SuiteSettings) -> None:
        self.features = NameCap(settings.max_features)
        self.metrics = NameCap(settings.max_metric_series)
        self.features_dropped = 0
        self.metric_points_dropped = 0

    def dump(self) -> dict[str, Any]:
        return {"feature_names": self.features.dump(), "metric_names": self.metrics.dump()}

    @classmethod
    def load(cls, settings: SuiteSettings, state: dict[str, Any]) -> StreamCaps:
        """From a model's whole state; one saved before the caps existed admits the
        names it already tracks."""
        caps = cls(settings)
        features = state.get("feature_names")
        if features is None:
            signals = state["warmup"] or state
            keys = (*signals["numeric"], *signals["categorical"])
            features = [k.removeprefix("feature:") for k in keys if k.startswith("feature:")]
        caps.features.names = set(features)
        caps.metrics.names = set(state.get("metric_names", state["metrics"]))
        return caps


def admit_columns(batch: RowBatch, cap: NameCap, warmup_rows: int) -> tuple[RowBatch, int]:
    """``batch`` keeping only the feature columns ``cap`` admits; and how many values it drops.

    New names are admitted from the batch's first ``warmup_rows`` events (those
    of the warm-up), in the order of the event where each first has a value;
    names first valued in the same event go numeric columns first, then
    categorical ones, each in the batch's order. Dropped values are the present
    (not missing) values of the refused columns.
    """
    names = cap.names
    if batch.numeric.keys() <= names and batch.categorical.keys() <= names:
        return batch, 0  # the usual case: nothing new
    columns = [(k, v, True) for k, v in batch.numeric.items()]
    columns += [(k, v, False) for k, v in batch.categorical.items()]
    if warmup_rows > 0 and not cap.full:
        firsts = []
        for order, (name, column, numeric) in enumerate(columns):
            if name not in names:
                present = np.flatnonzero(_present(column[:warmup_rows], numeric))
                if present.size:
                    firsts.append((int(present[0]), order, name))
        cap.admit_all(name for *_, name in sorted(firsts))
    dropped = sum(
        int(np.count_nonzero(_present(column, numeric)))
        for name, column, numeric in columns
        if name not in names
    )
    kept = dataclasses.replace(
        batch,
        numeric={k: v for k, v in batch.numeric.items() if k in names},
        categorical={k: v for k, v in batch.categorical.items() if k in names},
    )
    return kept, dropped


def _present(column: np.ndarray, numeric: bool) -> np.ndarray:
    if numeric:
        return ~np.isnan(np.asarray(column, dtype=np.float64))
    present: np.ndarray = np.asarray(column, dtype=object) != None  # noqa: E711  (element-wise)
    return present
