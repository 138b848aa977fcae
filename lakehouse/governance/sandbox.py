"""An in-process DuckDB that can read the views it is given and nothing else.

The lock is DuckDB's own: the connection starts with external access disabled (no file, URL, ATTACH, COPY,
EXPORT, INSTALL or LOAD; with no allowed directory at all, since the views are Arrow datasets read through
LakeStorage), no scans of Python variables, no extension autoloading, and its configuration locked, so no SET,
RESET or PRAGMA can undo any of it. On top, before anything runs, DuckDB's parser must find exactly one statement
and it must be a query: statements that would only fail on the lock are refused with a clear reason instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TextIO

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds

from lakehouse.errors import LakehouseError

LOCKED_SETTINGS: dict[str, object] = {
    "enable_external_access": False,  # no files, URLs, databases or extensions from the SQL
    "python_enable_replacements": False,  # no Python variable of this process becomes a table
    "autoload_known_extensions": False,
    "autoinstall_known_extensions": False,
    "allow_community_extensions": False,
    "lock_configuration": True,  # last: nothing above can be changed back
}
QUERY_STATEMENTS = (duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN)  # SELECT covers DESCRIBE, SHOW
_LOCKED_MESSAGE = "the configuration has been locked"


class Refused(LakehouseError):
    """The SQL tried to reach past the views (or to change the sandbox): refused, with the reason."""


def locked_connection(views: Mapping[str, ds.Dataset]) -> duckdb.DuckDBPyConnection:
    """A fresh in-memory DuckDB, locked as above, in which `views` are the only tables."""
    connection = duckdb.connect(":memory:", config=LOCKED_SETTINGS)
    for name, dataset in views.items():
        connection.register(name, dataset)
    return connection


def check_statement(connection: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Refuse anything but exactly one query, by DuckDB's own parser."""
    try:
        statements = connection.extract_statements(sql)
    except duckdb.Error as exc:
        raise refusal_or_error(exc) from None
    if not statements:
        raise LakehouseError("the query is empty")
    if len(statements) > 1:
        raise Refused(f"one statement per query, got {len(statements)}")
    kind = statements[0].type
    if kind not in QUERY_STATEMENTS:
        raise Refused(f"only a query (SELECT) may run here, not {kind.name}")


def referenced_tables(sql: str) -> set[str]:
    """The table and view names the SQL reads (CTE names excluded), lower-cased. Asked of an empty locked
    connection, where DuckDB reports every name (it leaves out the ones a connection resolves); a table function
    with a path is bound on the way, so a file or URL read is refused here already."""
    with duckdb.connect(":memory:", config=LOCKED_SETTINGS) as empty:
        try:
            return {name.lower() for name in empty.get_table_names(sql)}
        except duckdb.PermissionException as exc:
            raise refusal_or_error(exc) from None
        except duckdb.Error:
            return set()  # e.g. SHOW of a name: running the query reports the error in full


def run(connection: duckdb.DuckDBPyConnection, sql: str, progress: TextIO | None = None,
        progress_after: float = 2.0) -> pa.Table:
    """The query's result; a progress line on `progress` while it runs longer than `progress_after` seconds."""
    try:
        with progress_line(progress, progress_after):
            return connection.sql(sql).to_arrow_table()
    except duckdb.Error as exc:
        raise refusal_or_error(exc) from None


def refusal_or_error(exc: duckdb.Error) -> LakehouseError:
    """DuckDB's refusals (a file, URL or extension reached for, a locked setting) as Refused, anything else (a
    syntax error, an unknown column) as a LakehouseError; both on one line."""
    text = " ".join(str(exc).split())
    if isinstance(exc, duckdb.PermissionException) or _LOCKED_MESSAGE in text:
        return Refused(f"only the lake views may be read ({text})")
    return LakehouseError(text)


@contextmanager
def progress_line(stream: TextIO | None, after: float, every: float = 2.0) -> Iterator[None]:
    """While the body runs: after `after` seconds, then every `every` seconds, one line saying how long the
    query has run (rewritten in place on a terminal)."""
    if stream is None:
        yield
        return
    done, started = threading.Event(), time.monotonic()
    terminal = stream.isatty()
    start_of_line, end_of_line = ("\r", "") if terminal else ("", "\n")

    def report() -> None:
        wait, shown = after, False
        while not done.wait(wait):
            print(f"{start_of_line}query running for {time.monotonic() - started:.0f} s ...", end=end_of_line,
                  file=stream, flush=True)
            wait, shown = every, True
        if shown and terminal:
            print(file=stream, flush=True)

    reporter = threading.Thread(target=report, name="query-progress", daemon=True)
    reporter.start()
    try:
        yield
    finally:
        done.set()
        reporter.join()
