"""Auto-mapping: any table feed without a curated mapping lands in a table of its own, with no code change.

The table is named after the feed (or its `warehouse_table`); its primary key is the feed's key
columns (VARCHAR, byte-exact). Other columns are created from the values seen, the first time a
non-null value arrives, with the narrowest type that holds it; when a later value needs more (an
integer column receives 1.5, a number column receives text) the column is widened. Columns are never
dropped and never narrowed; a column whose type someone changed by hand is left as it is.

Type order: BOOLEAN < BIGINT < DOUBLE < TEXT < MEDIUMTEXT < LONGTEXT, and DATETIME(6) < TEXT.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal

import orjson
from mysql.connector.cursor import MySQLCursor

from lakehouse.catalog import Feed
from lakehouse.errors import LakehouseError
from lakehouse.kafka.records import BadRecord
from lakehouse.warehouse import upsert, values
from lakehouse.warehouse.base import SNAPSHOT_COLUMNS, Key, Mapping, Snapshot
from lakehouse.warehouse.connection import Warehouse
from lakehouse.warehouse.migrations import run_ddl
from lakehouse.warehouse.star import RESERVED_TABLES

MAX_NAME = 64  # MySQL identifier limit
MAX_KEY_BYTES = 3072  # InnoDB index limit; utf8mb4 takes up to 4 bytes a character
TEXT_TYPES = ("TEXT", "MEDIUMTEXT", "LONGTEXT")
_TEXT_LIMITS = ((65_535, "TEXT"), (16_777_215, "MEDIUMTEXT"))
_NUMERIC = ("BOOLEAN", "BIGINT", "DOUBLE")
_RANK = {"BOOLEAN": 0, "BIGINT": 1, "DOUBLE": 2, "DATETIME(6)": 3, "TEXT": 4, "MEDIUMTEXT": 5, "LONGTEXT": 6}


def table_name(feed: Feed) -> str:
    name = feed.warehouse_table or feed.name
    if name in RESERVED_TABLES:
        raise LakehouseError(f"feed {feed.name}: warehouse table {name} belongs to the project (star schema, "
                             "offsets, permissions); give the feed another warehouse_table")
    return name


def key_length(key_count: int) -> int:
    """VARCHAR length of each key column: 255, shorter when many key columns would pass the index limit."""
    return min(255, MAX_KEY_BYTES // (4 * max(1, key_count)))


def value_type(value: object) -> str | None:
    """The narrowest column type that holds `value` (None for NULL: no type information)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, int):
        return "BIGINT" if abs(value) <= values.BIGINT_MAX else "TEXT"
    if isinstance(value, float):
        return "DOUBLE" if value == value and abs(value) != float("inf") else "TEXT"
    if isinstance(value, Decimal):
        return "DOUBLE" if value.is_finite() else "TEXT"
    if isinstance(value, (datetime, date)):
        return "DATETIME(6)"
    size = len(render(value, "TEXT").encode("utf-8"))  # type: ignore[union-attr]
    return next((name for limit, name in _TEXT_LIMITS if size <= limit), "LONGTEXT")


def wider(current: str | None, needed: str | None) -> str | None:
    """The type that holds values of both types (never narrower than `current`)."""
    if current is None or needed is None or current == needed:
        return current or needed
    if current in TEXT_TYPES or needed in TEXT_TYPES:
        return max(current, needed, "TEXT", key=lambda t: _RANK[t])
    if current in _NUMERIC and needed in _NUMERIC:
        return max(current, needed, key=lambda t: _RANK[t])
    return "TEXT"  # a date and a number: only text holds both


def render(value: object, column_type: str | None) -> str | None:
    """The text LOAD DATA stores for `value` in a column of `column_type`."""
    if value is None:
        return None
    if isinstance(value, bool):
        return ("1" if value else "0") if column_type in _NUMERIC else ("true" if value else "false")
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime):
        moment = value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
        return moment.isoformat(sep=" ") if column_type == "DATETIME(6)" else value.isoformat()
    if isinstance(value, (dict, list)):
        return orjson.dumps(value, default=str).decode()
    return str(value)


def managed_type(column_type: str) -> str | None:
    """Our name for a live column type, or None for a type we did not create (never touched)."""
    lowered = column_type.lower()
    if lowered.startswith("tinyint(1)"):
        return "BOOLEAN"
    if lowered.startswith("bigint"):
        return "BIGINT"
    if lowered in ("double", "datetime(6)", "text", "mediumtext", "longtext"):
        return lowered.upper()
    return None


class AutoMapping(Mapping):
    def __init__(self, feed: Feed) -> None:
        if not feed.key_columns:
            raise LakehouseError(f"table feed {feed.name} has no key columns; set key_columns in its catalog entry")
        self.feed_name = feed.name
        self.table = table_name(feed)
        self.key_columns = list(feed.key_columns)
        self._key = values.identifier(key_length(len(self.key_columns)))
        self._columns: dict[str, str | None] | None = None  # live non-key columns -> managed type
        self.max_columns = feed.max_columns
        # value columns the table has or the rows converted since the last `prepare` will add
        self._admitted: set[str] = set()

    @property
    def columns(self) -> dict[str, str | None]:
        """The live value columns, as of the last `prepare`."""
        if self._columns is None:
            raise LakehouseError(f"internal: prepare() the table of feed {self.feed_name} before writing")
        return self._columns

    def convert(self, row: dict) -> tuple[Key, object]:
        key = self.key(tuple(row.get(column) for column in self.key_columns))
        return key, (key, self.payload_of(row))

    def payload_of(self, row: dict) -> dict:
        """The value columns of a row (names checked: they become column names)."""
        payload = {}
        for name, value in row.items():
            if name in self.key_columns:
                continue
            if not name or len(name) > MAX_NAME:
                raise BadRecord(f"column name {name!r} is not 1 to {MAX_NAME} characters")
            if name in SNAPSHOT_COLUMNS:
                raise BadRecord(f"column name {name} is reserved for the warehouse")
            payload[name] = value
        self._admit(payload)
        return payload

    def _admit(self, payload: dict) -> None:
        """A value in a new column makes the table wider; past the feed's max_columns the row is bad instead.

        Rows are admitted in order, so of a batch that brings too many new columns the first rows land.
        Converting after `prepare(warehouse, [])` counts the columns the live table already has.
        """
        new = [name for name, value in payload.items() if value is not None and name not in self._admitted]
        if not new:
            return
        total = len(self.key_columns) + len(SNAPSHOT_COLUMNS) + len(self._admitted) + len(new)
        if total > self.max_columns:
            raise BadRecord(f"new column(s) {', '.join(new)} would give table {self.table} {total} columns, past "
                            f"the feed's max_columns of {self.max_columns} (manage_feeds.py update "
                            f"{self.feed_name} --max-columns N raises it)")
        self._admitted.update(new)

    def key(self, raw_key: tuple) -> Key:
        return tuple(self._key(column, value) for column, value in zip(self.key_columns, raw_key, strict=True))

    def prepare(self, warehouse: Warehouse, payloads: Sequence[object]) -> None:
        needed = self.needed_types(payloads)  # type: ignore[arg-type]
        if self._columns is None or not all(self._fits(name, kind) for name, kind in needed.items()):
            self._columns = run_ddl(warehouse, lambda cursor: self._evolve(cursor, needed))
        self._admitted = set(self._columns)  # rows admitted but superseded in their batch added nothing

    def write(self, cursor: MySQLCursor, payloads: Sequence[object], snapshot: Snapshot) -> int:
        if not payloads:
            return 0
        names = list(self.columns)
        rows = [(*key, *(render(payload.get(n), self.columns[n]) for n in names))  # type: ignore[union-attr]
                for key, payload in payloads]  # type: ignore[misc]
        upsert.replace_rows(cursor, self.table, [*self.key_columns, *names], rows, snapshot.stamp())
        return len(rows)

    def delete(self, cursor: MySQLCursor, keys: Sequence[Key]) -> int:
        return upsert.delete_keys(cursor, self.table, self.key_columns, keys)

    @staticmethod
    def needed_types(payloads: Sequence[tuple[Key, dict]]) -> dict[str, str | None]:
        needed: dict[str, str | None] = {}
        for _key, payload in payloads:
            for name, value in payload.items():
                needed[name] = wider(needed.get(name), value_type(value))
        return {name: kind for name, kind in needed.items() if kind is not None}

    def _fits(self, name: str, kind: str | None) -> bool:
        if name not in self.columns:
            return False
        current = self.columns[name]
        return current is None or wider(current, kind) == current

    def _evolve(self, cursor: MySQLCursor, needed: dict[str, str | None]) -> dict[str, str | None]:
        """Create the table or add / widen columns (under the DDL lock); returns the live columns."""
        live = self._live_columns(cursor)
        if live is None:
            cursor.execute(self._create_sql(needed))
            return self._live_columns(cursor) or {}
        changes = []
        for name, kind in needed.items():
            if name not in live:
                changes.append(f"ADD COLUMN {upsert.quote(name)} {kind} NULL")
            elif live[name] is not None and wider(live[name], kind) != live[name]:
                changes.append(f"MODIFY COLUMN {upsert.quote(name)} {wider(live[name], kind)} NULL")
        if changes:
            cursor.execute(f"ALTER TABLE {upsert.quote(self.table)} {', '.join(changes)}")
            live = self._live_columns(cursor) or {}
        return live

    def _create_sql(self, needed: dict[str, str | None]) -> str:
        length = key_length(len(self.key_columns))
        columns = [f"{upsert.quote(k)} VARCHAR({length}) COLLATE utf8mb4_bin NOT NULL" for k in self.key_columns]
        columns += [f"{upsert.quote(name)} {kind} NULL" for name, kind in needed.items()]
        columns += ["snapshot_date DATE NOT NULL", "snapshot_version INT UNSIGNED NOT NULL",
                    f"PRIMARY KEY ({upsert.column_list(self.key_columns)})"]
        return (f"CREATE TABLE IF NOT EXISTS {upsert.quote(self.table)} (\n  " + ",\n  ".join(columns) +
                "\n) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci")

    def _live_columns(self, cursor: MySQLCursor) -> dict[str, str | None] | None:
        """Value columns of the live table and their managed types; None when the table does not exist."""
        cursor.execute("SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS "
                       "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION", (self.table,))
        rows = cursor.fetchall()
        if not rows:
            return None
        skip = {*self.key_columns, *SNAPSHOT_COLUMNS}
        return {str(name): managed_type(str(kind)) for name, kind in rows if name not in skip}
