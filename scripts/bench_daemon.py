"""Daemon throughput against a bare kafka-python read, and memory with many models.

    .venv/bin/python scripts/bench_daemon.py [--events 300000] [--models 1000]
        [--processes 1 2] [--rounds 3] [--shapes spread one-busy]

Starts its own broker through scripts/kafka and writes the same events (16
numeric and 4 categorical features, client, request id, score and prediction)
in two shapes, keyed by model as producers do:
- ``spread``: 8 models over a 2-partition topic, both partitions busy;
- ``one-busy``: one model on a 4-partition topic, so one partition holds every
  record and three stay empty (the shape that left the daemon idle in issue 16).
For each shape, in one run, it measures:
1. a bare kafka-python + orjson read of the topic by one consumer (the ceiling;
   it takes up to 50,000 records a poll, so its fetches never wait);
2. ``driftwarden run`` end to end (parse, detectors, alerts, checkpoints to
   SQLite) with the smallest config, so every [kafka] setting at its default
   (``consumer_processes`` aside, for each setting asked for), from the moment
   every worker holds a partition to its last record, as its /metrics report
   them, with the share of its loop spent waiting in poll while records were
   pending (``driftwarden_poll_waiting_seconds`` over ``..._behind_seconds``),
and reports each ratio; then the resident memory of the pipeline holding
``--models`` models of 20 features each, after their references are built, and
the time a checkpoint takes per model when every one of them has a new event.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

import numpy as np
import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monitor.config import parse_config  # noqa: E402
from monitor.ingest.events import Event, parse_event  # noqa: E402
from monitor.pipeline.pipeline import Pipeline  # noqa: E402
from monitor.store.store import Store  # noqa: E402
from simulation.demo.processes import free_port  # noqa: E402

CATEGORIES = [["a", "b", "c", "d"], ["x", "y"], ["red", "green", "blue"], ["n", "s", "e", "w"]]


def make_events(n: int, models: int, seed: int = 1) -> list[bytes]:
    rng = np.random.default_rng(seed)
    numeric = rng.normal(size=(n, 16))
    cats = [rng.integers(len(c), size=n) for c in CATEGORIES]
    scores = rng.random(n)
    out = []
    for i in range(n):
        features: dict[str, object] = {f"x{j}": round(float(numeric[i, j]), 4) for j in range(16)}
        for j, values in enumerate(CATEGORIES):
            features[f"c{j}"] = values[int(cats[j][i])]
        event = {
            "model": f"m{i % models}",
            "ts": 1_793_491_200 + i * 0.01,
            "features": features,
            "client": f"client-{i % 37}",
            "id": f"req-{seed}-{i}",
            "score": round(float(scores[i]), 4),
            "prediction": "yes" if scores[i] > 0.5 else "no",
        }
        out.append(orjson.dumps(event))
    return out


def start_broker() -> str:
    port = free_port()
    cmd = [
        str(ROOT / "scripts" / "kafka"),
        "start",
        "--port",
        str(port),
        "--owner-pid",
        str(os.getpid()),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return done.stdout.strip().splitlines()[-1].split("=", 1)[1]


def bare_read(bootstrap: str, topic: str, total: int) -> float:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, max_poll_records=50_000
    )
    parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    seen, started = 0, None
    while seen < total:
        for records in consumer.poll(timeout_ms=500).values():
            started = started or time.perf_counter()
            for record in records:
                orjson.loads(record.value)
            seen += len(records)
    elapsed = time.perf_counter() - (started or 0)
    consumer.close()
    return total / elapsed


def daemon_rate(
    bootstrap: str, topic: str, total: int, workdir: Path, processes: int, models: int
) -> tuple[float, float]:
    """``driftwarden run`` as deployed, read off /metrics, once its group has formed.

    The clock starts when every worker holds a partition (by /readyz) and has
    consumed, and stops at the last record: the one-time group join, during
    which a first worker may hold every partition, is start-up, not throughput.
    Returns events/s and the share of the loop spent waiting idle in poll.
    """
    port = free_port()
    name = f"{topic}-p{processes}"
    # The smallest config: every other key at its default.
    workers = f"consumer_processes = {processes}\n" if processes != 1 else ""
    config = workdir / f"{name}.toml"
    config.write_text(
        f"""
[store]
path = "{workdir / name}.db"

[kafka]
bootstrap_servers = "{bootstrap}"
topics = ["{topic}"]
group_id = "bench-{workdir.name}-{name}"
{workers}
[ops]
port = {port}
log_level = "warning"
"""
        + "".join(f'\n[[models]]\nname = "m{i}"\n' for i in range(models))
    )
    daemon = subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "run", "--config", str(config)], cwd=ROOT
    )
    try:
        started = first = None
        while True:
            done = metric(port, "driftwarden_records_consumed_total")
            now = time.perf_counter()
            if done and started is None and group_formed(port, processes):
                started, first = now, done
            if done >= total:
                break
            if daemon.poll() is not None:
                raise SystemExit(f"the daemon exited with {daemon.returncode}")
            time.sleep(0.1)
        waiting = metric(port, "driftwarden_poll_waiting_seconds_total")
        behind = metric(port, "driftwarden_poll_behind_seconds_total")
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
    assert started is not None and first is not None
    return (total - first) / (now - started), waiting / behind if behind else float("nan")


def metric(port: int, name: str) -> float:
    """A sample summed over labels and workers; 0 until the server answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return 0.0
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    )


def group_formed(port: int, processes: int) -> bool:
    """Every worker ready with at least one partition, as /readyz says."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return False
    held = [int(n) for n in re.findall(r"ok: (\d+) partition\(s\) assigned", text)]
    return len(held) == processes and min(held) >= 1


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def many_models_memory(models: int, workdir: Path) -> tuple[float, float, float]:
    config = parse_config(
        {
            "store": {"path": str(workdir / "mem.db")},
            "models": [{"name": f"m{i}"} for i in range(models)],
        },
        "bench",
    )
    per_model = config.suite_settings("m0").reference_size + 2 * config.suite_settings("m0").window
    lines = make_events(per_model, 1, seed=3)
    events = [e for e in map(parse_event, lines) if isinstance(e, Event)]
    store = Store(config.store.path)
    pipeline = Pipeline(config, store)
    before = rss_mb()
    for i in range(models):
        name = f"m{i}"
        for event in events:
            pipeline.feed(replace(event, model=name))
        pipeline.checkpoint()  # as the daemon does every checkpoint.every_records
    after = rss_mb()
    checkpoint_ms = []
    for _ in range(3):  # every model touched: its whole state goes through the checkpoint
        for i in range(models):
            pipeline.feed(replace(events[-1], model=f"m{i}"))
        started = time.perf_counter()
        pipeline.checkpoint()
        checkpoint_ms.append((time.perf_counter() - started) * 1000 / models)
    store.close()
    return after - before, (after - before) / models, min(checkpoint_ms)


# Topic shapes: (partitions, models). Records are keyed by model, so one model
# fills one partition.
SHAPES = {"spread": (2, 8), "one-busy": (4, 1)}


def produce_shape(bootstrap: str, name: str, total: int) -> None:
    partitions, models = SHAPES[name]
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=512 * 1024)
    for value in make_events(total, models):
        producer.send(name, key=orjson.loads(value)["model"].encode(), value=value)
    producer.flush()
    producer.close()


def measure_round(
    bootstrap: str,
    name: str,
    args: argparse.Namespace,
    workdir: Path,
    ratios: dict[tuple[str, int], list[float]],
    round_: int,
) -> None:
    """The bare read of one shape, right before the daemons on it.

    On a shared machine the speed drifts between minutes; a ratio within a round does not.
    """
    partitions, models = SHAPES[name]
    bare = bare_read(bootstrap, name, args.events)
    print(
        f"round {round_}, {name} ({models} model(s), {partitions} partitions): "
        f"bare kafka-python + orjson read, one consumer: {bare:,.0f} events/s",
        flush=True,
    )
    workdir.mkdir(parents=True, exist_ok=True)
    for processes in args.processes:
        rate, idle = daemon_rate(bootstrap, name, args.events, workdir, processes, models)
        ratios[name, processes].append(rate / bare)
        print(
            f"round {round_}, {name}: daemon at the defaults, consumer_processes = "
            f"{processes}: {rate:,.0f} events/s, ratio to the bare read {rate / bare:.2f}, "
            f"idle in poll while behind {idle:.0%}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument(
        "--rounds", type=int, default=3, help="bare read then daemons, repeated (default: 3)"
    )
    parser.add_argument(
        "--processes",
        type=int,
        nargs="+",
        default=[1, 2],
        help="consumer_processes settings to measure, in order (default: 1 2)",
    )
    parser.add_argument(
        "--shapes",
        nargs="+",
        choices=sorted(SHAPES),
        default=list(SHAPES),
        help="topic shapes to measure (default: spread one-busy)",
    )
    parser.add_argument("--memory-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_only:
        report_memory(args.models)
        return
    bootstrap = start_broker()
    print(f"generating {args.events:,} events of 20 features...", flush=True)
    for name in args.shapes:
        produce_shape(bootstrap, name, args.events)
    with tempfile.TemporaryDirectory() as tmp:
        ratios: dict[tuple[str, int], list[float]] = {
            (name, p): [] for name in args.shapes for p in args.processes
        }
        for round_ in range(1, args.rounds + 1):
            for name in args.shapes:
                measure_round(bootstrap, name, args, Path(tmp) / f"round{round_}", ratios, round_)
        for (name, processes), values in ratios.items():
            print(
                f"median ratio over {len(values)} round(s), {name}, "
                f"consumer_processes = {processes}: {statistics.median(values):.2f}"
            )
    # In a fresh process: this one's heap still holds what the reads above freed,
    # and new models would fill it without raising the resident size.
    subprocess.run(
        [sys.executable, __file__, "--memory-only", "--models", str(args.models)], check=True
    )


def report_memory(models: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        total_mb, per_model, checkpoint_ms = many_models_memory(models, Path(tmp))
    print(
        f"resident memory for {models:,} models of 20 features: {total_mb:,.0f} MB "
        f"({per_model * 1024:,.0f} kB per model); a checkpoint of them all, one new event "
        f"each: {checkpoint_ms:.2f} ms per model (fastest of 3)"
    )


if __name__ == "__main__":
    main()
