"""Detector state without rewriting what did not change.

A model's state is mostly its reference baseline (sorted samples encoded as
long base64 strings) which is fixed once warm-up ends, next to a few kilobytes
that change with every event. Long strings are moved to ``state_blobs``, keyed
by their digest, and the state keeps ``{"$blob": digest}`` in their place, so
a checkpoint writes only the small part and the blobs it has not written yet.

A detector can also put ``{"$blob": digest}`` there itself, for a text the
store already holds (``ModelDetectors.dump(stored)``): an unchanged reference
is then neither encoded again nor kept as text in memory between checkpoints.
"""

from __future__ import annotations

from collections.abc import Container
from typing import Any

from detectors.codec import BLOB_KEY, text_digest

BLOB_MIN_CHARS = 4096
_CONTAINERS = (dict, list)


def split_blobs(
    state: Any, blobs: dict[str, str], stored: Container[str] = frozenset()
) -> tuple[Any, set[str]]:
    """``state`` with long strings replaced by references, and the digests it refers to.

    The strings go to ``blobs``. A reference already in ``state`` must name a
    digest in ``stored`` (what the store holds), else the state would point
    at a text nobody keeps: ``ValueError``.
    """
    referred: set[str] = set()
    skeleton = _walk(state, blobs, stored, referred)
    return skeleton, referred


def _walk(state: Any, blobs: dict[str, str], stored: Container[str], referred: set[str]) -> Any:
    kind = type(state)
    if kind is dict:
        if len(state) == 1 and BLOB_KEY in state:
            digest = state[BLOB_KEY]
            if digest not in stored:
                raise ValueError(f"the state refers to blob {digest}, which the store lacks")
            referred.add(digest)
            return state
        return {key: _walk(value, blobs, stored, referred) for key, value in state.items()}
    if kind is list:
        # Lists of numbers can be long; only lists of containers need a walk.
        if not state or type(state[0]) not in _CONTAINERS:
            return state
        return [_walk(value, blobs, stored, referred) for value in state]
    if kind is str and len(state) >= BLOB_MIN_CHARS:
        digest = text_digest(state)
        blobs[digest] = state
        referred.add(digest)
        return {BLOB_KEY: digest}
    return state


def join_blobs(state: Any, blobs: dict[str, str]) -> Any:
    """The inverse of :func:`split_blobs`."""
    if isinstance(state, dict):
        if len(state) == 1 and BLOB_KEY in state:
            return blobs[state[BLOB_KEY]]
        return {key: join_blobs(value, blobs) for key, value in state.items()}
    if isinstance(state, list):
        return [join_blobs(value, blobs) for value in state]
    return state
