"""Warehouse bulk upsert vs the server's raw load speed, in one run on one scratch database.

  python -m bench.bench_warehouse [--rows N]

Ours = the production path, validation included, timed from decoded rows to the commit:
Mapping.convert_batch (column-at-once validation; what sync_to_mysql.py and the warehouse consumer run),
the last valid row per key (sync.last_per_key), then StarMapping.write (the fact rows serialized by Arrow
in the background while dim_users is merged, then loaded with LOAD DATA ... REPLACE), one transaction,
committed. N user_transaction_summary rows, in these variants:
  * new keys: into empty tables, rows as decoded records (dicts: the consumer, sync --source kafka/ksqldb);
  * updates: new values for the same keys, every row an update, rows as decoded records;
  * updates from the lake: the same, rows as the lake snapshot's Arrow table (sync's default source);
  * sync run: the same, plus the fact table cleared first in the transaction (what a sync run does).
Ceiling: LOAD DATA LOCAL INFILE of the same fact rows, already in a file (snapshot stamps set by the
statement, as ours does), into an empty copy of the fact table (no foreign key, nothing else in the
transaction). Ratio = our rows/s / ceiling rows/s.
Server floor for updates: the same raw LOAD DATA ... REPLACE of new values for those keys into that copy,
no client work, no dimension: what the server alone needs when every row is an update.
Headline: updates with validation (decoded records), the slowest production variant. Goals (issue 20): new keys
at 0.8 of the ceiling; updates (every update variant) at 0.8 of the server's floor for updates.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime

import mysql.connector
import pyarrow as pa
from mysql.connector.cursor import MySQLCursor

from lakehouse.catalog import builtin_feeds
from lakehouse.produce.events import TRANSACTION_TYPES
from lakehouse.settings import Settings, load_settings
from lakehouse.warehouse import upsert
from lakehouse.warehouse.base import Rows, Snapshot
from lakehouse.warehouse.connection import open_warehouse
from lakehouse.warehouse.mapping import mapping_for
from lakehouse.warehouse.migrations import ensure_schema
from lakehouse.warehouse.sync import last_per_key

DEFAULT_ROWS = 500_000
FEED = "user_transaction_summary"


def make_rows(count: int, round_number: int) -> list[dict]:
    """`count` distinct (user, type) rows; `round_number` changes every value but not the keys."""
    users = -(-count // len(TRANSACTION_TYPES))
    rows = []
    for index in range(count):
        user, kind = divmod(index, len(TRANSACTION_TYPES))
        total = round(10 + index % 997 * 1.37 + round_number, 2)
        rows.append({
            "user_id": f"user_{user:07d}", "transaction_type": TRANSACTION_TYPES[kind],
            "user_name": f"User {user} r{round_number}", "user_email": f"user{user}@example.com",
            "user_country": "DE", "user_city": "Berlin", "total_amount": total,
            "transaction_count": 3 + round_number, "avg_amount": round(total / (3 + round_number), 4),
            "min_amount": 1.5, "max_amount": total, "last_transaction_at": f"2026-11-{1 + user % 28:02d}T12:00:00.000Z",
        })
    assert users * len(TRANSACTION_TYPES) >= count
    return rows


def _our_path(settings: Settings, rows: Rows, clear: bool = False) -> tuple[float, float]:
    """(validation seconds, total seconds) of the production path, from decoded rows to the commit."""
    mapping = mapping_for(next(f for f in builtin_feeds() if f.name == FEED))
    snapshot = Snapshot(1, datetime.now(UTC).date())
    with open_warehouse(settings) as warehouse:
        warehouse.connection()  # connecting is not part of the write
        started = time.perf_counter()
        converted = mapping.convert_batch(rows)
        payloads = converted.select(last_per_key(converted))
        validated = time.perf_counter()

        def work(cursor: MySQLCursor) -> int:
            if clear:
                mapping.clear(cursor)
            return mapping.write(cursor, payloads, snapshot)

        assert warehouse.run(work) == _count(rows) and not converted.reasons
    return validated - started, time.perf_counter() - started


def _raw_loads(settings: Settings, rows: list[dict], other_rows: list[dict]) -> tuple[float, float]:
    """Seconds of (the ceiling, the server's update floor): LOAD DATA of `rows`' facts, already in a file, into an
    empty copy of the fact table; then the same for `other_rows` (same keys, new values) with REPLACE into that
    copy, i.e. every row an update with no client work at all."""
    with tempfile.TemporaryDirectory(prefix="bench-warehouse-") as folder, open_warehouse(settings) as warehouse:
        mapping = mapping_for(next(f for f in builtin_feeds() if f.name == FEED))
        stamp = Snapshot(1, datetime.now(UTC).date()).stamp()
        files = [upsert.write_tsv(os.path.join(folder, f"{n}.tsv"),
                                  mapping.convert_batch(batch).select(range(len(batch))).select(mapping.fact_value_columns))
                 for n, batch in enumerate((rows, other_rows))]

        def load(cursor: MySQLCursor, path: str, mode: str) -> float:
            started = time.perf_counter()
            upsert.load_file(cursor, path, "ceiling", mapping.fact_value_columns, mode, stamp)
            cursor.execute("COMMIT")
            return time.perf_counter() - started

        def both(cursor: MySQLCursor) -> tuple[float, float]:
            cursor.execute("CREATE TABLE ceiling LIKE fact_user_transaction_summary")
            return load(cursor, files[0], ""), load(cursor, files[1], "REPLACE")

        return warehouse.run(both, transactional=False)


def _count(rows: Rows) -> int:
    return rows.num_rows if isinstance(rows, pa.Table) else len(rows)


def run(settings: Settings, rows: int = DEFAULT_ROWS) -> dict:
    database = f"{settings.mysql_database}_bench_{uuid.uuid4().hex[:8]}"
    admin = mysql.connector.connect(**{**settings.mysql_params(), "database": None})
    admin.cursor().execute(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    scratch = Settings(**{**settings.__dict__, "mysql_database": database})
    try:
        with open_warehouse(scratch) as warehouse:
            ensure_schema(warehouse)
        first, second, third = make_rows(rows, 1), make_rows(rows, 2), make_rows(rows, 3)
        times = {"new keys": _our_path(scratch, first), "updates": _our_path(scratch, second),
                 "updates from the lake": _our_path(scratch, pa.Table.from_pylist(third))}
        times["sync run"] = _our_path(scratch, pa.Table.from_pylist(second), clear=True)
        ceiling_s, floor_s = _raw_loads(scratch, second, third)
    finally:
        admin.cursor().execute(f"DROP DATABASE IF EXISTS `{database}`")
        admin.close()
    result: dict = {"rows": rows, "ceiling_load_data_rows_per_s": round(rows / ceiling_s),
                    "server_floor_updates_rows_per_s": round(rows / floor_s),
                    "ratio_server_floor_updates_to_ceiling": round(ceiling_s / floor_s, 3)}
    for name, (validate_s, total_s) in times.items():
        label = name.replace(" ", "_")
        result[f"{label}_rows_per_s"] = round(rows / total_s)
        result[f"{label}_validation_rows_per_s"] = round(rows / validate_s)
        result[f"ratio_{label}_to_ceiling"] = round(ceiling_s / total_s, 3)
        result[f"ratio_{label}_to_floor"] = round(floor_s / total_s, 3)
    result["headline_ratio"] = result["ratio_updates_to_ceiling"]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_warehouse", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS)
    args = parser.parse_args(argv)
    result = run(load_settings(), args.rows)
    for name, value in result.items():
        print(f"{name:32} {value:,}" if isinstance(value, int) else f"{name:32} {value}")
    print(f"production upsert path, validation included, vs LOAD DATA into an empty table (goal >= 0.8): "
          f"every row an update {result['headline_ratio']} (new keys {result['ratio_new_keys_to_ceiling']}, "
          f"updates from the lake {result['ratio_updates_from_the_lake_to_ceiling']}, "
          f"sync run {result['ratio_sync_run_to_ceiling']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
