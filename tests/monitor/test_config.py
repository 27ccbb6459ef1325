"""Config: typed and frozen, good defaults, every error names the key and the file."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.config import load_config, parse_config
from monitor.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "driftwarden.toml"
    path.write_text(text)
    return path


def test_smallest_config_gets_defaults(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, '[store]\npath = "x.db"\n[[models]]\nname = "fraud"\n'))
    assert config.store.path == "x.db"
    assert [m.name for m in config.models] == ["fraud"]
    assert config.kafka.auto_offset_reset == "earliest"
    assert config.suite_settings("fraud") == type(config.suite_settings("fraud"))()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.store.path = "y.db"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('[store]\npth = "x.db"\n[[models]]\nname = "m"\n', "'store.pth'"),
        ('[store]\npath = 3\n[[models]]\nname = "m"\n', "'store.path' must be a string"),
        ('[kafka]\ntopics = "t"\n[[models]]\nname = "m"\n', "'kafka.topics' must be an array"),
        (
            '[kafka]\nauto_offset_reset = "first"\n[[models]]\nname = "m"\n',
            "'kafka.auto_offset_reset'",
        ),
        ('[[models]]\nname = "m"\ncolour = "red"\n', "'models[0].colour'"),
        ('[[models]]\nname = "m"\n[[models]]\nname = "m"\n', "listed twice"),
        ('[store]\npath = "x.db"\n', "no [[models]]"),
        ('[detection]\nno_such_knob = 1\n[[models]]\nname = "m"\n', "'detection.no_such_knob'"),
        ('[[webhooks]]\nformat = "slack"\n[[models]]\nname = "m"\n', "'webhooks[0].url'"),
        ('[[models]]\nname = "m"\n[oops\n', "not valid TOML"),
        ('[kafka]\nfetch_max_wait_ms = -1\n[[models]]\nname = "m"\n', "'kafka.fetch_max_wait_ms'"),
        (
            '[labels]\nfeedback_reference = 100\n[[models]]\nname = "m"\n',
            "'labels.feedback_reference' must be between 1000",
        ),
    ],
)
def test_errors_name_the_key_and_the_file(tmp_path: Path, text: str, named: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert str(path) in message and named in message, message
    assert "\n" not in message


def _check_config(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor.cli", "check-config", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


def test_check_config_exit_codes(tmp_path: Path) -> None:
    good = _check_config(ROOT / "configs" / "minimal.toml")
    assert good.returncode == 0, good.stderr
    broken = _check_config(_write(tmp_path, '[kafka]\ngroup_id = 7\n[[models]]\nname = "m"\n'))
    assert broken.returncode == 2
    assert broken.stderr.count("\n") == 1 and "'kafka.group_id'" in broken.stderr
    assert "Traceback" not in broken.stderr
    missing = _check_config(tmp_path / "absent.toml")
    assert missing.returncode == 2 and "no such config file" in missing.stderr


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.toml")), ids=lambda p: p.name)
def test_shipped_configs_are_valid(path: Path) -> None:
    result = _check_config(path)
    assert result.returncode == 0, result.stderr


def test_the_example_config_shows_every_key() -> None:
    import tomllib
    import typing

    from detectors.suite.settings import SuiteSettings
    from monitor.config import Config

    text = (ROOT / "configs" / "example.toml").read_text()
    raw = tomllib.loads(text)
    hints = typing.get_type_hints(Config)
    sections = ("store", "kafka", "checkpoint", "ops", "alerting", "notifications", "audit")
    for section in (*sections, "limits", "events", "history", "cluster"):
        for f in dataclasses.fields(hints[section]):
            assert f.name in raw[section], f"configs/example.toml lacks {section}.{f.name}"
    webhook_keys = set(raw["webhooks"][0])
    from monitor.config import WebhookConfig

    assert {f.name for f in dataclasses.fields(WebhookConfig)} == webhook_keys
    from monitor.config import AlertmanagerConfig

    assert {f.name for f in dataclasses.fields(AlertmanagerConfig)} == set(raw["alertmanagers"][0])
    shown = set(raw["detection"]) | {"options"}  # options is shown commented out
    assert {f.name for f in dataclasses.fields(SuiteSettings)} == shown
    assert "options = {" in text


def test_alertmanagers_are_read_with_their_defaults(tmp_path: Path) -> None:
    config = load_config(
        _write(
            tmp_path,
            '[[models]]\nname = "m"\n[[alertmanagers]]\nurl = "http://am-1:9093"\n'
            '[[alertmanagers]]\nurl = "https://am-2:9093/"\nresend_seconds = 15\n',
        )
    )
    assert [(a.url, a.resend_seconds) for a in config.alertmanagers] == [
        ("http://am-1:9093", 60.0),
        ("https://am-2:9093/", 15.0),
    ]
    assert config.ops.max_signal_series == 50


@pytest.mark.parametrize(
    ("table", "named"),
    [
        ('[[alertmanagers]]\nurl = "am:9093"\n', "'alertmanagers[0].url' must be an Alertmanager"),
        ('[[alertmanagers]]\nurl = "http://am:9093/api/v2/alerts"\n', "drop the trailing"),
        ("[[alertmanagers]]\nresend_seconds = 5\n", "missing key 'alertmanagers[0].url'"),
        ('[[alertmanagers]]\nurl = "http://am:9093"\nresend_seconds = 0\n', "resend_seconds"),
        ('[[alertmanagers]]\nurl = "http://am:9093"\nrepeat = 1\n', "'alertmanagers[0].repeat'"),
        (
            '[[alertmanagers]]\nurl = "http://am:9093"\n[[alertmanagers]]\nurl = "http://am:9093/"\n',
            "listed twice",
        ),
        ("[ops]\nmax_signal_series = 0\n", "'ops.max_signal_series' must be between 1 and 10000"),
    ],
)
def test_alertmanager_and_series_errors_name_the_key(
    tmp_path: Path, table: str, named: str
) -> None:
    with pytest.raises(ConfigError, match=r"driftwarden\.toml") as caught:
        load_config(_write(tmp_path, table + '[[models]]\nname = "m"\n'))
    assert named in str(caught.value)


def test_cluster_mode_is_off_by_default_and_checked_when_on() -> None:
    from monitor.cluster.settings import topics, transactional_id

    plain = parse_config({"models": [{"name": "m"}]}, "c.toml")
    assert plain.cluster.enabled is False
    named = topics(plain.cluster, "grp")
    assert (named.changelog, named.alerts, named.quarantine) == (
        "grp-changelog",
        "grp-alerts",
        "grp-quarantine",
    )
    on = {"models": [{"name": "m"}], "cluster": {"enabled": True}}
    with pytest.raises(ConfigError, match=r"c.toml: key 'kafka.topics' must name exactly one"):
        parse_config({**on, "kafka": {"topics": ["a", "b"]}}, "c.toml")
    with pytest.raises(ConfigError, match=r"'cluster.transaction_timeout_ms' must be between"):
        parse_config({**on, "cluster": {"transaction_timeout_ms": 10}}, "c.toml")
    # one topic in two roles: alerts read back as events, deliveries as checkpoints
    with pytest.raises(ConfigError, match=r"'cluster.alerts_topic' names 'ev', which is already "):
        parse_config(
            {**on, "kafka": {"topics": ["ev"]}, "cluster": {"enabled": True, "alerts_topic": "ev"}},
            "c.toml",
        )
    shared = {"enabled": True, "deliveries_topic": "driftwarden-changelog"}
    with pytest.raises(ConfigError, match=r"'cluster.deliveries_topic' .* the changelog topic"):
        parse_config({**on, "cluster": shared}, "c.toml")
    config = parse_config(on, "c.toml")
    # The same slot of the same daemon has the same id at every start; another store, another.
    first = transactional_id(config.cluster, "grp", "/var/lib/a.db", 1)
    assert first == transactional_id(config.cluster, "grp", "/var/lib/a.db", 1)
    assert first != transactional_id(config.cluster, "grp", "/var/lib/b.db", 1)
    assert first != transactional_id(config.cluster, "grp", "/var/lib/a.db", 0)


def test_notify_outside_cluster_mode_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "monitor.cli",
            "notify",
            "--config",
            "configs/minimal.toml",
            "--store",
            str(tmp_path / "n.db"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "set [cluster] enabled = true" in done.stderr
