"""Decoding Kafka values into rows, and the quarantine reason of every bad one (no broker: values are bytes here).

`lakehouse.kafka.records` decodes one value; `FeedDecoder` decodes a batch for a stream feed, fixing and evolving the
feed's schema in `_metadata/<feed>/feed.json` of a lake folder under tmp_path.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import orjson
import pyarrow as pa
import pytest

from lakehouse.catalog import Feed
from lakehouse.kafka.records import (
    MAX_VALUE_BYTES,
    BadRecord,
    decode_object,
    decode_table_record,
    normalize_columns,
    snake_case,
)
from lakehouse.lake import lineage
from lakehouse.lake import schema as lake_schema
from lakehouse.lake.decode import FeedDecoder, record_schema
from lakehouse.lake.metadata import FeedMetadata
from lakehouse.storage import LakeStorage

CONTRACT_FEED = Feed(name="payments", kind="stream", topic="payments", key_columns=["transaction_id"],
                     timestamp_field="timestamp")
ADHOC_FEED = Feed(name="clicks", kind="stream", topic="clicks", timestamp_field="timestamp")
# Epoch milliseconds of 10000-01-01T00:00:00Z and of 0001-01-01T00:00:00Z: just outside / at the calendar's ends.
YEAR_10000_MS = 253_402_300_800_000
YEAR_1_MS = -62_135_596_800_000


def event(**fields: object) -> bytes:
    base = {"transaction_id": "t1", "timestamp": "2026-09-07T10:00:00.000Z", "amount": 10}
    return orjson.dumps({**base, **fields})


def decoder(tmp_path, feed: Feed = CONTRACT_FEED) -> FeedDecoder:
    return FeedDecoder(feed, FeedMetadata(LakeStorage(tmp_path), feed.name))


# ---------------------------------------------------------------- one value: lakehouse.kafka.records
@pytest.mark.parametrize(("raw", "reason"), [
    (None, "null value"),
    (b"\xff\xfe{}", "value is not valid UTF-8: invalid start byte at byte 0"),
    (b'{"a": "caf\xe9"}', "value is not valid UTF-8: invalid continuation byte at byte 10"),
    (b"{not json", "value is not valid JSON: "),
    (b"", "value is not valid JSON: "),
    (b"[1, 2]", "value is a JSON list, not an object"),
    (b"42", "value is a JSON int, not an object"),
    (b'"text"', "value is a JSON str, not an object"),
    (b"null", "value is a JSON NoneType, not an object"),
    (b'{"userId": 1, "user_id": 2}', "column names 'userId' and 'user_id' both become column 'user_id'"),
    (b'{"USER-ID": 1, "user id": 2}', "column names 'USER-ID' and 'user id' both become column 'user_id'"),
    ('{"é": 1}'.encode(), "column name 'é' has no letter or digit (A-Z, a-z, 0-9) to name a column"),
    (b'{"__": 1}', "column name '__' has no letter or digit (A-Z, a-z, 0-9) to name a column"),
])
def test_a_bad_value_is_refused_with_its_quarantine_reason(raw: bytes | None, reason: str) -> None:
    with pytest.raises(BadRecord) as refused:
        decode_object(raw)
    assert str(refused.value).startswith(reason)


def test_a_value_one_byte_over_the_limit_is_oversized_and_one_at_the_limit_is_decoded() -> None:
    padding = MAX_VALUE_BYTES - len(b'{"p":""}')
    at_limit = b'{"p":"' + b"x" * padding + b'"}'
    assert len(at_limit) == MAX_VALUE_BYTES
    assert len(decode_object(at_limit)["p"]) == padding
    with pytest.raises(BadRecord, match=rf"^oversized value: {MAX_VALUE_BYTES + 1} bytes > {MAX_VALUE_BYTES}$"):
        decode_object(at_limit[:-2] + b'x"}')


@pytest.mark.parametrize(("name", "column"), [
    ("USER_ID", "user_id"), ("userId", "user_id"), ("USER-ID", "user_id"), ("user id", "user_id"),
    ("productID", "product_id"), ("TransactionType", "transaction_type"), ("  amount  ", "amount"),
    ("AMOUNT_EUR", "amount_eur"), ("already_snake", "already_snake"),
])
def test_column_names_become_snake_case(name: str, column: str) -> None:
    assert snake_case(name) == column


def test_only_top_level_names_are_normalized_nested_fields_keep_their_spelling() -> None:
    row = normalize_columns({"USER_ID": "u1", "productInfo": {"unitPrice": 2.5, "QTY": 3}})
    assert row == {"user_id": "u1", "product_info": {"unitPrice": 2.5, "QTY": 3}}


def test_a_table_record_carries_its_key_columns_in_the_row_and_a_null_value_is_a_tombstone() -> None:
    key, row = decode_table_record(b'{"USER_ID": "u1", "TRANSACTION_TYPE": "purchase"}', b'{"TOTAL_AMOUNT": 12.5}',
                                   ["user_id", "transaction_type"])
    assert key == ("u1", "purchase")
    assert row == {"total_amount": 12.5, "user_id": "u1", "transaction_type": "purchase"}
    assert decode_table_record(b'"credit_card"', None, ["payment_method"]) == (("credit_card",), None)
    # a single key column may also come as plain (non-JSON) UTF-8 text, as the KAFKA key format writes it
    assert decode_table_record(b"prod_0001", b"{}", ["product_id"]) == (("prod_0001",), {"product_id": "prod_0001"})


@pytest.mark.parametrize(("raw_key", "key_columns", "reason"), [
    (None, ["product_id"], "table record has no key"),
    (b"\xff", ["product_id"], "key is not valid UTF-8"),
    (b"[1]", ["product_id"], "key must be a single value for column product_id"),
    (b'{"USER_ID": "u1"}', ["user_id", "transaction_type"], "key is missing column(s): transaction_type"),
    (b'"u1"', ["user_id", "transaction_type"], "key must be a JSON object with columns user_id, transaction_type"),
])
def test_a_bad_table_key_is_refused_with_its_reason(raw_key: bytes | None, key_columns: list[str],
                                                    reason: str) -> None:
    with pytest.raises(BadRecord) as refused:
        decode_table_record(raw_key, b"{}", key_columns)
    assert str(refused.value) == reason


# ---------------------------------------------------------------- a batch: FeedDecoder
def test_a_mixed_batch_keeps_the_good_rows_and_gives_each_bad_one_its_reason(tmp_path) -> None:
    values = [
        event(transaction_id="t1", product={"quantity": 2}),
        event(transaction_id="t2", product={"quantity": "two"}),
        orjson.dumps({"transaction_id": "t3", "amount": 1}),
        orjson.dumps({"timestamp": "2026-09-07T10:00:00.000Z"}),
        None,
        event(transaction_id=None),
        event(transaction_id="t4", amount=True),
        b"{oops",
        event(transaction_id="t5", product={"quantity": 5}),
    ]
    table, good, bad = decoder(tmp_path).decode(values)
    assert table.column("transaction_id").to_pylist() == ["t1", "t5"]
    assert good == [0, 8]
    assert bad[1] == "product.quantity: expected integer, got string"
    assert bad[2] == "missing required field 'timestamp'"
    assert bad[3] == "missing required field 'transaction_id'"
    assert bad[4] == "null value"
    assert bad[5] == "missing required field 'transaction_id'"
    assert bad[6] == "amount: expected integer, got boolean"
    assert bad[7].startswith("value is not valid JSON: ")
    assert sorted(bad) == [1, 2, 3, 4, 5, 6, 7]


def test_the_first_batch_fixes_the_schema_and_records_it_with_a_history_entry(tmp_path) -> None:
    decoder(tmp_path).decode([event(product={"quantity": 2, "name": "Book"})])
    stored = orjson.loads((tmp_path / "_metadata/payments/feed.json").read_bytes())
    assert [entry["name"] for entry in stored["schema"]] == ["transaction_id", "timestamp", "amount", "product"]
    assert stored["schema"][3]["type"] == {"struct": [{"name": "quantity", "type": "int64"},
                                                      {"name": "name", "type": "string"}]}
    assert [entry["version"] for entry in stored["schema_history"]] == [1]
    assert "added column amount int64" in stored["schema_history"][0]["changes"]


def test_a_new_decoder_reads_the_stored_schema_and_takes_a_conforming_batch_whole(tmp_path) -> None:
    decoder(tmp_path).decode([event()])
    table, good, bad = decoder(tmp_path).decode([event(transaction_id=f"t{i}", amount=i) for i in range(3)])
    assert (good, bad) == (None, {}), "all rows good: no index list, no reasons"
    assert table.schema == pa.schema([("transaction_id", pa.string()), ("timestamp", pa.string()),
                                      ("amount", pa.int64())])
    assert table.column("amount").to_pylist() == [0, 1, 2]


def test_upper_case_producer_names_land_in_snake_case_columns(tmp_path) -> None:
    value = orjson.dumps({"TRANSACTION_ID": "t1", "TIMESTAMP": "2026-09-07T10:00:00.000Z", "AMOUNT_EUR": 9.2})
    table, _good, bad = decoder(tmp_path).decode([value, value])
    assert bad == {}
    assert table.column_names == ["transaction_id", "timestamp", "amount_eur"]
    assert table.column("amount_eur").to_pylist() == [9.2, 9.2]


def test_a_column_that_appears_later_is_added_as_nullable_and_older_rows_get_null(tmp_path) -> None:
    table, _good, bad = decoder(tmp_path).decode([event(transaction_id="t1"), event(transaction_id="t2", city="Oslo")])
    assert bad == {}
    assert table.column("city").to_pylist() == [None, "Oslo"]
    assert table.schema.field("city").type == pa.string()


def test_a_value_with_decimals_after_integers_widens_the_column_to_double(tmp_path) -> None:
    table, _good, bad = decoder(tmp_path).decode([event(amount=10), event(amount=10.5)])
    assert bad == {}
    assert table.schema.field("amount").type == pa.float64()
    assert table.column("amount").to_pylist() == [10.0, 10.5]


def test_a_contract_feed_quarantines_a_row_whose_only_fault_comes_after_a_widening(tmp_path) -> None:
    """A row is checked whole: its double amount does not widen the schema when another field refutes it."""
    _table, _good, bad = decoder(tmp_path).decode([event(amount=1), event(amount=2.5, timestamp=5)])
    assert bad == {1: "timestamp: expected string, got integer"}
    stored = lake_schema.schema_from_json(FeedMetadata(LakeStorage(tmp_path), "payments").read()["schema"])
    assert stored["amount"] == pa.int64()


@pytest.mark.parametrize(("millis", "kept"), [
    (YEAR_10000_MS - 1, True),  # 9999-12-31T23:59:59.999Z
    (YEAR_10000_MS, False),
    (YEAR_1_MS, True),  # 0001-01-01T00:00:00.000Z
    (YEAR_1_MS - 1, False),
])
def test_an_epoch_millisecond_time_outside_the_calendar_is_quarantined(tmp_path, millis: int, kept: bool) -> None:
    values = [orjson.dumps({"timestamp": 1_788_775_200_000}), orjson.dumps({"timestamp": millis})]
    table, good, bad = decoder(tmp_path, ADHOC_FEED).decode(values)
    if kept:
        assert (table.column("timestamp").to_pylist(), bad) == ([1_788_775_200_000, millis], {})
    else:
        assert table.column("timestamp").to_pylist() == [1_788_775_200_000]
        assert good == [0]
        assert bad == {1: f"timestamp: {millis} (epoch milliseconds) is outside the dates the lake can partition "
                          "by (years 1 to 9999)"}


def test_a_feed_without_a_contract_lands_a_record_without_id_or_time(tmp_path) -> None:
    table, good, bad = decoder(tmp_path, ADHOC_FEED).decode([b'{"page": "/home"}', b'{"page": "/cart"}'])
    assert bad == {}
    assert table.column("page").to_pylist() == ["/home", "/cart"]


# ---------------------------------------------------------------- record_schema on a feed.json document
def test_record_schema_adds_a_history_entry_only_when_the_schema_changes() -> None:
    document: dict = {"feed": "payments"}
    first = record_schema(document, {"id": pa.string(), "amount": pa.int64()})
    assert first == {"id": pa.string(), "amount": pa.int64()}
    assert [entry["changes"] for entry in document["schema_history"]] == [
        ["added column id string", "added column amount int64"]]
    record_schema(document, {"id": pa.string(), "amount": pa.int64()})
    assert len(document["schema_history"]) == 1, "an unchanged schema must not add a history entry"
    merged = record_schema(document, {"amount": pa.float64(), "city": pa.string()})
    assert merged == {"id": pa.string(), "amount": pa.float64(), "city": pa.string()}
    assert document["schema_history"][1]["version"] == 2
    assert document["schema_history"][1]["changes"] == ["column amount: int64 -> double", "added column city string"]


def test_record_schema_keeps_the_stored_type_when_another_consumer_disagrees() -> None:
    document = {"schema": [{"name": "amount", "type": "string"}]}
    merged = record_schema(document, {"amount": pa.int64()})
    assert merged == {"amount": pa.string()}
    assert "schema_history" not in document


@pytest.mark.parametrize("timestamp", ["9999-12-31T23:30:00-01:00", "0001-01-01T00:30:00+01:00"])
def test_iso_text_whose_utc_instant_leaves_the_calendar_is_quarantined_not_landed(tmp_path, timestamp: str) -> None:
    """Its UTC day would be in year 10000 or year 0, which no day folder (and no Python date) can hold."""
    values = [event(transaction_id="late", timestamp=timestamp), event(transaction_id="fine"),
              event(transaction_id="edge", timestamp="9999-12-31T23:30:00+01:00")]
    table, good, bad = decoder(tmp_path).decode(values)
    assert table.column("transaction_id").to_pylist() == ["fine", "edge"]
    assert good == [1, 2]
    assert bad == {0: f"timestamp: {timestamp!r} is outside the dates the lake can partition by (years 1 to 9999)"}
    # the rows kept go on to their day folders (a year-10000 day used to stop the consumer right here)
    stamped, days, fallback = lineage.stamp_rows(table, "timestamp", "payments", pa.array([0, 0]), pa.array([1, 2]),
                                                     pa.array([0, 0], pa.int64()), datetime(2026, 9, 9, tzinfo=UTC))
    assert sorted(lineage.split_by_partition_and_day(stamped, days, fallback)) == [
        (0, date(2026, 9, 7)), (0, date(9999, 12, 31))]
