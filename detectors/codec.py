"""Plain-data encoding of detector state: exact floats and arrays through JSON.

Scalars stay JSON numbers when finite (Python's float repr round-trips
exactly); NaN and infinities become strings, because strict JSON encoders
(orjson, browsers) cannot carry them. Arrays become base64 of their
little-endian bytes: compact, exact, and NaN-safe.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Container
from typing import Any

import numpy as np

_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
# The marker of a long text kept apart from the state that refers to it:
# ``{"$blob": digest}`` where the text was (see :func:`dump_fixed_array`).
BLOB_KEY = "$blob"


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


def text_digest(text: str) -> str:
    """The digest a long text is kept under apart from its state."""
    return hashlib.blake2b(text.encode(), digest_size=20).hexdigest()


def dump_fixed_array(
    a: np.ndarray, digest: str | None, stored: Container[str]
) -> tuple[dict[str, Any], str]:
    """:func:`encode_array` of an array that never changes, and the digest of its text.

    ``digest`` is what an earlier call returned for the same array (None the
    first time). When the caller already keeps that text (``digest in
    stored``), the text is not made again: ``b64`` is ``{"$blob": digest}``.
    An owner keeps the digest instead of the text, which is larger than the
    array itself.
    """
    if digest is not None and digest in stored:
        arr = np.ascontiguousarray(a)
        dtype = arr.dtype.newbyteorder("<")
        return {"dtype": dtype.str, "shape": list(arr.shape), "b64": {BLOB_KEY: digest}}, digest
    encoded = encode_array(a)
    return encoded, text_digest(encoded["b64"])


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


class FixedArrays:
    """The digests of an owner's arrays that never change once made (fitted
    tables), by array object: a new array (a refit) is encoded and digested
    again, the same one is named by digest where the caller stores its text."""

    def __init__(self) -> None:
        self._digests: dict[str, tuple[np.ndarray, str]] = {}

    def dump(self, key: str, a: np.ndarray, stored: Container[str]) -> dict[str, Any]:
        """:func:`dump_fixed_array` of ``a``, the owner's array called ``key``."""
        known = self._digests.get(key)
        digest = known[1] if known is not None and known[0] is a else None
        encoded, digest = dump_fixed_array(a, digest, stored)
        self._digests[key] = (a, digest)
        return encoded
