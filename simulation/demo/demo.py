"""``driftwarden demo``: the whole service on one machine, live, in a couple of minutes.

A local Apache Kafka broker (``scripts/kafka``, unless ``KAFKA_BOOTSTRAP_SERVERS``
names one), a fresh topic, a webhook receiver that checks signatures, the daemon
itself (``driftwarden run`` in a child process), and simulated traffic of two
models with nine incidents injected on a schedule. When the daemon has
checkpointed every record and delivered every notification, a table says which
incident was caught, how fast, by which detector, and what on-call received.
Everything the demo started is stopped at the end, on Ctrl-C and on errors.
Files go to ``demo-out/`` in the current folder.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from types import FrameType

from monitor.errors import DriftwardenError
from monitor.store.lease import StoreLease
from simulation.demo.config import write_demo_config
from simulation.demo.narrator import Say, store_progress
from simulation.demo.processes import (
    KAFKA_SCRIPT,
    check_daemon,
    create_topic,
    daemon_ready,
    delete_topic,
    free_port,
    start_broker,
    start_daemon,
    stop_broker,
    stop_daemon,
)
from simulation.demo.receiver import SECRET_ENV, DemoReceiver, new_secret
from simulation.demo.summary import print_results
from simulation.simulator import EVENT_SPACING, Truth

DEFAULT_EVENTS = 120_000
PARTITIONS = 3
OUTPUTS = ("demo.db", "demo.db-wal", "demo.db-shm", "daemon.log", "report.html", "truth.json")


def run_demo(args: argparse.Namespace) -> int:
    if args.events < 10_000:
        raise DriftwardenError("--events must be at least 10000: detectors need a reference")
    demo = Demo(events=args.events, seed=args.seed, keep=args.keep, out=Path.cwd() / "demo-out")
    return demo.run()


@dataclass
class Demo:
    events: int
    seed: int
    keep: bool
    out: Path
    say: Say = field(default_factory=Say)
    bootstrap: str = ""
    broker_port: int | None = None  # set when the demo starts its own broker
    topic: str = ""
    topic_created: bool = False
    receiver: DemoReceiver | None = None
    daemon: subprocess.Popen[bytes] | None = None
    ops_port: int = 0
    produced: int = 0
    truth: Truth | None = None
    producer: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    @property
    def store_path(self) -> Path:
        return self.out / "demo.db"

    @property
    def config_path(self) -> Path:
        return self.out / "demo.toml"

    @property
    def log_path(self) -> Path:
        return self.out / "daemon.log"

    # ------------------------------------------------------------------ the run

    def run(self) -> int:
        previous = signal.getsignal(signal.SIGTERM)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _interrupt)
        try:
            return self._run()
        finally:
            self._stop.set()
            self.cleanup()
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGTERM, previous)

    def _run(self) -> int:
        self.out.mkdir(parents=True, exist_ok=True)
        # Not under a daemon still running from an earlier `demo --keep`.
        advice = "stop it first (Ctrl-C in the demo that started it)"
        with StoreLease.exclusive(self.store_path, "driftwarden demo", advice):
            for name in (
                "demo.db",
                "demo.db-wal",
                "demo.db-shm",
                "daemon.log",
                "report.html",
                "truth.json",
            ):
                (self.out / name).unlink(missing_ok=True)
        self.say(f"Driftwarden demo: {self.events:,} simulated events, output in {self.out}/")
        self._broker()
        self._create_topic()
        secret = new_secret()
        self.receiver = DemoReceiver(secret, emit=self.say)
        url = self.receiver.start()
        self.say(f"webhook receiver: {url} (checks Standard Webhooks signatures)")
        self._write_config(url)
        self._start_daemon(secret)
        self._produce_and_wait()
        if not self.keep:
            self._stop_daemon()
        assert self.truth is not None
        code = print_results(self.store_path, self.truth, self.receiver, self.out)
        self._report()
        if self.keep:
            self._linger()
        return code

    def _broker(self) -> None:
        given = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
        if given:
            self.bootstrap = given
            self.say(f"broker: {given} (from KAFKA_BOOTSTRAP_SERVERS)")
            return
        if not KAFKA_SCRIPT.is_file():
            raise DriftwardenError(
                f"{KAFKA_SCRIPT} not found: run the demo from a source checkout, "
                "or set KAFKA_BOOTSTRAP_SERVERS to a running broker"
            )
        port = free_port()
        self.say(
            f"starting a local Apache Kafka broker on 127.0.0.1:{port} (scripts/kafka; "
            "the first run fetches Kafka from Maven Central once) ..."
        )
        self.broker_port = port  # from here on, cleanup stops it
        self.bootstrap = start_broker(port)
        self.say(f"broker: {self.bootstrap} (started by the demo, stopped at the end)")

    def _create_topic(self) -> None:
        self.topic = f"driftwarden-demo-{uuid.uuid4().hex[:8]}"
        create_topic(self.bootstrap, self.topic, PARTITIONS)
        self.topic_created = True
        self.say(f"topic: {self.topic} ({PARTITIONS} partitions, records keyed by model)")

    def _write_config(self, url: str) -> None:
        self.ops_port = free_port()
        write_demo_config(
            self.config_path,
            store=self.store_path,
            bootstrap=self.bootstrap,
            topic=self.topic,
            ops_port=self.ops_port,
            webhook_url=url,
            secret_env=SECRET_ENV,
        )
        self.say(f"config: {self.config_path}")

    def _start_daemon(self, secret: str) -> None:
        self.daemon = start_daemon(self.config_path, self.log_path, secret)
        self.say(
            f"daemon: pid {self.daemon.pid}, `driftwarden run --config {self.config_path}`, "
            f"ops http://127.0.0.1:{self.ops_port}/metrics, log {self.log_path}"
        )
        deadline = time.monotonic() + 120
        while not daemon_ready(self.ops_port):
            self._check_daemon()
            if time.monotonic() > deadline:
                raise DriftwardenError(
                    f"the daemon was not ready within 120 s; see {self.log_path}"
                )
            self.say.status("waiting for the daemon to connect to the broker ...")
            time.sleep(0.3)
        self.say.end_status()

    def _check_daemon(self) -> None:
        check_daemon(self.daemon, self.log_path)

    def _produce_and_wait(self) -> None:
        from simulation.traffic import produce_simulation

        failure: list[BaseException] = []
        progress = {"produced": 0}
        done = threading.Event()

        def produce() -> None:
            try:
                self.truth, self.produced = produce_simulation(
                    self.bootstrap,
                    self.topic,
                    self.events,
                    self.seed,
                    on_progress=lambda n: progress.__setitem__("produced", n),
                    should_stop=self._stop.is_set,
                )
            except BaseException as exc:
                failure.append(exc)
            finally:
                done.set()

        seconds = self.events * EVENT_SPACING
        self.say(
            f"producing {self.events:,} events ({seconds / 60:.0f} min of event time, "
            "20 events per event-time second) as fast as the broker takes them"
        )
        self.producer = threading.Thread(target=produce, name="demo-traffic", daemon=True)
        started = time.monotonic()
        self.producer.start()
        limit = 120 + self.events / 400  # generous: about 5 minutes for 120,000 events
        while True:
            if failure:
                raise failure[0]
            self._check_daemon()
            consumed, pending, alerts = store_progress(self.store_path)
            received = len(self.receiver.received()) if self.receiver else 0
            produced = self.produced if done.is_set() else progress["produced"]
            self.say.status(
                f"produced {produced:,}/{self.events:,}  checkpointed by the daemon "
                f"{consumed:,}  alerts {alerts}  notifications received {received}"
                + (f"  (outbox {pending} pending)" if pending else "")
            )
            if done.is_set() and not failure and consumed >= self.produced and pending == 0:
                break
            if time.monotonic() - started > limit:
                self.say.end_status()
                raise DriftwardenError(
                    f"the daemon checkpointed {consumed:,} of {self.produced or produced:,} "
                    f"records within {limit:.0f} s; see {self.log_path}"
                )
            time.sleep(0.5)
        self.say.end_status()
        took = time.monotonic() - started
        self.say(
            f"the daemon processed all {self.produced:,} records in {took:.1f} s "
            f"({self.produced / took:,.0f} records/s, produced and consumed at once) "
            "and delivered every notification"
        )

    def _stop_daemon(self) -> None:
        daemon, self.daemon = self.daemon, None
        if daemon is not None:
            stop_daemon(daemon, self.say)

    # ------------------------------------------------------------------ the report

    def _report(self) -> None:
        if find_spec("monitor.report.report") is None:
            return
        out = self.out / "report.html"
        made = subprocess.run(
            [
                sys.executable,
                "-m",
                "monitor.cli",
                "report",
                "--store",
                str(self.store_path),
                "--out",
                str(out),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if made.returncode == 0 and out.is_file():
            self.say(f"report: {out}")
        else:
            why = (made.stderr.strip().splitlines() or ["no output"])[-1]
            self.say(f"report: not written ({why})")

    def _linger(self) -> None:
        self.say(
            f"--keep: broker {self.bootstrap}, topic {self.topic}, daemon ops "
            f"http://127.0.0.1:{self.ops_port}/metrics and the receiver keep running; "
            "press Ctrl-C to stop them"
        )
        try:
            while not self._stop.is_set():
                self._check_daemon()
                time.sleep(1.0)
        except KeyboardInterrupt:
            self.say("stopping ...")

    # ------------------------------------------------------------------ cleanup

    def cleanup(self) -> None:
        """Stop whatever this demo started, in reverse order; never raises."""
        steps = (
            ("the traffic", self._stop_traffic),
            ("the daemon", self._stop_daemon),
            ("the webhook receiver", self._stop_receiver),
            ("the demo topic", self._delete_topic),
            ("the broker", self._stop_broker),
        )
        for what, step in steps:
            try:
                step()
            except BaseException as exc:  # keep cleaning up whatever happened
                print(f"driftwarden demo: stopping {what} failed: {exc}", file=sys.stderr)

    def _stop_traffic(self) -> None:
        self._stop.set()
        if self.producer is not None:
            self.producer.join(30)
            self.producer = None

    def _stop_receiver(self) -> None:
        if self.receiver is not None:
            self.receiver.stop()

    def _delete_topic(self) -> None:
        # On a broker the demo started, the topic goes with the broker's data.
        if not self.topic_created or self.broker_port is not None or self.keep:
            return
        delete_topic(self.bootstrap, self.topic)
        self.topic_created = False

    def _stop_broker(self) -> None:
        port, self.broker_port = self.broker_port, None
        if port is None:
            return
        stop_broker(port)
        self.say(f"broker on port {port} stopped")


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt
