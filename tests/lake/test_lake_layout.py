"""The lake's folder layout: integer partitions and versions in DuckDB and pyarrow, a typed event time, on any date.

Every date here is pinned: these tests pass whatever day the clock shows.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import orjson
import pyarrow as pa
import pyarrow.dataset as ds
from support import REPO, producing, run_script, unique

from lakehouse import layout
from lakehouse.catalog import FeedCatalog
from lakehouse.kafka import clients
from lakehouse.lake import lineage, snapshots
from lakehouse.produce import events
from lakehouse.settings import Settings
from lakehouse.storage import LakeStorage

FEED = "transaction_stream"
PINNED_DAYS = (date(2026, 9, 9), date(2027, 1, 5))


# ---------------------------------------------------------------- pure layout
def test_partition_folders_are_unpadded_integers_and_parse_back() -> None:
    assert layout.date_partition(date(2026, 9, 7)) == "year=2026/month=9/day=7"
    assert layout.date_partition(date(2026, 12, 31)) == "year=2026/month=12/day=31"
    assert layout.parse_partition_date("streams/f/year=2028/month=2/day=29/x.parquet") == date(2028, 2, 29)
    assert layout.parse_partition_date("streams/f/year=2026/month=09/day=07") is None, "layout 1 is not canonical"
    assert layout.parse_partition_date("streams/f/year=2026/month=09/day=07", legacy=True) == date(2026, 9, 7)
    assert layout.parse_partition_date("streams/f/year=2027/month=2/day=29") is None, "no 29 February in 2027"
    assert layout.parse_partition_date("streams/f/year=2026/month=1/day=17x") is None


def test_version_folders_are_plain_integers() -> None:
    assert layout.version_folder(10) == "version=10"
    assert [layout.parse_version(name) for name in ("version=10", "version=v10", "version=010", "version=")] \
        == [10, None, None, None]


# ---------------------------------------------------------------- helpers
def _produce_pinned(settings: Settings, count_per_day: int, seed: int = 0) -> list[dict]:
    """Events on the pinned days, with Kafka record times on those days too."""
    topic = settings.topic(FEED)
    clients.ensure_topics(settings, {topic: False}, partitions=3)
    produced = []
    with producing(settings) as producer:
        for day in PINNED_DAYS:
            options = events.GeneratorOptions(messages=count_per_day, seed=seed + day.day, days=1,
                                             start=day)
            for event in events.generate_events(options):
                moment = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
                producer.produce(topic, key=event["transaction_id"].encode(), value=events.serialize(event),
                                 timestamp=int(moment.timestamp() * 1000))
                producer.poll(0)
                produced.append(event)
    return produced


def _land(env: dict[str, str], settings: Settings) -> None:
    FeedCatalog(LakeStorage(settings.data_lake_root)).init()
    run_script("kafka_consumer_datalake.py", "--feeds", FEED, "--until-end", "--group-id", unique("g"),
               env=env, check=True)


# ---------------------------------------------------------------- engines read integers on every date
def test_september_and_january_read_as_integers_in_duckdb_and_pyarrow(env, settings_for, lake_root) -> None:
    produced = _produce_pinned(settings_for, 300)
    _land(env, settings_for)
    glob = f"{lake_root}/streams/{FEED}/**/*.parquet"

    relation = duckdb.sql(f"select * from read_parquet('{glob}', hive_partitioning = true)")
    types = dict(zip(relation.columns, (str(t) for t in relation.types), strict=True))
    assert (types["year"], types["month"], types["day"]) == ("BIGINT", "BIGINT", "BIGINT")
    assert types["event_time"] == "TIMESTAMP WITH TIME ZONE"
    per_day = duckdb.sql(f"select make_date(year, month, day) as d, count(*) from read_parquet('{glob}', "
                         "hive_partitioning = true) group by d order by d").fetchall()
    assert per_day == [(day, 300) for day in PINNED_DAYS]
    assert duckdb.sql(f"select count(*) from read_parquet('{glob}', hive_partitioning = true) "
                      "where month = 9 and day = 9").fetchall()[0] == (300,)
    # event_time is the event's own time, typed, and its UTC date is the partition's date
    assert duckdb.sql(f"select count(*) from read_parquet('{glob}', hive_partitioning = true) "
                      "where cast(timezone('UTC', event_time) as date) <> make_date(year, month, day)").fetchall()[0] \
        == (0,)

    table = ds.dataset(f"{lake_root}/streams/{FEED}", format="parquet", partitioning="hive").to_table()
    assert [table.schema.field(name).type for name in ("year", "month", "day")] == [pa.int32()] * 3
    assert table.schema.field("event_time").type == pa.timestamp("ms", tz="UTC")
    times = dict(zip(table.column("transaction_id").to_pylist(), table.column("event_time").to_pylist(),
                     strict=True))
    for event in produced:
        expected = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
        assert times[event["transaction_id"]] == expected.astimezone(UTC)
    months = ds.dataset(f"{lake_root}/streams/{FEED}", format="parquet", partitioning="hive") \
        .to_table(filter=ds.field("month") == 9)
    assert months.num_rows == 300

    storage = LakeStorage(lake_root)
    feed = FeedCatalog(storage).get("product_purchase_counts")
    for number in range(1, 12):
        snapshots.write_snapshot(storage, feed, [{"product_id": "p1", "purchase_count": number}])
    spark = _spark_reads(lake_root)
    assert (spark["year"], spark["month"], spark["day"], spark["version"]) == ("int",) * 4
    assert spark["per_day"] == [["2026-09-09", 300], ["2027-01-05", 300]]
    assert spark["newest_version"] == 11


_SPARK_READ = """
import json, sys
from pyspark.sql import SparkSession
spark = SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false").getOrCreate()
spark.sparkContext.setLogLevel("ERROR")
stream = spark.read.parquet(sys.argv[1] + "/streams/transaction_stream")
tables = spark.read.parquet(sys.argv[1] + "/tables/product_purchase_counts")
types = {f.name: f.dataType.simpleString() for f in stream.schema.fields + tables.schema.fields}
per_day = stream.selectExpr("cast(make_date(year, month, day) as string) as d").groupBy("d").count().orderBy("d")
print(json.dumps({**types, "per_day": [[row.d, row["count"]] for row in per_day.collect()],
                  "newest_version": tables.agg({"version": "max"}).collect()[0][0]}))
"""


def _spark_reads(lake_root: Path) -> dict:
    """What Spark (local mode, in its own process) infers from the lake's folders."""
    result = subprocess.run([sys.executable, "-c", _SPARK_READ, str(lake_root)], capture_output=True, text=True,
                            timeout=300, env={**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"})
    assert result.returncode == 0, result.stderr[-3000:]
    return orjson.loads(result.stdout.strip().splitlines()[-1])


def test_eleven_table_versions_sort_numerically(lake_root: Path) -> None:
    storage = LakeStorage(lake_root)
    FeedCatalog(storage).init()
    feed = FeedCatalog(storage).get("product_purchase_counts")
    for number in range(1, 12):
        snapshots.write_snapshot(storage, feed, [{"product_id": "p1", "purchase_count": number}])
    folder = lake_root / "tables/product_purchase_counts"
    assert "version=10" in {p.name for p in folder.iterdir()}
    newest = duckdb.sql(f"select max(version), count(distinct version) from read_parquet('{folder}/*/*.parquet', "
                        "hive_partitioning = true)").fetchall()[0]
    assert newest == (11, 11)
    current = duckdb.sql(f"select purchase_count from read_parquet('{folder}/*/*.parquet', hive_partitioning = true) "
                         "order by version desc limit 1").fetchall()[0]
    assert current == (11,)
    table = ds.dataset(str(folder), format="parquet", partitioning="hive").to_table()
    assert table.schema.field("version").type == pa.int32()
    assert max(table.column("version").to_pylist()) == 11


# ---------------------------------------------------------------- README's snippets run as written
def _readme_snippets() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("## Querying the lake", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_readme_querying_the_lake_snippets_work_as_written(env, settings_for, lake_root, tmp_path) -> None:
    snippets = _readme_snippets()
    assert len(snippets) >= 2, "README's 'Querying the lake' lost its DuckDB and pyarrow snippets"
    _produce_pinned(settings_for, 50)
    _land(env, settings_for)
    storage = LakeStorage(lake_root)
    feed = FeedCatalog(storage).get("product_purchase_counts")
    snapshots.write_snapshot(storage, feed, [{"product_id": "p1", "purchase_count": 1}])
    snapshots.write_snapshot(storage, feed, [{"product_id": "p1", "purchase_count": 2}])
    (tmp_path / "data_lake").symlink_to(lake_root, target_is_directory=True)  # the snippets' default root
    for snippet in snippets:
        result = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, f"snippet failed:\n{snippet}\n{result.stderr[-2000:]}"
        assert result.stdout.strip(), f"snippet printed nothing:\n{snippet}"


# ---------------------------------------------------------------- migration from layout 1
def make_layout_1(storage: LakeStorage) -> None:
    """Turn a lake into what the previous release wrote: padded folders, version=vN, no event_time, no marker."""
    root = storage.local_root
    for kind_folder in (layout.STREAMS, layout.QUARANTINE):
        for stored in storage.walk_files(kind_folder):
            day = layout.parse_partition_date(stored.path)
            if day is None:
                continue
            old = stored.path.replace(layout.date_partition(day),
                                      f"year={day.year:04d}/month={day.month:02d}/day={day.day:02d}")
            table = storage.read_parquet(stored.path)
            if lineage.EVENT_TIME.name in table.column_names:
                table = table.drop_columns([lineage.EVENT_TIME.name])
            storage.delete_file(stored.path)
            storage.write_parquet(old, table)
    for folder in sorted(root.glob("*/*/year=*/month=*"), reverse=True) + sorted(root.glob("*/*/year=*")):
        if folder.is_dir() and not any(folder.rglob("*.parquet")):
            subprocess.run(["rm", "-r", str(folder)], check=True)
    for version in root.glob("tables/*/version=*"):
        version.rename(version.with_name(f"version=v{version.name.removeprefix('version=')}"))
    (root / layout.LAYOUT_FILE).unlink()


def lake_facts(lake_root: Path) -> tuple:
    glob = f"{lake_root}/streams/{FEED}/**/*.parquet"
    return duckdb.sql(f"select count(*), count(distinct transaction_id), sum(amount), "
                      f"min(make_date(year, month, day)), max(make_date(year, month, day)) "
                      f"from read_parquet('{glob}', hive_partitioning = true)").fetchall()[0]


def test_migrate_moves_a_layout_1_lake_exactly_once_and_consumers_resume(env, settings_for, lake_root) -> None:
    produced = _produce_pinned(settings_for, 200)
    topic = settings_for.topic(FEED)
    with producing(settings_for) as producer:  # one bad record: its quarantine folder moves too
        producer.produce(topic, key=b"bad", value=b"{not json", partition=0,
                         timestamp=int(datetime(2026, 9, 9, 12, tzinfo=UTC).timestamp() * 1000))
    _land(env, settings_for)
    storage = LakeStorage(lake_root)
    feed = FeedCatalog(storage).get("product_purchase_counts")
    for number in (1, 2, 3):
        snapshots.write_snapshot(storage, feed, [{"product_id": "p1", "purchase_count": number}])
    make_layout_1(storage)
    assert (lake_root / f"streams/{FEED}/year=2026/month=09/day=09").is_dir()
    before = duckdb.sql(f"select count(*), count(distinct transaction_id), sum(amount) from read_parquet("
                        f"'{lake_root}/streams/{FEED}/**/*.parquet')").fetchall()[0]
    assert before[0] == before[1] == len(produced)

    for script, args in (("data_lake_config.py", ["status"]), ("data_retention.py", ["--all", "--dry-run"]),
                         ("kafka_consumer_datalake.py", ["--feeds", FEED, "--until-end"]),
                         ("export_to_data_lake.py", ["--stream", FEED])):
        refused = run_script(script, *args, env=env)
        assert refused.returncode == 2, (script, refused.stdout, refused.stderr)
        assert refused.stderr.strip().count("\n") == 0 and "python data_lake_config.py migrate" in refused.stderr

    dry = run_script("data_lake_config.py", "migrate", "--dry-run", env=env, check=True)
    assert f"streams/{FEED}: would rename 2 day folders" in dry.stdout
    assert f"streams/{FEED}: would add event_time to" in dry.stdout
    assert "tables/product_purchase_counts: would rename 3 version folders" in dry.stdout
    assert (lake_root / f"streams/{FEED}/year=2026/month=09/day=09").is_dir(), "a dry run changed the lake"

    done = run_script("data_lake_config.py", "migrate", env=env, check=True)
    assert "moved the lake from layout 1 to layout 2" in done.stdout
    assert lake_facts(lake_root) == (*before, *PINNED_DAYS)
    assert not list(lake_root.glob("**/month=0*")) and not list(lake_root.glob("tables/*/version=v*"))
    assert sorted(p.name for p in (lake_root / "tables/product_purchase_counts").iterdir()) \
        == ["version=1", "version=2", "version=3"]
    assert snapshots.read_snapshot(LakeStorage(lake_root), "product_purchase_counts").to_pylist() \
        == [{"product_id": "p1", "purchase_count": 3}]
    quarantined = list(lake_root.glob(f"_quarantine/{FEED}/year=*/month=*/day=*/*.parquet"))
    assert quarantined and all("month=0" not in str(path) for path in quarantined)
    again = run_script("data_lake_config.py", "migrate", env=env, check=True)
    assert "nothing to do" in again.stdout

    # the landed offsets stay valid: more records land once, nothing is landed twice
    more = _produce_pinned(settings_for, 20, seed=100)
    run_script("kafka_consumer_datalake.py", "--feeds", FEED, "--until-end", "--group-id", unique("g"),
               env=env, check=True)
    count, distinct, _sum, *_ = lake_facts(lake_root)
    assert count == distinct == len(produced) + len(more)
    reconciled = run_script("kafka_consumer_datalake.py", "--reconcile", "--feeds", FEED, env=env)
    assert reconciled.returncode == 0, reconciled.stdout


def test_migrate_killed_at_any_moment_finishes_exactly_once(env, settings_for, lake_root) -> None:
    produced = _produce_pinned(settings_for, 400)
    # small flushes: many files, so the kills land in the middle of the work
    FeedCatalog(LakeStorage(settings_for.data_lake_root)).init()
    run_script("kafka_consumer_datalake.py", "--feeds", FEED, "--until-end", "--flush-size", "20",
               "--group-id", unique("g"), env=env, check=True)
    storage = LakeStorage(lake_root)
    feed = FeedCatalog(storage).get("product_purchase_counts")
    for number in range(1, 6):
        snapshots.write_snapshot(storage, feed, [{"product_id": "p1", "purchase_count": number}])
    expected = lake_facts(lake_root)
    make_layout_1(storage)

    # SIGKILL right after the 1st, then the 2nd, ... change the migration reports, until a run gets to its end
    kills = 0
    while True:
        process = subprocess.Popen([sys.executable, str(REPO / "data_lake_config.py"), "migrate"], cwd=REPO,
                                   env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        changes = 0
        for line in process.stderr:
            changes += " INFO " in line
            if changes > kills:
                process.kill()
                break
        if process.wait() == 0:
            break
        assert process.returncode == -signal.SIGKILL
        kills += 1
        assert not (lake_root / layout.LAYOUT_FILE).exists(), "the lake opened before the migration finished"
    assert kills >= 3, f"only {kills} kills: the migration ran past the kill points"
    assert lake_facts(lake_root) == expected
    assert lake_facts(lake_root)[0] == len(produced)
    assert not list(lake_root.glob("**/month=0*")) and not list(lake_root.glob("tables/*/version=v*"))
    table = ds.dataset(f"{lake_root}/streams/{FEED}", format="parquet", partitioning="hive").to_table()
    assert table.column("event_time").null_count == 0
    assert orjson.loads((lake_root / layout.LAYOUT_FILE).read_bytes()) == {"layout": layout.LAYOUT_VERSION}
