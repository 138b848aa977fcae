-- The star schema: three dimensions, four facts (one per built-in ksqlDB table), and the bookkeeping
-- tables of the warehouse consumer and of sync_to_mysql.py. Runs on MySQL 8 and MariaDB 10.11.
-- Money is DECIMAL (sums 2 decimals, averages 4); every fact row carries the snapshot it came from
-- (snapshot_version 0 = kept current by the streaming consumer, N >= 1 = sync run N). Business keys
-- compare byte for byte (utf8mb4_bin), like the Kafka keys they come from.

CREATE TABLE IF NOT EXISTS dim_users (
  user_id      VARCHAR(128) COLLATE utf8mb4_bin NOT NULL,
  user_name    VARCHAR(255) NULL,
  user_email   VARCHAR(255) NULL,
  user_country VARCHAR(64)  NULL,
  user_city    VARCHAR(128) NULL,
  updated_at   DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (user_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS dim_payment_methods (
  payment_method_id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  payment_method    VARCHAR(64)  COLLATE utf8mb4_bin NOT NULL,
  created_at        DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (payment_method_id),
  UNIQUE KEY uq_dim_payment_methods_name (payment_method)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS dim_products (
  product_id       VARCHAR(128) COLLATE utf8mb4_bin NOT NULL,
  product_name     VARCHAR(255) NULL,
  product_category VARCHAR(128) NULL,
  updated_at       DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (product_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS fact_user_transaction_summary (
  user_id             VARCHAR(128)   COLLATE utf8mb4_bin NOT NULL,
  transaction_type    VARCHAR(64)    COLLATE utf8mb4_bin NOT NULL,
  total_amount        DECIMAL(18, 2) NULL,
  transaction_count   BIGINT         NULL,
  avg_amount          DECIMAL(20, 4) NULL,
  min_amount          DECIMAL(18, 2) NULL,
  max_amount          DECIMAL(18, 2) NULL,
  last_transaction_at DATETIME(3)    NULL,
  snapshot_date       DATE           NOT NULL,
  snapshot_version    INT UNSIGNED   NOT NULL,
  PRIMARY KEY (user_id, transaction_type),
  CONSTRAINT fk_fact_uts_user FOREIGN KEY (user_id) REFERENCES dim_users (user_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS fact_user_transaction_summary_eur (
  user_id             VARCHAR(128)   COLLATE utf8mb4_bin NOT NULL,
  transaction_type    VARCHAR(64)    COLLATE utf8mb4_bin NOT NULL,
  total_amount_eur    DECIMAL(18, 2) NULL,
  transaction_count   BIGINT         NULL,
  avg_amount_eur      DECIMAL(20, 4) NULL,
  min_amount_eur      DECIMAL(18, 2) NULL,
  max_amount_eur      DECIMAL(18, 2) NULL,
  last_transaction_at DATETIME(3)    NULL,
  snapshot_date       DATE           NOT NULL,
  snapshot_version    INT UNSIGNED   NOT NULL,
  PRIMARY KEY (user_id, transaction_type),
  CONSTRAINT fk_fact_utse_user FOREIGN KEY (user_id) REFERENCES dim_users (user_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS fact_payment_method_totals (
  payment_method_id INT UNSIGNED   NOT NULL,
  total_amount_eur  DECIMAL(18, 2) NULL,
  transaction_count BIGINT         NULL,
  avg_amount_eur    DECIMAL(20, 4) NULL,
  snapshot_date     DATE           NOT NULL,
  snapshot_version  INT UNSIGNED   NOT NULL,
  PRIMARY KEY (payment_method_id),
  CONSTRAINT fk_fact_pmt_method FOREIGN KEY (payment_method_id) REFERENCES dim_payment_methods (payment_method_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS fact_product_purchase_counts (
  product_id       VARCHAR(128)   COLLATE utf8mb4_bin NOT NULL,
  purchase_count   BIGINT         NULL,
  total_quantity   BIGINT         NULL,
  total_revenue    DECIMAL(18, 2) NULL,
  avg_price        DECIMAL(20, 4) NULL,
  unique_buyers    BIGINT         NULL,
  snapshot_date    DATE           NOT NULL,
  snapshot_version INT UNSIGNED   NOT NULL,
  PRIMARY KEY (product_id),
  CONSTRAINT fk_fact_ppc_product FOREIGN KEY (product_id) REFERENCES dim_products (product_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- Exactly-once: the next offset to consume per (group, topic, partition), written in the same transaction
-- as the rows it covers.
CREATE TABLE IF NOT EXISTS kafka_offsets (
  consumer_group VARCHAR(255) NOT NULL,
  topic          VARCHAR(249) NOT NULL,
  `partition`    INT          NOT NULL,
  next_offset    BIGINT       NOT NULL,
  updated_at     DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (consumer_group, topic, `partition`)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;  -- topic names are case-sensitive

-- One row per sync_to_mysql.py run that landed (the run and this row commit together).
CREATE TABLE IF NOT EXISTS sync_runs (
  snapshot_version INT UNSIGNED NOT NULL,
  snapshot_date    DATE         NOT NULL,
  source           VARCHAR(16)  NOT NULL,
  tables_loaded    TEXT         NOT NULL,
  row_count        BIGINT       NOT NULL,
  started_at       DATETIME(3)  NOT NULL,
  finished_at      DATETIME(3)  NOT NULL,
  PRIMARY KEY (snapshot_version)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
