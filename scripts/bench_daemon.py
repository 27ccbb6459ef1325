"""Daemon throughput against a bare kafka-python read, and memory with many models.

    .venv/bin/python scripts/bench_daemon.py [--events 300000] [--models 1000]
        [--processes 1 2] [--rounds 3] [--shapes spread one-busy]
        [--code LABEL=DIR ...] [--skip-memory]

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
and reports each ratio, and beside it the ratio of CPU seconds per event (the
bare read's over the daemon's processes', from /proc), which load from other
jobs moves far less than events/s; with ``--code``, the daemons of several
source trees one after the other in each round (code before and after a
change, within one run); then the resident memory of the pipeline holding
``--models`` models of 20 features each, five windows past their references (each
request id its own string, as in a real stream), and
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


def bare_read(bootstrap: str, topic: str, total: int) -> tuple[float, float]:
    """Events/s of the bare read, and its CPU seconds per event (this process's)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, max_poll_records=50_000
    )
    parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    seen, started, cpu = 0, None, time.process_time()
    while seen < total:
        for records in consumer.poll(timeout_ms=500).values():
            started = started or time.perf_counter()
            for record in records:
                orjson.loads(record.value)
            seen += len(records)
    elapsed = time.perf_counter() - (started or 0)
    cpu = time.process_time() - cpu
    consumer.close()
    return total / elapsed, cpu / total


def tree_cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of process ``pid`` and its descendants (from /proc):
    on a machine shared with other jobs, CPU per event moves far less than events/s."""
    parent: dict[int, int] = {}
    spent: dict[int, float] = {}
    ticks = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                text = stat.read()
        except OSError:  # gone meanwhile
            continue
        fields = text[text.rindex(")") + 2 :].split()  # from the state on (field 3)
        parent[int(entry)] = int(fields[1])
        spent[int(entry)] = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    tree, grown = {pid}, True
    while grown:
        more = {p for p, pp in parent.items() if pp in tree} - tree
        tree |= more
        grown = bool(more)
    return sum(spent.get(p, 0.0) for p in tree)


def daemon_rate(
    bootstrap: str,
    topic: str,
    total: int,
    workdir: Path,
    processes: int,
    models: int,
    tree: Path = ROOT,
) -> tuple[float, float, float]:
    """``driftwarden run`` as deployed, read off /metrics, once its group has formed.

    The clock starts when every worker holds a partition (by /readyz) and has
    consumed, and stops at the last record: the one-time group join, during
    which a first worker may hold every partition, is start-up, not throughput.
    Returns events/s, the share of the loop spent waiting idle in poll, and the CPU
    seconds per event of the daemon's processes over the same span. ``tree``
    is the source tree whose daemon runs (another checkout, to compare code).
    """
    port = free_port()
    name = f"{topic}-p{processes}-{abs(hash(tree)) % 10_000}"
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
    env = {**os.environ, "PYTHONPATH": str(tree)} if tree != ROOT else None
    daemon = subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "run", "--config", str(config)], cwd=tree, env=env
    )
    try:
        started = first = None
        cpu = 0.0
        while True:
            done = metric(port, "driftwarden_records_consumed_total")
            now = time.perf_counter()
            if done and started is None and group_formed(port, processes):
                started, first, cpu = now, done, tree_cpu_seconds(daemon.pid)
            if done >= total:
                break
            if daemon.poll() is not None:
                raise SystemExit(f"the daemon exited with {daemon.returncode}")
            time.sleep(0.1)
        cpu = tree_cpu_seconds(daemon.pid) - cpu
        waiting = metric(port, "driftwarden_poll_waiting_seconds_total")
        behind = metric(port, "driftwarden_poll_behind_seconds_total")
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
    assert started is not None and first is not None
    idle = waiting / behind if behind else float("nan")
    return (total - first) / (now - started), idle, cpu / (total - first)


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
    # Past the reference, five windows: CBPE then keeps its reference's worth of windows
    # waiting for labels (realized_after + 1), as it does however long the stream.
    settings = config.suite_settings("m0")
    per_model = settings.reference_size + 5 * max(settings.window, settings.estimated_window)
    lines = make_events(per_model, 1, seed=3)
    events = [e for e in map(parse_event, lines) if isinstance(e, Event)]
    store = Store(config.store.path)
    pipeline = Pipeline(config, store)
    before = rss_mb()
    for i in range(models):
        name = f"m{i}"
        for event in events:
            # Each request id its own text, as every model's stream has: the ids kept
            # for labels to join are the model's own. Callers and classes are shared,
            # as the fetch process hands them over.
            pipeline.feed(replace(event, model=name, id=_copy(event.id)))
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


def _copy(text: str | None) -> str | None:
    """A new string object equal to ``text`` (a slice of a whole string is the string)."""
    return None if text is None or len(text) < 2 else text[:1] + text[1:]


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
    ratios: dict[tuple[str, int, str], list[float]],
    cpu_ratios: dict[tuple[str, int, str], list[float]],
    round_: int,
) -> None:
    """The bare read of one shape, right before the daemons on it.

    On a shared machine the speed drifts between minutes; a ratio within a round does not.
    """
    partitions, models = SHAPES[name]
    bare, bare_cpu = bare_read(bootstrap, name, args.events)
    print(
        f"round {round_}, {name} ({models} model(s), {partitions} partitions): "
        f"bare kafka-python + orjson read, one consumer: {bare:,.0f} events/s, "
        f"{bare_cpu * 1e6:.1f} us CPU per event",
        flush=True,
    )
    workdir.mkdir(parents=True, exist_ok=True)
    for processes in args.processes:
        for label, tree in args.code:
            rate, idle, cpu = daemon_rate(
                bootstrap, name, args.events, workdir, processes, models, tree
            )
            ratios[name, processes, label].append(rate / bare)
            cpu_ratios[name, processes, label].append(bare_cpu / cpu)
            print(
                f"round {round_}, {name}: daemon{label and f' ({label})'} at the defaults, "
                f"consumer_processes = {processes}: {rate:,.0f} events/s, ratio to the bare "
                f"read {rate / bare:.2f}, idle in poll while behind {idle:.0%}; "
                f"{cpu * 1e6:.1f} us CPU per event, CPU ratio (bare / daemon) "
                f"{bare_cpu / cpu:.2f}",
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
    parser.add_argument(
        "--code",
        nargs="+",
        metavar="LABEL=DIR",
        help="run the daemon of each of these source trees (another checkout, e.g. from "
        "`git worktree add`), one after the other in every round, so that code changes "
        "compare within one run (default: this tree)",
    )
    parser.add_argument(
        "--skip-memory", action="store_true", help="leave out the memory measurement"
    )
    parser.add_argument("--memory-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.code = code_trees(parser, args.code)
    if args.memory_only:
        report_memory(args.models)
        return
    bootstrap = start_broker()
    print(f"generating {args.events:,} events of 20 features...", flush=True)
    for name in args.shapes:
        produce_shape(bootstrap, name, args.events)
    with tempfile.TemporaryDirectory() as tmp:
        ratios: dict[tuple[str, int, str], list[float]] = {
            (name, p, label): []
            for name in args.shapes
            for p in args.processes
            for label, _ in args.code
        }
        cpu_ratios: dict[tuple[str, int, str], list[float]] = {key: [] for key in ratios}
        for round_ in range(1, args.rounds + 1):
            for name in args.shapes:
                where = Path(tmp) / f"round{round_}"
                measure_round(bootstrap, name, args, where, ratios, cpu_ratios, round_)
        for (name, processes, label), values in ratios.items():
            print(
                f"median ratio over {len(values)} round(s), {name}, "
                f"{label and f'{label}, '}consumer_processes = {processes}: "
                f"{statistics.median(values):.2f} (CPU ratio "
                f"{statistics.median(cpu_ratios[name, processes, label]):.2f})"
            )
    if args.skip_memory:
        return
    # In a fresh process: this one's heap still holds what the reads above freed,
    # and new models would fill it without raising the resident size.
    subprocess.run(
        [sys.executable, __file__, "--memory-only", "--models", str(args.models)], check=True
    )


def code_trees(parser: argparse.ArgumentParser, given: list[str] | None) -> list[tuple[str, Path]]:
    """``--code LABEL=DIR`` as (label, tree); this tree, unlabelled, when none is given."""
    if not given:
        return [("", ROOT)]
    trees = []
    for item in given:
        label, _, where = item.partition("=")
        tree = Path(where).resolve()
        if not label or not (tree / "monitor" / "cli").is_dir():
            parser.error(f"--code {item}: give LABEL=DIR, DIR a Driftwarden source tree")
        trees.append((label, tree))
    return trees


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
