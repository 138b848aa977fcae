"""Event days and the Kafka-time fallback (lakehouse.lake.commit): which day folder a row lands in, and its event_time.

All times are pinned; KAFKA_MS is 2026-08-29T10:40:00Z, a day none of the events below has.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pyarrow as pa
import pytest

from lakehouse.lake import commit, lineage

KAFKA_MS = 1_788_000_000_000
KAFKA_DAY = date(2026, 8, 29)
INGESTED_AT = datetime(2026, 9, 9, 8, 30, tzinfo=UTC)


def millis(moment: datetime) -> int:
    return int(moment.timestamp()) * 1000 + moment.microsecond // 1000


def event_times(values: list, type_: pa.DataType | None = None) -> tuple[list, list]:
    """(epoch ms, fell back to Kafka time) for each value, with every Kafka record time KAFKA_MS."""
    column = pa.chunked_array([pa.array(values, type_)])
    result, fallback = lineage.event_millis(column, pa.array([KAFKA_MS] * len(values), pa.int64()))
    return result.to_pylist(), fallback.to_pylist()


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-09-07T10:00:00.000Z", datetime(2026, 9, 7, 10, tzinfo=UTC)),
    ("2026-09-07T10:00:00Z", datetime(2026, 9, 7, 10, tzinfo=UTC)),
    ("2026-09-07T12:00:00.250+02:00", datetime(2026, 9, 7, 10, 0, 0, 250_000, tzinfo=UTC)),
    ("2026-09-07T01:30:00-05:00", datetime(2026, 9, 7, 6, 30, tzinfo=UTC)),
])
def test_iso_times_with_a_zone_are_converted_to_utc_milliseconds(text: str, expected: datetime) -> None:
    assert event_times([text]) == ([millis(expected)], [False])


def test_a_naive_iso_time_is_taken_as_utc_even_beside_zoned_ones() -> None:
    result, fallback = event_times(["2026-09-07T10:00:00", "2026-09-07T10:00:00.000Z"])
    assert result == [millis(datetime(2026, 9, 7, 10, tzinfo=UTC))] * 2
    assert fallback == [False, False]


def test_epoch_milliseconds_are_taken_as_they_are_and_a_null_falls_back() -> None:
    assert event_times([1_788_775_200_123, None], pa.int64()) == ([1_788_775_200_123, KAFKA_MS], [False, True])


@pytest.mark.parametrize("unparsable", ["garbage", "2026-13-45T10:00:00Z", "2026-02-30T10:00:00Z", "", None])
def test_an_unparsable_or_missing_time_falls_back_to_the_kafka_record_time(unparsable: str | None) -> None:
    result, fallback = event_times(["2026-09-07T10:00:00.000Z", unparsable])
    assert result == [millis(datetime(2026, 9, 7, 10, tzinfo=UTC)), KAFKA_MS]
    assert fallback == [False, True]


def test_no_timestamp_column_or_a_non_time_type_uses_kafka_time_for_every_row() -> None:
    result, fallback = lineage.event_millis(None, pa.array([KAFKA_MS, KAFKA_MS + 1]))
    assert (result.to_pylist(), fallback.to_pylist()) == ([KAFKA_MS, KAFKA_MS + 1], [True, True])
    assert event_times([1.5, 2.5], pa.float64()) == ([KAFKA_MS, KAFKA_MS], [True, True])


@pytest.mark.parametrize(("text", "day"), [
    ("2026-09-07T23:59:59.999Z", date(2026, 9, 7)),
    ("2026-09-08T00:00:00.000Z", date(2026, 9, 8)),
    ("2026-09-08T01:00:00+02:00", date(2026, 9, 7)),  # 23:00 UTC the day before
    ("2028-02-29T12:00:00Z", date(2028, 2, 29)),
    ("2026-12-31T23:59:59.999Z", date(2026, 12, 31)),
    ("2027-01-01T00:00:00.000Z", date(2027, 1, 1)),
])
def test_the_event_day_is_the_utc_date_of_the_event_time(text: str, day: date) -> None:
    result, _ = event_times([text])
    assert lineage.days_of(pa.array(result, pa.int64())).to_pylist() == [day]


def test_days_of_epoch_milliseconds_around_1970_floor_to_the_utc_day() -> None:
    days = lineage.days_of(pa.array([-1, 0, 86_399_999, 86_400_000], pa.int64())).to_pylist()
    assert days == [date(1969, 12, 31), date(1970, 1, 1), date(1970, 1, 1), date(1970, 1, 2)]


def stamped(timestamps: list, partitions: list[int], offsets: list[int], extra: dict | None = None):
    table = pa.table({"id": [f"e{offset}" for offset in offsets], "timestamp": timestamps, **(extra or {})})
    return lineage.stamp_rows(table, "timestamp", "payments", pa.array(partitions), pa.array(offsets),
                                  pa.array([KAFKA_MS] * len(offsets), pa.int64()), INGESTED_AT)


def test_stamp_rows_adds_a_typed_event_time_and_the_lineage_columns_in_order() -> None:
    table, days, fallback = stamped(["2026-09-07T23:59:59.999Z", "nope"], [0, 1], [5, 6])
    assert table.column_names == ["id", "timestamp", "event_time", "_topic", "_partition", "_offset",
                                  "_kafka_timestamp", "_ingested_at"]
    assert table.schema.field("event_time").type == pa.timestamp("ms", tz="UTC")
    assert table.schema.field("_partition").type == pa.int32()
    assert table.column("event_time").to_pylist() == [datetime(2026, 9, 7, 23, 59, 59, 999_000, tzinfo=UTC),
                                                      datetime(2026, 8, 29, 10, 40, tzinfo=UTC)]
    assert table.column("_topic").to_pylist() == ["payments", "payments"]
    assert table.column("_offset").to_pylist() == [5, 6]
    assert table.column("_ingested_at").to_pylist() == [INGESTED_AT, INGESTED_AT]
    assert days.to_pylist() == [date(2026, 9, 7), KAFKA_DAY]
    assert fallback.to_pylist() == [False, True]


def test_a_source_column_named_event_time_is_replaced_in_place_by_the_typed_one() -> None:
    table, _days, _fallback = stamped(["2026-09-07T10:00:00Z"], [0], [1], {"event_time": ["whatever"], "x": [1]})
    assert table.column_names[:4] == ["id", "timestamp", "event_time", "x"]
    assert table.column("event_time").to_pylist() == [datetime(2026, 9, 7, 10, tzinfo=UTC)]


def test_with_event_time_goes_before_the_lineage_of_a_file_landed_without_it() -> None:
    old = pa.table({"id": ["a"], "_topic": ["t"], "_partition": pa.array([0], pa.int32())})
    table = lineage.with_event_time(old, pa.array([86_400_000], pa.int64()))
    assert table.column_names == ["id", "event_time", "_topic", "_partition"]
    assert table.column("event_time").to_pylist() == [datetime(1970, 1, 2, tzinfo=UTC)]


def test_rows_split_by_kafka_partition_and_event_day_in_offset_order_with_fallback_counts() -> None:
    table, days, fallback = stamped(
        ["2026-09-07T23:59:59.999Z", "2026-09-08T00:00:00.000Z", "bad", "2026-09-07T08:00:00Z", None],
        [0, 0, 0, 1, 0], [10, 11, 12, 20, 13])
    groups = lineage.split_by_partition_and_day(table, days, fallback)
    summary = {key: (group.column("_offset").to_pylist(), count) for key, (group, count) in groups.items()}
    assert summary == {
        (0, date(2026, 9, 7)): ([10], 0),
        (0, date(2026, 9, 8)): ([11], 0),
        (0, KAFKA_DAY): ([12, 13], 2),
        (1, date(2026, 9, 7)): ([20], 0),
    }


def test_the_stream_file_of_a_batch_is_named_by_day_topic_partition_and_padded_first_offset() -> None:
    assert commit.stream_file("payments", date(2026, 9, 7), "payments", 3, 42) == (
        "streams/payments/year=2026/month=9/day=7/payments+3+00000000000000000042.parquet")


@pytest.mark.parametrize(("text", "expected_ms", "day"), [
    ("1970-01-01T00:00:01.001", 1_001, date(1970, 1, 1)),
    ("1969-12-31T23:59:27.237", -32_763, date(1969, 12, 31)),
    ("1969-12-31T23:59:59.999", -1, date(1969, 12, 31)),
    ("1969-12-31T23:59:59.9999", -1, date(1969, 12, 31)),  # sub-millisecond: floored, so still 31 December
    ("1900-01-01T00:00:00.5", -2_208_988_799_500, date(1900, 1, 1)),
])
def test_times_near_and_before_1970_get_their_exact_floored_millisecond(text: str, expected_ms: int,
                                                                        day: date) -> None:
    """Naive text takes the record-by-record parser; it must agree with an exact integer computation."""
    result, fallback = event_times([text, "unparsable"])
    assert result == [expected_ms, KAFKA_MS]
    assert fallback == [False, True]
    assert lineage.days_of(pa.array(result[:1], pa.int64())).to_pylist() == [day]
