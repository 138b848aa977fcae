"""The columns landing adds to every stream row, and the event day that picks its folder: one helper, `stamp_rows`,
for the lake consumer and export alike.

  event_time   the event's own time (ISO-8601 or epoch ms in the feed's timestamp field), else the Kafka record time
  _topic, _partition, _offset, _kafka_timestamp, _ingested_at   where the row came from, and when it landed
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

LINEAGE = pa.schema([
    ("_topic", pa.string()),
    ("_partition", pa.int32()),
    ("_offset", pa.int64()),
    ("_kafka_timestamp", pa.timestamp("ms", tz="UTC")),
    ("_ingested_at", pa.timestamp("ms", tz="UTC")),
])
EVENT_TIME = pa.field("event_time", pa.timestamp("ms", tz="UTC"))
# What landing adds to every stream row: the typed event time, then the lineage.
LANDED = pa.schema([EVENT_TIME, *LINEAGE])
_MS_PER_DAY = 86_400_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def stamp_rows(table: pa.Table, timestamp_field: str, topic: str, partitions: pa.Array | pa.ChunkedArray,
               offsets: pa.Array | pa.ChunkedArray, kafka_timestamps: pa.Array | pa.ChunkedArray,
               ingested_at: datetime) -> tuple[pa.Table, pa.Array, pa.Array]:
    """Decoded rows as the lake lands them (the consumer and export alike): `event_time` and the lineage
    columns added; with each row's event day and whether its time fell back to the Kafka record time."""
    times = table.column(timestamp_field) if timestamp_field in table.column_names else None
    millis, fallback = event_millis(times, kafka_timestamps)
    table = with_event_time(table, millis)
    table = with_lineage(table, topic, partitions, offsets, kafka_timestamps, ingested_at)
    return table, days_of(millis), fallback


def with_event_time(table: pa.Table, millis: pa.Array) -> pa.Table:
    """`table` with its typed `event_time` column (replacing a source column of that name: the name is reserved)."""
    column = millis.cast(EVENT_TIME.type)
    names = table.column_names
    if EVENT_TIME.name in names:
        return table.set_column(names.index(EVENT_TIME.name), EVENT_TIME, column)
    first_lineage = LINEAGE.names[0]  # before the lineage columns, in a file landed without event_time
    return table.add_column(names.index(first_lineage) if first_lineage in names else len(names), EVENT_TIME, column)


def with_lineage(table: pa.Table, topic: str, partitions: pa.Array | pa.ChunkedArray,
                 offsets: pa.Array | pa.ChunkedArray, kafka_timestamps: pa.Array | pa.ChunkedArray,
                 ingested_at: datetime) -> pa.Table:
    """`table` plus the lineage columns (where each row came from, and when it was landed)."""
    rows = table.num_rows
    columns = [
        pa.repeat(pa.scalar(topic, pa.string()), rows),
        partitions.cast(pa.int32()),
        offsets.cast(pa.int64()),
        kafka_timestamps.cast(pa.int64()).cast(LINEAGE.field("_kafka_timestamp").type),
        pa.repeat(pa.scalar(ingested_at, LINEAGE.field("_ingested_at").type), rows),
    ]
    for field_, column in zip(LINEAGE, columns, strict=True):
        table = table.append_column(field_, column)
    return table


def event_millis(times: pa.ChunkedArray | None,
                 kafka_timestamps: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, pa.Array]:
    """Each row's event time in epoch milliseconds (UTC), and which rows fell back to the Kafka record time.

    Event time: an ISO-8601 string (with zone; a naive one is taken as UTC) or epoch milliseconds.
    Missing or unparsable -> the Kafka timestamp, so late records still go to their own day.
    """
    kafka_ms = kafka_timestamps.cast(pa.int64())
    event_ms = _epoch_ms(times) if times is not None else pa.nulls(len(kafka_ms), pa.int64())
    return pc.coalesce(event_ms, kafka_ms), event_ms.is_null()


def days_of(millis: pa.Array) -> pa.Array:
    """The UTC date of each epoch-millisecond time."""
    return pc.floor(pc.divide(millis.cast(pa.float64()), float(_MS_PER_DAY))).cast(pa.int32()).cast(pa.date32())


def _epoch_ms(times: pa.ChunkedArray) -> pa.Array:
    times = times.combine_chunks()
    if pa.types.is_integer(times.type):
        return times.cast(pa.int64())
    if not pa.types.is_string(times.type):
        return pa.nulls(len(times), pa.int64())
    try:  # fast path: every value is ISO-8601 with a zone (the event contract: ...Z)
        return pc.cast(times, pa.timestamp("ms", tz="UTC")).cast(pa.int64())
    except pa.ArrowInvalid:
        return pa.array([_parse_iso_ms(text) for text in times.to_pylist()], pa.int64())


def _parse_iso_ms(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    # Exact integer floor: float seconds * 1000 was 1 ms off near 1970 and rounded pre-1970 times up (toward 0).
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def split_by_partition_and_day(table: pa.Table, days: pa.Array,
                               fallback: pa.Array) -> dict[tuple[int, date], tuple[pa.Table, int]]:
    """Rows grouped by (Kafka partition, event day), each group in offset order, with its fallback count."""
    partitions = table.column("_partition")
    keys = pa.table({"p": partitions, "d": days}).group_by(["p", "d"], use_threads=False).aggregate([])
    groups = {}
    for partition, day in zip(keys.column("p").to_pylist(), keys.column("d").to_pylist(), strict=True):
        mask = pc.and_(pc.equal(partitions, partition), pc.equal(days, pa.scalar(day, pa.date32())))
        groups[(partition, day)] = (table.filter(mask), pc.sum(pc.filter(fallback, mask)).as_py() or 0)
    return groups
