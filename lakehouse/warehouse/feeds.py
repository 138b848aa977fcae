"""Choosing the table feeds a warehouse script works on, from the lake's feed catalog."""

from __future__ import annotations

from lakehouse.catalog import Feed, FeedCatalog
from lakehouse.errors import LakehouseError
from lakehouse.settings import Settings
from lakehouse.storage import LakeStorage


def active_table_feeds(settings: Settings) -> list[Feed]:
    """Every enabled, non-archived table feed (the warehouse holds every ksqlDB table)."""
    catalog = FeedCatalog(LakeStorage(settings.data_lake_root))
    if not catalog.list():
        raise LakehouseError(f"the feed catalog in {settings.data_lake_root} is empty; "
                             "run: python data_lake_config.py init")
    return catalog.list(kind="table", active_only=True)


def select_feeds(settings: Settings, names: list[str] | None = None,
                 topics: list[str] | None = None) -> list[Feed]:
    """The active table feeds named by feed name / warehouse table (`names`) or by topic, default all."""
    feeds = active_table_feeds(settings)
    if not names and not topics:
        return feeds
    by_name = [_pick(feeds, wanted, {(f.name, f.warehouse_table): f for f in feeds}, "table feed")
               for wanted in names or []]
    by_topic = [_pick(feeds, wanted, {(f.topic, settings.topic(f.topic)): f for f in feeds}, "topic")
                for wanted in topics or []]
    return list({feed.name: feed for feed in by_name + by_topic}.values())


def _pick(feeds: list[Feed], wanted: str, aliases: dict[tuple, Feed], what: str) -> Feed:
    """The feed one of whose aliases is `wanted`."""
    found = next((feed for names, feed in aliases.items() if wanted in names), None)
    if found is None:
        known = ", ".join(f.name if what == "table feed" else f.topic for f in feeds) or "none"
        raise LakehouseError(f"no active {what} {wanted!r}; active table feeds: {known}")
    return found
