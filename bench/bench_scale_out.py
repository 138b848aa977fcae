"""Scale-out: several consumer processes in one group sharing a 12-partition topic; exactly-once checked every run.

  python -m bench.bench_scale_out [--events N]

Lake: N raw events on a 12-partition topic; 1, 2, then 3 `kafka_consumer_datalake.py --until-end` processes in
one group, each run into a fresh lake. Warehouse: N user_transaction_summary changelog records (N/3 keys, each
updated three times, in order) on a 12-partition topic; 1, then 2 `kafka_consumer_warehouse.py --until-end`
processes in one group, each run into a fresh database. Figures per run: time to drain (all processes started
together, until the last one exits: start-up included) and the aggregate rate (records / time to drain).
Exactly-once, every run: the lake holds N rows and N distinct transaction ids; the warehouse holds one row per key,
each with its key's last value, and the group's offsets in MySQL are the topic's end offsets.
The machine's cores bound the scaling: the point is the shape, and that nothing breaks or duplicates.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator

import mysql.connector
import orjson
import pyarrow.compute as pc
import pyarrow.dataset as ds

from bench.bench_lake_consumer import produce
from bench.scratch import REPO, scratch_database, script_env, topic_prefix
from lakehouse.catalog import FeedCatalog
from lakehouse.kafka import clients
from lakehouse.produce.derive import table_key
from lakehouse.produce.events import TRANSACTION_TYPES
from lakehouse.settings import Settings, load_settings
from lakehouse.storage import LakeStorage
from lakehouse.warehouse.connection import open_warehouse
from lakehouse.warehouse.migrations import ensure_schema

PARTITIONS = 12
RAW, TABLE, FACT = "transaction_stream", "user_transaction_summary", "fact_user_transaction_summary"
ROUNDS = 3  # each changelog key is updated this many times; its last value carries transaction_count = ROUNDS
LAKE_PROCESSES, WAREHOUSE_PROCESSES = (1, 2, 3), (1, 2)


def run(settings: Settings, events: int = 3_000_000) -> dict:
    with topic_prefix(settings, "scale") as prefix:
        raw, table = f"{prefix}{RAW}", f"{prefix}{TABLE}"
        clients.ensure_topics(settings, {raw: False, table: True}, partitions=PARTITIONS)
        produce(settings, raw, events, seed=11)
        keys = events // ROUNDS
        produce_changelog(settings, table, keys)
        lake = [lake_run(settings, prefix, n, events) for n in LAKE_PROCESSES]
        warehouse = [warehouse_run(settings, prefix, n, keys) for n in WAREHOUSE_PROCESSES]
    return {"events": events, "partitions": PARTITIONS, "changelog_records": keys * ROUNDS, "keys": keys,
            "lake": lake, "warehouse": warehouse}


def lake_run(settings: Settings, prefix: str, processes: int, events: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench_scale_lake_") as root:
        FeedCatalog(LakeStorage(root)).init()
        seconds = _together(processes, ["kafka_consumer_datalake.py", "--feeds", RAW, "--until-end", "--group-id",
                                        f"bench_scale_lake_{uuid.uuid4().hex[:8]}"], script_env(settings, root, prefix))
        ids = ds.dataset(f"{root}/streams/{RAW}", format="parquet", partitioning="hive").to_table(
            columns=["transaction_id"]).column("transaction_id")
        rows, distinct = len(ids), pc.count_distinct(ids).as_py()
    return _figures(processes, events, seconds, exactly_once=rows == distinct == events,
                    check=f"{rows} rows, {distinct} distinct ids, {events} produced")


def warehouse_run(settings: Settings, prefix: str, processes: int, keys: int) -> dict:
    group = f"bench_scale_warehouse_{uuid.uuid4().hex[:8]}"
    with scratch_database(settings) as database, tempfile.TemporaryDirectory(prefix="bench_scale_wh_") as root:
        FeedCatalog(LakeStorage(root)).init()
        scratch = Settings(**{**settings.__dict__, "mysql_database": database})
        with open_warehouse(scratch) as warehouse:
            ensure_schema(warehouse)  # once, before the processes race to it
        seconds = _together(processes, ["kafka_consumer_warehouse.py", "--feeds", TABLE, "--until-end",
                                        "--group-id", group], script_env(settings, root, prefix, database))
        ends = sum(clients.topic_end_offsets(settings, f"{prefix}{TABLE}").values())
        with mysql.connector.connect(**scratch.mysql_params()) as conn:
            cursor = conn.cursor()
            cursor.execute(f"SELECT COUNT(*), COALESCE(SUM(transaction_count = {ROUNDS}), 0) FROM {FACT}")
            rows, last_values = (int(value) for value in cursor.fetchone())
            cursor.execute("SELECT COALESCE(SUM(next_offset), 0) FROM kafka_offsets WHERE consumer_group = %s",
                           (group,))
            committed = int(cursor.fetchone()[0])
    return _figures(processes, keys * ROUNDS, seconds, exactly_once=rows == last_values == keys and committed == ends,
                    check=f"{rows} rows, {last_values} at their last value, {keys} keys; offsets {committed} "
                          f"of {ends}")


def _together(processes: int, command: list[str], env: dict[str, str]) -> float:
    """Seconds from starting `processes` copies of the command at once until the last one exits."""
    started = time.perf_counter()
    running = [subprocess.Popen([sys.executable, str(REPO / command[0]), *command[1:]], cwd=REPO, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
               for _ in range(processes)]
    failures = [(process.returncode, stderr) for process in running
                for _out, stderr in [process.communicate()] if process.returncode != 0]
    elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{command[0]} failed ({failures[0][0]}):\n{failures[0][1][-2000:]}")
    return elapsed


def _figures(processes: int, records: int, seconds: float, exactly_once: bool, check: str) -> dict:
    return {"processes": processes, "drain_s": round(seconds, 1), "records_per_s": round(records / seconds),
            "exactly_once": exactly_once, "check": check}


def produce_changelog(settings: Settings, topic: str, keys: int) -> None:
    """ROUNDS values for each of `keys` keys, round after round (a key's records share a partition: in order)."""
    producer = clients.producer(settings)
    for key, value in _changelog(keys):
        while True:
            try:
                producer.produce(topic, key=key, value=value)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    if producer.flush(60) != 0:
        raise RuntimeError("changelog records not delivered")


def _changelog(keys: int) -> Iterator[tuple[bytes, bytes]]:
    for round_number in range(1, ROUNDS + 1):
        for index in range(keys):
            user, kind = divmod(index, len(TRANSACTION_TYPES))
            total = round(10 + index % 997 * 1.37 + round_number, 2)
            yield table_key(["user_id", "transaction_type"], (f"user_{user:07d}", TRANSACTION_TYPES[kind])), \
                orjson.dumps({
                    "USER_NAME": f"User {user}", "USER_EMAIL": f"user{user}@example.com", "USER_COUNTRY": "DE",
                    "USER_CITY": "Berlin", "TOTAL_AMOUNT": total, "TRANSACTION_COUNT": round_number,
                    "AVG_AMOUNT": round(total / round_number, 4), "MIN_AMOUNT": 1.5, "MAX_AMOUNT": total,
                    "LAST_TRANSACTION_AT": f"2026-11-{1 + user % 28:02d}T12:00:00.000Z"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_scale_out", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=3_000_000)
    result = run(load_settings(), parser.parse_args(argv).events)
    for stage in ("lake", "warehouse"):
        for figures in result[stage]:
            print(f"{stage:9} {figures['processes']} process(es): {figures['drain_s']} s to drain, "
                  f"{figures['records_per_s']:,}/s, exactly-once {'yes' if figures['exactly_once'] else 'NO'} "
                  f"({figures['check']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
