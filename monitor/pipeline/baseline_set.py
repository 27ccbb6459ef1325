"""``driftwarden baseline set`` and ``replay --reference``: a model's reference from a file.

Both read the file with the replay's parser (``reference_sample``), then record
each model's sample in the store (``reference_file.record``) with an audit row
naming the file's SHA-256. The model's baseline is built from it when whoever
holds the model next loads it: see ``monitor.pipeline.reference_file``. In
cluster mode the sample goes to the changelog topic instead, as a request
the daemon holding the model carries out (``monitor.cluster.requests``).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from detectors.suite.settings import SuiteSettings
from monitor.audit import chain as audit
from monitor.audit.chain import write_transaction
from monitor.cli.safe_text import printable
from monitor.cluster.request_command import Sent, send_reference
from monitor.config import Config, load_config
from monitor.errors import DriftwardenError
from monitor.incidents.commands import opened_store, who_is_acting
from monitor.ingest.events import ANY_TIME, TimeBounds
from monitor.pipeline import reference_file
from monitor.pipeline.reference_file import MIN_EVENTS, ReferenceRequest
from monitor.pipeline.reference_sample import ModelSample, ReferenceFile, read_reference
from monitor.store.errors import store_errors
from monitor.store.store import Store

FUTURE_SECONDS = 86_400.0  # without a config: events.max_future_seconds's default


def register(actions: argparse._SubParsersAction[Any]) -> None:
    """``baseline set``, beside ``baseline reset``."""
    chosen = actions.add_parser(
        "set",
        help="build a model's baseline from a sample of a file of events, not its warm-up",
    )
    chosen.add_argument("--model", required=True, help="the model whose reference this is")
    chosen.add_argument(
        "--input", required=True, help="events, one JSON object per line (any size)"
    )
    chosen.add_argument("--by", help="who does it (default: the login user name)")
    chosen.add_argument("--store", help="the SQLite store (default: the config's)")
    chosen.add_argument("--config", help="the TOML config naming the store and the model")
    chosen.set_defaults(handler=_set)


def cluster_config(args: argparse.Namespace, config: Config | None) -> Config | None:
    """The config when it is in cluster mode: the request then goes to the changelog topic
    (``monitor.cluster.request_command``), not to a store."""
    if config is None or not config.cluster.enabled:
        return None
    if args.store:
        raise DriftwardenError(
            f"{config.source} is in cluster mode: the request goes to its changelog topic, "
            "not to a store; drop --store"
        )
    return config


def refuse_in_cluster_mode(args: argparse.Namespace, store: Store, command: str) -> None:
    """A store a cluster-mode daemon wrote is a cache of the changelog topic: a request
    written there would be lost. The cluster's config sends it to the changelog instead."""
    found = store.db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'cluster_changelog'"
    ).fetchone()
    if found is not None:
        raise DriftwardenError(
            f"store {store.path} was written by a cluster-mode daemon: a model's state lives "
            f"on the changelog topic there; give --config FILE of that cluster (without "
            f"--store) and `baseline {command}` sends the request to it; nothing was changed"
        )


def sent_line(sent: Sent) -> str:
    return (
        f"request {sent.request_id} written to {sent.topic} partition {sent.partition}: the "
        "daemon holding that partition carries it out at its next checkpoint (within "
        "checkpoint.every_seconds of the model's next events), whichever daemon that is then"
    )


def _set_in_cluster(args: argparse.Namespace, config: Config, who: str, path: Path) -> int:
    settings = config.suite_settings(configured(args.model, config))
    found = read_reference(path, {args.model: settings}, _bounds(config))
    sample = found.samples[args.model]
    if len(sample.events) < MIN_EVENTS:
        raise DriftwardenError(_too_few(found, sample))
    sent = send_reference(config, ReferenceRequest.of(found, sample, who))
    print(printable(f"{_recorded(found, sample)}; {sent_line(sent)}", limit=None))
    return 0


def _set(args: argparse.Namespace) -> int:
    who = who_is_acting(args)
    config = load_config(args.config) if args.config else None
    path = Path(args.input)
    if not path.is_file():
        raise DriftwardenError(f"no such reference file: {path}")
    clustered = cluster_config(args, config)
    if clustered is not None:
        return _set_in_cluster(args, clustered, who, path)
    if config is not None:
        configured(args.model, config)
        _create_store(Path(args.store or config.store.path))
    with opened_store(args) as store:
        refuse_in_cluster_mode(args, store, "set")
        settings = _settings(args.model, config, store)
        found = read_reference(path, {args.model: settings}, _bounds(config))
        sample = found.samples[args.model]
        if len(sample.events) < MIN_EVENTS:
            raise DriftwardenError(_too_few(found, sample))
        with write_transaction(store.db) as db:
            reference_file.record(db, found, sample, who, time.time())
    print(printable(_recorded(found, sample), limit=None))
    print(
        "A running daemon builds the model's baseline from it at its next checkpoint (within "
        "checkpoint.every_seconds), a stopped one when it starts, a replay into this store "
        "before its first event; it stays until the next `driftwarden baseline reset`."
    )
    return 0


def _create_store(path: Path) -> None:
    """A reference may be set before the daemon ever ran: the config's store is made then."""
    if not path.exists():
        with store_errors(path):
            Store(path).close()


def _settings(model: str, config: Config | None, store: Store) -> SuiteSettings:
    """The model's detector settings: the config's, or without one those of its saved state."""
    if config is not None:
        return config.suite_settings(configured(model, config))
    try:
        saved = store.load_model_state(model)
        if saved is not None:
            return SuiteSettings.load(saved[0]["settings"])
    except Exception:  # an unreadable state is the daemon's to report; ask for the config
        pass
    raise DriftwardenError(
        f"unknown model {printable(model)}: store {store.path} holds no state for it; "
        "give --config FILE that lists the model (its reference_size is read there)"
    )


def configured(model: str, config: Config) -> str:
    if config.model(model) is None:
        raise DriftwardenError(
            f"unknown model {printable(model)}: {config.source} does not list it under "
            "[[models]]; check the name or add the model"
        )
    return model


def _bounds(config: Config | None) -> TimeBounds:
    """A replay's time bounds: any past time, no further ahead than live."""
    now = time.time()
    if config is None:
        return TimeBounds(ANY_TIME.earliest, now + FUTURE_SECONDS)
    return config.events.replay_bounds(now)


def _too_few(found: ReferenceFile, sample: ModelSample) -> str:
    return printable(
        f"{found.path} holds {sample.rows_read:,} usable prediction/input event(s) of model "
        f"{sample.model} in {found.lines:,} line(s) ({found.describe_bad_lines()}); a reference "
        f"needs at least {MIN_EVENTS}: check the file and the model's name",
        limit=None,
    )


def _recorded(found: ReferenceFile, sample: ModelSample) -> str:
    return (
        f"model {sample.model}: reference set from {found.path.name}: sample of "
        f"{len(sample.events):,} events of {sample.rows_read:,} read "
        f"(reference_size {sample.size:,}), {len(sample.labels):,} with their label; "
        f"{found.lines:,} lines, "
        f"{found.describe_bad_lines()}; sha256 {found.sha256}"
    )


def sample_for_replay(config: Config, reference: str | None) -> ReferenceFile | None:
    """``replay --reference``: a sample for every configured model the file holds."""
    if reference is None:
        return None
    path = Path(reference)
    if not path.is_file():
        raise DriftwardenError(f"no such reference file: {path}")
    settings = {m.name: config.suite_settings(m.name) for m in config.models}
    found = read_reference(path, settings, _bounds(config))
    if not any(len(s.events) >= MIN_EVENTS for s in found.samples.values()):
        names = ", ".join(m.name for m in config.models)
        raise DriftwardenError(
            printable(
                f"{path} holds fewer than {MIN_EVENTS} usable prediction/input events of every "
                f"model of the config ({names}) in {found.lines:,} line(s) "
                f"({found.describe_bad_lines()}): nothing to build a reference from",
                limit=None,
            )
        )
    return found


def record_for_replay(config: Config, store: Store, found: ReferenceFile | None) -> None:
    """Record the replay's references in its store, before its first event."""
    if found is None:
        return
    who = "replay --reference"
    now = time.time()
    # Keyed with the config's key, as the replay's own audit rows will be.
    audit.bind_key(store.db, audit.key_from_env(config.audit.key_env, os.environ))
    with store.transaction() as db:
        for name in sorted(found.samples):
            sample = found.samples[name]
            if len(sample.events) >= MIN_EVENTS:
                reference_file.record(db, found, sample, who, now)
    for name in sorted(found.samples):
        sample = found.samples[name]
        if len(sample.events) >= MIN_EVENTS:
            print(printable(_recorded(found, sample), limit=None))
