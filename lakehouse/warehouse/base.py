"""The contract every warehouse mapping follows (curated star mappings in star.py, auto-mapping in automap.py).

A mapping turns a decoded row (snake_case names, key columns included) into a validated payload
(`convert`, raising BadRecord; `convert_batch` does a whole batch at once with the same outcomes), may
change the schema before a transaction (`prepare`: DDL commits implicitly, so it never runs inside one),
and writes or deletes rows inside the caller's transaction.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date

import pyarrow as pa
from mysql.connector.cursor import MySQLCursor

from lakehouse.kafka.records import BadRecord
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

    def stamp(self) -> dict[str, str]:
        """The snapshot columns and their value (as text), the same in every row a write lands."""
        return dict(zip(SNAPSHOT_COLUMNS, (self.day.isoformat(), str(self.version)), strict=True))


Rows = Sequence[dict] | pa.Table  # decoded rows, or a table of them (a lake snapshot)


@dataclass(frozen=True)
class Converted:
    """A batch of rows validated at once."""

    keys: list[Key | None]  # per input row; None when the row cannot land
    reasons: dict[int, str]  # input row index -> why it cannot land (the BadRecord text)
    select: Callable[[Sequence[int]], object]  # the payloads of these rows, in this order, for prepare / write


class Mapping(ABC):
    feed_name: str
    table: str
    key_columns: list[str]  # the feed's key columns, as in the decoded rows

    @abstractmethod
    def convert(self, row: dict) -> tuple[Key, object]:
        """(normalized key, payload) for an upsert; BadRecord when the row cannot land."""

    def convert_batch(self, rows: Rows) -> Converted:
        """`convert` of every row, as one batch (mappings override it with a column-at-once form)."""
        keys: list[Key | None] = []
        payloads: list[object] = []
        reasons: dict[int, str] = {}
        for index, row in enumerate(rows.to_pylist() if isinstance(rows, pa.Table) else rows):
            try:
                key, payload = self.convert(row)
            except BadRecord as exc:
                key, payload, reasons[index] = None, None, str(exc)
            keys.append(key)
            payloads.append(payload)
        return Converted(keys, reasons, lambda indices: [payloads[i] for i in indices])

    @abstractmethod
    def key(self, raw_key: tuple) -> Key:
        """The normalized key of a tombstone; BadRecord when it cannot be a key."""

    def prepare(self, warehouse: Warehouse, payloads: Sequence[object]) -> None:  # noqa: B027 - optional hook
        """Schema changes the payloads need, applied before the transaction that writes them."""

    @abstractmethod
    def write(self, cursor: MySQLCursor, payloads: Sequence[object], snapshot: Snapshot) -> int:
        """Upsert the payloads (one per key: a list of `convert` payloads, or a `Converted.select`); returns the
        rows written."""

    @abstractmethod
    def delete(self, cursor: MySQLCursor, keys: Sequence[Key]) -> int:
        """Delete the rows of these keys; returns how many existed."""

    def clear(self, cursor: MySQLCursor) -> None:
        """Remove every row (a sync run replaces the whole table with its snapshot)."""
        cursor.execute(f"DELETE FROM {upsert.quote(self.table)}")
