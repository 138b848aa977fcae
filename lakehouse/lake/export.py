"""Export feeds to the lake on demand: tables as new snapshot versions, streams by date.

Tables: the rows come from ksqlDB (a pull query) or from the changelog topic (materialized), and are written
through lakehouse.lake.snapshots: a new version=N only when the content changed, atomically.

Streams always come from their Kafka topic, through the lake consumer's writer and offset bookkeeping, so an
export and the consumer never land a record twice (a pull query over a ksqlDB stream carries no offsets and
could not share that bookkeeping). `--date` rebuilds one day from the records the lake has already accounted
for and swaps the day's folder in with renames.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from confluent_kafka import OFFSET_BEGINNING, Message, TopicPartition

from lakehouse import layout
from lakehouse.catalog import Feed
from lakehouse.errors import LakehouseError
from lakehouse.kafka import clients, ksqldb
from lakehouse.kafka.changelog import materialize_topic
from lakehouse.lake import commit, lineage
from lakehouse.lake import consumer as lake_consumer
from lakehouse.lake import schema as lake_schema
from lakehouse.lake.decode import FeedDecoder
from lakehouse.lake.metadata import FeedMetadata
from lakehouse.lake.snapshots import content_hash, planned_version, rows_to_table, write_snapshot
from lakehouse.quarantine import QuarantineWriter
from lakehouse.settings import Settings
from lakehouse.storage import LakeStorage

SOURCES = ("ksqldb", "kafka")
BACKFILL_STAGING = f"{commit.STAGING}/backfill"  # readers never look under _staging
_READ_BATCH = 10_000
_RETIRED = ".retired"  # suffix of a day folder a backfill swapped out
_MAX_IDLE_POLLS = 30  # one-second polls without a record while records are still expected


@dataclass(frozen=True)
class TableExport:
    feed: str
    source: str
    row_count: int
    version: int | None  # the version written (or that would be), or the current one when unchanged
    written: bool        # a new version was (or would be) written
    quarantined: int = 0

    def describe(self, dry_run: bool) -> str:
        verb = "would write" if dry_run else "wrote"
        if self.written:
            outcome = f"{verb} {layout.version_folder(self.version)}"
        else:
            outcome = f"unchanged, stays {layout.version_folder(self.version)}"
        bad = f", {self.quarantined} bad records {'to quarantine' if dry_run else 'quarantined'}" \
            if self.quarantined else ""
        return f"table {self.feed}: {self.row_count} rows from {self.source}: {outcome}{bad}"


def choose_source(settings: Settings, requested: str | None) -> tuple[str, str]:
    """The source to use and the one line that says why."""
    if requested:
        return requested, f"source: {requested} (as asked)"
    if ksqldb.client_for(settings).reachable():
        return "ksqldb", f"source: ksqldb (reachable at {settings.ksqldb_url})"
    return "kafka", f"source: kafka (ksqlDB is not reachable at {settings.ksqldb_url})"


# ---------------------------------------------------------------------- tables
def table_rows(settings: Settings, feed: Feed, source: str,
               quarantine: QuarantineWriter) -> tuple[list[dict], dict[int, int] | None]:
    """The table's rows, and how far its changelog was read (None from ksqlDB: a pull query has no offsets)."""
    if source == "ksqldb":
        return ksqldb.pull_table(settings, feed.ksql_name), None
    state = materialize_topic(settings, feed, quarantine)
    return state.rows(), state.next_offsets


def export_table(settings: Settings, storage: LakeStorage, feed: Feed, source: str,
                 dry_run: bool = False) -> TableExport:
    quarantine = QuarantineWriter(storage)
    rows, offsets = table_rows(settings, feed, source, quarantine)
    bad = len(quarantine)
    if dry_run:
        version, changed = planned_version(storage, feed.name, content_hash(rows_to_table(feed, rows)))
        return TableExport(feed.name, source, len(rows), version, changed, bad)
    quarantine.flush()
    result = write_snapshot(storage, feed, rows, source_offsets=offsets)
    return TableExport(feed.name, source, result.row_count, result.version, result.written, bad)


# ---------------------------------------------------------------------- streams: the lake consumer, bounded
@dataclass(frozen=True)
class StreamExport:
    feed: str
    consumed: int
    landed: int
    quarantined: int
    files: int

    def describe(self) -> str:
        return (f"stream {self.feed}: {self.consumed} records read, {self.landed} rows landed in {self.files} files, "
                f"{self.quarantined} quarantined")


def export_stream(settings: Settings, feed: Feed) -> StreamExport:
    """Land the feed from its landed offsets to the end offsets seen now, with the lake consumer's machinery."""
    options = lake_consumer.LandingOptions(group_id=lake_consumer.default_group_id(settings), until_end=True)
    totals = lake_consumer.land(settings, [feed], options).feeds[feed.name]
    return StreamExport(feed.name, totals.consumed, totals.landed, totals.quarantined, totals.files)


@dataclass
class StreamPlan:
    """What an export of a stream would land (dry run), or what a backfill of one day would write."""

    feed: str
    records: int = 0
    bad: int = 0
    rows_by_day: dict[date, int] = field(default_factory=dict)

    def describe(self) -> str:
        days = ", ".join(f"{layout.date_partition(day)}: {rows}" for day, rows in sorted(self.rows_by_day.items()))
        return (f"stream {self.feed}: would land {sum(self.rows_by_day.values())} rows of {self.records} records "
                f"not landed yet ({self.bad} to quarantine){': ' + days if days else ''}")


def plan_stream(settings: Settings, storage: LakeStorage, feed: Feed) -> StreamPlan:
    """Decode the records the lake has not landed yet, as the consumer would, writing nothing."""
    topic = settings.topic(feed.topic)
    plan = StreamPlan(feed.name)
    decoder = FeedDecoder(feed, _ReadOnlyMetadata(storage, feed.name))
    landed = FeedMetadata(storage, feed.name).offsets(topic)
    for table, days, bad in _decoded(settings, decoder, topic, landed, _end_offsets(settings, topic)):
        plan.records += table.num_rows + bad
        plan.bad += bad
        for entry in pc.value_counts(days).to_pylist():
            plan.rows_by_day[entry["values"]] = plan.rows_by_day.get(entry["values"], 0) + entry["counts"]
    return plan


class _ReadOnlyMetadata(FeedMetadata):
    """Feed metadata for a dry run: schema evolutions are applied in memory, never written."""

    def update(self, change: Callable[[dict], None]) -> dict:
        document = self.read()
        change(document)
        return document


# ---------------------------------------------------------------------- streams: backfill of one day
@dataclass(frozen=True)
class DayBackfill:
    feed: str
    day: date
    rows: int              # rows of the rebuilt day (from records the lake had landed)
    replaced_rows: int     # rows the day's folder held before
    kept_files: int        # files landed after the rebuild's bound (by a concurrent consumer), kept as they are
    bad: int               # undecodable records of the range, already in quarantine since they were landed
    unlanded: list[int]    # partitions with nothing landed yet: left to the next export or consumer run

    def describe(self, dry_run: bool) -> str:
        verb = "would replace" if dry_run else "replaced"
        notes = [f"{self.kept_files} newer files kept"] if self.kept_files else []
        if self.bad:
            notes.append(f"{self.bad} bad records skipped (already quarantined)")
        if self.unlanded:
            notes.append(f"partitions {', '.join(map(str, self.unlanded))} not landed yet")
        extra = f" ({'; '.join(notes)})" if notes else ""
        return (f"stream {self.feed}: {verb} {layout.date_partition(self.day)}: {self.replaced_rows} rows -> "
                f"{self.rows} rows{extra}")


def backfill_day(settings: Settings, storage: LakeStorage, feed: Feed, day: date,
                 dry_run: bool = False, allow_shrink: bool = False) -> DayBackfill:
    """Rebuild one day of a stream from its topic and swap the day's folder in atomically.

    The rebuild reads every partition up to the offset the lake has landed, never further: records beyond
    it belong to the next consumer or export run, which lands them into their day as usual. So the day
    holds each landed record exactly once before and after, whoever lands next. Records Kafka has already
    expired cannot be read again: a rebuild that would lose rows is refused unless `allow_shrink`.
    """
    topic = settings.topic(feed.topic)
    watermarks = clients.topic_watermarks(settings, topic)
    if not watermarks:
        raise LakehouseError(f"topic {topic} of stream feed {feed.name} does not exist")
    if not dry_run:
        recover_backfills(storage, feed.name, topic, list(watermarks))
    day_dir = layout.stream_partition_dir(feed.name, day)
    if feed.storage_mode == "ignore" and storage.list_dir(day_dir):
        raise LakehouseError(f"stream {feed.name} has storage mode ignore: {day_dir} exists and is never rewritten")
    expired = _expired_offsets(storage, day_dir, watermarks)
    if expired and not allow_shrink:
        raise LakehouseError(
            f"stream {feed.name}: cannot rebuild {layout.date_partition(day)}: topic {topic} no longer holds "
            + ", ".join(f"partition {p} offsets {first}-{low - 1}" for p, (first, low) in sorted(expired.items()))
            + " (expired from Kafka); the day is kept as it is (--allow-shrink rebuilds it from what is left)")
    landed = FeedMetadata(storage, feed.name).offsets(topic)
    metadata = _ReadOnlyMetadata(storage, feed.name) if dry_run else FeedMetadata(storage, feed.name)
    decoder = FeedDecoder(feed, metadata)
    tables, bad = [], 0
    start = {partition: None for partition in landed}
    for table, days, bad_in_batch in _decoded(settings, decoder, topic, start, landed):
        bad += bad_in_batch
        tables.append(table.filter(pc.equal(days, pa.scalar(day, pa.date32()))))
    schema = pa.unify_schemas([decoder.arrow_schema, lineage.LANDED])
    rebuilt = pa.concat_tables([lake_schema.conform(t, schema) for t in tables]) if tables else schema.empty_table()
    rebuilt = rebuilt.sort_by([("_partition", "ascending"), ("_offset", "ascending")])
    kept = [name for name in storage.list_dir(day_dir) if _landed_after(name, topic, landed)]
    held = _rows_in(storage, day_dir)
    after = rebuilt.num_rows + sum(storage.parquet_row_count(f"{day_dir}/{name}") for name in kept)
    if after < held and not allow_shrink:
        raise LakehouseError(
            f"stream {feed.name}: a rebuild of {layout.date_partition(day)} would hold {after} rows, fewer than "
            f"the {held} it holds; the day is kept as it is (--allow-shrink replaces it anyway)")
    result = DayBackfill(feed.name, day, rebuilt.num_rows, held, len(kept), bad,
                         sorted(set(watermarks) - set(landed)))
    if not dry_run:
        _replace_day(storage, feed.name, topic, day, rebuilt, landed, list(watermarks))
    return result


def _expired_offsets(storage: LakeStorage, day_dir: str,
                     watermarks: dict[int, tuple[int, int]]) -> dict[int, tuple[int, int]]:
    """Per partition whose first record of the day Kafka no longer holds: (that offset, the topic's low mark)."""
    files = [storage.full(f"{day_dir}/{name}") for name in storage.list_dir(day_dir) if name.endswith(".parquet")]
    if not files:
        return {}
    lineage = ds.dataset(files, filesystem=storage.fs, format="parquet").to_table(columns=["_partition", "_offset"])
    firsts = lineage.group_by("_partition").aggregate([("_offset", "min")])
    expired = {}
    for partition, first in zip(firsts.column("_partition").to_pylist(), firsts.column("_offset_min").to_pylist(),
                                strict=True):
        low = watermarks.get(partition, (0, 0))[0]
        if first < low:
            expired[partition] = (first, low)
    return expired


def _replace_day(storage: LakeStorage, feed: str, topic: str, day: date, table: pa.Table,
                 landed: dict[int, int], partitions: list[int]) -> None:
    """Stage the new day (rebuilt file + copies of newer files), then swap folders with two renames.

    Under the topic's partition locks: no writer lands a file into the day between the listing and the swap.
    """
    day_dir = layout.stream_partition_dir(feed, day)
    staged = f"{BACKFILL_STAGING}/{feed}/{day.isoformat()}.{uuid.uuid4().hex[:12]}"
    retired = f"{staged}{_RETIRED}"
    with commit.holding_partitions(storage, [(topic, partition) for partition in partitions]):
        storage.makedirs(staged)
        if table.num_rows:
            storage.write_parquet(f"{staged}/{topic}+backfill+{day.isoformat()}.parquet", table)
        for name in storage.list_dir(day_dir):
            if _landed_after(name, topic, landed):
                storage.write_bytes(f"{staged}/{name}", storage.read_bytes(f"{day_dir}/{name}"))
        if storage.exists(day_dir):
            storage.rename(day_dir, retired)
        storage.makedirs(day_dir.rsplit("/", 1)[0])
        storage.rename(staged, day_dir)
        if storage.exists(retired):
            storage.delete_dir(retired)
        if not storage.list_dir(day_dir):
            storage.delete_dir(day_dir)  # an empty day is no partition at all


def recover_backfills(storage: LakeStorage, feed: str, topic: str, partitions: list[int]) -> None:
    """After a crash mid-swap: a retired day whose replacement never moved in (its staged folder is still
    there, or the day is missing) goes back into the day's folder, merged with anything a writer landed there
    since; a retired day whose replacement did move in is superseded and dropped, as is leftover staging."""
    folder = f"{BACKFILL_STAGING}/{feed}"
    with commit.holding_partitions(storage, [(topic, partition) for partition in partitions]):
        names = storage.list_dir(folder)
        for name in names:
            if not name.endswith(_RETIRED):
                continue
            day_dir = layout.stream_partition_dir(feed, date.fromisoformat(name.split(".")[0]))
            if name.removesuffix(_RETIRED) in names or not storage.exists(day_dir):
                _restore(storage, f"{folder}/{name}", day_dir)
            else:
                storage.delete_dir(f"{folder}/{name}")
        for name in storage.list_dir(folder):
            storage.delete_dir(f"{folder}/{name}")


def _restore(storage: LakeStorage, retired: str, day_dir: str) -> None:
    """Put a retired day back, keeping the files a writer landed into the day's folder meanwhile."""
    if not storage.exists(day_dir):
        storage.makedirs(day_dir.rsplit("/", 1)[0])
        storage.rename(retired, day_dir)
        return
    present = set(storage.list_dir(day_dir))
    for name in storage.list_dir(retired):
        if name not in present:
            storage.rename(f"{retired}/{name}", f"{day_dir}/{name}")
    storage.delete_dir(retired)


def _landed_after(file_name: str, topic: str, landed: dict[int, int]) -> bool:
    """Whether a day's file holds records beyond the rebuild's bound (<topic>+<partition>+<first offset>)."""
    parts = file_name.removesuffix(".parquet").rsplit("+", 2)
    if len(parts) != 3 or parts[0] != topic or not parts[1].isdigit() or not parts[2].isdigit():
        return False  # an earlier backfill's file: its records are all below the bound
    return int(parts[2]) >= landed.get(int(parts[1]), 0)


def _rows_in(storage: LakeStorage, folder: str) -> int:
    return sum(storage.parquet_row_count(f"{folder}/{name}") for name in storage.list_dir(folder)
               if name.endswith(".parquet"))


# ---------------------------------------------------------------------- reading a bounded range
def _end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    ends = clients.topic_end_offsets(settings, topic)
    if not ends:
        raise LakehouseError(f"topic {topic} does not exist")
    return ends


def _decoded(settings: Settings, decoder: FeedDecoder, topic: str, start: dict[int, int | None],
             stop: dict[int, int]) -> Iterator[tuple[pa.Table, pa.Array, int]]:
    """(good rows with lineage, their event days, number of bad records) per batch, decoded like the consumer."""
    feed = decoder.feed
    for messages in _read_range(settings, topic, start, stop):
        table, good, bad = decoder.decode([m.value() for m in messages])
        kept = messages if good is None else [messages[index] for index in good]
        table, days, _fallbacks = lineage.stamp_rows(
            table, feed.timestamp_field, topic, pa.array([m.partition() for m in kept], pa.int32()),
            pa.array([m.offset() for m in kept], pa.int64()), pa.array([m.timestamp()[1] for m in kept], pa.int64()),
            datetime.now(UTC))
        yield table, days, len(bad)


def _read_range(settings: Settings, topic: str, start: dict[int, int | None],
                stop: dict[int, int]) -> Iterator[list[Message]]:
    """Records of `topic` from `start` (None: the beginning) up to, not including, `stop`, per partition."""
    client = clients.consumer(settings, group_id=f"lakehouse-export-{uuid.uuid4().hex}", partition_ends=True)
    try:
        pending = {}
        for partition, end in stop.items():
            low, _high = client.get_watermark_offsets(TopicPartition(topic, partition),
                                                      timeout=clients.CONNECT_TIMEOUT_S)
            first = max(low, start.get(partition) or 0)
            if first < end:
                pending[partition] = end
        client.assign([TopicPartition(topic, partition, start.get(partition) or OFFSET_BEGINNING)
                       for partition in pending])
        idle = 0
        while pending:
            messages = client.consume(num_messages=_READ_BATCH, timeout=1.0)
            idle = 0 if messages else idle + 1
            if idle >= _MAX_IDLE_POLLS:
                raise LakehouseError(f"reading {topic}: no records for {_MAX_IDLE_POLLS}s while partitions "
                                     f"{sorted(pending)} have not reached their bound")
            wanted = []
            for message in messages:
                end = pending.get(message.partition())
                if clients.is_partition_end(message):  # the bound may lie past transaction markers
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


# ---------------------------------------------------------------------- orchestration
def export_feeds(settings: Settings, storage: LakeStorage, feeds: list[Feed], source: str,
                 day: date | None = None, dry_run: bool = False, skip_missing: bool = False,
                 allow_shrink: bool = False, say: Callable[[str], None] = print) -> None:
    """Export each feed, saying one line per outcome.

    `skip_missing` (--all): a feed whose Kafka topic does not exist yet is reported and skipped, not an error.
    """
    if source == "ksqldb" and any(feed.kind == "stream" for feed in feeds):
        say("streams come from their Kafka topics with every source: a ksqlDB pull query over a stream has no "
            "offsets to share with the lake consumer")
    for feed in feeds:
        reads_kafka = feed.kind == "stream" or source == "kafka"
        if skip_missing and reads_kafka and not clients.topic_partitions(settings, settings.topic(feed.topic)):
            say(f"{feed.kind} {feed.name}: skipped, topic {settings.topic(feed.topic)} does not exist yet")
            continue
        say(_export_one(settings, storage, feed, source, day, dry_run, allow_shrink))


def _export_one(settings: Settings, storage: LakeStorage, feed: Feed, source: str, day: date | None,
                dry_run: bool, allow_shrink: bool) -> str:
    if feed.kind == "table":
        if day is not None:
            return f"table {feed.name}: skipped (--date applies to streams)"
        return export_table(settings, storage, feed, source, dry_run).describe(dry_run)
    if day is not None:
        return backfill_day(settings, storage, feed, day, dry_run, allow_shrink).describe(dry_run)
    if dry_run:
        return plan_stream(settings, storage, feed).describe()
    return export_stream(settings, feed).describe()
