"""Event times as people and payloads read them: RFC 3339, UTC, milliseconds."""

from __future__ import annotations

import math
from datetime import UTC, datetime


def iso(ts: float) -> str:
    """Epoch seconds as ``2026-11-01T00:38:43.750Z``; "-" for NaN or infinity."""
    if not math.isfinite(ts):
        return "-"
    moment = datetime.fromtimestamp(ts, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
