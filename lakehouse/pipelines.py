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

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from lakehouse import retention
from lakehouse.catalog import FeedCatalog
from lakehouse.errors import LakehouseError
from lakehouse.events import GeneratorOptions
from lakehouse.producer import ProduceOptions, derive_values, event_records, produce_events
from lakehouse.settings import Settings
from lakehouse.storage import LakeStorage

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


# ---------------------------------------------------------------- kafka_produce
class ProduceShard(beam.DoFn):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def process(self, generator: GeneratorOptions) -> Iterable[GeneratorOptions]:
        report = produce_events(self.settings, generator, ProduceOptions())
        if report.failed:
            raise LakehouseError(f"shard seed {generator.seed}: {report.failed} events failed: {report.first_error}")
        _rows_counter().inc(report.events)
        yield generator


class DeriveShards(beam.DoFn):
    """One writer for the derived tables (as ksqlDB is): folds every produced shard in."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

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
class ApplyRetention(beam.DoFn):
    def __init__(self, settings: Settings, today: date) -> None:
        self.settings = settings
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
