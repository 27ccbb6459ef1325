"""Detector state without rewriting what did not change.

A model's state is mostly its reference baseline (sorted samples encoded as
long base64 strings) which is fixed once warm-up ends, next to a few kilobytes
that change with every event. Long strings are moved to ``state_blobs``, keyed
by their digest, and the state keeps ``{"$blob": digest}`` in their place, so
a checkpoint writes only the small part and the blobs it has not written yet.
"""

from __future__ import annotations

import hashlib
from typing import Any

BLOB_MIN_CHARS = 4096
BLOB_KEY = "$blob"
_CONTAINERS = (dict, list)


class BlobSplitter:
    """Splits states, remembering the digest of each long string object it saw last time.

    Detectors hand out the same string object for an unchanged reference, so
    its digest is looked up by identity instead of hashing megabytes again.
    The memory holds only the strings of the latest split, so nothing leaks.
    """

    def __init__(self) -> None:
        self._seen: dict[int, tuple[str, str]] = {}
        self._now: dict[int, tuple[str, str]] = {}

    def split(self, state: Any, blobs: dict[str, str]) -> Any:
        """``state`` with long strings replaced by references; the strings go to ``blobs``."""
        self._now = {}
        skeleton = self._walk(state, blobs)
        self._seen = self._now
        return skeleton

    def _walk(self, state: Any, blobs: dict[str, str]) -> Any:
        kind = type(state)
        if kind is dict:
            return {key: self._walk(value, blobs) for key, value in state.items()}
        if kind is list:
            # Lists of numbers can be long; only lists of containers need a walk.
            if not state or type(state[0]) not in _CONTAINERS:
                return state
            return [self._walk(value, blobs) for value in state]
        if kind is str and len(state) >= BLOB_MIN_CHARS:
            known = self._seen.get(id(state))
            if known is not None and known[0] is state:
                digest = known[1]
            else:
                digest = hashlib.blake2b(state.encode(), digest_size=20).hexdigest()
            self._now[id(state)] = (state, digest)
            blobs[digest] = state
            return {BLOB_KEY: digest}
        return state


def split_blobs(state: Any, blobs: dict[str, str]) -> Any:
    """``state`` with its long strings replaced by references; the strings go to ``blobs``."""
    return BlobSplitter().split(state, blobs)


def join_blobs(state: Any, blobs: dict[str, str]) -> Any:
    """The inverse of :func:`split_blobs`."""
    if isinstance(state, dict):
        if len(state) == 1 and BLOB_KEY in state:
            return blobs[state[BLOB_KEY]]
        return {key: join_blobs(value, blobs) for key, value in state.items()}
    if isinstance(state, list):
        return [join_blobs(value, blobs) for value in state]
    return state
