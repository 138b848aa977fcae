-- The three derived streams. Key: EVENT_KEY (= transaction id, KAFKA format); value: JSON, upper-case columns.

-- One column per nested field; product columns are null when the event has no product.
CREATE STREAM IF NOT EXISTS TRANSACTION_FLATTENED WITH (
  KAFKA_TOPIC = 'transaction_flattened', KEY_FORMAT = 'KAFKA', VALUE_FORMAT = 'JSON', PARTITIONS = 6
) AS SELECT
  EVENT_KEY,
  TRANSACTION_ID,
  `TIMESTAMP`,
  `USER`->USER_ID AS USER_ID,
  `USER`->NAME AS USER_NAME,
  `USER`->EMAIL AS USER_EMAIL,
  `USER`->COUNTRY AS USER_COUNTRY,
  `USER`->CITY AS USER_CITY,
  TRANSACTION_TYPE,
  STATUS,
  AMOUNT,
  CURRENCY,
  PAYMENT_METHOD,
  PRODUCT->PRODUCT_ID AS PRODUCT_ID,
  PRODUCT->NAME AS PRODUCT_NAME,
  PRODUCT->CATEGORY AS PRODUCT_CATEGORY,
  PRODUCT->UNIT_PRICE AS PRODUCT_UNIT_PRICE,
  PRODUCT->QUANTITY AS PRODUCT_QUANTITY
FROM TRANSACTION_STREAM
EMIT CHANGES;

-- No name, no email, no raw user id; amounts converted to EUR with the fixed rates of lakehouse/events.py
-- (EUR_RATES), rounded half-up to cents per event like lakehouse.events.to_eur.
-- PSEUDONYM: ksqlDB has no hash function among its built-ins (no SHA256/MD5/HASH in the scalar function
-- reference up to 0.29), so it cannot compute the stand-in's first 16 hex chars of sha256('lakehouse:' + user_id).
-- The closest built-in that keeps the two properties consumers rely on (deterministic: one pseudonym per user;
-- one-to-one: no two users share one) is the hex encoding of the id below. It hides the id from casual reading
-- but is REVERSIBLE: where real pseudonymization is required, install a SHA-256 UDF (ksql.extension.dir) and
-- replace the expression with SUBSTRING(SHA256(CONCAT('lakehouse:', USER_ID)), 1, 16). See docs/ksqldb.md.
CREATE STREAM IF NOT EXISTS TRANSACTION_STREAM_ANONYMIZED WITH (
  KAFKA_TOPIC = 'transaction_stream_anonymized', KEY_FORMAT = 'KAFKA', VALUE_FORMAT = 'JSON', PARTITIONS = 6
) AS SELECT
  EVENT_KEY,
  TRANSACTION_ID,
  `TIMESTAMP`,
  FROM_BYTES(TO_BYTES(USER_ID, 'utf8'), 'hex') AS USER_PSEUDONYM,
  USER_COUNTRY,
  TRANSACTION_TYPE,
  STATUS,
  ROUND(AMOUNT * CASE WHEN CURRENCY = 'EUR' THEN CAST(1.0 AS DECIMAL(10, 4)) WHEN CURRENCY = 'USD' THEN CAST(0.92 AS DECIMAL(10, 4)) WHEN CURRENCY = 'GBP' THEN CAST(1.17 AS DECIMAL(10, 4))
    WHEN CURRENCY = 'CHF' THEN CAST(1.05 AS DECIMAL(10, 4)) WHEN CURRENCY = 'JPY' THEN CAST(0.0062 AS DECIMAL(10, 4)) END, 2) AS AMOUNT_EUR,
  PAYMENT_METHOD,
  PRODUCT_ID,
  PRODUCT_QUANTITY
FROM TRANSACTION_FLATTENED
EMIT CHANGES;

-- Events from the cities of lakehouse.events.BLACKLISTED_CITIES, with every flattened column.
CREATE STREAM IF NOT EXISTS TRANSACTION_STREAM_BLACKLISTED WITH (
  KAFKA_TOPIC = 'transaction_stream_blacklisted', KEY_FORMAT = 'KAFKA', VALUE_FORMAT = 'JSON', PARTITIONS = 6
) AS SELECT *
FROM TRANSACTION_FLATTENED
WHERE USER_CITY IN ('Pyongyang', 'Tehran', 'Damascus')
EMIT CHANGES;
