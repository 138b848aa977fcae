"""export_to_data_lake.py end to end: real broker, real lake files (ksqlDB only as the recorded-protocol double)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from confluent_kafka import TopicPartition
from ksqldb_double import KsqlDbDouble, ksqldb_double  # noqa: F401 (pytest fixture)
from support import BOTH_BACKENDS, REPO, producing, run_script

from lakehouse import layout
from lakehouse.catalog import FeedCatalog
from lakehouse.kafka import clients
from lakehouse.lake.snapshots import list_versions, read_snapshot
from lakehouse.produce.events import GeneratorOptions, generate_events, serialize
from lakehouse.settings import Settings
from lakehouse.storage import LakeStorage

PRODUCTS = "product_purchase_counts"


def _product(name: str, count: int, quantity: int, revenue: float, buyers: int) -> dict:
    return {"PRODUCT_NAME": name, "PRODUCT_CATEGORY": "books", "PURCHASE_COUNT": count, "TOTAL_QUANTITY": quantity,
            "TOTAL_REVENUE": revenue, "AVG_PRICE": round(revenue / quantity, 4), "UNIQUE_BUYERS": buyers}


def produce_changelog(settings: Settings, feed: str, records: list[tuple[object, dict | None]]) -> None:
    """Table records as ksqlDB writes them with FORMAT='JSON': JSON key, upper-case JSON value, null = delete."""
    topic = settings.topic(feed)
    clients.ensure_topics(settings, {topic: True})
    clients.wait_until_readable(settings, [topic])
    producer = clients.producer(settings)
    for key, value in records:
        producer.produce(topic, key=json.dumps(key).encode(),
                         value=None if value is None else json.dumps(value).encode())
    assert producer.flush(30) == 0


def export(env: dict[str, str], *args: str, check: bool = True):
    return run_script("export_to_data_lake.py", *args, env=env, check=check)


@pytest.fixture
def lake(env: dict[str, str], lake_root: Path) -> LakeStorage:
    run_script("data_lake_config.py", "init", env=env, check=True)
    return LakeStorage(lake_root)


def test_table_export_writes_a_version_only_when_the_table_changed(
        env: dict[str, str], settings_for: Settings, lake: LakeStorage) -> None:
    produce_changelog(settings_for, PRODUCTS, [
        ("prod_0001", _product("Book one", 1, 2, 40.0, 1)),
        ("prod_0002", _product("Book two", 1, 1, 15.5, 1)),
        ("prod_0003", _product("Book three", 1, 1, 9.99, 1)),
        ("prod_0001", _product("Book one", 2, 5, 100.0, 2)),  # later value replaces the earlier one
        ("prod_0003", None),                                   # tombstone deletes the key
    ])
    first = export(env, "--table", PRODUCTS).stdout
    assert "source: kafka (ksqlDB is not reachable at http://127.0.0.1:9)" in first  # default when absent
    assert f"table {PRODUCTS}: 2 rows from kafka: wrote version=1" in first
    rows = read_snapshot(lake, PRODUCTS, 1).to_pylist()
    assert [(r["product_id"], r["purchase_count"], r["total_quantity"], r["total_revenue"]) for r in rows] == [
        ("prod_0001", 2, 5, 100.0), ("prod_0002", 1, 1, 15.5)]
    assert set(rows[0]) == {"product_id", "product_name", "product_category", "purchase_count", "total_quantity",
                            "total_revenue", "avg_price", "unique_buyers"}

    again = export(env, "--table", PRODUCTS, "--source", "kafka").stdout
    assert f"table {PRODUCTS}: 2 rows from kafka: unchanged, stays version=1" in again
    assert list_versions(lake, PRODUCTS) == [1]

    v1_bytes = (Path(lake.root) / f"tables/{PRODUCTS}/version=1/part-00000.parquet").read_bytes()
    produce_changelog(settings_for, PRODUCTS, [("prod_0004", _product("Book four", 1, 3, 30.0, 1))])
    assert "3 rows from kafka: wrote version=2" in export(env, "--table", PRODUCTS, "--source", "kafka").stdout
    assert list_versions(lake, PRODUCTS) == [1, 2]
    assert (Path(lake.root) / f"tables/{PRODUCTS}/version=1/part-00000.parquet").read_bytes() == v1_bytes
    assert [r["product_id"] for r in read_snapshot(lake, PRODUCTS).to_pylist()] == [
        "prod_0001", "prod_0002", "prod_0004"]


def test_a_symlinked_feed_folder_is_refused_and_nothing_is_written_through_it(
        env: dict[str, str], settings_for: Settings, lake: LakeStorage, tmp_path: Path) -> None:
    produce_changelog(settings_for, PRODUCTS, [("prod_0001", _product("Book one", 1, 2, 40.0, 1))])
    outside = tmp_path / "outside"
    outside.mkdir()
    feed_dir = Path(lake.root) / layout.feed_dir("table", PRODUCTS)
    if feed_dir.exists():
        feed_dir.rmdir()
    feed_dir.symlink_to(outside, target_is_directory=True)
    result = export(env, "--table", PRODUCTS, "--source", "kafka", check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and f"tables/{PRODUCTS} is a symlink" in result.stderr
    assert list(outside.iterdir()) == []


def test_ignore_mode_never_rewrites_an_existing_version(
        env: dict[str, str], settings_for: Settings, lake: LakeStorage) -> None:
    catalog = FeedCatalog(lake)
    feed = catalog.get("user_transaction_summary")
    feed.storage_mode = "ignore"
    catalog.save(feed)
    key = {"USER_ID": "user_00001", "TRANSACTION_TYPE": "purchase"}
    produce_changelog(settings_for, feed.name, [(key, {"USER_NAME": "Ada", "TOTAL_AMOUNT": 10.0,
                                                       "TRANSACTION_COUNT": 1})])
    assert "wrote version=1" in export(env, "--table", feed.name, "--source", "kafka").stdout
    v1 = Path(lake.root) / f"tables/{feed.name}/version=1/part-00000.parquet"
    v1_bytes, v1_mtime = v1.read_bytes(), v1.stat().st_mtime_ns

    produce_changelog(settings_for, feed.name, [(key, {"USER_NAME": "Ada", "TOTAL_AMOUNT": 30.0,
                                                       "TRANSACTION_COUNT": 2})])
    assert "wrote version=2" in export(env, "--table", feed.name, "--source", "kafka").stdout
    assert (v1.read_bytes(), v1.stat().st_mtime_ns) == (v1_bytes, v1_mtime)
    assert read_snapshot(lake, feed.name, 1).to_pylist()[0]["total_amount"] == 10.0
    assert read_snapshot(lake, feed.name, 2).to_pylist() == [
        {"user_id": "user_00001", "transaction_type": "purchase", "user_name": "Ada", "total_amount": 30.0,
         "transaction_count": 2}]


def test_table_dry_run_says_what_it_would_write_and_writes_nothing(
        env: dict[str, str], settings_for: Settings, lake: LakeStorage) -> None:
    produce_changelog(settings_for, PRODUCTS, [("prod_0001", _product("Book one", 1, 2, 40.0, 1)),
                                               ("prod_0002", "not an object")])
    before = sorted(p.relative_to(lake.root) for p in Path(lake.root).rglob("*"))
    dry = export(env, "--table", PRODUCTS, "--source", "kafka", "--dry-run").stdout
    assert f"table {PRODUCTS}: 1 rows from kafka: would write version=1, 1 bad records to quarantine" in dry
    assert "dry run: nothing was written" in dry
    assert sorted(p.relative_to(lake.root) for p in Path(lake.root).rglob("*")) == before

    real = export(env, "--table", PRODUCTS, "--source", "kafka").stdout
    assert "wrote version=1, 1 bad records quarantined" in real
    assert "unchanged, stays version=1" in export(env, "--table", PRODUCTS, "--source", "kafka", "--dry-run").stdout


def test_tables_from_ksqldb_pull_queries(env: dict[str, str], lake: LakeStorage,
                                         ksqldb_double: KsqlDbDouble) -> None:  # noqa: F811
    env = {**env, "KSQLDB_URL": ksqldb_double.url}
    out = export(env, "--table", "user_transaction_summary").stdout
    assert out.splitlines()[0] == f"source: ksqldb (reachable at {ksqldb_double.url})"
    assert "table user_transaction_summary: 3 rows from ksqldb: wrote version=1" in out
    rows = read_snapshot(lake, "user_transaction_summary").to_pylist()
    assert [(r["user_id"], r["transaction_type"], r["transaction_count"], r["last_transaction_at"]) for r in rows] == [
        ("user_00001", "purchase", 2, "2026-11-25T10:15:00.123Z"),
        ("user_00001", "refund", 1, "2026-11-25T11:00:00.000Z"),
        ("user_00002", "deposit", 1, "2026-11-24T08:00:00.500Z")]
    assert "unchanged, stays version=1" in export(env, "--table", "user_transaction_summary").stdout
    assert ksqldb_double.requests[-1]["body"]["ksql"] == "SELECT * FROM USER_TRANSACTION_SUMMARY;"


@pytest.mark.parametrize("drop_connection", [False, True], ids=["body-without-closing-bracket", "dropped-connection"])
def test_a_pull_answer_cut_short_fails_the_export_and_publishes_no_version(
        env: dict[str, str], lake: LakeStorage, ksqldb_double: KsqlDbDouble,  # noqa: F811
        drop_connection: bool) -> None:
    env = {**env, "KSQLDB_URL": ksqldb_double.url}
    ksqldb_double.cut_queries(rows=1, drop_connection=drop_connection)
    result = export(env, "--table", "user_transaction_summary", check=False)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ksqlDB /query") and "nothing of it was used" in result.stderr
    assert list_versions(lake, "user_transaction_summary") == []


def test_bad_invocations_fail_with_one_line(env: dict[str, str], lake: LakeStorage) -> None:
    usage = export(env, "--table", PRODUCTS, "--date", "2026-11-25", check=False)
    assert usage.returncode == 2 and "--date applies to streams" in usage.stderr
    absent = export(env, "--table", PRODUCTS, "--source", "ksqldb", check=False)
    assert absent.returncode == 2 and "Traceback" not in absent.stderr
    assert absent.stderr.strip() == ("error: ksqlDB is not reachable at http://127.0.0.1:9 ([Errno 111] "
                                     "Connection refused); check KSQLDB_URL")
    wrong_kind = export(env, "--stream", PRODUCTS, check=False)
    assert wrong_kind.returncode == 2 and f"{PRODUCTS} is a table feed, not a stream feed" in wrong_kind.stderr


# ---------------------------------------------------------------------- streams
STREAM = "transaction_stream"
START = date(2026, 11, 20)


def produce_events(settings: Settings, seed: int, messages: int, transactional: bool = False) -> list[dict]:
    """Raw events over 3 days, as kafka_producer.py sends them (key = transaction id)."""
    topic = settings.topic(STREAM)
    clients.ensure_topics(settings, {topic: False})
    clients.wait_until_readable(settings, [topic])
    events = list(generate_events(GeneratorOptions(messages=messages, seed=seed, users=50, days=3, start=START)))
    with producing(settings, transactional) as producer:
        for event in events:
            producer.produce(topic, key=event["transaction_id"].encode(), value=serialize(event))
    return events


def landed_ids(storage: LakeStorage, day: date | None = None) -> list[str]:
    folder = layout.stream_partition_dir(STREAM, day) if day else layout.feed_dir("stream", STREAM)
    files = [f.path for f in storage.walk_files(folder) if f.path.endswith(".parquet")]
    return [i for path in files for i in storage.read_parquet(path).column("transaction_id").to_pylist()]


def per_day(events: list[dict]) -> Counter:
    return Counter(date.fromisoformat(e["timestamp"][:10]) for e in events)


def consume(env: dict[str, str], *args: str) -> None:
    group = f"{env['LAKEHOUSE_TOPIC_PREFIX']}lakehouse-datalake"  # the group export joins in this environment
    run_script("kafka_consumer_datalake.py", "--feeds", STREAM, "--group-id", group, *args, env=env, check=True)


@BOTH_BACKENDS
def test_stream_export_lands_only_what_the_consumer_has_not(
        env: dict[str, str], settings_for: Settings, lake: LakeStorage) -> None:
    events = produce_events(settings_for, seed=1, messages=3000)
    consume(env, "--max-messages", "1000")
    assert len(landed_ids(lake)) == 1000
    events += produce_events(settings_for, seed=2, messages=1000)

    out = export(env, "--stream", STREAM, "--source", "kafka").stdout
    assert f"stream {STREAM}: 3000 records read, 3000 rows landed" in out
    ids = landed_ids(lake)
    assert sorted(ids) == sorted(e["transaction_id"] for e in events)  # every event once, no duplicates
    for day, count in per_day(events).items():
        assert len(landed_ids(lake, day)) == count

    consume(env, "--until-end")
    assert "0 records read, 0 rows landed" in export(env, "--stream", STREAM, "--source", "kafka").stdout
    assert sorted(landed_ids(lake)) == sorted(ids)


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace to watch the file system calls")
def test_a_new_day_folder_is_durable_before_the_offsets_pointing_into_it(
        env: dict[str, str], settings_for: Settings, lake: LakeStorage, tmp_path: Path) -> None:
    """A crash must not keep offsets past records whose folder was lost: a new day folder's parent is fsynced before
    the partition state moves on again (the decision that lists a day's file comes before the folder, with the file
    durable in the staging, which the next claim publishes from)."""
    events = produce_events(settings_for, seed=3, messages=300)
    trace = tmp_path / "syscalls"
    result = subprocess.run(["strace", "-f", "-qq", "-o", str(trace), "-e", "trace=mkdir,openat,fsync,rename,renameat,"
                             "renameat2", sys.executable, "export_to_data_lake.py", "--stream", STREAM, "--source",
                             "kafka"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    calls = trace.read_text().splitlines()
    root = Path(lake.root).resolve()
    offsets = re.compile(r"rename\w*\(.*" + re.escape(f'"{root / layout.offsets_dir(STREAM)}/'))
    for day in per_day(events):
        folder = root / layout.stream_partition_dir(STREAM, day)
        made = next(i for i, call in enumerate(calls) if f'mkdir("{folder}"' in call)
        recorded = next((i for i in range(made, len(calls)) if offsets.search(calls[i])), len(calls))
        parent_fds = [m.group(1) for call in calls[made:recorded] if (m := re.search(
            rf'openat\(AT_FDCWD, "{re.escape(str(folder.parent))}", O_RDONLY[^)]*\) = (\d+)', call))]
        assert any(re.search(rf"fsync\({fd}\)", call) for fd in parent_fds for call in calls[made:recorded]), day


def test_stream_dry_run_counts_rows_per_day_and_writes_nothing(
        env: dict[str, str], settings_for: Settings, lake: LakeStorage) -> None:
    events = produce_events(settings_for, seed=3, messages=2000)
    bad_topic = settings_for.topic(STREAM)
    producer = clients.producer(settings_for)
    producer.produce(bad_topic, key=b"bad", value=b"{not json")
    assert producer.flush(30) == 0
    before = sorted(p.relative_to(lake.root) for p in Path(lake.root).rglob("*"))
    out = export(env, "--all", "--source", "kafka", "--dry-run").stdout
    days = ", ".join(f"{layout.date_partition(d)}: {n}" for d, n in sorted(per_day(events).items()))
    assert f"stream {STREAM}: would land 2000 rows of 2001 records not landed yet (1 to quarantine): {days}" in out
    assert "dry run: nothing was written" in out
    assert sorted(p.relative_to(lake.root) for p in Path(lake.root).rglob("*")) == before


def _day_files(lake: LakeStorage, day: date) -> dict[str, bytes]:
    folder = layout.stream_partition_dir(STREAM, day)
    return {name: lake.read_bytes(f"{folder}/{name}") for name in lake.list_dir(folder)}


@BOTH_BACKENDS
def test_backfill_rebuilds_one_day_atomically_without_duplicates(
        env: dict[str, str], settings_for: Settings, lake: LakeStorage) -> None:
    events = produce_events(settings_for, seed=4, messages=3000)
    export(env, "--stream", STREAM, "--source", "kafka")
    day, other = START + timedelta(days=1), START
    other_files = _day_files(lake, other)
    expected = sorted(e["transaction_id"] for e in events if e["timestamp"].startswith(day.isoformat()))
    lake.delete_file(f"{layout.stream_partition_dir(STREAM, day)}/{next(iter(_day_files(lake, day)))}")  # damaged
    assert len(landed_ids(lake, day)) < len(expected)

    events += produce_events(settings_for, seed=5, messages=600)  # not landed yet when the backfill runs
    dry = export(env, "--stream", STREAM, "--date", day.isoformat(), "--dry-run").stdout
    assert f"would replace {layout.date_partition(day)}: {len(landed_ids(lake, day))} rows -> {len(expected)} rows" \
        in dry
    out = export(env, "--stream", STREAM, "--date", day.isoformat()).stdout
    assert f"replaced {layout.date_partition(day)}: " in out and f"-> {len(expected)} rows" in out
    assert sorted(landed_ids(lake, day)) == expected  # only what the lake had landed, each record once
    assert list(_day_files(lake, day)) == [f"{settings_for.topic(STREAM)}+backfill+{day}.parquet"]
    assert _day_files(lake, other) == other_files  # other days untouched
    assert not [f for f in lake.walk_files("_staging") if f.path.endswith(".parquet")]

    export(env, "--stream", STREAM)  # the newer records land into their days, the rebuilt one included
    assert sorted(landed_ids(lake)) == sorted(e["transaction_id"] for e in events)
    for each_day, count in per_day(events).items():
        assert len(landed_ids(lake, each_day)) == count
    rebuilt_again = export(env, "--stream", STREAM, "--date", day.isoformat()).stdout  # replaces its own file
    assert f"-> {per_day(events)[day]} rows" in rebuilt_again
    assert sorted(landed_ids(lake)) == sorted(e["transaction_id"] for e in events)


def test_export_and_backfill_read_past_the_transaction_markers_ending_each_partition(
        env: dict[str, str], settings_for: Settings, lake: LakeStorage) -> None:
    events = produce_events(settings_for, seed=6, messages=1200, transactional=True)  # as ksqlDB exactly-once
    assert "1200 records read, 1200 rows landed" in export(env, "--stream", STREAM, "--source", "kafka").stdout
    day = START + timedelta(days=1)
    out = export(env, "--stream", STREAM, "--date", day.isoformat()).stdout
    assert f"replaced {layout.date_partition(day)}: " in out
    assert sorted(landed_ids(lake, day)) == sorted(e["transaction_id"] for e in events
                                                   if e["timestamp"].startswith(day.isoformat()))
    assert sorted(landed_ids(lake)) == sorted(e["transaction_id"] for e in events)


def _crash_mid_swap(lake: LakeStorage, day: date) -> tuple[Path, Path]:
    """A backfill killed mid-swap: the old day renamed away, its half-staged replacement never renamed in."""
    day_dir = Path(lake.root) / layout.stream_partition_dir(STREAM, day)
    retired = Path(lake.root) / f"_staging/backfill/{STREAM}/{day.isoformat()}.0123456789ab.retired"
    retired.parent.mkdir(parents=True)
    day_dir.rename(retired)
    (retired.parent / f"{day.isoformat()}.0123456789ab").mkdir()
    return day_dir, retired


def test_a_backfill_interrupted_mid_swap_is_repaired_by_the_next_one(
        env: dict[str, str], settings_for: Settings, lake: LakeStorage) -> None:
    events = produce_events(settings_for, seed=6, messages=1500)
    export(env, "--stream", STREAM, "--source", "kafka")
    day = START + timedelta(days=2)
    day_dir, retired = _crash_mid_swap(lake, day)

    export(env, "--stream", STREAM, "--date", START.isoformat())
    assert sorted(landed_ids(lake)) == sorted(e["transaction_id"] for e in events)
    assert day_dir.is_dir() and not any(retired.parent.iterdir())


def test_backfill_never_rewrites_a_day_of_an_ignore_mode_stream(
        env: dict[str, str], settings_for: Settings, lake: LakeStorage) -> None:
    produce_events(settings_for, seed=7, messages=500)
    export(env, "--stream", STREAM, "--source", "kafka")
    run_script("manage_feeds.py", "update", STREAM, "--storage-mode", "ignore", env=env, check=True)
    day_dir = Path(lake.root) / layout.stream_partition_dir(STREAM, START)
    before = {p.name: p.read_bytes() for p in day_dir.iterdir()}

    refused = export(env, "--stream", STREAM, "--date", START.isoformat(), check=False)
    assert refused.returncode == 2
    assert "storage mode ignore" in refused.stderr and "never rewritten" in refused.stderr
    assert {p.name: p.read_bytes() for p in day_dir.iterdir()} == before


def expire_from_kafka(settings: Settings, topic: str) -> None:
    """What Kafka's retention does to old records: the low watermark of every partition moves to its end."""
    ends = clients.topic_end_offsets(settings, topic)
    admin = clients.admin_client(settings)  # kept until the broker answers: a dropped client never sends
    futures = admin.delete_records([TopicPartition(topic, partition, end) for partition, end in ends.items()],
                                   request_timeout=30)
    for future in futures.values():
        future.result(timeout=60)


def test_backfill_refuses_to_replace_a_day_whose_records_kafka_has_expired(
        env: dict[str, str], settings_for: Settings, lake: LakeStorage) -> None:
    events = produce_events(settings_for, seed=8, messages=300)
    export(env, "--stream", STREAM, "--source", "kafka")
    day_rows = sorted(e["transaction_id"] for e in events if e["timestamp"].startswith(START.isoformat()))
    lineage = pa.concat_tables(lake.read_parquet(f.path).select(["_partition", "_offset"]) for f in
                               lake.walk_files(layout.stream_partition_dir(STREAM, START)))
    firsts = lineage.group_by("_partition").aggregate([("_offset", "min")]).sort_by("_partition").to_pylist()
    topic = settings_for.topic(STREAM)
    ends = clients.topic_end_offsets(settings_for, topic)
    expire_from_kafka(settings_for, topic)

    refused = export(env, "--stream", STREAM, "--date", START.isoformat(), check=False)
    missing = ", ".join(f"partition {row['_partition']} offsets {row['_offset_min']}-{ends[row['_partition']] - 1}"
                        for row in firsts)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.strip() == (
        f"error: stream {STREAM}: cannot rebuild {layout.date_partition(START)}: topic {topic} no longer holds "
        f"{missing} (expired from Kafka); the day is kept as it is (--allow-shrink rebuilds it from what is left)")
    assert sorted(landed_ids(lake, START)) == day_rows

    shrunk = export(env, "--stream", STREAM, "--date", START.isoformat(), "--allow-shrink").stdout
    assert f"replaced {layout.date_partition(START)}: {len(day_rows)} rows -> 0 rows" in shrunk
    assert landed_ids(lake, START) == []


def test_recovery_of_an_interrupted_swap_keeps_the_only_copy_of_a_day(
        env: dict[str, str], settings_for: Settings, lake: LakeStorage) -> None:
    events = produce_events(settings_for, seed=9, messages=1500)
    export(env, "--stream", STREAM, "--source", "kafka")
    day = START + timedelta(days=2)
    day_dir, retired = _crash_mid_swap(lake, day)  # ... its replacement never renamed in ...
    # ... and before any backfill ran again, the consumer landed newer records of that day into a new folder.
    events += produce_events(settings_for, seed=10, messages=600)
    export(env, "--stream", STREAM)
    assert day_dir.is_dir()

    export(env, "--stream", STREAM, "--date", START.isoformat())
    assert sorted(landed_ids(lake)) == sorted(e["transaction_id"] for e in events)
    assert not any(retired.parent.iterdir())


def test_backfill_refuses_to_leave_a_day_with_fewer_rows_unless_allowed(
        env: dict[str, str], settings_for: Settings, lake: LakeStorage) -> None:
    topic = settings_for.topic(STREAM)
    clients.ensure_topics(settings_for, {topic: False})
    clients.wait_until_readable(settings_for, [topic])
    record_time = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1000)  # another day than the events' own
    with producing(settings_for) as producer:
        for event in generate_events(GeneratorOptions(messages=300, seed=13, users=50, days=1, start=START)):
            producer.produce(topic, key=event["transaction_id"].encode(), value=serialize(event),
                             timestamp=record_time)
    export(env, "--stream", STREAM, "--source", "kafka")
    held = sorted(landed_ids(lake, START))
    assert len(held) == 300
    # The feed now dates its events by a field that holds no time: a rebuild dates them by their record time.
    run_script("manage_feeds.py", "update", STREAM, "--timestamp-field", "currency", env=env, check=True)

    refused = export(env, "--stream", STREAM, "--date", START.isoformat(), check=False)
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        f"error: stream {STREAM}: a rebuild of {layout.date_partition(START)} would hold 0 rows, fewer than the "
        f"300 it holds; the day is kept as it is (--allow-shrink replaces it anyway)")
    assert sorted(landed_ids(lake, START)) == held
