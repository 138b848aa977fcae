"""Curated mappings of the four built-in ksqlDB tables onto the star schema (migrations/V001).

Each table feeds one fact table; its key points to a dimension, which is filled (or at least made to
hold the key) in the same transaction before the facts, so the foreign keys always hold.

A batch is validated column by column (values.Converter.column) into a TextTable; only the rows a
column form cannot decide go through `convert` one by one, so outcomes equal row-by-row conversion.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from mysql.connector.cursor import MySQLCursor

from lakehouse.kafka.records import BadRecord
from lakehouse.warehouse import upsert, values
from lakehouse.warehouse.base import SNAPSHOT_COLUMNS, Converted, Key, Mapping, Rows, Snapshot
from lakehouse.warehouse.migrations import PERMISSION_TABLES
from lakehouse.warehouse.upsert import TextTable
from lakehouse.warehouse.values import Converter

# Python types a column of decoded rows may hold to be turned into one Arrow column (else: row by row).
_ARROW_TYPES = {str: pa.string(), float: pa.float64(), int: pa.int64()}


@dataclass(frozen=True)
class Field:
    name: str
    convert: Converter


@dataclass(frozen=True)
class Dimension:
    """A dimension with a natural key (its first field). `key_only`: facts only make sure the key exists."""

    table: str
    fields: tuple[Field, ...]
    key_only: bool = False
    # Facts reference the dimension's own key, so they are known before ensure(); ensure() writes every key it
    # is given (merge: X locks; IGNORE on a duplicate: S lock), so those rows exist and cannot be deleted by
    # anyone until the transaction ends.
    natural_keys = True

    def ensure(self, cursor: MySQLCursor, rows: TextTable) -> None:
        """`rows`: this dimension's fields, key first, possibly several rows per key (the last one wins)."""
        key = self.fields[0].name
        if self.key_only:
            upsert.insert_missing(cursor, self.table, [key], pa.table({key: pc.unique(rows.column(0))}))
        else:
            upsert.merge_rows(cursor, self.table, [key], [f.name for f in self.fields], _last_per_key(rows))

    def fact_keys(self, cursor: MySQLCursor, keys: Sequence[Key], create: bool = True) -> list[Key | None]:
        return list(keys)


@dataclass(frozen=True)
class SurrogateDimension:
    """A dimension whose facts reference a generated id; an unknown name is added, never an error."""

    table: str
    id_column: str
    fields: tuple[Field, ...]  # just the unique name
    natural_keys = False  # facts reference generated ids, looked up with a plain SELECT: the foreign key check stays

    @property
    def name_column(self) -> str:
        return self.fields[0].name

    def ensure(self, cursor: MySQLCursor, rows: TextTable) -> None:
        self._ids(cursor, set(pc.unique(rows.column(0)).to_pylist()), create=True)

    def fact_keys(self, cursor: MySQLCursor, keys: Sequence[Key], create: bool = True) -> list[Key | None]:
        ids = self._ids(cursor, {key[0] for key in keys}, create)
        return [(str(ids[key[0]]),) if key[0] in ids else None for key in keys]

    def fact_key_columns(self, cursor: MySQLCursor, keys: TextTable) -> list[pa.Array]:
        names = keys.column(0)
        ids = self._ids(cursor, set(pc.unique(names).to_pylist()), create=True)
        positions = pc.index_in(names, value_set=pa.array(list(ids), pa.string()))
        return [pa.array([str(ident) for ident in ids.values()], pa.string()).take(positions.combine_chunks())]

    def _ids(self, cursor: MySQLCursor, names: set[str], create: bool) -> dict[str, int]:
        known = self._lookup(cursor, names)
        missing = sorted(names - known.keys())
        if create and missing:
            # Only new names are inserted: a no-op upsert would still burn AUTO_INCREMENT values.
            cursor.executemany(
                f"INSERT INTO {self.table} ({self.name_column}) VALUES (%s) "
                f"ON DUPLICATE KEY UPDATE {self.name_column} = {self.name_column}", [(name,) for name in missing])
            known.update(self._lookup(cursor, set(missing)))
        return known

    def _lookup(self, cursor: MySQLCursor, names: set[str]) -> dict[str, int]:
        if not names:
            return {}
        cursor.execute(f"SELECT {self.name_column}, {self.id_column} FROM {self.table} "
                       f"WHERE {self.name_column} IN ({', '.join(['%s'] * len(names))})", sorted(names))
        return {name: ident for name, ident in cursor.fetchall()}


class StarMapping(Mapping):
    """A built-in ksqlDB table onto one fact table and the dimension its key points to."""

    def __init__(self, feed_name: str, fact_table: str, keys: tuple[Field, ...], fact_key_columns: tuple[str, ...],
                 measures: tuple[Field, ...], dimension: Dimension | SurrogateDimension) -> None:
        self.feed_name = feed_name
        self.table = fact_table
        self.keys = keys
        self.key_columns = [f.name for f in keys]
        self.fact_value_columns = (*fact_key_columns, *(f.name for f in measures))  # sent per row
        self.fact_columns = (*self.fact_value_columns, *SNAPSHOT_COLUMNS)  # + the stamps, set once per statement
        self.fact_key_columns = fact_key_columns
        self.measures = measures
        self.dimension = dimension
        # The dimension's key is the fact's first key column; its other fields are attributes.
        self._key_converters = [(f.name, f.convert) for f in keys]
        self._attribute_converters = [(f.name, f.convert) for f in dimension.fields[1:]]
        self._measure_converters = [(f.name, f.convert) for f in measures]
        self._fields = (*keys, *dimension.fields[1:], *measures)  # what convert_batch turns into text columns
        self._text_columns = [f.name for f in self._fields]

    def convert(self, row: dict) -> tuple[Key, object]:
        get = row.get  # hot path: runs once per record, so plain list comprehensions, no generators
        key = tuple([convert(name, get(name)) for name, convert in self._key_converters])
        dimension_row = (key[0], *[convert(name, get(name)) for name, convert in self._attribute_converters])
        measures = tuple([convert(name, get(name)) for name, convert in self._measure_converters])
        return key, (key, dimension_row, measures)

    def convert_batch(self, rows: Rows) -> Converted:
        count = rows.num_rows if isinstance(rows, pa.Table) else len(rows)
        texts, unsure = [], np.zeros(count, dtype=bool)
        for field in self._fields:
            column = _arrow_column(rows, field.name)
            text, field_unsure = field.convert.column(column) if column is not None else \
                (pa.nulls(count, pa.string()), np.ones(count, dtype=bool))
            texts.append(text)
            unsure |= field_unsure
        reasons = self._convert_one_by_one(rows, np.flatnonzero(unsure), texts)
        table = pa.table(dict(zip(self._text_columns, texts, strict=True)))
        keys: list[Key | None] = list(zip(*(table.column(f.name).to_pylist() for f in self.keys), strict=True))
        for index in reasons:
            keys[index] = None
        return Converted(keys, reasons, lambda indices: table.take(pa.array(indices, pa.int64())))

    def key(self, raw_key: tuple) -> Key:
        return tuple(f.convert(f.name, value) for f, value in zip(self.keys, raw_key, strict=True))

    def write(self, cursor: MySQLCursor, payloads: Sequence[object] | TextTable, snapshot: Snapshot) -> int:
        table = payloads if isinstance(payloads, pa.Table) else self._text_table(payloads)
        if not table.num_rows:
            return 0
        dimension_key, *attributes = self.dimension.fields
        dimension_rows = pa.table({dimension_key.name: table.column(self.keys[0].name),
                                   **{f.name: table.column(f.name) for f in attributes}})
        measures = [table.column(f.name) for f in self.measures]
        stamp = snapshot.stamp()
        if self.dimension.natural_keys:
            # The facts are serialized while the dimension is merged. That merge writes (and locks until commit)
            # every fact key's dimension row in this transaction: the server's per-row foreign key lookup could
            # only repeat it (about 8% of the load).
            with upsert.StagedRows(self._facts(table.select(self.key_columns).columns, measures)) as facts:
                self.dimension.ensure(cursor, dimension_rows)
                with upsert.foreign_key_checks_off(cursor):
                    facts.load(cursor, self.table, self.fact_value_columns, "REPLACE", stamp)
        else:
            self.dimension.ensure(cursor, dimension_rows)
            fact_keys = self.dimension.fact_key_columns(cursor, table.select(self.key_columns))
            upsert.replace_rows(cursor, self.table, self.fact_value_columns, self._facts(fact_keys, measures), stamp)
        return table.num_rows

    def _facts(self, keys: Sequence[pa.Array | pa.ChunkedArray], measures: list[pa.ChunkedArray]) -> TextTable:
        return pa.table(dict(zip(self.fact_value_columns, [*keys, *measures], strict=True)))

    def _convert_one_by_one(self, rows: Rows, indices: np.ndarray, texts: list[pa.Array]) -> dict[int, str]:
        """`convert` the rows no column form could decide: their text goes into `texts`; returns the bad ones."""
        if not len(indices):
            return {}
        chosen = rows.take(pa.array(indices)).to_pylist() if isinstance(rows, pa.Table) else \
            [rows[i] for i in indices]
        reasons, converted = {}, []
        for index, row in zip(indices.tolist(), chosen, strict=True):
            try:
                key, (_key, dimension_row, measures) = self.convert(row)  # type: ignore[misc]
                converted.append((*key, *dimension_row[1:], *measures))
            except BadRecord as exc:
                reasons[index] = str(exc)
                converted.append((None,) * len(texts))
        mask = np.zeros(len(texts[0]), dtype=bool)
        mask[indices] = True
        for position, values_ in enumerate(zip(*converted, strict=True)):
            texts[position] = pc.replace_with_mask(texts[position], pa.array(mask), pa.array(values_, pa.string()))
        return reasons

    def _text_table(self, payloads: Sequence[object]) -> TextTable:
        """Payloads of `convert` as the TextTable `convert_batch` selects."""
        return upsert.text_table(self._text_columns, [(*key, *dimension_row[1:], *measures)
                                                      for key, dimension_row, measures in payloads])  # type: ignore[misc]

    def delete(self, cursor: MySQLCursor, keys: Sequence[Key]) -> int:
        fact_keys = [k for k in self.dimension.fact_keys(cursor, keys, create=False) if k is not None]
        return upsert.delete_keys(cursor, self.table, self.fact_key_columns, fact_keys)


def _arrow_column(rows: Rows, name: str) -> pa.Array | None:
    """The values of one column as an Arrow array; None when they mix types that would not survive as one."""
    if isinstance(rows, pa.Table):
        return rows.column(name).combine_chunks() if name in rows.column_names else pa.nulls(rows.num_rows)
    column = list(map(dict.get, rows, repeat(name)))  # a third faster than a comprehension: no bytecode per row
    kinds = set(map(type, column)) - {type(None)}
    if not kinds:
        return pa.nulls(len(column))
    if len(kinds) > 1 or next(iter(kinds)) not in _ARROW_TYPES:
        return None  # e.g. ints and floats, bools, objects: row by row, exactly as convert does
    try:
        return pa.array(column, _ARROW_TYPES[next(iter(kinds))])
    except (pa.ArrowException, OverflowError, UnicodeEncodeError):
        return None  # an integer beyond 64 bits, text that is not valid Unicode ...


def _last_per_key(rows: TextTable) -> TextTable:
    """One row per value of the first column: the last one, like a dict filled in order."""
    positions = rows.append_column("_position", pa.array(np.arange(rows.num_rows)))
    last = positions.group_by(rows.column_names[0], use_threads=False).aggregate([("_position", "max")])
    return rows.take(last.column("_position_max"))


_USER_ID = Field("user_id", values.identifier(128))
_TRANSACTION_TYPE = Field("transaction_type", values.identifier(64))
_USER_FIELDS = (_USER_ID, Field("user_name", values.text(255)), Field("user_email", values.text(255)),
                Field("user_country", values.text(64)), Field("user_city", values.text(128)))
_PAYMENT_METHOD = Field("payment_method", values.identifier(64))
_PRODUCT_ID = Field("product_id", values.identifier(128))
# The migrations' column types: sums DECIMAL(20, 2) (V002), single amounts DECIMAL(18, 2), averages DECIMAL(20, 4).
_SUM, _MONEY, _AVERAGE = values.money(20, 2), values.money(18, 2), values.money(20, 4)


def _curated() -> dict[str, StarMapping]:
    user_keys = (_USER_ID, _TRANSACTION_TYPE)
    mappings = [
        StarMapping(
            "user_transaction_summary", "fact_user_transaction_summary", user_keys, ("user_id", "transaction_type"),
            (Field("total_amount", _SUM), Field("transaction_count", values.count),
             Field("avg_amount", _AVERAGE), Field("min_amount", _MONEY), Field("max_amount", _MONEY),
             Field("last_transaction_at", values.timestamp)),
            Dimension("dim_users", _USER_FIELDS)),
        StarMapping(
            # The EUR table carries no user attributes: only make sure the user exists, so the FK holds.
            "user_transaction_summary_eur", "fact_user_transaction_summary_eur", user_keys,
            ("user_id", "transaction_type"),
            (Field("total_amount_eur", _SUM), Field("transaction_count", values.count),
             Field("avg_amount_eur", _AVERAGE), Field("min_amount_eur", _MONEY), Field("max_amount_eur", _MONEY),
             Field("last_transaction_at", values.timestamp)),
            Dimension("dim_users", (_USER_ID,), key_only=True)),
        StarMapping(
            "payment_method_totals", "fact_payment_method_totals", (_PAYMENT_METHOD,), ("payment_method_id",),
            (Field("total_amount_eur", _SUM), Field("transaction_count", values.count),
             Field("avg_amount_eur", _AVERAGE)),
            SurrogateDimension("dim_payment_methods", "payment_method_id", (_PAYMENT_METHOD,))),
        StarMapping(
            "product_purchase_counts", "fact_product_purchase_counts", (_PRODUCT_ID,), ("product_id",),
            (Field("purchase_count", values.count), Field("total_quantity", values.count),
             Field("total_revenue", _SUM), Field("avg_price", _AVERAGE), Field("unique_buyers", values.count)),
            Dimension("dim_products", (_PRODUCT_ID, Field("product_name", values.text(255)),
                                       Field("product_category", values.text(128))))),
    ]
    return {m.feed_name: m for m in mappings}


CURATED: dict[str, StarMapping] = _curated()
# Tables the project owns: an auto-mapped feed may not take one of these names.
RESERVED_TABLES = frozenset({
    "dim_users", "dim_payment_methods", "dim_products", "kafka_offsets", "sync_runs", "schema_version",
    *(m.table for m in CURATED.values()), *PERMISSION_TABLES,
})

