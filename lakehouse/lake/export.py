"""Export feeds to the lake on demand: tables as new snapshot versions, streams by date.

Tables: the rows come from ksqlDB (a pull query) or from the changelog topic (materialized), and are written
through lakehouse.lake.snapshots: a new version=N only when the content changed, atomically.

Streams always come from their Kafka topic, through the lake consumer's writer and offset bookkeeping, so an
export and the consumer never land a record twice (a pull query over a ksqlDB stream carries no offsets and
could not share that bookkeeping). `--date` rebuilds one day from the records the lake has already accounted
for and swaps the day's folder in with renames.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

import pyarrow.compute as pc

from lakehouse import layout
from lakehouse.catalog import Feed
from lakehouse.errors import LakehouseError
from lakehouse.kafka import clients, ksqldb
from lakehouse.kafka.changelog import materialize_topic
from lakehouse.lake import consumer as lake_consumer
from lakehouse.lake.backfill import backfill_day
from lakehouse.lake.decode import FeedDecoder, decoded
from lakehouse.lake.metadata import FeedMetadata, ReadOnlyMetadata
from lakehouse.lake.snapshots import content_hash, planned_version, rows_to_table, write_snapshot
from lakehouse.quarantine import QuarantineWriter
from lakehouse.settings import Settings
from lakehouse.storage import LakeStorage

SOURCES = ("ksqldb", "kafka")


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
    decoder = FeedDecoder(feed, ReadOnlyMetadata(storage, feed.name))
    landed = FeedMetadata(storage, feed.name).offsets(topic)
    for table, days, bad in decoded(settings, decoder, topic, landed, _end_offsets(settings, topic)):
        plan.records += table.num_rows + bad
        plan.bad += bad
        for entry in pc.value_counts(days).to_pylist():
            plan.rows_by_day[entry["values"]] = plan.rows_by_day.get(entry["values"], 0) + entry["counts"]
    return plan


def _end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    ends = clients.topic_end_offsets(settings, topic)
    if not ends:
        raise LakehouseError(f"topic {topic} does not exist")
    return ends


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
