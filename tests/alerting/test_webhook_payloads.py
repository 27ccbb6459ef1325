"""Payload shapes of each webhook format, and Standard Webhooks signing."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from detectors.base import Finding
from monitor.config import WebhookConfig
from monitor.errors import DriftwardenError
from monitor.notify.payloads import NotificationContext, build_body
from monitor.notify.signing import decode_secret, signature_headers, verify_signature
from monitor.notify.targets import WebhookTarget, body_for_target, targets_from_config
from monitor.store.store import Store

CONTEXT = NotificationContext(
    config_path="prod.toml", receiver="oncall", external_url="http://dw.local"
)


Incident = tuple[dict[str, Any], list[dict[str, Any]]]


def _rows(store: Store, incident_id: int = 1) -> Incident:
    cursor = store.db.execute("SELECT * FROM incidents WHERE id = ?", [incident_id])
    incident = dict(zip([c[0] for c in cursor.description], cursor.fetchone(), strict=True))
    cursor = store.db.execute("SELECT * FROM alerts WHERE incident_id = ?", [incident_id])
    columns = [c[0] for c in cursor.description]
    return incident, [dict(zip(columns, r, strict=True)) for r in cursor.fetchall()]


@pytest.fixture
def incident(
    store: Store, record: Callable[..., int], make_finding: Callable[..., Finding]
) -> Incident:
    record(
        store,
        "fraud",
        make_finding("amount", 1_764_140_000.0, "warning"),
        make_finding("country", 1_764_140_060.0, "critical", detector="chi2", statistic=0.4),
    )
    return _rows(store)


def test_generic_payload_says_what_broke_since_when_and_how_to_reproduce(
    incident: Incident,
) -> None:
    body = orjson.loads(build_body("generic", *incident, "trigger", "new", CONTEXT))
    assert body["model"] == "fraud"
    assert (body["detector"], body["signal"], body["severity"]) == ("chi2", "country", "critical")
    assert body["statistic"] == pytest.approx(0.4)
    assert body["effect_size"] == pytest.approx(0.4)
    assert body["effect"] == "large"
    assert body["since"] == "2025-11-26T06:53:20.000Z"
    assert body["incident"]["key"] == incident[0]["key"]
    assert body["incident"]["status"] == "open"
    assert body["reproduce"] == (
        "driftwarden replay --config prod.toml --input EVENTS.jsonl --store NEW.db"
    )
    assert len(body["alerts"]) == 2
    assert "statistic 0.4, effect size 0.4 (large)" in body["summary"]


def test_bodies_are_byte_identical_for_the_same_inputs(incident: Incident) -> None:
    for fmt in ("generic", "alertmanager", "slack", "pagerduty"):
        first = build_body(fmt, *incident, "trigger", "new", CONTEXT)
        assert first == build_body(fmt, *incident, "trigger", "new", CONTEXT)


def test_alertmanager_payload_has_every_v4_field(incident: Incident) -> None:
    body = orjson.loads(build_body("alertmanager", *incident, "trigger", "new", CONTEXT))
    for key in (
        "version",
        "groupKey",
        "truncatedAlerts",
        "status",
        "receiver",
        "groupLabels",
        "commonLabels",
        "commonAnnotations",
        "externalURL",
        "alerts",
    ):
        assert key in body, key
    assert body["version"] == "4"
    assert body["status"] == "firing"
    assert body["receiver"] == "oncall"
    assert body["commonLabels"]["model"] == "fraud"
    assert len(body["alerts"]) == 2
    for alert in body["alerts"]:
        assert set(alert) == {
            "status",
            "labels",
            "annotations",
            "startsAt",
            "endsAt",
            "generatorURL",
            "fingerprint",
        }
        assert alert["endsAt"] == "0001-01-01T00:00:00Z"
        assert alert["generatorURL"] == "http://dw.local/incidents/1"
    resolved = orjson.loads(build_body("alertmanager", *incident, "resolve", "resolved", CONTEXT))
    assert resolved["status"] == "resolved"
    assert all(a["status"] == "resolved" for a in resolved["alerts"])
    assert all(a["endsAt"] != "0001-01-01T00:00:00Z" for a in resolved["alerts"])


def test_slack_payload_has_text_and_blocks(incident: Incident) -> None:
    body = orjson.loads(build_body("slack", *incident, "trigger", "new", CONTEXT))
    assert "fraud" in body["text"]
    assert [b["type"] for b in body["blocks"]] == ["header", "section", "section", "context"]
    assert "driftwarden replay" in body["blocks"][3]["elements"][0]["text"]


def test_pagerduty_trigger_and_resolve_share_the_dedup_key(incident: Incident) -> None:
    trigger = orjson.loads(build_body("pagerduty", *incident, "trigger", "new", CONTEXT))
    resolve = orjson.loads(build_body("pagerduty", *incident, "resolve", "resolved", CONTEXT))
    assert trigger["event_action"] == "trigger"
    assert resolve["event_action"] == "resolve"
    assert trigger["dedup_key"] == resolve["dedup_key"] == incident[0]["key"]
    payload = trigger["payload"]
    assert payload["severity"] == "critical"
    assert payload["source"] == "driftwarden/fraud"
    assert payload["timestamp"].endswith("Z")
    assert payload["custom_details"]["model"] == "fraud"
    assert "routing_key" not in trigger  # never stored; added when sent
    target = WebhookTarget("http://x", "pagerduty", routing_key="R0UT1NG")
    sent = orjson.loads(body_for_target(orjson.dumps(trigger), target))
    assert sent["routing_key"] == "R0UT1NG"


def test_signature_verifies_and_detects_tampering() -> None:
    key = b"\x01" * 24
    secret = "whsec_" + base64.b64encode(key).decode()
    assert decode_secret(secret) == key
    body = b'{"a":1}'
    headers = signature_headers(decode_secret(secret), "msg_1", body, timestamp=1_700_000_000)
    assert headers["webhook-signature"].startswith("v1,")
    assert verify_signature(secret, headers, body, now=1_700_000_010)
    assert not verify_signature(secret, headers, b'{"a":2}', now=1_700_000_010)
    assert not verify_signature("whsec_" + base64.b64encode(b"other").decode(), headers, body)
    assert not verify_signature(secret, headers, body, now=1_700_001_000)  # too old
    rotated = {**headers, "webhook-signature": "v1,bm9wZQ== " + headers["webhook-signature"]}
    assert verify_signature(secret, rotated, body, now=1_700_000_010)


def test_plain_secret_is_its_utf8_bytes_and_unsigned_without_one() -> None:
    assert decode_secret("hunter2") == b"hunter2"
    headers = signature_headers(None, "msg_1", b"{}", timestamp=1)
    assert set(headers) == {"webhook-id", "webhook-timestamp"}
    with pytest.raises(DriftwardenError, match="not base64"):
        decode_secret("whsec_***")


def test_targets_read_secrets_from_the_named_variable_and_keep_them_out_of_repr() -> None:
    hooks = [WebhookConfig(url="http://h", secret_env="HOOK_SECRET")]
    (target,) = targets_from_config(hooks, {"HOOK_SECRET": "s3cret"})
    assert target.secret == b"s3cret"
    assert "s3cret" not in repr(target)
    with pytest.raises(DriftwardenError, match="HOOK_SECRET, which is not set"):
        targets_from_config(hooks, {})
