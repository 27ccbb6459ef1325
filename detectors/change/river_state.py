"""River objects inside a detector's plain-data state.

River's detectors pickle exactly, so a River-backed detector keeps its River
object as base64 of the pickle, next to the River version that wrote it. A
state written by another River version (or before the detector ran on River)
is never unpickled: River's internals may differ between versions, and a state
that loads "almost" right would silently skew detection. The detector starts
that River object afresh instead, and says so through the ``detectors.change``
logger.

Pickle runs only on the detector's own saved state (the store the service
writes), never on anything read from events.
"""

from __future__ import annotations

import base64
import logging
import pickle
from collections.abc import Callable
from importlib.metadata import version
from typing import Any, TypeVar

LOG = logging.getLogger("detectors.change")
RIVER_VERSION: str = version("river")

T = TypeVar("T")


def dump_river(obj: object) -> dict[str, str]:
    """``obj`` as plain data: the River version and base64 of its pickle."""
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return {"river": RIVER_VERSION, "pickle": base64.b64encode(data).decode()}


def load_river(state: Any, kind: type[T], fresh: Callable[[], T], owner: str) -> T:
    """The River object saved by :func:`dump_river`, or ``fresh()`` (with a
    logged warning) when the state is not one this River version wrote."""
    written_by = state.get("river") if isinstance(state, dict) else None
    if written_by != RIVER_VERSION or not isinstance(state.get("pickle"), str):
        LOG.warning(
            "%s: saved state was written by River %s, this is River %s; "
            "its change detection restarts from a fresh window",
            owner,
            written_by or "(none: the detector predates River)",
            RIVER_VERSION,
        )
        return fresh()
    obj = pickle.loads(base64.b64decode(state["pickle"]))
    if not isinstance(obj, kind):
        raise ValueError(
            f"{owner}: saved River state holds a {type(obj).__name__}, not a {kind.__name__}; "
            "delete the model's saved state to start it afresh"
        )
    return obj
