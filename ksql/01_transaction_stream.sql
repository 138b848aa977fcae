-- The raw transaction events, as kafka_producer.py writes them (lakehouse/events.py).
-- Key: transaction_id as plain UTF-8 bytes (KAFKA format). Value: JSON with lower-case fields; ksqlDB matches
-- JSON field names case-insensitively, so the upper-case columns below read them as they are.
-- The key column is named EVENT_KEY (not TRANSACTION_ID) because the value carries transaction_id too and a
-- source cannot have two columns of one name; derived streams keep EVENT_KEY as their (KAFKA) key, whose bytes
-- are the transaction id, and TRANSACTION_ID as a value column, as the data contract requires.
-- apply-ksql (lakehouse/ksqldb.py) prefixes every KAFKA_TOPIC with LAKEHOUSE_TOPIC_PREFIX when it is set.
CREATE STREAM IF NOT EXISTS TRANSACTION_STREAM (
  EVENT_KEY STRING KEY,
  TRANSACTION_ID STRING,
  `TIMESTAMP` STRING,
  `USER` STRUCT<USER_ID STRING, NAME STRING, EMAIL STRING, COUNTRY STRING, CITY STRING>,
  TRANSACTION_TYPE STRING,
  STATUS STRING,
  AMOUNT DECIMAL(12, 2),
  CURRENCY STRING,
  PAYMENT_METHOD STRING,
  PRODUCT STRUCT<PRODUCT_ID STRING, NAME STRING, CATEGORY STRING, UNIT_PRICE DECIMAL(12, 2), QUANTITY INT>
) WITH (
  KAFKA_TOPIC = 'transaction_stream',
  KEY_FORMAT = 'KAFKA',
  VALUE_FORMAT = 'JSON',
  PARTITIONS = 6,
  -- Event time (not produce time) drives ROWTIME, so windows and retention follow the events' own clock.
  TIMESTAMP = 'TIMESTAMP',
  TIMESTAMP_FORMAT = 'yyyy-MM-dd''T''HH:mm:ss.SSSX'
);
