"""Feed onboarding and lifecycle: add a feed with one command, change it, disable, archive, restore.

A new feed is only data: a catalog entry (lakehouse.catalog), its lake folder and, for a table, its
auto-mapped warehouse table. Consumers, export, sync and the orchestrator read the catalog and take
every ACTIVE feed (`FeedCatalog.list(active_only=True)` / `Feed.active`), so no code changes.
Disabled and archived feeds are skipped by all of them; archiving keeps every file (and retention
leaves archived feeds alone), restoring makes the feed active again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import mysql.connector

from lakehouse.catalog import DEFAULT_MAX_COLUMNS, KINDS, Feed, FeedCatalog, validate_feed, validate_name
from lakehouse.errors import LakehouseError
from lakehouse.kafka import clients, ksqldb
from lakehouse.kafka.records import snake_case
from lakehouse.settings import Settings
from lakehouse.storage import LakeStorage
from lakehouse.warehouse.mapping import ensure_feed_table

# What a new feed gets when the command line does not say (the built-in feeds use the same values).
DEFAULT_RETENTION_DAYS = 90
DEFAULT_KEEP_VERSIONS = 5
DEFAULT_TIMESTAMP_FIELD = "timestamp"
UPDATABLE = ("topic", "ksql_name", "key_columns", "timestamp_field", "storage_mode", "retention_days",
             "keep_versions", "lateness_days", "max_columns", "description")
STATUS_ACTIONS = {
    "disable": {"enabled": False},
    "enable": {"enabled": True},
    "archive": {"archived": True},
    "restore": {"archived": False},
}


@dataclass
class Onboarded:
    feed: Feed
    lake_folder: str
    warehouse_table: str | None = None
    topic: str | None = None  # what add_feed did about the Kafka topic, e.g. "created, 6 partitions"
    warnings: list[str] = field(default_factory=list)


def catalog_for(settings: Settings) -> FeedCatalog:
    return FeedCatalog(LakeStorage(settings.data_lake_root))


def new_feed(name: str, kind: str, topic: str, *, ksql_name: str = "", key_columns: list[str] | None = None,
             timestamp_field: str | None = DEFAULT_TIMESTAMP_FIELD, storage_mode: str = "",
             retention_days: int | None = None, keep_versions: int | None = None,
             max_columns: int | None = None, description: str = "") -> Feed:
    """A validated feed definition with the project's defaults filled in."""
    validate_name(name)
    if timestamp_field:
        validate_name(timestamp_field, "timestamp field")
    if kind not in KINDS:
        raise LakehouseError(f"feed type must be one of {', '.join(KINDS)}, got {kind!r}")
    if kind == "stream" and keep_versions is not None:
        raise LakehouseError("--keep-versions is for table feeds; a stream keeps days (--retention-days)")
    if kind == "table" and retention_days is not None:
        raise LakehouseError("--retention-days is for stream feeds; a table keeps versions (--keep-versions)")
    if kind == "table" and not key_columns:
        raise LakehouseError(f"table feed {name} needs --key-columns: they are its primary key in the lake "
                             "and in the warehouse")
    feed = Feed(
        name=name, kind=kind, topic=topic, ksql_name=ksql_name, storage_mode=storage_mode,
        key_columns=list(key_columns or []), description=description,
        retention_days=(DEFAULT_RETENTION_DAYS if retention_days is None else retention_days)
        if kind == "stream" else None,
        keep_versions=(DEFAULT_KEEP_VERSIONS if keep_versions is None else keep_versions)
        if kind == "table" else None,
        timestamp_field=timestamp_field if kind == "stream" else None,
        max_columns=DEFAULT_MAX_COLUMNS if max_columns is None else max_columns,
    )
    return validate_feed(feed)


def feed_from_ksqldb(settings: Settings, source: str, *, name: str | None = None,
                     key_columns: list[str] | None = None, storage_mode: str = "",
                     retention_days: int | None = None, keep_versions: int | None = None,
                     max_columns: int | None = None) -> Feed:
    """A feed for a ksqlDB stream or table: kind, topic, key columns and timestamp field from its DESCRIBE."""
    description = ksqldb.client_for(settings).describe(source)
    kind = description["type"].lower()
    topic = description["topic"]
    if settings.topic_prefix and topic.startswith(settings.topic_prefix):
        topic = topic[len(settings.topic_prefix):]  # the catalog holds topics without the environment prefix
    value_columns = {snake_case(f["name"]) for f in description.get("fields", [])} - set(
        ksqldb.key_columns(description))
    if key_columns is None:
        # A table's key columns are its primary key (decoded from the record key). A stream's KEY column
        # lives only in the record key, while a stream feed's id column must be in the value: none by default.
        key_columns = ksqldb.key_columns(description) if kind == "table" else []
    return new_feed(
        name or snake_case(description["name"]), kind, topic, ksql_name=description["name"],
        key_columns=key_columns, storage_mode=storage_mode, retention_days=retention_days,
        keep_versions=keep_versions, max_columns=max_columns, description=f"from ksqlDB {kind} {description['name']}",
        timestamp_field=DEFAULT_TIMESTAMP_FIELD if DEFAULT_TIMESTAMP_FIELD in value_columns else None)


def add_feed(settings: Settings, feed: Feed, partitions: int = clients.DEFAULT_PARTITIONS) -> Onboarded:
    """Write the catalog entry, create the lake folder, the Kafka topic when missing (compacted for a table)
    and, for a table, the warehouse table."""
    catalog = catalog_for(settings)
    catalog.add(feed)  # validates, refuses a duplicate name or topic, creates the lake folder
    result = Onboarded(feed, feed.lake_dir)
    topic = settings.topic(feed.topic)
    try:
        created = clients.ensure_topics(settings, {topic: feed.kind == "table"}, partitions)
        result.topic = f"created, {partitions} partitions" + (", compacted" if feed.kind == "table" else "") \
            if created else "already there"
    except LakehouseError as exc:
        # The feed is usable once the topic exists (brokers may refuse to create topics on first produce).
        result.warnings.append(f"Kafka topic {topic} not created ({exc}); create it before producing to it")
    if feed.kind == "table":
        try:
            result.warehouse_table = ensure_feed_table(settings, feed)
        except (LakehouseError, mysql.connector.Error) as exc:
            # The feed is usable: the warehouse consumer and sync create the table on their first write.
            result.warnings.append(f"warehouse table not created yet ({exc}); the warehouse consumer or "
                                   "sync_to_mysql.py creates it on first write")
    return result


def update_feed(settings: Settings, name: str, changes: dict) -> Feed:
    """Change catalog fields of a feed (not its name or kind)."""
    unknown = sorted(set(changes) - set(UPDATABLE))
    if unknown:
        raise LakehouseError(f"cannot update {', '.join(unknown)}; updatable: {', '.join(UPDATABLE)}")
    if not changes:
        flags = ", ".join("--" + name.replace("_", "-") for name in UPDATABLE)
        raise LakehouseError(f"nothing to update; give one of: {flags}")
    catalog = catalog_for(settings)
    feed = catalog.get(name)
    if feed.kind == "table" and "key_columns" in changes and changes["key_columns"] != feed.key_columns:
        raise LakehouseError(f"the key columns of table feed {name} cannot change (the warehouse primary key "
                             "depends on them); add a new feed instead")
    if (feed.kind == "stream" and "keep_versions" in changes) or (feed.kind == "table" and "retention_days" in changes):
        raise LakehouseError(f"feed {name} is a {feed.kind}: use "
                             f"{'--retention-days' if feed.kind == 'stream' else '--keep-versions'}")
    if feed.kind == "table" and "lateness_days" in changes:
        raise LakehouseError(f"feed {name} is a table: its versions are not compacted, it has no lateness window")
    if "topic" in changes:
        owner = catalog.by_topic(changes["topic"])
        if owner is not None and owner.name != name:
            raise LakehouseError(f"topic {changes['topic']!r} already belongs to feed {owner.name!r}")
    for key, value in changes.items():
        setattr(feed, key, value)
    return catalog.save(feed)


def set_status(settings: Settings, name: str, action: str) -> tuple[Feed, bool]:
    """disable / enable / archive / restore a feed; returns (feed, whether anything changed)."""
    if action not in STATUS_ACTIONS:
        raise LakehouseError(f"unknown action {action!r}; use one of {', '.join(STATUS_ACTIONS)}")
    catalog = catalog_for(settings)
    feed = catalog.get(name)
    wanted = STATUS_ACTIONS[action]
    changed = any(getattr(feed, key) != value for key, value in wanted.items())
    for key, value in wanted.items():
        setattr(feed, key, value)
    return (catalog.save(feed) if changed else feed), changed


def next_steps(settings: Settings, feed: Feed) -> list[str]:
    """The commands that take a new feed from Kafka into the lake and the warehouse."""
    topic = settings.topic(feed.topic)
    if feed.kind == "stream":
        return [
            f"produce JSON events to Kafka topic {topic} (each with a '{feed.timestamp_field}' field for its "
            "date partition" + (f" and '{feed.key_columns[0]}' as its id" if feed.key_columns else "") + ")",
            f"land them continuously: python kafka_consumer_datalake.py --feeds {feed.name}",
            f"  or in one bounded batch: python export_to_data_lake.py --stream {feed.name} --source kafka",
            f"find them in the lake under {feed.lake_dir}/year=YYYY/month=M/day=D/",
        ]
    return [
        f"have ksqlDB (or a producer) write the table changelog to Kafka topic {topic} "
        f"(key: {', '.join(feed.key_columns)})",
        f"keep the warehouse current: python kafka_consumer_warehouse.py --feeds {feed.name}",
        f"snapshot it into the lake: python export_to_data_lake.py --table {feed.name} --source kafka",
        f"sync the lake snapshot to MySQL: python sync_to_mysql.py --table {feed.name}",
    ]
