"""Issue 14, "nothing lost, nothing stopped": input that used to stop a script or lose a value, on the real stack.

Each test drives the scripts as a user would (real broker, real MariaDB, real files) and checks that the bad
input is quarantined with its reason, the rest lands, and the script exits 0.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from pathlib import Path

import duckdb
import mysql.connector
import orjson
import pyarrow as pa
import pytest
from support import init_lake, producing, run_script, unique

from lakehouse.catalog import Feed, FeedCatalog, builtin_feeds, validate_feed
from lakehouse.errors import LakehouseError
from lakehouse.kafka import clients
from lakehouse.lake import commit
from lakehouse.lake import schema as lake_schema
from lakehouse.lake.metadata import FeedMetadata
from lakehouse.quarantine import read_quarantine
from lakehouse.settings import Settings
from lakehouse.storage import LakeStorage

STREAM = "transaction_stream"
LAKE_CONSUMER = "kafka_consumer_datalake.py"


# ---------------------------------------------------------------- helpers
def produce_values(settings: Settings, topic: str, values: list[dict | bytes], compacted: bool = False) -> None:
    """JSON values (or raw bytes) to one partition of a topic of this test, in order."""
    clients.ensure_topics(settings, {settings.topic(topic): compacted}, partitions=1)
    with producing(settings) as producer:
        for value in values:
            producer.produce(settings.topic(topic), value=value if isinstance(value, bytes) else orjson.dumps(value),
                             partition=0)


def event(transaction_id: str, **fields: object) -> dict:
    return {"transaction_id": transaction_id, "timestamp": "2026-03-01T10:00:00.000Z", **fields}


def land_stream(env: dict[str, str]) -> None:
    run_script(LAKE_CONSUMER, "--feeds", STREAM, "--until-end", "--group-id", unique("g"), env=env, check=True)


def lake_rows(lake_root: Path, columns: str, feed: str = STREAM) -> list[tuple]:
    files = f"{lake_root}/streams/{feed}/**/*.parquet"
    return duckdb.sql(f"select {columns} from read_parquet('{files}', hive_partitioning=true, union_by_name=true) "
                      "order by all").fetchall()


def quarantine_reasons(storage: LakeStorage, feed: str = STREAM) -> dict[int, str]:
    """offset -> reason of every quarantined record of the feed."""
    return {row["offset"]: row["reason"] for row in read_quarantine(storage, feed).to_pylist()}


# ---------------------------------------------------------------- item 5: int -> double across batches
def test_a_double_after_an_integer_batch_widens_the_column_and_every_file_reads_back(
        env: dict[str, str], settings_for: Settings, lake_root: Path) -> None:
    storage = init_lake(settings_for)

    def purchase(transaction_id: str, amount: float) -> dict:
        return event(transaction_id, amount=amount, transaction_type="purchase", product={"quantity": 1})

    produce_values(settings_for, STREAM, [purchase("t1", 10), purchase("t2", 7)])
    land_stream(env)
    produce_values(settings_for, STREAM, [purchase("t3", 10.5), purchase("t4", 3)])
    land_stream(env)

    assert quarantine_reasons(storage) == {}
    assert lake_rows(lake_root, "transaction_id, amount") == [("t1", 10.0), ("t2", 7.0), ("t3", 10.5), ("t4", 3.0)]
    document = FeedMetadata(storage, STREAM).read()
    assert {"name": "amount", "type": "double"} in document["schema"]
    assert any("column amount: int64 -> double" in entry["changes"] for entry in document["schema_history"])
    # the first file keeps its int64 column; pyarrow reads both files through the feed's schema
    whole = commit.read_stream(storage, STREAM, lake_schema.to_arrow(
        lake_schema.schema_from_json(document["schema"])))
    assert sorted(whole.column("amount").to_pylist()) == [3.0, 7.0, 10.0, 10.5]
    status = run_script("data_lake_config.py", "status", env=env)  # recomputes totals from the raw events
    assert "Traceback" not in status.stderr and status.returncode in (0, 1), status.stderr


# ---------------------------------------------------------------- item 6: epoch timestamps without a calendar date
def test_an_epoch_time_outside_the_calendar_is_quarantined_and_the_rest_lands(
        env: dict[str, str], settings_for: Settings, lake_root: Path) -> None:
    storage = init_lake(settings_for)
    impossible = [10**15, 253402300800000, 10**18, -(10**15)]
    values = [event("t0", timestamp=1772359200000)]  # 2026-03-01T10:00:00Z
    values += [event(f"bad{i}", timestamp=ms) for i, ms in enumerate(impossible)]
    values += [event("t5", timestamp=253402300799999)]  # 9999-12-31T23:59:59.999Z: the last one with a date
    produce_values(settings_for, STREAM, values)

    land_stream(env)  # exit code 0 (check=True), no traceback

    assert quarantine_reasons(storage) == {
        offset: f"timestamp: {ms} (epoch milliseconds) is outside the dates the lake can partition by "
                "(years 1 to 9999)" for offset, ms in enumerate(impossible, start=1)}
    assert lake_rows(lake_root, "transaction_id, make_date(year::int, month::int, day::int)") == [
        ("t0", date(2026, 3, 1)), ("t5", date(9999, 12, 31))]


# ---------------------------------------------------------------- item 7: impossible date strings in the warehouse
SUMMARY = "user_transaction_summary"


def summary_record(user: str, last_transaction_at: str) -> tuple[bytes, bytes]:
    return (orjson.dumps({"USER_ID": user, "TRANSACTION_TYPE": "purchase"}),
            orjson.dumps({"TOTAL_AMOUNT": 12.5, "TRANSACTION_COUNT": 1, "AVG_AMOUNT": 12.5, "MIN_AMOUNT": 12.5,
                          "MAX_AMOUNT": 12.5, "LAST_TRANSACTION_AT": last_transaction_at}))


def warehouse_query(settings: Settings, sql: str) -> list[tuple]:
    with mysql.connector.connect(**settings.mysql_params()) as conn:
        cursor = conn.cursor()
        cursor.execute(sql)
        return cursor.fetchall()


def test_impossible_dates_are_quarantined_by_the_warehouse_consumer_and_by_sync(
        env: dict[str, str], settings_for: Settings) -> None:
    storage = init_lake(settings_for)
    times = {"u_ok": "2026-03-01T10:00:00.000Z", "u_month13": "2026-13-45T99:99:99.000Z",
             "u_feb30": "2026-02-30T10:00:00.000Z", "u_leap": "2024-02-29T23:59:59.999Z"}
    topic = settings_for.topic(SUMMARY)
    clients.ensure_topics(settings_for, {topic: True}, partitions=1)
    with producing(settings_for) as producer:
        for user, moment in times.items():
            key, value = summary_record(user, moment)
            producer.produce(topic, key=key, value=value, partition=0)
    landed = "SELECT user_id, last_transaction_at, snapshot_version FROM fact_user_transaction_summary ORDER BY 1"

    consumed = run_script("kafka_consumer_warehouse.py", "--feeds", SUMMARY, "--until-end", env=env, check=True)
    assert "2 quarantined" in consumed.stdout
    assert warehouse_query(settings_for, landed) == [
        ("u_leap", datetime(2024, 2, 29, 23, 59, 59, 999000), 0), ("u_ok", datetime(2026, 3, 1, 10), 0)]
    assert quarantine_reasons(storage, SUMMARY) == {
        1: "last_transaction_at: '2026-13-45T99:99:99.000Z' is not a timestamp",
        2: "last_transaction_at: '2026-02-30T10:00:00.000Z' is not a timestamp"}

    run_script("sync_to_mysql.py", "--table", SUMMARY, "--source", "kafka", env=env, check=True)
    assert warehouse_query(settings_for, landed) == [
        ("u_leap", datetime(2024, 2, 29, 23, 59, 59, 999000), 1), ("u_ok", datetime(2026, 3, 1, 10), 1)]
    synced = [reason for reason in read_quarantine(storage, SUMMARY).column("reason").to_pylist()
              if reason.startswith("sync from topic")]
    assert sorted(synced) == [f"sync from topic {topic}: last_transaction_at: '{times[user]}' is not a timestamp"
                              for user in ("u_feb30", "u_month13")]


# ---------------------------------------------------------------- item 4: column names that collide or vanish
COLLIDING = [  # (value, reason)
    ({"userId": "a", "user_id": "b"}, "column names 'userId' and 'user_id' both become column 'user_id'"),
    ({"USER-ID": "a", "user_id": "b"}, "column names 'USER-ID' and 'user_id' both become column 'user_id'"),
    ({"é": 1}, "column name 'é' has no letter or digit (A-Z, a-z, 0-9) to name a column"),
    ({"ü": 2}, "column name 'ü' has no letter or digit (A-Z, a-z, 0-9) to name a column"),
]


def test_column_names_that_collide_or_normalize_to_nothing_are_quarantined_in_the_lake(
        env: dict[str, str], settings_for: Settings, lake_root: Path) -> None:
    storage = init_lake(settings_for)
    values = [event("t0", userId="u0")]
    values += [event(f"bad{i}", **fields) for i, (fields, _reason) in enumerate(COLLIDING)]
    values += [event("t5", USER_ID="u5")]
    produce_values(settings_for, STREAM, values)

    land_stream(env)

    assert quarantine_reasons(storage) == {offset: reason for offset, (_fields, reason) in enumerate(COLLIDING, 1)}
    assert lake_rows(lake_root, "transaction_id, user_id") == [("t0", "u0"), ("t5", "u5")]


def test_column_names_that_collide_or_normalize_to_nothing_are_quarantined_in_the_warehouse(
        env: dict[str, str], settings_for: Settings) -> None:
    storage = init_lake(settings_for)
    FeedCatalog(storage).add(Feed(name="region_scores", kind="table", topic="region_scores", key_columns=["region"]))
    topic = settings_for.topic("region_scores")
    clients.ensure_topics(settings_for, {topic: True}, partitions=1)
    with producing(settings_for) as producer:
        for index, value in enumerate([{"SCORE": 1}, *(fields for fields, _reason in COLLIDING), {"Score": 7}]):
            producer.produce(topic, key=f"r{index}".encode(), value=orjson.dumps(value), partition=0)

    result = run_script("kafka_consumer_warehouse.py", "--feeds", "region_scores", "--until-end", env=env, check=True)

    assert f"{len(COLLIDING)} quarantined" in result.stdout
    assert quarantine_reasons(storage, "region_scores") == {
        offset: reason for offset, (_fields, reason) in enumerate(COLLIDING, 1)}
    assert warehouse_query(settings_for, "SELECT region, score FROM region_scores ORDER BY 1") == [
        ("r0", 1), ("r5", 7)]


# ---------------------------------------------------------------- item 9: the catalog is validated when loaded
def test_a_bad_catalog_file_is_reported_once_and_skipped_while_the_other_feeds_work(
        env: dict[str, str], settings_for: Settings, lake_root: Path, tmp_path: Path) -> None:
    storage = init_lake(settings_for)
    feeds = lake_root / "_catalog" / "feeds"
    (feeds / "evil.json").write_text(json.dumps(  # its snapshots would go to tmp_path/x, outside the lake
        {"name": "../../x", "kind": "table", "topic": "evil", "key_columns": ["id"]}))
    edited = json.loads((feeds / f"{STREAM}.json").read_text())
    (feeds / f"{STREAM}.json").write_text(json.dumps({**edited, "retention_days": "30"}))
    (feeds / "broken.json").write_text("{not json")
    problems = {"evil.json": "invalid feed name '../../x'",
                f"{STREAM}.json": "retention_days must be a non-negative integer, got '30'",
                "broken.json": "is not valid"}

    retention = run_script("data_retention.py", "--all", "--dry-run", env=env)
    assert retention.returncode == 0, retention.stderr
    for file_name, problem in problems.items():
        lines = [line for line in retention.stderr.splitlines() if file_name in line]
        assert len(lines) == 1 and problem in lines[0] and "skipped" in lines[0], retention.stderr
    assert "Traceback" not in retention.stderr

    flattened = "transaction_flattened"
    produce_values(settings_for, flattened, [event("t1"), event("t2")])
    produce_values(settings_for, "evil", [], compacted=True)
    with producing(settings_for) as producer:
        producer.produce(settings_for.topic("evil"), key=b"k1", value=b'{"ID": "k1", "SCORE": 1}', partition=0)
    landed = run_script(LAKE_CONSUMER, "--until-end", "--group-id", unique("g"), env=env)
    assert landed.returncode == 0, landed.stderr
    assert len([line for line in landed.stderr.splitlines() if "evil.json" in line]) == 1
    assert lake_rows(lake_root, "transaction_id", feed=flattened) == [("t1",), ("t2",)]
    assert not (tmp_path / "x").exists()
    assert [f.name for f in FeedCatalog(storage).list()] == sorted(
        f.name for f in builtin_feeds() if f.name != STREAM)


# ---------------------------------------------------------------- item 8: a cap on the columns of an auto-mapped table
def test_records_past_the_feeds_column_cap_are_quarantined_by_the_consumer_and_by_sync(
        env: dict[str, str], settings_for: Settings, lake_root: Path) -> None:
    init_lake(settings_for)
    run_script("manage_feeds.py", "add", "--name", "wide_scores", "--type", "table", "--topic", "wide_scores",
               "--key-columns", "region", "--max-columns", "6", "--partitions", "1", env=env, check=True)
    assert json.loads((lake_root / "_catalog/feeds/wide_scores.json").read_text())["max_columns"] == 6
    topic = settings_for.topic("wide_scores")
    values = [{"C1": 1, "C2": 2}, {"C3": 3}, {"C4": 4, "C5": 5}, {"C1": 10, "C4": None}, {"C6": 6}]
    with producing(settings_for) as producer:
        for index, value in enumerate(values):
            producer.produce(topic, key=f"r{index}".encode(), value=orjson.dumps(value), partition=0)
    storage = LakeStorage(str(lake_root))

    def columns() -> set[str]:
        return {name for (name,) in warehouse_query(
            settings_for, "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
                          "AND TABLE_NAME = 'wide_scores'")}

    def past_cap(new: str, total: int, cap: int) -> str:
        return (f"new column(s) {new} would give table wide_scores {total} columns, past the feed's max_columns "
                f"of {cap} (manage_feeds.py update wide_scores --max-columns N raises it)")

    consumed = run_script("kafka_consumer_warehouse.py", "--feeds", "wide_scores", "--until-end", env=env,
                          check=True)
    assert "2 quarantined" in consumed.stdout
    assert quarantine_reasons(storage, "wide_scores") == {2: past_cap("c4, c5", 8, 6), 4: past_cap("c6", 7, 6)}
    assert columns() == {"region", "snapshot_date", "snapshot_version", "c1", "c2", "c3"}
    assert warehouse_query(settings_for, "SELECT region, c1, c2, c3 FROM wide_scores ORDER BY 1") == [
        ("r0", 1, 2, None), ("r1", None, None, 3), ("r3", 10, None, None)]

    run_script("manage_feeds.py", "update", "wide_scores", "--max-columns", "8", env=env, check=True)
    run_script("sync_to_mysql.py", "--table", "wide_scores", "--source", "kafka", env=env, check=True)
    assert columns() == {"region", "snapshot_date", "snapshot_version", "c1", "c2", "c3", "c4", "c5"}
    assert warehouse_query(settings_for, "SELECT region, c1, c2, c3, c4, c5 FROM wide_scores ORDER BY 1") == [
        ("r0", 1, 2, None, None, None), ("r1", None, None, 3, None, None), ("r2", None, None, None, 4, 5),
        ("r3", 10, None, None, None, None)]
    reasons = read_quarantine(storage, "wide_scores").column("reason").to_pylist()
    assert [r for r in reasons if r.startswith("sync")] == [f"sync from topic {topic}: {past_cap('c6', 9, 8)}"]


# ---------------------------------------------------------------- the same rules, without services
def test_a_later_batch_widens_an_integer_column_inside_structs_and_lists_too() -> None:
    stored = {"amount": pa.int64(), "product": pa.struct([("price", pa.int64())]), "sizes": pa.list_(pa.int64())}
    evolved, reasons = lake_schema.check_rows(
        [{"amount": 10.5, "product": {"price": 2.5}, "sizes": [1, 1.5]}, {"amount": "ten"}], stored, [])
    assert evolved == {"amount": pa.float64(), "product": pa.struct([("price", pa.float64())]),
                       "sizes": pa.list_(pa.float64())}
    assert reasons == [None, "amount: expected number, got string"]


def test_every_catalog_field_is_checked_for_its_type() -> None:
    good = {"name": "scores", "kind": "table", "topic": "scores", "key_columns": ["id"]}
    refused = [("enabled", "false", "enabled must be true or false"), ("keep_versions", True, "keep_versions must be"),
               ("key_columns", "id", "key_columns must be a list"), ("storage_mode", ["append"], "storage mode"),
               ("max_columns", 2000, "max_columns must be an integer from 4"),
               ("warehouse_table", "a`b", "invalid warehouse table"), ("ksql_name", "X; DROP", "invalid ksqlDB name")]
    for field, value, problem in refused:
        with pytest.raises(LakehouseError, match=re.escape(problem)):
            validate_feed(Feed.from_dict({**good, field: value}))
