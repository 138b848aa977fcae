"""One schema per stream feed: fixed on first sight, evolved only by adding nullable columns.

Types come from the JSON values: string, int64, double, bool, struct, list, and null (a column seen only
as null so far, typed by its first non-null value). A value that contradicts a known type makes the record
bad (quarantined with the reason), it is never coerced. JSON has a single number type, so integer and double
are one family: an integer where a double is known is fine, and a double where an integer is known widens
the column to double, in the batch that first sees the column as in any later one. Files written before the
widening keep their int64 column; DuckDB (union_by_name) and pyarrow.dataset (given the feed's schema) read
both as double.

Schemas are ordered dicts name -> pyarrow type, stored in the feed metadata as JSON.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import pyarrow as pa

from lakehouse.catalog import Feed
from lakehouse.kafka.records import BadRecord

Schema = dict[str, pa.DataType]

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_PRIMITIVES = {str(t): t for t in (pa.string(), pa.int64(), pa.float64(), pa.bool_(), pa.null())}


# ---------------------------------------------------------------- type inference and fitting
def infer_type(value: object, path: str) -> pa.DataType:
    """The type a JSON value gets on first sight."""
    if value is None:
        return pa.null()
    if isinstance(value, bool):  # before int: bool is an int in Python
        return pa.bool_()
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise BadRecord(f"{path}: integer {value} is out of the 64-bit range")
        return pa.int64()
    if isinstance(value, float):
        return pa.float64()
    if isinstance(value, str):
        return pa.string()
    if isinstance(value, dict):
        return pa.struct([pa.field(name, infer_type(child, f"{path}.{name}")) for name, child in value.items()])
    if isinstance(value, list):
        element: pa.DataType = pa.null()
        for item in value:
            element = merge_types(element, infer_type(item, f"{path}[]"), f"{path}[]")
        return pa.list_(element)
    raise BadRecord(f"{path}: unsupported JSON value {type(value).__name__}")


def merge_types(known: pa.DataType, seen: pa.DataType, path: str) -> pa.DataType:
    """`known` evolved to also hold `seen`: null filled in, integer widened to double, struct fields added;
    else BadRecord."""
    if known == seen or pa.types.is_null(seen):
        return known
    if pa.types.is_null(known):
        return seen
    if pa.types.is_float64(known) and pa.types.is_int64(seen):
        return known
    if pa.types.is_int64(known) and pa.types.is_float64(seen):
        return seen
    if pa.types.is_struct(known) and pa.types.is_struct(seen):
        return _merge_structs(known, seen, path)
    if pa.types.is_list(known) and pa.types.is_list(seen):
        return pa.list_(merge_types(known.value_type, seen.value_type, f"{path}[]"))
    raise BadRecord(f"{path}: expected {describe(known)}, got {describe(seen)}")


def _merge_structs(known: pa.StructType, seen: pa.StructType, path: str) -> pa.DataType:
    fields = {known.field(i).name: known.field(i).type for i in range(known.num_fields)}
    for i in range(seen.num_fields):
        child = seen.field(i)
        current = fields.get(child.name)
        fields[child.name] = child.type if current is None else merge_types(current, child.type, f"{path}.{child.name}")
    return pa.struct([pa.field(name, type_) for name, type_ in fields.items()])


def conforms(value: object, type_: pa.DataType) -> bool:
    """True when `value` fits `type_` as it is (no evolution needed); cheap, for the common case."""
    return _checker(type_)(value)


@functools.lru_cache(maxsize=4096)
def _checker(type_: pa.DataType) -> Callable[[object], bool]:
    """A compiled conformance test for one type (building pyarrow types per value would be slow)."""
    if pa.types.is_struct(type_):
        children = {f.name: _checker(f.type) for f in type_}

        def struct(value: object) -> bool:
            if value is None:
                return True
            if type(value) is not dict:
                return False
            for name, child in value.items():
                check = children.get(name)
                if check is None or not check(child):
                    return False
            return True
        return struct
    if pa.types.is_list(type_):
        element = _checker(type_.value_type)
        return lambda value: value is None or (type(value) is list and all(map(element, value)))
    if pa.types.is_float64(type_):
        return lambda value: value is None or type(value) is float or (
            type(value) is int and _INT64_MIN <= value <= _INT64_MAX)
    if pa.types.is_int64(type_):
        return lambda value: value is None or (type(value) is int and _INT64_MIN <= value <= _INT64_MAX)
    python_type = {pa.string(): str, pa.bool_(): bool}.get(type_)
    return lambda value: value is None or (python_type is not None and type(value) is python_type)


def describe(type_: pa.DataType) -> str:
    if pa.types.is_struct(type_):
        return "object"
    if pa.types.is_list(type_):
        return "array"
    return {"double": "number", "int64": "integer", "bool": "boolean"}.get(str(type_), str(type_))


# ---------------------------------------------------------------- checking rows of one batch
def required_fields(feed: Feed) -> list[str]:
    """Fields a record must carry to land.

    A feed with a declared key is a contract feed: its id (first key column) and its event time are
    required. Feeds registered ad hoc from a topic require nothing (missing time -> Kafka time).
    """
    if not feed.key_columns:
        return []
    return [feed.key_columns[0]] + ([feed.timestamp_field] if feed.timestamp_field else [])


def check_rows(rows: Sequence[dict | None], schema: Schema, required: Sequence[str]) -> tuple[Schema, list[str | None]]:
    """Fit a batch of decoded rows (None = already bad) into `schema`.

    Returns the evolved schema (only good rows evolve it) and, per row, None when it fits or the reason
    it does not.
    """
    evolved = dict(schema)
    reasons: list[str | None] = []
    for row in rows:
        if row is None:
            reasons.append("")
            continue
        try:
            _require(row, required)
            evolved.update(_fit_row(row, evolved))
            reasons.append(None)
        except BadRecord as exc:
            reasons.append(str(exc))
    return evolved, reasons


def _require(row: dict, required: Sequence[str]) -> None:
    for name in required:
        if row.get(name) is None:
            raise BadRecord(f"missing required field {name!r}")


def _fit_row(row: dict, schema: Schema) -> Schema:
    """The columns this row changes (new or evolved); raises BadRecord on a contradiction."""
    changes = {}
    for name, value in row.items():
        known = schema.get(name)
        if known is not None and conforms(value, known):
            continue
        start = schema.get(name, pa.null())
        fitted = start if conforms(value, start) else merge_types(start, infer_type(value, name), name)
        if fitted != known:
            changes[name] = fitted
    return changes


# ---------------------------------------------------------------- schema changes, storage and conformance
def merge_schemas(stored: Schema, mine: Schema) -> Schema:
    """Union of two schemas of one feed (another consumer may have evolved it); stored types win conflicts."""
    merged = dict(stored)
    for name, type_ in mine.items():
        try:
            merged[name] = merge_types(merged.get(name, pa.null()), type_, name)
        except BadRecord:
            continue  # keep the stored type: our rows with the other type get rechecked and quarantined
    return merged


def describe_changes(before: Schema, after: Schema) -> list[str]:
    changes = []
    for name, type_ in after.items():
        if name not in before:
            changes.append(f"added column {name} {type_}")
        elif before[name] != type_:
            changes.append(f"column {name}: {before[name]} -> {type_}")
    return changes


def to_arrow(schema: Schema) -> pa.Schema:
    return pa.schema([pa.field(name, type_) for name, type_ in schema.items()])


def schema_to_json(schema: Schema) -> list[dict]:
    return [{"name": name, "type": _type_to_json(type_)} for name, type_ in schema.items()]


def schema_from_json(entries: list[dict]) -> Schema:
    return {entry["name"]: _type_from_json(entry["type"]) for entry in entries}


def _type_to_json(type_: pa.DataType) -> object:
    if pa.types.is_struct(type_):
        return {"struct": [{"name": f.name, "type": _type_to_json(f.type)} for f in type_]}
    if pa.types.is_list(type_):
        return {"list": _type_to_json(type_.value_type)}
    return str(type_)


def _type_from_json(value: object) -> pa.DataType:
    if isinstance(value, dict) and "struct" in value:
        return pa.struct([pa.field(f["name"], _type_from_json(f["type"])) for f in value["struct"]])
    if isinstance(value, dict) and "list" in value:
        return pa.list_(_type_from_json(value["list"]))
    return _PRIMITIVES[value]


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` with exactly `schema`: columns added since it was decoded become nulls, null columns get typed.

    Only the evolutions of this module happen between the two (added columns/fields, null -> type, int64 -> double).
    """
    if table.schema.equals(schema):
        return table
    columns = []
    for field in schema:
        if field.name in table.column_names:
            column = table.column(field.name)
            chunks = [_conform_array(chunk, field.type) for chunk in column.chunks]
            columns.append(pa.chunked_array(chunks, field.type))
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def _conform_array(array: pa.Array, type_: pa.DataType) -> pa.Array:
    if array.type == type_:
        return array
    if pa.types.is_null(array.type):
        return pa.nulls(len(array), type_)
    if pa.types.is_struct(type_):
        present = {array.type.field(i).name for i in range(array.type.num_fields)}
        children = [_conform_array(array.field(f.name), f.type) if f.name in present else pa.nulls(len(array), f.type)
                    for f in type_]
        return pa.StructArray.from_arrays(children, fields=list(type_), mask=array.is_null())
    if pa.types.is_list(type_):
        values = _conform_array(array.values, type_.value_type)
        return pa.ListArray.from_arrays(array.offsets, values, type=type_, mask=array.is_null())
    return array.cast(type_)
