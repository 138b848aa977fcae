"""What the lake consumer holds between two commits, when it must land it, and the landing itself.

A `Checkpoint` has explicit state: per assigned partition its progress (where the held records start and end, their
counts, their bad records), and per (topic, partition, event day) one buffer of good rows.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime

import pyarrow as pa
from confluent_kafka import Message, TopicPartition

from lakehouse.catalog import Feed
from lakehouse.lake import commit, lineage
from lakehouse.lake import schema as lake_schema
from lakehouse.lake.commit import Counts
from lakehouse.lake.decode import FeedDecoder, record_schema
from lakehouse.lake.metadata import FeedMetadata
from lakehouse.quarantine import QuarantinedRecord, QuarantineWriter
from lakehouse.storage import LakeStorage


@dataclass(frozen=True)
class FlushPolicy:
    flush_size: int  # records in one (topic, partition, day) buffer
    flush_interval: float  # seconds a consumed record may wait before it is landed
    max_buffers: int  # open buffers; more forces a landing
    max_buffered_records: int  # all buffers together; keeps memory flat


@dataclass
class DayBuffer:
    first_offset: int
    tables: list[pa.Table] = field(default_factory=list)
    rows: int = 0


@dataclass
class PartitionProgress:
    feed: Feed
    topic: str
    partition: int
    start_offset: int  # next offset to land when the held records were started
    next_offset: int  # next offset to read
    counts: Counts = field(default_factory=Counts)
    bad: list[QuarantinedRecord] = field(default_factory=list)
    claim: str | None = None  # version of the lake's partition state this consumer holds (lake.commit)

    @property
    def pending(self) -> bool:
        return self.next_offset != self.start_offset

    def restart_at(self, offset: int) -> None:
        """Nothing held any more; the next record to land and to read is `offset`."""
        self.counts, self.bad = Counts(), []
        self.start_offset = self.next_offset = offset


@dataclass
class Landed:
    """What one commit landed: counts per feed, the offsets to tell Kafka, the partitions that were fenced, and
    how long step 3.2 took."""

    counts: dict[str, Counts] = field(default_factory=dict)
    offsets: list[TopicPartition] = field(default_factory=list)
    fenced: list[PartitionProgress] = field(default_factory=list)
    commit_seconds: float = 0.0


class Checkpoint:
    """The buffers of one lake consumer and their landing.

    1. `add` / `add_bad` take a batch's good rows (event_time and lineage stamped) into one buffer per (topic,
       partition, event day), and its bad records beside their partition.
    2. `due` says whether to land now, one named predicate per reason: a buffer over the flush size, the flush
       interval elapsed, too many buffers, too many buffered records (rebalances and stops land unconditionally).
    3. `commit` lands everything held, sinks first and offsets last:
       3.1 stage the quarantine files and the day files of each pending partition (lake.commit step 1);
       3.2 commit the partitions (decide, publish: lake.commit steps 2 and 3); a partition another writer claimed or
           moved on meanwhile is fenced and lands nothing;
       3.3 record the feeds' schema and totals in their metadata;
       3.4 return the landed offsets, which the caller may then commit to Kafka (informational: the lake's offsets
           rule), and the fenced partitions, which the caller reads again from the lake's offset.
    """

    def __init__(self, storage: LakeStorage, decoders: dict[str, FeedDecoder], policy: FlushPolicy) -> None:
        self.storage = storage
        self.decoders = decoders  # by topic
        self.policy = policy
        self.partitions: dict[tuple[str, int], PartitionProgress] = {}
        self.buffers: dict[tuple[str, int, date], DayBuffer] = {}
        self.pending_since: float | None = None  # when the oldest record not yet landed arrived
        self.quarantine = QuarantineWriter(storage)

    # ---------------------------------------------------------------- 1. holding records
    def add(self, topic: str, table: pa.Table, coordinates: pa.Table) -> None:
        """Good rows of one topic with their Kafka coordinates (partition, offset, timestamp)."""
        self.note_pending()
        feed = self.decoders[topic].feed
        table, days, fallback = lineage.stamp_rows(
            table, feed.timestamp_field, topic, coordinates.column("partition"), coordinates.column("offset"),
            coordinates.column("timestamp"), datetime.now(UTC))
        for (partition, day), (rows, fallbacks) in lineage.split_by_partition_and_day(table, days, fallback).items():
            buffer = self.buffers.get((topic, partition, day))
            if buffer is None:
                buffer = self.buffers[(topic, partition, day)] = DayBuffer(rows.column("_offset")[0].as_py())
            buffer.tables.append(rows)
            buffer.rows += rows.num_rows
            progress = self.partitions[(topic, partition)]
            progress.counts += Counts(landed=rows.num_rows, kafka_time_fallbacks=fallbacks)

    def add_bad(self, message: Message, reason: str) -> None:
        progress = self.partitions[(message.topic(), message.partition())]
        progress.bad.append(QuarantinedRecord.of_message(progress.feed.name, message, reason))
        progress.counts += Counts(quarantined=1)

    def note_pending(self) -> None:
        """Something not landed yet arrived (records, or a partition end past transaction markers)."""
        if self.pending_since is None:
            self.pending_since = time.monotonic()

    def forget(self, keys: set[tuple[str, int]]) -> None:
        """Lost partitions: another consumer may own them already, so nothing held of theirs may land."""
        for key in keys:
            self.partitions.pop(key, None)
        self.buffers = {key: buffer for key, buffer in self.buffers.items() if key[:2] not in keys}

    # ---------------------------------------------------------------- 2. when to land
    def due(self) -> bool:
        return self.pending_since is not None and (
            self.over_flush_size() or self.interval_elapsed() or self.too_many_buffers()
            or self.too_many_records())

    def over_flush_size(self) -> bool:
        return any(buffer.rows >= self.policy.flush_size for buffer in self.buffers.values())

    def interval_elapsed(self) -> bool:
        return self.seconds_left() <= 0

    def too_many_buffers(self) -> bool:
        return len(self.buffers) > self.policy.max_buffers

    def too_many_records(self) -> bool:
        return sum(buffer.rows for buffer in self.buffers.values()) >= self.policy.max_buffered_records

    def seconds_left(self) -> float:
        """Until the flush interval of the oldest held record elapses (infinite when nothing is held)."""
        if self.pending_since is None:
            return float("inf")
        return self.pending_since + self.policy.flush_interval - time.monotonic()

    # ---------------------------------------------------------------- 3. landing
    def commit(self) -> Landed:
        """Steps 3.1 to 3.4 of the class docstring."""
        pending = {key: progress for key, progress in self.partitions.items() if progress.pending}
        if not pending:
            return Landed()
        # 3.1 stage
        commits = self._stage(pending)
        # 3.2 commit the partitions
        started = time.monotonic()
        fenced = {(item.topic, item.partition) for item in commit.commit_partitions(self.storage, commits.values())}
        self.buffers.clear()
        self.pending_since = None
        landed = Landed(fenced=[pending.pop(key) for key in fenced], commit_seconds=time.monotonic() - started)
        for key, progress in pending.items():
            counts = Counts.of(commits[key].counts)
            landed.counts[progress.feed.name] = landed.counts.get(progress.feed.name, Counts()) + counts
            landed.offsets.append(TopicPartition(progress.topic, progress.partition, progress.next_offset))
            progress.restart_at(progress.next_offset)
            progress.claim = commits[key].claim
        # 3.3 the feeds' metadata
        for feed in {progress.feed.name: progress.feed for progress in pending.values()}.values():
            self._record_feed_totals(feed)
        # 3.4 the offsets, for the caller to tell Kafka
        return landed

    def _stage(self, pending: dict[tuple[str, int], PartitionProgress]
               ) -> dict[tuple[str, int], commit.PartitionCommit]:
        commits = {key: commit.PartitionCommit(feed=p.feed.name, topic=p.topic, partition=p.partition,
                                               start_offset=p.start_offset, next_offset=p.next_offset,
                                               claim=p.claim)
                   for key, p in pending.items()}
        for progress in pending.values():
            for record in progress.bad:
                self.quarantine.add(record)
        for (_feed, topic, partition), (path, table) in self.quarantine.drain().items():
            commits[(topic, partition)].stage(self.storage, path, table)
        for (topic, partition, day), buffer in self.buffers.items():
            schema = pa.unify_schemas([self.decoders[topic].arrow_schema, lineage.LANDED])
            table = pa.concat_tables([lake_schema.conform(t, schema) for t in buffer.tables])
            commits[(topic, partition)].stage(self.storage, commit.stream_file(
                self.decoders[topic].feed.name, day, topic, partition, buffer.first_offset), table)
        for key, item in commits.items():
            item.counts = asdict(pending[key].counts) | {"files": len(item.renames)}
        return commits

    def _record_feed_totals(self, feed: Feed) -> None:
        """feed.json: the schema (again, in case a concurrent writer lost it) and totals over all partitions."""
        metadata = FeedMetadata(self.storage, feed.name)
        schema = next(decoder.schema for decoder in self.decoders.values() if decoder.feed.name == feed.name)

        def change(document: dict) -> None:
            record_schema(document, schema)
            document["counts"] = asdict(sum((Counts.of(s) for s in metadata.partition_states()), Counts()))

        metadata.update(change)
