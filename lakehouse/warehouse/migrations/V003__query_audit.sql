-- The permission tables of permissions_manager.py, made here from now on: first as that script made them before
-- (a database where it already ran keeps its tables and rows), then the audit table takes the governed queries of
-- `data_lake_config.py query` too: one row per query, allowed or refused (action 'query', no grant, no folder),
-- with the SQL, the feeds it touched, the rows it returned, the outcome and its reason.

CREATE TABLE IF NOT EXISTS data_lake_permissions (
  id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  user_email  VARCHAR(254) NOT NULL,
  folder_path VARCHAR(512) NOT NULL,
  permission  ENUM('read', 'write', 'admin') NOT NULL,
  granted_by  VARCHAR(254) NOT NULL,
  granted_at  DATETIME(3) NOT NULL,
  expires_at  DATETIME(3) NULL,
  revoked_at  DATETIME(3) NULL,
  KEY idx_permissions_user_folder (user_email, folder_path)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE IF NOT EXISTS data_lake_permissions_audit (
  id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  grant_id    BIGINT UNSIGNED NOT NULL,
  action      ENUM('grant', 'renew', 'revoke') NOT NULL,
  user_email  VARCHAR(254) NOT NULL,
  folder_path VARCHAR(512) NOT NULL,
  permission  ENUM('read', 'write', 'admin') NOT NULL,
  expires_at  DATETIME(3) NULL,
  actor       VARCHAR(254) NOT NULL,
  at          DATETIME(3) NOT NULL,
  KEY idx_permissions_audit_grant (grant_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

ALTER TABLE data_lake_permissions_audit
  MODIFY grant_id BIGINT UNSIGNED NULL,
  MODIFY action ENUM('grant', 'renew', 'revoke', 'query') NOT NULL,
  MODIFY folder_path VARCHAR(512) NULL,
  ADD COLUMN query_text MEDIUMTEXT NULL,
  ADD COLUMN feeds TEXT NULL,
  ADD COLUMN rows_returned BIGINT UNSIGNED NULL,
  ADD COLUMN outcome ENUM('allowed', 'refused', 'failed') NULL,
  ADD COLUMN reason TEXT NULL,
  ADD KEY idx_permissions_audit_user_at (user_email, at);
