"""64-bit hashes of request ids, for a whole checkpoint's ids at once or for one label.

The pending predictions are found by the hash of their id (``label_store``); a
hash only narrows the search, the id text stored with the prediction decides,
so a collision (chance or crafted) costs a lookup more, never a wrong join.
The hash is a polynomial over the id's UTF-8 bytes (``h = h * K + byte`` mod
2**64, what numpy can do for many ids at once without a loop per id), then the
splitmix64 finalizer so that the bits used to pick a shard are well mixed.
"""

from __future__ import annotations

import numpy as np

_K = 0x9E3779B97F4A7C15  # odd: multiplication by it is a bijection mod 2**64
_MASK = (1 << 64) - 1
_MAX_BYTES = 4096  # ids are bounded (monitor.ingest.events) far below this
_POWERS = np.cumprod(np.full(_MAX_BYTES, _K, dtype=np.uint64), dtype=np.uint64)
_POWERS = np.concatenate([np.ones(1, dtype=np.uint64), _POWERS[:-1]])  # K**0, K**1, ...


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


def hashes(data: bytes, ends: np.ndarray) -> np.ndarray:
    """The hash (uint64) of each id of ``encoded``'s output."""
    n = len(ends)
    starts = np.empty(n, dtype=np.int64)
    starts[:1] = 0
    starts[1:] = ends[:-1]
    lengths = ends - starts
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
    return _finish(h, lengths)


def hash_one(request: str) -> int:
    """``hashes`` of one id, without numpy's per-call cost (a label's lookup)."""
    raw = request.encode("utf-8", "surrogatepass")
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
