"""The data lake consumer: Kafka stream feeds -> Parquet files by event date, exactly once.

Records are consumed in batches and decoded into Arrow in bulk (pyarrow's JSON reader, with the feed's
fixed schema); a batch the bulk reader cannot take as it is (a bad record, a new field) is decoded record
by record, which quarantines the bad ones with their reason and evolves the schema. Good rows wait in one
buffer per (topic, partition, event day). A checkpoint lands every buffer with lakehouse.lake_writer's
commit protocol; it runs at --flush-size records, --flush-interval seconds (idle topics included), when
too many buffers are open, on revoke and on stop. The lake metadata offsets are the source of truth:
each assigned partition first completes its interrupted commit, then seeks to its landed offset.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import orjson
import pyarrow as pa
import pyarrow.json as pa_json
from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from tqdm import tqdm

from lakehouse import kafka_io, lake_schema, lake_writer, layout
from lakehouse.catalog import Feed, FeedCatalog, validate_name
from lakehouse.errors import LakehouseError
from lakehouse.metadata import FeedMetadata, utc_now_iso
from lakehouse.quarantine import QuarantinedRecord, QuarantineWriter
from lakehouse.records import MAX_VALUE_BYTES, BadRecord, decode_object, snake_case
from lakehouse.settings import Settings
from lakehouse.storage import LakeStorage
from lakehouse.table_landing import TableLander
from lakehouse.tables import render

log = logging.getLogger(__name__)

DEFAULT_GROUP = "lakehouse-datalake"
_JSON_BLOCK = 1 << 20  # bulk JSON parse block; a record larger than half of it goes record by record
_RECORD_BY_RECORD = 256  # records: a rejected batch is split down to this size before going record by record


def default_group_id(settings: Settings) -> str:
    """The lake consumer's group in this environment; export joins it, so Kafka gives each partition to one of
    them at a time. The topic prefix keeps environments (and tests) sharing one broker out of each other's groups."""
    return f"{settings.topic_prefix}{DEFAULT_GROUP}"


@dataclass(frozen=True)
class LandingOptions:
    group_id: str
    until_end: bool = False
    max_messages: int | None = None
    flush_size: int = 50_000  # records in one (topic, partition, day) buffer
    flush_interval: float = 30.0  # seconds a consumed record may wait before it is landed
    batch_size: int = 10_000  # records per consume() call
    max_buffers: int = 64  # open (topic, partition, day) buffers; more forces a checkpoint
    max_buffered_records: int = 250_000  # all buffers together; keeps memory flat
    progress: bool = False  # tqdm bar on stderr (bounded runs)
    status_every: float = 30.0  # seconds between status lines (continuous runs)
    snapshot_interval: float = 60.0  # table feeds: at most one new version per interval (continuous runs)


@dataclass
class FeedTotals:
    consumed: int = 0
    landed: int = 0
    quarantined: int = 0
    kafka_time_fallbacks: int = 0
    files: int = 0


@dataclass
class LandingSummary:
    feeds: dict[str, FeedTotals] = field(default_factory=dict)
    skipped_topics: list[str] = field(default_factory=list)

    def render(self) -> str:
        return render(["feed", "consumed", "landed", "quarantined", "kafka time used", "files"],
                      [[name, t.consumed, t.landed, t.quarantined, t.kafka_time_fallbacks, t.files]
                       for name, t in sorted(self.feeds.items())])


# ---------------------------------------------------------------- choosing feeds
def select_feeds(settings: Settings, storage: LakeStorage, feed_names: list[str] | None = None,
                 topics: list[str] | None = None) -> list[Feed]:
    """The feeds to land: named ones, the feeds of Kafka topics, or every active feed."""
    catalog = FeedCatalog(storage)
    if topics:
        return [feed_for_topic(settings, catalog, topic) for topic in topics]
    if feed_names:
        feeds = [catalog.get(name) for name in feed_names]
        inactive = [f"{f.name} ({f.status})" for f in feeds if not f.active]
        if inactive:
            raise LakehouseError(f"feed(s) not active: {', '.join(inactive)}")
        return feeds
    feeds = catalog.list(active_only=True)
    if not feeds:
        raise LakehouseError("no active feed in the catalog (run: python data_lake_config.py init)")
    return feeds


def feed_for_topic(settings: Settings, catalog: FeedCatalog, topic: str) -> Feed:
    """The feed of a Kafka topic; a topic without one is registered as a stream feed named after it."""
    if not topic.startswith(settings.topic_prefix):
        raise LakehouseError(f"topic {topic!r} does not start with this environment's prefix "
                             f"{settings.topic_prefix!r} (LAKEHOUSE_TOPIC_PREFIX)")
    name = topic[len(settings.topic_prefix):]
    feed = catalog.by_topic(name)
    if feed is not None:
        return feed
    if not kafka_io.topic_partitions(settings, topic):
        raise LakehouseError(f"topic {topic!r} does not exist in Kafka")
    feed = Feed(name=validate_name(snake_case(name), f"feed name for topic {topic!r}"), kind="stream",
                topic=name, timestamp_field="timestamp", description=f"registered by the lake consumer from {topic}")
    log.info("registered topic %s as stream feed %s", topic, feed.name)
    return catalog.add(feed)


def land(settings: Settings, feeds: list[Feed], options: LandingOptions,
         stop: threading.Event | None = None) -> LandingSummary:
    """Land the given feeds until the run's bound (or `stop`); returns what this run did.

    Stream feeds go through a consumer of the group; table feeds are materialized from their changelog
    topics into versioned snapshots (lakehouse.table_landing), in a thread beside the streams.
    """
    stop = stop or threading.Event()
    streams = [f for f in feeds if f.kind == "stream"]
    tables = TableLander(settings, [f for f in feeds if f.kind == "table"], options.snapshot_interval,
                         until_end=options.until_end or options.max_messages is not None, stop=stop)
    table_run: dict[str, object] = {}

    def run_tables() -> None:
        try:
            table_run["totals"] = tables.run()
        except BaseException as exc:
            table_run["error"] = exc
            stop.set()  # a failing table lander stops the whole consumer, streams included

    thread = threading.Thread(target=run_tables, name="table-landing", daemon=True)
    thread.start()
    try:
        summary = StreamLander(settings, streams, options, stop).run() if streams else LandingSummary()
    except BaseException:
        stop.set()
        raise
    finally:
        while thread.is_alive():
            thread.join(0.2)  # polled, so SIGINT/SIGTERM still reach the main thread
    if "error" in table_run:
        raise table_run["error"]  # type: ignore[misc]
    for name, totals in table_run.get("totals", {}).items():  # type: ignore[union-attr]
        summary.feeds[name] = FeedTotals(consumed=totals.consumed, landed=totals.applied,
                                         quarantined=totals.quarantined, files=totals.versions_written)
    return summary


# ---------------------------------------------------------------- decoding one feed
class FeedDecoder:
    """Kafka values of one stream feed -> Arrow rows, plus the bad ones with their reason."""

    def __init__(self, feed: Feed, metadata: FeedMetadata) -> None:
        self.feed = feed
        self.metadata = metadata
        self.required = lake_schema.required_fields(feed)
        self.schema: lake_schema.Schema = lake_schema.schema_from_json(metadata.read().get("schema", []))
        # column -> the producer's spelling (USER_ID, userId); a stored schema starts with its own names,
        # the first batch corrects them if the bulk reader finds other spellings
        self.source_names: dict[str, str] = {name: name for name in self.schema}

    @property
    def arrow_schema(self) -> pa.Schema:
        return lake_schema.to_arrow(self.schema)

    def decode(self, values: list[bytes | None]) -> tuple[pa.Table, list[int] | None, dict[int, str]]:
        """(good rows, their indexes in `values` or None when all are good, index -> reason of bad ones).

        A batch the bulk reader rejects is split in halves, down to small chunks decoded record by record:
        a bad record or a new field costs a few bulk attempts, not a whole batch in Python.
        """
        table = self._decode_bulk(values)
        if table is not None:
            return table, None, {}
        if len(values) <= _RECORD_BY_RECORD:
            return self._decode_each(values)
        half = len(values) // 2
        first, first_good, first_bad = self.decode(values[:half])
        second, second_good, second_bad = self.decode(values[half:])
        schema = self.arrow_schema  # the second half may have evolved it
        table = pa.concat_tables([lake_schema.conform(first, schema), lake_schema.conform(second, schema)])
        if first_good is None and second_good is None:
            return table, None, {}
        good = (list(range(half)) if first_good is None else first_good) + [
            half + index for index in (range(len(values) - half) if second_good is None else second_good)]
        return table, good, {**first_bad, **{half + index: reason for index, reason in second_bad.items()}}

    def _decode_bulk(self, values: list[bytes | None]) -> pa.Table | None:
        """All values at once through pyarrow's JSON reader, or None when the batch needs a closer look.

        Every check here is one the record-by-record path makes too, so both land the same rows.
        """
        if not self.schema or not self.source_names.keys() >= self.schema.keys() or None in values:
            return None
        if max(map(len, values)) * 2 > _JSON_BLOCK or max(map(len, values)) > MAX_VALUE_BYTES:
            return None
        joined = b"\n".join(values)
        if joined.count(b"\n") != len(values) - 1:  # a value with a raw newline would split into two rows
            return None
        explicit = pa.schema([pa.field(self.source_names[name], type_) for name, type_ in self.schema.items()])
        try:
            table = pa_json.read_json(
                io.BytesIO(joined), read_options=pa_json.ReadOptions(block_size=_JSON_BLOCK),
                parse_options=pa_json.ParseOptions(explicit_schema=explicit, unexpected_field_behavior="error"))
        except (pa.ArrowInvalid, UnicodeDecodeError):
            return None
        if table.num_rows != len(values) or table.column_names != explicit.names:
            return None  # blank values, several objects in one value
        table = table.rename_columns(list(self.schema))
        if any(table.column(name).null_count for name in self.required):
            return None
        return table

    def _decode_each(self, values: list[bytes | None]) -> tuple[pa.Table, list[int], dict[int, str]]:
        rows: list[dict | None] = []
        bad: dict[int, str] = {}
        for index, value in enumerate(values):
            try:
                rows.append(decode_object(value))
            except BadRecord as exc:
                rows.append(None)
                bad[index] = str(exc)
        while True:  # converges: the stored schema only ever grows
            evolved, reasons = lake_schema.check_rows(rows, self.schema, self.required)
            if evolved == self.schema:
                break
            self.schema = self._persist(evolved)
        for index, reason in enumerate(reasons):
            if reason:
                bad[index] = reason
        good = [index for index, reason in enumerate(reasons) if reason is None]
        self._learn_source_names([values[index] for index in good])
        table = pa.Table.from_pylist([rows[index] for index in good], schema=self.arrow_schema)
        return table, good, bad

    def _learn_source_names(self, values: list[bytes]) -> None:
        """The producer's spelling of each column, for the bulk reader (slow path only: parses again)."""
        spellings = set(self.source_names.values())
        for value in values:
            for name in orjson.loads(value):
                if name not in spellings:
                    spellings.add(name)
                    self.source_names[snake_case(name)] = name

    def _persist(self, schema: lake_schema.Schema) -> lake_schema.Schema:
        """Store an evolved schema (merged with what other consumers stored); returns the merged one."""
        merged: dict[str, lake_schema.Schema] = {}

        def change(document: dict) -> None:
            merged["schema"] = record_schema(document, schema)

        self.metadata.update(change)
        log.info("feed %s schema: %s", self.feed.name, ", ".join(f"{n} {t}" for n, t in merged["schema"].items()))
        return merged["schema"]


def record_schema(document: dict, schema: lake_schema.Schema) -> lake_schema.Schema:
    """Merge `schema` into a feed.json document, with a history entry when it changes; returns the merge."""
    stored = lake_schema.schema_from_json(document.get("schema", []))
    merged = lake_schema.merge_schemas(stored, schema)
    changes = lake_schema.describe_changes(stored, merged)
    if changes:
        history = document.setdefault("schema_history", [])
        history.append({"version": len(history) + 1, "at": utc_now_iso(), "changes": changes})
        document["schema"] = lake_schema.schema_to_json(merged)
    return merged


# ---------------------------------------------------------------- buffers and per-partition progress
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
    start_offset: int  # next offset to land when the current buffers were started
    next_offset: int  # next offset to read
    counts: Counter = field(default_factory=Counter)
    bad: list[QuarantinedRecord] = field(default_factory=list)

    @property
    def pending(self) -> bool:
        return self.next_offset != self.start_offset


@dataclass
class KafkaBatch:
    """Records of one topic from one consume() call, with their Kafka coordinates as Arrow columns."""

    messages: list[Message]
    coordinates: pa.Table  # partition, offset, timestamp (ms)

    @classmethod
    def of(cls, messages: list[Message]) -> KafkaBatch:
        return cls(messages, pa.table({
            "partition": pa.array([m.partition() for m in messages], pa.int32()),
            "offset": pa.array([m.offset() for m in messages], pa.int64()),
            "timestamp": pa.array([m.timestamp()[1] for m in messages], pa.int64()),
        }))

    def spans(self) -> dict[int, tuple[int, int, int]]:
        """partition -> (first offset, last offset, record count)."""
        spans = self.coordinates.group_by("partition", use_threads=False).aggregate(
            [("offset", "min"), ("offset", "max"), ("offset", "count")])
        return {row["partition"]: (row["offset_min"], row["offset_max"], row["offset_count"])
                for row in spans.to_pylist()}

    def rows(self, indexes: list[int] | None) -> pa.Table:
        """The coordinates of some records (None: all)."""
        return self.coordinates if indexes is None else self.coordinates.take(pa.array(indexes, pa.int64()))


class StreamLander:
    """One consumer of a group: lands the stream feeds' partitions it is assigned."""

    def __init__(self, settings: Settings, feeds: list[Feed], options: LandingOptions,
                 stop: threading.Event) -> None:
        self.options = options
        self.stop = stop
        self.storage = LakeStorage(settings.data_lake_root)
        self.feeds = {settings.topic(feed.topic): feed for feed in feeds}
        self.decoders = {topic: FeedDecoder(feed, FeedMetadata(self.storage, feed.name))
                         for topic, feed in self.feeds.items()}
        self.summary = LandingSummary(feeds={feed.name: FeedTotals() for feed in feeds})
        self.quarantine = QuarantineWriter(self.storage)
        self.consumer: Consumer = kafka_io.consumer(settings, options.group_id, partition_ends=True)
        self.settings = settings
        self.buffers: dict[tuple[str, int, date], DayBuffer] = {}
        self.partitions: dict[tuple[str, int], PartitionProgress] = {}
        self.watermarks: dict[tuple[str, int], tuple[int, int]] = {}  # at start: (low, high)
        self.assigned_once = False
        self.failed = False
        self.consumed = 0
        self.pending_since: float | None = None  # when the oldest record not yet landed arrived
        self.bar = tqdm(total=options.max_messages or 0, disable=not options.progress, unit="rec",
                        file=sys.stderr, dynamic_ncols=True)
        self.status_at = time.monotonic()
        self.status_consumed = 0

    # ---------------------------------------------------------------- the loop
    def run(self) -> LandingSummary:
        try:
            self.consumer.subscribe(self._existing_topics(), on_assign=self._on_assign,
                                    on_revoke=self._on_revoke, on_lost=self._on_lost)
            while not self._finished():
                messages = self.consumer.consume(num_messages=self._batch_limit(), timeout=self._poll_timeout())
                if messages:
                    self._handle(messages)
                if self._checkpoint_due():
                    self.checkpoint()
                self._report_status()
            self.checkpoint()
        except BaseException:
            self.failed = True  # no checkpoint from the close-time revoke: the buffers may be half-built
            raise
        finally:
            self.consumer.close()
            self.bar.close()
        return self.summary

    def _existing_topics(self) -> list[str]:
        topics = []
        for topic in self.feeds:
            partitions = kafka_io.topic_partitions(self.settings, topic)
            if not partitions:
                log.warning("topic %s (feed %s) does not exist yet; skipped", topic, self.feeds[topic].name)
                self.summary.skipped_topics.append(topic)
                continue
            topics.append(topic)
            for partition in partitions:
                self.watermarks[(topic, partition)] = self.consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=kafka_io.CONNECT_TIMEOUT_S)
        if not topics:
            raise LakehouseError(f"none of the topics exists: {', '.join(self.feeds)}")
        return topics

    def _finished(self) -> bool:
        if self.stop.is_set():
            return True
        if self.options.max_messages is not None and self.consumed >= self.options.max_messages:
            return True
        if not (self.options.until_end and self._own_partitions_at_end()):
            return False
        # A partition held elsewhere (by a live member, or by a killed one until its session expires and the
        # partition comes here) is done only once the lake's offsets say it landed up to the end (what Kafka
        # no longer holds, below the low watermark, cannot be waited for).
        others = [key for key in self.watermarks if key not in self.partitions]
        landed = {(topic, partition): offset for topic in {topic for topic, _ in others}
                  for partition, offset in self.decoders[topic].metadata.offsets(topic).items()}
        return all(max(landed.get(key, 0), self.watermarks[key][0]) >= self.watermarks[key][1] for key in others)

    def _own_partitions_at_end(self) -> bool:
        return self.assigned_once and all(self._reached_end(key) for key in self.partitions)

    def _reached_end(self, key: tuple[str, int]) -> bool:
        progress = self.partitions[key]
        return progress.next_offset >= self.watermarks.get(key, (0, progress.start_offset))[1]

    def _batch_limit(self) -> int:
        """--until-end: no more than the records still to come, so the last call returns as soon as they are
        in rather than at its timeout."""
        if not self.options.until_end:
            return self.options.batch_size
        left = sum(max(0, self.watermarks.get(key, (0, 0))[1] - progress.next_offset)
                   for key, progress in self.partitions.items())
        return max(1, min(self.options.batch_size, left))

    def _poll_timeout(self) -> float:
        if self.pending_since is None:
            return 1.0
        left = self.pending_since + self.options.flush_interval - time.monotonic()
        return min(1.0, max(0.01, left))

    def _checkpoint_due(self) -> bool:
        if self.pending_since is None:
            return False
        return (time.monotonic() - self.pending_since >= self.options.flush_interval
                # --until-end may wait on partitions held elsewhere; what it read itself lands meanwhile
                or (self.options.until_end and self._own_partitions_at_end())
                or len(self.buffers) > self.options.max_buffers
                or sum(b.rows for b in self.buffers.values()) >= self.options.max_buffered_records
                or any(b.rows >= self.options.flush_size for b in self.buffers.values()))

    # ---------------------------------------------------------------- one batch
    def _handle(self, messages: list[Message]) -> None:
        events = [m for m in messages if m.error() is not None]
        records = [m for m in messages if m.error() is None] if events else messages
        if self.options.max_messages is not None and len(records) > self.options.max_messages - self.consumed:
            records = records[: self.options.max_messages - self.consumed]
            events = []  # an end event must not move a partition past the records left unread
        for topic, group in _group_by_topic(records).items():
            self._handle_topic(topic, group)
        for event in events:  # after the records: an end event follows the records before it
            if kafka_io.is_partition_end(event):
                self._reached_partition_end(event)
            else:
                log.warning("Kafka: %s", event.error().str())

    def _handle_topic(self, topic: str, messages: list[Message]) -> None:
        batch = KafkaBatch.of(messages)
        if not self._all_fresh(topic, batch):
            batch = KafkaBatch.of(self._fresh(topic, messages))
        if not batch.messages:
            return
        if self.pending_since is None:
            self.pending_since = time.monotonic()
        decoder = self.decoders[topic]
        table, good, bad = decoder.decode([m.value() for m in batch.messages])
        for index, reason in bad.items():
            self._quarantine(decoder.feed, batch.messages[index], reason)
        if table.num_rows:
            self._buffer(topic, decoder.feed, table, batch.rows(good))
        for partition, (_first, last, count) in batch.spans().items():
            progress = self.partitions[(topic, partition)]
            progress.next_offset = last + 1
            progress.counts["consumed"] += count
        self.consumed += len(batch.messages)
        self.bar.update(len(batch.messages))

    def _reached_partition_end(self, end: Message) -> None:
        """Past a tail of offsets without records (transaction markers) the next offset to land is the end itself;
        else --until-end would wait for records that never come."""
        progress = self.partitions.get((end.topic(), end.partition()))
        if progress is None or end.offset() <= progress.next_offset:
            return
        progress.next_offset = end.offset()
        if self.pending_since is None:
            self.pending_since = time.monotonic()

    def _all_fresh(self, topic: str, batch: KafkaBatch) -> bool:
        """True when every record is of a partition we own, at or after its position (the usual case)."""
        for partition, (first, _last, _count) in batch.spans().items():
            progress = self.partitions.get((topic, partition))
            if progress is None or first < progress.next_offset:
                return False
        return True

    def _fresh(self, topic: str, messages: list[Message]) -> list[Message]:
        """Drop records of partitions no longer ours, or before the position (a late batch after a seek)."""
        partitions = self.partitions
        return [m for m in messages if (topic, m.partition()) in partitions
                and m.offset() >= partitions[(topic, m.partition())].next_offset]

    def _quarantine(self, feed: Feed, message: Message, reason: str) -> None:
        progress = self.partitions[(message.topic(), message.partition())]
        progress.bad.append(QuarantinedRecord(
            feed=feed.name, topic=message.topic(), partition=message.partition(), offset=message.offset(),
            kafka_timestamp_ms=message.timestamp()[1], raw_key=message.key(), raw_value=message.value(),
            reason=reason))
        progress.counts["quarantined"] += 1

    def _buffer(self, topic: str, feed: Feed, table: pa.Table, lineage: pa.Table) -> None:
        kafka_times = lineage.column("timestamp")
        table = lake_writer.with_lineage(table, topic, lineage.column("partition"), lineage.column("offset"),
                                         kafka_times, datetime.now(UTC))
        times = table.column(feed.timestamp_field) if feed.timestamp_field in table.column_names else None
        days, fallback = lake_writer.event_days(times, kafka_times)
        for (partition, day), (rows, fallbacks) in lake_writer.split_by_partition_and_day(
                table, days, fallback).items():
            buffer = self.buffers.get((topic, partition, day))
            if buffer is None:
                buffer = self.buffers[(topic, partition, day)] = DayBuffer(rows.column("_offset")[0].as_py())
            buffer.tables.append(rows)
            buffer.rows += rows.num_rows
            counts = self.partitions[(topic, partition)].counts
            counts["landed"] += rows.num_rows
            counts["kafka_time_fallbacks"] += fallbacks

    # ---------------------------------------------------------------- checkpoint
    def checkpoint(self) -> None:
        """Land everything this consumer holds (all partitions), then commit the offsets to Kafka."""
        pending = {key: p for key, p in self.partitions.items() if p.pending}
        if not pending:
            return
        commits = {key: lake_writer.PartitionCommit(
            feed=p.feed.name, topic=p.topic, partition=p.partition,
            start_offset=p.start_offset, next_offset=p.next_offset)
            for key, p in pending.items()}
        for progress in pending.values():
            for record in progress.bad:
                self.quarantine.add(record)
        for (_feed, topic, partition), (path, table) in self.quarantine.drain().items():
            commits[(topic, partition)].stage(self.storage, path, table)
        for (topic, partition, day), buffer in self.buffers.items():
            schema = pa.unify_schemas([self.decoders[topic].arrow_schema, lake_writer.LINEAGE])
            table = pa.concat_tables([lake_schema.conform(t, schema) for t in buffer.tables])
            commits[(topic, partition)].stage(self.storage, lake_writer.stream_file(
                self.feeds[topic].name, day, topic, partition, buffer.first_offset), table)
        for key, item in commits.items():
            item.counts = {**pending[key].counts, "files": len(item.renames)}
        fenced = {(item.topic, item.partition) for item in lake_writer.commit(self.storage, commits.values())}
        for key in fenced:
            self._read_again(pending.pop(key))
        self.buffers.clear()
        self.pending_since = None
        if pending:
            self._after_commit(pending, commits)

    def _read_again(self, progress: PartitionProgress) -> None:
        """Another writer landed this partition meanwhile: drop what we held and resume where the lake is."""
        start = self.decoders[progress.topic].metadata.offsets(progress.topic).get(progress.partition, 0)
        log.warning("%s[%d] was landed by another writer up to offset %d while this consumer held offsets %d-%d; "
                    "dropped them and reading again from %d", progress.topic, progress.partition, start,
                    progress.start_offset, progress.next_offset - 1, start)
        progress.counts, progress.bad = Counter(), []
        progress.start_offset = progress.next_offset = start
        try:
            self.consumer.seek(TopicPartition(progress.topic, progress.partition, start))
        except KafkaException as exc:  # being revoked right now: its next owner starts from the lake anyway
            log.warning("could not seek %s[%d]: %s", progress.topic, progress.partition, exc)

    def _after_commit(self, landed: dict[tuple[str, int], PartitionProgress],
                      commits: dict[tuple[str, int], lake_writer.PartitionCommit]) -> None:
        for key, progress in landed.items():
            totals = self.summary.feeds[progress.feed.name]
            for name in lake_writer.COUNTERS:
                setattr(totals, name, getattr(totals, name) + commits[key].counts.get(name, 0))
            progress.counts = Counter()
            progress.bad = []
            progress.start_offset = progress.next_offset
        for feed in {p.feed.name: p.feed for p in landed.values()}.values():
            self._record_feed_totals(feed)
        self._commit_kafka([TopicPartition(p.topic, p.partition, p.next_offset) for p in landed.values()])

    def _record_feed_totals(self, feed: Feed) -> None:
        """feed.json: the schema (again, in case a concurrent writer lost it) and totals over all partitions."""
        metadata = FeedMetadata(self.storage, feed.name)
        schema = self.decoders[self.settings.topic(feed.topic)].schema

        def change(document: dict) -> None:
            record_schema(document, schema)
            states = metadata.partition_states()
            document["counts"] = {name: sum(int(s.get(name, 0)) for s in states) for name in lake_writer.COUNTERS}

        metadata.update(change)

    def _commit_kafka(self, offsets: list[TopicPartition]) -> None:
        """Informational (the lake offsets rule); a failure during a rebalance is harmless."""
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            log.warning("Kafka offset commit failed (the lake offsets stay authoritative): %s", exc)

    # ---------------------------------------------------------------- rebalancing
    def _on_assign(self, consumer: Consumer, assigned: list[TopicPartition]) -> None:
        for tp in assigned:
            recovered = lake_writer.recover_partition(self.storage, tp.topic, tp.partition)
            if recovered is not None:
                log.info("completed the interrupted commit of %s[%d]", tp.topic, tp.partition)
        starts = self._start_offsets(assigned)
        for tp in assigned:
            tp.offset = start = starts[(tp.topic, tp.partition)]
            self.partitions[(tp.topic, tp.partition)] = PartitionProgress(
                self.feeds[tp.topic], tp.topic, tp.partition, start, start)
            if self.options.until_end:
                end = self.watermarks.get((tp.topic, tp.partition), (0, start))[1]
                self.bar.total = (self.bar.total or 0) + max(0, end - start)
        self.bar.refresh()
        consumer.incremental_assign(assigned)
        self.assigned_once = True
        log.info("assigned %s", _describe(assigned))

    def _start_offsets(self, assigned: list[TopicPartition]) -> dict[tuple[str, int], int]:
        """Where each partition resumes: the lake's landed offset, else the partition's first offset.

        Kafka's committed offsets are not consulted: they may belong to another lake (a new or wiped lake
        root read by the same group), and resuming from them would skip records this lake never landed.
        A landed offset beyond the partition's end means the topic was recreated: its new records would
        reuse landed file names, so the consumer stops and says so rather than overwrite or skip.
        """
        landed = {}
        for topic in {tp.topic for tp in assigned}:
            for partition, offset in self.decoders[topic].metadata.offsets(topic).items():
                landed[(topic, partition)] = offset
        starts = {}
        for tp in assigned:
            low, high = self.consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition),
                                                            timeout=kafka_io.CONNECT_TIMEOUT_S)
            start = landed.get((tp.topic, tp.partition), low)
            if start > high:
                raise LakehouseError(
                    f"{tp.topic}[{tp.partition}] ends at offset {high} but the lake landed it up to {start}: the "
                    f"topic was recreated; land it as a new feed (manage_feeds.py add) or archive this one")
            starts[(tp.topic, tp.partition)] = start
        return starts

    def _on_revoke(self, consumer: Consumer, revoked: list[TopicPartition]) -> None:
        if not self.failed:
            self.checkpoint()  # what we hold for the revoked partitions lands before they go
        for tp in revoked:
            self.partitions.pop((tp.topic, tp.partition), None)
        log.info("revoked %s", _describe(revoked))

    def _on_lost(self, consumer: Consumer, lost: list[TopicPartition]) -> None:
        """Lost (not revoked): another consumer may own them already, so nothing of theirs may land."""
        gone = {(tp.topic, tp.partition) for tp in lost}
        for key in gone:
            self.partitions.pop(key, None)
        self.buffers = {key: b for key, b in self.buffers.items() if key[:2] not in gone}
        log.warning("lost %s; their unlanded records will be read again by the new owner", _describe(lost))

    # ---------------------------------------------------------------- reporting
    def _report_status(self) -> None:
        if self.options.until_end or self.options.max_messages is not None:
            return
        now = time.monotonic()
        if now - self.status_at < self.options.status_every:
            return
        rate = (self.consumed - self.status_consumed) / (now - self.status_at)
        lag = 0
        for (topic, partition), progress in self.partitions.items():
            # cached: the high watermark of the last fetch; asking the broker per partition stalls the loop
            _low, high = self.consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)
            lag += max(0, high - (progress.next_offset or 0))
        log.info("%.0f records/s, lag %d records, %d partitions", rate, lag, len(self.partitions))
        self.status_at, self.status_consumed = now, self.consumed


def _group_by_topic(messages: list[Message]) -> dict[str, list[Message]]:
    if not messages:
        return {}
    first = messages[0].topic()
    topics = [m.topic() for m in messages]
    if topics.count(first) == len(topics):
        return {first: messages}
    groups: dict[str, list[Message]] = {}
    for topic, message in zip(topics, messages, strict=True):
        groups.setdefault(topic, []).append(message)
    return groups


def _describe(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "nothing"


# ---------------------------------------------------------------- reconciliation
@dataclass(frozen=True)
class Reconciliation:
    feed: str
    consumed: int
    landed: int  # rows landed in files, including those retention has deleted since (`retired`)
    quarantined: int  # the same for quarantine records
    retired: int = 0

    @property
    def balanced(self) -> bool:
        return self.consumed == self.landed + self.quarantined


def reconcile(storage: LakeStorage, feeds: list[Feed]) -> list[Reconciliation]:
    """Per feed: records consumed (lake metadata) against rows in its files and in its quarantine."""
    results = []
    for feed in feeds:
        if feed.kind == "table":
            changelog = FeedMetadata(storage, feed.name).read().get("changelog", {})
            results.append(Reconciliation(feed.name, changelog.get("records", 0), changelog.get("applied", 0),
                                          changelog.get("quarantined", 0)))
            continue
        metadata = FeedMetadata(storage, feed.name)
        quarantine_dir = f"{layout.QUARANTINE}/{feed.name}"
        quarantined = sum(storage.parquet_row_count(f.path) for f in storage.walk_files(quarantine_dir)
                          if f.path.endswith(".parquet"))
        retired = metadata.retired_rows()
        results.append(Reconciliation(
            feed.name, sum(int(s.get("consumed", 0)) for s in metadata.partition_states()),
            lake_writer.landed_rows(storage, feed.name) + retired.get("stream", 0),
            quarantined + retired.get("quarantine", 0), sum(retired.values())))
    return results
