"""The MySQL warehouse: schema, exactly-once consumer, auto-mapped feeds, snapshot sync (real Kafka, real MariaDB)."""

from __future__ import annotations

import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import mysql.connector
import orjson
import pytest
from ksqldb_double import KsqlDbDouble, ksqldb_double  # noqa: F401 (pytest fixture)
from support import REPO, IdleGroupMember, ksqldb_average, producing, run_script, wait_for

from lakehouse.catalog import Feed, FeedCatalog, builtin_feeds
from lakehouse.kafka import clients
from lakehouse.lake.snapshots import write_snapshot
from lakehouse.produce.events import GeneratorOptions, generate_events, to_eur
from lakehouse.quarantine import read_quarantine
from lakehouse.settings import Settings
from lakehouse.storage import LakeStorage
from lakehouse.warehouse.connection import open_warehouse
from lakehouse.warehouse.consumer import default_group_id
from lakehouse.warehouse.erd import er_diagram
from lakehouse.warehouse.migrations import ensure_schema

START = "2026-01-01"
CENT = Decimal("0.01")


# ------------------------------------------------------------------ helpers
def query(settings: Settings, sql: str, params: tuple = ()) -> list[tuple]:
    with mysql.connector.connect(**settings.mysql_params()) as conn:
        cursor = conn.cursor()
        cursor.execute(sql, params)
        return cursor.fetchall()


def init_lake(env: dict[str, str]) -> None:
    run_script("data_lake_config.py", "init", env=env, check=True)


def produce(settings: Settings, topic: str, records: list[tuple[int, bytes, bytes | None]],
            transactional: bool = False) -> None:
    """(partition, key, value) records to a compacted topic of this test, in order."""
    clients.ensure_topics(settings, {settings.topic(topic): True})
    with producing(settings, transactional) as producer:
        for partition, key, value in records:
            producer.produce(settings.topic(topic), key=key, value=value, partition=partition)


def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    return clients.topic_end_offsets(settings, settings.topic(topic))


def stored_offsets(settings: Settings, topic: str) -> dict[int, int]:
    rows = query(settings, "SELECT `partition`, next_offset FROM kafka_offsets WHERE topic = %s",
                 (settings.topic(topic),))
    return {partition: offset for partition, offset in rows}


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def expected_aggregates(events: list[dict]) -> dict[str, dict]:
    """The four tables recomputed from raw events, independently of lakehouse.derive."""
    users: dict = defaultdict(lambda: {"total": Decimal(0), "count": 0, "amounts": [], "last": ""})
    eur: dict = defaultdict(lambda: {"total": Decimal(0), "count": 0, "amounts": []})
    methods: dict = defaultdict(lambda: {"total": Decimal(0), "count": 0})
    products: dict = defaultdict(lambda: {"count": 0, "quantity": 0, "revenue": Decimal(0), "buyers": set()})
    for event in events:
        key = (event["user"]["user_id"], event["transaction_type"])
        amount, in_eur = Decimal(str(event["amount"])), to_eur(event["amount"], event["currency"])
        users[key]["total"] += amount
        users[key]["count"] += 1
        users[key]["amounts"].append(amount)
        users[key]["last"] = max(users[key]["last"], event["timestamp"])
        eur[key]["total"] += in_eur
        eur[key]["count"] += 1
        eur[key]["amounts"].append(in_eur)
        methods[event["payment_method"]]["total"] += in_eur
        methods[event["payment_method"]]["count"] += 1
        if event["transaction_type"] == "purchase" and event["product"]:
            product = products[event["product"]["product_id"]]
            product["count"] += 1
            product["quantity"] += event["product"]["quantity"]
            product["revenue"] += amount
            product["buyers"].add(event["user"]["user_id"])
    return {
        "fact_user_transaction_summary": {
            key: (money(v["total"]), v["count"], ksqldb_average(v["total"], v["count"]),
                  min(v["amounts"]), max(v["amounts"]), v["last"][:23].replace("T", " "))
            for key, v in users.items()},
        "fact_user_transaction_summary_eur": {
            key: (money(v["total"]), v["count"], ksqldb_average(v["total"], v["count"]),
                  min(v["amounts"]), max(v["amounts"])) for key, v in eur.items()},
        "fact_payment_method_totals": {
            (name,): (money(v["total"]), v["count"], ksqldb_average(v["total"], v["count"]))
            for name, v in methods.items()},
        "fact_product_purchase_counts": {
            (pid,): (v["count"], v["quantity"], money(v["revenue"]),
                     ksqldb_average(v["revenue"], v["quantity"]), len(v["buyers"]))
            for pid, v in products.items()},
    }


FACT_QUERIES = {
    "fact_user_transaction_summary":
        "SELECT user_id, transaction_type, total_amount, transaction_count, avg_amount, min_amount, max_amount, "
        "DATE_FORMAT(last_transaction_at, '%Y-%m-%d %H:%i:%s.%f') FROM fact_user_transaction_summary",
    "fact_user_transaction_summary_eur":
        "SELECT user_id, transaction_type, total_amount_eur, transaction_count, avg_amount_eur, min_amount_eur, "
        "max_amount_eur FROM fact_user_transaction_summary_eur",
    "fact_payment_method_totals":
        "SELECT d.payment_method, total_amount_eur, transaction_count, avg_amount_eur "
        "FROM fact_payment_method_totals f JOIN dim_payment_methods d USING (payment_method_id)",
    "fact_product_purchase_counts":
        "SELECT product_id, purchase_count, total_quantity, total_revenue, avg_price, unique_buyers "
        "FROM fact_product_purchase_counts",
}
KEY_WIDTH = {"fact_user_transaction_summary": 2, "fact_user_transaction_summary_eur": 2}


def warehouse_facts(settings: Settings) -> dict[str, dict]:
    facts = {}
    for table, sql in FACT_QUERIES.items():
        width = KEY_WIDTH.get(table, 1)
        rows = query(settings, sql)
        facts[table] = {tuple(row[:width]): tuple(v[:23] if isinstance(v, str) else v for v in row[width:])
                        for row in rows}
        assert len(facts[table]) == len(rows)
    return facts


def assert_no_orphans(settings: Settings) -> None:
    for fact, dim, column in (("fact_user_transaction_summary", "dim_users", "user_id"),
                              ("fact_user_transaction_summary_eur", "dim_users", "user_id"),
                              ("fact_payment_method_totals", "dim_payment_methods", "payment_method_id"),
                              ("fact_product_purchase_counts", "dim_products", "product_id")):
        orphans = query(settings, f"SELECT COUNT(*) FROM {fact} f LEFT JOIN {dim} d USING ({column}) "
                                  f"WHERE d.{column} IS NULL")
        assert orphans == [(0,)], fact


def events_of(*runs: tuple[int, int]) -> list[dict]:
    return [event for messages, seed in runs for event in generate_events(
        GeneratorOptions(messages=messages, seed=seed, users=100, start=date.fromisoformat(START)))]


# ------------------------------------------------------------------ schema
def test_schema_is_versioned_idempotent_and_equal_to_the_documented_er_diagram(settings_for: Settings) -> None:
    with open_warehouse(settings_for) as warehouse:
        assert ensure_schema(warehouse) == [1, 2, 3]
        assert ensure_schema(warehouse) == []
        diagram = warehouse.run(er_diagram, transactional=False)
    assert query(settings_for, "SELECT version, name FROM schema_version") == [(1, "star_schema"),
                                                                              (2, "wide_money_sums"),
                                                                              (3, "query_audit")]
    engines = query(settings_for, "SELECT DISTINCT ENGINE, TABLE_COLLATION FROM information_schema.TABLES "
                                  "WHERE TABLE_SCHEMA = DATABASE()")
    assert {engine for engine, _ in engines} == {"InnoDB"}
    assert all(collation.startswith("utf8mb4") for _, collation in engines)
    documented = re.search(r"```mermaid\n(erDiagram\n.*?)```", (REPO / "docs/warehouse.md").read_text(), re.S)
    assert documented, "docs/warehouse.md has no mermaid erDiagram block"
    assert documented.group(1) == diagram, f"docs/warehouse.md is out of date; the live schema is:\n{diagram}"


# ------------------------------------------------------------------ consumer
def test_consumer_lands_derived_tables_equal_to_aggregates_of_raw_events(
        env: dict[str, str], settings_for: Settings) -> None:
    init_lake(env)
    for seed in (1, 2):  # the second run updates most keys: the changelogs hold several values per key
        run_script("kafka_producer.py", "--messages", "1500", "--seed", str(seed), "--start", START, "--derive",
                   env=env, check=True)
    result = run_script("kafka_consumer_warehouse.py", "--until-end", env=env, check=True)
    assert "0 quarantined" in result.stdout

    assert warehouse_facts(settings_for) == expected_aggregates(events_of((1500, 1), (1500, 2)))
    assert_no_orphans(settings_for)
    assert query(settings_for, "SELECT COUNT(*) FROM dim_users WHERE user_name IS NULL") == [(0,)]
    assert query(settings_for, "SELECT DISTINCT snapshot_version FROM fact_product_purchase_counts") == [(0,)]
    for feed in builtin_feeds():
        if feed.kind == "table":
            assert stored_offsets(settings_for, feed.topic) == {
                p: end for p, end in end_offsets(settings_for, feed.topic).items() if end > 0}

    # The same topics through sync_to_mysql.py --source kafka: snapshot 1, the same contents.
    synced = run_script("sync_to_mysql.py", "--source", "kafka", env=env, check=True)
    assert "snapshot version 1" in synced.stdout
    assert warehouse_facts(settings_for) == expected_aggregates(events_of((1500, 1), (1500, 2)))
    assert query(settings_for, "SELECT DISTINCT snapshot_version FROM fact_user_transaction_summary") == [(1,)]


def _summary_eur_changelog(keys: int, updates: int) -> tuple[list[tuple[int, bytes, bytes | None]], dict]:
    """`updates` values per key (transaction_count grows), spread over 6 partitions; every 7th key ends deleted.

    Returns the records and, per partition, the list of (key, value) in offset order.
    """
    records, by_partition = [], defaultdict(list)
    for step in range(updates):
        for index in range(keys):
            user, kind = f"user_{index:05d}", "purchase" if index % 2 else "refund"
            key = orjson.dumps({"USER_ID": user, "TRANSACTION_TYPE": kind})
            last, partition = step == updates - 1, index % 6
            value = None if last and index % 7 == 0 else orjson.dumps({
                "TOTAL_AMOUNT_EUR": round(1.25 * (step + 1), 2), "TRANSACTION_COUNT": step + 1,
                "AVG_AMOUNT_EUR": 1.25, "MIN_AMOUNT_EUR": 1.25, "MAX_AMOUNT_EUR": 1.25,
                "LAST_TRANSACTION_AT": f"2026-01-01T00:00:{step % 60:02d}.000Z"})
            records.append((partition, key, value))
            by_partition[partition].append(((user, kind), None if value is None else step + 1))
    return records, by_partition


def _state_at(by_partition: dict, offsets: dict[int, int]) -> dict:
    """The table after applying each partition's records below its stored offset."""
    state: dict = {}
    for partition, changes in by_partition.items():
        for key, count in changes[:offsets.get(partition, 0)]:
            if count is None:
                state.pop(key, None)
            else:
                state[key] = count
    return state


def test_sigkill_mid_batch_keeps_rows_and_offsets_consistent_then_finishes_exactly(
        env: dict[str, str], settings_for: Settings) -> None:
    init_lake(env)
    records, by_partition = _summary_eur_changelog(keys=600, updates=80)  # 48,000 records
    produce(settings_for, "user_transaction_summary_eur", records)
    rng = random.Random(7)
    args = [sys.executable, str(REPO / "kafka_consumer_warehouse.py"), "--feeds", "user_transaction_summary_eur"]

    def warehouse_state() -> dict:
        rows = query(settings_for, "SELECT user_id, transaction_type, transaction_count "
                                   "FROM fact_user_transaction_summary_eur")
        return {(user, kind): count for user, kind, count in rows}

    kills = 0
    for _ in range(4):
        process = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(1.5, 3.5))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.communicate(timeout=30)
        # Whatever the moment of the kill: the rows are exactly the state at the offsets stored with them.
        offsets = stored_offsets(settings_for, "user_transaction_summary_eur")
        assert warehouse_state() == _state_at(by_partition, offsets)
    assert kills >= 3

    run_script("kafka_consumer_warehouse.py", "--feeds", "user_transaction_summary_eur", "--until-end",
               env=env, check=True)
    final_offsets = stored_offsets(settings_for, "user_transaction_summary_eur")
    assert final_offsets == end_offsets(settings_for, "user_transaction_summary_eur")
    expected = _state_at(by_partition, final_offsets)
    assert len(expected) == 600 - len(range(0, 600, 7))
    assert warehouse_state() == expected
    assert set(expected.values()) == {80}
    assert_no_orphans(settings_for)


def test_until_end_waits_for_the_partitions_another_member_holds_then_reads_them(
        env: dict[str, str], settings_for: Settings) -> None:
    """A busy or crashed member still holds partitions: --until-end must not exit with them unread."""
    init_lake(env)
    records, by_partition = _summary_eur_changelog(keys=60, updates=6)
    produce(settings_for, "user_transaction_summary_eur", records)
    topic = "user_transaction_summary_eur"
    member = IdleGroupMember(clients.consumer(settings_for, default_group_id(settings_for)), settings_for.topic(topic))
    try:
        wait_for(lambda: member.holds() == 6, 60, "the idle member holding the six partitions")
        process = subprocess.Popen([sys.executable, str(REPO / "kafka_consumer_warehouse.py"), "--feeds", topic,
                                    "--until-end"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        wait_for(lambda: len(_offsets_at_end(settings_for, topic)) == 6 - member.holds() > 0
                 or process.poll() is not None, 60, "the consumer reading its share of the partitions")
        time.sleep(3)
        assert process.poll() is None, "exited while another member held unread partitions"
        assert len(_offsets_at_end(settings_for, topic)) < 6
    finally:
        member.leave()
    _out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err[-2000:]
    final_offsets = stored_offsets(settings_for, topic)
    assert final_offsets == end_offsets(settings_for, topic)
    rows = query(settings_for, f"SELECT user_id, transaction_type, transaction_count FROM fact_{topic}")
    assert {(user, kind): count for user, kind, count in rows} == _state_at(by_partition, final_offsets)
    assert {count for *_key, count in rows} == {6}


def test_stored_offsets_reach_the_end_past_transaction_markers(env: dict[str, str], settings_for: Settings) -> None:
    init_lake(env)
    topic = "user_transaction_summary_eur"
    records, by_partition = _summary_eur_changelog(keys=12, updates=2)
    produce(settings_for, topic, records, transactional=True)
    ends = end_offsets(settings_for, topic)
    assert ends == {partition: len(changes) + 1 for partition, changes in by_partition.items()}  # + the marker
    run_script("kafka_consumer_warehouse.py", "--feeds", topic, "--until-end", env=env, check=True)
    assert stored_offsets(settings_for, topic) == ends
    rows = query(settings_for, f"SELECT user_id, transaction_type, transaction_count FROM fact_{topic}")
    assert {(user, kind): count for user, kind, count in rows} == _state_at(by_partition, ends)
    assert len(rows) == 12 - 2  # keys 0 and 7 end deleted


def _offsets_at_end(settings: Settings, topic: str) -> set[int]:
    """The partitions whose offset stored in MySQL is their end (none before the schema exists)."""
    try:
        stored = stored_offsets(settings, topic)
    except mysql.connector.ProgrammingError:
        return set()
    return {partition for partition, end in end_offsets(settings, topic).items() if stored.get(partition) == end}


def test_recreated_topic_is_detected_and_read_again_from_the_beginning(
        env: dict[str, str], settings_for: Settings) -> None:
    init_lake(env)
    value = orjson.dumps({"TOTAL_AMOUNT_EUR": 10.0, "TRANSACTION_COUNT": 1, "AVG_AMOUNT_EUR": 10.0})
    produce(settings_for, "payment_method_totals", [(0, b'"paypal"', value)] * 20)
    run_script("kafka_consumer_warehouse.py", "--feeds", "payment_method_totals", "--until-end", env=env, check=True)
    assert stored_offsets(settings_for, "payment_method_totals") == {0: 20}

    clients.delete_topics(settings_for, [settings_for.topic("payment_method_totals")])
    changed = orjson.dumps({"TOTAL_AMOUNT_EUR": 99.5, "TRANSACTION_COUNT": 3, "AVG_AMOUNT_EUR": 33.1667})
    produce(settings_for, "payment_method_totals", [(0, b'"paypal"', changed), (0, b'"crypto_wallet"', changed)])

    result = run_script("kafka_consumer_warehouse.py", "--feeds", "payment_method_totals", "--until-end",
                        env=env, check=True)
    assert "stored offset 20" in result.stderr and "reset to the beginning" in result.stderr
    assert stored_offsets(settings_for, "payment_method_totals") == {0: 2}
    assert sorted(warehouse_facts(settings_for)["fact_payment_method_totals"].items()) == [
        (("crypto_wallet",), (Decimal("99.50"), 3, Decimal("33.1667"))),  # an unknown method is simply added
        (("paypal",), (Decimal("99.50"), 3, Decimal("33.1667")))]


def test_new_table_feed_lands_with_no_code_change_and_gains_columns(
        env: dict[str, str], settings_for: Settings, lake_root: Path) -> None:
    init_lake(env)
    FeedCatalog(LakeStorage(str(lake_root))).add(
        Feed(name="region_scores", kind="table", topic="region_scores", key_columns=["region", "day"]))

    def key(region: str, day: str) -> bytes:
        return orjson.dumps({"REGION": region, "DAY": day})

    produce(settings_for, "region_scores", [
        (0, key("eu", "mon"), orjson.dumps({"SCORE": 1, "LABEL": "Europe"})),
        (1, key("us", "mon"), orjson.dumps({"SCORE": 2, "LABEL": "Americas"})),
        (1, key("us", "tue"), orjson.dumps({"SCORE": 3, "LABEL": "Americas"})),
        (2, b"{not json", b'{"SCORE": 4}'),
    ])
    first = run_script("kafka_consumer_warehouse.py", "--until-end", env=env, check=True)
    assert "1 quarantined" in first.stdout
    assert query(settings_for, "SELECT region, day, score, label FROM region_scores ORDER BY region, day") == [
        ("eu", "mon", 1, "Europe"), ("us", "mon", 2, "Americas"), ("us", "tue", 3, "Americas")]
    quarantined = read_quarantine(LakeStorage(str(lake_root)), "region_scores").to_pylist()
    assert [(q["partition"], q["offset"]) for q in quarantined] == [(2, 0)]
    assert "not valid JSON" in quarantined[0]["reason"]

    # The schema grows: a new column, a wider type for an old one, a tombstone.
    produce(settings_for, "region_scores", [
        (0, key("eu", "mon"), orjson.dumps({"SCORE": 1.5, "LABEL": "Europe", "RANK": 7})),
        (1, key("us", "tue"), None),
    ])
    run_script("kafka_consumer_warehouse.py", "--until-end", env=env, check=True)
    columns = dict(query(settings_for, "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS "
                                       "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'region_scores'"))
    assert columns["score"] == "double" and columns["rank"] == "bigint" and columns["label"] == "text"
    assert query(settings_for, "SELECT region, day, score, label, `rank` FROM region_scores ORDER BY region") == [
        ("eu", "mon", 1.5, "Europe", 7), ("us", "mon", 2.0, "Americas", None)]
    keys = query(settings_for, "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE "
                               "TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'region_scores' AND CONSTRAINT_NAME = "
                               "'PRIMARY' ORDER BY ORDINAL_POSITION")
    assert keys == [("region",), ("day",)]


# ------------------------------------------------------------------ sync
def _lake_snapshot_rows(events: list[dict]) -> dict[str, list[dict]]:
    """Rows as the lake holds table snapshots (snake_case, key columns included)."""
    aggregates = expected_aggregates(events)
    users = {e["user"]["user_id"]: e["user"] for e in events}
    return {
        "user_transaction_summary": [
            {"user_id": u, "transaction_type": t, "user_name": users[u]["name"], "user_email": users[u]["email"],
             "user_country": users[u]["country"], "user_city": users[u]["city"], "total_amount": float(v[0]),
             "transaction_count": v[1], "avg_amount": float(v[2]), "min_amount": float(v[3]),
             "max_amount": float(v[4]), "last_transaction_at": v[5].replace(" ", "T") + "Z"}
            for (u, t), v in aggregates["fact_user_transaction_summary"].items()],
        "payment_method_totals": [
            {"payment_method": m, "total_amount_eur": float(v[0]), "transaction_count": v[1],
             "avg_amount_eur": float(v[2])} for (m,), v in aggregates["fact_payment_method_totals"].items()],
    }


def test_sync_twice_gives_versions_1_and_2_equal_to_the_lake_snapshots(
        env: dict[str, str], settings_for: Settings, lake_root: Path) -> None:
    init_lake(env)
    storage, feeds = LakeStorage(str(lake_root)), {f.name: f for f in builtin_feeds()}
    events = events_of((800, 3))
    for name, rows in _lake_snapshot_rows(events).items():
        write_snapshot(storage, feeds[name], rows)

    first = run_script("sync_to_mysql.py", env=env, check=True)
    assert "snapshot version 1" in first.stdout and "lake v1" in first.stdout
    expected = expected_aggregates(events)
    facts = warehouse_facts(settings_for)
    for table in ("fact_user_transaction_summary", "fact_payment_method_totals"):
        assert facts[table] == expected[table]

    # The lake moves on: a second version without one user row; the warehouse follows it exactly.
    rows = _lake_snapshot_rows(events)["user_transaction_summary"]
    dropped = rows.pop(0)
    write_snapshot(storage, feeds["user_transaction_summary"], rows)
    second = run_script("sync_to_mysql.py", env=env, check=True)
    assert "snapshot version 2" in second.stdout and "lake v2" in second.stdout
    facts = warehouse_facts(settings_for)
    expected_users = dict(expected["fact_user_transaction_summary"])
    del expected_users[(dropped["user_id"], dropped["transaction_type"])]
    assert facts["fact_user_transaction_summary"] == expected_users
    assert facts["fact_payment_method_totals"] == expected["fact_payment_method_totals"]
    assert query(settings_for, "SELECT snapshot_version, source, row_count FROM sync_runs ORDER BY 1") == [
        (1, "lake", len(rows) + 1 + 6), (2, "lake", len(rows) + 6)]
    run_day = date.fromisoformat(re.search(r"snapshot version 2 \((\d{4}-\d{2}-\d{2})\)", second.stdout).group(1))
    assert query(settings_for, "SELECT DISTINCT snapshot_version, snapshot_date "
                               "FROM fact_user_transaction_summary") == [(2, run_day)]
    assert_no_orphans(settings_for)

    third = run_script("sync_to_mysql.py", "--table", "payment_method_totals", "--version", "10", env=env, check=True)
    assert "snapshot version 10" in third.stdout
    assert query(settings_for, "SELECT DISTINCT snapshot_version FROM fact_payment_method_totals") == [(10,)]


def test_text_needing_escapes_lands_exactly(env: dict[str, str], settings_for: Settings, lake_root: Path) -> None:
    """LOAD DATA's format escapes tab, newline, CR, backslash and NUL: every such value lands as it was."""
    init_lake(env)
    storage, feeds = LakeStorage(str(lake_root)), {f.name: f for f in builtin_feeds()}
    names = {"u_tab": "a\tb", "u_newline": "line1\nline2\r\n", "u_backslash": "C:\\dir\\", "u_null_text": "\\N",
             "u_nul": "x\0y", "u_quotes": "O'Brien \"Bob\"", "u_unicode": "Zoë 🚀", "u_missing": None}
    rows = [{"user_id": user, "transaction_type": "purchase", "user_name": name, "user_city": name,
             "total_amount": 1.5, "transaction_count": 1} for user, name in names.items()]
    write_snapshot(storage, feeds["user_transaction_summary"], rows)
    run_script("sync_to_mysql.py", "--table", "user_transaction_summary", env=env, check=True)
    assert dict(query(settings_for, "SELECT user_id, user_name FROM dim_users")) == names
    assert dict(query(settings_for, "SELECT user_id, user_city FROM dim_users")) == names


def test_money_sums_as_wide_as_ksqldbs_land_exactly(env: dict[str, str], settings_for: Settings,
                                                    lake_root: Path) -> None:
    """ksqlDB sums money into DECIMAL(20, 2): totals past V001's DECIMAL(18, 2) land as they are."""
    init_lake(env)
    storage, feeds = LakeStorage(str(lake_root)), {f.name: f for f in builtin_feeds()}
    write_snapshot(storage, feeds["user_transaction_summary"], [
        {"user_id": "u_busy", "transaction_type": "purchase", "total_amount": 5e16, "transaction_count": 1}])
    write_snapshot(storage, feeds["product_purchase_counts"], [
        {"product_id": "p_busy", "purchase_count": 1, "total_quantity": 3_000_000_000, "total_revenue": 9e17}])
    for table in ("user_transaction_summary", "product_purchase_counts"):
        run_script("sync_to_mysql.py", "--table", table, env=env, check=True)
    assert query(settings_for, "SELECT total_amount FROM fact_user_transaction_summary") == [
        (Decimal("50000000000000000.00"),)]
    assert query(settings_for, "SELECT total_quantity, total_revenue FROM fact_product_purchase_counts") == [
        (3_000_000_000, Decimal("900000000000000000.00"))]


def test_sync_lands_all_tables_or_none(env: dict[str, str], settings_for: Settings, lake_root: Path) -> None:
    init_lake(env)
    storage, feeds = LakeStorage(str(lake_root)), {f.name: f for f in builtin_feeds()}
    for name, rows in _lake_snapshot_rows(events_of((300, 4))).items():
        write_snapshot(storage, feeds[name], rows)
    broken = FeedCatalog(storage).add(Feed(name="broken_scores", kind="table", topic="broken_scores",
                                           key_columns=["region"]))
    write_snapshot(storage, broken, [{"region": "eu", "score": 1}])
    with open_warehouse(settings_for) as warehouse:  # a table someone changed so that no row can land
        warehouse.run(lambda cursor: cursor.execute(
            "CREATE TABLE broken_scores (region VARCHAR(255) PRIMARY KEY, score BIGINT, required_by_dba INT NOT NULL,"
            " snapshot_date DATE NOT NULL, snapshot_version INT UNSIGNED NOT NULL)"), transactional=False)

    result = run_script("sync_to_mysql.py", env=env)
    assert result.returncode == 2
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("error: MySQL:") and "required_by_dba" in last_line
    for table in ("fact_user_transaction_summary", "fact_payment_method_totals", "dim_users", "sync_runs"):
        assert query(settings_for, f"SELECT COUNT(*) FROM {table}") == [(0,)], table


def test_sync_from_a_ksqldb_answer_cut_short_lands_nothing(env: dict[str, str], settings_for: Settings,
                                                           ksqldb_double: KsqlDbDouble) -> None:  # noqa: F811
    init_lake(env)
    ksqldb_double.cut_queries(rows=1)
    result = run_script("sync_to_mysql.py", "--source", "ksqldb", "--table", "user_transaction_summary",
                        env={**env, "KSQLDB_URL": ksqldb_double.url})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and "nothing of it was used" in result.stderr
    existing = {name for (name,) in query(settings_for, "SELECT TABLE_NAME FROM information_schema.TABLES "
                                                        "WHERE TABLE_SCHEMA = DATABASE()")}
    for table in {"fact_user_transaction_summary", "dim_users", "sync_runs"} & existing:
        assert query(settings_for, f"SELECT COUNT(*) FROM {table}") == [(0,)], table


def test_sync_from_unreachable_ksqldb_is_one_clear_line(env: dict[str, str]) -> None:
    init_lake(env)
    result = run_script("sync_to_mysql.py", "--source", "ksqldb", env=env)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "ksqlDB is not reachable" in result.stderr


@pytest.fixture
def silent_mysql_port() -> Iterator[int]:
    """A local port that accepts connections and never answers (a hung or firewalled server)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield listener.getsockname()[1]


def test_scripts_say_mysql_is_unreachable_in_one_line_within_15s(env: dict[str, str], lake_root: Path,
                                                                silent_mysql_port: int) -> None:
    init_lake(env)
    feed = next(feed for feed in builtin_feeds() if feed.name == "user_transaction_summary")
    write_snapshot(LakeStorage(str(lake_root)), feed, [{"user_id": "u1", "transaction_type": "purchase"}])
    commands = [("sync_to_mysql.py", "--table", "user_transaction_summary"),
                ("permissions_manager.py", "check", "--email", "ada@example.com", "--folder",
                 "streams/transaction_stream", "--permission", "read")]
    for port in ("1", str(silent_mysql_port)):  # nothing listens / accepts and never answers
        for command in commands:
            started = time.monotonic()
            result = run_script(*command, env={**env, "MYSQL_PORT": port})
            assert time.monotonic() - started < 15, (command, port)
            assert result.returncode == 2 and "Traceback" not in result.stderr, (command, port, result.stderr)
            assert result.stderr.count("\n") == 1 and f"127.0.0.1:{port}" in result.stderr, result.stderr


def test_the_warehouse_consumer_keeps_retrying_an_unreachable_mysql_and_logs_each_retry(env: dict[str, str]) -> None:
    init_lake(env)
    consumer = subprocess.Popen([sys.executable, "kafka_consumer_warehouse.py"], cwd=REPO,
                                env={**env, "MYSQL_PORT": "1"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    time.sleep(5)  # backoff 0.5 s, 1 s, 2 s: at least three retries
    consumer.send_signal(signal.SIGTERM)
    _out, err = consumer.communicate(timeout=30)
    retries = [line for line in err.splitlines() if "MySQL at 127.0.0.1:1/" in line and "unreachable" in line]
    assert [re.search(r"retry (\d+) in", line).group(1) for line in retries][:3] == ["1", "2", "3"], err


def test_sync_never_rolls_back_what_the_streaming_consumer_landed(
        env: dict[str, str], settings_for: Settings) -> None:
    init_lake(env)
    run_script("kafka_producer.py", "--messages", "600", "--seed", "5", "--start", START, "--derive",
               env=env, check=True)
    run_script("kafka_consumer_datalake.py", "--until-end", env=env, check=True)  # lake versions at offset N
    run_script("kafka_producer.py", "--messages", "600", "--seed", "6", "--start", START, "--derive",
               env=env, check=True)
    run_script("kafka_consumer_warehouse.py", "--until-end", env=env, check=True)  # the warehouse at N + k
    expected = expected_aggregates(events_of((600, 5), (600, 6)))
    assert warehouse_facts(settings_for) == expected

    refused = run_script("sync_to_mysql.py", env=env)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    topic = settings_for.topic("payment_method_totals")
    assert re.search(rf"^error: nothing to sync: .*payment_method_totals: the streaming warehouse consumer has "
                     rf"landed {topic} further than lake v1 reflects \(partition \d+ at \d+ > \d+",
                     refused.stderr, flags=re.MULTILINE)
    assert warehouse_facts(settings_for) == expected

    run_script("beam_orchestrator.py", "--task", "sync_warehouse", "--once", env=env, check=True)
    assert warehouse_facts(settings_for) == expected  # the Beam sync keeps the same rule

    run_script("kafka_consumer_datalake.py", "--until-end", env=env, check=True)  # the lake catches up
    synced = run_script("sync_to_mysql.py", env=env, check=True)
    assert "snapshot version" in synced.stdout and "lake v2" in synced.stdout
    assert warehouse_facts(settings_for) == expected


def test_two_sync_runs_with_bad_rows_keep_both_runs_quarantined_records(
        env: dict[str, str], settings_for: Settings, lake_root: Path) -> None:
    init_lake(env)
    storage, feed = LakeStorage(str(lake_root)), {f.name: f for f in builtin_feeds()}["payment_method_totals"]
    good = {"payment_method": "cash", "total_amount_eur": 10.0, "transaction_count": 1, "avg_amount_eur": 10.0}
    for run in (1, 2):  # the bad row sits at the same index of both snapshots
        bad = {**good, "payment_method": f"bad_{run}", "total_amount_eur": 1e18}  # too large for DECIMAL(18, 2)
        write_snapshot(storage, feed, [bad, good])
        run_script("sync_to_mysql.py", "--table", "payment_method_totals", env=env, check=True)
    quarantined = read_quarantine(storage, "payment_method_totals").to_pylist()
    assert sorted((orjson.loads(r["raw_value"])["payment_method"], r["reason"].split(":")[0]) for r in quarantined) \
        == [("bad_1", "sync from lake v1"), ("bad_2", "sync from lake v2")]


def test_sync_from_a_lake_that_caught_up_with_a_transactional_changelog_is_not_skipped(
        env: dict[str, str], settings_for: Settings) -> None:
    """ksqlDB with exactly-once ends each partition in a transaction marker: the lake version and the warehouse
    consumer both reach the end past it, so the lake version reflects all the consumer landed."""
    init_lake(env)
    records, _by_partition = _summary_eur_changelog(keys=12, updates=2)
    produce(settings_for, "user_transaction_summary_eur", records, transactional=True)
    run_script("kafka_consumer_datalake.py", "--feeds", "user_transaction_summary_eur", "--until-end", env=env,
               check=True)
    run_script("kafka_consumer_warehouse.py", "--feeds", "user_transaction_summary_eur", "--until-end", env=env,
               check=True)
    synced = run_script("sync_to_mysql.py", "--table", "user_transaction_summary_eur", env=env, check=True)
    assert "user_transaction_summary_eur -> fact_user_transaction_summary_eur" in synced.stdout
    assert "skipped" not in synced.stderr
