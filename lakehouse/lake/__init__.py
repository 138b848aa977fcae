"""The Parquet lake: streams by event date, tables by version, exactly once.

  metadata    per-feed metadata: schema history, counts, landed offsets
  schema      the feed schema: learning, evolution (new nullable columns, int -> double), conforming batches
  commit      the commit protocol: stage, manifest, publish, record offsets; fencing; reading back
  consumer    kafka_consumer_datalake.py: the poll loop that lands streams (and table feeds through tables)
  tables      table feeds: changelog materialized, a new version only on change
  snapshots   table versions: planned, written atomically, read
  export      export_to_data_lake.py: bounded runs, backfill of one day, table exports
  migration   data_lake_config.py migrate: an older folder layout moved to the current one
"""
