"""`driftwarden cluster-topics`: check, and with ``--create`` make, cluster mode's topics.

A daemon in cluster mode refuses to start without its changelog, alerts and
quarantine topics, and the notifier without its deliveries topic; a changelog
that is not compacted, or whose partition count differs from the input
topic's, loses state. This command reads the config's ``[cluster]`` names,
compares each topic with what cluster mode needs (README, "Running on several
machines") and creates the missing ones as that section lists them, with as
many changelog and alerts partitions as the input topic has. It never alters
or deletes a topic that exists: what is wrong with one is said, for its owner
to mend.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from monitor.cli.safe_text import printable
from monitor.cluster.settings import topics
from monitor.config import Config, load_config
from monitor.errors import DriftwardenError

if TYPE_CHECKING:  # kafka is imported when the command runs: every other command starts faster
    from kafka.admin import KafkaAdminClient

CONNECT_TIMEOUT_MS = 10_000
# Replicas a topic gets by default: three where the cluster has them (a broker
# may fail without losing a committed checkpoint), else one per broker.
DEFAULT_REPLICATION = 3
# The settings README gives each topic; cleanup.policy is also checked on one that exists.
_COMPACTED = {"cleanup.policy": "compact"}
_CHANGELOG_SETTINGS = {
    **_COMPACTED,
    # How long superseded state may linger before compaction can drop it.
    "segment.ms": "3600000",
    "min.cleanable.dirty.ratio": "0.1",
}


@dataclass(frozen=True)
class WantedTopic:
    kind: str
    name: str
    partitions: int | None  # None: any count will do
    settings: dict[str, str] = field(default_factory=dict)
    compacted: bool = False


@dataclass(frozen=True)
class TopicFinding:
    topic: WantedTopic
    state: str  # "ok", "missing", "created" or "wrong"
    detail: str


def register(commands: Any) -> None:
    command = commands.add_parser(
        "cluster-topics",
        help="cluster mode: check the changelog, alerts, quarantine and deliveries topics",
        description=(
            "Compare cluster mode's topics (named in [cluster]) with what it needs; "
            "with --create, create the missing ones. A topic that exists is never changed."
        ),
    )
    command.add_argument("--config", required=True, help="the TOML config (with [cluster])")
    command.add_argument("--create", action="store_true", help="create the missing topics")
    command.add_argument(
        "--replication-factor",
        type=int,
        help=f"replicas of each created topic (default: {DEFAULT_REPLICATION}, "
        "or the number of brokers when fewer)",
    )
    command.add_argument(
        "--input-partitions",
        type=int,
        help="with --create, also create the input topic (kafka.topics) with this many "
        "partitions when it is missing",
    )
    command.set_defaults(handler=_cluster_topics)


def wanted_topics(config: Config, input_partitions: int) -> list[WantedTopic]:
    names = topics(config.cluster, config.kafka.group_id)
    return [
        WantedTopic("changelog", names.changelog, input_partitions, _CHANGELOG_SETTINGS, True),
        # Everything found is kept: the alerts topic is the record of what was found.
        WantedTopic("alerts", names.alerts, None, {"retention.ms": "-1"}),
        WantedTopic("quarantine", names.quarantine, None),
        WantedTopic("deliveries", names.deliveries, None, _COMPACTED, True),
    ]


def _cluster_topics(args: argparse.Namespace) -> int:
    from kafka.errors import KafkaError

    config = load_config(args.config)
    if not config.cluster.enabled:
        raise DriftwardenError(
            f"{args.config}: cluster-topics is for cluster mode: set [cluster] enabled = true"
        )
    if args.replication_factor is not None and args.replication_factor < 1:
        raise DriftwardenError("--replication-factor must be 1 or more")
    if args.input_partitions is not None and not (args.create and args.input_partitions >= 1):
        raise DriftwardenError("--input-partitions needs --create and a count of 1 or more")
    admin = _open_admin(config)
    try:
        findings = check_and_create(
            config, admin, args.create, args.replication_factor, args.input_partitions
        )
    except KafkaError as exc:
        raise DriftwardenError(
            f"cannot read or create the cluster's topics: {printable(str(exc), 300)}"
        ) from None
    finally:
        admin.close()
    for finding in findings:
        print(f"{finding.topic.kind:<10} {printable(finding.topic.name)}: {finding.detail}")
    missing = sum(f.state == "missing" for f in findings)
    wrong = sum(f.state == "wrong" for f in findings)
    if missing:
        print(f"{missing} topic(s) missing: run again with --create (or create them yourself)")
    if wrong:
        print(f"{wrong} topic(s) not as cluster mode needs: mend them (nothing was changed)")
    return 1 if missing or wrong else 0


def _open_admin(config: Config) -> KafkaAdminClient:
    from kafka.admin import KafkaAdminClient
    from kafka.errors import KafkaError

    servers = config.kafka.bootstrap_servers
    try:
        return KafkaAdminClient(
            bootstrap_servers=list(servers),
            request_timeout_ms=30_000,
            bootstrap_timeout_ms=CONNECT_TIMEOUT_MS,
        )
    except KafkaError:
        raise DriftwardenError(
            f"no Kafka broker answers at {','.join(servers)}: start one (scripts/kafka start) "
            "or fix kafka.bootstrap_servers in the config"
        ) from None


def check_and_create(
    config: Config,
    admin: KafkaAdminClient,
    create: bool,
    replication: int | None,
    input_partitions: int | None = None,
) -> list[TopicFinding]:
    """One finding per topic of ``[cluster]``, creating the missing ones when asked (and the
    input topic, when it is missing and ``input_partitions`` says how many partitions)."""
    input_topic = config.kafka.topics[0]
    existing = _partition_counts(admin)
    replicas = replication or min(DEFAULT_REPLICATION, len(admin.describe_cluster()["brokers"]))
    found_input = _input_topic(admin, input_topic, existing, input_partitions, replicas)
    wanted = wanted_topics(config, existing[input_topic])
    findings = [found_input, *(_check(admin, topic, existing) for topic in wanted)]
    if not create:
        return findings
    return [
        _create(admin, f.topic, existing[input_topic], replicas) if f.state == "missing" else f
        for f in findings
    ]


def _input_topic(
    admin: KafkaAdminClient,
    name: str,
    existing: dict[str, int],
    partitions: int | None,
    replicas: int,
) -> TopicFinding:
    topic = WantedTopic("input", name, partitions)
    if name in existing:
        return TopicFinding(topic, "ok", f"present, {existing[name]} partition(s)")
    if partitions is None:
        raise DriftwardenError(
            f"the input topic {printable(name)} does not exist: create it first, or pass "
            "--create --input-partitions N (its partition count is yours to choose: the "
            "changelog gets as many)"
        )
    created = _create(admin, topic, partitions, replicas)
    existing[name] = partitions
    return created


def _partition_counts(admin: KafkaAdminClient) -> dict[str, int]:
    described = admin.describe_topics()
    return {t["name"]: len(t["partitions"]) for t in described if not t.get("error_code")}


def _check(admin: KafkaAdminClient, topic: WantedTopic, existing: dict[str, int]) -> TopicFinding:
    if topic.name not in existing:
        return TopicFinding(topic, "missing", "missing")
    partitions = existing[topic.name]
    problems = []
    if topic.partitions is not None and partitions != topic.partitions:
        problems.append(
            f"{partitions} partitions, the input topic {topic.partitions}: give it as many "
            "(a model's state lives on the changelog partition of its records' partition)"
        )
    if topic.compacted:
        policy = _cleanup_policy(admin, topic.name)
        if policy != "compact":
            problems.append(
                f"cleanup.policy is {printable(policy)}: it must be compact (and not delete), "
                "or old state is lost"
            )
    if problems:
        return TopicFinding(topic, "wrong", "; ".join(problems))
    return TopicFinding(topic, "ok", f"present, {partitions} partition(s), as needed")


def _cleanup_policy(admin: KafkaAdminClient, name: str) -> str:
    from kafka.admin import ConfigResource, ConfigResourceType

    resource = ConfigResource(ConfigResourceType.TOPIC, name, {"cleanup.policy": None})
    described = admin.describe_configs([resource], config_filter="all")
    entry = described.get("topic", {}).get(name, {}).get("cleanup.policy", {})
    return str(entry.get("value", "unknown")).replace(" ", "")


def _create(
    admin: KafkaAdminClient, topic: WantedTopic, input_partitions: int, replicas: int
) -> TopicFinding:
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    partitions = topic.partitions or (input_partitions if topic.kind == "alerts" else 1)
    settings = dict(topic.settings)
    if replicas >= DEFAULT_REPLICATION:
        # With three replicas, a committed checkpoint survives one broker's loss.
        settings["min.insync.replicas"] = "2"
    new = NewTopic(topic.name, partitions, replicas, topic_configs=settings)
    try:
        admin.create_topics([new])
    except TopicAlreadyExistsError:
        # Made by someone else since it was found missing: check it as it is.
        return _check(admin, topic, _partition_counts(admin))
    shown = ", ".join(f"{key}={value}" for key, value in sorted(settings.items()))
    detail = f"created: {partitions} partition(s), replication {replicas}"
    return TopicFinding(topic, "created", f"{detail}, {shown}" if shown else detail)
