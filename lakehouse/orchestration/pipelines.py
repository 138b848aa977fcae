"""The orchestrator's Apache Beam pipelines: each task does its work inside DoFns.

  kafka_produce    shards of generated events produced in parallel; then one step derives them (ksqlDB stand-in)
  export_datalake  one element per active feed: new stream records / a new table version through the lake writer
  sync_warehouse   sync_to_mysql.py's run as one step: newest table versions, one transaction, all or nothing
  retention        one element per policy of the catalog
  compact          one element per closed stream day with small files to merge (lake.compaction)

DirectRunner by default; every other Beam option passes through, so the same pipelines run on Dataflow,
Flink or Spark (the lake root then has to be an object-store URI and MySQL/Kafka reachable from workers).
Rows moved are counted with a Beam metric, which every runner reports back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions, WorkerOptions

from lakehouse.catalog import Feed, FeedCatalog
from lakehouse.errors import LakehouseError
from lakehouse.governance import retention
from lakehouse.kafka import clients
from lakehouse.lake import compaction, export
from lakehouse.produce.events import GeneratorOptions
from lakehouse.produce.producer import ProduceOptions, derive_values, event_records, produce_events
from lakehouse.settings import Settings
from lakehouse.storage import LakeStorage
from lakehouse.warehouse.sync import sync

NAMESPACE = "lakehouse"
ROWS = "rows"
log = logging.getLogger(__name__)


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
    worker = options.view_as(WorkerOptions)
    # Workers in other processes (multi_processing, Dataflow, Flink) log at INFO unless told: they log at the
    # script's level, which travels with the options (a worker reads them before its first bundle).
    worker.default_sdk_harness_log_level = (worker.default_sdk_harness_log_level
                                            or logging.getLevelName(logging.getLogger().getEffectiveLevel()))
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
    """A step carrying the settings without passwords (a pipeline is pickled and shipped to workers); a step
    that talks to Kafka, ksqlDB or MySQL takes them from its worker's own environment (worker_settings)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings.without_secrets()

    def worker_settings(self) -> Settings:
        return self.settings.with_secrets_from_env()


# ---------------------------------------------------------------- kafka_produce
class ProduceShard(SettingsDoFn):
    def process(self, generator: GeneratorOptions) -> Iterable[GeneratorOptions]:
        report = produce_events(self.worker_settings(), generator, ProduceOptions())
        if report.failed:
            raise LakehouseError(f"shard seed {generator.seed}: {report.failed} events failed: {report.first_error}")
        _rows_counter().inc(report.events)
        yield generator


class DeriveShards(SettingsDoFn):
    """One writer for the derived tables (as ksqlDB is): folds every produced shard in."""

    def process(self, generators: list[GeneratorOptions]) -> Iterable[int]:
        ordered = sorted(generators, key=lambda g: g.seed)
        yield derive_values(self.worker_settings(), (value for g in ordered for _key, value in event_records(g)))


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


# ---------------------------------------------------------------- compact
class CompactDay(SettingsDoFn):
    """One closed day's small files merged (lake.compaction.compact_day: its own lock, manifest and swap)."""

    def process(self, day: compaction.DayCompaction) -> Iterable[str]:
        storage = LakeStorage(self.settings.data_lake_root)
        done = compaction.compact_day(storage, day.feed, day.day, compaction.DEFAULT_TARGET_FILE_MB * compaction.MB)
        if done is not None:
            _rows_counter().inc(done.rows)
            yield done.describe(dry_run=False)


def build_compact(settings: Settings) -> Callable[[beam.Pipeline], object]:
    storage = LakeStorage(settings.data_lake_root)
    feeds = compaction.compactable(FeedCatalog(storage).list(kind="stream", active_only=True))
    for feed in feeds:
        compaction.recover(storage, feed.name)
    planned = compaction.plan(storage, feeds, datetime.now(UTC).date())

    def build(pipeline: beam.Pipeline) -> None:
        _ = (pipeline
             | "ClosedDays" >> beam.Create(planned)
             | "Spread" >> beam.Reshuffle()
             | "Compact" >> beam.ParDo(CompactDay(settings)))
    return build


# ---------------------------------------------------------------- export_datalake
class ExportFeed(SettingsDoFn):
    """New records of a stream (from its landed offsets, the consumer's commit protocol) or a new table version."""

    def process(self, feed: Feed) -> Iterable[str]:
        settings = self.worker_settings()
        if not clients.topic_partitions(settings, settings.topic(feed.topic)):
            yield f"{feed.kind} {feed.name}: skipped, its topic does not exist yet"
            return
        if feed.kind == "stream":
            outcome = export.export_stream(settings, feed)
            _rows_counter().inc(outcome.landed)
        else:
            outcome = export.export_table(settings, LakeStorage(settings.data_lake_root), feed, "kafka")
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
class SyncFromLake(SettingsDoFn):
    """sync_to_mysql.py's run (lakehouse.warehouse.sync) as one step: every table from its newest lake version in
    one transaction, all or nothing, under the same rule for the streaming consumer's rows. A tick with nothing
    to land (no versions yet, or the consumer ahead) lands nothing and says why."""

    def process(self, feeds: list[Feed]) -> Iterable[int]:
        result = sync(self.worker_settings(), feeds, source="lake", warn=log.warning, strict=False)
        _rows_counter().inc(result.row_count)
        yield result.row_count


def build_sync(settings: Settings) -> Callable[[beam.Pipeline], object]:
    feeds = FeedCatalog(LakeStorage(settings.data_lake_root)).list(kind="table", active_only=True)

    def build(pipeline: beam.Pipeline) -> None:
        _ = pipeline | "TableFeeds" >> beam.Create([feeds]) | "Sync" >> beam.ParDo(SyncFromLake(settings))
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
        "compact": lambda: build_compact(settings),
    }

    def run_task(task: str) -> int:
        return run_pipeline(pipeline_options(runner, beam_args, parallelism=max(2, produce.shards)), builders[task]())
    return run_task
