"""The config the demo's daemon runs with: configs/demo.toml's models, the demo's broker."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from simulation.demo.processes import ROOT

BASE_CONFIG = ROOT / "configs" / "demo.toml"


def write_demo_config(
    path: Path,
    *,
    store: Path,
    bootstrap: str,
    topic: str,
    ops_port: int,
    webhook_url: str,
    secret_env: str,
) -> None:
    models, detection = _base_models()
    lines = [
        "# Written by `driftwarden demo` from configs/demo.toml.",
        "[store]",
        f"path = {_toml(str(store))}",
        "",
        "[kafka]",
        f"bootstrap_servers = {_toml(bootstrap)}",
        f"topics = [{_toml(topic)}]",
        f"group_id = {_toml(topic)}",
        'auto_offset_reset = "earliest"',
        "",
        "[checkpoint]",
        "every_records = 5000",
        "every_seconds = 1.0",
        "",
        "[ops]",
        f"port = {ops_port}",
        "",
        "# Event time runs ~100x faster than the wall clock here: update on-call",
        "# about new signals within seconds, not the production 5 minutes.",
        "[notifications]",
        "group_interval_seconds = 2.0",
        "",
        "[[webhooks]]",
        f"url = {_toml(webhook_url)}",
        'format = "generic"',
        f"secret_env = {_toml(secret_env)}",
        'min_severity = "warning"',
    ]
    if detection:
        lines += ["", "[detection]", *(f"{k} = {_toml(v)}" for k, v in detection.items())]
    for name in models:
        lines += ["", "[[models]]", f"name = {_toml(name)}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _base_models() -> tuple[list[str], dict[str, Any]]:
    """The models (and any [detection]) of configs/demo.toml; the simulator's two otherwise."""
    try:
        raw = tomllib.loads(BASE_CONFIG.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return ["fraud", "churn"], {}
    models = [m["name"] for m in raw.get("models", []) if isinstance(m, dict) and "name" in m]
    detection = {
        k: v
        for k, v in raw.get("detection", {}).items()
        if isinstance(v, str | int | float | bool | list)
    }
    return models or ["fraud", "churn"], detection


def _toml(value: Any) -> str:
    """A TOML literal of a string, number, bool or flat list (JSON spells these the same)."""
    return json.dumps(value)
