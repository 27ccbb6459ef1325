"""Plain-data encoding of detector state: exact floats and arrays through JSON.

Scalars stay JSON numbers when finite (Python's float repr round-trips
exactly); NaN and infinities become strings, because strict JSON encoders
(orjson, browsers) cannot carry them. Arrays become base64 of their
little-endian bytes: compact, exact, and NaN-safe.
"""

from __future__ import annotations

import base64
import math
from typing import Any

import numpy as np

_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def encode_float(x: float) -> float | str:
    """A float as a JSON number, or as "nan"/"inf"/"-inf"."""
    x = float(x)
    if math.isfinite(x):
        return x
    if math.isnan(x):
        return "nan"
    return "inf" if x > 0 else "-inf"


def decode_float(x: float | int | str) -> float:
    """The inverse of :func:`encode_float`."""
    if isinstance(x, str):
        return _NONFINITE[x]
    return float(x)


def encode_array(a: np.ndarray) -> dict[str, Any]:
    """A numeric numpy array as plain data (dtype, shape, base64 bytes)."""
    arr = np.ascontiguousarray(a)
    dtype = arr.dtype.newbyteorder("<")
    data = arr.astype(dtype, copy=False).tobytes()
    return {"dtype": dtype.str, "shape": list(arr.shape), "b64": base64.b64encode(data).decode()}


def decode_array(d: dict[str, Any]) -> np.ndarray:
    """The inverse of :func:`encode_array`, as a writable native-order array."""
    raw = base64.b64decode(d["b64"])
    arr = np.frombuffer(raw, dtype=np.dtype(d["dtype"])).reshape(d["shape"])
    return arr.astype(arr.dtype.newbyteorder("="), copy=True)


def encode_labels(a: np.ndarray) -> list[str | None]:
    """An object array of str/None as a JSON list."""
    return [None if v is None else str(v) for v in a.tolist()]


def decode_labels(values: list[str | None]) -> np.ndarray:
    """The inverse of :func:`encode_labels`."""
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out
