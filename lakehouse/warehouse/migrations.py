"""Versioned schema migrations: `migrations/V<NNN>__<name>.sql`, applied in order, recorded in schema_version.

`ensure_schema` is idempotent and cheap when nothing is pending; every script calls it before it
first writes. Concurrent callers are serialized by a named server lock (per database), so two
processes starting at the same time apply each migration once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from mysql.connector.cursor import MySQLCursor

from lakehouse.errors import LakehouseError
from lakehouse.warehouse.connection import Warehouse

# The permission tables of lakehouse.governance.permissions (grants, and the audit of grant changes and governed
# queries): made by migration V003, and reserved from auto-mapping (warehouse.star.RESERVED_TABLES).
PERMISSION_TABLES = ("data_lake_permissions", "data_lake_permissions_audit")

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_FILE_NAME = re.compile(r"V(\d{3,})__([a-z0-9_]+)\.sql")  # fullmatch
_COMMENT = re.compile(r"--[^\n]*")
LOCK_TIMEOUT_S = 60
T = TypeVar("T")

_SCHEMA_VERSION_DDL = """
CREATE TABLE IF NOT EXISTS schema_version (
  version    INT UNSIGNED NOT NULL,
  name       VARCHAR(255) NOT NULL,
  applied_at DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (version)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    def statements(self) -> list[str]:
        text = _COMMENT.sub("", self.path.read_text(encoding="utf-8"))
        return [statement.strip() for statement in text.split(";") if statement.strip()]


def available_migrations(folder: Path = MIGRATIONS_DIR) -> list[Migration]:
    found = []
    for path in sorted(folder.glob("*.sql")):
        match = _FILE_NAME.fullmatch(path.name)
        if not match:
            raise LakehouseError(f"migration file {path.name} is not named V<NNN>__<name>.sql")
        found.append(Migration(int(match.group(1)), match.group(2), path))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise LakehouseError(f"two migration files share a version in {folder}")
    return sorted(found, key=lambda m: m.version)


@contextmanager
def ddl_lock(cursor: MySQLCursor) -> Iterator[None]:
    """Serialize schema changes of this database across processes (GET_LOCK works on MySQL and MariaDB)."""
    cursor.execute("SELECT GET_LOCK(CONCAT('lakehouse_ddl:', DATABASE()), %s)", (LOCK_TIMEOUT_S,))
    (granted,) = cursor.fetchone()
    if granted != 1:
        raise LakehouseError(f"could not get the warehouse schema lock within {LOCK_TIMEOUT_S}s "
                             "(another process is changing the schema)")
    try:
        yield
    finally:
        cursor.execute("SELECT RELEASE_LOCK(CONCAT('lakehouse_ddl:', DATABASE()))")
        cursor.fetchall()


def applied_versions(cursor: MySQLCursor) -> list[int]:
    cursor.execute(_SCHEMA_VERSION_DDL)
    cursor.execute("SELECT version FROM schema_version ORDER BY version")
    return [row[0] for row in cursor.fetchall()]


def migrate(cursor: MySQLCursor, migrations: list[Migration] | None = None) -> list[int]:
    """Apply the pending migrations in order; returns the versions applied now."""
    migrations = available_migrations() if migrations is None else migrations
    with ddl_lock(cursor):
        done = set(applied_versions(cursor))
        applied = []
        for migration in migrations:
            if migration.version in done:
                continue
            for statement in migration.statements():
                cursor.execute(statement)
            # DDL commits by itself on MySQL/MariaDB; the version row is committed right after it.
            cursor.execute("INSERT INTO schema_version (version, name) VALUES (%s, %s)",
                           (migration.version, migration.name))
            cursor.execute("COMMIT")
            applied.append(migration.version)
        return applied


def ensure_schema(warehouse: Warehouse) -> list[int]:
    """Bring the warehouse schema up to date (idempotent); returns the versions applied by this call."""
    return warehouse.run(migrate, transactional=False)


def run_ddl(warehouse: Warehouse, change: Callable[[MySQLCursor], T]) -> T:
    """Run a schema change under the DDL lock, outside any data transaction (DDL commits implicitly)."""
    def locked(cursor: MySQLCursor) -> T:
        with ddl_lock(cursor):
            return change(cursor)
    return warehouse.run(locked, transactional=False)
