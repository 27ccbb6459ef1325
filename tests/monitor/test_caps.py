"""Hard caps on what a producer can make the pipeline hold, with a real store and replay."""

from __future__ import annotations

import gc
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from detectors.base import RowBatch
from monitor.config import Config, load_config
from monitor.ingest.events import Event, parse_event
from monitor.pipeline.limits import UNLISTED_NAME_CHARS, UNLISTED_OTHER
from monitor.pipeline.pipeline import Pipeline
from monitor.store.store import Store
from simulation.simulator import write_simulation

ROOT = Path(__file__).resolve().parents[2]
START = 1_790_000_000.0  # 2026-09-21: in the past, as replayed events are


def _config(tmp_path: Path, extra: str = "", detection: str = "") -> Config:
    path = tmp_path / "caps.toml"
    path.write_text(
        f'[store]\npath = "{tmp_path / "store.db"}"\n{extra}\n'
        f"[detection]\nwindow = 500\nreference_size = 1000\n{detection}\n"
        '[[models]]\nname = "m"\n'
    )
    return load_config(path)


def _event(i: int, **features: Any) -> Event:
    values = {"a": float(i % 7), "b": ["x", "y"][i % 2], **features}
    return Event("prediction", "m", START + i, id=str(i), features=values, score=0.5)


def _feature_names(store: Store) -> list[str]:
    state, _ = store.load_model_state("m")  # type: ignore[misc]
    return state["feature_names"]  # type: ignore[no-any-return]


def test_600_feature_names_in_the_warm_up_keep_500(tmp_path: Path) -> None:
    config = _config(tmp_path)
    store = Store(config.store.path)
    pipeline = Pipeline(config, store)
    for i in range(800):
        pipeline.feed(_event(i, **{f"n{i % 600}": 1.0}))
    # Columns are built from the buffered events: no dropped name is left in them.
    buffered = [f or {} for f in pipeline.models["m"].buffered_features()]
    assert len(buffered) == 800 and set().union(*buffered) == {"a", "b"} | {
        f"n{i}" for i in range(498)
    }
    pipeline.checkpoint()
    names = _feature_names(store)
    assert len(names) == 500
    assert set(names) == {"a", "b"} | {f"n{i}" for i in range(498)}
    assert pipeline.stats.features_dropped["m"] == 102  # n498..n599, once each
    store.close()

    # A restart decides as before: admitted names stay, others stay out.
    store = Store(config.store.path)
    again = Pipeline(config, store)
    for i in range(800, 1500):
        again.feed(_event(i, n10=2.0, n550=2.0, late=3.0))
    again.checkpoint()
    assert _feature_names(store) == names
    assert again.stats.features_dropped["m"] == 2 * 700
    assert again.models["m"].detectors.has_reference
    state, _ = store.load_model_state("m")  # type: ignore[misc]
    assert "feature:n550" not in state["numeric"] and "feature:n10" in state["numeric"]
    store.close()


def _hostile_lines() -> Iterator[bytes]:
    for i in range(3000):
        features: dict[str, Any] = {"a": i % 7, "b": ["x", "y"][i % 2], f"n{i % 900}": 1.0}
        if i == 5:
            features.update({f"wide{j}": j for j in range(2000)})
        yield orjson.dumps({"model": "m", "ts": START + i, "features": features, "score": 0.5})


def _replay_in_process(config: Config, lines: list[bytes], tmp_path: Path, every: int) -> Store:
    """Replay ``lines``, checkpointing (and reloading every model) every ``every`` lines."""
    store = Store(tmp_path / f"every{every}.db")
    pipeline = Pipeline(config, store)
    for n, line in enumerate(lines, start=1):
        pipeline.feed(parse_event(line))  # type: ignore[arg-type]
        if n % every == 0:
            pipeline.checkpoint()
            pipeline.forget_models()
    pipeline.checkpoint()
    return store


def test_admission_does_not_depend_on_checkpoints(tmp_path: Path) -> None:
    config = _config(tmp_path, detection="max_features = 300")
    lines = list(_hostile_lines())
    one = _replay_in_process(config, lines, tmp_path, len(lines))
    many = _replay_in_process(config, lines, tmp_path, 97)
    try:
        assert _feature_names(one) == _feature_names(many)
        assert len(_feature_names(one)) == 300
        assert one.alerts() == many.alerts()
        states = [s.load_model_state("m") for s in (one, many)]
        assert states[0] == states[1]
    finally:
        one.close()
        many.close()


# The CLI as `python -m monitor.cli` runs it, then its own peak resident memory (kB)
# into argv[1]: a child's ru_maxrss would include this process's memory at the fork.
CHILD = """
import sys
from pathlib import Path
from monitor.cli.main import main
try:
    code = main(sys.argv[2:])
finally:
    status = Path("/proc/self/status").read_text().splitlines()
    Path(sys.argv[1]).write_text(next(l for l in status if l.startswith("VmHWM:")).split()[1])
sys.exit(code)
"""


def _peak_rss_mb(args: list[str], peak: Path) -> tuple[int, float]:
    """Run the CLI with ``args``; its exit code and its peak resident memory in MB."""
    command = [sys.executable, "-c", CHILD, str(peak), *args]
    code = subprocess.run(command, cwd=ROOT, capture_output=True, timeout=600).returncode
    return code, int(peak.read_text()) / 1024


def test_one_record_with_50000_features_does_not_blow_memory(tmp_path: Path) -> None:
    events = tmp_path / "wide.jsonl"
    with events.open("wb") as out:
        for i in range(3000):
            features: dict[str, Any] = {"a": i % 7, "b": i % 3}
            if i == 10:
                features.update({f"feature_number_{j}": j * 0.5 for j in range(50_000)})
            out.write(orjson.dumps({"model": "m", "ts": START + i, "features": features}) + b"\n")
    assert events.stat().st_size > 1_000_000
    config = tmp_path / "wide.toml"
    config.write_text('[store]\npath = "x.db"\n[[models]]\nname = "m"\n')
    code, peak = _peak_rss_mb(
        [
            *("replay", "--config", str(config)),
            *("--input", str(events), "--store", str(tmp_path / "wide.db")),
        ],
        tmp_path / "peak.txt",
    )
    assert code == 0
    # Uncapped, this record padded 50,000 columns over the warm-up: over 4 GB.
    assert peak < 800, f"peak RSS {peak:.0f} MB"
    with sqlite3.connect(tmp_path / "wide.db") as db:
        (size,) = db.execute("SELECT length(state) FROM model_state").fetchone()
        (blobs,) = db.execute("SELECT coalesce(sum(length(data)), 0) FROM state_blobs").fetchone()
    assert size + blobs < 20_000_000


def test_1000_metric_names_track_100(tmp_path: Path) -> None:
    config = _config(tmp_path)
    store = Store(config.store.path)
    pipeline = Pipeline(config, store)
    for i in range(5000):
        name = f"metric{i % 1000}"
        pipeline.feed(Event("metric", "m", START + i, name=name, value=float(i % 13)))
    pipeline.checkpoint()
    state, _ = store.load_model_state("m")  # type: ignore[misc]
    assert state["metric_names"] == sorted(f"metric{i}" for i in range(100))
    assert sorted(state["metrics"]) == state["metric_names"]
    assert pipeline.stats.metric_points_dropped["m"] == 900 * 5
    store.close()


def test_100000_unlisted_model_names_are_counted_in_bounded_space(tmp_path: Path) -> None:
    config = _config(tmp_path, extra="[limits]\nmax_unlisted_models = 1000\n")
    store = Store(config.store.path)
    pipeline = Pipeline(config, store)
    long = "x" * 5000
    for i in range(100_000):
        assert not pipeline.feed(Event("prediction", f"{long}{i}" if i % 2 else f"u{i}", START))
    unlisted = pipeline.stats.unlisted
    assert len(unlisted) == 1001
    assert sum(unlisted.values()) == 100_000
    assert all(len(name) <= UNLISTED_NAME_CHARS + 1 for name in unlisted)
    assert unlisted["x" * UNLISTED_NAME_CHARS + "…"] == 50_000, "long names are cut, then merge"
    assert unlisted[UNLISTED_OTHER] == 100_000 - 50_000 - 999
    assert pipeline.models == {}
    store.close()


def test_caps_that_do_not_bite_change_no_alert(tmp_path: Path) -> None:
    events = tmp_path / "sim.jsonl"
    write_simulation(events, events=30_000, seed=5, malformed=200)
    default = ROOT / "configs" / "demo.toml"
    loose = tmp_path / "loose.toml"
    loose.write_text(
        default.read_text()
        + "\n[limits]\nquarantine_buffer_records = 7\nmax_unlisted_models = 1\n"
        + "[detection]\nmax_features = 100000\nmax_metric_series = 100000\n"
    )
    stores = []
    for config in (default, loose):
        store = tmp_path / f"{config.stem}.db"
        result = subprocess.run(
            [
                *(sys.executable, "-m", "monitor.cli", "replay", "--config", str(config)),
                *("--input", str(events), "--store", str(store)),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stderr
        stores.append(Store(store))
    try:
        assert stores[0].count("alerts") > 0
        assert stores[0].alerts() == stores[1].alerts()
        assert stores[0].count("quarantine") == stores[1].count("quarantine") == 200
    finally:
        for s in stores:
            s.close()


def test_no_batch_is_held_between_flushes(tmp_path: Path) -> None:
    """A flushed micro-batch's columns are let go (they were kept per model until the
    next flush: ~0.3 MB a model of 20 features)."""

    def live_batches() -> int:  # other tests may leave some: count this test's alone
        gc.collect()
        return sum(isinstance(o, RowBatch) for o in gc.get_objects())

    config = _config(tmp_path)
    pipeline = Pipeline(config, Store(config.store.path))
    before = live_batches()
    for i in range(3000):  # past the reference of 1,000: the drift detectors code the batch
        pipeline.feed(_event(i))
    pipeline.checkpoint()
    assert pipeline.models["m"].detectors.has_reference
    assert live_batches() == before
