"""`data_lake_config.py compact`: every closed day of a stream becomes a few large files, sorted by event time.

The lake consumer writes one small file per (Kafka partition, day) and flush; a week of continuous landing is
tens of thousands of files, and query engines pay for each one. A day is **closed** once its feed's lateness
window (`lateness_days` in the catalog, default 1) has passed since it ended: with 1, on 2026-12-01 every day up
to 2026-11-29 is closed (`--before D` sets the bound instead). Its small files (under half the target size) are
merged into ceil(bytes / target) files of about `--target-file-mb` (default 128), sorted by event_time then
Kafka position, in row groups of at most 128 Ki rows and about 64 MB. Every row keeps its columns, lineage
(`_topic`, `_partition`, `_offset`, ...) included, so landed offsets, reconciliation and backfill are unchanged:
they count rows or read lineage, never file names. Late events land as usual, as new small files in the day's
folder, and the next compaction folds them in. Table feeds are not compacted (a version is one file already).
Memory: one day's small files at a time, decoded (files already near the target are carried over, not read).

One day, under its day lock (`commit.day_lock`, also held by retention and backfill of that day, so the three
never interleave on a day):
  1. recover: finish an interrupted compaction of the day (`recover_day`, below);
  2. stage: read the small files, sort, write the new files to `_staging/compaction/<feed>/<day>.<run>/`;
  3. manifest: `_staging/compaction/<feed>/<day>.<run>.json` names inputs and outputs: from here on the
     compaction is decided and recovery rolls it forward;
  4. publish, holding the feed's partition locks (no lake commit lands a file meanwhile): copy into the staged
     folder the files landed in the day since step 2, then swap the staged folder and the day's folder in one
     atomic step (`storage.exchange_dirs`: renameat2 RENAME_EXCHANGE). On a backend without such a step
     (an object store) the new files are put into the day's folder, then the inputs deleted;
  5. finish: a file found only in the swapped-out folder (landed there by a partition whose lock was not held,
     one that had never landed before) moves into the day; the swapped-out folder and the manifest go.
Recovery (`recover_day`): staging without a manifest is dropped (the day was never touched); with a manifest,
steps 4 and 5 run again, idempotently: "published" is "every output is in the day's folder" (output names carry
the run id). A day retention deleted meanwhile is not brought back. So a SIGKILL at any moment, then a new run,
leaves every row of the day exactly once.

What a glob reader (DuckDB over `streams/<feed>/**/*.parquet`) sees, at every moment:
  * local disk: before step 4's swap, the old files; after it, the new ones; the swap is one atomic directory
    exchange, so a listing of the day names either set, never both and never neither. Staging lives outside
    `streams/`. A reader that listed the old names just before the swap and opens them after it gets "file not
    found" and fails loudly (retry): it never returns a row twice or misses one. Late files are carried over
    inside the locked section, so they are in whichever folder the reader sees.
  * object store: a put is atomic per object but nothing spans objects, so between step 4's first put and its
    last delete a listing can hold a row twice (never miss one: inputs go only after every output is in). Rows
    are unique by (`_topic`, `_partition`, `_offset`); a reader that must be exact at every instant on an object
    store deduplicates on them (`QUALIFY row_number() OVER (PARTITION BY _topic, _partition, _offset) = 1`).
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta

import orjson
import pyarrow as pa

from lakehouse import layout
from lakehouse.catalog import Feed
from lakehouse.lake import commit
from lakehouse.lake import schema as lake_schema
from lakehouse.lake.metadata import FeedMetadata
from lakehouse.storage import LakeStorage, StoredFile, date_partition_dirs, exchange_dirs

log = logging.getLogger(__name__)  # one line per step, so an operator (and the kill tests) see how far a run got
MB = 1024 * 1024
DEFAULT_TARGET_FILE_MB = 128
ROW_GROUP_ROWS = 128 * 1024
ROW_GROUP_BYTES = 64 * MB
COMPACTION_STAGING = f"{commit.STAGING}/compaction"
_SORT_KEYS = [("event_time", "ascending"), ("_partition", "ascending"), ("_offset", "ascending")]


@dataclass(frozen=True)
class DayCompaction:
    """One closed day's small files and what they become."""

    feed: str
    day: date
    inputs: tuple[str, ...]  # file names in the day's folder
    input_bytes: int
    outputs: int  # files they become
    rows: int = 0

    def describe(self, dry_run: bool) -> str:
        verb = "would merge" if dry_run else "merged"
        rows = f", {self.rows} rows" if self.rows else ""
        return (f"stream {self.feed}: {verb} {layout.date_partition(self.day)}: {len(self.inputs)} files "
                f"({self.input_bytes:,} bytes{rows}) -> {self.outputs} file{'s' if self.outputs > 1 else ''}")


def closed_before(feed: Feed, today: date) -> date:
    """Days before this date are closed: `lateness_days` whole days have passed since they ended."""
    return today - timedelta(days=feed.lateness_days)


def compactable(feeds: Iterable[Feed]) -> list[Feed]:
    """Append-mode streams: tables are versions of one file, ignore-mode days are never rewritten."""
    return [feed for feed in feeds if feed.kind == "stream" and feed.storage_mode == "append"]


def plan(storage: LakeStorage, feeds: Iterable[Feed], today: date, before: date | None = None,
         target_bytes: int = DEFAULT_TARGET_FILE_MB * MB) -> list[DayCompaction]:
    """The closed days with two or more small files; nothing is touched."""
    planned = []
    for feed in compactable(feeds):
        bound = before or closed_before(feed, today)
        for folder in date_partition_dirs(storage, feed.lake_dir):
            day = layout.parse_partition_date(folder)
            if day is not None and day < bound:
                day_plan = plan_day(storage, feed.name, day, target_bytes)
                if day_plan is not None:
                    planned.append(day_plan)
    return planned


def plan_day(storage: LakeStorage, feed: str, day: date, target_bytes: int) -> DayCompaction | None:
    small = [f for f in _day_files(storage, feed, day) if f.size < target_bytes / 2]
    if len(small) < 2:
        return None  # already compacted (or a single file): nothing to gain
    size = sum(f.size for f in small)
    return DayCompaction(feed, day, tuple(f.path.rsplit("/", 1)[-1] for f in small), size,
                         max(1, math.ceil(size / target_bytes)))


def compact(storage: LakeStorage, planned: Iterable[DayCompaction],
            target_bytes: int = DEFAULT_TARGET_FILE_MB * MB) -> Iterator[DayCompaction]:
    """Compact the planned days, one after the other; yields what each became (days changed since planning are
    planned again under their lock, days with nothing left to merge are skipped)."""
    for day_plan in planned:
        done = compact_day(storage, day_plan.feed, day_plan.day, target_bytes)
        if done is not None:
            yield done


def compact_day(storage: LakeStorage, feed: str, day: date, target_bytes: int) -> DayCompaction | None:
    """Steps 1 to 5 of the module docstring for one day."""
    with storage.exclusive(commit.day_lock(feed, day)):
        recover_day(storage, feed, day)
        day_plan = plan_day(storage, feed, day, target_bytes)  # again, under the lock
        if day_plan is None:
            return None
        run = uuid.uuid4().hex[:12]
        staged = f"{COMPACTION_STAGING}/{feed}/{day.isoformat()}.{run}"
        table = _merged(storage, layout.stream_partition_dir(feed, day), day_plan.inputs)
        outputs = _write_outputs(storage, staged, run, table, day_plan.outputs)
        _carry_others(storage, layout.stream_partition_dir(feed, day), staged, set(day_plan.inputs))
        log.info("staged %s: %d files, %d rows", staged, len(outputs), table.num_rows)
        manifest = {"feed": feed, "day": day.isoformat(), "staged": staged, "inputs": list(day_plan.inputs),
                    "outputs": outputs}
        storage.write_bytes(f"{staged}.json", orjson.dumps(manifest))
        log.info("decided %s.json", staged)
        _publish(storage, manifest)
        return DayCompaction(feed, day, day_plan.inputs, day_plan.input_bytes, len(outputs), table.num_rows)


def recover(storage: LakeStorage, feed: str) -> None:
    """Finish every interrupted compaction of a feed (each under its day's lock)."""
    days = {name.lstrip(".").split(".", 1)[0] for name in storage.list_dir(f"{COMPACTION_STAGING}/{feed}")}
    for text in sorted(days):
        day = date.fromisoformat(text)
        with storage.exclusive(commit.day_lock(feed, day)):
            recover_day(storage, feed, day)


def recover_day(storage: LakeStorage, feed: str, day: date) -> None:
    """Under the day's lock: roll a decided compaction forward, drop an undecided one's staging."""
    folder = f"{COMPACTION_STAGING}/{feed}"
    prefix = f"{day.isoformat()}."
    names = [name for name in storage.list_dir(folder) if name.startswith(prefix)]
    for name in names:
        if name.endswith(".json"):
            _publish(storage, orjson.loads(storage.read_bytes(f"{folder}/{name}")))
    for name in storage.list_dir(folder):
        if name.startswith(prefix) and storage.is_dir(f"{folder}/{name}"):
            storage.delete_dir(f"{folder}/{name}")  # no manifest: never published, nothing to keep
            log.info("dropped undecided staging %s/%s", folder, name)
        elif name.startswith(f".{prefix}"):
            storage.delete_file(f"{folder}/{name}")  # a manifest whose write a crash cut short


# ---------------------------------------------------------------- the steps
def _day_files(storage: LakeStorage, feed: str, day: date) -> list[StoredFile]:
    return [f for f in storage.walk_files(layout.stream_partition_dir(feed, day)) if f.path.endswith(".parquet")]


def _merged(storage: LakeStorage, day_dir: str, names: Iterable[str]) -> pa.Table:
    """The files' rows in one table of their widest schema (columns added and widened by schema evolution),
    sorted by event time."""
    tables = [storage.read_parquet(f"{day_dir}/{name}") for name in names]
    schema = pa.unify_schemas([table.schema for table in tables], promote_options="permissive")
    merged = pa.concat_tables([lake_schema.conform(table, schema) for table in tables])
    return merged.sort_by([key for key in _SORT_KEYS if key[0] in schema.names])


def _write_outputs(storage: LakeStorage, staged: str, run: str, table: pa.Table, count: int) -> list[str]:
    """`count` files of consecutive rows in the staged folder; returns their names."""
    storage.makedirs(staged)
    per_file = math.ceil(table.num_rows / count) if table.num_rows else 0
    row_bytes = max(1, table.nbytes // max(1, table.num_rows))
    row_group = max(1, min(ROW_GROUP_ROWS, ROW_GROUP_BYTES // row_bytes))
    names = []
    for index in range(count):
        name = f"compacted-{run}-{index:04d}.parquet"
        storage.write_parquet(f"{staged}/{name}", table.slice(index * per_file, per_file), row_group_size=row_group)
        names.append(name)
    return names


def _carry_others(storage: LakeStorage, day_dir: str, staged: str, inputs: set[str]) -> int:
    """Copy into the staged folder the day's files that are not merged (large ones, late arrivals) and that it
    lacks: done once before the locks are taken, then again under them for what landed meanwhile."""
    missing = [name for name in storage.list_dir(day_dir)
               if name not in inputs and not name.startswith(".") and not storage.exists(f"{staged}/{name}")]
    for name in missing:
        storage.write_bytes(f"{staged}/{name}", storage.read_bytes(f"{day_dir}/{name}"))
    return len(missing)


def _publish(storage: LakeStorage, manifest: dict) -> None:
    """Steps 4 and 5, idempotent: run by the compaction and again by recovery until the manifest is gone."""
    feed, staged = manifest["feed"], manifest["staged"]
    day_dir = layout.stream_partition_dir(feed, date.fromisoformat(manifest["day"]))
    inputs, outputs = set(manifest["inputs"]), manifest["outputs"]
    with commit.holding_partitions(storage, FeedMetadata(storage, feed).landed_partitions()):
        if not storage.exists(day_dir):
            log.info("%s is gone (retention): dropped %s", day_dir, staged)  # never bring a deleted day back
        elif not all(storage.exists(f"{day_dir}/{name}") for name in outputs):
            carried = _carry_others(storage, day_dir, staged, inputs)
            log.info("carried %d files landed since staging into %s", carried, staged)
            if exchange_dirs(storage, staged, day_dir):
                log.info("swapped %s in", day_dir)
            else:
                for name in outputs:
                    storage.write_bytes(f"{day_dir}/{name}", storage.read_bytes(f"{staged}/{name}"))
                    log.info("put %s/%s", day_dir, name)
        for name in sorted(inputs):  # object store: the merged files are all in, the inputs go
            if storage.exists(f"{day_dir}/{name}"):
                storage.delete_file(f"{day_dir}/{name}")
                log.info("deleted %s/%s", day_dir, name)
    _finish(storage, day_dir, staged, inputs)


def _finish(storage: LakeStorage, day_dir: str, staged: str, inputs: set[str]) -> None:
    """Step 5: a file only the swapped-out folder holds moves into the day; then staging and manifest go."""
    if storage.exists(staged):
        if storage.exists(day_dir):
            present = set(storage.list_dir(day_dir))
            for name in storage.list_dir(staged):
                if name not in inputs and name not in present:
                    storage.rename(f"{staged}/{name}", f"{day_dir}/{name}")
                    log.info("moved %s into %s", name, day_dir)
        storage.delete_dir(staged)
        log.info("removed %s", staged)
    storage.delete_file(f"{staged}.json")
