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

SCHEMA = """
CREATE TABLE IF NOT EXISTS state_blobs (
    model TEXT NOT NULL,
    digest TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (model, digest)
);
"""


def split_blobs(state: Any, blobs: dict[str, str]) -> Any:
    """``state`` with its long strings replaced by references; the strings go to ``blobs``."""
    kind = type(state)
    if kind is dict:
        return {key: split_blobs(value, blobs) for key, value in state.items()}
    if kind is list:
        # Lists of numbers can be long; only lists of containers need a walk.
        if not state or type(state[0]) not in _CONTAINERS:
            return state
        return [split_blobs(value, blobs) for value in state]
    if kind is str and len(state) >= BLOB_MIN_CHARS:
        digest = hashlib.blake2b(state.encode(), digest_size=20).hexdigest()
        blobs[digest] = state
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
