"""TOML config into typed, frozen config (CONTRACT §3).

Unknown keys and wrong types are errors naming the file and the key; everything
not written has a default that serves a user who writes nothing else.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from typing import Any, Literal, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from detectors.suite.settings import SuiteSettings
from monitor.cluster import settings as cluster_settings
from monitor.cluster.settings import ClusterConfig
from monitor.errors import ConfigError
from monitor.incidents.kinds import GROUP_LABELS
from monitor.ingest.events import ANY_TIME, TimeBounds, rfc3339_seconds


@dataclass(frozen=True)
class StoreConfig:
    path: str = "driftwarden.db"


@dataclass(frozen=True)
class KafkaConfig:
    bootstrap_servers: list[str] = field(default_factory=lambda: ["127.0.0.1:9092"])
    topics: list[str] = field(default_factory=lambda: ["driftwarden-events"])
    group_id: str = "driftwarden"
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    # A poll must be able to take a whole fetch of a partition (1 MB, ~10,000 small events):
    # a partition left part-read is skipped by the next fetch request, and the broker then
    # holds that request up to fetch_max_wait_ms for the partitions with nothing new. With
    # 500 the daemon waited idle most of the time on one busy partition of four (issue 16).
    max_poll_records: int = 10_000
    # How long the broker may hold a fetch with nothing new: bounds that wait where a poll
    # cannot take a whole fetch, at ~10 fetch requests a second from an idle consumer.
    fetch_max_wait_ms: int = 100
    session_timeout_ms: int = 10_000
    dead_letter_topic: str = ""
    consumer_processes: int = 1
    # Fetch, decode and parse records in a process of its own beside each consume loop, so
    # that the loop's core goes to the detectors (issue 16). Not in cluster mode.
    fetch_process: bool = True


@dataclass(frozen=True)
class CheckpointConfig:
    every_records: int = 100_000
    every_seconds: float = 5.0


@dataclass(frozen=True)
class OpsConfig:
    host: str = "127.0.0.1"
    port: int = 9187
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    stop_timeout_seconds: float = 20.0
    # Per model, the signals that get driftwarden_signal_* gauges (firing first, then
    # the lowest p-values): a bound on /metrics series however many features a model has.
    max_signal_series: int = 50


@dataclass(frozen=True)
class AlertmanagerConfig:
    """One ``[[alertmanagers]]``: a real Alertmanager that firing signals are pushed to."""

    url: str
    resend_seconds: float = 60.0


@dataclass(frozen=True)
class WebhookConfig:
    url: str
    format: Literal["generic", "alertmanager", "slack", "pagerduty"] = "generic"
    secret_env: str = ""
    min_severity: Literal["info", "warning", "critical"] = "warning"
    routing_key_env: str = ""


@dataclass(frozen=True)
class AlertingConfig:
    # Alerts of one group share an incident while it is open (monitor.incidents.kinds).
    group_by: list[str] = field(default_factory=lambda: ["model", "kind"])
    # Accepted so that older configs stay valid; incidents now follow signal states.
    group_seconds: float = 3600.0
    resolve_after_seconds: float = 3600.0


@dataclass(frozen=True)
class HistoryConfig:
    # Signal history (every windowed test's statistic) is kept this long, in event time.
    retention_days: float = 30.0


@dataclass(frozen=True)
class EventsConfig:
    """Which event times are believed: producers are hostile by assumption."""

    earliest: str = "2000-01-01T00:00:00Z"
    max_future_seconds: float = 86_400.0
    # The zone of event times written without one (an IANA name such as "UTC" or
    # "Europe/Berlin"); "" refuses them.
    default_time_zone: str = ""

    def earliest_ts(self) -> float:
        return rfc3339_seconds(self.earliest)

    def zone(self) -> tzinfo | None:
        """``default_time_zone`` as a zone; ValueError naming it when it is none."""
        if not self.default_time_zone:
            return None
        try:
            return ZoneInfo(self.default_time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f'{self.default_time_zone!r:.60} is not a time zone name (e.g. "UTC", '
                '"Europe/Berlin")'
            ) from None

    def live_bounds(self, now: float) -> TimeBounds:
        """The daemon's: from ``earliest`` to ``max_future_seconds`` past the wall clock."""
        return TimeBounds(self.earliest_ts(), now + self.max_future_seconds, self.zone())

    def replay_bounds(self, now: float) -> TimeBounds:
        """Replays': any past time (forensics reaches back), no further ahead than live."""
        return TimeBounds(ANY_TIME.earliest, now + self.max_future_seconds, self.zone())


@dataclass(frozen=True)
class NotificationsConfig:
    repeat_seconds: float = 14_400.0
    group_interval_seconds: float = 300.0
    max_age_seconds: float = 86_400.0
    external_url: str = ""


@dataclass(frozen=True)
class AuditConfig:
    # The environment variable holding the audit log's HMAC key; "" = an unkeyed chain.
    key_env: str = ""


@dataclass(frozen=True)
class LimitsConfig:
    max_unlisted_models: int = 1000
    quarantine_raw_bytes: int = 65_536
    quarantine_buffer_records: int = 10_000
    quarantine_buffer_bytes: int = 16_777_216


_DURATION_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}


@dataclass(frozen=True)
class LabelsConfig:
    # How long (event time) a prediction with an id waits for its label: "30d", "12h", "90m".
    horizon: str = "30d"
    # Predictions waiting per model; beyond it the oldest are evicted (and counted).
    max_pending: int = 10_000_000
    # Labels with segment keys that make a model's feedback reference before its test begins.
    feedback_reference: int = 5_000

    def horizon_seconds(self) -> float:
        """``horizon`` in seconds; ValueError saying the accepted form if it is not one."""
        text = self.horizon.strip()
        unit = _DURATION_UNITS.get(text[-1:])
        try:
            amount = float(text[:-1]) if unit is not None else math.nan
        except ValueError:
            amount = math.nan
        if unit is None or not math.isfinite(amount) or amount <= 0:
            raise ValueError(
                f'must be a positive number followed by s, m, h or d (e.g. "30d"), got {text!r}'
            )
        return amount * unit


@dataclass(frozen=True)
class ModelConfig:
    name: str
    detection: dict[str, Any] = field(default_factory=dict)
    # Events in this model's reference (its warm-up, or the sample `baseline set`
    # draws from a file); None: [detection] reference_size.
    reference_size: int | None = None
    # Features that are categories even where their values are numbers (codes).
    categorical: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Config:
    store: StoreConfig = field(default_factory=StoreConfig)
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    ops: OpsConfig = field(default_factory=OpsConfig)
    notifications: NotificationsConfig = field(default_factory=NotificationsConfig)
    alerting: AlertingConfig = field(default_factory=AlertingConfig)
    history: HistoryConfig = field(default_factory=HistoryConfig)
    events: EventsConfig = field(default_factory=EventsConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    labels: LabelsConfig = field(default_factory=LabelsConfig)
    detection: dict[str, Any] = field(default_factory=dict)
    models: list[ModelConfig] = field(default_factory=list)
    webhooks: list[WebhookConfig] = field(default_factory=list)
    alertmanagers: list[AlertmanagerConfig] = field(default_factory=list)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    source: str = "<defaults>"

    def model(self, name: str) -> ModelConfig | None:
        return next((m for m in self.models if m.name == name), None)

    def suite_settings(self, model: str) -> SuiteSettings:
        """The detector settings of one model: global [detection], then the model's own."""
        chosen = self.model(model)
        overrides = {**self.detection, **(chosen.detection if chosen else {})}
        if chosen is not None and chosen.reference_size is not None:
            overrides["reference_size"] = chosen.reference_size
        return dataclasses.replace(SuiteSettings(), **overrides)


def load_config(path: str | Path) -> Config:
    """Read and validate a config file; raises ``ConfigError`` naming file and key."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(raw, str(path))


def parse_config(raw: dict[str, Any], source: str) -> Config:
    data = dict(raw)
    detection = data.pop("detection", {})
    models = data.pop("models", [])
    config: Config = _build(Config, data, source, "")
    if not isinstance(models, list):
        raise ConfigError(f"{source}: key 'models' must be an array of tables ([[models]])")
    if not models:
        raise ConfigError(f"{source}: no [[models]]: name at least one model to watch")
    model_configs = []
    for i, item in enumerate(models):
        where = f"models[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{source}: key '{where}' must be a table")
        item = dict(item)
        model_detection = _detection(item.pop("detection", {}), source, f"{where}.detection")
        built = _build(ModelConfig, item, source, where + ".")
        _check_reference_size(built, model_detection, source, where)
        model_configs.append(dataclasses.replace(built, detection=model_detection))
    names = [m.name for m in model_configs]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ConfigError(f"{source}: model {duplicated[0]!r} is listed twice under [[models]]")
    if any(not n for n in names):
        raise ConfigError(f"{source}: key 'models[].name' must not be empty")
    config = dataclasses.replace(
        config,
        detection=_detection(detection, source, "detection"),
        models=model_configs,
        source=source,
    )
    _check_values(config)
    return config


def _check_reference_size(
    model: ModelConfig, detection: dict[str, Any], source: str, where: str
) -> None:
    """``models[].reference_size``: the settings' own bound, and one place to say it."""
    size = model.reference_size
    if size is None:
        return
    if "reference_size" in detection:
        raise ConfigError(
            f"{source}: key '{where}.reference_size' and '{where}.detection.reference_size' "
            "both set the model's reference size: keep one"
        )
    try:
        dataclasses.replace(SuiteSettings(), reference_size=size)
    except ValueError as exc:
        raise ConfigError(f"{source}: key '{where}.reference_size': {exc}") from None


def _detection(raw: Any, source: str, where: str) -> dict[str, Any]:
    """[detection] tables map onto ``SuiteSettings``; validated by the settings themselves."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: key '{where}' must be a table")
    hints = typing.get_type_hints(SuiteSettings)
    known = {f.name for f in dataclasses.fields(SuiteSettings)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            raise ConfigError(
                f"{source}: unknown key '{where}.{key}' (known: {', '.join(sorted(known))})"
            )
        values[key] = _coerce(value, hints[key], source, f"{where}.{key}")
    try:
        dataclasses.replace(SuiteSettings(), **values)
    except ValueError as exc:
        raise ConfigError(f"{source}: key '{where}': {exc}") from None
    return values


def _check_values(config: Config) -> None:
    source = config.source
    if not config.store.path:
        raise ConfigError(f"{source}: key 'store.path' must not be empty")
    if not config.kafka.topics:
        raise ConfigError(f"{source}: key 'kafka.topics' must name at least one topic")
    if config.kafka.consumer_processes < 1:
        raise ConfigError(f"{source}: key 'kafka.consumer_processes' must be at least 1")
    if config.kafka.max_poll_records < 1:
        raise ConfigError(f"{source}: key 'kafka.max_poll_records' must be at least 1")
    if not 0 <= config.kafka.fetch_max_wait_ms <= 5_000:
        raise ConfigError(
            f"{source}: key 'kafka.fetch_max_wait_ms' must be between 0 and 5000 (milliseconds)"
        )
    if config.checkpoint.every_records < 1 or config.checkpoint.every_seconds <= 0:
        raise ConfigError(f"{source}: keys 'checkpoint.*' must be positive")
    alerting = config.alerting
    if alerting.group_seconds <= 0 or alerting.resolve_after_seconds < alerting.group_seconds:
        raise ConfigError(
            f"{source}: keys 'alerting.*': group_seconds must be positive and "
            "resolve_after_seconds at least group_seconds"
        )
    if not 0 < config.history.retention_days <= 36_500:
        raise ConfigError(
            f"{source}: key 'history.retention_days' must be more than 0 and at most 36500"
        )
    group_by = config.alerting.group_by
    unknown = [label for label in group_by if label not in GROUP_LABELS]
    if unknown or "model" not in group_by or len(set(group_by)) != len(group_by):
        raise ConfigError(
            f"{source}: key 'alerting.group_by' must list distinct labels among "
            f'{", ".join(GROUP_LABELS)}, "model" included (an incident is one model\'s), '
            f"got {group_by!r}"
        )
    try:
        config.events.zone()
    except ValueError as exc:
        raise ConfigError(f"{source}: key 'events.default_time_zone': {exc}") from None
    try:
        config.events.earliest_ts()
    except ValueError as exc:
        raise ConfigError(f"{source}: key 'events.earliest' {exc}") from None
    if not 0 <= config.events.max_future_seconds <= 10 * 365 * 86_400:
        raise ConfigError(
            f"{source}: key 'events.max_future_seconds' must be between 0 and ten years"
        )
    try:
        if config.labels.horizon_seconds() > 3650 * 86_400:
            raise ValueError("must be at most ten years (3650d)")
    except ValueError as exc:
        raise ConfigError(f"{source}: key 'labels.horizon' {exc}") from None
    if not 1 <= config.labels.max_pending <= 1_000_000_000:
        raise ConfigError(f"{source}: key 'labels.max_pending' must be between 1 and 1000000000")
    if not 1_000 <= config.labels.feedback_reference <= 10_000_000:
        raise ConfigError(
            f"{source}: key 'labels.feedback_reference' must be between 1000 and 10000000"
        )
    for key, value in dataclasses.asdict(config.limits).items():
        if value < 1:
            raise ConfigError(f"{source}: key 'limits.{key}' must be at least 1")
    if not 0 <= config.ops.port <= 65535:
        raise ConfigError(f"{source}: key 'ops.port' must be a port number (0 picks a free one)")
    for i, hook in enumerate(config.webhooks):
        if not hook.url.startswith(("http://", "https://")):
            raise ConfigError(f"{source}: key 'webhooks[{i}].url' must be an http(s) URL")
    if not 1 <= config.ops.max_signal_series <= 10_000:
        raise ConfigError(f"{source}: key 'ops.max_signal_series' must be between 1 and 10000")
    _check_alertmanagers(config)
    wrong = cluster_settings.problems(config.cluster, config.kafka.topics, config.kafka.group_id)
    if wrong is not None:
        raise ConfigError(f"{source}: key '{wrong[0]}' {wrong[1]}")


def _check_alertmanagers(config: Config) -> None:
    source = config.source
    urls = [am.url.rstrip("/") for am in config.alertmanagers]
    for i, am in enumerate(config.alertmanagers):
        where = f"alertmanagers[{i}]"
        if not am.url.startswith(("http://", "https://")) or "?" in am.url:
            raise ConfigError(
                f"{source}: key '{where}.url' must be an Alertmanager's base http(s) URL "
                f'such as "http://alertmanager:9093" (without /api/v2/alerts), got {am.url!r}'
            )
        if am.url.rstrip("/").endswith("/api/v2/alerts"):
            raise ConfigError(
                f"{source}: key '{where}.url' is the base URL: drop the trailing /api/v2/alerts"
            )
        if urls.count(urls[i]) > 1:
            raise ConfigError(f"{source}: Alertmanager {am.url!r} is listed twice")
        if not 1 <= am.resend_seconds <= 3600:
            raise ConfigError(
                f"{source}: key '{where}.resend_seconds' must be between 1 and 3600 seconds"
            )


def _build(cls: type[Any], raw: dict[str, Any], source: str, prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "source"}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"{source}: unknown key '{prefix}{key}' (known: {known})")
        values[key] = _coerce(value, hints[key], source, prefix + key)
    missing = [
        name
        for name, f in fields.items()
        if name not in values
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{source}: missing key '{prefix}{missing[0]}'")
    return cls(**values)


def _coerce(value: Any, hint: Any, source: str, key: str) -> Any:
    origin = get_origin(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: key '{key}' must be a table")
        return _build(hint, value, source, key + ".")
    if origin is Literal:
        choices = get_args(hint)
        if value not in choices:
            raise ConfigError(
                f"{source}: key '{key}' must be one of {', '.join(map(repr, choices))}, "
                f"got {value!r}"
            )
        return value
    if origin in (types.UnionType, typing.Union):
        options = [a for a in get_args(hint) if a is not type(None)]
        if value is None and len(options) < len(get_args(hint)):
            return None
        for option in options:
            try:
                return _coerce(value, option, source, key)
            except ConfigError:
                continue
        raise ConfigError(f"{source}: key '{key}' has the wrong type ({_toml_kind(value)})")
    if origin in (list, tuple):
        if key == "kafka.bootstrap_servers" and isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list):
            raise ConfigError(f"{source}: key '{key}' must be an array, got {_toml_kind(value)}")
        (item_hint, *_) = get_args(hint) or (Any,)
        items = [_coerce(v, item_hint, source, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or hint is Any:
        return value
    expected = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in expected:
        if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
            raise ConfigError(
                f"{source}: key '{key}' must be {expected[hint]}, got {_toml_kind(value)}"
            )
        return value
    return value


def _toml_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__
