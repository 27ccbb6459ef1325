"""Bounded caches of what a model's label lookups read from the store lately.

Labels tend to come in about the order of their predictions, so consecutive
labels mostly fall in the same chunk (``label_store.CHUNK`` predictions) and
often in the same index shard: a label read from the cache costs no query.
Both caches hold only what the last committed checkpoint wrote: a chunk's
content never changes once written (only its labelled mask, updated here when
a checkpoint's marks commit), and the index shards are forgotten whenever a
checkpoint flushes level 0 into a new generation of them (a generation dropped
since holds only predictions gone, which a lookup tells by their number). Their
size is bounded whatever the number of predictions pending (``CHUNKS`` chunks,
``SHARD_BYTES`` of shards).
"""

from __future__ import annotations

from bisect import bisect_right, insort
from collections import OrderedDict
from typing import Generic, Protocol, TypeVar

CHUNKS = 32  # ~5 KB each with 20 segment features
SHARD_BYTES = 256 * 1024


class CachedChunk(Protocol):
    first: int
    last: int  # the last prediction number in it
    bits: int  # its labelled mask as committed


class CachedShard(Protocol):
    nbytes: int


C = TypeVar("C", bound=CachedChunk)
S = TypeVar("S", bound=CachedShard)


class ChunkCache(Generic[C]):
    def __init__(self) -> None:
        self._chunks: OrderedDict[int, C] = OrderedDict()
        self._firsts: list[int] = []  # sorted: which chunk could hold a number

    def get(self, ins: int) -> C | None:
        """The cached chunk whose numbers span ``ins``."""
        at = bisect_right(self._firsts, ins) - 1
        if at < 0:
            return None
        chunk = self._chunks[self._firsts[at]]
        if ins > chunk.last:
            return None
        self._chunks.move_to_end(chunk.first)
        return chunk

    def put(self, chunk: C) -> None:
        if chunk.first in self._chunks:
            return
        if len(self._chunks) >= CHUNKS:
            oldest, _ = self._chunks.popitem(last=False)
            self._firsts.pop(bisect_right(self._firsts, oldest) - 1)
        self._chunks[chunk.first] = chunk
        insort(self._firsts, chunk.first)

    def committed(self, marks: list[tuple[int, int]], floor: int) -> None:
        """A checkpoint committed: its marks (chunk first, slot), and the chunks below
        ``floor`` deleted."""
        for first, slot in marks:
            chunk = self._chunks.get(first)
            if chunk is not None:
                chunk.bits |= 1 << slot
        while self._firsts and self._firsts[0] < floor:
            del self._chunks[self._firsts.pop(0)]


class ShardCache(Generic[S]):
    def __init__(self) -> None:
        self._shards: OrderedDict[int, S] = OrderedDict()
        self._bytes = 0

    def get(self, shard: int) -> S | None:
        found = self._shards.get(shard)
        if found is not None:
            self._shards.move_to_end(shard)
        return found

    def put(self, shard: int, read: S) -> None:
        size = read.nbytes
        if size > SHARD_BYTES or shard in self._shards:
            return
        while self._bytes + size > SHARD_BYTES:
            _, dropped = self._shards.popitem(last=False)
            self._bytes -= dropped.nbytes
        self._shards[shard] = read
        self._bytes += size

    def clear(self) -> None:
        self._shards.clear()
        self._bytes = 0
