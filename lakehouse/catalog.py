"""The feed catalog: one JSON file per feed inside the lake, so a new feed needs no code change.

A feed is a Kafka topic (a ksqlDB stream or table) and how it lands: storage mode, partitioning,
retention, key columns and its warehouse target.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields

from lakehouse import layout
from lakehouse.errors import LakehouseError
from lakehouse.storage import LakeStorage

KINDS = ("stream", "table")
STORAGE_MODES = {
    # Events are immutable facts: new records only ever add rows to their day's partition.
    "append": "new records add files to their date partition; nothing existing is rewritten",
    # A table is its current state: each snapshot is a complete new version; older versions stay for retention.
    "overwrite": "each snapshot is a complete new version=vN that supersedes the previous one",
    # Write-once data (backfills, reference loads): an existing partition or version is never rewritten.
    "ignore": "an existing partition or version is left as it is; only missing ones are written",
}
PARTITIONINGS = ("date", "version")
# Used with fullmatch: `$` would also accept a trailing newline.
_SAFE_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
_SAFE_TOPIC = re.compile(r"(?!\.\.?\Z)[A-Za-z0-9._-]{1,249}")  # Kafka's rule; '.' and '..' are not topics


@dataclass
class Feed:
    name: str
    kind: str
    topic: str
    ksql_name: str = ""
    storage_mode: str = ""
    partitioning: str = ""
    retention_days: int | None = None
    keep_versions: int | None = None
    key_columns: list[str] = field(default_factory=list)
    timestamp_field: str | None = None
    warehouse_table: str | None = None
    enabled: bool = True
    archived: bool = False
    description: str = ""

    def __post_init__(self) -> None:
        self.ksql_name = self.ksql_name or self.name.upper()
        self.storage_mode = self.storage_mode or ("append" if self.kind == "stream" else "overwrite")
        self.partitioning = self.partitioning or ("date" if self.kind == "stream" else "version")

    @property
    def active(self) -> bool:
        """Consumers, export, sync and the orchestrator only touch active feeds."""
        return self.enabled and not self.archived

    @property
    def status(self) -> str:
        return "archived" if self.archived else ("enabled" if self.enabled else "disabled")

    @property
    def lake_dir(self) -> str:
        return layout.feed_dir(self.kind, self.name)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict) -> Feed:
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


def validate_name(name: str, what: str = "feed name") -> str:
    if not _SAFE_NAME.fullmatch(name or ""):
        raise LakehouseError(
            f"invalid {what} {name!r}: use lower-case letters, digits and '_', starting with a letter (max 63)"
        )
    return name


def validate_feed(feed: Feed) -> Feed:
    validate_name(feed.name)
    if feed.kind not in KINDS:
        raise LakehouseError(f"feed {feed.name}: kind must be one of {', '.join(KINDS)}, got {feed.kind!r}")
    if not _SAFE_TOPIC.fullmatch(feed.topic or ""):
        raise LakehouseError(f"feed {feed.name}: invalid Kafka topic name {feed.topic!r}")
    if feed.storage_mode not in STORAGE_MODES:
        raise LakehouseError(f"feed {feed.name}: storage mode must be one of {', '.join(STORAGE_MODES)}")
    if feed.partitioning not in PARTITIONINGS:
        raise LakehouseError(f"feed {feed.name}: partitioning must be one of {', '.join(PARTITIONINGS)}")
    for column in feed.key_columns:
        validate_name(column, "key column")
    if feed.warehouse_table:
        validate_name(feed.warehouse_table, "warehouse table")
    for label, value in (("retention_days", feed.retention_days), ("keep_versions", feed.keep_versions)):
        if value is not None and (not isinstance(value, int) or value < 0):
            raise LakehouseError(f"feed {feed.name}: {label} must be a non-negative integer")
    return feed


def builtin_feeds() -> list[Feed]:
    stream_defaults = {"kind": "stream", "retention_days": 90, "timestamp_field": "timestamp",
                       "key_columns": ["transaction_id"]}
    table_defaults = {"kind": "table", "keep_versions": 5}
    return [
        Feed(name="transaction_stream", topic="transaction_stream", **stream_defaults,
             description="raw transaction events as produced"),
        Feed(name="transaction_flattened", topic="transaction_flattened", **stream_defaults,
             description="one column per nested field"),
        Feed(name="transaction_stream_anonymized", topic="transaction_stream_anonymized", **stream_defaults,
             description="no name or email, pseudonymized user id, amounts in EUR"),
        Feed(name="transaction_stream_blacklisted", topic="transaction_stream_blacklisted", **stream_defaults,
             description="events from blacklisted cities"),
        Feed(name="user_transaction_summary", topic="user_transaction_summary", **table_defaults,
             key_columns=["user_id", "transaction_type"], warehouse_table="fact_user_transaction_summary",
             description="per user and transaction type: total, count, avg, min, max, last time"),
        Feed(name="user_transaction_summary_eur", topic="user_transaction_summary_eur", **table_defaults,
             key_columns=["user_id", "transaction_type"], warehouse_table="fact_user_transaction_summary_eur",
             description="same, amounts converted to EUR"),
        Feed(name="payment_method_totals", topic="payment_method_totals", **table_defaults,
             key_columns=["payment_method"], warehouse_table="fact_payment_method_totals",
             description="per payment method, in EUR"),
        Feed(name="product_purchase_counts", topic="product_purchase_counts", **table_defaults,
             key_columns=["product_id"], warehouse_table="fact_product_purchase_counts",
             description="per product: purchases, quantity, revenue, average price, distinct buyers"),
    ]


class FeedCatalog:
    def __init__(self, storage: LakeStorage) -> None:
        self.storage = storage

    def list(self, kind: str | None = None, active_only: bool = False) -> list[Feed]:
        feeds = [self._load(name[: -len(".json")]) for name in self.storage.list_dir(layout.CATALOG)
                 if name.endswith(".json")]
        return [f for f in feeds if (kind is None or f.kind == kind) and (f.active or not active_only)]

    def find(self, name: str) -> Feed | None:
        return self._load(name) if self.storage.exists(layout.catalog_file(name)) else None

    def get(self, name: str) -> Feed:
        feed = self.find(name)
        if feed is None:
            known = ", ".join(f.name for f in self.list()) or "none (run: python data_lake_config.py init)"
            raise LakehouseError(f"unknown feed {name!r}; known feeds: {known}")
        return feed

    def by_topic(self, topic: str) -> Feed | None:
        return next((f for f in self.list() if f.topic == topic), None)

    def save(self, feed: Feed) -> Feed:
        validate_feed(feed)
        self.storage.write_bytes(layout.catalog_file(feed.name), feed.to_json().encode())
        self.storage.makedirs(feed.lake_dir)
        return feed

    def add(self, feed: Feed) -> Feed:
        validate_feed(feed)
        if self.find(feed.name) is not None:
            raise LakehouseError(f"feed {feed.name!r} already exists (use update to change it)")
        clash = self.by_topic(feed.topic)
        if clash is not None:
            raise LakehouseError(f"topic {feed.topic!r} already belongs to feed {clash.name!r}")
        return self.save(feed)

    def init(self) -> tuple[list[str], list[str]]:
        """Create the lake layout and seed the built-in feeds; feeds already present are left untouched."""
        for folder in (layout.STREAMS, layout.TABLES, layout.CATALOG, layout.METADATA, layout.QUARANTINE,
                       layout.LOGS):
            self.storage.makedirs(folder)
        created, kept = [], []
        for feed in builtin_feeds():
            if self.find(feed.name) is None:
                self.save(feed)
                created.append(feed.name)
            else:
                kept.append(feed.name)
        return created, kept

    def _load(self, name: str) -> Feed:
        raw = self.storage.read_bytes(layout.catalog_file(name))
        try:
            return Feed.from_dict(json.loads(raw))
        except (ValueError, TypeError) as exc:
            raise LakehouseError(f"catalog entry {layout.catalog_file(name)} is not valid: {exc}") from None
