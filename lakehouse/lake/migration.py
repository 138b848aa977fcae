"""`data_lake_config.py migrate`: rewrite a lake of folder layout 1 into the current layout, in place.

Layout 1 spelled partitions `month=09/day=07` and versions `version=v3`, and its stream rows had no `event_time`.
The migration, in steps that are each idempotent, so a run killed at any point is finished by the next one:
  1. finish interrupted lake commits (their manifests name layout-1 paths), as the consumer would on start;
  2. rename every stream and quarantine day folder to its canonical name (one rename a day: rows never
     doubled); a day whose canonical folder exists already has its files moved in one by one;
  3. recover interrupted backfill swaps, now that the days they restore have their canonical names;
  4. rewrite each stream file that has no `event_time` (same name, atomic write, same rows);
  5. rename every table version folder `version=vN` to `version=N`;
  6. record the layout version: from here on the other scripts open the lake.
File names (`<topic>+<partition>+<first offset>`) and the landed offsets are untouched, so the consumers resume
exactly where they were. Stop the consumers and the orchestrator while it runs: the other scripts refuse a
layout-1 lake, but a process started before the migration would keep writing layout-1 paths.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq

from lakehouse import layout
from lakehouse.catalog import FeedCatalog
from lakehouse.lake import backfill, commit, lineage
from lakehouse.lake.metadata import FeedMetadata
from lakehouse.storage import LakeStorage, date_partition_dirs, layout_version, record_layout_version

log = logging.getLogger(__name__)  # one line per change, so an operator sees how far a run got
_DEFAULT_TIMESTAMP_FIELD = "timestamp"
_LEGACY_VERSION = "version=v"


@dataclass
class Migration:
    """What a run did (or, dry, would do)."""

    from_layout: int
    commits_finished: int = 0
    days_renamed: dict[str, int] = field(default_factory=dict)  # feed folder -> day folders
    files_rewritten: dict[str, int] = field(default_factory=dict)  # stream feed -> files given event_time
    versions_renamed: dict[str, int] = field(default_factory=dict)  # table feed -> version folders

    def describe(self, dry_run: bool) -> list[str]:
        if self.from_layout == layout.LAYOUT_VERSION:
            return [f"the lake is in layout {layout.LAYOUT_VERSION} already: nothing to do"]
        would = "would " if dry_run else ""
        lines = [f"{would}finish {self.commits_finished} interrupted commits"] if self.commits_finished else []
        lines += [f"{folder}: {would}rename {count} day folders" for folder, count in self.days_renamed.items()]
        lines += [f"streams/{feed}: {would}add event_time to {count} files"
                  for feed, count in self.files_rewritten.items()]
        lines += [f"tables/{feed}: {would}rename {count} version folders"
                  for feed, count in self.versions_renamed.items()]
        verb = "would move" if dry_run else "moved"
        return lines + [f"{verb} the lake from layout {self.from_layout} to layout {layout.LAYOUT_VERSION}"]


def migrate(root: str, dry_run: bool = False) -> Migration:
    """Steps 1 to 6 of the module docstring (a dry run counts them and changes nothing)."""
    storage = LakeStorage(root, check_layout=False)
    result = Migration(layout_version(storage))
    if result.from_layout == layout.LAYOUT_VERSION:
        return result
    # 1. interrupted lake commits
    for topic, partition in _interrupted_commits(storage):
        result.commits_finished += 1
        if not dry_run:
            commit.finish_legacy_manifest(storage, topic, partition)
            log.info("finished the interrupted commit of %s+%d", topic, partition)
    # 2. day folders of streams and quarantine
    for feed_folder in _feed_folders(storage, layout.STREAMS) + _feed_folders(storage, layout.QUARANTINE):
        renamed = _rename_days(storage, feed_folder, dry_run)
        if renamed:
            result.days_renamed[feed_folder] = renamed
    timestamp_fields = {feed.name: feed.timestamp_field for feed in FeedCatalog(storage).list(kind="stream")}
    for feed_folder in _feed_folders(storage, layout.STREAMS):
        feed = feed_folder.rsplit("/", 1)[-1]
        # 3. interrupted backfills
        if not dry_run:
            backfill.recover(storage, feed, FeedMetadata(storage, feed).landed_partitions())
        # 4. event_time
        rewritten = _add_event_time(storage, feed_folder, timestamp_fields.get(feed, _DEFAULT_TIMESTAMP_FIELD),
                                    dry_run)
        if rewritten:
            result.files_rewritten[feed] = rewritten
    # 5. table versions
    for feed_folder in _feed_folders(storage, layout.TABLES):
        renamed = _rename_versions(storage, feed_folder, dry_run)
        if renamed:
            result.versions_renamed[feed_folder.rsplit("/", 1)[-1]] = renamed
    # 6. the layout version: the lake opens again
    if not dry_run:
        record_layout_version(storage)
    return result


def _interrupted_commits(storage: LakeStorage) -> list[tuple[str, int]]:
    found = []
    for name in storage.list_dir(f"{commit.STAGING}/manifests"):
        topic, _, partition = name.removesuffix(".json").rpartition("+")
        if topic and partition.isdigit():
            found.append((topic, int(partition)))
    return found


def _feed_folders(storage: LakeStorage, kind_folder: str) -> list[str]:
    return [f"{kind_folder}/{name}" for name in storage.list_dir(kind_folder)
            if storage.is_dir(f"{kind_folder}/{name}")]


def _rename_days(storage: LakeStorage, feed_folder: str, dry_run: bool) -> int:
    renamed = 0
    for old in date_partition_dirs(storage, feed_folder):
        day = layout.parse_partition_date(old, legacy=True)
        if day is None or old == (new := f"{feed_folder}/{layout.date_partition(day)}"):
            continue
        renamed += 1
        if dry_run:
            continue
        if not storage.exists(new):
            storage.makedirs(new.rsplit("/", 1)[0])
            storage.rename(old, new)
        else:  # the canonical day exists already (a run killed mid-day): move what is still here
            for name in storage.list_dir(old):
                storage.rename(f"{old}/{name}", f"{new}/{name}")
            storage.delete_dir(old)
        log.info("renamed %s -> %s", old, new)
    if not dry_run:
        _delete_empty_date_folders(storage, feed_folder)
    return renamed


def _delete_empty_date_folders(storage: LakeStorage, feed_folder: str) -> None:
    """The layout-1 month=/year= folders that step 2 emptied."""
    for year in storage.list_dir(feed_folder):
        for month in storage.list_dir(f"{feed_folder}/{year}"):
            if not storage.list_dir(f"{feed_folder}/{year}/{month}"):
                storage.delete_dir(f"{feed_folder}/{year}/{month}")
        if not storage.list_dir(f"{feed_folder}/{year}"):
            storage.delete_dir(f"{feed_folder}/{year}")


def _add_event_time(storage: LakeStorage, feed_folder: str, timestamp_field: str, dry_run: bool) -> int:
    """Give every file without `event_time` the column, computed by the rule that chose its day folder."""
    rewritten = 0
    for stored in storage.walk_files(feed_folder):
        if not stored.path.endswith(".parquet") or _has_event_time(storage, stored.path):
            continue
        rewritten += 1
        if dry_run:
            continue
        table = storage.read_parquet(stored.path)
        times = table.column(timestamp_field) if timestamp_field in table.column_names else None
        kafka_ms = table.column("_kafka_timestamp").cast(pa.int64())
        millis, _fallback = lineage.event_millis(times, kafka_ms)
        storage.write_parquet(stored.path, lineage.with_event_time(table, millis))
        log.info("added event_time to %s", stored.path)
    return rewritten


def _has_event_time(storage: LakeStorage, path: str) -> bool:
    with storage.fs.open_input_file(storage.full(path)) as handle:
        return lineage.EVENT_TIME.name in pq.ParquetFile(handle).schema_arrow.names


def _rename_versions(storage: LakeStorage, feed_folder: str, dry_run: bool) -> int:
    renamed = 0
    for name in storage.list_dir(feed_folder):
        number = name.removeprefix(_LEGACY_VERSION)
        if number == name or not number.isdigit():
            continue
        renamed += 1
        if not dry_run:
            storage.rename(f"{feed_folder}/{name}", f"{feed_folder}/{layout.version_folder(int(number))}")
            log.info("renamed %s/%s -> %s", feed_folder, name, layout.version_folder(int(number)))
    return renamed
