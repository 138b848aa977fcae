"""The lake as one user may read it now: one view per feed, over exactly the files their grants cover.

  <feed>            a stream feed: the date partitions the user may read (with year, month, day columns);
                    a table feed: its current version, when the user may read that version
  <feed>_versions   a table feed: every version the user may read, with a `version` column

A grant on a folder covers every file below it, so a grant on `streams/transaction_stream/year=2026/month=11`
shows the November files only. A view the user may read nothing of does not exist for them: `denied` names the
folder they would need. Each view is an Arrow dataset read through LakeStorage's filesystem (a local folder or an
object store), so the query engine itself needs no file access at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from lakehouse import layout
from lakehouse.catalog import Feed
from lakehouse.governance.permissions import covering_folders
from lakehouse.lake import commit, snapshots
from lakehouse.lake import schema as lake_schema
from lakehouse.lake.lineage import LANDED
from lakehouse.lake.metadata import FeedMetadata
from lakehouse.storage import LakeStorage

VERSIONS_SUFFIX = "_versions"
DATE_COLUMNS = pa.schema([("year", pa.int32()), ("month", pa.int32()), ("day", pa.int32())])
VERSION_COLUMN = pa.schema([("version", pa.int32())])


@dataclass(frozen=True)
class View:
    name: str
    feed: str
    files: list[str]  # lake-relative: the ones the user may read
    base: str  # the folder below which the hive partition columns are read
    partitions: pa.Schema | None  # the partition columns it shows
    schema: pa.Schema | None  # None: the first file's, plus the partition columns


@dataclass
class ReadableLake:
    """The views one user may query, and for every other view name why it is not there."""

    views: dict[str, View] = field(default_factory=dict)
    denied: dict[str, str] = field(default_factory=dict)  # view name -> the folder the user has no read grant on
    empty: dict[str, str] = field(default_factory=dict)  # view name -> its feed, readable but with nothing landed

    def all_names(self) -> set[str]:
        return set(self.views) | set(self.denied) | set(self.empty)

    def datasets(self, storage: LakeStorage) -> dict[str, ds.Dataset]:
        return {name: dataset(storage, view) for name, view in self.views.items()}


def readable_lake(storage: LakeStorage, feeds: list[Feed], folders: list[str]) -> ReadableLake:
    """The views of `feeds` for a user whose active grants are on `folders`."""
    lake = ReadableLake()
    granted = set(folders)
    for feed in feeds:
        if not _reads_some(granted, feed.lake_dir):
            lake.denied[feed.name] = feed.lake_dir
            if feed.kind == "table":
                lake.denied[feed.name + VERSIONS_SUFFIX] = feed.lake_dir
        elif feed.kind == "stream":
            _add(lake, _stream_view(storage, feed, granted))
        else:
            _add_table_views(lake, storage, feed, granted)
    return lake


def dataset(storage: LakeStorage, view: View) -> ds.Dataset:
    partitioning = ds.partitioning(view.partitions, flavor="hive") if view.partitions is not None else None
    return ds.dataset([storage.full(path) for path in view.files], schema=view.schema, format="parquet",
                      filesystem=storage.fs, partitioning=partitioning, partition_base_dir=storage.full(view.base))


def covers(granted: set[str], path: str) -> bool:
    """Whether a grant on one of `granted` covers `path` (on it or on a parent folder)."""
    return any(folder in granted for folder in covering_folders(path))


def _reads_some(granted: set[str], feed_dir: str) -> bool:
    return covers(granted, feed_dir) or any(folder.startswith(feed_dir + "/") for folder in granted)


def _add(lake: ReadableLake, view: View) -> None:
    if view.files or view.schema is not None:
        lake.views[view.name] = view
    else:  # nothing to take the columns from: no file landed (or none the user may read), no recorded schema
        lake.empty[view.name] = view.feed


def _stream_view(storage: LakeStorage, feed: Feed, granted: set[str]) -> View:
    files = [path for path in commit.stream_files(storage, feed.name) if covers(granted, path)]
    # the feed's recorded schema spans files written before it evolved (a column added, an integer widened)
    recorded = FeedMetadata(storage, feed.name).read().get("schema", [])
    stored = lake_schema.to_arrow(lake_schema.schema_from_json(recorded))
    schema = pa.unify_schemas([stored, LANDED, DATE_COLUMNS]) if len(stored) else None
    return View(feed.name, feed.name, files, feed.lake_dir, DATE_COLUMNS, schema)


def _add_table_views(lake: ReadableLake, storage: LakeStorage, feed: Feed, granted: set[str]) -> None:
    files = {version: layout.table_snapshot_file(feed.name, version)
             for version in snapshots.list_versions(storage, feed.name)}
    readable = [path for path in files.values() if covers(granted, path)]
    _add(lake, View(feed.name + VERSIONS_SUFFIX, feed.name, readable, feed.lake_dir, VERSION_COLUMN,
                    _table_schema(storage, readable, VERSION_COLUMN)))
    current = snapshots.current_version(storage, feed.name)
    if current is None:
        lake.empty[feed.name] = feed.name
    elif covers(granted, files[current]):
        lake.views[feed.name] = View(feed.name, feed.name, [files[current]],
                                     layout.table_version_dir(feed.name, current), None, None)
    else:
        lake.denied[feed.name] = layout.table_version_dir(feed.name, current)


def _table_schema(storage: LakeStorage, files: list[str], partitions: pa.Schema) -> pa.Schema | None:
    """One schema over the versions (a later one may have more columns, or an integer widened to double)."""
    if not files:
        return None
    schemas = [pq.read_schema(storage.full(path), filesystem=storage.fs) for path in files]
    return pa.unify_schemas([*schemas, partitions], promote_options="permissive")
