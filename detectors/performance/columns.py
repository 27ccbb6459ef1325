"""Compact columns of CBPE's rows (see ``calibration.Rows``): a pointer per row in a list
is 8 bytes, and over the windows kept waiting for labels most rows hold no label and no
probabilities. These keep the very values (the same objects, so the same types) in less."""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Mapping
from itertools import repeat
from typing import Any

import numpy as np

_NONE = 0  # the code of None
_OTHER = 255  # the code of a value kept in ``other``: not a str, or past the table
_TABLE = 254  # distinct strings coded at most (the codes 1 to 254)


class Codes:
    """A column of ``str | None`` (a label, a predicted class), a byte a row: a code into
    a table of the distinct strings seen (few: a model's classes). Anything else (a
    value of another type, a str subclass, strings past the table) is kept as it is,
    by row, in ``other``.

    A row of None may be added as ``codes.append(0)`` (no Python call per row)."""

    __slots__ = ("_index", "codes", "names", "other")

    def __init__(self) -> None:
        self.codes = array("B")
        self.names: list[str | None] = [None]  # code -> value (0: None)
        self._index: dict[str | None, int] = {None: _NONE}
        self.other: dict[int, Any] = {}

    @classmethod
    def of(cls, values: Iterable[Any]) -> Codes:
        out = cls()
        out.extend(values)
        return out

    def extend(self, values: Iterable[Any]) -> None:
        if not isinstance(values, list):
            values = list(values)
        # The usual: strings (and None) only, few of them. In C, but for the new ones.
        if set(map(type, values)) <= {str, type(None)}:
            index = self._index
            new = [v for v in dict.fromkeys(values) if v not in index]
            if len(self.names) + len(new) <= _TABLE + 1:
                for value in new:
                    index[value] = len(self.names)
                    self.names.append(value)
                self.codes.frombytes(bytes(map(index.__getitem__, values)))
                return
        for value in values:
            self.append(value)

    def append(self, value: Any) -> None:
        c = _NONE if value is None else self._code(value)
        if c == _OTHER:
            self.other[len(self.codes)] = value
        self.codes.append(c)

    def pad(self, n: int) -> None:
        """``n`` rows of None."""
        self.codes.frombytes(bytes(n))

    def _code(self, value: Any) -> int:
        """The code of a value not None (``_OTHER``: the caller keeps it in ``other``)."""
        if type(value) is not str:
            return _OTHER
        c = self._index.get(value)
        if c is None:
            if len(self.names) > _TABLE:
                return _OTHER
            c = self._index[value] = len(self.names)
            self.names.append(value)
        return c

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, row: int) -> Any:
        c = self.codes[row]
        return self.other[row % len(self.codes)] if c == _OTHER else self.names[c]

    def __setitem__(self, row: int, value: Any) -> None:
        row %= len(self.codes)
        self.other.pop(row, None)
        c = _NONE if value is None else self._code(value)
        self.codes[row] = c
        if c == _OTHER:
            self.other[row] = value

    def fill(self, row: int, value: Any) -> None:
        """Row ``row`` (not negative) takes ``value`` if it holds None (a label joins a
        prediction that has none yet). A look-up for a class seen, in the usual case."""
        codes = self.codes
        if codes[row] != _NONE or value is None:
            return
        c = self._index.get(value) if type(value) is str else None
        if c is None:
            c = self._code(value)
            if c == _OTHER:
                self.other[row] = value
        codes[row] = c

    def count_none(self) -> int:
        return self.codes.count(_NONE)

    def indices(self, index: Mapping[Any, int], default: int) -> np.ndarray:
        """``index.get(value, default)`` of each value in order, as int64s: a look-up
        per code and per value kept aside, not per row."""
        table = [index.get(name, default) for name in self.names]
        table += [default] * (256 - len(table))
        out = np.array(table, dtype=np.int64)[np.frombuffer(self.codes, dtype=np.uint8)]
        for row, value in self.other.items():
            out[row] = index.get(value, default)
        return out

    def tolist(self) -> list[Any]:
        """The values in order (the same objects: a coded string is the first one seen)."""
        if len(self.names) == 1 and not self.other:  # no label: the usual
            return [None] * len(self.codes)
        table = np.empty(256, dtype=object)  # None throughout
        table[: len(self.names)] = self.names
        out: list[Any] = table[np.frombuffer(self.codes, dtype=np.uint8)].tolist()
        for row, value in self.other.items():
            out[row] = value
        return out

    def __iter__(self) -> Iterator[Any]:
        return iter(self.tolist())


class Sparse:
    """A column of values mostly None (a row's probabilities: most models send a score),
    rows put in order: a map {row: value} while at most one row in ``_DENSE`` has one
    (a map entry costs ~8 pointers), then a list, ``dense`` (rows after its end: None).
    Its length is the caller's. A caller may append to ``dense`` the row at its end."""

    __slots__ = ("_map", "dense")

    _DENSE = 8

    def __init__(self) -> None:
        self._map: dict[int, Any] = {}
        self.dense: list[Any] | None = None

    @classmethod
    def of(cls, values: Iterable[Any]) -> Sparse:
        out = cls()
        for row, value in enumerate(values):
            if value is not None:
                out.put(row, value)
        return out

    def put(self, row: int, value: Any) -> None:
        """Row ``row``'s value, not None; rows come in order (those skipped are None)."""
        listed = self.dense
        if listed is None:
            self._map[row] = value
            if len(self._map) * self._DENSE <= row + 1 or len(self._map) < 16:
                return
            listed = self.dense = self.values(row)  # the rows before it
            self._map = {}
        listed.extend(repeat(None, row - len(listed)))
        listed.append(value)

    def count(self) -> int:
        """Rows holding a value."""
        if self.dense is None:
            return len(self._map)
        return len(self.dense) - self.dense.count(None)

    def present(self) -> list[Any]:
        """The values there are, in row order."""
        if self.dense is None:
            return list(self._map.values())
        return [v for v in self.dense if v is not None]

    def values(self, n: int) -> list[Any]:
        """The first ``n`` rows' values, None where none."""
        if self.dense is not None:
            out = self.dense[:n]
            out.extend(repeat(None, n - len(out)))
            return out
        out = [None] * n
        for row, value in self._map.items():
            if row < n:
                out[row] = value
        return out
