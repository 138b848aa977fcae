"""The contract every warehouse mapping follows (curated star mappings in star.py, auto-mapping in automap.py).

A mapping turns a decoded row (snake_case names, key columns included) into a validated payload
(`convert`, raising BadRecord), may change the schema before a transaction (`prepare`: DDL commits
implicitly, so it never runs inside one), and writes or deletes rows inside the caller's transaction.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from mysql.connector.cursor import MySQLCursor

from lakehouse.warehouse import upsert
from lakehouse.warehouse.connection import Warehouse

Key = tuple[str, ...]
SNAPSHOT_COLUMNS = ("snapshot_date", "snapshot_version")
STREAMING_VERSION = 0  # snapshot_version of rows kept current by the streaming consumer


@dataclass(frozen=True)
class Snapshot:
    """What every written fact row records about where it came from."""

    version: int
    day: date

    def values(self) -> tuple[str, str]:
        return self.day.isoformat(), str(self.version)


class Mapping(ABC):
    feed_name: str
    table: str
    key_columns: list[str]  # the feed's key columns, as in the decoded rows

    @abstractmethod
    def convert(self, row: dict) -> tuple[Key, object]:
        """(normalized key, payload) for an upsert; BadRecord when the row cannot land."""

    @abstractmethod
    def key(self, raw_key: tuple) -> Key:
        """The normalized key of a tombstone; BadRecord when it cannot be a key."""

    def prepare(self, warehouse: Warehouse, payloads: Sequence[object]) -> None:  # noqa: B027 - optional hook
        """Schema changes the payloads need, applied before the transaction that writes them."""

    @abstractmethod
    def write(self, cursor: MySQLCursor, payloads: Sequence[object], snapshot: Snapshot) -> int:
        """Upsert the payloads (one per key); returns the rows written."""

    @abstractmethod
    def delete(self, cursor: MySQLCursor, keys: Sequence[Key]) -> int:
        """Delete the rows of these keys; returns how many existed."""

    def clear(self, cursor: MySQLCursor) -> None:
        """Remove every row (a sync run replaces the whole table with its snapshot)."""
        cursor.execute(f"DELETE FROM {upsert.quote(self.table)}")
