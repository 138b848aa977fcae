"""manage_feeds.py: add (by hand and from ksqlDB), list, show, update, disable/enable, archive/restore;
and the whole new-feed procedure end to end (add -> produce -> consumers -> lake and MySQL)."""

from __future__ import annotations

import json
from pathlib import Path

import mysql.connector
import pyarrow as pa
import pytest
from ksqldb_double import KsqlDbDouble
from support import BOTH_BACKENDS, run_script

from lakehouse import layout
from lakehouse.catalog import FeedCatalog, builtin_feeds
from lakehouse.kafka import clients
from lakehouse.settings import Settings
from lakehouse.storage import LakeStorage


@pytest.fixture
def lake(env: dict[str, str]) -> dict[str, str]:
    run_script("data_lake_config.py", "init", env=env, check=True)
    return env


def _feeds(env: dict[str, str], *args: str):
    return run_script("manage_feeds.py", *args, env=env)


def _entry(lake_root: Path, name: str) -> dict:
    return json.loads((lake_root / f"_catalog/feeds/{name}.json").read_text())


def _catalog_files(lake_root: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((lake_root / "_catalog/feeds").glob("*"))}


def _warehouse_tables(settings: Settings) -> set[str]:
    with mysql.connector.connect(**settings.mysql_params()) as conn:
        cursor = conn.cursor()
        cursor.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                       (settings.mysql_database,))
        return {row[0] for row in cursor.fetchall()}


def test_add_stream_writes_catalog_creates_folder_and_prints_next_steps(lake: dict[str, str],
                                                                         lake_root: Path) -> None:
    result = _feeds(lake, "add", "--name", "card_payments", "--type", "stream", "--topic", "card_payments",
                    "--key-columns", "payment_id", "--retention-days", "30")
    assert result.returncode == 0, result.stderr
    assert (lake_root / "streams/card_payments").is_dir()
    entry = _entry(lake_root, "card_payments")
    assert {k: entry[k] for k in ("kind", "topic", "key_columns", "retention_days", "storage_mode",
                                  "partitioning", "timestamp_field", "enabled", "archived")} == {
        "kind": "stream", "topic": "card_payments", "key_columns": ["payment_id"], "retention_days": 30,
        "storage_mode": "append", "partitioning": "date", "timestamp_field": "timestamp", "enabled": True,
        "archived": False}
    assert "next steps:" in result.stdout
    assert "python kafka_consumer_datalake.py --feeds card_payments" in result.stdout

    listing = _feeds(lake, "list").stdout
    assert any(line.split()[:2] == ["card_payments", "stream"] and line.endswith("enabled")
               for line in listing.splitlines())
    shown = _feeds(lake, "show", "card_payments")
    assert shown.returncode == 0 and "streams/card_payments" in shown.stdout and "keep 30 days" in shown.stdout


def test_add_table_creates_its_warehouse_table(lake: dict[str, str], settings_for: Settings,
                                               lake_root: Path) -> None:
    result = _feeds(lake, "add", "--name", "merchant_totals", "--type", "table", "--topic", "merchant_totals",
                    "--key-columns", "merchant_id", "--keep-versions", "3")
    assert result.returncode == 0, result.stderr
    table = next(line.split(": ", 1)[1] for line in result.stdout.splitlines()
                 if line.startswith("warehouse table: "))
    assert table in _warehouse_tables(settings_for)
    assert (lake_root / "tables/merchant_totals").is_dir()
    assert "python sync_to_mysql.py --table merchant_totals" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--name", "x; DROP TABLE dim_users", "--type", "stream", "--topic", "x"], "invalid feed name"),
    (["--name", "../../etc", "--type", "stream", "--topic", "x"], "invalid feed name"),
    (["--name", "Robert'); --", "--type", "stream", "--topic", "x"], "invalid feed name"),
    (["--name", "ok_name", "--type", "stream", "--topic", "x'; DROP"], "invalid Kafka topic name"),
    (["--name", "ok_name\n", "--type", "stream", "--topic", "x"], "invalid feed name"),
    (["--name", "ok_name", "--type", "stream", "--topic", "x\n"], "invalid Kafka topic name"),
    (["--name", "ok_name", "--type", "stream", "--topic", ".."], "invalid Kafka topic name"),
    (["--name", "ok_name", "--type", "table", "--topic", "x", "--key-columns", "id`; DROP TABLE t; --"],
     "invalid key column"),
    (["--name", "ok_name", "--type", "table", "--topic", "x"], "needs --key-columns"),
    (["--name", "ok_name", "--type", "table", "--topic", "x", "--key-columns", "id", "--retention-days", "3"],
     "--retention-days is for stream feeds"),
    (["--name", "transaction_stream", "--type", "stream", "--topic", "other"], "already exists"),
    (["--name", "ok_name", "--type", "stream", "--topic", "transaction_stream"], "already belongs to feed"),
])
def test_bad_or_hostile_definitions_are_refused_and_change_nothing(
        lake: dict[str, str], settings_for: Settings, lake_root: Path, args: list[str], message: str) -> None:
    catalog_before, tables_before = _catalog_files(lake_root), _warehouse_tables(settings_for)
    lake_before = sorted(p.relative_to(lake_root).as_posix() for p in lake_root.rglob("*"))

    result = _feeds(lake, "add", *args)

    assert result.returncode == 2, result.stdout
    assert message in result.stderr and "Traceback" not in result.stderr
    assert _catalog_files(lake_root) == catalog_before
    assert sorted(p.relative_to(lake_root).as_posix() for p in lake_root.rglob("*")) == lake_before
    assert _warehouse_tables(settings_for) == tables_before


def test_disable_enable_archive_restore(lake: dict[str, str], settings_for: Settings, lake_root: Path) -> None:
    catalog = FeedCatalog(LakeStorage(settings_for.data_lake_root))
    landed = lake_root / "streams/transaction_flattened/year=2026/month=1/day=1/f.parquet"
    landed.parent.mkdir(parents=True)
    landed.write_bytes(b"landed data")
    everything = {f.name for f in builtin_feeds()}

    assert "transaction_flattened is disabled" in _feeds(lake, "disable", "transaction_flattened").stdout
    assert {f.name for f in catalog.list(active_only=True)} == everything - {"transaction_flattened"}
    assert "(unchanged)" in _feeds(lake, "disable", "transaction_flattened").stdout
    assert "is enabled" in _feeds(lake, "enable", "transaction_flattened").stdout

    archived = _feeds(lake, "archive", "transaction_flattened")
    assert "transaction_flattened is archived: consumers, export, sync and the orchestrator skip it" \
           in archived.stdout
    assert not catalog.get("transaction_flattened").active
    assert landed.read_bytes() == b"landed data"  # archiving keeps the data
    assert "transaction_flattened is enabled" in _feeds(lake, "restore", "transaction_flattened").stdout
    assert {f.name for f in catalog.list(active_only=True)} == everything

    unknown = _feeds(lake, "archive", "no_such_feed")
    assert unknown.returncode == 2 and "unknown feed 'no_such_feed'" in unknown.stderr


def test_update_changes_allowed_fields_only(lake: dict[str, str], lake_root: Path) -> None:
    assert _feeds(lake, "update", "transaction_stream", "--retention-days", "30").returncode == 0
    assert _entry(lake_root, "transaction_stream")["retention_days"] == 30
    too_long = _feeds(lake, "update", "transaction_stream", "--retention-days", "1000000000000")
    assert too_long.returncode == 2 and "Traceback" not in too_long.stderr
    assert "--retention-days: must be at most" in too_long.stderr.splitlines()[-1]
    assert _entry(lake_root, "transaction_stream")["retention_days"] == 30

    keys = _feeds(lake, "update", "payment_method_totals", "--key-columns", "other")
    assert keys.returncode == 2 and "cannot change" in keys.stderr
    clash = _feeds(lake, "update", "transaction_stream", "--topic", "payment_method_totals")
    assert clash.returncode == 2 and "already belongs to feed 'payment_method_totals'" in clash.stderr
    wrong_policy = _feeds(lake, "update", "payment_method_totals", "--retention-days", "3")
    assert wrong_policy.returncode == 2 and "use --keep-versions" in wrong_policy.stderr
    nothing = _feeds(lake, "update", "transaction_stream")
    assert nothing.returncode == 2 and "nothing to update" in nothing.stderr
    assert _entry(lake_root, "payment_method_totals")["key_columns"] == ["payment_method"]


def test_add_from_ksqldb_fills_type_topic_and_keys(lake: dict[str, str], lake_root: Path) -> None:
    double = KsqlDbDouble(["listings.json"]).start()
    try:
        env = {**lake, "KSQLDB_URL": double.url}
        result = _feeds(env, "add", "--from-ksqldb", "HIGH_VALUE_TRANSACTIONS", "--key-columns", "transaction_id")
        missing = _feeds(env, "add", "--from-ksqldb", "NOT_THERE")
    finally:
        double.stop()
    assert result.returncode == 0, result.stderr
    entry = _entry(lake_root, "high_value_transactions")
    assert (entry["kind"], entry["topic"], entry["ksql_name"], entry["key_columns"], entry["timestamp_field"]) == (
        "stream", "high_value_transactions", "HIGH_VALUE_TRANSACTIONS", ["transaction_id"], None)
    assert (lake_root / "streams/high_value_transactions").is_dir()
    assert missing.returncode == 2 and "Could not find STREAM/TABLE 'NOT_THERE'" in missing.stderr


def _produce(settings: Settings, topic: str, records: list[tuple[bytes, bytes | None]]) -> None:
    """To a topic `manage_feeds.py add` created (the local broker does not create topics on first produce)."""
    producer = clients.producer(settings)
    for key, value in records:
        producer.produce(topic, key=key, value=value)
    assert producer.flush(30) == 0


@BOTH_BACKENDS
def test_a_brand_new_feed_reaches_the_lake_and_mysql_with_no_code_change(
        lake: dict[str, str], settings_for: Settings, lake_root: Path) -> None:
    # A stream nobody has seen before: events over two days.
    stream_added = _feeds(lake, "add", "--name", "card_payments", "--type", "stream", "--topic", "card_payments",
                          "--key-columns", "payment_id", "--partitions", "2")
    stream_added.check_returncode()
    assert f"kafka topic: {settings_for.topic('card_payments')} (created, 2 partitions)" in stream_added.stdout
    days = ["2026-02-10", "2026-02-11"]
    events = [{"payment_id": f"pay_{n:04d}", "timestamp": f"{days[n % 2]}T12:00:{n % 60:02d}.000Z",
               "amount": n / 4, "card": {"brand": "visa", "last4": f"{n:04d}"}} for n in range(300)]
    _produce(settings_for, settings_for.topic("card_payments"),
             [(e["payment_id"].encode(), json.dumps(e).encode()) for e in events])
    run_script("kafka_consumer_datalake.py", "--feeds", "card_payments", "--until-end", env=lake, check=True)

    storage = LakeStorage(settings_for.data_lake_root)
    files = [f.path for f in storage.walk_files("streams/card_payments") if f.path.endswith(".parquet")]
    landed = pa.concat_tables([storage.read_parquet(path) for path in files], promote_options="default")
    assert sorted(landed.column("payment_id").to_pylist()) == [e["payment_id"] for e in events]
    assert {layout.parse_partition_date(path).isoformat() for path in files} == set(days)

    # A table nobody has seen before: a ksqlDB-style changelog with an update and a tombstone.
    added = _feeds(lake, "add", "--name", "merchant_totals", "--type", "table", "--topic", "merchant_totals",
                   "--key-columns", "merchant_id")
    added.check_returncode()
    assert "partitions, compacted)" in added.stdout
    table = next(line.split(": ", 1)[1] for line in added.stdout.splitlines()
                 if line.startswith("warehouse table: "))
    changelog = [(b'"m1"', {"TOTAL_AMOUNT": 10.5, "ORDER_COUNT": 1}),
                 (b'"m2"', {"TOTAL_AMOUNT": 3.0, "ORDER_COUNT": 1}),
                 (b'"m3"', {"TOTAL_AMOUNT": 1.0, "ORDER_COUNT": 1}),
                 (b'"m1"', {"TOTAL_AMOUNT": 20.25, "ORDER_COUNT": 2}),
                 (b'"m3"', None)]  # ksqlDB keys a one-column table by the bare JSON value; None deletes
    _produce(settings_for, settings_for.topic("merchant_totals"),
             [(key, None if value is None else json.dumps(value).encode()) for key, value in changelog])
    run_script("kafka_consumer_warehouse.py", "--feeds", "merchant_totals", "--until-end", env=lake, check=True)

    with mysql.connector.connect(**settings_for.mysql_params()) as conn:
        cursor = conn.cursor()
        cursor.execute(f"SELECT merchant_id, total_amount, order_count FROM `{table}` ORDER BY merchant_id")
        rows = [(key, float(total), int(count)) for key, total, count in cursor.fetchall()]
    assert rows == [("m1", 20.25, 2), ("m2", 3.0, 1)]

    # Disabled: the consumer leaves it alone, the landed data stays.
    _feeds(lake, "disable", "card_payments").check_returncode()
    refused = run_script("kafka_consumer_datalake.py", "--feeds", "card_payments", "--until-end", env=lake)
    assert refused.returncode == 2 and "feed card_payments is disabled; enable it first" in refused.stderr
    assert [f.path for f in storage.walk_files("streams/card_payments") if f.path.endswith(".parquet")] == files
