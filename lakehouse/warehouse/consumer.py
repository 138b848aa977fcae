"""The exactly-once warehouse consumer: ksqlDB table changelogs -> MySQL.

Exactly-once rests on one rule: the next offset of every partition is stored in `kafka_offsets`
(per consumer group, topic and partition) in the SAME transaction as the rows those records
produced. Kafka's own group offsets are never used. So:

* on start and on every assignment the consumer seeks to the offsets stored in MySQL; a stored offset
  beyond the end of the partition (the topic was deleted and recreated) is reset to the beginning,
  with a warning;
* a crash anywhere (even SIGKILL mid-batch) leaves rows and offsets consistent: the uncommitted batch is
  simply read again;
* each commit first checks, under a row lock, that the stored offsets are still the ones this consumer
  started the batch from. If not (another consumer took the partition over, or a commit whose reply was
  lost did land) the batch is dropped and the partitions are re-read from the stored offsets;
* MySQL unreachable: the batch is retried with backoff, nothing moves, and it resumes by itself.

After each MySQL commit the same offsets also go to Kafka, for lag tools only (lakehouse.warehouse.monitoring).

A batch is validated at once per feed when it is flushed (Mapping.convert_batch: column-at-once, same
outcomes as record by record), then collapses to the last valid change per key (a table changelog only
needs its latest state); a tombstone deletes the row. Bad records go to the lake's quarantine with their
reason, durably, before the offsets that pass them are committed.

Rows written here carry snapshot_version 0 (STREAMING_VERSION) and today's snapshot_date (UTC):
"the live state", as opposed to the numbered snapshots of sync_to_mysql.py.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition
from mysql.connector.cursor import MySQLCursor

from lakehouse.catalog import Feed
from lakehouse.kafka import clients
from lakehouse.kafka.records import BadRecord, decode_table_record
from lakehouse.metrics import ConsumerMetrics
from lakehouse.quarantine import QuarantinedRecord, QuarantineWriter
from lakehouse.settings import Settings
from lakehouse.storage import LakeStorage
from lakehouse.warehouse.base import STREAMING_VERSION, Key, Mapping, Snapshot
from lakehouse.warehouse.connection import StopRequested, Warehouse
from lakehouse.warehouse.mapping import mapping_for
from lakehouse.warehouse.migrations import ensure_schema
from lakehouse.warehouse.monitoring import ConsumerMonitor
from lakehouse.warehouse.offsets import TopicPartitionKey, read_offsets, starts_on_assign, write_offsets

log = logging.getLogger(__name__)
DEFAULT_BATCH_SIZE = 20_000
DEFAULT_BATCH_SECONDS = 1.0


def default_group_id(settings: Settings) -> str:
    # The topic prefix keeps environments (and tests) sharing one broker out of each other's groups.
    return f"{settings.topic_prefix}lakehouse-warehouse"


@dataclass
class ConsumerOptions:
    group_id: str
    # stop once every partition of the topics has reached the end offset seen at start: the ones this consumer
    # holds by reading them, the ones other members hold (or a crashed one still holds) by MySQL's offsets
    until_end: bool = False
    max_messages: int | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    batch_seconds: float = DEFAULT_BATCH_SECONDS
    status_every: float = 30.0  # seconds between rate and lag lines (continuous runs)


@dataclass
class ConsumerSummary:
    consumed: int = 0
    upserted: int = 0
    deleted: int = 0
    quarantined: int = 0
    batches: int = 0
    uncommitted: int = 0  # records read but not committed when a stop came while MySQL was away
    resets: list[str] = field(default_factory=list)

    def add_batch(self, upserted: int, deleted: int, quarantined: int) -> None:
        """A batch committed."""
        self.batches += 1
        self.upserted += upserted
        self.deleted += deleted
        self.quarantined += quarantined


@dataclass
class _PartitionBatch:
    """What one partition contributed to the open batch."""

    # (feed, key of a tombstone, decoded row of an upsert, the record): rows are validated at flush time
    changes: list[tuple[str, Key | None, dict | None, Message]] = field(default_factory=list)
    quarantined: list[QuarantinedRecord] = field(default_factory=list)
    next_offset: int = 0

    def add(self, feed: Feed, mapping: Mapping, message: Message) -> None:
        """A change record: decoded now (a bad one is quarantined), validated at flush time."""
        self.next_offset = message.offset() + 1
        try:
            raw_key, row = decode_table_record(message.key(), message.value(), feed.key_columns)
            self.changes.append((feed.name, mapping.key(raw_key), None, message) if row is None else
                                (feed.name, None, row, message))
        except BadRecord as exc:
            self.quarantined.append(QuarantinedRecord.of_message(feed.name, message, str(exc)))


class _Fenced(Exception):
    """The offsets stored in MySQL are not the ones this batch started from."""

    def __init__(self, stored: dict[TopicPartitionKey, int | None]) -> None:
        super().__init__("stored offsets moved")
        self.stored = stored


class WarehouseConsumer:
    def __init__(self, settings: Settings, feeds: list[Feed], options: ConsumerOptions,
                 warn: Callable[[str], None] = log.warning, metrics: ConsumerMetrics | None = None) -> None:
        self.settings = settings
        self.options = options
        self.warn = warn
        self.routes: dict[str, tuple[Feed, Mapping]] = {
            settings.topic(feed.topic): (feed, mapping_for(feed)) for feed in feeds}
        self.quarantine = QuarantineWriter(LakeStorage(settings.data_lake_root))
        self.warehouse = Warehouse(settings, give_up_after=None, should_stop=lambda: self._stop, on_retry=warn)
        self.monitor = ConsumerMonitor({topic: feed.name for topic, (feed, _) in self.routes.items()}, self.warehouse,
                                       metrics or ConsumerMetrics(uses_mysql=True), options.status_every,
                                       log_lines=not options.until_end and options.max_messages is None)
        self.summary = ConsumerSummary()
        self._stop = False
        self._batch: dict[TopicPartitionKey, _PartitionBatch] = {}
        self._batch_started = 0.0
        self._stored: dict[TopicPartitionKey, int | None] = {}  # what MySQL holds, as far as we know
        self._cursor: dict[TopicPartitionKey, int] = {}  # next offset to read, per assigned partition
        self._ends: dict[TopicPartitionKey, int] = {}
        self._assigned_once = False
        self._reported_errors: set[str] = set()
        self._consumer: Consumer | None = None

    # ---------------------------------------------------------------- control
    def request_stop(self) -> None:
        """Ask the loop to flush and stop (safe to call from a signal handler)."""
        self._stop = True

    def run(self) -> ConsumerSummary:
        try:
            ensure_schema(self.warehouse)
            for _feed, mapping in self.routes.values():
                mapping.prepare(self.warehouse, [])  # auto-mapped tables exist before the first record
            self._consume()
        except StopRequested:
            self.summary.uncommitted = self._pending()
        finally:
            if self._consumer is not None:
                self._consumer.close()
            self.warehouse.close()
        return self.summary

    # ---------------------------------------------------------------- main loop
    def _consume(self) -> None:
        self._consumer = clients.consumer(self.settings, self.options.group_id, partition_ends=True)
        topics = subscribable_topics(self.settings, self._consumer, set(self.routes), self.options.until_end,
                                     self._ends, self.warn)
        if not topics:
            return
        self._consumer.subscribe(topics, on_assign=self._on_assign, on_revoke=self._on_revoke,
                                 on_lost=self._on_revoke)
        while not self._stop and not self._done():
            room = self.options.batch_size - self._pending()
            if self.options.max_messages is not None:
                room = min(room, self.options.max_messages - self.summary.consumed)
            if self.options.until_end and self._assigned_once:  # the last call returns once the end is in
                room = min(room, sum(max(0, self._ends.get(tp, 0) - offset) for tp, offset in self._cursor.items()))
            messages = self._consumer.consume(num_messages=max(1, room), timeout=0.5)
            for message in messages:
                self._handle(message)
            if self._batch and (self._pending() >= self.options.batch_size or not messages
                                or time.monotonic() - self._batch_started >= self.options.batch_seconds):
                self._flush()
            self.monitor.report(self._consumer, self._cursor, self.summary.consumed)
        self._flush()

    def _done(self) -> bool:
        if self.options.max_messages is not None and self.summary.consumed >= self.options.max_messages:
            return True
        if not self.options.until_end or not self._assigned_once:
            return False
        if any(self._cursor[tp] < self._ends.get(tp, 0) for tp in self._cursor):
            return False
        # A partition held elsewhere (by a live member, or by a killed one until its session expires and the
        # partition comes here) is done only once the group's offsets in MySQL say so.
        others = [tp for tp in self._ends if tp not in self._cursor]
        if not others:
            return True
        stored = self.warehouse.run(lambda cursor: read_offsets(cursor, self.options.group_id, others))
        return all(stored.get(tp, 0) >= self._ends[tp] for tp in others)

    def _pending(self) -> int:
        return sum(len(b.changes) + len(b.quarantined) for b in self._batch.values())

    # ---------------------------------------------------------------- records
    def _handle(self, message: Message) -> None:
        error = message.error()
        tp = (message.topic(), message.partition())
        if error is not None:
            self._handle_error(error, tp, message)
            return
        if tp not in self._cursor:
            return  # fetched just before its partition was revoked
        self.summary.consumed += 1
        self.monitor.read(tp[0])
        self._cursor[tp] = message.offset() + 1
        if not self._batch:
            self._batch_started = time.monotonic()
        self._batch.setdefault(tp, _PartitionBatch()).add(*self.routes[message.topic()], message)

    def _handle_error(self, error: KafkaError, tp: TopicPartitionKey, message: Message) -> None:
        if clients.is_partition_end(message):
            if tp in self._cursor:
                self._cursor[tp] = max(self._cursor[tp], message.offset())
                self._store_end(tp)
            return
        if error.fatal():
            raise KafkaException(error)
        if error.str() not in self._reported_errors:  # librdkafka retries these by itself; say it once
            self._reported_errors.add(error.str())
            self.warn(f"Kafka: {error.str()}")

    def _store_end(self, tp: TopicPartitionKey) -> None:
        """At the end of a partition whose tail holds no records (transaction markers, compacted-away
        offsets), let the next commit store the end itself, so MySQL's offsets reach the partition's end."""
        batch = self._batch.get(tp)
        if self._cursor[tp] <= max(self._stored.get(tp) or 0, batch.next_offset if batch else 0):
            return
        if not self._batch:
            self._batch_started = time.monotonic()
        self._batch.setdefault(tp, _PartitionBatch()).next_offset = self._cursor[tp]

    # ---------------------------------------------------------------- commit
    def _flush(self) -> None:
        if not self._batch:
            return
        batch, started = self._batch, time.monotonic()
        upserts, deletes, rejected = collapse(batch, self._mapping)
        quarantined = quarantine_batch(self.quarantine, batch, rejected)
        for name, payloads in upserts.items():
            self._mapping(name).prepare(self.warehouse, payloads)  # type: ignore[arg-type]
        expected = {tp: self._stored.get(tp) for tp in batch}
        offsets = {tp: part.next_offset for tp, part in batch.items()}
        snapshot = Snapshot(STREAMING_VERSION, datetime.now(UTC).date())

        def work(cursor: MySQLCursor) -> tuple[int, int]:
            stored = read_offsets(cursor, self.options.group_id, list(batch), lock=True)
            if any(stored.get(tp) != expected[tp] for tp in batch):
                raise _Fenced(stored)
            deleted = sum(self._mapping(n).delete(cursor, keys) for n, keys in deletes.items() if keys)
            written = sum(self._mapping(n).write(cursor, p, snapshot) for n, p in upserts.items())  # type: ignore[misc]
            write_offsets(cursor, self.options.group_id, offsets)
            return written, deleted

        try:
            committing = time.monotonic()
            written, deleted = self.warehouse.run(work)
        except _Fenced as fenced:
            self._refetch(fenced.stored, list(batch))
            return
        self.monitor.committed(self._consumer, offsets, applied_per_feed(batch, rejected), quarantined,
                               time.monotonic() - started, time.monotonic() - committing)
        self._stored.update(offsets)
        self._batch = {}
        self.summary.add_batch(written, deleted, quarantined.total())

    def _mapping(self, feed_name: str) -> Mapping:
        return next(mapping for feed, mapping in self.routes.values() if feed.name == feed_name)

    def _refetch(self, stored: dict[TopicPartitionKey, int | None], partitions: list[TopicPartitionKey]) -> None:
        """Drop the batch and re-read its partitions from what MySQL holds."""
        self.warn("the offsets stored in MySQL moved under this consumer (another consumer took over, or an "
                  "earlier commit landed although its reply was lost); re-reading from the stored offsets")
        self._batch = {}
        for tp in partitions:
            self._stored[tp] = stored.get(tp)
            if tp in self._cursor:
                start = stored.get(tp)
                self._consumer.seek(TopicPartition(*tp, OFFSET_BEGINNING if start is None else start))
                self._cursor[tp] = start or 0

    # ---------------------------------------------------------------- rebalancing
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Seek every newly assigned partition to its offset stored in MySQL."""
        keys = [(p.topic, p.partition) for p in partitions]
        watermarks = {tp: consumer.get_watermark_offsets(TopicPartition(*tp), timeout=10) for tp in keys}

        stored, resets = self.warehouse.run(lambda cursor: starts_on_assign(cursor, self.options.group_id, watermarks))
        for text in resets:
            self.summary.resets.append(text)
            self.warn(text)
        for partition in partitions:
            tp = (partition.topic, partition.partition)
            start = stored.get(tp)
            partition.offset = OFFSET_BEGINNING if start is None else start
            self._stored[tp] = start
            self._cursor[tp] = max(start or 0, watermarks[tp][0])
        consumer.incremental_assign(partitions)
        self._assigned_once = True

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Forget revoked partitions: their uncommitted records will be read again by their next owner."""
        for partition in partitions:
            tp = (partition.topic, partition.partition)
            self._batch.pop(tp, None)
            self._cursor.pop(tp, None)
            self._stored.pop(tp, None)
        consumer.incremental_unassign(partitions)


def quarantine_batch(writer: QuarantineWriter, batch: dict[TopicPartitionKey, _PartitionBatch],
                     rejected: dict[TopicPartitionKey, list[QuarantinedRecord]]) -> Counter[str]:
    """The batch's bad records durably in the quarantine (before the offsets that skip them are committed); how
    many per feed."""
    quarantined: Counter[str] = Counter()
    for tp, part in batch.items():
        for record in sorted([*part.quarantined, *rejected.get(tp, [])], key=lambda r: r.offset):
            writer.add(record)
            quarantined[record.feed] += 1
    writer.flush()
    return quarantined


def applied_per_feed(batch: dict[TopicPartitionKey, _PartitionBatch],
                     rejected: dict[TopicPartitionKey, list[QuarantinedRecord]]) -> Counter[str]:
    """Records of a batch whose change goes to MySQL (as written, or superseded by a later change of its key)."""
    applied = Counter(feed_name for part in batch.values() for feed_name, *_ in part.changes)
    applied.subtract(record.feed for records in rejected.values() for record in records)
    return applied


def subscribable_topics(settings: Settings, consumer: Consumer, wanted: set[str], until_end: bool,
                        ends: dict[TopicPartitionKey, int], warn: Callable[[str], None]) -> list[str]:
    """The topics to subscribe to: all of them (a missing one is consumed once created), or for --until-end the
    existing ones, whose end offsets go into `ends`."""
    existing = set(clients.require_broker(settings).list_topics(timeout=clients.CONNECT_TIMEOUT_S).topics)
    for topic in sorted(wanted - existing):
        warn(f"topic {topic} does not exist yet"
             + ("; skipped" if until_end else "; it is consumed once it is created"))
    if not until_end:
        return sorted(wanted)
    topics = sorted(wanted & existing)
    for topic in topics:
        for partition, end in clients.end_offsets(consumer, topic, clients.topic_partitions(settings, topic)).items():
            ends[(topic, partition)] = end
    return topics


def collapse(batch: dict[TopicPartitionKey, _PartitionBatch], mapping_of: Callable[[str], Mapping]
             ) -> tuple[dict[str, object], dict[str, list[Key]], dict[TopicPartitionKey, list[QuarantinedRecord]]]:
    """The last valid change per key and feed: upserts (payloads for write), deletes (keys), and the
    records validation rejected (per partition)."""
    rows: dict[str, list[dict]] = {}
    for part in batch.values():
        for feed_name, _key, row, _message in part.changes:
            if row is not None:
                rows.setdefault(feed_name, []).append(row)
    converted = {name: mapping_of(name).convert_batch(feed_rows) for name, feed_rows in rows.items()}
    position = dict.fromkeys(converted, 0)
    latest: dict[str, dict[Key, int | None]] = {}  # key -> index of its row in `converted` (None: delete)
    rejected: dict[TopicPartitionKey, list[QuarantinedRecord]] = {}
    for tp, part in batch.items():
        for feed_name, key, row, message in part.changes:
            index = None
            if row is not None:
                index, result = position[feed_name], converted[feed_name]
                position[feed_name] += 1
                if index in result.reasons:
                    rejected.setdefault(tp, []).append(
                        QuarantinedRecord.of_message(feed_name, message, result.reasons[index]))
                    continue
                key = result.keys[index]
            per_feed = latest.setdefault(feed_name, {})
            per_feed.pop(key, None)  # type: ignore[arg-type]  # keep the order of the last change
            per_feed[key] = index  # type: ignore[index]
    upserts = {name: converted[name].select([i for i in changes.values() if i is not None])
               for name, changes in latest.items() if name in converted}
    deletes = {name: [k for k, i in changes.items() if i is None] for name, changes in latest.items()}
    return upserts, deletes, rejected
