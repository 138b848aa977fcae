"""The data lake consumer: Kafka stream feeds -> Parquet files by event date, exactly once.

Records are consumed in batches and decoded into Arrow (lakehouse.lake.decode); good rows and bad records wait in a
Checkpoint (lakehouse.lake.checkpoint), one buffer per (topic, partition, event day), which lands them with the
lake's commit protocol (lakehouse.lake.commit) at --flush-size records, --flush-interval seconds (idle topics
included), when too many buffers are open, on revoke and on stop. The lake metadata offsets are the source of
truth: each assigned partition first completes its interrupted commit, then seeks to its landed offset.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass, field
from functools import cached_property

import pyarrow as pa
from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from tqdm import tqdm

from lakehouse.catalog import Feed, FeedCatalog, validate_name
from lakehouse.errors import LakehouseError
from lakehouse.kafka import clients
from lakehouse.kafka.progress import ProgressReport
from lakehouse.kafka.records import snake_case
from lakehouse.lake import commit
from lakehouse.lake.checkpoint import Checkpoint, FlushPolicy, PartitionProgress
from lakehouse.lake.commit import Counts
from lakehouse.lake.decode import FeedDecoder
from lakehouse.lake.metadata import FeedMetadata
from lakehouse.lake.tables import TableLander
from lakehouse.metrics import ConsumerMetrics
from lakehouse.settings import Settings
from lakehouse.storage import LakeStorage
from lakehouse.text_table import render

log = logging.getLogger(__name__)

DEFAULT_GROUP = "lakehouse-datalake"


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
class LandingSummary:
    feeds: dict[str, Counts] = field(default_factory=dict)
    skipped_topics: list[str] = field(default_factory=list)

    def render(self) -> str:
        return render(["feed", "consumed", "landed", "quarantined", "kafka time used", "files"],
                      [[name, t.consumed, t.landed, t.quarantined, t.kafka_time_fallbacks, t.files]
                       for name, t in sorted(self.feeds.items())])


# ---------------------------------------------------------------- choosing feeds
def feeds_to_land(settings: Settings, storage: LakeStorage, names: list[str] | None = None,
                  topics: list[str] | None = None) -> list[Feed]:
    """The feeds named, the feeds of Kafka topics (a topic without one is registered first), or every active feed."""
    catalog = FeedCatalog(storage)
    for topic in topics or ():
        feed_for_topic(settings, catalog, topic)
    feeds = catalog.select(names=names or (), topics=topics or (), topic_prefix=settings.topic_prefix)
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
    if not clients.topic_partitions(settings, topic):
        raise LakehouseError(f"topic {topic!r} does not exist in Kafka")
    feed = Feed(name=validate_name(snake_case(name), f"feed name for topic {topic!r}"), kind="stream",
                topic=name, timestamp_field="timestamp", description=f"registered by the lake consumer from {topic}")
    log.info("registered topic %s as stream feed %s", topic, feed.name)
    return catalog.add(feed)


def land(settings: Settings, feeds: list[Feed], options: LandingOptions,
         stop: threading.Event | None = None, metrics: ConsumerMetrics | None = None) -> LandingSummary:
    """Land the given feeds until the run's bound (or `stop`); returns what this run did.

    Stream feeds go through a consumer of the group; table feeds are materialized from their changelog
    topics into versioned snapshots (lakehouse.lake.tables), in a thread beside the streams. Both count into
    `metrics` (default: a registry of this run nobody serves).
    """
    stop = stop or threading.Event()
    metrics = metrics or ConsumerMetrics()
    metrics.track([feed.name for feed in feeds])
    streams = [f for f in feeds if f.kind == "stream"]
    tables = TableLander(settings, [f for f in feeds if f.kind == "table"], options.snapshot_interval,
                         until_end=options.until_end or options.max_messages is not None, stop=stop,
                         metrics=metrics)
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
        summary = StreamLander(settings, streams, options, stop, metrics).run() if streams else LandingSummary()
    except BaseException:
        stop.set()
        raise
    finally:
        while thread.is_alive():
            thread.join(0.2)  # polled, so SIGINT/SIGTERM still reach the main thread
    if "error" in table_run:
        raise table_run["error"]  # type: ignore[misc]
    for name, totals in table_run.get("totals", {}).items():  # type: ignore[union-attr]
        summary.feeds[name] = Counts(consumed=totals.consumed, landed=totals.applied,
                                     quarantined=totals.quarantined, files=totals.versions_written)
    return summary


# ---------------------------------------------------------------- one consume() call
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

    @cached_property
    def spans(self) -> dict[int, tuple[int, int, int]]:
        """partition -> (first offset, last offset, record count); asked by `fresh` and again by the caller."""
        spans = self.coordinates.group_by("partition", use_threads=False).aggregate(
            [("offset", "min"), ("offset", "max"), ("offset", "count")])
        return {row["partition"]: (row["offset_min"], row["offset_max"], row["offset_count"])
                for row in spans.to_pylist()}

    def rows(self, indexes: list[int] | None) -> pa.Table:
        """The coordinates of some records (None: all)."""
        return self.coordinates if indexes is None else self.coordinates.take(pa.array(indexes, pa.int64()))

    def fresh(self, partitions: dict[tuple[str, int], PartitionProgress]) -> KafkaBatch:
        """Without records of partitions no longer ours or before their position (a late batch after a seek)."""
        topic = self.messages[0].topic()
        spans = self.spans
        if all((topic, p) in partitions and first >= partitions[(topic, p)].next_offset
               for p, (first, _last, _count) in spans.items()):
            return self  # the usual case
        return KafkaBatch.of([m for m in self.messages if (topic, m.partition()) in partitions
                              and m.offset() >= partitions[(topic, m.partition())].next_offset])


# ---------------------------------------------------------------- the consumer
class StreamLander:
    """One consumer of a group: polls, hands records to its Checkpoint, lands on time, follows rebalances."""

    def __init__(self, settings: Settings, feeds: list[Feed], options: LandingOptions,
                 stop: threading.Event, metrics: ConsumerMetrics) -> None:
        self.options = options
        self.stop = stop
        self.metrics = metrics
        self.settings = settings
        self.storage = LakeStorage(settings.data_lake_root)
        self.feeds = {settings.topic(feed.topic): feed for feed in feeds}
        self.decoders = {topic: FeedDecoder(feed, FeedMetadata(self.storage, feed.name))
                         for topic, feed in self.feeds.items()}
        self.checkpoint = Checkpoint(self.storage, self.decoders, FlushPolicy(
            options.flush_size, options.flush_interval, options.max_buffers, options.max_buffered_records))
        self.partitions = self.checkpoint.partitions
        self.summary = LandingSummary(feeds={feed.name: Counts() for feed in feeds})
        self.consumer: Consumer = clients.consumer(settings, options.group_id, partition_ends=True)
        self.watermarks: dict[tuple[str, int], tuple[int, int]] = {}  # at start: (low, high)
        self.assigned_once = False
        self.failed = False
        self.consumed = 0
        self.bar = tqdm(total=options.max_messages or 0, disable=not options.progress, unit="rec",
                        file=sys.stderr, dynamic_ncols=True)
        self.progress = ProgressReport(options.status_every, metrics.lag,
                                       log_lines=not options.until_end and options.max_messages is None)

    # ---------------------------------------------------------------- the loop
    def run(self) -> LandingSummary:
        try:
            self.consumer.subscribe(self._existing_topics(), on_assign=self._on_assign,
                                    on_revoke=self._on_revoke, on_lost=self._on_lost)
            while not self._finished():
                messages = self.consumer.consume(num_messages=self._batch_limit(), timeout=self._poll_timeout())
                if messages:
                    self._handle(messages)
                # --until-end may wait on partitions held elsewhere; what it read itself lands meanwhile
                if self.checkpoint.due() or (self.checkpoint.pending_since is not None and self.options.until_end
                                             and self._own_partitions_at_end()):
                    self.land()
                self.progress.report(self.consumer, {key: p.next_offset for key, p in self.partitions.items()},
                                     self.consumed)
            self.land()
        except BaseException:
            self.failed = True  # no landing from the close-time revoke: the buffers may be half-built
            raise
        finally:
            self.consumer.close()
            self.bar.close()
        return self.summary

    def _existing_topics(self) -> list[str]:
        topics = []
        for topic in self.feeds:
            partitions = clients.topic_partitions(self.settings, topic)
            if not partitions:
                log.warning("topic %s (feed %s) does not exist yet; skipped", topic, self.feeds[topic].name)
                self.summary.skipped_topics.append(topic)
                continue
            topics.append(topic)
            for partition in partitions:
                self.watermarks[(topic, partition)] = self.consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=clients.CONNECT_TIMEOUT_S)
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
        return self.assigned_once and all(
            progress.next_offset >= self.watermarks.get(key, (0, progress.start_offset))[1]
            for key, progress in self.partitions.items())

    def _batch_limit(self) -> int:
        """--until-end: no more than the records still to come, so the last call returns as soon as they are
        in rather than at its timeout."""
        if not self.options.until_end:
            return self.options.batch_size
        left = sum(max(0, self.watermarks.get(key, (0, 0))[1] - progress.next_offset)
                   for key, progress in self.partitions.items())
        return max(1, min(self.options.batch_size, left))

    def _poll_timeout(self) -> float:
        return min(1.0, max(0.01, self.checkpoint.seconds_left()))

    # ---------------------------------------------------------------- one batch
    def _handle(self, messages: list[Message]) -> None:
        events = [m for m in messages if m.error() is not None]
        records = [m for m in messages if m.error() is None] if events else messages
        if self.options.max_messages is not None and len(records) > self.options.max_messages - self.consumed:
            records = records[: self.options.max_messages - self.consumed]
            events = []  # an end event must not move a partition past the records left unread
        for group in _group_by_topic(records).values():
            self._handle_topic(KafkaBatch.of(group).fresh(self.partitions))
        for event in events:  # after the records: an end event follows the records before it
            if clients.is_partition_end(event):
                self._reached_partition_end(event)
            else:
                log.warning("Kafka: %s", event.error().str())

    def _handle_topic(self, batch: KafkaBatch) -> None:
        if not batch.messages:
            return
        topic = batch.messages[0].topic()
        self.checkpoint.note_pending()
        table, good, bad = self.decoders[topic].decode([m.value() for m in batch.messages])
        for index, reason in bad.items():
            self.checkpoint.add_bad(batch.messages[index], reason)
        if table.num_rows:
            self.checkpoint.add(topic, table, batch.rows(good))
        for partition, (_first, last, count) in batch.spans.items():
            progress = self.partitions[(topic, partition)]
            progress.next_offset = last + 1
            progress.counts += Counts(consumed=count)
        self.consumed += len(batch.messages)
        self.metrics.count(self.feeds[topic].name, consumed=len(batch.messages))
        self.bar.update(len(batch.messages))

    def _reached_partition_end(self, end: Message) -> None:
        """Past trailing transaction markers the next offset to land is the end (else --until-end waits forever)."""
        progress = self.partitions.get((end.topic(), end.partition()))
        if progress is None or end.offset() <= progress.next_offset:
            return
        progress.next_offset = end.offset()
        self.checkpoint.note_pending()

    # ---------------------------------------------------------------- landing
    def land(self) -> None:
        """The checkpoint lands what this consumer holds; then the offsets go to Kafka, fenced partitions again."""
        started = time.monotonic()
        landed = self.checkpoint.commit()
        if landed.counts:
            self.metrics.committed(time.monotonic() - started, landed.commit_seconds)
        for feed_name, counts in landed.counts.items():
            self.summary.feeds[feed_name] += counts
            self.metrics.count(feed_name, landed=counts.landed, quarantined=counts.quarantined)
        for progress in landed.fenced:
            self._read_again(progress)
        if landed.offsets:
            try:  # informational (the lake offsets rule); refused during a rebalance (export joins the group): harmless
                self.consumer.commit(offsets=landed.offsets, asynchronous=False)
            except KafkaException as exc:
                log.log(logging.DEBUG if clients.during_rebalance(exc) else logging.WARNING,
                        "Kafka offset commit failed (the lake offsets stay authoritative): %s", exc)

    def _read_again(self, progress: PartitionProgress) -> None:
        """Another writer claimed or landed this partition meanwhile: drop what we held, claim it, resume."""
        progress.claim = claim_partitions(self.storage, self.feeds, [TopicPartition(progress.topic, progress.partition)]
                                          )[(progress.topic, progress.partition)]
        start = self.decoders[progress.topic].metadata.offsets(progress.topic).get(progress.partition, 0)
        log.warning("%s[%d] was landed by another writer up to offset %d while this consumer held offsets %d-%d; "
                    "dropped them and reading again from %d", progress.topic, progress.partition, start,
                    progress.start_offset, progress.next_offset - 1, start)
        progress.restart_at(start)
        try:
            self.consumer.seek(TopicPartition(progress.topic, progress.partition, start))
        except KafkaException as exc:  # being revoked right now: its next owner starts from the lake anyway
            log.warning("could not seek %s[%d]: %s", progress.topic, progress.partition, exc)

    # ---------------------------------------------------------------- rebalancing
    def _on_assign(self, consumer: Consumer, assigned: list[TopicPartition]) -> None:
        claims = claim_partitions(self.storage, self.feeds, assigned)
        starts = start_offsets(self.consumer, self.decoders, assigned)
        for tp in assigned:
            tp.offset = start = starts[(tp.topic, tp.partition)]
            self.partitions[(tp.topic, tp.partition)] = PartitionProgress(
                self.feeds[tp.topic], tp.topic, tp.partition, start, start, claim=claims[(tp.topic, tp.partition)])
            if self.options.until_end:
                end = self.watermarks.get((tp.topic, tp.partition), (0, start))[1]
                self.bar.total = (self.bar.total or 0) + max(0, end - start)
        self.bar.refresh()
        consumer.incremental_assign(assigned)
        self.assigned_once = True
        log.info("assigned %s", _describe(assigned))

    def _on_revoke(self, consumer: Consumer, revoked: list[TopicPartition]) -> None:
        if not self.failed:
            self.land()  # what we hold for the revoked partitions lands before they go
        for tp in revoked:
            self.partitions.pop((tp.topic, tp.partition), None)
        log.info("revoked %s", _describe(revoked))

    def _on_lost(self, consumer: Consumer, lost: list[TopicPartition]) -> None:
        """Lost (not revoked): another consumer may own them already, so nothing of theirs may land."""
        self.checkpoint.forget({(tp.topic, tp.partition) for tp in lost})
        log.warning("lost %s; their unlanded records will be read again by the new owner", _describe(lost))


def claim_partitions(storage: LakeStorage, feeds: dict[str, Feed], assigned: list[TopicPartition]
                     ) -> dict[tuple[str, int], str]:
    """Claim each partition in the lake (lake.commit.claim_partition; a consumer that lost it to a rebalance is told
    so by Kafka soon): the state version this consumer's first commit of it starts from."""
    claims = {}
    for tp in assigned:
        claim = commit.claim_partition(storage, feeds[tp.topic].name, tp.topic, tp.partition)
        if claim.published:
            log.info("completed the interrupted commit of %s[%d]", tp.topic, tp.partition)
        claims[(tp.topic, tp.partition)] = claim.version
    return claims


def start_offsets(consumer: Consumer, decoders: dict[str, FeedDecoder],
                  assigned: list[TopicPartition]) -> dict[tuple[str, int], int]:
    """Where each partition resumes: the lake's landed offset, else the partition's first offset.

    Kafka's committed offsets are not consulted: they may belong to another lake (a new or wiped lake
    root read by the same group), and resuming from them would skip records this lake never landed.
    A landed offset beyond the partition's end means the topic was recreated: its new records would
    reuse landed file names, so the consumer stops and says so rather than overwrite or skip.
    """
    landed = {}
    for topic in {tp.topic for tp in assigned}:
        for partition, offset in decoders[topic].metadata.offsets(topic).items():
            landed[(topic, partition)] = offset
    starts = {}
    for tp in assigned:
        low, high = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition),
                                                   timeout=clients.CONNECT_TIMEOUT_S)
        start = landed.get((tp.topic, tp.partition), low)
        if start > high:
            raise LakehouseError(
                f"{tp.topic}[{tp.partition}] ends at offset {high} but the lake landed it up to {start}: the "
                f"topic was recreated; land it as a new feed (manage_feeds.py add) or archive this one")
        starts[(tp.topic, tp.partition)] = start
    return starts


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
