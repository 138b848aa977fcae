"""The bulk write path: rows become a tab-separated file loaded with LOAD DATA LOCAL INFILE.

* `replace_rows`: LOAD DATA ... REPLACE straight into the target. Used for fact and auto-mapped tables
  (nothing references them and a row always carries every column, so REPLACE is an upsert); InnoDB
  updates a row in place when the conflict is on the primary key, so this runs close to a plain load.
* `insert_missing`: LOAD DATA ... IGNORE, for "make sure these dimension keys exist".
* `merge_rows`: LOAD DATA into a session-private staging table, then INSERT ... SELECT ... ON DUPLICATE
  KEY UPDATE, for dimensions (a REPLACE would delete rows the facts reference). A NULL attribute never
  overwrites a known one.

All of them run inside the caller's transaction. Values arrive as text already validated by the
mapping (or None for NULL); with LOCAL, the server turns data errors into warnings, so any warning
fails the load instead of silently storing a mangled value.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

from mysql.connector.cursor import MySQLCursor

from lakehouse.errors import LakehouseError

Row = Sequence[str | None]
DELETE_CHUNK = 1_000
_DUPLICATE_KEY = 1062
LOAD_CHUNK = 50_000  # rows per LOAD DATA statement of one bulk write
_NULL = "\\N"
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\0": "\\0"})
_SPECIAL = re.compile("[\\\\\t\n\r\0]")


def quote(identifier: str) -> str:
    """A backtick-quoted identifier (names come from feeds and records, so never trust them bare)."""
    return "`" + identifier.replace("`", "``") + "`"


def column_list(columns: Iterable[str]) -> str:
    return ", ".join(quote(column) for column in columns)


def _line(row: Row) -> str:
    fields = [_NULL if value is None else value for value in row]
    if _SPECIAL.search("".join(fields)):  # rare: escape only rows that need it
        fields = [_NULL if value is None else value.translate(_ESCAPES) for value in row]
    return "\t".join(fields)


def write_tsv(path: str, rows: Iterable[Row]) -> int:
    """LOAD DATA's default format: tab between fields, newline between rows, backslash escapes, \\N = NULL."""
    count = 0
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        for chunk in _chunks(rows, LOAD_CHUNK):
            handle.write("\n".join(map(_line, chunk)) + "\n")
            count += len(chunk)
    return count


def load_file(cursor: MySQLCursor, path: str, table: str, columns: Sequence[str], mode: str = "") -> int:
    """LOAD DATA LOCAL INFILE of a file already in that format; returns the server's affected-row count."""
    literal = path.replace("\\", "\\\\").replace("'", "\\'")
    cursor.execute(f"LOAD DATA LOCAL INFILE '{literal}' {mode} INTO TABLE {quote(table)} "
                   f"CHARACTER SET utf8mb4 ({column_list(columns)})")
    affected = cursor.rowcount
    _fail_on_warnings(cursor, table, mode)
    return affected


def load_rows(cursor: MySQLCursor, table: str, columns: Sequence[str], rows: Sequence[Row],
              mode: str = "") -> int:
    """Load `rows` in chunks; the server loads one chunk while the next one is being serialized."""
    if not rows:
        return 0
    with tempfile.TemporaryDirectory(prefix="lakehouse-load-") as folder, \
            ThreadPoolExecutor(max_workers=1) as loader:  # one worker: the loads stay in order, on one connection
        pending = []
        for index, chunk in enumerate(_chunks(rows, LOAD_CHUNK)):
            path = os.path.join(folder, f"{index:06d}.tsv")
            write_tsv(path, chunk)
            pending.append(loader.submit(load_file, cursor, path, table, columns, mode))
            if any(future.done() and future.exception() for future in pending):
                break  # a load failed: the transaction is lost anyway, stop serializing
        return sum(future.result() for future in pending)


def replace_rows(cursor: MySQLCursor, table: str, columns: Sequence[str], rows: Sequence[Row]) -> int:
    return load_rows(cursor, table, columns, rows, "REPLACE")


def insert_missing(cursor: MySQLCursor, table: str, columns: Sequence[str], rows: Sequence[Row]) -> int:
    return load_rows(cursor, table, columns, rows, "IGNORE")


def merge_rows(cursor: MySQLCursor, table: str, key_columns: Sequence[str], columns: Sequence[str],
               rows: Sequence[Row]) -> None:
    """Insert new keys, update the given attributes of existing ones (NULL keeps the stored value)."""
    if not rows:
        return
    stage = f"_stage_{table}"
    # Temporary tables are private to the session and do not end the transaction (unlike other DDL).
    cursor.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {quote(stage)} LIKE {quote(table)}")
    cursor.execute(f"DELETE FROM {quote(stage)}")
    load_rows(cursor, stage, columns, rows, "REPLACE")
    updates = ", ".join(f"{quote(table)}.{quote(c)} = COALESCE(VALUES({quote(c)}), {quote(table)}.{quote(c)})"
                        for c in columns if c not in key_columns)
    cursor.execute(f"INSERT INTO {quote(table)} ({column_list(columns)}) "
                   f"SELECT {column_list(columns)} FROM {quote(stage)} "
                   f"ON DUPLICATE KEY UPDATE {updates or _noop_update(key_columns[0], table)}")


def delete_keys(cursor: MySQLCursor, table: str, key_columns: Sequence[str], keys: Sequence[Sequence[object]]) -> int:
    """DELETE the rows with these primary keys; returns how many existed."""
    deleted = 0
    for start in range(0, len(keys), DELETE_CHUNK):
        chunk = keys[start:start + DELETE_CHUNK]
        row_marker = "(" + ", ".join(["%s"] * len(key_columns)) + ")"
        cursor.execute(f"DELETE FROM {quote(table)} WHERE ({column_list(key_columns)}) IN "
                       f"({', '.join([row_marker] * len(chunk))})",
                       [value for key in chunk for value in key])
        deleted += cursor.rowcount
    return deleted


def _chunks(rows: Iterable[Row], size: int) -> Iterator[list[Row]]:
    chunk: list[Row] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _noop_update(column: str, table: str) -> str:
    return f"{quote(table)}.{quote(column)} = {quote(table)}.{quote(column)}"


def _fail_on_warnings(cursor: MySQLCursor, table: str, mode: str) -> None:
    if not cursor.warning_count:
        return
    cursor.execute("SHOW WARNINGS")
    # IGNORE exists to skip keys already present: those duplicates are the expected outcome, not a problem.
    problems = [w for w in cursor.fetchall() if not (mode == "IGNORE" and w[1] == _DUPLICATE_KEY)]
    if problems:
        details = "; ".join(f"{level} {code}: {message}" for level, code, message in problems[:3])
        raise LakehouseError(f"loading {table} produced {len(problems)} warning(s), nothing committed: {details}")
