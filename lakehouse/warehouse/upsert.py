"""The bulk write path: rows become a tab-separated file loaded with LOAD DATA LOCAL INFILE.

Rows travel as a `TextTable` (an Arrow table of text columns, NULL = SQL NULL), so a file is made with a
few column-at-once Arrow operations (escape, join fields, join lines) instead of Python code per row.

* `replace_rows`: LOAD DATA ... REPLACE straight into the target. Used for fact and auto-mapped tables
  (nothing references them and a row always carries every column, so REPLACE is an upsert); InnoDB
  updates a row in place when the conflict is on the primary key, so this runs close to a plain load.
* `insert_missing`: LOAD DATA ... IGNORE, for "make sure these dimension keys exist".
* `merge_rows`: LOAD DATA into a session-private staging table, then INSERT ... SELECT ... ON DUPLICATE
  KEY UPDATE, for dimensions (a REPLACE would delete rows the facts reference). A NULL attribute never
  overwrites a known one.

All of them run inside the caller's transaction. Values arrive as text already validated by the
mapping (a TextTable, or rows of text / None for NULL); with LOCAL, the server turns data errors into
warnings, so any warning fails the load instead of silently storing a mangled value.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from mysql.connector.cursor import MySQLCursor

from lakehouse.errors import LakehouseError

Row = Sequence[str | None]
TextTable = pa.Table  # every column a string column, in the order of the target's column list
Constants = dict[str, str]  # column -> the one value of every row
DELETE_CHUNK = 1_000
_DUPLICATE_KEY = 1062
LOAD_CHUNK = 100_000  # rows per LOAD DATA statement of one bulk write
_NULL = "\\N"
_SPECIAL_BYTES = np.zeros(256, dtype=bool)
_SPECIAL_BYTES[[ord(c) for c in "\\\t\n\r\0"]] = True  # what LOAD DATA's default format escapes with a backslash
_NO_TEXT = pa.scalar("", pa.string())
_ESCAPES = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"), ("\0", "\\0"))  # backslash first


def quote(identifier: str) -> str:
    """A backtick-quoted identifier (names come from feeds and records, so never trust them bare)."""
    return "`" + identifier.replace("`", "``") + "`"


def column_list(columns: Iterable[str]) -> str:
    return ", ".join(quote(column) for column in columns)


def text_table(columns: Sequence[str], rows: Sequence[Row]) -> TextTable:
    """Rows of text (None = NULL) as a TextTable."""
    values = list(zip(*rows, strict=True)) if rows else [()] * len(columns)
    return pa.table({name: pa.array(column, pa.string()) for name, column in zip(columns, values, strict=True)})


def tsv(table: TextTable) -> pa.Buffer:
    """LOAD DATA's default format: tab between fields, newline after each row, backslash escapes, \\N = NULL."""
    fields = [pc.fill_null(_escaped(column.combine_chunks()), _NULL) for column in table.columns]
    lines = pc.binary_join_element_wise(*fields, "\t")
    lines = pc.binary_join_element_wise(lines, _NO_TEXT, "\n")  # "line" + "\n" + "": every line ends with \n
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)[lines.offset:lines.offset + len(lines) + 1]
    return lines.buffers()[2][int(offsets[0]):int(offsets[-1])]


def write_tsv(path: str, rows: TextTable) -> str:
    with open(path, "wb") as handle:
        handle.write(tsv(rows))
    return path


def load_file(cursor: MySQLCursor, path: str, table: str, columns: Sequence[str], mode: str = "",
              constants: Constants | None = None) -> int:
    """LOAD DATA LOCAL INFILE of a file already in that format; returns the server's affected-row count.

    `constants` are columns with one value for every row (snapshot stamps): set by the statement, not sent per row.
    """
    assignments = ", ".join(f"{quote(column)} = {_literal(value)}" for column, value in (constants or {}).items())
    cursor.execute(f"LOAD DATA LOCAL INFILE {_literal(path)} {mode} INTO TABLE {quote(table)} "
                   f"CHARACTER SET utf8mb4 ({column_list(columns)})" + (f" SET {assignments}" if assignments else ""))
    affected = cursor.rowcount
    _fail_on_warnings(cursor, table, mode)
    return affected


class StagedRows:
    """Rows being written to LOAD DATA files, chunk by chunk, by a background thread from the moment it is made.

    Made before the statements that must precede the load (a dimension merge), it overlaps serializing with
    them; during the load, chunk N+1 is serialized while the server loads chunk N.
    """

    def __init__(self, rows: TextTable) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="lakehouse-load-")
        self._writer = ThreadPoolExecutor(max_workers=1)  # one worker: chunks are ready in order
        self._chunks = [self._writer.submit(write_tsv, os.path.join(self._folder.name, f"{start:012d}.tsv"),
                                            rows.slice(start, LOAD_CHUNK))
                        for start in range(0, rows.num_rows, LOAD_CHUNK)]

    def load(self, cursor: MySQLCursor, table: str, columns: Sequence[str], mode: str = "",
             constants: Constants | None = None) -> int:
        return sum(load_file(cursor, chunk.result(), table, columns, mode, constants) for chunk in self._chunks)

    def __enter__(self) -> StagedRows:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._writer.shutdown(cancel_futures=True)  # after a failed load the transaction is lost: stop writing
        self._folder.cleanup()


def load_rows(cursor: MySQLCursor, table: str, columns: Sequence[str], rows: TextTable | Sequence[Row],
              mode: str = "", constants: Constants | None = None) -> int:
    if not isinstance(rows, pa.Table):
        rows = text_table(columns, rows)
    if not rows.num_rows:
        return 0
    with StagedRows(rows) as staged:
        return staged.load(cursor, table, columns, mode, constants)


def replace_rows(cursor: MySQLCursor, table: str, columns: Sequence[str], rows: TextTable | Sequence[Row],
                 constants: Constants | None = None) -> int:
    return load_rows(cursor, table, columns, rows, "REPLACE", constants)


def insert_missing(cursor: MySQLCursor, table: str, columns: Sequence[str], rows: TextTable | Sequence[Row]) -> int:
    return load_rows(cursor, table, columns, rows, "IGNORE")


def merge_rows(cursor: MySQLCursor, table: str, key_columns: Sequence[str], columns: Sequence[str],
               rows: TextTable | Sequence[Row]) -> None:
    """Insert new keys, update the given attributes of existing ones (NULL keeps the stored value)."""
    if not len(rows):
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


@contextmanager
def foreign_key_checks_off(cursor: MySQLCursor) -> Iterator[None]:
    """For loads whose references the caller has just guaranteed (and locked) itself, in this transaction."""
    cursor.execute("SET SESSION foreign_key_checks = 0")
    try:
        yield
    finally:
        cursor.execute("SET SESSION foreign_key_checks = 1")


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


def _escaped(column: pa.Array) -> pa.Array:
    if not _has_special(column):  # the usual case: nothing to escape
        return column
    for special, escaped in _ESCAPES:
        column = pc.replace_substring(column, special, escaped)
    return column


def _has_special(column: pa.Array) -> bool:
    """Whether any value holds a byte LOAD DATA's format escapes (one table lookup per byte of the values)."""
    if column.null_count == len(column) or column.buffers()[2] is None:
        return False
    offsets = np.frombuffer(column.buffers()[1], dtype=np.int32)
    data = np.frombuffer(column.buffers()[2], dtype=np.uint8)
    return bool(_SPECIAL_BYTES[data[offsets[column.offset]:offsets[column.offset + len(column)]]].any())


def _literal(value: str) -> str:
    """A SQL string literal (file paths, and `constants`, which the project makes: dates and numbers)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


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
