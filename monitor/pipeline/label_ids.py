"""64-bit hashes of request ids, for a whole checkpoint's ids at once or for one label.

The pending predictions are found by the hash of their id (``label_store``); a
hash only narrows the search, the id text stored with the prediction decides,
so a collision (chance or crafted) costs a lookup more, never a wrong join.
The hash is a polynomial over the id's UTF-8 bytes (``h = h * K + byte`` mod
2**64, what numpy can do for many ids at once without a loop per id), then the
splitmix64 finalizer so that the bits used to pick a shard are well mixed.
"""

from __future__ import annotations

from operator import mul

import numpy as np

_K = 0x9E3779B97F4A7C15  # odd: multiplication by it is a bijection mod 2**64
_MASK = (1 << 64) - 1
_MAX_BYTES = 4096  # ids are bounded (monitor.ingest.events) far below this
_POWERS = np.cumprod(np.full(_MAX_BYTES, _K, dtype=np.uint64), dtype=np.uint64)
_POWERS = np.concatenate([np.ones(1, dtype=np.uint64), _POWERS[:-1]])  # K**0, K**1, ...
# Ids up to this long are hashed as rows of a padded byte matrix (one product for all);
# longer ones byte by byte (``_hashes_by_byte``).
_MATRIX_BYTES = 64
_MATRIX_ROWS = 4096  # rows per product: at most 2 MB of uint64 at a time
_INT_POWERS: list[int] = [int(p) for p in _POWERS]  # for one id: Python ints, no numpy call
_K_INVERSE = pow(_K, -1, 1 << 64)
_INVERSE_POWERS = np.array(
    [pow(_K_INVERSE, e, 1 << 64) for e in range(_MATRIX_BYTES + 1)], np.uint64
)


def encoded(ids: list[str]) -> tuple[bytes, np.ndarray]:
    """The ids' UTF-8 bytes one after the other, and the end offset of each (int64)."""
    joined = "".join(ids)
    if joined.isascii():  # the usual case: one encoding for all, lengths in characters
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        return joined.encode("ascii"), np.cumsum(lengths)
    # Ids are JSON strings: a lone surrogate is possible, and must round-trip.
    each = [i.encode("utf-8", "surrogatepass") for i in ids]
    lengths = np.fromiter(map(len, each), dtype=np.int64, count=len(each))
    return b"".join(each), np.cumsum(lengths)


def decoded(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogatepass")


def _finish(h: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = h ^ (lengths.astype(np.uint64) * np.uint64(0xBF58476D1CE4E5B9))
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return np.asarray(x, dtype=np.uint64)


def hashes(data: bytes, ends: np.ndarray, ids: list[str] | None = None) -> np.ndarray:
    """The hash (uint64) of each id of ``encoded``'s output (``ids``: the ids themselves,
    for the faster way when they are ASCII and short)."""
    lengths = np.diff(ends, prepend=0)
    longest = int(lengths.max()) if len(lengths) else 0
    ascii = ids is not None and len(data) == sum(map(len, ids))  # UTF-8: more bytes else
    if ids is not None and ascii and 0 < longest <= _MATRIX_BYTES:
        h = _hashes_by_row(ids, lengths, longest)
    else:
        h = _hashes_by_byte(data, ends, lengths)
    return _finish(h, lengths)


def _hashes_by_row(ids: list[str], lengths: np.ndarray, longest: int) -> np.ndarray:
    """The polynomial of ASCII ids as rows of a byte matrix padded with zeros to
    ``longest``: a row's product with K**(longest-1), ..., K**0 is the id's polynomial
    times K**(padding), undone by K's inverse (K is odd: invertible mod 2**64)."""
    h = np.empty(len(ids), dtype=np.uint64)
    weights = _POWERS[longest - 1 :: -1]
    for a in range(0, len(ids), _MATRIX_ROWS):
        part = ids[a : a + _MATRIX_ROWS]
        rows = np.array(part, dtype=f"S{longest}").view(np.uint8).reshape(len(part), longest)
        with np.errstate(over="ignore"):
            h[a : a + len(part)] = rows.astype(np.uint64) @ weights
    with np.errstate(over="ignore"):
        h *= _INVERSE_POWERS[longest - lengths]
    return h


def _hashes_by_byte(data: bytes, ends: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The polynomial of any ids, each byte weighed by its distance to its id's end."""
    n = len(ends)
    starts = ends - lengths
    if len(data) and int(lengths.max()) > _MAX_BYTES:
        raise ValueError(f"a request id longer than {_MAX_BYTES} bytes")
    h = np.zeros(n, dtype=np.uint64)
    if len(data):
        raw = np.frombuffer(data, dtype=np.uint8).astype(np.uint64)
        # Byte i of an id of length L weighs K**(L-1-i): its distance to the id's end.
        to_end = np.repeat(ends, lengths) - 1 - np.arange(len(raw), dtype=np.int64)
        with np.errstate(over="ignore"):
            terms = raw * _POWERS[to_end]
        filled = lengths > 0
        h[filled] = np.add.reduceat(terms, starts[filled])
    return h


def hash_one(request: str) -> int:
    """``hashes`` of one id, without numpy's per-call cost (a label's lookup)."""
    raw = request.encode("utf-8", "surrogatepass")
    if len(raw) <= _MAX_BYTES:  # byte * K**(distance to the end), multiplied and summed in C
        powers: list[int] = _INT_POWERS[len(raw) - 1 :: -1] if raw else []
        h: int = sum(map(mul, raw, powers)) & _MASK
    else:
        h = 0
        for byte in raw:
            h = (h * _K + byte) & _MASK
    x = h ^ ((len(raw) * 0xBF58476D1CE4E5B9) & _MASK)
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & _MASK
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & _MASK
    x ^= x >> 31
    return x
