"""sync_to_mysql.py: load complete table snapshots into the warehouse, as one numbered snapshot run.

A run reads every selected table first (the lake's newest version, the materialized Kafka changelog,
or a ksqlDB pull query), then writes them all in ONE transaction together with its `sync_runs` row:
each table's rows are replaced by the snapshot (rows absent from it are removed), every row gets the
run's snapshot_version (MAX + 1 unless given) and snapshot_date (the run's UTC date). A failure
anywhere lands nothing. Rows that cannot be mapped are quarantined with their reason.

One rule for the two writers of a table (this sync and the streaming consumer, lakehouse.warehouse.consumer):
a snapshot may replace a table only when it reflects the table's changelog at least as far as the consumer has
landed it (its offsets in `kafka_offsets`, any group). A snapshot that is behind, or records no offsets (a ksqlDB
pull query), is skipped with one line: replacing the table with it would roll back rows the consumer landed and
whose offsets say landed. The offsets are read under row locks in the writing transaction, so no consumer commit
slips in between the check and the write. The Beam sync (lakehouse.orchestration.pipelines) applies the same check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime

import orjson
import pyarrow as pa
from mysql.connector.cursor import MySQLCursor

from lakehouse.catalog import Feed
from lakehouse.errors import LakehouseError
from lakehouse.kafka import ksqldb
from lakehouse.lake import snapshots
from lakehouse.quarantine import QuarantinedRecord, QuarantineWriter
from lakehouse.settings import Settings
from lakehouse.storage import LakeStorage
from lakehouse.warehouse.base import Converted, Mapping, Rows, Snapshot
from lakehouse.warehouse.connection import Warehouse, open_warehouse
from lakehouse.warehouse.mapping import mapping_for
from lakehouse.warehouse.migrations import ensure_schema

SOURCES = ("lake", "kafka", "ksqldb")
GIVE_UP_AFTER_S = 120.0


@dataclass
class TableLoad:
    feed: Feed
    mapping: Mapping
    origin: str  # where the rows came from, e.g. "lake v3"
    reflects: dict[int, int] | None  # changelog partition -> next offset the rows reflect (None: unknown)
    row_count: int  # rows to land: one per key
    quarantined: int
    payloads: object  # the rows to land, as Converted.select gives them to Mapping.write


@dataclass
class SyncResult:
    version: int | None  # None: nothing landed (a lenient run)
    day: date
    source: str
    tables: list[TableLoad]
    skipped: list[str]

    @property
    def row_count(self) -> int:
        return sum(t.row_count for t in self.tables)


def sync(settings: Settings, feeds: list[Feed], source: str = "lake", version: int | None = None,
         warn: Callable[[str], None] = print, strict: bool = True) -> SyncResult:
    """Every table of `feeds` from `source` in one transaction: all of them land, or none.

    `strict` (sync_to_mysql.py): a run with nothing to land is an error; otherwise (the orchestrator's every
    tick) it lands nothing, records no run, and says why through `warn`.
    """
    if source not in SOURCES:
        raise LakehouseError(f"unknown source {source!r}; use one of {', '.join(SOURCES)}")
    if version is not None and version < 1:
        raise LakehouseError("--version must be 1 or more (0 marks rows kept current by the streaming consumer)")
    quarantine = QuarantineWriter(LakeStorage(settings.data_lake_root))
    loads, skipped = [], []
    with open_warehouse(settings, give_up_after=GIVE_UP_AFTER_S) as warehouse:
        ensure_schema(warehouse)
        for feed in feeds:
            load = _read(settings, warehouse, feed, source, quarantine)
            if load is None:
                skipped.append(feed.name)
                warn(f"skipped {feed.name}: nothing to load from {source}")
            else:
                loads.append(load)
        quarantine.flush()
        if not loads:
            why = f"no table has data in the {source} ({', '.join(skipped) or 'no active table feeds'})"
            if strict:
                raise LakehouseError(f"nothing to sync: {why}")
            return SyncResult(None, datetime.now(UTC).date(), source, [], skipped)
        return _land(settings, warehouse, loads, source, version, skipped, warn, strict)


def _read(settings: Settings, warehouse: Warehouse, feed: Feed, source: str,
          quarantine: QuarantineWriter) -> TableLoad | None:
    mapping = mapping_for(feed)
    if source == "lake":
        storage = LakeStorage(settings.data_lake_root)
        lake_version = snapshots.current_version(storage, feed.name)
        if lake_version is None:
            return None
        rows: Rows = snapshots.read_snapshot(storage, feed.name, lake_version)  # validated column-wise, as is
        origin = f"lake v{lake_version}"
        reflects = snapshots.source_offsets_of(storage, feed.name, lake_version)
    elif source == "kafka":
        # Imported here: the Kafka client (~0.2 s of start-up) is not needed by a sync from the lake.
        from lakehouse.kafka import clients
        from lakehouse.kafka.changelog import materialize_topic

        if not clients.topic_partitions(settings, settings.topic(feed.topic)):
            return None
        state = materialize_topic(settings, feed, quarantine)
        rows, reflects = state.rows(), state.next_offsets
        origin = f"topic {settings.topic(feed.topic)}"
    else:
        rows, reflects = ksqldb.pull_table(settings, feed.ksql_name), None
        origin = f"ksqlDB {feed.ksql_name}"
    mapping.prepare(warehouse, [])  # the live table's columns count against an auto-mapped table's max_columns
    converted = mapping.convert_batch(rows)
    for index, reason in converted.reasons.items():
        row = rows.slice(index, 1).to_pylist()[0] if isinstance(rows, pa.Table) else rows[index]
        quarantine.add(QuarantinedRecord.of_row(feed.name, settings.topic(feed.topic), index, row, feed.key_columns,
                                                f"sync from {origin}: {reason}"))
    landing = last_per_key(converted)
    return TableLoad(feed, mapping, origin, reflects, row_count=len(landing), quarantined=len(converted.reasons),
                     payloads=converted.select(landing))


def last_per_key(converted: Converted) -> list[int]:
    """The rows a snapshot lands: the last valid row of each key."""
    return list({key: index for index, key in enumerate(converted.keys) if key is not None}.values())


def _land(settings: Settings, warehouse: Warehouse, loads: list[TableLoad], source: str, version: int | None,
          skipped: list[str], warn: Callable[[str], None], strict: bool) -> SyncResult:
    started = datetime.now(UTC).replace(tzinfo=None)
    day = started.date()
    for load in loads:
        load.mapping.prepare(warehouse, load.payloads)  # type: ignore[arg-type]  # DDL: before the transaction

    def work(cursor: MySQLCursor) -> tuple[int | None, list[TableLoad], dict[str, str]]:
        behind = {load.feed.name: why for load in loads
                  if (why := consumer_ahead(cursor, settings.topic(load.feed.topic), load.reflects, load.origin))}
        landing = [load for load in loads if load.feed.name not in behind]
        if not landing and strict:
            raise LakehouseError("nothing to sync: " + "; ".join(f"{name}: {why}" for name, why in behind.items()))
        if not landing:
            return None, [], behind
        number = version if version is not None else _next_version(cursor)
        snapshot = Snapshot(number, day)
        for load in landing:
            load.mapping.clear(cursor)
            load.mapping.write(cursor, load.payloads, snapshot)  # type: ignore[arg-type]
        details = {load.feed.name: {"rows": load.row_count, "from": load.origin} for load in landing}
        record_sync_run(cursor, snapshot, source, details, sum(x.row_count for x in landing), started)
        return number, landing, behind

    number, landed, behind = warehouse.run(work)
    for name, why in behind.items():
        warn(f"skipped {name}: {why}")
    return SyncResult(number, day, source, landed, skipped + list(behind))


def consumer_ahead(cursor: MySQLCursor, topic: str, reflects: dict[int, int] | None, origin: str) -> str | None:
    """Why a snapshot of `topic`'s table must not replace it (the rule above), or None when it may.

    Locks the consumer's offsets of the warehouse until the transaction ends (FOR UPDATE), so a consumer commit
    waits for the snapshot's write instead of slipping in between.
    """
    cursor.execute("SELECT topic, `partition`, next_offset FROM kafka_offsets FOR UPDATE")
    landed: dict[int, int] = {}
    for row_topic, partition, offset in cursor.fetchall():
        if row_topic == topic:
            landed[int(partition)] = max(int(offset), landed.get(int(partition), 0))
    ahead = {partition: offset for partition, offset in sorted(landed.items())
             if reflects is None or offset > reflects.get(partition, 0)}
    if not ahead:
        return None
    if reflects is None:
        return (f"{origin} records no changelog offsets, and the streaming warehouse consumer has landed {topic}; "
                "a sync from it could roll the consumer's rows back")
    positions = ", ".join(f"partition {p} at {offset} > {reflects.get(p, 0)}" for p, offset in ahead.items())
    return (f"the streaming warehouse consumer has landed {topic} further than {origin} reflects ({positions}); "
            "replacing the table would roll its rows back")


def record_sync_run(cursor: MySQLCursor, snapshot: Snapshot, source: str, details: dict, row_count: int = 0,
                    started: datetime | None = None) -> None:
    """Write (or complete) the `sync_runs` row of a snapshot run."""
    cursor.execute(
        "INSERT INTO sync_runs (snapshot_version, snapshot_date, source, tables_loaded, row_count, "
        "started_at, finished_at) VALUES (%s, %s, %s, %s, %s, COALESCE(%s, UTC_TIMESTAMP(3)), UTC_TIMESTAMP(3)) "
        "ON DUPLICATE KEY UPDATE snapshot_date = VALUES(snapshot_date), source = VALUES(source), "
        "tables_loaded = VALUES(tables_loaded), row_count = VALUES(row_count), "
        "started_at = LEAST(started_at, VALUES(started_at)), finished_at = VALUES(finished_at)",
        (snapshot.version, snapshot.day, source, orjson.dumps(details).decode(), row_count, started))


def _next_version(cursor: MySQLCursor) -> int:
    # The row lock makes concurrent runs take turns, so two runs never get the same number.
    cursor.execute("SELECT COALESCE(MAX(snapshot_version), 0) + 1 FROM sync_runs FOR UPDATE")
    (number,) = cursor.fetchone()
    return int(number)
