"""Table snapshots in the lake: complete versions, written atomically, only when the table changed.

  tables/<feed>/version=N/part-00000.parquet

A version is staged in a hidden folder and renamed into place, so a reader sees a whole version or
none. The content hash of each version is kept in the feed metadata to tell "changed" from "same".
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import orjson
import pyarrow as pa

from lakehouse import layout
from lakehouse.catalog import Feed
from lakehouse.errors import LakehouseError
from lakehouse.lake.metadata import FeedMetadata, utc_now_iso
from lakehouse.storage import LakeStorage

PART_FILE = "part-00000.parquet"


@dataclass(frozen=True)
class SnapshotResult:
    version: int | None
    written: bool
    row_count: int


def list_versions(storage: LakeStorage, feed_name: str) -> list[int]:
    versions = (layout.parse_version(name) for name in storage.list_dir(layout.feed_dir("table", feed_name)))
    return sorted(v for v in versions if v is not None)


def current_version(storage: LakeStorage, feed_name: str) -> int | None:
    """The version readers should use: the one recorded in the metadata, else the newest on disk."""
    versions = list_versions(storage, feed_name)
    recorded = FeedMetadata(storage, feed_name).read().get("current_version")
    if recorded in versions:
        return recorded
    return versions[-1] if versions else None


def read_snapshot(storage: LakeStorage, feed_name: str, version: int | None = None) -> pa.Table:
    version = current_version(storage, feed_name) if version is None else version
    if version is None or version not in list_versions(storage, feed_name):
        raise LakehouseError(f"table feed {feed_name} has no snapshot{'' if version is None else f' v{version}'} "
                             "in the lake")
    return storage.read_parquet(layout.table_snapshot_file(feed_name, version))


def rows_to_table(feed: Feed, rows: list[dict]) -> pa.Table:
    """Rows -> Arrow, key columns first; an empty table keeps its key columns."""
    if not rows:
        return pa.table({column: pa.array([], pa.string()) for column in feed.key_columns})
    columns = list(feed.key_columns)
    for row in rows:
        columns.extend(name for name in row if name not in columns)
    return pa.Table.from_pylist([{c: row.get(c) for c in columns} for row in rows])


def content_hash(table: pa.Table) -> str:
    payload = orjson.dumps({"schema": table.schema.to_string(), "rows": table.to_pylist()},
                           option=orjson.OPT_SORT_KEYS, default=str)
    return hashlib.sha256(payload).hexdigest()


def write_snapshot(storage: LakeStorage, feed: Feed, rows: list[dict] | pa.Table,
                   version: int | None = None, source_offsets: dict[int, int] | None = None) -> SnapshotResult:
    """Write `rows` as the next version (or `version`) unless the table is unchanged.

    Storage mode `ignore` never rewrites an existing version; `overwrite` replaces it atomically.
    `source_offsets` (changelog partition -> next offset) records how far the topic the version reflects
    was read; an unchanged table moves the current version's mark forward (for lag reporting).
    Runs under the feed's snapshot lock: writers publishing at once take turns instead of racing for a number.
    """
    table = rows if isinstance(rows, pa.Table) else rows_to_table(feed, rows)
    with storage.exclusive(layout.snapshot_lock(feed.name)):
        return _write_locked(storage, feed, table, version, source_offsets)


def _write_locked(storage: LakeStorage, feed: Feed, table: pa.Table, version: int | None,
                  source_offsets: dict[int, int] | None) -> SnapshotResult:
    digest = content_hash(table)
    metadata = FeedMetadata(storage, feed.name)
    existing = list_versions(storage, feed.name)

    if version is None:
        version, changed = planned_version(storage, feed.name, digest)
        if not changed:
            if source_offsets is not None:
                metadata.update(lambda document: _mark_offsets(document, version, source_offsets))
            return SnapshotResult(version, False, table.num_rows)
    elif version in existing and feed.storage_mode == "ignore":
        return SnapshotResult(version, False, table.num_rows)

    _publish(storage, feed.name, version, table, replace=version in existing)

    def record(document: dict) -> None:
        document.setdefault("versions", {})[str(version)] = {
            "rows": table.num_rows, "sha256": digest, "created_at": utc_now_iso()}
        document["current_version"] = max(version, document.get("current_version") or 0)
        document["row_count"] = table.num_rows
        if source_offsets is not None:
            _mark_offsets(document, version, source_offsets)

    metadata.update(record)
    return SnapshotResult(version, True, table.num_rows)


def planned_version(storage: LakeStorage, feed_name: str, digest: str) -> tuple[int, bool]:
    """(version, changed) for content with hash `digest`: the current version when equal, else the next one."""
    current = current_version(storage, feed_name)
    if current is not None:
        known = FeedMetadata(storage, feed_name).read().get("versions", {})
        if _version_hash(storage, feed_name, current, known) == digest:
            return current, False
    existing = list_versions(storage, feed_name)
    return (existing[-1] if existing else 0) + 1, True


def _mark_offsets(document: dict, version: int, source_offsets: dict[int, int]) -> None:
    entry = document.setdefault("versions", {}).setdefault(str(version), {})
    entry["source_offsets"] = {str(partition): offset for partition, offset in sorted(source_offsets.items())}


def source_offsets_of(storage: LakeStorage, feed_name: str, version: int | None = None) -> dict[int, int] | None:
    """How far the changelog was read for `version` (default: the current one); None when not recorded."""
    version = current_version(storage, feed_name) if version is None else version
    entry = FeedMetadata(storage, feed_name).read().get("versions", {}).get(str(version), {})
    offsets = entry.get("source_offsets")
    return None if offsets is None else {int(partition): int(offset) for partition, offset in offsets.items()}


def _version_hash(storage: LakeStorage, feed_name: str, version: int, known: dict) -> str:
    entry = known.get(str(version))
    if entry and entry.get("sha256"):
        return entry["sha256"]
    return content_hash(storage.read_parquet(layout.table_snapshot_file(feed_name, version)))


def _publish(storage: LakeStorage, feed_name: str, version: int, table: pa.Table, replace: bool) -> None:
    """Stage the version in a hidden folder, then swap it in with renames."""
    final_dir = layout.table_version_dir(feed_name, version)
    staged_dir = storage.temp_name(final_dir)
    storage.write_parquet(f"{staged_dir}/{PART_FILE}", table)
    if replace:
        retired = storage.temp_name(final_dir)
        storage.rename(final_dir, retired)
        storage.rename(staged_dir, final_dir)
        storage.delete_dir(retired)
    else:
        storage.rename(staged_dir, final_dir)

