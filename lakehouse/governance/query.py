"""The governed read path over the lake: `data_lake_config.py query --as EMAIL "SQL"`, and the API layer to come.

One SQL query runs in an in-process DuckDB (governance.sandbox) over the views of what the user may read now
(governance.lake_views, from their active grants in MySQL). Every query, allowed, refused or failed, becomes one
row of the permissions audit table: the email, the SQL, the feeds it touched, the rows it returned, the outcome
and its reason.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from datetime import datetime
from typing import TextIO

import orjson
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from lakehouse.catalog import FeedCatalog
from lakehouse.errors import LakehouseError
from lakehouse.governance import sandbox
from lakehouse.governance.lake_views import ReadableLake, readable_lake
from lakehouse.governance.permissions import readable_folders, record_query, utc_now, validate_email
from lakehouse.settings import Settings
from lakehouse.storage import LakeStorage
from lakehouse.text_table import render

USER_ENV = "LAKEHOUSE_USER"
FORMATS = ("text", "csv", "json", "parquet")
TEXT_ROWS = 1000  # a text table longer than this is cut; the other formats write every row
PROGRESS_AFTER_S = 2.0


@dataclass(frozen=True)
class QueryOutcome:
    email: str
    outcome: str  # allowed, refused (the SQL reached past the views) or failed (an error in the SQL, no data yet)
    reason: str
    feeds: list[str]  # the views it named
    table: pa.Table | None  # the result, when allowed

    @property
    def rows(self) -> int | None:
        return self.table.num_rows if self.table is not None else None


def user_or_env(given: str | None) -> str:
    """The querying user: --as, else LAKEHOUSE_USER (a .env file may set it)."""
    email = given or os.environ.get(USER_ENV, "")
    if not email:
        raise LakehouseError(f"who is asking? give --as EMAIL or set {USER_ENV}")
    return validate_email(email)


def run_query(settings: Settings, email: str, sql: str, now: datetime | None = None,
              progress: TextIO | None = None, progress_after: float = PROGRESS_AFTER_S) -> QueryOutcome:
    """Run `sql` as `email` over the views they may read at `now` (UTC, naive; default: now), and audit it."""
    email, now = validate_email(email), now or utc_now()
    storage = LakeStorage(settings.data_lake_root)
    lake = readable_lake(storage, FeedCatalog(storage).list(), readable_folders(settings, email, now))
    feeds: list[str] = []
    try:
        connection = sandbox.locked_connection(lake.datasets(storage))
        try:
            sandbox.check_statement(connection, sql)
            feeds = sorted(sandbox.referenced_tables(sql) & lake.all_names())
            _require_readable(lake, feeds, email)
            table = sandbox.run(connection, sql, progress, progress_after)
        finally:
            connection.close()
        outcome = QueryOutcome(email, "allowed", f"returned {_rows(table.num_rows)}", feeds, table)
    except sandbox.Refused as exc:
        outcome = QueryOutcome(email, "refused", str(exc), feeds, None)
    except LakehouseError as exc:
        outcome = QueryOutcome(email, "failed", str(exc), feeds, None)
    record_query(settings, email, sql, feeds, outcome.rows, outcome.outcome, outcome.reason, now)
    return outcome


def _require_readable(lake: ReadableLake, names: list[str], email: str) -> None:
    """A view the user may not read does not exist for them: say which permission is missing."""
    missing = sorted({lake.denied[name] for name in names if name in lake.denied})
    if missing:
        raise sandbox.Refused(f"no read permission on {', '.join(missing)} for {email}")
    empty = [name for name in names if name in lake.empty]
    if empty:
        raise LakehouseError(f"{', '.join(empty)}: nothing landed yet that {email} may read")


# ---------------------------------------------------------------- output
def formatted(table: pa.Table, output_format: str) -> bytes:
    """The result as a text table (at most TEXT_ROWS rows, then the count), CSV, a JSON array of objects, or
    Parquet. Text and CSV show nested values (structs, lists) as JSON."""
    if output_format == "parquet":
        sink = io.BytesIO()
        pq.write_table(table, sink)
        return sink.getvalue()
    if output_format == "json":
        return orjson.dumps(table.to_pylist(), default=str, option=orjson.OPT_NON_STR_KEYS) + b"\n"
    flat = _nested_as_json(table)
    if output_format == "csv":
        sink = io.BytesIO()
        pa_csv.write_csv(flat, sink)
        return sink.getvalue()
    shown = flat.slice(0, TEXT_ROWS)
    text = render(shown.column_names, list(zip(*(column.to_pylist() for column in shown.columns), strict=True)))
    count = _rows(table.num_rows)
    if table.num_rows > TEXT_ROWS:
        count += f", the first {TEXT_ROWS} shown (--format csv|json|parquet --output FILE writes them all)"
    return f"{text}\n{count}\n".encode()


def _rows(count: int) -> str:
    return f"{count} row{'' if count == 1 else 's'}"


def _nested_as_json(table: pa.Table) -> pa.Table:
    for index, column in enumerate(table.columns):
        if pa.types.is_nested(column.type):
            as_json = [None if value is None else orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS)
                       .decode() for value in column.to_pylist()]
            table = table.set_column(index, table.field(index).name, pa.array(as_json, pa.string()))
    return table
