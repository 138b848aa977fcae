"""Kafka I/O: client configuration, explicit topic creation and deletion, reachability checks, end offsets."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from lakehouse.errors import LakehouseError
from lakehouse.settings import Settings

T = TypeVar("T", AdminClient, Consumer, Producer)
DEFAULT_PARTITIONS = 6
CONNECT_TIMEOUT_S = 10.0
# What a partition answers while it is still being set up (retried by wait_until_readable).
_NOT_READY_YET = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
                  KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_PARTITION, KafkaError._UNKNOWN_TOPIC}
READ_BATCH = 10_000  # records per consume() call of a bounded read
_MAX_IDLE_POLLS = 30  # one-second polls without a record while records are still expected
# librdkafka properties set from the environment, over KAFKA_CONFIG_FILE's lines.
_SECURITY_PROPERTIES = {
    "security.protocol": "KAFKA_SECURITY_PROTOCOL",
    "sasl.mechanism": "KAFKA_SASL_MECHANISM",
    "sasl.username": "KAFKA_SASL_USERNAME",
    "sasl.password": "KAFKA_SASL_PASSWORD",
    "ssl.ca.location": "KAFKA_SSL_CA_LOCATION",
}
_SETTING_OF_PROPERTY = {**_SECURITY_PROPERTIES, "bootstrap.servers": "KAFKA_BOOTSTRAP_SERVERS"}


# ---------------------------------------------------------------- configuration shared by every client
def connection_config(settings: Settings) -> dict[str, object]:
    """The librdkafka properties every client of the cluster shares: where it is, how to trust it, how to log in.

    KAFKA_CONFIG_FILE's lines first, the KAFKA_* variables over them; each client's own properties (group,
    commits, idempotence, batching) go over both, so a file cannot weaken what exactly-once relies on.
    """
    config: dict[str, object] = read_properties(settings.kafka_config_file) if settings.kafka_config_file else {}
    config["bootstrap.servers"] = settings.kafka_bootstrap_servers
    for name, value in zip(_SECURITY_PROPERTIES, (
            settings.kafka_security_protocol, settings.kafka_sasl_mechanism, settings.kafka_sasl_username,
            settings.kafka_sasl_password, settings.kafka_ssl_ca_location), strict=True):
        if value:
            config[name] = value
    config["log_level"] = 0  # failures reach us through error_cb and the calls' own errors, not stderr
    return config


def read_properties(path: str) -> dict[str, object]:
    """A librdkafka properties file: `name=value` lines; blank lines and lines starting with # are skipped."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise LakehouseError(f"KAFKA_CONFIG_FILE: cannot read {path} "
                             f"({getattr(exc, 'strerror', None) or exc})") from None
    properties: dict[str, object] = {}
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, equals, value = line.partition("=")
        if not equals or not name.strip():
            raise LakehouseError(f"KAFKA_CONFIG_FILE {path} line {number}: expected name=value")  # no echo: secrets
        properties[name.strip()] = value.strip()
    return properties


class _RefusedConnection:
    """Every client's error_cb. A refused login or an untrusted certificate does not heal by retrying (librdkafka
    would retry forever), so it raises out of the poll/consume/flush that served it: one line naming the setting.
    Transport errors are left to the calls' own timeouts."""

    def __init__(self, settings: Settings) -> None:
        self.where = settings.kafka_bootstrap_servers
        self.user = settings.kafka_sasl_username

    def __call__(self, error: KafkaError) -> None:
        reason = _reason(error.str())
        if error.code() == KafkaError._AUTHENTICATION:
            check = ("KAFKA_SASL_MECHANISM" if "mechanism handshake" in reason
                     else "KAFKA_SASL_PASSWORD and KAFKA_SASL_USERNAME")
            raise LakehouseError(f"Kafka at {self.where} refused the login of user {self.user!r}: {reason} "
                                 f"(check {check})")
        if error.code() == KafkaError._SSL and "certificate" in reason:
            raise LakehouseError(f"Kafka at {self.where}: {reason} (check KAFKA_SSL_CA_LOCATION: the CA that "
                                 "signed the broker's certificate)")


def _reason(text: str) -> str:
    """librdkafka's error text without its broker prefix and state suffix, on one line."""
    text = re.sub(r"^\S+://\S+: ", "", text)
    return " ".join(re.sub(r" \(after \d+ms in state \w+\)$", "", text).split())


def _client(kind: type[T], config: dict[str, object], settings: Settings) -> T:
    """A librdkafka client; a property it rejects becomes one line naming the variable (or the file) to fix."""
    try:
        return kind({**config, "error_cb": _RefusedConnection(settings)})
    except KafkaException as exc:
        message = exc.args[0].str() if exc.args else str(exc)
        named = re.search(r'property "([^"]+)"', message)
        source = _SETTING_OF_PROPERTY.get(named.group(1), "KAFKA_CONFIG_FILE") if named else "KAFKA_CONFIG_FILE"
        raise LakehouseError(f"Kafka client configuration: {message} (check {source})") from None


def admin_client(settings: Settings) -> AdminClient:
    return _client(AdminClient, connection_config(settings), settings)


def require_broker(settings: Settings, timeout: float = CONNECT_TIMEOUT_S) -> AdminClient:
    """An admin client on a broker that answered a metadata request, or a clear one-line error: a refused login or
    an untrusted certificate as soon as the client reports it, an unreachable broker after `timeout`."""
    admin = admin_client(settings)
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin.list_topics(timeout=max(0.1, min(1.0, deadline - time.monotonic())))
            return admin
        except KafkaException:
            admin.poll(0)  # serves the error callback: it raises for a refused login or certificate
            if time.monotonic() >= deadline:
                raise LakehouseError(
                    f"Kafka is not reachable at {settings.kafka_bootstrap_servers} "
                    "(check KAFKA_BOOTSTRAP_SERVERS and KAFKA_SECURITY_PROTOCOL; start the local stack with: make up)"
                ) from None


def ensure_topics(settings: Settings, topics: dict[str, bool], partitions: int = DEFAULT_PARTITIONS) -> list[str]:
    """Create the missing topics; `topics` maps a name to whether it is a compacted changelog. Returns the
    names this call created."""
    admin = require_broker(settings)
    existing = set(admin.list_topics(timeout=CONNECT_TIMEOUT_S).topics)
    wanted = [
        NewTopic(name, num_partitions=partitions, replication_factor=settings.kafka_replication_factor,
                 config={"cleanup.policy": "compact"} if compacted else {})
        for name, compacted in topics.items() if name not in existing
    ]
    created = []
    for name, future in (admin.create_topics(wanted, operation_timeout=30) if wanted else {}).items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":  # a concurrent creator won the race
                raise LakehouseError(f"cannot create topic {name}: {exc.args[0].str()}") from None
    return created


def wait_until_readable(settings: Settings, topics: list[str], timeout: float = 30.0) -> None:
    """Block until every partition of `topics` answers offset requests.

    A topic just created is listed with leaders a moment before its partitions answer reads
    (NOT_LEADER_OR_FOLLOWER); whoever reads right after ensure_topics waits here first.
    """
    deadline = time.monotonic() + timeout
    client = consumer(settings, group_id=f"lakehouse-ready-{uuid.uuid4().hex}")
    try:
        for topic in topics:
            for partition in _listed_partitions(settings, topic, deadline):
                _wait_for_offsets(client, TopicPartition(topic, partition), deadline)
    finally:
        client.close()


def _listed_partitions(settings: Settings, topic: str, deadline: float) -> list[int]:
    while not (partitions := topic_partitions(settings, topic)):
        if time.monotonic() > deadline:
            raise LakehouseError(f"topic {topic} does not exist")
        time.sleep(0.05)
    return partitions


def _wait_for_offsets(client: Consumer, partition: TopicPartition, deadline: float) -> None:
    while True:
        try:
            client.get_watermark_offsets(partition, timeout=CONNECT_TIMEOUT_S)
            return
        except KafkaException as exc:
            if exc.args[0].code() not in _NOT_READY_YET or time.monotonic() > deadline:
                raise LakehouseError(
                    f"topic {partition.topic} partition {partition.partition} is not readable: "
                    f"{exc.args[0].str()}") from None
            time.sleep(0.05)


def delete_topics(settings: Settings, topics: list[str], timeout: float = 60.0) -> None:
    """Delete `topics` and wait until the broker no longer lists them (a topic already gone is fine)."""
    if not topics:
        return
    admin = require_broker(settings)  # kept until the broker confirms: a dropped client may never send the request
    for name, future in admin.delete_topics(topics, operation_timeout=30).items():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise LakehouseError(f"cannot delete topic {name}: {exc.args[0].str()}") from None
    deadline = time.monotonic() + timeout
    while set(topics) & set(admin.list_topics(timeout=CONNECT_TIMEOUT_S).topics):
        if time.monotonic() > deadline:
            raise LakehouseError(f"the broker still lists deleted topics after {timeout:.0f} s: {', '.join(topics)}")
        time.sleep(0.2)


def topic_partitions(settings: Settings, topic: str) -> list[int]:
    metadata = require_broker(settings).list_topics(topic=topic, timeout=CONNECT_TIMEOUT_S)
    info = metadata.topics.get(topic)
    if info is None or info.error is not None:
        return []
    return sorted(info.partitions)


def producer(settings: Settings, **overrides: object) -> Producer:
    return _client(Producer, producer_config(settings, **overrides), settings)


def producer_config(settings: Settings, **overrides: object) -> dict[str, object]:
    """The librdkafka producer configuration (also handed to other librdkafka tools, e.g. kcat -F)."""
    config = {
        **connection_config(settings),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 20,
        "batch.size": 1_000_000,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 1_000_000,
        "queue.buffering.max.kbytes": 1_048_576,
    }
    config.update(overrides)
    return config


def consumer(settings: Settings, group_id: str, partition_ends: bool = False, **overrides: object) -> Consumer:
    """A consumer that never commits by itself: offsets move only after our writes are durable.

    `partition_ends`: also deliver an event at the end of each partition (see `is_partition_end`).
    """
    config = {
        **connection_config(settings),
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "cooperative-sticky",
        # A crashed member's partitions move to the others after this long (not the 45 s default): our offsets
        # live with our writes, and the writers fence each other, so a fast hand-over costs one re-read at most.
        "session.timeout.ms": 6_000,
        "heartbeat.interval.ms": 1_500,
        "fetch.max.bytes": 52_428_800,
        "max.partition.fetch.bytes": 10_485_760,
        "queued.max.messages.kbytes": 131_072,
        "enable.partition.eof": partition_ends,
    }
    config.update(overrides)
    return _client(Consumer, config, settings)


def is_partition_end(message: Message) -> bool:
    """The event a `partition_ends` consumer gets on reaching the end of a partition. Its offset is the partition's
    next offset, past any transaction markers (which ksqlDB's exactly-once writes and no consumer receives): the
    only way to see that a partition ending in markers is fully read."""
    error = message.error()
    return error is not None and error.code() == KafkaError._PARTITION_EOF


_REBALANCING = frozenset({KafkaError.ILLEGAL_GENERATION, KafkaError.REBALANCE_IN_PROGRESS,
                          KafkaError.UNKNOWN_MEMBER_ID})


def during_rebalance(exc: KafkaException) -> bool:
    """An offset commit refused because the group is rebalancing, or just did (the member's generation is old)."""
    return exc.args[0].code() in _REBALANCING


def watermarks(client: Consumer, topic: str, partitions: list[int],
               timeout: float = 10.0) -> dict[int, tuple[int, int]]:
    """(low, high) of each partition: the first offset the topic still holds and the one the next record gets."""
    return {partition: client.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout)
            for partition in partitions}


def end_offsets(client: Consumer, topic: str, partitions: list[int], timeout: float = 10.0) -> dict[int, int]:
    """The high watermark of each partition (the offset the next record will get)."""
    return {partition: high for partition, (_low, high) in watermarks(client, topic, partitions, timeout).items()}


def topic_watermarks(settings: Settings, topic: str) -> dict[int, tuple[int, int]]:
    """(low, high) of each partition of `topic` (empty when the topic does not exist)."""
    client = consumer(settings, group_id=f"lakehouse-ends-{uuid.uuid4().hex}")
    try:
        return watermarks(client, topic, topic_partitions(settings, topic))
    finally:
        client.close()


def topic_end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    """The high watermark of each partition of `topic` (empty when the topic does not exist)."""
    return {partition: high for partition, (_low, high) in topic_watermarks(settings, topic).items()}


def read_range(settings: Settings, topic: str, start: dict[int, int | None],
                stop: dict[int, int]) -> Iterator[list[Message]]:
    """Records of `topic` from `start` (None: the beginning) up to, not including, `stop`, per partition."""
    client = consumer(settings, group_id=f"lakehouse-export-{uuid.uuid4().hex}", partition_ends=True)
    try:
        pending = {}
        for partition, end in stop.items():
            low, _high = client.get_watermark_offsets(TopicPartition(topic, partition),
                                                      timeout=CONNECT_TIMEOUT_S)
            first = max(low, start.get(partition) or 0)
            if first < end:
                pending[partition] = end
        client.assign([TopicPartition(topic, partition, start.get(partition) or OFFSET_BEGINNING)
                       for partition in pending])
        idle = 0
        while pending:
            messages = client.consume(num_messages=READ_BATCH, timeout=1.0)
            idle = 0 if messages else idle + 1
            if idle >= _MAX_IDLE_POLLS:
                raise LakehouseError(f"reading {topic}: no records for {_MAX_IDLE_POLLS}s while partitions "
                                     f"{sorted(pending)} have not reached their bound")
            wanted = []
            for message in messages:
                end = pending.get(message.partition())
                if is_partition_end(message):  # the bound may lie past transaction markers
                    done = end is not None and message.offset() >= end
                elif message.error() is not None:
                    raise LakehouseError(f"reading {topic}: {message.error().str()}")
                elif end is None:
                    continue
                else:
                    if message.offset() < end:
                        wanted.append(message)
                    done = message.offset() + 1 >= end
                if done:
                    del pending[message.partition()]
                    client.incremental_unassign([TopicPartition(topic, message.partition())])
            if wanted:
                yield wanted
    finally:
        client.close()
