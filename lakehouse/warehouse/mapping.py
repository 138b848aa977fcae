"""Which mapping lands a table feed: the curated star mapping of a built-in table, else auto-mapping."""

from __future__ import annotations

from lakehouse.catalog import Feed
from lakehouse.errors import LakehouseError
from lakehouse.kafka.records import BadRecord, normalize_columns
from lakehouse.settings import Settings
from lakehouse.warehouse.automap import AutoMapping
from lakehouse.warehouse.base import Mapping
from lakehouse.warehouse.connection import open_warehouse
from lakehouse.warehouse.migrations import ensure_schema
from lakehouse.warehouse.star import CURATED


def mapping_for(feed: Feed) -> Mapping:
    """The curated mapping of a built-in table feed, else the auto-mapping of the feed (new feeds need no code)."""
    return CURATED.get(feed.name) or AutoMapping(feed)


def ensure_feed_table(settings: Settings, feed: Feed, sample_rows: list[dict] | None = None) -> str:
    """Make sure the warehouse can hold `feed` now; returns its table name.

    For a feed without a curated mapping the table is created with the key columns as its primary key
    and, when sample rows are given (any column-name style), a column for every non-null value seen;
    other columns are added by the consumers as they appear.
    """
    mapping = mapping_for(feed)
    try:
        payloads = [((), mapping.payload_of(normalize_columns(row))) for row in sample_rows or []] \
            if isinstance(mapping, AutoMapping) else []
    except BadRecord as exc:
        raise LakehouseError(f"feed {feed.name}: sample row cannot be mapped: {exc}") from None
    with open_warehouse(settings) as warehouse:
        ensure_schema(warehouse)
        mapping.prepare(warehouse, payloads)
    return mapping.table
