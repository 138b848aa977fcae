"""The Mermaid `erDiagram` of the live warehouse schema, read from information_schema.

docs/warehouse.md carries this diagram; a test regenerates it from a freshly migrated database and
fails when the two differ (print the current one with `python -m lakehouse.warehouse.erd`).
"""

from __future__ import annotations

import re
import sys

from mysql.connector.cursor import MySQLCursor

from lakehouse.settings import load_settings
from lakehouse.warehouse.connection import open_warehouse
from lakehouse.warehouse.migrations import ensure_schema

_DISPLAY_WIDTH = re.compile(r"^(tinyint|smallint|mediumint|int|bigint)\(\d+\)")  # MySQL 8 omits it, MariaDB not


def er_diagram(cursor: MySQLCursor) -> str:
    """The diagram of every base table of the current database (tables and relationships sorted by name)."""
    columns = _query(cursor, "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE FROM information_schema.COLUMNS "
                             "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN (SELECT TABLE_NAME FROM "
                             "information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE') "
                             "ORDER BY TABLE_NAME, ORDINAL_POSITION")
    keys = _query(cursor, "SELECT k.TABLE_NAME, k.COLUMN_NAME, c.CONSTRAINT_TYPE, k.REFERENCED_TABLE_NAME "
                          "FROM information_schema.KEY_COLUMN_USAGE k JOIN information_schema.TABLE_CONSTRAINTS c "
                          "ON c.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND c.TABLE_NAME = k.TABLE_NAME "
                          "AND c.CONSTRAINT_NAME = k.CONSTRAINT_NAME WHERE k.CONSTRAINT_SCHEMA = DATABASE()")
    markers: dict[tuple[str, str], list[str]] = {}
    primary: dict[str, set[str]] = {}
    references: dict[tuple[str, str], set[str]] = {}
    for table, column, kind, referenced in keys:
        code = {"PRIMARY KEY": "PK", "FOREIGN KEY": "FK", "UNIQUE": "UK"}[kind]
        markers.setdefault((table, column), []).append(code)
        if code == "PK":
            primary.setdefault(table, set()).add(column)
        elif code == "FK":
            references.setdefault((referenced, table), set()).add(column)

    lines = ["erDiagram"]
    for (parent, child), fk_columns in sorted(references.items()):
        cardinality = "||--o|" if fk_columns == primary.get(child) else "||--o{"
        lines.append(f'    {parent} {cardinality} {child} : "{", ".join(sorted(fk_columns))}"')
    current = None
    for table, column, data_type, column_type in columns:
        if table != current:
            if current is not None:
                lines.append("    }")
            lines.append(f"    {table} {{")
            current = table
        full_type = _DISPLAY_WIDTH.sub(r"\1", str(column_type)) if column_type != "tinyint(1)" else column_type
        keys_text = ", ".join(sorted(set(markers.get((table, column), [])), key=["PK", "FK", "UK"].index))
        detail = f' "{full_type}"' if full_type != data_type else ""
        lines.append(f"        {data_type} {column}{' ' + keys_text if keys_text else ''}{detail}")
    if current is not None:
        lines.append("    }")
    return "\n".join(lines) + "\n"


def _query(cursor: MySQLCursor, sql: str) -> list[tuple]:
    cursor.execute(sql)
    return [tuple(v.decode() if isinstance(v, (bytes, bytearray)) else v for v in row) for row in cursor.fetchall()]


def main() -> int:
    """Print the diagram of the configured warehouse (migrated first)."""
    with open_warehouse(load_settings()) as warehouse:
        ensure_schema(warehouse)
        sys.stdout.write(warehouse.run(er_diagram, transactional=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
