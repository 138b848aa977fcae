"""The lake's folder layout, as pure functions of feed names, dates, versions and offsets.

  streams/<feed>/year=2026/month=9/day=7/<topic>+<partition>+<first offset>.parquet
  tables/<feed>/version=10/part-00000.parquet
  _catalog/feeds/<feed>.json            the feed catalog, one file per feed
  _catalog/layout.json                  which layout the lake is in (LAYOUT_VERSION)
  _metadata/<feed>/feed.json            per-feed metadata (schema history, counts, current version)
  _metadata/<feed>/offsets/<topic>+<partition>.json   next offset to land, per Kafka partition
  _quarantine/<feed>/year=2026/month=9/day=7/<topic>+<partition>+<first offset>.parquet
  _logs/                                audit logs and run history

Partition values are plain integers, never zero-padded: every engine (DuckDB, pyarrow, Spark) then infers
`year`, `month`, `day` and `version` as integers, so `make_date(year, month, day)`, `month = 9` and
`max(version)` work as written. (Zero-padded `month=09` made DuckDB keep the column as text.)
"""

from __future__ import annotations

import re
from datetime import date

STREAMS = "streams"
TABLES = "tables"
CATALOG = "_catalog/feeds"
METADATA = "_metadata"
QUARANTINE = "_quarantine"
LOGS = "_logs"
LAYOUT_FILE = "_catalog/layout.json"
LAYOUT_VERSION = 2  # 1: zero-padded month=09/day=07 and version=v3 folders, no event_time column
DATA_FOLDERS = (STREAMS, TABLES, QUARANTINE)
OFFSET_DIGITS = 20  # a Kafka offset is a signed 64-bit number: at most 19 digits

_DATE_PARTS = re.compile(r"year=(\d{1,4})/month=(\d{1,2})/day=(\d{1,2})(?=/|$)")
_VERSION_PART = re.compile(r"version=(\d+)")


def kind_folder(kind: str) -> str:
    return STREAMS if kind == "stream" else TABLES


def feed_dir(kind: str, feed: str) -> str:
    return f"{kind_folder(kind)}/{feed}"


def date_partition(day: date) -> str:
    return f"year={day.year}/month={day.month}/day={day.day}"


def stream_partition_dir(feed: str, day: date) -> str:
    return f"{STREAMS}/{feed}/{date_partition(day)}"


def parse_partition_date(path: str, legacy: bool = False) -> date | None:
    """The date of a `year=/month=/day=` partition path, or None when the path has none.

    Only the canonical spelling counts (`month=9`, not `month=09`); `legacy` also accepts layout 1's padding.
    """
    match = _DATE_PARTS.search(path)
    if not match:
        return None
    year, month, day = (int(part) for part in match.groups())
    try:
        parsed = date(year, month, day)
    except ValueError:
        return None
    return parsed if legacy or match.group(0) == date_partition(parsed) else None


def batch_file_name(topic: str, partition: int, first_offset: int) -> str:
    """Deterministic file name: a replay of the same records rewrites the same file."""
    return f"{topic}+{partition}+{first_offset:0{OFFSET_DIGITS}d}.parquet"


def version_folder(version: int) -> str:
    return f"version={version}"


def table_version_dir(feed: str, version: int) -> str:
    return f"{TABLES}/{feed}/{version_folder(version)}"


def parse_version(folder_name: str) -> int | None:
    match = _VERSION_PART.fullmatch(folder_name)
    return int(match.group(1)) if match and folder_name == version_folder(int(match.group(1))) else None


def table_snapshot_file(feed: str, version: int) -> str:
    return f"{table_version_dir(feed, version)}/part-00000.parquet"


def catalog_file(feed: str) -> str:
    return f"{CATALOG}/{feed}.json"


def metadata_file(feed: str) -> str:
    return f"{METADATA}/{feed}/feed.json"


def metadata_lock(feed: str) -> str:
    """Held while feed.json is read, changed and written back (several processes update it)."""
    return f"{METADATA}/{feed}/.feed.lock"


def snapshot_lock(feed: str) -> str:
    """Held while a table version is planned, published and recorded (consumer, export and sync may race)."""
    return f"{METADATA}/{feed}/.snapshot.lock"


def publisher_lock(feed: str) -> str:
    """Held for its whole run by the one lake consumer copy that publishes a table feed's versions."""
    return f"{METADATA}/{feed}/.publisher.lock"


def offsets_file(feed: str, topic: str, partition: int) -> str:
    return f"{METADATA}/{feed}/offsets/{topic}+{partition}.json"


def offsets_dir(feed: str) -> str:
    return f"{METADATA}/{feed}/offsets"


def quarantine_dir(feed: str, day: date) -> str:
    return f"{QUARANTINE}/{feed}/{date_partition(day)}"


def log_file(name: str) -> str:
    return f"{LOGS}/{name}"
