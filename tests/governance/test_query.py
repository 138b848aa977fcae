"""`data_lake_config.py query` on real MariaDB grants, a real lake and real DuckDB: each user sees exactly what their
grants cover now, nothing reaches past the views, and every query is in the audit table."""

from __future__ import annotations

import shlex
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import mysql.connector
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support import REPO, base_env, run_script

from lakehouse.catalog import FeedCatalog
from lakehouse.governance import permissions, query
from lakehouse.lake import commit, lineage, snapshots
from lakehouse.lake.decode import FeedDecoder
from lakehouse.lake.metadata import FeedMetadata
from lakehouse.produce.events import GeneratorOptions, generate_events, serialize
from lakehouse.settings import Settings
from lakehouse.storage import LakeStorage

NOVEMBER = "streams/transaction_stream/year=2026/month=11"
COUNT = "SELECT count(*) AS n FROM transaction_stream"
LANDED_AT = datetime(2026, 11, 3, tzinfo=UTC)


@dataclass(frozen=True)
class Governed:
    settings: Settings
    env: dict[str, str]
    storage: LakeStorage
    events: list[dict]

    def grant(self, email: str, folder: str, expires: date | None = None) -> None:
        permissions.grant(self.settings, email, folder, "read", "security@example.com", expires)

    def ask(self, email: str, sql: str, now: datetime | None = None) -> query.QueryOutcome:
        return query.run_query(self.settings, email, sql, now)

    def script(self, *args: str, **env: str):
        return run_script("data_lake_config.py", "query", *args, env={**self.env, **env})


def _land_events(storage: LakeStorage, events: list[dict]) -> None:
    """The events as the lake consumer lands them (decoded, stamped, one file per day, committed), without Kafka."""
    feed = FeedCatalog(storage).get("transaction_stream")
    table, _good, bad = FeedDecoder(feed, FeedMetadata(storage, feed.name)).decode([serialize(e) for e in events])
    assert not bad
    rows = table.num_rows
    table, days, fallback = lineage.stamp_rows(
        table, feed.timestamp_field, feed.topic, pa.array([0] * rows, pa.int32()), pa.array(range(rows), pa.int64()),
        pa.array([0] * rows, pa.int64()), LANDED_AT)
    item = commit.PartitionCommit(feed=feed.name, topic=feed.topic, partition=0, start_offset=0, next_offset=rows)
    for (_partition, day), (day_rows, _fallbacks) in lineage.split_by_partition_and_day(table, days, fallback).items():
        first_offset = day_rows.column("_offset")[0].as_py()
        item.stage(storage, commit.stream_file(feed.name, day, feed.topic, 0, first_offset), day_rows)
    item.counts = {"consumed": rows, "landed": rows, "files": len(item.renames)}
    assert commit.commit_partitions(storage, [item]) == []


def _land_top_products(storage: LakeStorage, events: list[dict]) -> None:
    """Two versions of product_purchase_counts: the first half of the events, then all of them (current)."""
    feed = FeedCatalog(storage).get("product_purchase_counts")
    for part in (events[: len(events) // 2], events):
        counts: dict[str, dict] = {}
        for event in part:
            if event["transaction_type"] == "purchase":
                product = event["product"]
                row = counts.setdefault(product["product_id"], {
                    "product_id": product["product_id"], "product_name": product["name"],
                    "product_category": product["category"], "purchase_count": 0, "total_revenue": Decimal(0)})
                row["purchase_count"] += 1
                row["total_revenue"] += Decimal(str(event["amount"]))
        snapshots.write_snapshot(storage, feed, [{**row, "total_revenue": float(row["total_revenue"])}
                                                 for row in counts.values()])


@pytest.fixture(scope="module")
def governed(stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Governed]:
    """One lake (2,000 events from 2026-10-30 to 2026-11-02, two table versions) and one scratch warehouse for the
    module; each test works with emails of its own."""
    database = f"{stack_settings.mysql_database}_t{uuid.uuid4().hex[:10]}"
    server = {**stack_settings.mysql_params(), "database": None}
    with mysql.connector.connect(**server) as conn:
        conn.cursor().execute(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    lake_root = tmp_path_factory.mktemp("lake")
    settings = replace(stack_settings, mysql_database=database, data_lake_root=str(lake_root))
    storage = LakeStorage(lake_root)
    FeedCatalog(storage).init()
    events = list(generate_events(GeneratorOptions(messages=2000, seed=19, users=50, start=date(2026, 10, 30),
                                                   days=4)))
    _land_events(storage, events)
    _land_top_products(storage, events)
    env = base_env(MYSQL_HOST=settings.mysql_host, MYSQL_PORT=str(settings.mysql_port), MYSQL_USER=settings.mysql_user,
                   MYSQL_PASSWORD=settings.mysql_password, MYSQL_DATABASE=database, DATA_LAKE_ROOT=str(lake_root))
    yield Governed(settings, env, storage, events)
    with mysql.connector.connect(**server) as conn:
        conn.cursor().execute(f"DROP DATABASE IF EXISTS `{database}`")


def _audit(settings: Settings, email: str) -> list[tuple]:
    with mysql.connector.connect(**settings.mysql_params()) as conn:
        cursor = conn.cursor()
        cursor.execute(f"SELECT query_text, feeds, rows_returned, outcome, reason FROM {permissions.AUDIT_TABLE} "
                       "WHERE action = 'query' AND user_email = %s ORDER BY id", (email,))
        return cursor.fetchall()


def test_a_november_reader_sees_exactly_the_november_rows_of_the_lake(governed: Governed, tmp_path: Path) -> None:
    governed.grant("nora@example.com", NOVEMBER)
    in_lake = sum(governed.storage.parquet_row_count(path)
                  for path in commit.stream_files(governed.storage, "transaction_stream") if path.startswith(NOVEMBER))
    assert in_lake == sum(event["timestamp"].startswith("2026-11") for event in governed.events)
    assert 0 < in_lake < len(governed.events)

    shown = governed.script("--as", "nora@example.com",
                            "SELECT count(*) AS n, min(month) AS first, max(month) AS last FROM transaction_stream")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[2].split() == [str(in_lake), "11", "11"]
    assert governed.ask("nora@example.com", f"{COUNT} WHERE month = 10").table.to_pylist() == [{"n": 0}]

    output = tmp_path / "n.parquet"
    written = governed.script("--as", "nora@example.com", "--format", "parquet", "--output", str(output),
                              "SELECT transaction_id, amount, month FROM transaction_stream")
    assert written.returncode == 0, written.stderr
    assert written.stdout.strip() == f"{in_lake} rows written to {output} (parquet)"
    assert pq.read_table(output).num_rows == in_lake


def test_a_user_without_a_grant_gets_one_line_naming_the_missing_permission(governed: Governed) -> None:
    refused = governed.script(COUNT, LAKEHOUSE_USER="bob@example.com")  # --as defaults to LAKEHOUSE_USER
    assert refused.returncode == 1
    assert refused.stderr == "refused: no read permission on streams/transaction_stream for bob@example.com\n"
    assert refused.stdout == ""


def test_after_revoke_or_past_expiry_the_same_query_is_refused(governed: Governed) -> None:
    governed.grant("eve@example.com", "streams/transaction_stream", expires=date(2030, 1, 1))
    assert governed.ask("eve@example.com", COUNT, now=datetime(2029, 12, 31, 23, 59)).outcome == "allowed"
    expired = governed.ask("eve@example.com", COUNT, now=datetime(2030, 1, 1))
    assert (expired.outcome, expired.reason) == (
        "refused", "no read permission on streams/transaction_stream for eve@example.com")

    governed.grant("rex@example.com", NOVEMBER)
    assert governed.ask("rex@example.com", COUNT).outcome == "allowed"
    revoked = run_script("permissions_manager.py", "revoke", "--email", "rex@example.com", "--folder", NOVEMBER,
                         env=governed.env)
    assert revoked.returncode == 0, revoked.stderr
    refused = governed.ask("rex@example.com", COUNT)
    assert (refused.outcome, refused.reason) == (
        "refused", "no read permission on streams/transaction_stream for rex@example.com")


ESCAPES = {
    "read-parquet-of-the-lake": "SELECT count(*) FROM read_parquet('{lake}/streams/transaction_stream/**/*.parquet')",
    "read-parquet-relative": "SELECT * FROM read_parquet('streams/transaction_stream/*/*/*/*.parquet')",
    "read-csv-absolute": "SELECT * FROM read_csv('/etc/passwd')",
    "read-json-catalog": "SELECT * FROM read_json('{lake}/_catalog/feeds/transaction_stream.json')",
    "read-text-dotdot": "SELECT * FROM read_text('../../../etc/hostname')",
    "glob": "SELECT * FROM glob('{lake}/**')",
    "quoted-path-in-from": "SELECT * FROM '{lake}/tables/product_purchase_counts/version=1/part-00000.parquet'",
    "quoted-dotdot-path-in-from": "SELECT * FROM '../lake/streams/transaction_stream/year=2026/month=10/*/*.parquet'",
    "url": "SELECT * FROM read_parquet('https://example.com/lake.parquet')",
    "s3-url": "SELECT * FROM 's3://bucket/lake/streams/x.parquet'",
    "path-in-a-subquery-string": "SELECT * FROM query('SELECT * FROM read_csv(''/etc/passwd'')')",
    "attach-file": "ATTACH '{tmp}/other.duckdb' AS other",
    "attach-memory": "ATTACH ':memory:' AS scratch",
    "copy-to": "COPY (SELECT * FROM transaction_stream) TO '{tmp}/out.csv'",
    "export-database": "EXPORT DATABASE '{tmp}/export'",
    "install-extension": "INSTALL httpfs",
    "load-extension": "LOAD httpfs",
    "set-external-access": "SET enable_external_access = true",
    "reset-lock": "RESET lock_configuration",
    "pragma": "PRAGMA enable_profiling",
    "call": "CALL pragma_version()",
    "create-view-over-a-file": "CREATE VIEW transaction_stream AS SELECT * FROM read_csv('/etc/passwd')",
    "multiple-statements": "SELECT 1; SELECT * FROM read_csv('/etc/passwd')",
    "multiple-statements-all-harmless": "SELECT count(*) FROM transaction_stream; SELECT 1",
}


@pytest.mark.parametrize("sql", list(ESCAPES.values()), ids=list(ESCAPES))
def test_every_way_out_of_the_views_is_refused(governed: Governed, tmp_path: Path, sql: str) -> None:
    governed.grant("mallory@example.com", ".")  # the whole lake: still only through the views
    attempt = sql.format(lake=governed.storage.local_root, tmp=tmp_path)

    refused = governed.ask("mallory@example.com", attempt)

    assert (refused.outcome, refused.table) == ("refused", None), refused.reason
    assert refused.reason and "\n" not in refused.reason
    assert list(tmp_path.iterdir()) == []  # nothing attached, copied or exported
    assert _audit(governed.settings, "mallory@example.com")[-1][0] == attempt


def test_every_query_is_audited_refused_and_failed_ones_included(governed: Governed) -> None:
    governed.grant("audrey@example.com", NOVEMBER)
    governed.grant("audrey@example.com", "tables/product_purchase_counts")
    top = "SELECT * FROM product_purchase_counts ORDER BY purchase_count DESC LIMIT 3"
    asked = [governed.ask("audrey@example.com", sql) for sql in (
        top, "SELECT * FROM transaction_stream_anonymized", "SELECT * FROM read_csv('/etc/passwd')", "SELEC 1")]
    script = governed.script("--as", "audrey@example.com", "SELECT count(*) FROM product_purchase_counts_versions")
    assert script.returncode == 0, script.stderr

    audit = _audit(governed.settings, "audrey@example.com")
    assert [row[:4] for row in audit] == [
        (top, "product_purchase_counts", 3, "allowed"),
        ("SELECT * FROM transaction_stream_anonymized", "transaction_stream_anonymized", None, "refused"),
        ("SELECT * FROM read_csv('/etc/passwd')", "", None, "refused"),
        ("SELEC 1", "", None, "failed"),
        ("SELECT count(*) FROM product_purchase_counts_versions", "product_purchase_counts_versions", 1, "allowed"),
    ]
    assert [row[4] for row in audit[:4]] == [outcome.reason for outcome in asked]
    assert audit[1][4] == "no read permission on streams/transaction_stream_anonymized for audrey@example.com"
    assert "Permission Error" in audit[2][4] and "syntax error" in audit[3][4]


def test_the_readme_examples_run(governed: Governed) -> None:
    """README's governed queries (a month's totals by currency, a user's history, the current top products) run as
    written for a user who may read the lake."""
    governed.grant("ada@example.com", "streams/transaction_stream")
    governed.grant("ada@example.com", "tables/product_purchase_counts")
    examples = [shlex.split(line, comments=True)[-1] for line in (REPO / "README.md").read_text().splitlines()
                if line.startswith("python data_lake_config.py query ")]
    assert len(examples) >= 3
    for sql in examples:
        outcome = governed.ask("ada@example.com", sql)
        assert outcome.outcome == "allowed" and outcome.rows, (sql, outcome.reason)


@pytest.mark.parametrize("lake_root", ["s3"], indirect=True)
def test_a_november_reader_of_an_s3_lake_sees_exactly_its_november_rows(governed: Governed, lake_root: str) -> None:
    storage = LakeStorage(lake_root)
    FeedCatalog(storage).init()
    _land_events(storage, governed.events)
    governed.grant("sam@example.com", NOVEMBER)
    on_s3 = replace(governed.settings, data_lake_root=lake_root)
    november = sum(event["timestamp"].startswith("2026-11") for event in governed.events)

    asked = query.run_query(on_s3, "sam@example.com", f"{COUNT} WHERE month = 11")
    assert asked.table.to_pylist() == [{"n": november}]
    assert query.run_query(on_s3, "sam@example.com", f"{COUNT} WHERE month = 10").table.to_pylist() == [{"n": 0}]
    refused = query.run_query(on_s3, "nobody@example.com", COUNT)
    assert refused.outcome == "refused" and refused.table is None
