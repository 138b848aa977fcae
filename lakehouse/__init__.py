"""lakehouse: Kafka / ksqlDB streams and tables into a Parquet data lake and a MySQL star-schema warehouse.

Layers (each only imports the ones above it in this list):
  settings, storage                      - configuration, file storage (local folder or object store)
  layout, catalog, events, kafka_io      - pure lake paths, the feed catalog, the event contract, Kafka I/O
  quarantine, lake_writer, ...           - writers, warehouse, ksqlDB client
  governance, orchestration              - retention, permissions, feed onboarding, Beam pipelines
  cli                                    - shared helpers for the top-level scripts
"""
