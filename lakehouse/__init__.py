"""lakehouse: Kafka / ksqlDB streams and tables into a Parquet data lake and a MySQL star-schema warehouse.

One folder per pipeline stage; each imports only the stages listed above it:
  (foundation) settings, errors, storage, layout, catalog, quarantine, cli, text_table, metrics
  kafka/          clients, records, changelog, ksqldb, progress
  produce/        events, producer, derive
  lake/           metadata, schema, lineage, commit, decode, checkpoint, consumer, reconcile, tables, snapshots,
                  export, backfill, migration
  warehouse/      connection, migrations, mappings, values, upsert, consumer, monitoring, sync, erd
  governance/     onboarding, retention, permissions, status
  orchestration/  schedule, pipelines, demo
"""
