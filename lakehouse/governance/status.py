"""The pipeline at a glance: what the lake and the warehouse hold, whether they agree, how far behind they are.

Printed by `python data_lake_config.py status` and at the end of `make demo`. Every figure is read where it
lives: Kafka's watermarks, the lake's files (Parquet footers and columns, pyarrow), the landed offsets of the
lake metadata, MySQL's tables and its `kafka_offsets`. A missing piece (no topic yet, no warehouse tables yet,
a service down) shows as n/a instead of failing the summary.

Reconciliation lines:
  * per stream feed: records in its topic = rows in the lake + quarantined + not landed yet (lake lag) + rows
    retention deleted (recorded in the feed's metadata when it deleted them);
  * per built-in table: the additive columns of the warehouse fact table = those of the lake's current
    version, and those of the lake's version = the same totals recomputed from the raw events in the lake
    plus the totals of the raw events retention deleted (lakehouse.governance.raw_totals).
"""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal

import mysql.connector
from confluent_kafka import Consumer, KafkaException, TopicPartition

from lakehouse import layout
from lakehouse.catalog import Feed, FeedCatalog
from lakehouse.errors import LakehouseError
from lakehouse.governance import raw_totals
from lakehouse.governance.raw_totals import RAW_FEED, Totals
from lakehouse.kafka import clients
from lakehouse.lake import commit, snapshots
from lakehouse.lake.metadata import FeedMetadata
from lakehouse.settings import Settings
from lakehouse.storage import LakeStorage, StoredFile
from lakehouse.text_table import human_size, render
from lakehouse.warehouse.connection import connect, describe
from lakehouse.warehouse.consumer import default_group_id
from lakehouse.warehouse.upsert import quote

# The additive columns of each built-in table: their sums must agree in the warehouse, the lake and the raw events.
ADDITIVE_COLUMNS = {
    "user_transaction_summary": ("total_amount", "transaction_count"),
    "user_transaction_summary_eur": ("total_amount_eur", "transaction_count"),
    "payment_method_totals": ("total_amount_eur", "transaction_count"),
    "product_purchase_counts": ("purchase_count", "total_quantity", "total_revenue"),
}
_MONEY_COLUMNS = {"total_amount", "total_amount_eur", "total_revenue"}
DETAIL_WIDTH = 72  # reconciliation details wrap here (between terms), so the text status fits ~130 columns


# ---------------------------------------------------------------- the summary
@dataclass(frozen=True)
class DayStats:
    """One date partition of a stream feed."""
    day: date
    rows: int
    files: int
    bytes: int


@dataclass(frozen=True)
class VersionStats:
    """One version of a table feed; `created_at` (ISO 8601, UTC) as recorded when it was written, if it was."""
    version: int
    rows: int
    files: int
    bytes: int
    created_at: str | None


@dataclass
class FeedStatus:
    feed: Feed
    topic: str  # the Kafka topic read, with LAKEHOUSE_TOPIC_PREFIX
    current_version: int | None
    rows: int  # stream: every file; table: the current version
    files: int
    bytes: int
    quarantined: int
    topic_records: int | None  # sum of the topic's end offsets; None: no topic or Kafka unreachable
    lake_lag: int | None  # records not landed yet (streams) / not in the current version yet (tables)
    warehouse_lag: int | None  # records the warehouse consumer has not committed (tables)
    retired: int = 0  # stream rows (landed or quarantined) that retention deleted on purpose
    days: list[DayStats] = field(default_factory=list)  # streams, oldest first
    versions: list[VersionStats] = field(default_factory=list)  # tables, oldest first

    @property
    def parts(self) -> int:
        """Date partitions (stream) or versions (table)."""
        return len(self.days) if self.feed.kind == "stream" else len(self.versions)

    @property
    def parts_label(self) -> str:
        """4 days; 3 versions (v3)."""
        if self.feed.kind == "stream":
            return f"{self.parts} day{'' if self.parts == 1 else 's'}"
        current = f" (v{self.current_version})" if self.current_version is not None else ""
        return f"{self.parts} version{'' if self.parts == 1 else 's'}{current}"


@dataclass(frozen=True)
class Check:
    label: str
    detail: str
    ok: bool | None  # None: cannot be checked now (the detail says why)

    @property
    def verdict(self) -> str:
        return "n/a" if self.ok is None else "OK" if self.ok else "MISMATCH"


@dataclass
class Status:
    lake_root: str
    warehouse: str
    collected_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    feeds: list[FeedStatus] = field(default_factory=list)
    tables: list[tuple[str, int | str]] | None = None  # warehouse table -> rows ("n/a" if unreadable); None: no MySQL
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No reconciliation line disagrees (n/a lines do not count)."""
        return all(check.ok is not False for check in self.checks)

    def render(self) -> str:
        parts = [f"Data lake {self.lake_root}", render(
            ["feed", "kind", "days/versions", "rows", "files", "size", "quarantined", "in topic",
             "lake lag", "warehouse lag"],
            [[s.feed.name, s.feed.kind, s.parts_label, s.rows, s.files, human_size(s.bytes), s.quarantined,
              _na(s.topic_records), _na(s.lake_lag), _na(s.warehouse_lag) if s.feed.kind == "table" else "-"]
             for s in self.feeds])]
        parts.append(f"\nWarehouse {self.warehouse}")
        parts.append(render(["table", "rows"], self.tables) if self.tables is not None else "n/a")
        parts.append("\nReconciliation")
        parts.append(render(["result", "check", "detail"], [
            [c.verdict if i == 0 else "", c.label if i == 0 else "", line]
            for c in self.checks for i, line in enumerate(_wrap(c.detail, DETAIL_WIDTH))])
                     if self.checks else "nothing to reconcile yet")
        parts += [f"note: {note}" for note in self.notes]
        return "\n".join(parts)


def _wrap(detail: str, width: int) -> list[str]:
    """Break a long detail between its terms (after ", ", before " + "), never inside one."""
    lines = [""]
    for term in re.split(r"(?<=,) | (?=\+ )", detail):
        if lines[-1] and len(lines[-1]) + 1 + len(term) > width:
            lines.append(term)
        else:
            lines[-1] = f"{lines[-1]} {term}" if lines[-1] else term
    return lines


def _na(value: object) -> object:
    return "n/a" if value is None else value


def collect(settings: Settings) -> Status:
    """Read the lake, Kafka and the warehouse and reconcile them; never raises for a missing piece."""
    storage = LakeStorage(settings.data_lake_root)
    status = Status(settings.data_lake_root, describe(settings))
    feeds = sorted(FeedCatalog(storage).list(), key=lambda f: (f.kind != "stream", f.name))
    if not feeds:
        status.notes.append("the feed catalog is empty; run: python data_lake_config.py init")
    with KafkaView(settings) as kafka, WarehouseView(settings) as warehouse:
        status.notes += [note for note in (kafka.error, warehouse.error) if note]
        status.tables = warehouse.table_counts()
        stored = warehouse.stored_offsets(default_group_id(settings))
        for feed in feeds:
            status.feeds.append(_feed_status(settings, storage, feed, kafka, stored))
        status.checks += [_stream_check(s) for s in status.feeds if s.feed.kind == "stream"]
        status.checks += _table_checks(storage, feeds, warehouse)
    return status


# ---------------------------------------------------------------- Kafka
class KafkaView:
    """Watermarks of topics; every answer is None when the broker is unreachable."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.error: str | None = None
        self.consumer: Consumer | None = None
        try:
            clients.require_broker(settings, timeout=5.0)
            # Only reads watermarks: never subscribes nor commits, so the group is never created.
            self.consumer = clients.consumer(settings, f"lakehouse-status-{uuid.uuid4().hex[:8]}")
        except LakehouseError as exc:
            self.error = f"Kafka: {exc}"

    def __enter__(self) -> KafkaView:
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.consumer is not None:
            self.consumer.close()

    def watermarks(self, topic: str) -> dict[int, tuple[int, int]] | None:
        """partition -> (low, high) of an existing topic, else None."""
        if self.consumer is None:
            return None
        try:
            partitions = clients.topic_partitions(self.settings, topic)
            return {p: self.consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5.0)
                    for p in partitions} or None
        except (KafkaException, LakehouseError):
            return None


def lag(watermarks: dict[int, tuple[int, int]], done: dict[int, int]) -> int:
    """Records between what was processed (`done`: next offset per partition) and the end of each partition."""
    return sum(max(0, high - max(done.get(partition, low), low)) for partition, (low, high) in watermarks.items())


# ---------------------------------------------------------------- MySQL
class WarehouseView:
    """Read-only queries on the warehouse; None answers when MySQL or the table is not there."""

    def __init__(self, settings: Settings) -> None:
        self.error: str | None = None
        self.conn = None
        try:
            self.conn = connect(settings)
        except LakehouseError as exc:
            self.error = f"warehouse: {exc}"

    def __enter__(self) -> WarehouseView:
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.conn is not None:
            self.conn.close()

    def _query(self, sql: str, params: tuple = ()) -> list[tuple] | None:
        if self.conn is None:
            return None
        cursor = self.conn.cursor()
        try:
            cursor.execute(sql, params)
            return cursor.fetchall()
        except mysql.connector.Error:
            return None  # e.g. the table does not exist yet
        finally:
            cursor.close()

    def table_counts(self) -> list[tuple[str, int | str]] | None:
        names = self._query("SELECT table_name FROM information_schema.tables "
                            "WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' ORDER BY table_name")
        if names is None:
            return None
        counts = []
        for (name,) in names:
            rows = self._query(f"SELECT COUNT(*) FROM {quote(name)}")
            counts.append((name, rows[0][0] if rows else "n/a"))
        return counts

    def stored_offsets(self, group: str) -> dict[tuple[str, int], int] | None:
        rows = self._query("SELECT topic, `partition`, next_offset FROM kafka_offsets WHERE consumer_group = %s",
                           (group,))
        return None if rows is None else {(str(topic), int(p)): int(offset) for topic, p, offset in rows}

    def totals(self, table: str, columns: tuple[str, ...]) -> Totals | None:
        sums = ", ".join(f"COALESCE(SUM({quote(column)}), 0)" for column in columns)
        rows = self._query(f"SELECT COUNT(*), {sums} FROM {quote(table)}")
        if not rows:
            return None
        return {name: Decimal(value) for name, value in zip(("rows", *columns), rows[0], strict=True)}


# ---------------------------------------------------------------- the lake, per feed
def _feed_status(settings: Settings, storage: LakeStorage, feed: Feed, kafka: KafkaView,
                 stored: dict[tuple[str, int], int] | None) -> FeedStatus:
    topic = settings.topic(feed.topic)
    files = [f for f in storage.walk_files(feed.lake_dir) if f.path.endswith(".parquet")]
    rows = {f.path: storage.parquet_row_count(f.path) for f in files}
    watermarks = kafka.watermarks(topic)
    status = FeedStatus(feed, topic, None, sum(rows.values()), len(files), sum(f.size for f in files),
                        _parquet_rows(storage, f"{layout.QUARANTINE}/{feed.name}"),
                        sum(high for _low, high in watermarks.values()) if watermarks else None, None, None)
    if feed.kind == "stream":
        status.days = _day_stats(files, rows)
        status.lake_lag = lag(watermarks, FeedMetadata(storage, feed.name).offsets(topic)) if watermarks else None
        retired = FeedMetadata(storage, feed.name).retired_rows()
        status.retired = retired.get("stream", 0) + retired.get("quarantine", 0)
        return status
    status.versions = _version_stats(storage, feed, files, rows)
    status.current_version = snapshots.current_version(storage, feed.name)
    status.rows = next((v.rows for v in status.versions if v.version == status.current_version), 0)
    read_to = snapshots.source_offsets_of(storage, feed.name)
    status.lake_lag = lag(watermarks, read_to) if watermarks and read_to is not None else None
    if watermarks and stored is not None:
        status.warehouse_lag = lag(watermarks, {p: offset for (t, p), offset in stored.items() if t == topic})
    return status


def _day_stats(files: list[StoredFile], rows: dict[str, int]) -> list[DayStats]:
    by_day: dict[date, list[StoredFile]] = defaultdict(list)
    for file in files:
        day = layout.parse_partition_date(file.path)
        if day is not None:
            by_day[day].append(file)
    return [DayStats(day, sum(rows[f.path] for f in group), len(group), sum(f.size for f in group))
            for day, group in sorted(by_day.items())]


def _version_stats(storage: LakeStorage, feed: Feed, files: list[StoredFile],
                   rows: dict[str, int]) -> list[VersionStats]:
    by_version: dict[int, list[StoredFile]] = defaultdict(list)
    for file in files:  # tables/<feed>/version=N/part-00000.parquet
        version = layout.parse_version(file.path[len(feed.lake_dir):].strip("/").split("/")[0])
        if version is not None:
            by_version[version].append(file)
    recorded = FeedMetadata(storage, feed.name).read().get("versions", {})
    return [VersionStats(version, sum(rows[f.path] for f in by_version[version]), len(by_version[version]),
                         sum(f.size for f in by_version[version]), recorded.get(str(version), {}).get("created_at"))
            for version in snapshots.list_versions(storage, feed.name)]


def _parquet_rows(storage: LakeStorage, folder: str) -> int:
    return sum(storage.parquet_row_count(f.path) for f in storage.walk_files(folder) if f.path.endswith(".parquet"))


# ---------------------------------------------------------------- reconciliation
def _stream_check(status: FeedStatus) -> Check:
    label = f"lake {status.feed.name}"
    if status.topic_records is None or status.lake_lag is None:
        return Check(label, "topic not found (or Kafka unreachable)", None)
    accounted = status.rows + status.quarantined + status.lake_lag + status.retired
    retired = f" + deleted by retention {status.retired:,}" if status.retired else ""
    detail = (f"records in topic {status.topic_records:,} {'=' if accounted == status.topic_records else '!='} "
              f"rows {status.rows:,} + quarantined {status.quarantined:,} + not landed {status.lake_lag:,}{retired}")
    return Check(label, detail, accounted == status.topic_records)


def _table_checks(storage: LakeStorage, feeds: list[Feed], warehouse: WarehouseView) -> list[Check]:
    tables = [f for f in feeds if f.kind == "table" and f.name in ADDITIVE_COLUMNS]
    raw = _raw_event_totals(storage)
    checks = []
    for feed in tables:
        columns = ADDITIVE_COLUMNS[feed.name]
        version = snapshots.current_version(storage, feed.name)
        lake = _lake_table_totals(storage, feed.name, version, columns) if version else None
        lake_label = f"lake {feed.name} v{version}"
        if feed.warehouse_table:
            fact = warehouse.totals(feed.warehouse_table, columns)
            checks.append(_compare(f"warehouse {feed.warehouse_table}", fact, lake_label, lake,
                                   "warehouse table not readable" if fact is None else "no lake version yet"))
        expected = raw(feed.name) if raw else None
        checks.append(_compare(f"lake {feed.name}", lake, f"raw events in lake {RAW_FEED}", expected,
                               "no lake version yet" if lake is None else f"no {RAW_FEED} rows in the lake"))
    return checks


def _compare(label: str, left: Totals | None, right_label: str, right: Totals | None, missing: str) -> Check:
    if left is None or right is None:
        return Check(label, missing, None)
    shared = [name for name in left if name in right]
    differing = [name for name in shared if left[name] != right[name]]
    detail = f"= {right_label}: " + ", ".join(
        f"{name} {_number(left[name])}" + (f" != {_number(right[name])}" if name in differing else "")
        for name in shared)
    return Check(label, detail, not differing)


def _number(value: Decimal) -> str:
    return f"{value:,.2f}" if value != value.to_integral_value() else f"{int(value):,}"


def _lake_table_totals(storage: LakeStorage, feed: str, version: int, columns: tuple[str, ...]) -> Totals:
    table = snapshots.read_snapshot(storage, feed, version)
    totals: Totals = {"rows": Decimal(table.num_rows)}
    for column in columns:
        if column in table.column_names:
            totals[column] = raw_totals.exact_sum(table.column(column), money=column in _MONEY_COLUMNS)
    return totals


def _raw_event_totals(storage: LakeStorage) -> Callable[[str], Totals | None] | None:
    """What each table's additive columns must sum to: the raw events in the lake plus those retention deleted
    (it recorded their totals when it deleted them). None: no raw rows yet."""
    files = commit.stream_files(storage, RAW_FEED)
    deleted = raw_totals.recorded_at_deletion(storage)
    if not files and not deleted:
        return None
    retained = raw_totals.of_files(storage, files) if files else {}
    return raw_totals.added(retained, deleted).get
