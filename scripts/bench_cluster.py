"""Cluster mode's cost: throughput against single-machine mode, and restore time.

    .venv/bin/python scripts/bench_cluster.py [--events 100000] [--rounds 2]

Starts its own broker through scripts/kafka and writes the events of
``bench_daemon.py``'s ``spread`` shape (8 models over 2 partitions, keyed by
model; 20 features, a client, a request id, a score and a prediction). In
each round, on fresh groups and stores, one after the other:

1. ``driftwarden run`` in single-machine mode, one process, the smallest
   config (every key at its default), timed off its /metrics from the moment
   it holds its partitions to the last record, as ``bench_daemon.py`` does;
2. the same in cluster mode (``[cluster] enabled = true``, the topics created
   as README says), so every checkpoint is a Kafka transaction carrying the
   changed state (each prediction with an id waits for its label in the
   changelog too), and the ratio of the two rates;
3. after that daemon stops, a new one of the group with an empty store: the
   restore of both partitions from the changelog's beginning (its
   ``changelog restored`` log line: records read, rows, seconds; per model);
4. that daemon stopped and started again with its store: the restore from
   its cached changelog offsets.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
from kafka.admin import KafkaAdminClient, NewTopic

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

from bench_daemon import SHAPES, group_formed, metric, produce_shape, start_broker  # noqa: E402

from simulation.demo.processes import free_port  # noqa: E402

SHAPE = "spread"


def write_config(workdir: Path, name: str, bootstrap: str, cluster: bool, store: str) -> Path:
    _, models = SHAPES[SHAPE]
    config = workdir / f"{name}.toml"
    table = "\n[cluster]\nenabled = true\n" if cluster else ""
    config.write_text(
        f"""
[store]
path = "{workdir / store}.db"

[kafka]
bootstrap_servers = "{bootstrap}"
topics = ["{SHAPE}"]
group_id = "{name}"

[ops]
port = {free_port()}
log_level = "info"
{table}"""
        + "".join(f'\n[[models]]\nname = "m{i}"\n' for i in range(models))
    )
    return config


def create_cluster_topics(bootstrap: str, group: str) -> None:
    partitions, _ = SHAPES[SHAPE]
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    compact = {"cleanup.policy": "compact"}
    admin.create_topics(
        [
            NewTopic(f"{group}-changelog", partitions, 1, topic_configs=compact),
            NewTopic(f"{group}-alerts", partitions, 1),
            NewTopic(f"{group}-quarantine", 1, 1),
        ]
    )
    admin.close()


def run_daemon(config: Path, log: Path, total: int | None) -> float:
    """Start a daemon; with ``total``, its rate (events/s) from holding its partitions to the
    last record; without, run until its first restore is logged. Then stop it (SIGTERM)."""
    port = int(config.read_text().split("port = ")[1].split()[0])
    restored_before = len(restores(log))
    with log.open("ab") as out:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "monitor.cli", "run", "--config", str(config)],
            cwd=ROOT,
            stderr=out,
        )
    try:
        started = first = None
        while True:
            if daemon.poll() is not None:
                raise SystemExit(f"the daemon exited with {daemon.returncode}: see {log}")
            if total is None:
                if len(restores(log)) > restored_before:
                    return 0.0
            else:
                done = metric(port, "driftwarden_records_consumed_total")
                now = time.perf_counter()
                if done and started is None and group_formed(port, 1):
                    started, first = now, done
                if done >= total:
                    assert started is not None and first is not None
                    return (total - first) / (now - started)
            time.sleep(0.1)
    finally:
        daemon.send_signal(signal.SIGTERM)
        if daemon.wait(timeout=120) != 0:
            raise SystemExit(f"the daemon failed to stop cleanly: see {log}")


def restores(log: Path) -> list[dict[str, object]]:
    lines = log.read_text().splitlines() if log.exists() else []
    return [orjson.loads(line) for line in lines if '"changelog restored"' in line]


def measure_round(bootstrap: str, total: int, workdir: Path, round_: int) -> float:
    _, models = SHAPES[SHAPE]
    single = write_config(workdir, f"single-{round_}", bootstrap, False, f"single-{round_}")
    single_rate = run_daemon(single, workdir / f"single-{round_}.log", total)
    group = f"cluster-{round_}"
    create_cluster_topics(bootstrap, group)
    cluster = write_config(workdir, group, bootstrap, True, f"{group}-a")
    cluster_rate = run_daemon(cluster, workdir / f"{group}-a.log", total)
    print(
        f"round {round_}: single-machine {single_rate:,.0f} events/s, cluster mode "
        f"{cluster_rate:,.0f} events/s, ratio {cluster_rate / single_rate:.2f}",
        flush=True,
    )
    fresh = write_config(workdir, group, bootstrap, True, f"{group}-b")
    log = workdir / f"{group}-b.log"
    for kind in ("an empty store, from the beginning", "its store, from its cached offsets"):
        run_daemon(fresh, log, None)
        restored = restores(log)[-1]
        seconds = float(restored["seconds"])  # type: ignore[arg-type]
        print(
            f"round {round_}: restore into {kind}: {restored['records']:,} changelog records, "
            f"{restored['rows']:,} rows, {len(restored['models'])} models "  # type: ignore[arg-type]
            f"on {len(restored['partitions'])} partitions in {seconds:.2f} s "  # type: ignore[arg-type]
            f"({seconds / models:.2f} s per model)",
            flush=True,
        )
    return cluster_rate / single_rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--keep", help="a folder to keep the configs, stores and logs in")
    args = parser.parse_args()
    bootstrap = start_broker()
    produce_shape(bootstrap, SHAPE, args.events)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(args.keep or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        ratios = [
            measure_round(bootstrap, args.events, workdir, round_)
            for round_ in range(1, args.rounds + 1)
        ]
    print(f"median ratio, cluster mode to single-machine: {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
