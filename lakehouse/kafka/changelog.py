"""Materializing a ksqlDB table from its changelog topic: latest value per key, tombstones delete.

Used by the lake consumer (table feeds), export and sync when the source is Kafka.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_BEGINNING, Message, TopicPartition

from lakehouse.catalog import Feed
from lakehouse.errors import LakehouseError
from lakehouse.kafka import clients
from lakehouse.kafka.records import BadRecord, decode_table_record
from lakehouse.quarantine import QuarantinedRecord, QuarantineWriter
from lakehouse.settings import Settings

_BATCH = 5_000


@dataclass
class TableState:
    """The current content of a table: key tuple -> full row (key columns included)."""

    key_columns: list[str]
    by_key: dict[tuple, dict] = field(default_factory=dict)
    next_offsets: dict[int, int] = field(default_factory=dict)
    applied: int = 0
    quarantined: int = 0
    changed: bool = False  # set by apply(); the caller clears it after taking a snapshot

    def apply(self, key: tuple, row: dict | None) -> None:
        if row is None:
            if self.by_key.pop(key, None) is not None:
                self.changed = True
        elif self.by_key.get(key) != row:
            self.by_key[key] = row
            self.changed = True
        self.applied += 1

    def apply_message(self, feed: Feed, message: Message, quarantine: QuarantineWriter | None) -> None:
        """Apply one changelog record; a bad one is quarantined with its reason (or raised without a writer)."""
        self.next_offsets[message.partition()] = message.offset() + 1
        try:
            key, row = decode_table_record(message.key(), message.value(), feed.key_columns)
        except BadRecord as exc:
            if quarantine is None:
                raise
            self.quarantined += 1
            quarantine.add(QuarantinedRecord.of_message(feed.name, message, str(exc)))
            return
        self.apply(key, row)

    def rows(self) -> list[dict]:
        """Rows in key order (a stable order makes snapshots comparable)."""
        return [self.by_key[key] for key in sorted(self.by_key, key=_sort_key)]


def _sort_key(key: tuple) -> tuple:
    return tuple((value is None, str(value)) for value in key)


class ChangelogReader:
    """Reads the changelog topics of some table feeds from the beginning, keeping each table's state.

    `caught_up()` tells when every partition reached the end offset seen at start; reading can go on
    after that (continuous landing) and the states keep following the topics.
    """

    def __init__(self, settings: Settings, feeds: list[Feed], quarantine: QuarantineWriter | None = None) -> None:
        self.quarantine = quarantine
        self.feeds_by_topic = {settings.topic(feed.topic): feed for feed in feeds}
        self.states = {feed.name: TableState(key_columns=list(feed.key_columns)) for feed in feeds}
        self.consumer = clients.consumer(settings, group_id=f"lakehouse-materialize-{uuid.uuid4().hex}",
                                          partition_ends=True)
        self.ends: dict[tuple[str, int], int] = {}
        assignment = []
        for topic, feed in self.feeds_by_topic.items():
            partitions = clients.topic_partitions(settings, topic)
            if not partitions:
                self.consumer.close()
                raise LakehouseError(f"topic {topic} of table feed {feed.name} does not exist")
            for partition, end in clients.end_offsets(self.consumer, topic, partitions).items():
                self.ends[(topic, partition)] = end
                assignment.append(TopicPartition(topic, partition, OFFSET_BEGINNING))
        self.pending = {tp for tp, end in self.ends.items() if end > 0}
        self.consumer.assign(assignment)

    def poll(self, timeout: float = 1.0) -> int:
        """Apply the next batch of records; returns how many arrived."""
        messages = self.consumer.consume(num_messages=_BATCH, timeout=timeout)
        for message in messages:
            tp = (message.topic(), message.partition())
            # the end event, not the last record, says a partition is read: compaction may have removed the
            # records just below the end offset, or the partition may end in transaction markers
            if clients.is_partition_end(message):
                if message.offset() >= self.ends[tp]:
                    self.pending.discard(tp)
                # read up to here, transaction markers included: what the rows reflect (sync compares it with
                # the warehouse consumer's offsets, which also reach the end past the markers)
                offsets = self.states[self.feeds_by_topic[message.topic()].name].next_offsets
                offsets[message.partition()] = max(offsets.get(message.partition(), 0), message.offset())
                continue
            if message.error() is not None:
                raise LakehouseError(f"reading {message.topic()}: {message.error().str()}")
            feed = self.feeds_by_topic[message.topic()]
            self.states[feed.name].apply_message(feed, message, self.quarantine)
            if message.offset() + 1 >= self.ends[tp]:
                self.pending.discard(tp)
        return len(messages)

    def caught_up(self) -> bool:
        return not self.pending

    def close(self) -> None:
        self.consumer.close()


def materialize_topic(settings: Settings, feed: Feed, quarantine: QuarantineWriter | None = None) -> TableState:
    """Read a table's changelog topic from the beginning to the end offsets seen now."""
    reader = ChangelogReader(settings, [feed], quarantine)
    try:
        while not reader.caught_up():
            reader.poll()
    finally:
        reader.close()
    return reader.states[feed.name]
