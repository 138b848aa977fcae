"""kafka_consumer_datalake.py on the real broker and real files: streams land exactly once by event date."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import orjson
import pyarrow.dataset as ds
from support import REPO, IdleGroupMember, free_port, init_lake, producing, run_script, scrape, unique, wait_for

from lakehouse.catalog import FeedCatalog
from lakehouse.kafka import clients
from lakehouse.lake import commit
from lakehouse.lake import schema as lake_schema
from lakehouse.lake.metadata import FeedMetadata
from lakehouse.produce import events
from lakehouse.quarantine import read_quarantine
from lakehouse.settings import Settings
from lakehouse.storage import LakeStorage

FEED = "transaction_stream"
SCRIPT = "kafka_consumer_datalake.py"


# ---------------------------------------------------------------- helpers
def produce(settings: Settings, topic: str, records: list[tuple[bytes | None, bytes | None]],
            partition: int | None = None, transactional: bool = False, kafka_time: datetime | None = None) -> None:
    """`kafka_time`: the records' Kafka timestamp (default: the producer's clock)."""
    with producing(settings, transactional, **{"message.max.bytes": 5_000_000}) as producer:
        for key, value in records:
            extra = {} if partition is None else {"partition": partition}
            if kafka_time is not None:
                extra["timestamp"] = int(kafka_time.timestamp() * 1000)
            while True:
                try:
                    producer.produce(topic, key=key, value=value, **extra)
                    break
                except BufferError:
                    producer.poll(0.1)
            producer.poll(0)


def produce_events(settings: Settings, count: int, days: int = 3, seed: int = 7,
                   transactional: bool = False) -> list[dict]:
    topic = settings.topic(FEED)
    clients.ensure_topics(settings, {topic: False})
    generated = list(events.generate_events(events.GeneratorOptions(messages=count, seed=seed, days=days)))
    produce(settings, topic, [(e["transaction_id"].encode(), events.serialize(e)) for e in generated],
            transactional=transactional)
    return generated


def feed_glob(lake_root: Path, feed: str = FEED) -> str:
    return f"{lake_root}/streams/{feed}/**/*.parquet"


def query(sql: str) -> list[tuple]:
    return duckdb.sql(sql).fetchall()


def visible_rows(lake_root: Path, feed: str = FEED) -> int:
    """Rows in the feed's files a reader lists now (none yet: 0)."""
    return ds.dataset(str(lake_root / "streams" / feed), format="parquet").count_rows() if (
        lake_root / "streams" / feed).exists() else 0


def landed_offsets(storage: LakeStorage, settings: Settings, feed: str = FEED) -> int:
    """Records landed so far according to the lake metadata (offsets start at 0 on a fresh topic)."""
    return sum(FeedMetadata(storage, feed).offsets(settings.topic(feed)).values())


def start_consumer(env: dict[str, str], *args: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(REPO / SCRIPT), *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=log.open("w"), text=True)


def stop(process: subprocess.Popen, timeout: float = 60) -> str:
    process.send_signal(signal.SIGTERM)
    stdout, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, stdout
    return stdout


def consumed_in_summary(stdout: str, feed: str = FEED) -> int:
    match = re.search(rf"^{feed}\s+(\d+)", stdout, re.MULTILINE)
    assert match, stdout
    return int(match.group(1))


# ---------------------------------------------------------------- tests
def test_100k_events_over_3_days_land_once_in_their_day_partition(env, settings_for, lake_root) -> None:
    init_lake(settings_for)
    produced = produce_events(settings_for, 100_000, days=3)

    result = run_script(SCRIPT, "--feeds", FEED, "--until-end", "--flush-size", "20000",
                        "--group-id", unique("g"), env=env, check=True)

    assert consumed_in_summary(result.stdout) == 100_000
    files = feed_glob(lake_root)
    rows, distinct = query(f"select count(*), count(distinct transaction_id) "
                           f"from read_parquet('{files}', hive_partitioning=true)")[0]
    assert (rows, distinct) == (100_000, 100_000)
    ids = {row[0] for row in query(f"select transaction_id from read_parquet('{files}', hive_partitioning=true)")}
    assert ids == {e["transaction_id"] for e in produced}
    # every row sits in the partition of its event date (UTC), structs stay structs
    per_day = query(f"select year, month, day, count(*) from read_parquet('{files}', hive_partitioning=true) "
                    "where substr(timestamp, 1, 10) = printf('%04d-%02d-%02d', year, month, day) "
                    "and user.city is not null group by all order by all")
    assert len(per_day) == 3 and sum(count for *_day, count in per_day) == 100_000
    expected_days = sorted({e["timestamp"][:10] for e in produced})
    assert [f"{y:04d}-{m:02d}-{d:02d}" for y, m, d, _count in per_day] == expected_days
    # pyarrow reads the feed with hive partitioning and no extra configuration
    table = ds.dataset(str(lake_root / "streams" / FEED), format="parquet", partitioning="hive").to_table()
    assert table.num_rows == 100_000
    assert {"_topic", "_partition", "_offset", "_kafka_timestamp", "_ingested_at", "day"} <= set(table.column_names)

    reconciled = run_script(SCRIPT, "--reconcile", "--feeds", FEED, env=env)
    assert reconciled.returncode == 0, reconciled.stdout
    assert re.search(rf"{FEED}\s+100000\s+100000\s+0\s+yes", reconciled.stdout)


def test_reconciliation_still_balances_after_retention_deleted_landed_days(env, settings_for, lake_root) -> None:
    init_lake(settings_for)
    produced = produce_events(settings_for, 3_000, days=3)
    run_script(SCRIPT, "--feeds", FEED, "--until-end", "--group-id", unique("g"), env=env, check=True)
    oldest = min(e["timestamp"][:10] for e in produced)
    retired = sum(e["timestamp"][:10] == oldest for e in produced)

    run_script("data_retention.py", "--stream", FEED, "--retention-days", "2", env=env, check=True)
    assert query(f"select count(*) from read_parquet('{feed_glob(lake_root)}')")[0][0] == 3_000 - retired

    reconciled = run_script(SCRIPT, "--reconcile", "--feeds", FEED, env=env)
    assert reconciled.returncode == 0, reconciled.stdout
    assert re.search(rf"{FEED}\s+3000\s+3000\s+0\s+yes", reconciled.stdout)
    assert f"include {retired:,} rows data_retention.py has deleted since" in reconciled.stdout


def test_bad_records_are_quarantined_with_their_reason_and_reconciled(env, settings_for, lake_root) -> None:
    storage = init_lake(settings_for)
    topic = settings_for.topic(FEED)
    clients.ensure_topics(settings_for, {topic: False}, partitions=1)
    good = list(events.generate_events(events.GeneratorOptions(messages=2000, seed=3, days=2,
                                                               start=date(2026, 9, 8))))
    template = good[0]
    late_day, kafka_time = date(2026, 8, 30), datetime(2026, 9, 10, 9, 30, tzinfo=UTC)  # pinned: any clock passes

    def variant(**changes: object) -> dict:
        event = {**template, "transaction_id": unique("special"), **changes}
        return {k: v for k, v in event.items() if v is not ...}

    bad = [  # (value, reason expected in the quarantine)
        (b'{"transaction_id": "cut', "not valid JSON"),
        (b'\xff\xfe{"transaction_id": "x"}', "not valid UTF-8"),
        (b"[1, 2, 3]", "not an object"),
        (orjson.dumps(variant(transaction_id=...)), "missing required field 'transaction_id'"),
        (orjson.dumps(variant(timestamp=None)), "missing required field 'timestamp'"),
        (orjson.dumps(variant(amount="12.50")), "amount: expected number, got string"),
        (orjson.dumps(variant(product={**(template["product"] or {}), "quantity": "3"})),
         "product.quantity: expected integer, got string"),
        (orjson.dumps(variant(padding="x" * 1_100_000)), "oversized value"),
        (None, "null value"),
    ]
    special = {  # good records that need care: they land
        "int_amount": variant(amount=12),
        "new_field": variant(channel="web"),
        "bad_time": variant(timestamp="not-a-date"),
        "late": variant(timestamp=late_day.isoformat() + "T08:00:00.000Z"),
    }
    values: list[bytes | None] = [events.serialize(e) for e in good]
    expected_reasons = {}
    injected = bad + [(orjson.dumps(e), None) for e in special.values()]
    positions = range(150, 150 * (len(injected) + 1), 150)  # interleaved, after a first sight of good ones
    for position, (value, reason) in zip(positions, injected, strict=True):
        values.insert(position, value)
        if reason:
            expected_reasons[position] = (value, reason)
    produce(settings_for, topic, [(b"k", value) for value in values], partition=0, kafka_time=kafka_time)

    run_script(SCRIPT, "--feeds", FEED, "--until-end", "--flush-size", "500", "--group-id", unique("g"),
               env=env, check=True)

    quarantined = read_quarantine(storage, FEED).to_pylist()
    assert len(quarantined) == len(bad)
    for row in quarantined:
        value, reason = expected_reasons[row["offset"]]
        assert reason in row["reason"], (row["offset"], row["reason"])
        assert row["raw_value"] == value and row["feed"] == FEED and row["topic"] == topic
    files = feed_glob(lake_root)
    landed = dict(query(f"select transaction_id, make_date(year, month, day) "
                        f"from read_parquet('{files}', hive_partitioning=true, union_by_name=true)"))
    assert set(landed) == {e["transaction_id"] for e in good} | {e["transaction_id"] for e in special.values()}
    assert landed[special["late"]["transaction_id"]] == late_day  # late: its own day
    assert landed[special["bad_time"]["transaction_id"]] == kafka_time.date()  # no usable event time: Kafka's
    assert query(f"select amount from read_parquet('{files}', union_by_name=true) "
                 f"where transaction_id = '{special['int_amount']['transaction_id']}'") == [(12.0,)]

    document = FeedMetadata(storage, FEED).read()
    assert {"name": "channel", "type": "string"} in document["schema"]
    # files written before the new column lack it; the feed's schema spans them all
    whole = commit.read_stream(storage, FEED, lake_schema.to_arrow(
        lake_schema.schema_from_json(document["schema"])))
    assert whole.num_rows == len(landed) and whole.column("channel").to_pylist().count("web") == 1
    assert any("added column channel string" in entry["changes"] for entry in document["schema_history"])
    assert document["counts"]["kafka_time_fallbacks"] == 1
    reconciled = run_script(SCRIPT, "--reconcile", "--feeds", FEED, env=env)
    assert reconciled.returncode == 0
    assert re.search(rf"{FEED}\s+{len(values)}\s+{len(values) - len(bad)}\s+{len(bad)}\s+yes", reconciled.stdout)


def test_topic_without_feed_is_registered_and_upper_case_columns_normalized(env, settings_for, lake_root) -> None:
    storage = init_lake(settings_for)
    topic = settings_for.topic("page_views")
    clients.ensure_topics(settings_for, {topic: False}, partitions=2)
    rows = [{"VIEW_ID": f"v{i}", "PAGE": f"/p/{i % 7}", "DURATION_MS": i} for i in range(3000)]
    kafka_time = datetime(2027, 1, 5, 23, 59, 59, tzinfo=UTC)  # pinned: the rows have no time of their own
    produce(settings_for, topic, [(None, orjson.dumps(row)) for row in rows], kafka_time=kafka_time)

    first = run_script(SCRIPT, "--topics", topic, "--max-messages", "1000", "--group-id", unique("g"),
                       env=env, check=True)
    assert consumed_in_summary(first.stdout, "page_views") == 1000
    rest = run_script(SCRIPT, "--topics", topic, "--until-end", "--group-id", unique("g"), env=env, check=True)
    assert consumed_in_summary(rest.stdout, "page_views") == 2000

    feed = FeedCatalog(storage).get("page_views")
    assert (feed.kind, feed.topic, feed.key_columns) == ("stream", "page_views", [])
    files = feed_glob(lake_root, "page_views")
    assert query(f"select count(*), count(distinct view_id), sum(duration_ms), min(make_date(year, month, day)), "
                 f"max(event_time) from read_parquet('{files}', hive_partitioning=true)") \
        == [(3000, 3000, sum(range(3000)), kafka_time.date(), kafka_time.replace(microsecond=0))]
    assert FeedMetadata(storage, "page_views").read()["counts"]["kafka_time_fallbacks"] == 3000


def test_idle_topic_records_are_on_disk_within_flush_interval(env, settings_for, lake_root, tmp_path) -> None:
    storage = init_lake(settings_for)
    clients.ensure_topics(settings_for, {settings_for.topic(FEED): False})
    log = tmp_path / "consumer.log"
    process = start_consumer(env, "--feeds", FEED, "--flush-interval", "2", "--flush-size", "100000",
                             "--group-id", unique("g"), log=log)
    try:
        wait_for(lambda: "INFO assigned" in log.read_text(), 60, "partition assignment")
        produce_events(settings_for, 50, days=1)
        produced_at = time.monotonic()
        # visible to a reader: the offsets are decided a moment before the files are published (lake.commit)
        wait_for(lambda: landed_offsets(storage, settings_for) == 50 and visible_rows(lake_root) == 50, 10,
                 "50 records landed", step=0.02)
        assert time.monotonic() - produced_at <= 2 + 1
        assert query(f"select count(*) from read_parquet('{feed_glob(lake_root)}')") == [(50,)]
    finally:
        stdout = stop(process)
    assert consumed_in_summary(stdout) == 50


def test_sigterm_lands_what_is_buffered_and_exits_0(env, settings_for, lake_root, tmp_path) -> None:
    init_lake(settings_for)
    produce_events(settings_for, 500)
    log = tmp_path / "consumer.log"
    process = start_consumer(env, "--feeds", FEED, "--flush-interval", "600", "--group-id", unique("g"), log=log)
    wait_for(lambda: "schema:" in log.read_text(), 60, "the first batch")  # decoded, buffered, not landed
    assert not list((lake_root / "streams" / FEED).rglob("*.parquet"))
    stdout = stop(process)
    assert consumed_in_summary(stdout) == 500
    assert query(f"select count(distinct transaction_id) from read_parquet('{feed_glob(lake_root)}')") == [(500,)]


def test_two_consumers_in_one_group_share_six_partitions_exactly_once(env, settings_for, lake_root,
                                                                       tmp_path) -> None:
    storage = init_lake(settings_for)
    group = unique("g")
    first_batch = produce_events(settings_for, 20_000, seed=1)
    args = ("--feeds", FEED, "--group-id", group, "--flush-size", "2000", "--flush-interval", "1")
    first = start_consumer(env, *args, log=tmp_path / "first.log")
    second = None
    try:
        wait_for(lambda: landed_offsets(storage, settings_for) > 0, 60, "the first consumer landing")
        second = start_consumer(env, *args, log=tmp_path / "second.log")
        wait_for(lambda: "INFO assigned" in (tmp_path / "second.log").read_text(), 60, "the rebalance")
        second_batch = produce_events(settings_for, 20_000, seed=2)
        wait_for(lambda: landed_offsets(storage, settings_for) == 40_000, 120, "40,000 records landed", step=0.2)
    finally:
        outputs = [stop(process) for process in (first, second) if process is not None]
    assert all(consumed_in_summary(out) > 0 for out in outputs) and len(outputs) == 2
    assert sum(consumed_in_summary(out) for out in outputs) == 40_000
    ids = [row[0] for row in query(f"select transaction_id from read_parquet('{feed_glob(lake_root)}')")]
    assert len(ids) == 40_000
    assert set(ids) == {e["transaction_id"] for e in first_batch + second_batch}
    assert "revoked" in (tmp_path / "first.log").read_text()  # the first one gave partitions away


def test_until_end_waits_for_the_partitions_another_member_holds_then_lands_them(env, settings_for,
                                                                                   lake_root) -> None:
    """A busy or crashed member still holds partitions: --until-end must not exit with them unlanded."""
    storage = init_lake(settings_for)
    group = unique("g")
    produced = produce_events(settings_for, 6000)
    member = IdleGroupMember(clients.consumer(settings_for, group), settings_for.topic(FEED))
    try:
        wait_for(lambda: member.holds() == 6, 60, "the idle member holding the six partitions")
        process = subprocess.Popen([sys.executable, str(REPO / SCRIPT), "--feeds", FEED, "--until-end",
                                    "--group-id", group], cwd=REPO, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        wait_for(lambda: len(FeedMetadata(storage, FEED).offsets(settings_for.topic(FEED))) == 6 - member.holds()
                 > 0 or process.poll() is not None, 60, "the consumer landing its share of the partitions", step=0.2)
        time.sleep(3)
        assert process.poll() is None, "exited while another member held unlanded partitions"
        assert landed_offsets(storage, settings_for) < 6000
    finally:
        member.leave()
    _out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err[-2000:]
    ids = [row[0] for row in query(f"select transaction_id from read_parquet('{feed_glob(lake_root)}')")]
    assert len(ids) == 6000
    assert set(ids) == {e["transaction_id"] for e in produced}


def test_until_end_finishes_and_lands_the_end_past_transaction_markers(env, settings_for, lake_root) -> None:
    storage = init_lake(settings_for)
    produced = produce_events(settings_for, 3000, transactional=True)
    topic = settings_for.topic(FEED)
    # a commit marker after each partition's records (a just-created topic may report a partition late)
    wait_for(lambda: sum(clients.topic_end_offsets(settings_for, topic).values()) == 3000 + 6, 30, "end offsets")
    ends = clients.topic_end_offsets(settings_for, topic)

    run_script(SCRIPT, "--feeds", FEED, "--until-end", "--group-id", unique("g"), env=env, timeout=120, check=True)
    assert FeedMetadata(storage, FEED).offsets(topic) == ends
    ids = [row[0] for row in query(f"select transaction_id from read_parquet('{feed_glob(lake_root)}')")]
    assert sorted(ids) == sorted(e["transaction_id"] for e in produced)
    reconciled = run_script(SCRIPT, "--reconcile", "--feeds", FEED, env=env)
    assert reconciled.returncode == 0, reconciled.stdout
    assert re.search(rf"{FEED}\s+3000\s+3000\s+0\s+yes", reconciled.stdout), reconciled.stdout


def test_catalog_metadata_shows_counts_and_offsets(env, settings_for) -> None:
    storage = init_lake(settings_for)
    produce_events(settings_for, 1200)
    run_script(SCRIPT, "--until-end", "--group-id", unique("g"), env=env, check=True)
    document = FeedMetadata(storage, FEED).read()
    assert document["counts"]["consumed"] == document["counts"]["landed"] == 1200
    assert [c["name"] for c in document["schema"]][:3] == ["transaction_id", "timestamp", "user"]
    offsets = FeedMetadata(storage, FEED).offsets(settings_for.topic(FEED))
    assert sum(offsets.values()) == 1200 and len(offsets) == 6
    assert document["updated_at"]


def test_a_new_lake_read_by_an_existing_group_lands_every_record(env: dict[str, str], settings_for: Settings,
                                                                 tmp_path: Path) -> None:
    """Kafka's committed offsets belong to whichever lake the group fed before; a new lake starts from the start."""
    init_lake(settings_for)
    generated = produce_events(settings_for, 800)
    group = unique("shared_group")
    run_script(SCRIPT, "--feeds", FEED, "--group-id", group, "--until-end", env=env, check=True)

    other_lake = tmp_path / "other_lake"
    other_env = {**env, "DATA_LAKE_ROOT": str(other_lake)}
    run_script("data_lake_config.py", "init", env=other_env, check=True)
    run_script(SCRIPT, "--feeds", FEED, "--group-id", group, "--until-end", env=other_env, check=True)
    ids = [row[0] for row in query(f"SELECT transaction_id FROM read_parquet('{feed_glob(other_lake)}')")]
    assert sorted(ids) == sorted(e["transaction_id"] for e in generated)


def test_a_recreated_topic_is_refused_instead_of_overwriting_or_skipping(env: dict[str, str],
                                                                        settings_for: Settings) -> None:
    storage = init_lake(settings_for)
    produce_events(settings_for, 300)
    run_script(SCRIPT, "--feeds", FEED, "--until-end", env=env, check=True)
    files_before = {f.path: f.size for f in storage.walk_files(f"streams/{FEED}")}

    topic = settings_for.topic(FEED)
    clients.delete_topics(settings_for, [topic])
    produce_events(settings_for, 20, seed=8)

    result = run_script(SCRIPT, "--feeds", FEED, "--until-end", env=env)
    assert result.returncode == 2
    assert "the topic was recreated" in result.stderr and "Traceback" not in result.stderr
    assert {f.path: f.size for f in storage.walk_files(f"streams/{FEED}")} == files_before


def test_metrics_of_a_running_consumer_count_the_rows_it_landed(env, settings_for, lake_root, tmp_path) -> None:
    storage = init_lake(settings_for)
    produce_events(settings_for, 3000, days=2)
    produce(settings_for, settings_for.topic(FEED), [(b"bad", b"not json"), (b"bad", b"[1, 2]")], partition=4)
    port = free_port()
    process = start_consumer(env, "--feeds", FEED, "--flush-interval", "1", "--group-id", unique("g"),
                             "--metrics-port", str(port), log=tmp_path / "consumer.log")
    feed = f'{{feed="{FEED}"}}'
    try:
        wait_for(lambda: scrape(port).get(f"lakehouse_records_landed_total{feed}") == 3000, 60, "3000 rows landed")
        wait_for(lambda: scrape(port).get(f"lakehouse_records_quarantined_total{feed}") == 2, 10, "2 quarantined")
        lags = {name: value for name, value in scrape(port).items() if name.startswith("lakehouse_consumer_lag")}
        wait_for(lambda: sum(v for n, v in scrape(port).items() if n.startswith("lakehouse_consumer_lag")) == 0,
                 10, "no lag left")
        samples = scrape(port)
    finally:
        stdout = stop(process)
    assert query(f"select count(*) from read_parquet('{feed_glob(lake_root)}')") == [(3000,)]
    assert read_quarantine(storage, FEED).num_rows == 2
    assert samples[f"lakehouse_records_consumed_total{feed}"] == 3002 == consumed_in_summary(stdout)
    assert sorted(lags) == [f'lakehouse_consumer_lag_records{{partition="{p}",topic="{settings_for.topic(FEED)}"}}'
                            for p in range(6)]
    assert samples["lakehouse_flush_duration_seconds_count"] >= 1
    assert samples["lakehouse_commit_duration_seconds_count"] == samples["lakehouse_flush_duration_seconds_count"]
    assert samples["lakehouse_last_commit_timestamp_seconds"] > time.time() - 60
