"""Kafka I/O: client configuration, explicit topic creation and deletion, reachability checks, end offsets."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from lakehouse.errors import LakehouseError
from lakehouse.settings import Settings

DEFAULT_PARTITIONS = 6
CONNECT_TIMEOUT_S = 10.0
# What a partition answers while it is still being set up (retried by wait_until_readable).
_NOT_READY_YET = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
                  KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_PARTITION, KafkaError._UNKNOWN_TOPIC}
READ_BATCH = 10_000  # records per consume() call of a bounded read
_MAX_IDLE_POLLS = 30  # one-second polls without a record while records are still expected


def admin_client(settings: Settings) -> AdminClient:
    return AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers, "log_level": 0})


def require_broker(settings: Settings, timeout: float = CONNECT_TIMEOUT_S) -> AdminClient:
    """An admin client on a broker that answered a metadata request, or a clear one-line error."""
    admin = admin_client(settings)
    try:
        admin.list_topics(timeout=timeout)
    except KafkaException:
        raise LakehouseError(
            f"Kafka is not reachable at {settings.kafka_bootstrap_servers} "
            "(check KAFKA_BOOTSTRAP_SERVERS; start the local stack with: make up)"
        ) from None
    return admin


def ensure_topics(settings: Settings, topics: dict[str, bool], partitions: int = DEFAULT_PARTITIONS) -> list[str]:
    """Create the missing topics; `topics` maps a name to whether it is a compacted changelog. Returns the
    names this call created."""
    admin = require_broker(settings)
    existing = set(admin.list_topics(timeout=CONNECT_TIMEOUT_S).topics)
    wanted = [
        NewTopic(name, num_partitions=partitions, replication_factor=1,
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
    return Producer(producer_config(settings, **overrides))


def producer_config(settings: Settings, **overrides: object) -> dict[str, object]:
    """The librdkafka producer configuration (also handed to other librdkafka tools, e.g. kcat -X)."""
    config = {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 20,
        "batch.size": 1_000_000,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 1_000_000,
        "queue.buffering.max.kbytes": 1_048_576,
        "log_level": 0,
    }
    config.update(overrides)
    return config


def consumer(settings: Settings, group_id: str, partition_ends: bool = False, **overrides: object) -> Consumer:
    """A consumer that never commits by itself: offsets move only after our writes are durable.

    `partition_ends`: also deliver an event at the end of each partition (see `is_partition_end`).
    """
    config = {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
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
        "log_level": 0,
        "enable.partition.eof": partition_ends,
    }
    config.update(overrides)
    return Consumer(config)


def is_partition_end(message: Message) -> bool:
    """The event a `partition_ends` consumer gets on reaching the end of a partition. Its offset is the partition's
    next offset, past any transaction markers (which ksqlDB's exactly-once writes and no consumer receives): the
    only way to see that a partition ending in markers is fully read."""
    error = message.error()
    return error is not None and error.code() == KafkaError._PARTITION_EOF


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
