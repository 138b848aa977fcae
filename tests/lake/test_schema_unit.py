"""Schema fixing and evolution of stream feeds (lakehouse.lake.schema): pure functions over pyarrow types."""

from __future__ import annotations

import pyarrow as pa
import pytest

from lakehouse.catalog import Feed
from lakehouse.kafka.records import BadRecord
from lakehouse.lake import schema as lake_schema

ORDER = {"id": pa.string(), "amount": pa.int64()}


# ---------------------------------------------------------------- inference and merging
@pytest.mark.parametrize(("value", "type_"), [
    (None, pa.null()),
    (True, pa.bool_()),
    (7, pa.int64()),
    (7.5, pa.float64()),
    ("x", pa.string()),
    ([1, 2.5], pa.list_(pa.float64())),
    ([], pa.list_(pa.null())),
    ({"qty": 2, "tags": ["a"]}, pa.struct([("qty", pa.int64()), ("tags", pa.list_(pa.string()))])),
])
def test_a_json_value_gets_its_type_on_first_sight(value: object, type_: pa.DataType) -> None:
    assert lake_schema.infer_type(value, "col") == type_


def test_an_integer_beyond_64_bits_is_refused_with_its_path() -> None:
    with pytest.raises(BadRecord, match=r"^product\.quantity: integer 9223372036854775808 is out of the 64-bit range$"):
        lake_schema.infer_type({"quantity": 2**63}, "product")
    assert lake_schema.infer_type(2**63 - 1, "n") == pa.int64()


@pytest.mark.parametrize(("known", "seen", "merged"), [
    (pa.int64(), pa.float64(), pa.float64()),
    (pa.float64(), pa.int64(), pa.float64()),
    (pa.null(), pa.string(), pa.string()),
    (pa.string(), pa.null(), pa.string()),
    (pa.struct([("a", pa.int64())]), pa.struct([("b", pa.string())]),
     pa.struct([("a", pa.int64()), ("b", pa.string())])),
    (pa.list_(pa.int64()), pa.list_(pa.float64()), pa.list_(pa.float64())),
    (pa.struct([("q", pa.int64())]), pa.struct([("q", pa.float64())]), pa.struct([("q", pa.float64())])),
])
def test_merging_types_fills_nulls_widens_integers_and_adds_struct_fields(known, seen, merged) -> None:
    assert lake_schema.merge_types(known, seen, "col") == merged


@pytest.mark.parametrize(("known", "seen", "reason"), [
    (pa.string(), pa.int64(), "amount: expected string, got integer"),
    (pa.int64(), pa.bool_(), "amount: expected integer, got boolean"),
    (pa.float64(), pa.string(), "amount: expected number, got string"),
    (pa.struct([("q", pa.int64())]), pa.string(), "amount: expected object, got string"),
    (pa.list_(pa.int64()), pa.int64(), "amount: expected array, got integer"),
    (pa.struct([("q", pa.int64())]), pa.struct([("q", pa.string())]), "amount.q: expected integer, got string"),
    (pa.list_(pa.string()), pa.list_(pa.bool_()), "amount[]: expected string, got boolean"),
])
def test_a_contradicting_type_is_refused_with_the_path_of_the_field(known, seen, reason: str) -> None:
    with pytest.raises(BadRecord) as refused:
        lake_schema.merge_types(known, seen, "amount")
    assert str(refused.value) == reason


# ---------------------------------------------------------------- checking batches
def test_contract_feeds_require_their_id_and_time_ad_hoc_feeds_nothing() -> None:
    contract = Feed(name="pay", kind="stream", topic="pay", key_columns=["payment_id", "line"], timestamp_field="at")
    assert lake_schema.required_fields(contract) == ["payment_id", "at"]
    assert lake_schema.required_fields(Feed(name="clicks", kind="stream", topic="clicks",
                                            timestamp_field="timestamp")) == []


def test_a_batch_evolves_the_schema_with_a_new_nullable_column_and_reports_each_bad_row() -> None:
    rows = [{"id": "a", "amount": 1}, {"id": "b", "amount": 2, "city": "Oslo"}, None,
            {"id": "c", "amount": "3"}, {"amount": 4}]
    evolved, reasons = lake_schema.check_rows(rows, ORDER, ["id"])
    assert evolved == {"id": pa.string(), "amount": pa.int64(), "city": pa.string()}
    assert reasons == [None, None, "", "amount: expected integer, got string", "missing required field 'id'"]


def test_int_to_double_widening_carries_across_batches_and_integers_still_fit_afterwards() -> None:
    first, _ = lake_schema.check_rows([{"id": "a", "amount": 1}], {}, ["id"])
    assert first["amount"] == pa.int64()
    second, reasons = lake_schema.check_rows([{"id": "b", "amount": 2.5}], first, ["id"])
    assert (second["amount"], reasons) == (pa.float64(), [None])
    third, reasons = lake_schema.check_rows([{"id": "c", "amount": 3}], second, ["id"])
    assert (third["amount"], reasons) == (pa.float64(), [None]), "an integer must not narrow a double column back"


def test_a_column_seen_only_as_null_is_typed_by_its_first_value() -> None:
    evolved, _ = lake_schema.check_rows([{"note": None}], {}, [])
    assert evolved == {"note": pa.null()}
    evolved, reasons = lake_schema.check_rows([{"note": "late"}], evolved, [])
    assert (evolved, reasons) == ({"note": pa.string()}, [None])


@pytest.mark.parametrize(("value", "type_", "fits"), [
    (True, pa.int64(), False),  # JSON true is not an integer
    (1, pa.float64(), True),
    (1.0, pa.int64(), False),
    (None, pa.string(), True),
    ({"q": 1, "extra": 2}, pa.struct([("q", pa.int64())]), False),
    ([1, None, 3], pa.list_(pa.int64()), True),
    (2**63, pa.float64(), False),
])
def test_conforms_says_whether_a_value_fits_without_evolution(value: object, type_: pa.DataType, fits: bool) -> None:
    assert lake_schema.conforms(value, type_) is fits


# ---------------------------------------------------------------- stored form, merges and conform
def test_a_schema_survives_its_json_form_nested_types_included() -> None:
    schema = {"id": pa.string(), "ok": pa.bool_(), "n": pa.null(),
              "product": pa.struct([("qty", pa.int64()), ("tags", pa.list_(pa.string()))]),
              "scores": pa.list_(pa.float64())}
    assert lake_schema.schema_from_json(lake_schema.schema_to_json(schema)) == schema
    assert lake_schema.schema_to_json({"scores": pa.list_(pa.float64())}) == [{"name": "scores",
                                                                               "type": {"list": "double"}}]


def test_merging_another_consumers_schema_unions_columns_and_keeps_stored_types_on_conflict() -> None:
    stored = {"id": pa.string(), "amount": pa.int64(), "tag": pa.string()}
    mine = {"id": pa.string(), "amount": pa.float64(), "tag": pa.int64(), "city": pa.string()}
    assert lake_schema.merge_schemas(stored, mine) == {"id": pa.string(), "amount": pa.float64(),
                                                       "tag": pa.string(), "city": pa.string()}
    assert lake_schema.describe_changes(stored, lake_schema.merge_schemas(stored, mine)) == [
        "column amount: int64 -> double", "added column city string"]


def test_conform_adds_missing_columns_as_nulls_and_widens_old_integer_columns() -> None:
    old = pa.table({"id": ["a", "b"], "amount": pa.array([1, 2], pa.int64()), "note": pa.nulls(2)})
    target = pa.schema([("id", pa.string()), ("amount", pa.float64()), ("note", pa.string()), ("city", pa.string())])
    conformed = lake_schema.conform(old, target)
    assert conformed.schema == target
    assert conformed.to_pylist() == [{"id": "a", "amount": 1.0, "note": None, "city": None},
                                     {"id": "b", "amount": 2.0, "note": None, "city": None}]


def test_conform_fills_a_struct_field_added_later_and_keeps_null_structs_null() -> None:
    old = pa.table({"product": pa.array([{"qty": 1}, None], pa.struct([("qty", pa.int64())]))})
    target = pa.schema([("product", pa.struct([("qty", pa.float64()), ("name", pa.string())]))])
    assert lake_schema.conform(old, target).column("product").to_pylist() == [{"qty": 1.0, "name": None}, None]
