"""Quarantine: bad records are kept with their reason, partitioned by date, never dropped.

  _quarantine/<feed>/year=YYYY/month=M/day=D/<topic>+<partition>+<first offset>.parquet
  _quarantine/<feed>/year=YYYY/month=M/day=D/<topic>+run-<writer run>+<first row>.parquet   (snapshot rows)

Columns: feed, topic, partition, offset, kafka_timestamp, raw_key, raw_value (bytes as received),
reason, quarantined_at. Shared by every consumer, export and sync.

A Kafka record is quarantined once: readers that read a changelog again from its beginning (table landing,
export and sync from Kafka) or two readers of one topic (lake and warehouse) skip, when flushing, the records
the feed's quarantine already holds (same topic, partition and offset). A snapshot row has no Kafka position
(partition -1, offset = its row index): its files carry the writer's own run id, so runs never overwrite each
other's records.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import orjson
import pyarrow as pa
import pyarrow.dataset as ds

from lakehouse import layout
from lakehouse.storage import LakeStorage

if TYPE_CHECKING:
    from confluent_kafka import Message

SCHEMA = pa.schema([
    ("feed", pa.string()),
    ("topic", pa.string()),
    ("partition", pa.int32()),
    ("offset", pa.int64()),
    ("kafka_timestamp", pa.timestamp("ms", tz="UTC")),
    ("raw_key", pa.binary()),
    ("raw_value", pa.binary()),
    ("reason", pa.string()),
    ("quarantined_at", pa.timestamp("ms", tz="UTC")),
])


@dataclass(frozen=True)
class QuarantinedRecord:
    feed: str
    topic: str
    partition: int
    offset: int
    kafka_timestamp_ms: int | None
    raw_key: bytes | None
    raw_value: bytes | None
    reason: str

    @classmethod
    def of_message(cls, feed: str, message: Message, reason: str) -> QuarantinedRecord:
        """A Kafka record, kept as received with its coordinates."""
        return cls(feed=feed, topic=message.topic(), partition=message.partition(), offset=message.offset(),
                   kafka_timestamp_ms=message.timestamp()[1], raw_key=message.key(), raw_value=message.value(),
                   reason=reason)

    @classmethod
    def of_row(cls, feed: str, topic: str, index: int, row: dict, key_columns: list[str],
               reason: str) -> QuarantinedRecord:
        """A snapshot row (lake, ksqlDB pull): it has no Kafka position, so partition -1 and offset = its index in
        the snapshot; its key (the feed's key columns) is kept as JSON, the row as JSON."""
        key = {column: row.get(column) for column in key_columns}
        return cls(feed=feed, topic=topic, partition=-1, offset=index, kafka_timestamp_ms=None,
                   raw_key=orjson.dumps(key, default=str), raw_value=orjson.dumps(row, default=str), reason=reason)


class QuarantineWriter:
    """Buffers bad records; `flush` writes them durably (call it before committing their offsets)."""

    def __init__(self, storage: LakeStorage) -> None:
        self.storage = storage
        self._pending: list[QuarantinedRecord] = []
        self._run = uuid.uuid4().hex[:12]  # names the files of records without a Kafka position

    def add(self, record: QuarantinedRecord) -> None:
        self._pending.append(record)

    def __len__(self) -> int:
        return len(self._pending)

    def flush(self) -> list[str]:
        """Write pending records not quarantined yet, one file per (feed, topic, partition, day); returns the
        paths written."""
        self._drop_already_quarantined()
        written = []
        for path, table in self.drain().values():
            self.storage.write_parquet(path, table)
            written.append(path)
        return written

    def drain(self) -> dict[tuple[str, str, int], tuple[str, pa.Table]]:
        """Take the pending records without writing them: (feed, topic, partition) -> (final path, table).

        For writers that stage files and publish them in their own commit protocol (the lake consumer).
        """
        now = datetime.now(UTC)
        groups: dict[tuple[str, str, int], list[QuarantinedRecord]] = {}
        for record in self._pending:
            groups.setdefault((record.feed, record.topic, record.partition), []).append(record)
        drained = {}
        for (feed, topic, partition), records in groups.items():
            first = min(r.offset for r in records)
            name = (layout.batch_file_name(topic, partition, first) if partition >= 0
                    else f"{topic}+run-{self._run}+{first:0{layout.OFFSET_DIGITS}d}.parquet")
            drained[(feed, topic, partition)] = (f"{layout.quarantine_dir(feed, now.date())}/{name}",
                                                 _to_table(records, now))
        self._pending.clear()
        return drained

    def _drop_already_quarantined(self) -> None:
        positioned = {record.feed for record in self._pending if record.partition >= 0}
        known = {feed: _quarantined_positions(self.storage, feed) for feed in positioned}
        self._pending = [record for record in self._pending if record.partition < 0
                         or (record.topic, record.partition, record.offset) not in known[record.feed]]


def _to_table(records: list[QuarantinedRecord], now: datetime) -> pa.Table:
    return pa.table({
        "feed": [r.feed for r in records],
        "topic": [r.topic for r in records],
        "partition": [r.partition for r in records],
        "offset": [r.offset for r in records],
        "kafka_timestamp": [r.kafka_timestamp_ms for r in records],
        "raw_key": [r.raw_key for r in records],
        "raw_value": [r.raw_value for r in records],
        "reason": [r.reason for r in records],
        "quarantined_at": [now] * len(records),
    }, schema=SCHEMA)


def _quarantined_positions(storage: LakeStorage, feed: str) -> set[tuple[str, int, int]]:
    """(topic, partition, offset) of every Kafka record the feed's quarantine holds."""
    files = [storage.full(f.path) for f in storage.walk_files(f"{layout.QUARANTINE}/{feed}")
             if f.path.endswith(".parquet")]
    if not files:
        return set()
    held = ds.dataset(files, filesystem=storage.fs, format="parquet").to_table(
        columns=["topic", "partition", "offset"], filter=ds.field("partition") >= 0)
    return set(zip(*(held.column(name).to_pylist() for name in ("topic", "partition", "offset")), strict=True))


def read_quarantine(storage: LakeStorage, feed: str | None = None) -> pa.Table:
    """Every quarantined record (of one feed, or all), for reconciliation and inspection."""
    folder = f"{layout.QUARANTINE}/{feed}" if feed else layout.QUARANTINE
    tables = [storage.read_parquet(f.path) for f in storage.walk_files(folder) if f.path.endswith(".parquet")]
    return pa.concat_tables(tables) if tables else SCHEMA.empty_table()
