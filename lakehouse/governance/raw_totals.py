"""What the built-in tables' additive columns must sum to, recomputed from raw events.

Status compares each table with these totals over the raw events in the lake. Retention deletes raw events on
purpose: it records the totals of the rows it deletes (in the raw feed's metadata), so the comparison still
holds for the whole history afterwards: retained rows + rows recorded at deletion.
"""

from __future__ import annotations

from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from lakehouse.lake import schema as lake_schema
from lakehouse.lake.metadata import FeedMetadata
from lakehouse.storage import LakeStorage

RAW_FEED = "transaction_stream"
MONEY = pa.decimal128(38, 2)
Totals = dict[str, Decimal]  # "rows" and each additive column -> its sum


def exact_sum(values: pa.ChunkedArray, money: bool) -> Decimal:
    """Exact sums: money to the cent (a double of 2 decimals converts exactly), counts as integers."""
    total = pc.sum(values.cast(MONEY) if money else values.cast(pa.int64())).as_py()
    return Decimal(total if total is not None else 0)


def of_files(storage: LakeStorage, paths: list[str]) -> dict[str, Totals]:
    """Per built-in table, the totals its additive columns must reach over the raw events in `paths`.

    EUR money is not recomputed (it needs the per-event conversion); counts are.
    """
    # the feed's schema spans files written before it evolved (a column added, an integer widened to double)
    stored = FeedMetadata(storage, RAW_FEED).read().get("schema", [])
    schema = lake_schema.to_arrow(lake_schema.schema_from_json(stored))
    events = ds.dataset([storage.full(path) for path in paths], filesystem=storage.fs, format="parquet",
                        schema=schema if len(schema) else None).to_table(
        columns={"transaction_type": ds.field("transaction_type"), "amount": ds.field("amount"),
                 "quantity": ds.field("product", "quantity")})
    purchases = events.filter(pc.equal(events.column("transaction_type"), "purchase"))
    count, amount = Decimal(events.num_rows), exact_sum(events.column("amount"), money=True)
    return {
        "user_transaction_summary": {"total_amount": amount, "transaction_count": count},
        "user_transaction_summary_eur": {"transaction_count": count},
        "payment_method_totals": {"transaction_count": count},
        "product_purchase_counts": {
            "purchase_count": Decimal(purchases.num_rows),
            "total_quantity": exact_sum(purchases.column("quantity"), money=False),
            "total_revenue": exact_sum(purchases.column("amount"), money=True)},
    }


def recorded_at_deletion(storage: LakeStorage) -> dict[str, Totals]:
    """The totals of the raw rows retention has deleted (see `of_files`), summed over its runs."""
    stream = FeedMetadata(storage, RAW_FEED).read().get("retention", {}).get("stream", {})
    return from_json(stream.get("raw_totals", {}))


def added(left: dict[str, Totals], right: dict[str, Totals]) -> dict[str, Totals]:
    return {table: {column: left.get(table, {}).get(column, Decimal(0)) + right.get(table, {}).get(column, Decimal(0))
                    for column in {*left.get(table, {}), *right.get(table, {})}}
            for table in {*left, *right}}


def to_json(totals: dict[str, Totals]) -> dict[str, dict[str, str]]:
    """Decimals as text: exact in JSON."""
    return {table: {column: str(value) for column, value in sums.items()} for table, sums in totals.items()}


def from_json(document: dict[str, dict[str, str]]) -> dict[str, Totals]:
    return {table: {column: Decimal(value) for column, value in sums.items()} for table, sums in document.items()}
