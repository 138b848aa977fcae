"""The MySQL star-schema warehouse: schema migrations, feed mappings, the bulk upsert path, the
exactly-once Kafka consumer and snapshot sync. See docs/warehouse.md.

  connection   connect, reconnect and retry with backoff
  migrations   versioned SQL files (migrations/V<NNN>__*.sql), ensure_schema; the permission tables' names
  offsets      the kafka_offsets table: where the streaming consumer resumes (read by sync too)
  base, star, automap, mapping
               how each table feed lands: curated star mappings, auto-mapping of any other table feed
  values, upsert
               validated value conversion, LOAD DATA LOCAL INFILE bulk writes
  consumer     kafka_consumer_warehouse.py: changelog topics -> MySQL, offsets in the same transaction
  monitoring   the consumer's metrics, rate and lag line, offsets to Kafka for lag tools
  sync         sync_to_mysql.py: one snapshot run from the lake, Kafka or ksqlDB, all tables or none
  erd          the Mermaid ER diagram of the live schema (docs/warehouse.md is checked against it)
"""
