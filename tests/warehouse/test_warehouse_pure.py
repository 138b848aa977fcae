"""Pure pieces of the warehouse (no server needed): the LOAD DATA file format, table names."""

from __future__ import annotations

import re

import pyarrow as pa
import pytest

from lakehouse.catalog import Feed
from lakehouse.errors import LakehouseError
from lakehouse.kafka.records import BadRecord
from lakehouse.warehouse.automap import table_name
from lakehouse.warehouse.upsert import tsv
from lakehouse.warehouse.values import money, timestamp


def test_file_of_a_slice_escapes_exactly_the_values_in_the_slice() -> None:
    table = pa.table({"name": ["a\tb", "plain", "back\\slash", None, "tail\n"], "city": ["x", "y", "z", "w", "\0"]})
    assert tsv(table).to_pybytes() == (b"a\\tb\tx\nplain\ty\nback\\\\slash\tz\n\\N\tw\ntail\\n\t\\0\n")
    assert tsv(table.slice(1, 1)).to_pybytes() == b"plain\ty\n"  # specials only outside the slice: none escaped
    assert tsv(table.slice(2, 2)).to_pybytes() == b"back\\\\slash\tz\n\\N\tw\n"
    assert tsv(pa.table({"empty": pa.array(["", ""], pa.string())})).to_pybytes() == b"\n\n"


def test_a_feed_cannot_take_a_table_the_project_owns() -> None:
    for owned in ("dim_users", "kafka_offsets", "data_lake_permissions", "data_lake_permissions_audit"):
        with pytest.raises(LakehouseError, match=f"warehouse table {owned} belongs to the project"):
            table_name(Feed(name=owned, kind="table", topic=owned, key_columns=["id"]))
    assert table_name(Feed(name="merchant_totals", kind="table", topic="m", key_columns=["id"])) == "merchant_totals"


def test_timestamps_of_the_right_shape_must_also_exist_in_both_forms() -> None:
    impossible = ["2026-13-45T99:99:99.000Z", "2026-02-30T10:00:00.000Z", "2026-01-01T24:00:00.000Z"]
    real = ["2024-02-29T23:59:59.999Z", "2026-03-01T10:00:00.000Z"]
    text, unsure = timestamp.column(pa.array(real))
    assert text.to_pylist() == ["2024-02-29 23:59:59.999", "2026-03-01 10:00:00.000"] and not unsure.any()
    text, unsure = timestamp.column(pa.array([*impossible, "0999-12-31T10:00:00.000Z", *real]))
    assert text.to_pylist()[:4] == [None] * 4 and unsure[:4].all()  # the one-value form decides them:
    for value in impossible:
        with pytest.raises(BadRecord, match=re.escape(f"at: {value!r} is not a timestamp")):
            timestamp("at", value)
    with pytest.raises(BadRecord, match="outside the DATETIME range"):
        timestamp("at", "0999-12-31T10:00:00.000Z")
    assert [timestamp("at", value) for value in real] == ["2024-02-29 23:59:59.999", "2026-03-01 10:00:00.000"]


def test_money_columns_take_what_their_decimal_holds_and_refuse_the_rest() -> None:
    total, single = money(20, 2), money(18, 2)  # a sum column (V002) and a single amount column
    assert total("total_amount", 5e16) == "50000000000000000.00"
    assert total("total_amount", "123.456") == "123.46"
    for converter, value, reason in ((single, 5e16, "too large for the money column"),
                                     (total, 1e18, "too large for the money column"),
                                     (total, float("nan"), "not a finite number"),
                                     (total, float("inf"), "not a finite number")):
        with pytest.raises(BadRecord, match=reason):
            converter("total_amount", value)
