"""The governed query's parts without a service: DuckDB's own lock, the views a set of grants gives, the progress
line and the output formats (tests/governance/test_query.py runs the whole command against MariaDB)."""

from __future__ import annotations

import io
import json
import time
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakehouse import layout
from lakehouse.catalog import FeedCatalog
from lakehouse.governance import lake_views, query, sandbox
from lakehouse.lake import commit, snapshots
from lakehouse.storage import LakeStorage

NOVEMBER = "streams/transaction_stream/year=2026/month=11"


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> LakeStorage:
    """Three days of transaction_stream (two in November) and two versions of product_purchase_counts (read only:
    each test that adds files adds only files no view shows)."""
    storage = LakeStorage(tmp_path_factory.mktemp("lake"))
    FeedCatalog(storage).init()
    for offset, (day, rows) in enumerate({"2026-10-31": 3, "2026-11-01": 5, "2026-11-02": 7}.items()):
        folder = f"streams/transaction_stream/{layout.date_partition(date.fromisoformat(day))}"
        storage.write_parquet(f"{folder}/{layout.batch_file_name('transaction_stream', 0, offset)}",
                              pa.table({"amount": [1.5] * rows}))
    counts = FeedCatalog(storage).get("product_purchase_counts")
    snapshots.write_snapshot(storage, counts, [{"product_id": "p1", "purchase_count": 3}])
    snapshots.write_snapshot(storage, counts, [{"product_id": "p1", "purchase_count": 4},
                                               {"product_id": "p2", "purchase_count": 1}])
    return storage


def _views(storage: LakeStorage, folders: list[str]) -> lake_views.ReadableLake:
    return lake_views.readable_lake(storage, FeedCatalog(storage).list(), folders)


def _scalar(storage: LakeStorage, readable: lake_views.ReadableLake, sql: str) -> object:
    with sandbox.locked_connection(readable.datasets(storage)) as connection:
        return connection.sql(sql).fetchall()[0][0]


def test_a_grant_on_a_month_shows_that_month_only(lake: LakeStorage) -> None:
    readable = _views(lake, [NOVEMBER])
    assert set(readable.views) == {"transaction_stream"}
    assert _scalar(lake, readable, "SELECT count(*) FROM transaction_stream") == 12
    assert _scalar(lake, readable, "SELECT list(DISTINCT day ORDER BY day) FROM transaction_stream") == [1, 2]
    assert readable.denied["product_purchase_counts"] == "tables/product_purchase_counts"
    assert readable.denied["transaction_stream_anonymized"] == "streams/transaction_stream_anonymized"


def test_the_whole_lake_shows_every_feed_with_data_and_table_versions(lake: LakeStorage) -> None:
    readable = _views(lake, ["."])
    assert readable.denied == {}
    assert _scalar(lake, readable, "SELECT count(*) FROM transaction_stream") == 15
    assert _scalar(lake, readable, "SELECT sum(purchase_count) FROM product_purchase_counts") == 5
    assert _scalar(lake, readable, "SELECT list(DISTINCT version ORDER BY version) "
                                   "FROM product_purchase_counts_versions") == [1, 2]
    assert "transaction_flattened" in readable.empty  # nothing landed: no columns to show yet


def test_a_grant_on_an_old_version_does_not_open_the_current_one(lake: LakeStorage) -> None:
    readable = _views(lake, ["tables/product_purchase_counts/version=1"])
    assert readable.denied["product_purchase_counts"] == "tables/product_purchase_counts/version=2"
    assert _scalar(lake, readable, "SELECT max(version) FROM product_purchase_counts_versions") == 1


def test_no_grant_means_no_view_at_all(lake: LakeStorage) -> None:
    readable = _views(lake, [])
    assert readable.views == {}
    assert readable.denied["transaction_stream"] == "streams/transaction_stream"
    assert readable.denied["product_purchase_counts_versions"] == "tables/product_purchase_counts"


def test_stream_views_read_only_published_files(lake: LakeStorage) -> None:
    """Staged files (the commit protocol's _staging) and hidden temp files are not data yet."""
    lake.write_parquet(f"{commit.STAGING}/t+0/x.parquet", pa.table({"amount": [9.0]}))
    lake.write_parquet(f"{NOVEMBER}/day=3/.part.tmp-1.parquet", pa.table({"amount": [9.0]}))
    assert _scalar(lake, _views(lake, ["."]), "SELECT count(*) FROM transaction_stream") == 15


# ---------------------------------------------------------------- DuckDB's own lock, without our statement checks
@pytest.mark.parametrize("statement, error", [
    ("SET enable_external_access = true", duckdb.InvalidInputException),
    ("RESET lock_configuration", duckdb.InvalidInputException),
    ("SET allowed_directories = ['/']", duckdb.InvalidInputException),
    ("SET python_enable_replacements = true", duckdb.InvalidInputException),
    ("PRAGMA enable_profiling", duckdb.InvalidInputException),
    ("SELECT * FROM read_csv('/etc/passwd')", duckdb.PermissionException),
    ("SELECT * FROM read_parquet('{lake}/streams/transaction_stream/*/*/*/*.parquet')", duckdb.PermissionException),
    ("SELECT * FROM glob('{lake}/**')", duckdb.PermissionException),
    ("ATTACH '{tmp}/other.duckdb' AS other", duckdb.PermissionException),
    ("COPY (SELECT * FROM transaction_stream) TO '{tmp}/copy.csv'", duckdb.PermissionException),
    ("EXPORT DATABASE '{tmp}/export'", duckdb.PermissionException),
    ("LOAD httpfs", duckdb.PermissionException),
], ids=["set-external-access", "reset-lock", "set-allowed-directories", "set-python-replacements", "pragma",
        "read-csv", "read-parquet-of-the-lake", "glob", "attach-file", "copy-to", "export-database", "load"])
def test_the_duckdb_lock_itself_refuses(lake: LakeStorage, tmp_path: Path, statement: str, error: type) -> None:
    with sandbox.locked_connection(_views(lake, ["."]).datasets(lake)) as connection:
        with pytest.raises(error):
            connection.execute(statement.format(lake=lake.local_root, tmp=tmp_path))
        settings = dict(connection.sql("SELECT name, value FROM duckdb_settings()").fetchall())
        assert settings["enable_external_access"] == "false" and settings["lock_configuration"] == "true"
        assert connection.sql("SELECT count(*) FROM transaction_stream").fetchall() == [(15,)]
    assert list(tmp_path.iterdir()) == []  # nothing attached, copied or exported


def test_python_variables_of_the_process_are_not_tables(lake: LakeStorage) -> None:
    secret = pa.table({"password": ["hunter2"]})  # noqa: F841  (DuckDB would scan it by name without the lock)
    with sandbox.locked_connection({}) as connection, pytest.raises(duckdb.CatalogException):
        connection.execute("SELECT * FROM secret")


# ---------------------------------------------------------------- statement checks, progress, output
@pytest.mark.parametrize("sql", ["SELECT 1; SELECT 2", "CREATE TABLE x AS SELECT 1", "CALL pragma_version()",
                                 "SET VARIABLE x = 1", "ATTACH ':memory:' AS scratch"])
def test_only_one_query_statement_passes_the_parser_check(sql: str) -> None:
    with sandbox.locked_connection({}) as connection, pytest.raises(sandbox.Refused):
        sandbox.check_statement(connection, sql)


def test_a_long_query_shows_a_progress_line() -> None:
    stream = io.StringIO()
    with sandbox.progress_line(stream, after=0.0, every=0.05):
        time.sleep(0.3)
    assert stream.getvalue().startswith("query running for 0 s ...\n")
    quiet = io.StringIO()
    with sandbox.progress_line(quiet, after=60.0):
        pass
    assert quiet.getvalue() == ""


def test_output_formats_write_every_row_and_nested_values_as_json() -> None:
    table = pa.table({"id": [1, 2], "user": [{"user_id": "u1"}, None], "amount": [1.5, None]})
    assert query.formatted(table, "csv").decode().splitlines() == [
        '"id","user","amount"', '1,"{""user_id"":""u1""}",1.5', "2,,"]
    assert json.loads(query.formatted(table, "json")) == [{"id": 1, "user": {"user_id": "u1"}, "amount": 1.5},
                                                         {"id": 2, "user": None, "amount": None}]
    assert pq.read_table(io.BytesIO(query.formatted(table, "parquet"))).equals(table)
    text = query.formatted(table, "text").decode().splitlines()
    assert text[0].split() == ["id", "user", "amount"] and text[2].split() == ["1", '{"user_id":"u1"}', "1.5"]
    assert text[-1] == "2 rows"
    many = query.formatted(pa.table({"n": list(range(query.TEXT_ROWS + 5))}), "text").decode().splitlines()
    assert len(many) == query.TEXT_ROWS + 3 and many[-1].startswith(f"{query.TEXT_ROWS + 5} rows, the first")
