"""The orchestrator's Apache Beam pipelines: each task does its work inside DoFns.

  kafka_produce    shards of generated events produced in parallel; then one step derives them (ksqlDB stand-in)
  export_datalake  one element per active feed: new stream records / a new table version through the lake writer
  sync_warehouse   newest table versions read from the lake, upserted into MySQL in batches, connection per bundle
  retention        one element per policy of the catalog

DirectRunner by default; every other Beam option passes through, so the same pipelines run on Dataflow,
Flink or Spark (the lake root then has to be an object-store URI and MySQL/Kafka reachable from workers).
Rows moved are counted with a Beam metric, which every runner reports back.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from lakehouse.catalog import Feed, FeedCatalog
from lakehouse.errors import LakehouseError
from lakehouse.governance import retention
from lakehouse.kafka import clients
from lakehouse.kafka.records import BadRecord
from lakehouse.lake import export, snapshots
from lakehouse.produce.events import GeneratorOptions
from lakehouse.produce.producer import ProduceOptions, derive_values, event_records, produce_events
from lakehouse.quarantine import QuarantinedRecord, QuarantineWriter
from lakehouse.settings import Settings
from lakehouse.storage import LakeStorage
from lakehouse.warehouse import upsert
from lakehouse.warehouse.base import Snapshot
from lakehouse.warehouse.connection import Warehouse, open_warehouse
from lakehouse.warehouse.mapping import mapping_for
from lakehouse.warehouse.migrations import ensure_schema
from lakehouse.warehouse.sync import consumer_ahead, record_sync_run, reserve_sync_run

NAMESPACE = "lakehouse"
ROWS = "rows"


def _rows_counter():
    return Metrics.counter(NAMESPACE, ROWS)


@dataclass(frozen=True)
class ProduceSpec:
    messages: int = 1000
    shards: int = 4
    seed: int | None = None  # None: a new seed per run, so every tick produces new transactions
    users: int = 100
    days: int = 1
    derive: bool = True

    def shard_generators(self, run_seed: int) -> list[GeneratorOptions]:
        shards = max(1, min(self.shards, self.messages or 1))
        sizes = [self.messages // shards + (1 if index < self.messages % shards else 0) for index in range(shards)]
        return [GeneratorOptions(messages=size, seed=run_seed * 1000 + index, users=self.users, days=self.days)
                for index, size in enumerate(sizes) if size]


def pipeline_options(runner: str | None, beam_args: list[str], parallelism: int = 2) -> PipelineOptions:
    options = PipelineOptions(beam_args, runner=runner or "DirectRunner")
    if (runner or "DirectRunner") == "DirectRunner":
        direct = options.view_as(beam.options.pipeline_options.DirectOptions)
        direct.direct_running_mode = direct.direct_running_mode or "multi_threading"
        direct.direct_num_workers = direct.direct_num_workers or parallelism
    return options


def run_pipeline(options: PipelineOptions, build: Callable[[beam.Pipeline], object]) -> int:
    """Build, run and wait; returns the rows counted by the DoFns."""
    pipeline = beam.Pipeline(options=options)
    build(pipeline)
    result = pipeline.run()
    result.wait_until_finish()
    counters = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE).with_name(ROWS))["counters"]
    return sum(counter.committed or counter.attempted or 0 for counter in counters)


class SettingsDoFn(beam.DoFn):
    """A step carrying the settings without the MySQL password (a pipeline is pickled and shipped to workers);
    a step that writes to MySQL takes the password from its worker's own environment."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings.without_secrets()

    def warehouse_settings(self) -> Settings:
        return self.settings.with_secrets_from_env()


# ---------------------------------------------------------------- kafka_produce
class ProduceShard(SettingsDoFn):
    def process(self, generator: GeneratorOptions) -> Iterable[GeneratorOptions]:
        report = produce_events(self.settings, generator, ProduceOptions())
        if report.failed:
            raise LakehouseError(f"shard seed {generator.seed}: {report.failed} events failed: {report.first_error}")
        _rows_counter().inc(report.events)
        yield generator


class DeriveShards(SettingsDoFn):
    """One writer for the derived tables (as ksqlDB is): folds every produced shard in."""

    def process(self, generators: list[GeneratorOptions]) -> Iterable[int]:
        ordered = sorted(generators, key=lambda g: g.seed)
        yield derive_values(self.settings, (value for g in ordered for _key, value in event_records(g)))


def build_produce(settings: Settings, spec: ProduceSpec, run_seed: int) -> Callable[[beam.Pipeline], object]:
    def build(pipeline: beam.Pipeline) -> None:
        produced = (pipeline
                    | "Shards" >> beam.Create(spec.shard_generators(run_seed))
                    | "Spread" >> beam.Reshuffle()
                    | "Produce" >> beam.ParDo(ProduceShard(settings)))
        if spec.derive:
            _ = (produced
                 | "Gather" >> beam.combiners.ToList()
                 | "Derive" >> beam.ParDo(DeriveShards(settings)))
    return build


# ---------------------------------------------------------------- retention
class ApplyRetention(SettingsDoFn):
    def __init__(self, settings: Settings, today: date) -> None:
        super().__init__(settings)
        self.today = today

    def process(self, policy: retention.Policy) -> Iterable[str]:
        storage = LakeStorage(self.settings.data_lake_root)
        done = retention.apply(storage, retention.plan(storage, [policy], self.today))
        _rows_counter().inc(sum(candidate.rows or 0 for candidate in done.candidates))
        for skipped in done.skipped:
            yield f"skipped {skipped.path}: {skipped.reason}"


def build_retention(settings: Settings) -> Callable[[beam.Pipeline], object]:
    catalog = FeedCatalog(LakeStorage(settings.data_lake_root))
    policies = retention.resolve_policies(catalog, all_feeds=True)
    today = datetime.now(UTC).date()

    def build(pipeline: beam.Pipeline) -> None:
        _ = (pipeline
             | "Policies" >> beam.Create(policies)
             | "Apply" >> beam.ParDo(ApplyRetention(settings, today)))
    return build


# ---------------------------------------------------------------- export_datalake
class ExportFeed(SettingsDoFn):
    """New records of a stream (from its landed offsets, the consumer's commit protocol) or a new table version."""

    def process(self, feed: Feed) -> Iterable[str]:
        if not clients.topic_partitions(self.settings, self.settings.topic(feed.topic)):
            yield f"{feed.kind} {feed.name}: skipped, its topic does not exist yet"
            return
        if feed.kind == "stream":
            outcome = export.export_stream(self.settings, feed)
            _rows_counter().inc(outcome.landed)
        else:
            outcome = export.export_table(self.settings, LakeStorage(self.settings.data_lake_root), feed, "kafka")
            _rows_counter().inc(outcome.row_count if outcome.written else 0)
        yield outcome.describe() if feed.kind == "stream" else outcome.describe(dry_run=False)


def build_export(settings: Settings) -> Callable[[beam.Pipeline], object]:
    feeds = FeedCatalog(LakeStorage(settings.data_lake_root)).list(active_only=True)

    def build(pipeline: beam.Pipeline) -> None:
        _ = (pipeline
             | "Feeds" >> beam.Create(feeds)
             | "Spread" >> beam.Reshuffle()
             | "Export" >> beam.ParDo(ExportFeed(settings)))
    return build


# ---------------------------------------------------------------- sync_warehouse
SYNC_BATCH = 10_000
SYNC_GIVE_UP_S = 10.0


@dataclass(frozen=True)
class SyncBatch:
    feed: Feed
    lake_version: int
    rows: list[dict]


class ReadNewestVersion(SettingsDoFn):
    """The newest lake version of a table feed, in batches (nothing to do when the feed has no version yet)."""

    def process(self, feed: Feed) -> Iterable[SyncBatch]:
        storage = LakeStorage(self.settings.data_lake_root)
        version = snapshots.current_version(storage, feed.name)
        if version is None:
            return
        for batch in snapshots.read_snapshot(storage, feed.name, version).to_batches(SYNC_BATCH):
            yield SyncBatch(feed, version, batch.to_pylist())


class UpsertBatches(SettingsDoFn):
    """Upserts batches through the feed's warehouse mapping; one connection per bundle, one transaction per batch."""

    def __init__(self, settings: Settings, snapshot: Snapshot) -> None:
        super().__init__(settings)
        self.snapshot = snapshot

    def start_bundle(self) -> None:
        self.warehouse = Warehouse(self.warehouse_settings(), give_up_after=120.0)
        self.quarantine = QuarantineWriter(LakeStorage(self.settings.data_lake_root))

    def process(self, batch: SyncBatch) -> Iterable[tuple[str, int]]:
        mapping = mapping_for(batch.feed)
        mapping.prepare(self.warehouse, [])  # the live table's columns count against an auto-mapped table's cap
        payloads = []
        for index, row in enumerate(batch.rows):
            try:
                payloads.append(mapping.convert(row)[1])
            except BadRecord as exc:
                self.quarantine.add(QuarantinedRecord.of_row(
                    batch.feed.name, self.settings.topic(batch.feed.topic), index, row, batch.feed.key_columns,
                    f"sync from lake v{batch.lake_version}: {exc}"))
        mapping.prepare(self.warehouse, payloads)
        topic = self.settings.topic(batch.feed.topic)
        reflects = snapshots.source_offsets_of(LakeStorage(self.settings.data_lake_root), batch.feed.name,
                                               batch.lake_version)

        def write(cursor) -> str | None:  # the sync rule (lakehouse.warehouse.sync), in the batch transaction
            why = consumer_ahead(cursor, topic, reflects, f"lake v{batch.lake_version}")
            if why is None:
                _rows_counter().inc(mapping.write(cursor, payloads, self.snapshot))
            return why

        why = self.warehouse.run(write)
        if why is not None:
            print(f"warning: sync skipped a batch of {batch.feed.name}: {why}", file=sys.stderr)
            return
        yield batch.feed.name, batch.lake_version

    def finish_bundle(self) -> None:
        self.quarantine.flush()
        self.warehouse.close()


class FinishSyncRun(SettingsDoFn):
    """After every batch landed: rows the snapshots no longer hold go, and the run is recorded as complete."""

    def __init__(self, settings: Settings, snapshot: Snapshot) -> None:
        super().__init__(settings)
        self.snapshot = snapshot

    def process(self, written: list[tuple[str, int]]) -> Iterable[int]:
        storage = LakeStorage(self.settings.data_lake_root)
        catalog = FeedCatalog(storage)
        versions = dict(written)  # feed -> the lake version its batches came from

        def finish(cursor) -> list[str]:
            tables = []
            for name, version in sorted(versions.items()):
                feed = catalog.get(name)
                # The consumer may have landed newer rows since the batches: then they stay (the sync's rule).
                if consumer_ahead(cursor, self.settings.topic(feed.topic),
                                  snapshots.source_offsets_of(storage, name, version), f"lake v{version}"):
                    continue
                tables.append(mapping_for(feed).table)
                cursor.execute(f"DELETE FROM {upsert.quote(tables[-1])} WHERE snapshot_version <> %s",
                               (self.snapshot.version,))
            record_sync_run(cursor, self.snapshot, "lake", {"tables": tables, "batches": len(written)})
            return tables

        with open_warehouse(self.warehouse_settings()) as warehouse:
            tables = warehouse.run(finish)
        yield len(tables)


def build_sync(settings: Settings) -> Callable[[beam.Pipeline], object]:
    feeds = FeedCatalog(LakeStorage(settings.data_lake_root)).list(kind="table", active_only=True)
    # A tick gives up early when MySQL is away: the next tick tries again.
    with open_warehouse(settings, give_up_after=SYNC_GIVE_UP_S) as warehouse:
        ensure_schema(warehouse)
        snapshot = warehouse.run(lambda cursor: reserve_sync_run(cursor, "lake"))

    def build(pipeline: beam.Pipeline) -> None:
        _ = (pipeline
             | "TableFeeds" >> beam.Create(feeds)
             | "Read" >> beam.ParDo(ReadNewestVersion(settings))
             | "Spread" >> beam.Reshuffle()
             | "Upsert" >> beam.ParDo(UpsertBatches(settings, snapshot))
             | "Gather" >> beam.combiners.ToList()
             | "Finish" >> beam.ParDo(FinishSyncRun(settings, snapshot)))
    return build


# ---------------------------------------------------------------- dispatch
def task_runner(settings: Settings, runner: str | None, beam_args: list[str],
                produce: ProduceSpec) -> Callable[[str], int]:
    """task name -> rows moved, each task one Beam pipeline run."""
    builders: dict[str, Callable[[], Callable[[beam.Pipeline], object]]] = {
        "kafka_produce": lambda: build_produce(settings, produce, produce.seed or time.time_ns() // 1_000_000),
        "export_datalake": lambda: build_export(settings),
        "sync_warehouse": lambda: build_sync(settings),
        "retention": lambda: build_retention(settings),
    }

    def run_task(task: str) -> int:
        return run_pipeline(pipeline_options(runner, beam_args, parallelism=max(2, produce.shards)), builders[task]())
    return run_task
