"""The feed catalog: one JSON file per feed inside the lake, so a new feed needs no code change.

A feed is a Kafka topic (a ksqlDB stream or table) and how it lands: storage mode, partitioning,
retention, key columns and its warehouse target.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields

from lakehouse import layout
from lakehouse.errors import LakehouseError
from lakehouse.storage import LakeStorage

log = logging.getLogger(__name__)

KINDS = ("stream", "table")
STORAGE_MODES = {
    # Events are immutable facts: new records only ever add rows to their day's partition.
    "append": "new records add files to their date partition; nothing existing is rewritten",
    # A table is its current state: each snapshot is a complete new version; older versions stay for retention.
    "overwrite": "each snapshot is a complete new version=N that supersedes the previous one",
    # Write-once data (backfills, reference loads): an existing partition or version is never rewritten.
    "ignore": "an existing partition or version is left as it is; only missing ones are written",
}
PARTITIONINGS = ("date", "version")
# Columns of an auto-mapped warehouse table (keys and snapshot columns included): records that keep bringing new
# keys stop at this cap (quarantined) instead of growing the table until InnoDB refuses the DDL at 1,017.
DEFAULT_MAX_COLUMNS = 200
# A stream day is closed (compaction may rewrite it) once this many whole days have passed since it ended.
DEFAULT_LATENESS_DAYS = 1
INNODB_MAX_COLUMNS = 1017
# Used with fullmatch: `$` would also accept a trailing newline.
_SAFE_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
_SAFE_TOPIC = re.compile(r"(?!\.\.?\Z)[A-Za-z0-9._-]{1,249}")  # Kafka's rule; '.' and '..' are not topics
_SAFE_KSQL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # what lakehouse.kafka.ksqldb accepts in a statement


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
    lateness_days: int = DEFAULT_LATENESS_DAYS
    key_columns: list[str] = field(default_factory=list)
    timestamp_field: str | None = None
    warehouse_table: str | None = None
    max_columns: int = DEFAULT_MAX_COLUMNS
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
    if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name):
        raise LakehouseError(
            f"invalid {what} {name!r}: use lower-case letters, digits and '_', starting with a letter (max 63)"
        )
    return name


def validate_feed(feed: Feed) -> Feed:
    """Every field of a feed, type and value: a catalog file is edited by hand, and its names become paths,
    topics and SQL identifiers."""
    validate_name(feed.name)
    if not isinstance(feed.kind, str) or feed.kind not in KINDS:
        raise LakehouseError(f"feed {feed.name}: kind must be one of {', '.join(KINDS)}, got {feed.kind!r}")
    if not isinstance(feed.topic, str) or not _SAFE_TOPIC.fullmatch(feed.topic):
        raise LakehouseError(f"feed {feed.name}: invalid Kafka topic name {feed.topic!r}")
    if not isinstance(feed.ksql_name, str) or not _SAFE_KSQL_NAME.fullmatch(feed.ksql_name):
        raise LakehouseError(f"feed {feed.name}: invalid ksqlDB name {feed.ksql_name!r}")
    if not isinstance(feed.storage_mode, str) or feed.storage_mode not in STORAGE_MODES:
        raise LakehouseError(f"feed {feed.name}: storage mode must be one of {', '.join(STORAGE_MODES)}")
    if not isinstance(feed.partitioning, str) or feed.partitioning not in PARTITIONINGS:
        raise LakehouseError(f"feed {feed.name}: partitioning must be one of {', '.join(PARTITIONINGS)}")
    if not isinstance(feed.key_columns, list):
        raise LakehouseError(f"feed {feed.name}: key_columns must be a list of column names")
    for column in feed.key_columns:
        validate_name(column, "key column")
    if feed.timestamp_field:
        validate_name(feed.timestamp_field, "timestamp field")
    if feed.warehouse_table:
        validate_name(feed.warehouse_table, "warehouse table")
    for label, value in (("retention_days", feed.retention_days), ("keep_versions", feed.keep_versions),
                         ("lateness_days", feed.lateness_days)):
        if value is not None and not (_is_int(value) and value >= 0):
            raise LakehouseError(f"feed {feed.name}: {label} must be a non-negative integer, got {value!r}")
    if not (_is_int(feed.max_columns) and len(feed.key_columns) + 3 <= feed.max_columns <= INNODB_MAX_COLUMNS):
        raise LakehouseError(f"feed {feed.name}: max_columns must be an integer from {len(feed.key_columns) + 3} "
                             f"(the keys, one value and the two snapshot columns) to {INNODB_MAX_COLUMNS} "
                             f"(InnoDB's limit), got {feed.max_columns!r}")
    for label, value in (("enabled", feed.enabled), ("archived", feed.archived)):
        if not isinstance(value, bool):
            raise LakehouseError(f"feed {feed.name}: {label} must be true or false, got {value!r}")
    if not isinstance(feed.description, str):
        raise LakehouseError(f"feed {feed.name}: description must be text")
    return feed


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # JSON true is not a number of days


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
        """The valid feeds; an invalid catalog file is reported (once per run) and skipped, the others work."""
        feeds = []
        for file_name in self.storage.list_dir(layout.CATALOG):
            if not file_name.endswith(".json"):
                continue
            try:
                feeds.append(self._load(file_name[: -len(".json")]))
            except LakehouseError as exc:
                _report_once(f"skipped {exc}")
        return [f for f in feeds if (kind is None or f.kind == kind) and (f.active or not active_only)]

    def find(self, name: str) -> Feed | None:
        return self._load(name) if self.storage.exists(layout.catalog_file(name)) else None

    def get(self, name: str) -> Feed:
        feed = self.find(name)
        if feed is None:
            known = ", ".join(f.name for f in self.list()) or "none (run: python data_lake_config.py init)"
            raise LakehouseError(f"unknown feed {name!r}; known feeds: {known}")
        return feed

    def select(self, names: Sequence[str] = (), topics: Sequence[str] = (), kind: str | None = None,
               topic_prefix: str = "") -> list[Feed]:
        """The feeds a script works on: the ones named (feed name or warehouse table) or reading the given Kafka
        topics (catalog name, or with the environment's `topic_prefix`), each checked to be of `kind` and active;
        with neither, every active feed of `kind`, by kind and name (empty when there is none). What cannot be
        chosen is one error line."""
        feeds = self.list()
        if not feeds:
            raise LakehouseError(f"the feed catalog in {self.storage.root} is empty; "
                                 "run: python data_lake_config.py init")
        if not names and not topics:
            return sorted((f for f in feeds if f.active and kind in (None, f.kind)), key=lambda f: (f.kind, f.name))
        chosen = [_choose(feeds, name, kind, "feed", lambda f: (f.name, f.warehouse_table)) for name in names]
        chosen += [_choose(feeds, topic, kind, "topic", lambda f: (f.topic, topic_prefix + f.topic))
                   for topic in topics]
        return list({feed.name: feed for feed in chosen}.values())

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
            if not self.storage.exists(layout.catalog_file(feed.name)):  # an edited file stays, even a broken one
                self.save(feed)
                created.append(feed.name)
            else:
                kept.append(feed.name)
        return created, kept

    def _load(self, name: str) -> Feed:
        path = layout.catalog_file(name)
        try:
            data = json.loads(self.storage.read_bytes(path))
            if not isinstance(data, dict):
                raise ValueError(f"a JSON {type(data).__name__}, not an object")
            feed = validate_feed(Feed.from_dict(data))
        except (ValueError, TypeError, AttributeError, LakehouseError) as exc:
            raise LakehouseError(f"catalog entry {path} is not valid: {exc}") from None
        if feed.name != name:
            raise LakehouseError(f"catalog entry {path} is not valid: it names feed {feed.name!r}, its file {name!r}")
        return feed


_reported: set[str] = set()


def _report_once(problem: str) -> None:
    """One warning line per problem and process: the catalog is listed many times in one run."""
    if problem not in _reported:
        _reported.add(problem)
        log.warning("%s", problem)


def _choose(feeds: list[Feed], wanted: str, kind: str | None, what: str,
            aliases: Callable[[Feed], tuple]) -> Feed:
    """The feed one of whose `aliases` is `wanted`, if it is of `kind` and active."""
    feed = next((f for f in feeds if wanted in aliases(f)), None)
    if feed is None:
        known = sorted(f.name if what == "feed" else f.topic for f in feeds if kind in (None, f.kind))
        raise LakehouseError(f"unknown {what} {wanted!r}; known {what}s: {', '.join(known) or 'none'}")
    if kind is not None and feed.kind != kind:
        raise LakehouseError(f"{feed.name} is a {feed.kind} feed, not a {kind} feed")
    if not feed.active:
        raise LakehouseError(f"feed {feed.name} is {feed.status}; enable it first "
                             f"(python manage_feeds.py enable {feed.name})")
    return feed
