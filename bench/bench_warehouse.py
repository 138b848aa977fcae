"""Warehouse bulk upsert vs the server's raw load speed, in one run on one scratch database.

  python -m bench.bench_warehouse [--rows N]

Ours: N user_transaction_summary rows through the real write path (StarMapping.write: dim_users
merge, then the facts serialized and loaded with LOAD DATA ... REPLACE while the next chunk is being
serialized; one transaction, committed). First into empty tables (inserts), then new values for the
same keys (every row an update: the upsert figure). Validation (mapping.convert, which the consumer
does as records arrive) is timed separately; "end to end" = validation + upsert.
Ceiling: LOAD DATA LOCAL INFILE of the same fact rows, already in a file, into an empty copy of the
fact table. Ratio = upsert rows/s / ceiling rows/s.
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

from lakehouse.catalog import builtin_feeds
from lakehouse.events import TRANSACTION_TYPES
from lakehouse.settings import Settings, load_settings
from lakehouse.warehouse import upsert
from lakehouse.warehouse.base import Snapshot
from lakehouse.warehouse.connection import open_warehouse
from lakehouse.warehouse.mapping import mapping_for
from lakehouse.warehouse.migrations import ensure_schema

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


def _our_path(settings: Settings, rows: list[dict]) -> tuple[float, float]:
    """(validation seconds, upsert seconds)."""
    mapping = mapping_for(next(f for f in builtin_feeds() if f.name == FEED))
    started = time.perf_counter()
    payloads = [mapping.convert(row)[1] for row in rows]
    validation_s = time.perf_counter() - started
    snapshot = Snapshot(1, datetime.now(UTC).date())
    with open_warehouse(settings) as warehouse:
        warehouse.connection()  # connecting is not part of the write
        started = time.perf_counter()
        warehouse.run(lambda cursor: mapping.write(cursor, payloads, snapshot))
    return validation_s, time.perf_counter() - started


def _ceiling(settings: Settings, rows: list[dict]) -> float:
    mapping = mapping_for(next(f for f in builtin_feeds() if f.name == FEED))
    snapshot = Snapshot(1, datetime.now(UTC).date()).values()
    fact_rows = [(*key, *measures, *snapshot) for key, _dim, measures in (mapping.convert(r)[1] for r in rows)]
    handle, path = tempfile.mkstemp(suffix=".tsv")
    os.close(handle)
    try:
        upsert.write_tsv(path, fact_rows)
        with open_warehouse(settings) as warehouse:
            def load(cursor) -> float:
                cursor.execute("CREATE TABLE ceiling LIKE fact_user_transaction_summary")
                started = time.perf_counter()
                upsert.load_file(cursor, path, "ceiling", mapping.fact_columns)
                cursor.execute("COMMIT")
                return time.perf_counter() - started
            return warehouse.run(load, transactional=False)
    finally:
        os.unlink(path)


def run(settings: Settings, rows: int = DEFAULT_ROWS) -> dict:
    database = f"{settings.mysql_database}_bench_{uuid.uuid4().hex[:8]}"
    admin = mysql.connector.connect(**{**settings.mysql_params(), "database": None})
    admin.cursor().execute(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    scratch = Settings(**{**settings.__dict__, "mysql_database": database})
    try:
        with open_warehouse(scratch) as warehouse:
            ensure_schema(warehouse)
        first, second = make_rows(rows, 1), make_rows(rows, 2)
        _, insert_s = _our_path(scratch, first)
        validate_s, upsert_s = _our_path(scratch, second)
        ceiling_s = _ceiling(scratch, second)
    finally:
        admin.cursor().execute(f"DROP DATABASE IF EXISTS `{database}`")
        admin.close()
    result = {
        "rows": rows,
        "insert_rows_per_s": round(rows / insert_s),
        "upsert_rows_per_s": round(rows / upsert_s),
        "validation_rows_per_s": round(rows / validate_s),
        "end_to_end_rows_per_s": round(rows / (validate_s + upsert_s)),
        "ceiling_load_data_rows_per_s": round(rows / ceiling_s),
        "ratio_insert_to_ceiling": round(ceiling_s / insert_s, 3),
        "ratio_upsert_to_ceiling": round(ceiling_s / upsert_s, 3),
        "ratio_end_to_end_to_ceiling": round(ceiling_s / (validate_s + upsert_s), 3),
    }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_warehouse", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS)
    args = parser.parse_args(argv)
    result = run(load_settings(), args.rows)
    for name, value in result.items():
        print(f"{name:32} {value:,}" if isinstance(value, int) else f"{name:32} {value}")
    print(f"vs LOAD DATA into an empty table (goal >= 0.8): new keys {result['ratio_insert_to_ceiling']}, "
          f"updates {result['ratio_upsert_to_ceiling']}, updates with validation "
          f"{result['ratio_end_to_end_to_ceiling']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
