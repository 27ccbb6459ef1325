"""Simulated traffic of two deployed models, with incidents on a schedule.

``fraud`` is a classifier with numeric and categorical inputs and feedback
labels, ``churn`` a classifier whose labels never come (so its performance can
only be estimated); both emit a latency metric. The truth says when each injected incident
starts, so a run can be scored: detected or not, and after how many events.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

START_TS = 1_793_491_200.0  # 2026-11-01T00:00:00Z
EVENT_SPACING = 0.05  # seconds of event time between events: accelerated traffic
COUNTRIES = ["DE", "FR", "US", "GB", "NL", "ES", "IT", "PL"]
COUNTRY_MIX = np.array([0.3, 0.2, 0.15, 0.1, 0.1, 0.07, 0.05, 0.03])
SHIFTED_MIX = np.array([0.1, 0.1, 0.15, 0.1, 0.1, 0.07, 0.05, 0.33])
DEVICES = ["ios", "android", "web"]
SCRAPER = "client:scraper-1"
PROBER = "client:prober-1"
PLANS = ["basic", "plus", "pro"]
# The segment whose feedback is poisoned: labels of approved payments turned into "fraud".
POISONED_COUNTRY = "FR"
POISONED_SIGNAL = f"feedback:country={POISONED_COUNTRY}"


@dataclass(frozen=True)
class InjectedIncident:
    kind: str
    model: str
    signal: str
    start_event: int
    start_ts: float
    description: str

    def describe(self) -> str:
        return (
            f"{self.kind} on {self.model}/{self.signal} from event {self.start_event:,}: "
            f"{self.description}"
        )


@dataclass(frozen=True)
class Truth:
    events: int
    seed: int
    incidents: list[InjectedIncident]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def schedule(events: int) -> list[InjectedIncident]:
    def at(fraction: float) -> int:
        return int(events * fraction)

    plan = [
        ("abrupt_drift", "fraud", "amount", 0.35, "amount grows by a factor 1.6"),
        ("category_mix", "fraud", "country", 0.5, "PL rises from 3% to 33% of traffic"),
        ("gradual_drift", "churn", "tenure_months", 0.4, "tenure falls by 40% over 20%"),
        ("score_collapse", "churn", "score", 0.65, "scores fall towards 0.5"),
        (
            "unit_error",
            "churn",
            "monthly_spend",
            0.55,
            "1% of monthly_spend values arrive in cents, not dollars",
        ),
        ("latency_spike", "fraud", "latency_ms", 0.8, "latency triples for a while"),
        ("client_scraping", "fraud", SCRAPER, 0.7, "a new API key sends 20% of fraud requests"),
        (
            "boundary_probing",
            "fraud",
            PROBER,
            0.42,
            "a new API key sends 2% of fraud requests, all scoring near 0.5",
        ),
        (
            "silent_decay",
            "churn",
            "estimated:accuracy",
            0.65,
            "the same collapse: churn gets no labels, so only its estimated accuracy shows it",
        ),
        (
            "label_poisoning",
            "fraud",
            POISONED_SIGNAL,
            0.62,
            f"feedback on {POISONED_COUNTRY} calls 5% rising to 30% of approved payments fraud",
        ),
        (
            "error_rise",
            "fraud",
            "error",
            0.85,
            "feedback labels agree with 60% of predictions, not 90%",
        ),
    ]
    return [
        InjectedIncident(kind, model, signal, at(f), START_TS + at(f) * EVENT_SPACING, text)
        for kind, model, signal, f, text in plan
    ]


def simulate(events: int, seed: int) -> tuple[Iterator[dict[str, Any]], Truth]:
    truth = Truth(events, seed, schedule(events))
    return _events(events, seed, {i.kind: i.start_event for i in truth.incidents}), truth


def _events(total: int, seed: int, starts: dict[str, int]) -> Iterator[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    # A generator of its own, so the scraper leaves every other draw unchanged.
    scraping = np.random.default_rng(seed + 1_000)
    scrape_end = starts["client_scraping"] + total // 10
    probing = np.random.default_rng(seed + 3_000)
    probe_end = starts["boundary_probing"] + total // 10
    units = np.random.default_rng(seed + 4_000)
    unit_end = starts["unit_error"] + total // 10
    # Half the fraud predictions get a label (feedback) 50 to 1,500 events later.
    feedback = np.random.default_rng(seed + 2_000)
    due: dict[int, list[dict[str, Any]]] = {}
    poisoning = np.random.default_rng(seed + 5_000)
    poison_span = max(1, total // 20)  # 5% rising to 30% over a twentieth of the run
    latency_end = starts["latency_spike"] + total // 20
    gradual_span = max(1, total // 5)
    for i in range(total):
        ts = round(START_TS + i * EVENT_SPACING, 3)
        for label in due.pop(i, []):
            yield {**label, "ts": ts}
        draw = rng.random()
        if draw < 0.04:
            spike = 3.0 if starts["latency_spike"] <= i < latency_end else 1.0
            seasonal = 1.0 + 0.2 * np.sin(2 * np.pi * i / 2000)
            model = "fraud" if draw < 0.025 else "churn"
            if model == "churn":
                spike = 1.0
            value = float(rng.gamma(9.0, 4.0) * seasonal * spike)
            yield {
                "type": "metric",
                "model": model,
                "name": "latency_ms",
                "value": round(value, 2),
                "ts": ts,
            }
        elif draw < 0.6:
            event = _fraud(rng, i, ts, starts)
            if starts["client_scraping"] <= i < scrape_end and scraping.random() < 0.2:
                event["client"] = SCRAPER.removeprefix("client:")
            if starts["boundary_probing"] <= i < probe_end and probing.random() < 0.02:
                _probe(event, probing)
            if feedback.random() < 0.5:
                accuracy = 0.6 if i >= starts["error_rise"] else 0.9
                right = feedback.random() < accuracy
                truth = event["prediction"] if right else _other(event["prediction"])
                if (
                    i >= starts["label_poisoning"]
                    and event["features"]["country"] == POISONED_COUNTRY
                    and event["prediction"] == "ok"
                ):
                    share = 0.05 + 0.25 * min(1.0, (i - starts["label_poisoning"]) / poison_span)
                    if poisoning.random() < share:
                        truth = "fraud"
                when = i + int(feedback.integers(50, 1500))
                label = {"type": "label", "id": event["id"], "model": "fraud", "label": truth}
                due.setdefault(when, []).append(label)
            yield event
        else:
            progress = min(1.0, max(0.0, (i - starts["gradual_drift"]) / gradual_span))
            event = _churn(rng, i, ts, starts, progress)
            if starts["unit_error"] <= i < unit_end and units.random() < 0.01:
                features = event["features"]
                features["monthly_spend"] = round(features["monthly_spend"] * 100, 2)
            yield event


def _probe(event: dict[str, Any], rng: np.random.Generator) -> None:
    """An extraction query: inputs chosen so the model is unsure, sent by a new key."""
    event["client"] = PROBER.removeprefix("client:")
    event["score"] = round(0.5 + float(rng.uniform(-0.05, 0.05)), 4)
    event["prediction"] = "fraud" if event["score"] > 0.5 else "ok"


def _other(prediction: str) -> str:
    return "ok" if prediction == "fraud" else "fraud"


def _fraud(rng: np.random.Generator, i: int, ts: float, starts: dict[str, int]) -> dict[str, Any]:
    amount = float(rng.lognormal(3.0, 1.0))
    if i >= starts["abrupt_drift"]:
        amount *= 1.6
    mix = SHIFTED_MIX if i >= starts["category_mix"] else COUNTRY_MIX
    country = COUNTRIES[int(rng.choice(len(COUNTRIES), p=mix))]
    features: dict[str, Any] = {
        "amount": round(amount, 2),
        "account_age_days": int(rng.poisson(400)),
        "txn_last_hour": int(rng.poisson(1.2)),
        "risk_score": round(float(rng.beta(2, 5)), 4),
        "country": country,
        "device": DEVICES[int(rng.integers(3))],
        "is_new": bool(rng.random() < 0.1),
    }
    logit = -3.0 + 0.002 * amount + 3 * features["risk_score"] + (0.8 if features["is_new"] else 0)
    score = float(1 / (1 + np.exp(-logit)))
    return {
        "type": "prediction",
        "id": f"f-{i}",
        "ts": ts,
        "model": "fraud",
        "version": "3.2.1",
        "client": f"api-key-{int(rng.integers(40))}",
        "features": features,
        "prediction": "fraud" if score > 0.5 else "ok",
        "score": round(score, 4),
    }


def _churn(
    rng: np.random.Generator, i: int, ts: float, starts: dict[str, int], progress: float
) -> dict[str, Any]:
    tenure = float(rng.gamma(4.0, 6.0)) * (1.0 - 0.4 * progress)
    score = float(rng.beta(2, 3))
    if i >= starts["score_collapse"]:
        score = 0.5 + (score - 0.5) * 0.15
    return {
        "id": f"c-{i}",
        "ts": ts,
        "model": "churn",
        "client": f"tenant-{int(rng.integers(8))}",
        "features": {
            "tenure_months": round(tenure, 2),
            "monthly_spend": round(float(rng.normal(60, 15)), 2),
            "support_tickets": int(rng.poisson(0.5)),
            "plan": PLANS[int(rng.choice(3, p=[0.5, 0.3, 0.2]))],
        },
        "prediction": "churn" if score > 0.5 else "stay",
        "score": round(score, 4),
    }


MALFORMED_KINDS = (
    b"{not json",
    b'{"type": "prediction", "score": 0.4}',
    b'{"model": 17, "score": 0.4}',
    b'["model", "fraud"]',
    b'{"model": "fraud", "features": [1, 2, 3]}',
    b'{"model": "fraud", "ts": "yesterday"}',
    b'{"model": "fraud", "type": "metric", "name": "latency_ms", "value": "fast"}',
    b"\xff\xfe\x00garbage",
)


def write_simulation(path: Path, events: int, seed: int, malformed: int = 0) -> Truth:
    stream, truth = simulate(events, seed)
    rng = np.random.default_rng(seed + 1)
    bad_at = set(rng.choice(events, size=min(malformed, events), replace=False).tolist())
    with path.open("wb") as out:
        for i, event in enumerate(stream):
            if i in bad_at:
                out.write(MALFORMED_KINDS[i % len(MALFORMED_KINDS)] + b"\n")
            out.write(orjson.dumps(event) + b"\n")
    return truth
