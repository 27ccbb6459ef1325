"""The ``driftwarden`` command line (CONTRACT §2).

The one place that reads argv. The environment is read here (the debug switch,
``DRIFTWARDEN_BUSY_TIMEOUT_MS``, webhook secrets, ``NOTIFY_SOCKET``) and, for
the audit log's key only, by ``audit.key_from_env`` where a row is appended:
worker processes inherit it, and commands that only read never ask for it.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path

from monitor import __version__
from monitor.audit import commands as audit_commands
from monitor.cli import labels_command, performance_command
from monitor.cli.console import wide_console
from monitor.cli.safe_text import LINE_LIMIT, cell, printable
from monitor.cluster import topics_command as cluster_topics
from monitor.config import Config, load_config
from monitor.errors import DriftwardenError
from monitor.incidents import commands as incident_commands
from monitor.incidents import signal_commands
from monitor.ingest import quarantine_commands
from monitor.pipeline import baseline_reset, baseline_set
from monitor.replay import compare as replay_compare
from monitor.replay import kafka_replay
from monitor.report import report
from monitor.silence import commands as silence_commands
from monitor.store import store
from monitor.store.errors import describe, store_errors


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        _require_text_arguments(args)
        _busy_timeout(os.environ.get("DRIFTWARDEN_BUSY_TIMEOUT_MS"))
        return int(args.handler(args))
    except DriftwardenError as exc:
        print(f"driftwarden: {printable(exc, LINE_LIMIT)}", file=sys.stderr)
        return 2
    except sqlite3.Error as exc:
        said = describe(exc, None)  # a store error no command caught with its path
        if said is None or os.environ.get("DRIFTWARDEN_DEBUG"):
            raise
        print(f"driftwarden: {printable(said, LINE_LIMIT)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("driftwarden: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if os.environ.get("DRIFTWARDEN_DEBUG"):
            raise
        print(
            f"driftwarden: unexpected error: {type(exc).__name__}: {printable(exc, LINE_LIMIT)} "
            "(set DRIFTWARDEN_DEBUG=1 for a traceback, and please report it)",
            file=sys.stderr,
        )
        return 1


def _require_text_arguments(args: argparse.Namespace) -> None:
    """Names and comments go into the store and the audit log, which hold Unicode text:
    an argument with bytes that are not UTF-8 (decoded as surrogates) is refused."""
    for name in ("by", "comment"):
        value = getattr(args, name, None)
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise DriftwardenError(
                    f"--{name} is not valid UTF-8 text: {printable(value)}"
                ) from None


def _busy_timeout(text: str | None) -> None:
    """``DRIFTWARDEN_BUSY_TIMEOUT_MS``: how long to wait for the store's write lock."""
    if text is None or not text.strip():
        return
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise DriftwardenError(
            f"DRIFTWARDEN_BUSY_TIMEOUT_MS={text!r}: give milliseconds, a whole number >= 0"
        )
    store.BUSY_TIMEOUT_MS = value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="driftwarden",
        description="Watch deployed models on Kafka for drift, output anomalies and attacks.",
    )
    parser.add_argument("--version", action="version", version=f"driftwarden {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="the daemon: consume Kafka, detect, store, notify")
    run.add_argument("--config", required=True, help="the TOML config")
    run.add_argument("--store", help="SQLite store (default: the config's store.path)")
    # Stop (after the final checkpoint) when this process ends: how `demo` keeps
    # its daemon from outliving it, even when the demo itself is SIGKILLed.
    run.add_argument("--owner-pid", type=int, help=argparse.SUPPRESS)
    run.set_defaults(handler=_run)

    notify = commands.add_parser(
        "notify", help="cluster mode: the alerts topic into incidents, webhooks and the audit log"
    )
    notify.add_argument("--config", required=True, help="the TOML config (with [cluster])")
    notify.add_argument("--store", help="SQLite store (default: the config's store.path)")
    notify.set_defaults(handler=_notify)

    check = commands.add_parser("check-config", help="validate a config file")
    check.add_argument("file", help="the TOML config to check")
    check.set_defaults(handler=_check_config)

    replay = commands.add_parser("replay", help="run the pipeline over recorded events")
    replay.add_argument("--config", required=True, help="the TOML config")
    replay.add_argument("--store", help="SQLite store to write (default: the config's store.path)")
    replay.add_argument(
        "--overwrite", action="store_true", help="empty the store first if it holds alerts"
    )
    kafka_replay.register_replay_options(replay)
    replay.set_defaults(handler=_replay)

    simulate = commands.add_parser("simulate", help="write simulated traffic with incidents")
    simulate.add_argument("--out", required=True, help="JSONL file to write")
    simulate.add_argument("--events", type=int, default=60_000, help="events in all")
    simulate.add_argument("--seed", type=int, default=7)
    simulate.add_argument("--malformed", type=int, default=0, help="malformed lines to mix in")
    simulate.add_argument("--truth", help="where to write the incident schedule (JSON)")
    simulate.set_defaults(handler=_simulate)

    score = commands.add_parser("score", help="compare a store's alerts with a simulation's truth")
    score.add_argument("--store", required=True, help="the SQLite store of the run")
    score.add_argument("--truth", required=True, help="the truth file written by simulate")
    score.set_defaults(handler=_score)

    incident_commands.register(commands)
    signal_commands.register(commands)
    audit_commands.register(commands)
    silence_commands.register(commands)
    quarantine_commands.register(commands)
    labels_command.register(commands)
    performance_command.register(commands)
    baseline_reset.register(commands)
    cluster_topics.register(commands)
    demo = commands.add_parser(
        "demo",
        help="the showcase: broker, simulated traffic with incidents, the daemon, webhooks",
        description=(
            "Run the daemon against simulated traffic with injected incidents on a local "
            "Kafka broker, receive its webhooks and summarise what was caught. "
            "Files go to ./demo-out/."
        ),
    )
    demo.add_argument(
        "--events", type=int, default=120_000, help="simulated events to produce (default 120,000)"
    )
    demo.add_argument("--seed", type=int, default=7, help="the simulation's seed")
    demo.add_argument(
        "--keep",
        action="store_true",
        help="leave broker, daemon and receiver running after the summary until Ctrl-C",
    )
    demo.set_defaults(handler=_demo)
    report.register(commands)
    return parser


def _run(args: argparse.Namespace) -> int:
    from monitor.cluster.notifier import worker_config
    from monitor.daemon.service import run_daemon

    config = worker_config(_with_store(load_config(args.config), args.store))
    from monitor.notify.targets import targets_from_config

    targets = targets_from_config(config.webhooks, os.environ)
    return run_daemon(config, targets, os.environ.get("NOTIFY_SOCKET"), args.owner_pid)


def _with_store(config: Config, store: str | None) -> Config:
    if not store:
        return config
    return dataclasses.replace(config, store=dataclasses.replace(config.store, path=store))


def _notify(args: argparse.Namespace) -> int:
    from monitor.cluster.notifier import run_notify
    from monitor.notify.targets import targets_from_config

    config = _with_store(load_config(args.config), args.store)
    if not config.cluster.enabled:
        raise DriftwardenError(
            f"{args.config}: driftwarden notify reads the alerts topic of cluster mode: "
            "set [cluster] enabled = true (a single-machine daemon notifies itself)"
        )
    return run_notify(config, targets_from_config(config.webhooks, os.environ))


def _check_config(args: argparse.Namespace) -> int:
    config = load_config(args.file)
    names = ", ".join(m.name for m in config.models)
    print(f"{args.file}: valid ({len(config.models)} model(s): {names})")
    return 0


def _replay(args: argparse.Namespace) -> int:
    from monitor.cli.progress import Progress
    from monitor.replay.file_replay import open_replay_store, print_summary, replay_file

    if args.topic is not None:
        return kafka_replay.run_kafka_replay(args)
    kafka_replay.check_replay_options(args)
    config = load_config(args.config)
    input_path = Path(args.input)
    if not input_path.is_file():
        raise DriftwardenError(f"no such input file: {input_path}")
    store_path = args.store or config.store.path
    replay_compare.check_compare_target(args, store_path)
    reference = baseline_set.sample_for_replay(config, args.reference)
    with store_errors(store_path):
        replayed = open_replay_store(store_path, args.overwrite)
        try:
            baseline_set.record_for_replay(config, replayed, reference)
            result = replay_file(config, replayed, input_path, Progress("replay"))
            incidents = replayed.count("incidents")
        finally:
            replayed.close()
    print_summary(f"{result.lines:,} lines", result.seconds, result.stats, incidents, store_path)
    if args.compare:
        replay_compare.print_comparison(replay_compare.compare_stores(store_path, args.compare))
    return 0


def _simulation(command: str) -> None:
    """The simulation package is optional (the container image ships the service only)."""
    if importlib.util.find_spec("simulation") is None:
        raise DriftwardenError(
            f"`driftwarden {command}` needs the simulation package, which this installation "
            "lacks: install driftwarden from its source tree"
        )


def _demo(args: argparse.Namespace) -> int:
    _simulation("demo")
    from simulation.demo.demo import run_demo

    return run_demo(args)


def _simulate(args: argparse.Namespace) -> int:
    _simulation("simulate")
    from simulation.simulator import write_simulation

    truth = write_simulation(Path(args.out), args.events, args.seed, args.malformed)
    if args.truth:
        Path(args.truth).write_text(truth.to_json(), encoding="utf-8")
    print(f"wrote {args.events:,} events to {args.out} with {len(truth.incidents)} incidents")
    for incident in truth.incidents:
        print(f"  {incident.describe()}")
    return 0


def _score(args: argparse.Namespace) -> int:
    from rich.table import Table

    from monitor.store.store import Store

    _simulation("score")
    from simulation.scorecard import false_alarms, load_truth, score

    for path in (args.store, args.truth):
        if not Path(path).is_file():
            raise DriftwardenError(f"no such file: {path}")
    truth = load_truth(Path(args.truth))
    with store_errors(args.store):
        scored = Store(args.store)
        try:
            results = score(scored, truth)
            false = false_alarms(scored, truth)
        finally:
            scored.close()
    table = Table(title="Injected incidents and their detection")
    for column in ("injected", "model/signal", "caught by", "after events", "after s", "severity"):
        table.add_column(column)
    for r in results:
        table.add_row(
            cell(r.incident.kind),
            cell(f"{printable(r.incident.model)}/{printable(r.incident.signal)}", limit=None),
            cell(r.detector or "MISSED"),
            "-" if r.delay_events is None else f"{r.delay_events:,}",
            "-" if r.delay_seconds is None else f"{r.delay_seconds:,.1f}",
            cell(r.severity or "-"),
        )
    console = wide_console(110)
    console.print(table)
    caught = sum(r.caught for r in results)
    console.print(f"caught {caught} of {len(results)}; alerts before any injection: {false}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
