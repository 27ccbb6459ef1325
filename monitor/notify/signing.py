"""Standard Webhooks signing and verification (CONTRACT §5)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping

from monitor.errors import DriftwardenError


def decode_secret(raw: str) -> bytes:
    """A Standard Webhooks secret: ``whsec_`` + base64 key, or else the raw UTF-8 bytes."""
    if raw.startswith("whsec_"):
        try:
            return base64.b64decode(raw.removeprefix("whsec_"), validate=True)
        except (binascii.Error, ValueError):
            raise DriftwardenError(
                "webhook secret starts with 'whsec_' but the rest is not base64: fix the secret"
            ) from None
    return raw.encode("utf-8")


def sign(secret: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_headers(
    secret: bytes | None, msg_id: str, body: bytes, timestamp: int | None = None
) -> dict[str, str]:
    stamp = int(time.time()) if timestamp is None else timestamp
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(stamp)}
    if secret:
        headers["webhook-signature"] = sign(secret, msg_id, stamp, body)
    return headers


def verify_signature(
    secret: str | bytes,
    headers: Mapping[str, str],
    body: bytes,
    tolerance: float = 300.0,
    now: float | None = None,
) -> bool:
    """True when ``headers`` carry a valid v1 signature of ``body`` made within ``tolerance`` s.

    ``secret`` is the configured string (``whsec_…`` or raw) or the key bytes.
    """
    key = decode_secret(secret) if isinstance(secret, str) else secret
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id = lower.get("webhook-id")
    stamp = lower.get("webhook-timestamp", "")
    given = lower.get("webhook-signature", "")
    if not msg_id or not stamp.isdigit() or not given:
        return False
    current = time.time() if now is None else now
    if abs(current - int(stamp)) > tolerance:
        return False
    expected = sign(key, msg_id, int(stamp), body)
    # A sender rotating secrets may send several space-separated signatures.
    return any(hmac.compare_digest(expected, candidate) for candidate in given.split())
