"""The Parquet lake: streams by event date, tables by version, exactly once.

  metadata    per-feed metadata: schema history, counts, landed offsets
  schema      the feed schema: learning, evolution (new nullable columns, int -> double), conforming batches
  commit      the commit protocol: stage, manifest, publish, record offsets; fencing; reading back
  lineage     event_time and lineage columns, the event day: one helper for the consumer and export
  decode      FeedDecoder: Kafka values -> Arrow rows and quarantine reasons, bulk or record by record
  checkpoint  Checkpoint: buffers per (topic, partition, day), when to land, the landing
  consumer    kafka_consumer_datalake.py: the poll loop, rebalances (table feeds through tables)
  reconcile   consumed = landed + quarantined + deleted by retention, per feed
  tables      table feeds: changelog materialized, a new version only on change
  snapshots   table versions: planned, written atomically, read
  export      export_to_data_lake.py: bounded stream runs, table exports
  backfill    export --date: one day rebuilt (recover, rebuild, stage the day, swap the day)
  migration   data_lake_config.py migrate: an older folder layout moved to the current one
  compaction  data_lake_config.py compact: closed days' small files merged, swapped in atomically
"""
