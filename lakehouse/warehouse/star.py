"""Curated mappings of the four built-in ksqlDB tables onto the star schema (migrations/V001).

Each table feeds one fact table; its key points to a dimension, which is filled (or at least made to
hold the key) in the same transaction before the facts, so the foreign keys always hold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mysql.connector.cursor import MySQLCursor

from lakehouse.warehouse import upsert, values
from lakehouse.warehouse.base import SNAPSHOT_COLUMNS, Key, Mapping, Snapshot
from lakehouse.warehouse.values import Converter


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

    def ensure(self, cursor: MySQLCursor, rows: Sequence[tuple]) -> None:
        key = self.fields[0].name
        if self.key_only:
            upsert.insert_missing(cursor, self.table, [key], [(row[0],) for row in rows])
        else:
            upsert.merge_rows(cursor, self.table, [key], [f.name for f in self.fields], rows)

    def fact_keys(self, cursor: MySQLCursor, keys: Sequence[Key], create: bool = True) -> list[Key | None]:
        return list(keys)


@dataclass(frozen=True)
class SurrogateDimension:
    """A dimension whose facts reference a generated id; an unknown name is added, never an error."""

    table: str
    id_column: str
    fields: tuple[Field, ...]  # just the unique name

    @property
    def name_column(self) -> str:
        return self.fields[0].name

    def ensure(self, cursor: MySQLCursor, rows: Sequence[tuple]) -> None:
        self._ids(cursor, {row[0] for row in rows}, create=True)

    def fact_keys(self, cursor: MySQLCursor, keys: Sequence[Key], create: bool = True) -> list[Key | None]:
        ids = self._ids(cursor, {key[0] for key in keys}, create)
        return [(str(ids[key[0]]),) if key[0] in ids else None for key in keys]

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
        self.fact_columns = (*fact_key_columns, *(f.name for f in measures), *SNAPSHOT_COLUMNS)
        self.fact_key_columns = fact_key_columns
        self.measures = measures
        self.dimension = dimension
        # The dimension's key is the fact's first key column; its other fields are attributes.
        self._key_converters = [(f.name, f.convert) for f in keys]
        self._attribute_converters = [(f.name, f.convert) for f in dimension.fields[1:]]
        self._measure_converters = [(f.name, f.convert) for f in measures]

    def convert(self, row: dict) -> tuple[Key, object]:
        get = row.get  # hot path: runs once per record, so plain list comprehensions, no generators
        key = tuple([convert(name, get(name)) for name, convert in self._key_converters])
        dimension_row = (key[0], *[convert(name, get(name)) for name, convert in self._attribute_converters])
        measures = tuple([convert(name, get(name)) for name, convert in self._measure_converters])
        return key, (key, dimension_row, measures)

    def key(self, raw_key: tuple) -> Key:
        return tuple(f.convert(f.name, value) for f, value in zip(self.keys, raw_key, strict=True))

    def write(self, cursor: MySQLCursor, payloads: Sequence[object], snapshot: Snapshot) -> int:
        if not payloads:
            return 0
        dimension_rows = {dim[0]: dim for _key, dim, _measures in payloads}  # type: ignore[misc]
        self.dimension.ensure(cursor, list(dimension_rows.values()))
        fact_keys = self.dimension.fact_keys(cursor, [key for key, _dim, _m in payloads])  # type: ignore[misc]
        stamp = snapshot.values()
        rows = [(*fact_key, *measures, *stamp)
                for fact_key, (_key, _dim, measures) in zip(fact_keys, payloads, strict=True)]  # type: ignore[misc]
        upsert.replace_rows(cursor, self.table, self.fact_columns, rows)
        return len(rows)

    def delete(self, cursor: MySQLCursor, keys: Sequence[Key]) -> int:
        fact_keys = [k for k in self.dimension.fact_keys(cursor, keys, create=False) if k is not None]
        return upsert.delete_keys(cursor, self.table, self.fact_key_columns, fact_keys)


_USER_ID = Field("user_id", values.identifier(128))
_TRANSACTION_TYPE = Field("transaction_type", values.identifier(64))
_USER_FIELDS = (_USER_ID, Field("user_name", values.text(255)), Field("user_email", values.text(255)),
                Field("user_country", values.text(64)), Field("user_city", values.text(128)))
_PAYMENT_METHOD = Field("payment_method", values.identifier(64))
_PRODUCT_ID = Field("product_id", values.identifier(128))
_MONEY, _AVERAGE = values.money(2), values.money(4)


def _curated() -> dict[str, StarMapping]:
    user_keys = (_USER_ID, _TRANSACTION_TYPE)
    mappings = [
        StarMapping(
            "user_transaction_summary", "fact_user_transaction_summary", user_keys, ("user_id", "transaction_type"),
            (Field("total_amount", _MONEY), Field("transaction_count", values.count),
             Field("avg_amount", _AVERAGE), Field("min_amount", _MONEY), Field("max_amount", _MONEY),
             Field("last_transaction_at", values.timestamp)),
            Dimension("dim_users", _USER_FIELDS)),
        StarMapping(
            # The EUR table carries no user attributes: only make sure the user exists, so the FK holds.
            "user_transaction_summary_eur", "fact_user_transaction_summary_eur", user_keys,
            ("user_id", "transaction_type"),
            (Field("total_amount_eur", _MONEY), Field("transaction_count", values.count),
             Field("avg_amount_eur", _AVERAGE), Field("min_amount_eur", _MONEY), Field("max_amount_eur", _MONEY),
             Field("last_transaction_at", values.timestamp)),
            Dimension("dim_users", (_USER_ID,), key_only=True)),
        StarMapping(
            "payment_method_totals", "fact_payment_method_totals", (_PAYMENT_METHOD,), ("payment_method_id",),
            (Field("total_amount_eur", _MONEY), Field("transaction_count", values.count),
             Field("avg_amount_eur", _AVERAGE)),
            SurrogateDimension("dim_payment_methods", "payment_method_id", (_PAYMENT_METHOD,))),
        StarMapping(
            "product_purchase_counts", "fact_product_purchase_counts", (_PRODUCT_ID,), ("product_id",),
            (Field("purchase_count", values.count), Field("total_quantity", values.count),
             Field("total_revenue", _MONEY), Field("avg_price", _AVERAGE), Field("unique_buyers", values.count)),
            Dimension("dim_products", (_PRODUCT_ID, Field("product_name", values.text(255)),
                                       Field("product_category", values.text(128))))),
    ]
    return {m.feed_name: m for m in mappings}


CURATED: dict[str, StarMapping] = _curated()
# Tables the migrations own: an auto-mapped feed may not take one of these names.
RESERVED_TABLES = frozenset({
    "dim_users", "dim_payment_methods", "dim_products", "kafka_offsets", "sync_runs", "schema_version",
    *(m.table for m in CURATED.values()),
})

