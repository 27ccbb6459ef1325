"""A batch's callers coded once, for every per-client detector that reads it.

Each detector used to count the callers of the same batch itself (a dict
lookup per event in each). :meth:`Callers.of` does one lookup per event for
them all: every distinct caller gets a code, in order of first request; the
detectors count codes with numpy and touch a dict once per caller, not per
event. Callers are told apart as a dict tells them apart, as before.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True, eq=False)  # compared by identity: arrays have no truth value
class Callers:
    """``names[codes[i]]`` is the caller of event ``i`` (an equal object: the first
    one seen); ``present[i]`` whether it has one (see :func:`has_client`)."""

    clients: np.ndarray
    names: list[object]
    codes: np.ndarray  # np.intp, one per event
    present: np.ndarray  # bool, one per event
    _rows: list[np.ndarray] = field(default_factory=list, repr=False)

    @classmethod
    def of(cls, clients: np.ndarray) -> Callers:
        index: defaultdict[object, int] = defaultdict()
        index.default_factory = index.__len__  # a new caller's code: the count so far
        values = clients.tolist()
        codes = np.fromiter(map(index.__getitem__, values), dtype=np.intp, count=len(values))
        names = list(index)
        # has_client on each distinct caller, rather than on every event
        present = has_client(np.array([*names, None], dtype=object)[:-1])[codes]
        return cls(clients, names, codes, present)

    def rows(self) -> np.ndarray:
        """Indices of the events with a caller (ascending); computed once."""
        if not self._rows:
            self._rows.append(np.flatnonzero(self.present))
        return self._rows[0]

    def count_into(
        self, counter: Counter[Any], rows: np.ndarray | slice, mask: np.ndarray | None = None
    ) -> None:
        """``counter`` with the callers of the events ``rows`` (those of them where
        ``mask`` is true) added, as ``Counter.update`` with one entry per event."""
        if 4 * len(self.names) > len(self.codes):
            # Mostly callers of one or two requests (a flood, or a tiny batch):
            # Counter's own loop over the events, in C, costs less than one over callers.
            clients = self.clients[rows]
            counter.update((clients if mask is None else clients[mask]).tolist())
            return
        found = np.bincount(self.codes[rows], mask, minlength=len(self.names))
        nonzero = np.flatnonzero(found)
        names = self.names
        for code, n in zip(nonzero.tolist(), found[nonzero].astype(np.int64).tolist(), strict=True):
            counter[names[code]] += n


def span(rows: np.ndarray) -> np.ndarray | slice:
    """``rows`` (ascending, distinct) as a slice when contiguous: a view, not a copy."""
    if len(rows) and rows[-1] - rows[0] + 1 == len(rows):
        return slice(int(rows[0]), int(rows[-1]) + 1)
    return rows


def has_client(clients: np.ndarray) -> np.ndarray:
    """Per event, whether it carries a client: not None (only an object array
    can hold None), compared for the whole batch at once."""
    if clients.dtype != object:
        return np.ones(len(clients), dtype=bool)
    return np.asarray(clients != None, dtype=bool)  # noqa: E711 (elementwise)
