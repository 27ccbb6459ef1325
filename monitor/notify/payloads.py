"""Webhook payloads (CONTRACT §5).

A payload is built once, when a notification is enqueued, from the incident row
and its alert rows; the outbox stores the bytes so every retry sends the same
body under the same ``webhook-id``. Payloads use event time only (never the
wall clock), so a replay that recomputes a notification builds the same bytes.
Signing lives in ``monitor.notify.signing``, configured targets in
``monitor.notify.targets``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from monitor.cli import timefmt

FORMATS = ("generic", "alertmanager", "slack", "pagerduty")
KINDS = ("trigger", "update", "resolve")
# Alertmanager's own encoding of "no end time yet" for a firing alert.
ZERO_TIME = "0001-01-01T00:00:00Z"
SLACK_EMOJI = {
    "info": ":information_source:",
    "warning": ":warning:",
    "critical": ":rotating_light:",
}


@dataclass(frozen=True)
class NotificationContext:
    """What payloads say beyond the store: how to reproduce, and where to look."""

    config_path: str = "CONFIG"
    events_path: str = "EVENTS.jsonl"
    receiver: str = "driftwarden"
    external_url: str = ""


def iso(ts: float | None) -> str:
    """Epoch seconds as RFC 3339 UTC with milliseconds; the zero time when unknown."""
    return ZERO_TIME if ts is None else timefmt.iso(float(ts))


EFFECT_WORDS = ((0.05, "negligible"), (0.1, "small"), (0.25, "moderate"))


def effect_in_words(effect: float | None) -> str:
    if effect is None:
        return "unknown"
    return next((words for bound, words in EFFECT_WORDS if abs(effect) < bound), "large")


def _number(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}g}"


def lead_alert(alerts: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The alert a one-line summary names: the most severe, then the earliest."""
    rank = {"info": 0, "warning": 1, "critical": 2}
    return min(alerts, key=lambda a: (-rank[a["severity"]], a["event_ts"], a["id"]))


def alert_summary(alert: Mapping[str, Any]) -> dict[str, Any]:
    details = alert.get("details") or {}
    details = orjson.loads(details) if isinstance(details, str | bytes) else dict(details)
    effect = details.get("effect_size")
    return {
        **{k: alert[k] for k in ("id", "fingerprint", "detector", "signal", "severity")},
        "event_time": iso(alert["event_ts"]),
        **{k: details.get(k) for k in ("statistic", "threshold", "p_value", "effect_size")},
        "effect": effect_in_words(effect),
    }


@dataclass(frozen=True)
class Notice:
    """One notification about one incident: everything a payload builder reads."""

    incident: Mapping[str, Any]
    alerts: Sequence[Mapping[str, Any]]
    kind: str
    reason: str
    context: NotificationContext

    @property
    def lead(self) -> dict[str, Any]:
        return alert_summary(lead_alert(self.alerts))

    @property
    def reproduce(self) -> str:
        c = self.context
        return f"driftwarden replay --config {c.config_path} --input {c.events_path} --store NEW.db"

    def summary(self, alerts: Sequence[Mapping[str, Any]] | None = None) -> str:
        i = self.incident
        lead = alert_summary(lead_alert(alerts or self.alerts))
        effect = lead["effect_size"]
        effect_text = "" if effect is None else f", effect size {effect:.3g} ({lead['effect']})"
        return (
            f"[{i['severity']}] {i['model']}: {lead['detector']} on {lead['signal']} "
            f"(statistic {_number(lead['statistic'], 4)}{effect_text}) "
            f"since {iso(i['first_event_ts'])}, {i['alert_count']} alert(s), "
            f"incident #{i['id']} {i['status']}"
        )


def generic_payload(n: Notice) -> dict[str, Any]:
    i, lead = n.incident, n.lead
    return {
        "kind": n.kind,
        "reason": n.reason,
        "summary": n.summary(),
        "model": i["model"],
        **{k: lead[k] for k in ("signal", "detector", "statistic", "p_value", "effect_size")},
        "effect": lead["effect"],
        "since": iso(i["first_event_ts"]),
        "last_event_time": iso(i["last_event_ts"]),
        "severity": i["severity"],
        "incident": {k: i[k] for k in ("id", "key", "status", "title", "alert_count")},
        "alerts": [alert_summary(a) for a in n.alerts],
        "reproduce": n.reproduce,
    }


def alertmanager_payload(n: Notice) -> dict[str, Any]:
    i, url = n.incident, n.context.external_url
    status = "resolved" if n.kind == "resolve" else "firing"
    ends = iso(i.get("resolved_at") or i["last_event_ts"]) if status == "resolved" else ZERO_TIME
    # One Alertmanager alert per problem (fingerprint), as Prometheus would send it.
    by_fingerprint: dict[str, list[Mapping[str, Any]]] = {}
    for alert in n.alerts:
        by_fingerprint.setdefault(alert["fingerprint"], []).append(alert)
    items: list[dict[str, Any]] = []
    for fp, group in by_fingerprint.items():
        lead = alert_summary(lead_alert(group))
        labels = {k: lead[k] for k in ("detector", "signal", "severity")} | {
            "alertname": "DriftwardenDetection",
            "model": i["model"],
            "incident": i["key"],
        }
        items.append(
            {
                "status": status,
                "labels": labels,
                "annotations": {
                    "summary": f"{lead['detector']} on {i['model']}/{lead['signal']}",
                    "description": n.summary(group),
                    "reproduce": n.reproduce,
                },
                "startsAt": iso(min(a["event_ts"] for a in group)),
                "endsAt": ends,
                "generatorURL": f"{url}/incidents/{i['id']}" if url else "",
                "fingerprint": fp,
            }
        )
    return {
        "version": "4",
        "groupKey": f'{{}}:{{incident="{i["key"]}"}}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": n.context.receiver,
        "groupLabels": {"incident": i["key"]},
        "commonLabels": _common([item["labels"] for item in items]),
        "commonAnnotations": _common([item["annotations"] for item in items]),
        "externalURL": url,
        "alerts": items,
    }


def _common(maps: Sequence[Mapping[str, object]]) -> dict[str, object]:
    return {k: v for k, v in maps[0].items() if all(m.get(k) == v for m in maps[1:])}


SLACK_VERB = {
    "new": "New incident",
    "escalated": "Escalated",
    "new_signals": "New signals",
    "repeat": "Still firing",
}


def slack_payload(n: Notice) -> dict[str, Any]:
    i, lead = n.incident, n.lead
    title = f"{SLACK_VERB.get(n.reason, 'Resolved')}: {i['title']}"
    emoji = ":white_check_mark:" if n.kind == "resolve" else SLACK_EMOJI[i["severity"]]
    fields = {
        "Model": i["model"],
        "Severity": i["severity"],
        "Signal": f"{lead['detector']} on {lead['signal']}",
        "Since (event time)": iso(i["first_event_ts"]),
        "Effect size": f"{_number(lead['effect_size'])} ({lead['effect']})",
        "Alerts": str(i["alert_count"]),
    }
    reproduce = {"type": "mrkdwn", "text": f"Reproduce: `{n.reproduce}`"}
    return {
        "text": f"{emoji} {title}: {n.summary()}",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": n.summary()}},
            {
                "type": "section",
                "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in fields.items()],
            },
            {"type": "context", "elements": [reproduce]},
        ],
    }


def pagerduty_payload(n: Notice) -> dict[str, Any]:
    """PagerDuty Events v2.

    ``routing_key`` is added at send time (see ``webhook_targets.body_for_target``).
    """
    i = n.incident
    if n.kind == "resolve":
        return {"event_action": "resolve", "dedup_key": i["key"]}
    lead = n.lead
    return {
        "event_action": "trigger",
        "dedup_key": i["key"],
        "client": "Driftwarden",
        "client_url": n.context.external_url,
        "payload": {
            "summary": n.summary()[:1024],
            "source": f"driftwarden/{i['model']}",
            "severity": i["severity"],
            "timestamp": iso(i["last_event_ts"]),
            "component": i["model"],
            "group": lead["signal"],
            "class": lead["detector"],
            "custom_details": generic_payload(n),
        },
    }


BUILDERS = {
    "generic": generic_payload,
    "alertmanager": alertmanager_payload,
    "slack": slack_payload,
    "pagerduty": pagerduty_payload,
}


def build_body(
    fmt: str,
    incident: Mapping[str, Any],
    alerts: Sequence[Mapping[str, Any]],
    kind: str,
    reason: str,
    context: NotificationContext,
) -> bytes:
    """The JSON bytes of one notification, with sorted keys so equal inputs give equal bytes."""
    if fmt not in BUILDERS:
        raise ValueError(f"unknown webhook format {fmt!r}: use one of {', '.join(FORMATS)}")
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r}: use one of {', '.join(KINDS)}")
    if not alerts:
        raise ValueError(f"incident {incident['id']} has no alerts to notify about")
    payload = BUILDERS[fmt](Notice(incident, alerts, kind, reason, context))
    return orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
