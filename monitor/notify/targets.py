"""Configured webhook targets and the bytes each one is sent (CONTRACT §5).

Secrets are read from the environment when delivery starts and live only in
memory: no payload, log line or table holds them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from monitor.errors import DriftwardenError
from monitor.notify.signing import decode_secret


@dataclass(frozen=True)
class WebhookTarget:
    """One configured webhook with its secrets resolved; secrets stay out of repr."""

    url: str
    format: str = "generic"
    min_severity: str = "warning"
    secret: bytes | None = field(default=None, repr=False)
    routing_key: str | None = field(default=None, repr=False)


def body_for_target(body: bytes, target: WebhookTarget) -> bytes:
    """The bytes actually sent: PagerDuty's routing key joins the stored body only here."""
    if target.format != "pagerduty" or not target.routing_key:
        return body
    payload = orjson.loads(body)
    payload["routing_key"] = target.routing_key
    return orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)


def targets_from_config(webhooks: Sequence[Any], environ: Mapping[str, str]) -> list[WebhookTarget]:
    """Resolve each ``[[webhooks]]`` entry's secrets from ``environ`` (the CLI passes its own)."""
    targets = []
    for i, hook in enumerate(webhooks):
        secret = None
        if hook.secret_env:
            raw = environ.get(hook.secret_env)
            if not raw:
                raise DriftwardenError(
                    f"webhooks[{i}].secret_env names {hook.secret_env}, which is not set: "
                    "export it or remove secret_env"
                )
            secret = decode_secret(raw)
        routing_key = None
        routing_env = getattr(hook, "routing_key_env", "")
        if routing_env:
            routing_key = environ.get(routing_env)
            if not routing_key:
                raise DriftwardenError(
                    f"webhooks[{i}].routing_key_env names {routing_env}, which is not set: "
                    "export the PagerDuty integration key in it"
                )
        targets.append(WebhookTarget(hook.url, hook.format, hook.min_severity, secret, routing_key))
    return targets
