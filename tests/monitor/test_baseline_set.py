"""`driftwarden baseline set` and `replay --reference`: a model's reference from a file."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import orjson
import pytest
from scipy import stats

from monitor.cli.main import main
from monitor.config import Config, load_config
from monitor.ingest.events import Event
from monitor.pipeline.pipeline import Pipeline
from monitor.pipeline.reference_sample import read_reference, unpack
from monitor.replay.file_replay import replay_file
from monitor.store.store import Store
from tests.monitor.test_baseline_reset import REFERENCE, _audit

BASE_TS = 1.7e9  # 2023: in the past, as test events must be
CONFIG = """
[store]
path = "{store}"

[detection]
reference_size = {reference}
window = 200
false_alarm_events = 1e7

[[models]]
name = "m"

[[models]]
name = "other"
"""


class _Silent:
    """A progress display that shows nothing."""

    def start(self, total: int) -> None: ...
    def advance(self, done: int, events: int) -> None: ...
    def finish(self) -> None: ...


def _config_file(tmp_path: Path, store: Path, reference: int = REFERENCE) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(CONFIG.format(store=store, reference=reference), encoding="utf-8")
    return path


def _events(n: int, mean: float, seed: int, model: str = "m", start: int = 0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [
        orjson.dumps({"model": model, "ts": BASE_TS + start + i, "features": {"x": float(x)}})
        for i, x in enumerate(rng.normal(mean, 1.0, size=n))
    ]


def _write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def _alerts(path: Path) -> list[tuple[str, str, float]]:
    store = Store(path)
    try:
        rows = store.db.execute(
            "SELECT detector, signal, event_ts FROM alerts ORDER BY event_ts, detector, signal"
        ).fetchall()
    finally:
        store.close()
    return [(str(d), str(s), float(t)) for d, s, t in rows]


def _set(config: Path, reference: Path, model: str = "m") -> int:
    argv = ["baseline", "set", "--model", model, "--input", str(reference)]
    return main([*argv, "--config", str(config), "--by", "ops"])


def _replay(config: Path, events: Path, store: Path, *extra: str) -> int:
    argv = ["replay", "--config", str(config), "--input", str(events)]
    return main([*argv, "--store", str(store), *extra])


def test_a_shifted_reference_makes_a_stationary_stream_alert(tmp_path: Path) -> None:
    live = _write(tmp_path / "live.jsonl", _events(3000, 0.0, seed=1))
    shifted = _write(tmp_path / "ref.jsonl", _events(2000, 1.0, seed=2))
    default, chosen = tmp_path / "default.db", tmp_path / "chosen.db"

    assert _replay(_config_file(tmp_path, default), live, default) == 0
    assert _alerts(default) == []  # the warm-up is the stream's own distribution

    config = _config_file(tmp_path, chosen)
    assert _set(config, shifted) == 0
    assert _replay(config, live, chosen) == 0
    assert ("ks", "x") in {(detector, signal) for detector, signal, _ in _alerts(chosen)}


def test_a_running_pipeline_takes_the_reference_at_its_next_checkpoint(tmp_path: Path) -> None:
    """Vice versa: a warm-up that was unrepresentative alerts; a trusted reference does not."""
    good = _write(tmp_path / "ref.jsonl", _events(2000, 0.0, seed=3))
    alerts = {}
    for name, set_reference in (("warm-up", False), ("chosen", True)):
        path = tmp_path / f"{name}.db"
        config_path = _config_file(tmp_path, path)
        store = Store(path)
        pipeline = Pipeline(load_config(config_path), store)
        _feed(pipeline, _events(REFERENCE + 100, 1.0, seed=4))  # a shifted warm-up
        assert pipeline.models["m"].detectors.has_reference
        if set_reference:
            assert _set(config_path, good) == 0
        _feed(pipeline, _events(50, 0.0, seed=5, start=REFERENCE + 100))  # the checkpoint
        if set_reference:
            assert "m" not in pipeline.models  # dropped there; rebuilt at the next event
        before = store.count("alerts")
        _feed(pipeline, _events(3000, 0.0, seed=6, start=REFERENCE + 150))
        alerts[name] = store.count("alerts") - before
        if set_reference:
            assert pipeline.models["m"].detectors.has_reference
            assert _audit(store)[-2:] == ["reference set", "reference carried out"]
        store.close()
    assert alerts["warm-up"] > 0 and alerts["chosen"] == 0


def _feed(pipeline: Pipeline, lines: list[bytes]) -> None:
    for line in lines:
        obj = orjson.loads(line)
        pipeline.feed(Event("prediction", obj["model"], obj["ts"], features=obj["features"]))
    pipeline.checkpoint()


def test_the_reference_survives_a_restart(tmp_path: Path) -> None:
    lines = _events(3000, 0.0, seed=7)
    shifted = _write(tmp_path / "ref.jsonl", _events(2000, 1.0, seed=8))
    whole, halves = tmp_path / "whole.db", tmp_path / "halves.db"
    for path in (whole, halves):
        assert _set(_config_file(tmp_path, path), shifted) == 0
    config = load_config(_config_file(tmp_path, whole))
    _run_replay(config, whole, _write(tmp_path / "all.jsonl", lines))
    _run_replay(config, halves, _write(tmp_path / "first.jsonl", lines[:1500]))
    _run_replay(config, halves, _write(tmp_path / "second.jsonl", lines[1500:]))

    assert _alerts(halves) == _alerts(whole) and _alerts(whole)
    store = Store(halves)
    assert _audit(store).count("reference carried out") == 1  # built once, then loaded
    store.close()


def _run_replay(config: Config, path: Path, events: Path) -> None:
    store = Store(path)  # like a daemon restarting on its store: state kept
    try:
        replay_file(config, store, events, _Silent())  # type: ignore[arg-type]
    finally:
        store.close()


def test_replay_with_reference_gives_the_alerts_of_set_then_replay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    live = _write(tmp_path / "live.jsonl", _events(3000, 0.0, seed=9))
    reference = _write(
        tmp_path / "ref.jsonl", _events(1500, 1.0, seed=10) + _events(5, 0.0, 11, "unlisted")
    )
    two_steps, one_step = tmp_path / "two.db", tmp_path / "one.db"
    config = _config_file(tmp_path, two_steps)
    assert _set(config, reference) == 0
    assert _replay(config, live, two_steps) == 0
    capsys.readouterr()
    assert _replay(config, live, one_step, "--reference", str(reference)) == 0
    out = capsys.readouterr().out
    assert "model m: reference set from ref.jsonl: sample of 500 events of 1,500 read" in out
    assert "model other" not in out  # configured, but absent from the file
    assert _alerts(one_step) == _alerts(two_steps) and _alerts(one_step)

    # --overwrite empties the store but builds the reference in force again.
    assert _replay(config, live, one_step, "--overwrite") == 0
    assert _alerts(one_step) == _alerts(two_steps)


def test_a_large_file_is_sampled_to_the_reference_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    n = 20_000
    lines = [
        orjson.dumps({"model": "m", "ts": BASE_TS + i, "features": {"i": i}}) for i in range(n)
    ]
    lines[7] = b"{not json"
    lines[8] = orjson.dumps({"model": "m", "type": "label", "id": "a", "label": 1})
    reference = _write(tmp_path / "big.jsonl", lines)
    store_path = tmp_path / "s.db"
    config = _config_file(tmp_path, store_path)
    assert _set(config, reference) == 0
    out = capsys.readouterr().out
    assert f"sample of {REFERENCE} events of {n - 2:,} read" in out
    assert "1 bad line(s) skipped (first: line 8: invalid JSON" in out
    sha256 = hashlib.sha256(reference.read_bytes()).hexdigest()
    assert f"sha256 {sha256}" in out

    store = Store(store_path)
    size, rows_read, sample = store.db.execute(
        "SELECT sample_size, rows_read, sample FROM baseline_references"
    ).fetchone()
    [content] = store.db.execute(
        "SELECT content FROM audit WHERE kind = 'baseline_change'"
    ).fetchone()
    store.close()
    assert (size, rows_read) == (REFERENCE, n - 2)
    audit = orjson.loads(content)
    assert audit["sha256"] == sha256 and audit["source"] == "reference set"
    assert audit["by"] == "ops" and audit["sample_size"] == REFERENCE
    assert main(["audit", "verify", "--store", str(store_path)]) == 0

    # Every event had the same chance: the indices sampled are uniform over the file.
    indices = unpack(sample).numeric["i"]
    assert len(indices) == REFERENCE
    assert stats.kstest(indices / n, "uniform").pvalue > 0.001
    again = read_reference(reference, {"m": load_config(config).suite_settings("m")})
    assert again.samples["m"].packed() == sample  # seeded: the same file, the same sample


def test_reset_after_set_goes_back_to_the_warm_up(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    config = _config_file(tmp_path, path)
    assert _set(config, _write(tmp_path / "ref.jsonl", _events(600, 1.0, seed=12))) == 0
    assert main(["baseline", "reset", "--model", "m", "--config", str(config)]) == 0
    store = Store(path)
    model = Pipeline(load_config(config), store).model("m")
    assert model is not None and not model.detectors.has_reference
    assert _audit(store) == ["reference set", "reset requested", "reset carried out"]
    store.close()


def test_per_model_reference_size(tmp_path: Path) -> None:
    config = _config_file(tmp_path, tmp_path / "s.db")
    config.write_text(config.read_text().replace('name = "m"', 'name = "m"\nreference_size = 150'))
    loaded = load_config(config)
    assert loaded.suite_settings("m").reference_size == 150
    assert loaded.suite_settings("other").reference_size == REFERENCE


@pytest.mark.parametrize(
    ("model_lines", "expected"),
    [
        ("reference_size = 50", "key 'models[0].reference_size': reference_size must be"),
        ('reference_size = "big"', "key 'models[0].reference_size' has the wrong type"),
        (
            "reference_size = 200\ndetection = { reference_size = 300 }",
            "key 'models[0].reference_size' and 'models[0].detection.reference_size' both",
        ),
    ],
)
def test_check_config_names_a_bad_reference_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], model_lines: str, expected: str
) -> None:
    config = _config_file(tmp_path, tmp_path / "s.db")
    config.write_text(config.read_text().replace('name = "m"', f'name = "m"\n{model_lines}'))
    assert main(["check-config", str(config)]) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1


def test_errors_are_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "s.db"
    config = _config_file(tmp_path, store)
    good = _write(tmp_path / "ref.jsonl", _events(100, 0.0, seed=13))
    one = _write(tmp_path / "one.jsonl", [b"oops", *_events(1, 0.0, seed=14)])
    empty = _write(tmp_path / "empty.jsonl", [])
    cases = [
        (["--model", "nope", "--input", str(good), "--config", str(config)], "unknown model nope"),
        (["--model", "m", "--input", str(tmp_path / "missing.jsonl"), "--config", str(config)],
         "no such reference file"),
        (["--model", "m", "--input", str(empty), "--config", str(config)],
         "holds 0 usable prediction/input event(s) of model m in 0 line(s)"),
        (["--model", "m", "--input", str(one), "--config", str(config)],
         "holds 1 usable prediction/input event(s) of model m in 2 line(s) (1 bad line(s)"),
        (["--model", "m", "--input", str(good), "--store", str(store)],
         "store " + str(store) + " holds no state for it; give --config"),
    ]  # fmt: skip
    for argv, expected in cases:
        assert main(["baseline", "set", "--by", "ops", *argv]) == 2
        err = capsys.readouterr().err
        assert expected in err and err.count("\n") == 1, err
    live = _write(tmp_path / "live.jsonl", _events(10, 0.0, seed=15))
    assert _replay(config, live, tmp_path / "r.db", "--reference", str(empty)) == 2
    err = capsys.readouterr().err
    assert "fewer than 2 usable prediction/input events of every model" in err
    assert not (tmp_path / "r.db").exists()  # refused before any store is made
    store_db = Store(store)
    assert store_db.count("baseline_references") == 0  # nothing recorded by a refusal
    store_db.close()


def test_with_only_a_store_the_saved_state_gives_the_reference_size(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    config = _config_file(tmp_path, path)
    store = Store(path)
    _feed(Pipeline(load_config(config), store), _events(REFERENCE + 10, 0.0, seed=16))
    store.close()
    reference = _write(tmp_path / "ref.jsonl", _events(REFERENCE * 2, 1.0, seed=17))
    assert main(["baseline", "set", "--model", "m", "--input", str(reference),
                 "--store", str(path), "--by", "ops"]) == 0  # fmt: skip
    store = Store(path)
    [size] = store.db.execute("SELECT sample_size FROM baseline_references").fetchone()
    model = Pipeline(load_config(config), store).model("m")
    assert size == REFERENCE and model is not None and model.events == 0
    assert model.detectors.has_reference and store.load_model_state("m") is not None
    store.close()


def test_a_damaged_sample_is_set_aside_and_the_model_warms_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "s.db"
    config = _config_file(tmp_path, path)
    assert _set(config, _write(tmp_path / "ref.jsonl", _events(600, 1.0, seed=18))) == 0
    store = Store(path)
    store.db.execute("UPDATE baseline_references SET sample = X'0badbeef'")
    pipeline = Pipeline(load_config(config), store)
    model = pipeline.model("m")
    assert model is not None and not model.detectors.has_reference
    assert "cannot be built" in caplog.text
    assert _audit(store) == ["reference set", "reference unusable"]
    assert Pipeline(load_config(config), store).model("m") is not None  # no second attempt
    assert _audit(store) == ["reference set", "reference unusable"]
    store.close()


def test_baselines_of_a_cluster_mode_store_are_refused_without_its_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A cluster-mode daemon's store is a cache of the changelog: a request written into it
    would be lost, so without the cluster's config the commands say so and change nothing."""
    from monitor.cluster import cache

    store = tmp_path / "s.db"
    config = _config_file(tmp_path, store)  # a config without [cluster]
    good = _write(tmp_path / "ref.jsonl", _events(100, 0.0, seed=13))
    db = Store(store)
    cache.ensure_tables(db.db)  # as a cluster-mode daemon leaves its store
    db.close()
    commands = (
        ["baseline", "set", "--model", "m", "--input", str(good), "--config", str(config)],
        ["baseline", "reset", "--model", "m", "--store", str(store)],
    )
    for argv in commands:
        assert main([*argv, "--by", "ops"]) == 2
        err = capsys.readouterr().err
        assert "written by a cluster-mode daemon" in err and "--config" in err, err
        assert err.count("\n") == 1, err
    db = Store(store)
    assert db.count("baseline_references") == 0 and db.count("baseline_resets") == 0
    db.close()


def _cluster_config(tmp_path: Path, store: Path, bootstrap: str) -> Path:
    path = tmp_path / "cluster.toml"
    path.write_text(
        CONFIG.format(store=store, reference=REFERENCE)
        + f'\n[kafka]\nbootstrap_servers = "{bootstrap}"\ntopics = ["events"]\n'
        + "\n[cluster]\nenabled = true\n",
        encoding="utf-8",
    )
    return path


def test_in_cluster_mode_the_commands_refuse_a_store_and_need_a_broker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With a cluster-mode config the request goes to Kafka: --store is refused, an unknown
    model or a bad file is refused before Kafka is asked, and a broker that does not answer
    is one line and exit 2; no store is written either way."""
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = tmp_path / "s.db"
    config = str(_cluster_config(tmp_path, store, f"127.0.0.1:{port}"))
    good = str(_write(tmp_path / "ref.jsonl", _events(100, 0.0, seed=13)))
    few = str(_write(tmp_path / "few.jsonl", _events(1, 0.0, seed=13)))
    cases = (
        (["reset", "--model", "m", "--store", str(store)], "drop --store"),
        (["set", "--model", "m", "--input", good, "--store", str(store)], "drop --store"),
        (["reset", "--model", "nope"], "unknown model nope"),
        (["set", "--model", "nope", "--input", good], "unknown model nope"),
        (["set", "--model", "m", "--input", few], "a reference needs at least 2"),
        (["reset", "--model", "m"], "no Kafka broker answers"),
        (["set", "--model", "m", "--input", good], "no Kafka broker answers"),
    )
    for argv, why in cases:
        assert main(["baseline", *argv, "--config", config, "--by", "ops"]) == 2
        err = capsys.readouterr().err
        assert why in err and err.count("\n") == 1, (argv, err)
    assert not store.exists()
