"""Talking to Kafka and ksqlDB.

  clients     librdkafka producers, consumers and admin: topics, end offsets, partition ends
  records     decoding one Kafka record (JSON object, names normalized) and the BadRecord reasons
  changelog   a table's changelog topic materialized as rows (tombstones delete)
  ksqldb      the ksqlDB REST client: statements, pull queries, discovery
  progress    a consumer's rate and lag line and its lag gauges (both consumers)
"""
