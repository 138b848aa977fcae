"""`export_to_data_lake.py --stream X --date D`: rebuild one day of a stream from its topic, swapped in atomically.

The steps, each named after what it does: recover (an interrupted swap), rebuild, stage the day, swap the day.
Staging lives under _staging/backfill/<feed>/ (readers never look there). On a local disk the swap is two folder
renames; a swapped-out day waits there as `<staged>.retired` until the swap is done, so a crash at any point leaves
the day whole for `recover`. An object store has no folder rename: there the swap is decided by a manifest
(`<staged>.swap.json`: the day's files the rebuild replaces, and the rebuilt file), then the replaced files are
deleted and the rebuilt one published under its final name; `recover` finishes a decided manifest. A reader of the
day mid-swap may see fewer rows (replaced files gone, rebuilt file not yet there), never a record twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from lakehouse import layout
from lakehouse.catalog import Feed
from lakehouse.errors import LakehouseError
from lakehouse.kafka import clients
from lakehouse.lake import commit, compaction, lineage
from lakehouse.lake import schema as lake_schema
from lakehouse.lake.decode import FeedDecoder, decoded
from lakehouse.lake.metadata import FeedMetadata, ReadOnlyMetadata
from lakehouse.settings import Settings
from lakehouse.storage import LakeStorage

BACKFILL_STAGING = f"{commit.STAGING}/backfill"  # readers never look under _staging
_RETIRED = ".retired"  # suffix of a day folder a backfill swapped out
_SWAP = ".swap.json"  # suffix of an object-store swap's manifest


@dataclass(frozen=True)
class DayBackfill:
    feed: str
    day: date
    rows: int              # rows of the rebuilt day (from records the lake had landed)
    replaced_rows: int     # rows the day's folder held before
    kept_files: int        # files landed after the rebuild's bound (by a concurrent consumer), kept as they are
    bad: int               # undecodable records of the range, already in quarantine since they were landed
    unlanded: list[int]    # partitions with nothing landed yet: left to the next export or consumer run

    def describe(self, dry_run: bool) -> str:
        verb = "would replace" if dry_run else "replaced"
        notes = [f"{self.kept_files} newer files kept"] if self.kept_files else []
        if self.bad:
            notes.append(f"{self.bad} bad records skipped (already quarantined)")
        if self.unlanded:
            notes.append(f"partitions {', '.join(map(str, self.unlanded))} not landed yet")
        extra = f" ({'; '.join(notes)})" if notes else ""
        return (f"stream {self.feed}: {verb} {layout.date_partition(self.day)}: {self.replaced_rows} rows -> "
                f"{self.rows} rows{extra}")


def backfill_day(settings: Settings, storage: LakeStorage, feed: Feed, day: date,
                 dry_run: bool = False, allow_shrink: bool = False) -> DayBackfill:
    """`_backfill_day` holding the day's lock (compaction and retention of the day wait), after finishing a
    compaction of the day that a crash interrupted."""
    if dry_run:
        return _backfill_day(settings, storage, feed, day, dry_run, allow_shrink)
    with storage.exclusive(commit.day_lock(feed.name, day)):
        compaction.recover_day(storage, feed.name, day)
        return _backfill_day(settings, storage, feed, day, dry_run, allow_shrink)


def _backfill_day(settings: Settings, storage: LakeStorage, feed: Feed, day: date,
                  dry_run: bool, allow_shrink: bool) -> DayBackfill:
    """Rebuild one day of a stream from its topic and swap the day's folder in atomically, in four steps:
    1. recover a swap a crash interrupted; 2. rebuild the day; 3. stage the day; 4. swap the day in.

    The rebuild reads every partition up to the offset the lake has landed, never further: records beyond
    it belong to the next consumer or export run, which lands them into their day as usual. So the day
    holds each landed record exactly once before and after, whoever lands next. Records Kafka has already
    expired cannot be read again: a rebuild that would lose rows is refused unless `allow_shrink`.
    """
    topic = settings.topic(feed.topic)
    watermarks = clients.topic_watermarks(settings, topic)
    if not watermarks:
        raise LakehouseError(f"topic {topic} of stream feed {feed.name} does not exist")
    locks = [(topic, partition) for partition in watermarks]
    if not dry_run:  # 1. recover
        recover(storage, feed.name, locks)
    day_dir = layout.stream_partition_dir(feed.name, day)
    if feed.storage_mode == "ignore" and storage.list_dir(day_dir):
        raise LakehouseError(f"stream {feed.name} has storage mode ignore: {day_dir} exists and is never rewritten")
    # 2. rebuild the day from the records the lake landed (refused when it would lose rows)
    expired = _expired_offsets(storage, day_dir, watermarks)
    if expired and not allow_shrink:
        raise LakehouseError(
            f"stream {feed.name}: cannot rebuild {layout.date_partition(day)}: topic {topic} no longer holds "
            + ", ".join(f"partition {p} offsets {first}-{low - 1}" for p, (first, low) in sorted(expired.items()))
            + " (expired from Kafka); the day is kept as it is (--allow-shrink rebuilds it from what is left)")
    landed = commit.published_offsets(storage, feed.name, topic, dry_run)
    metadata = ReadOnlyMetadata(storage, feed.name) if dry_run else FeedMetadata(storage, feed.name)
    decoder = FeedDecoder(feed, metadata)
    tables, bad = [], 0
    start = {partition: None for partition in landed}
    for table, days, bad_in_batch in decoded(settings, decoder, topic, start, landed):
        bad += bad_in_batch
        tables.append(table.filter(pc.equal(days, pa.scalar(day, pa.date32()))))
    schema = pa.unify_schemas([decoder.arrow_schema, lineage.LANDED])
    rebuilt = pa.concat_tables([lake_schema.conform(t, schema) for t in tables]) if tables else schema.empty_table()
    rebuilt = rebuilt.sort_by([("_partition", "ascending"), ("_offset", "ascending")])
    kept = [name for name in storage.list_dir(day_dir) if _landed_after(name, topic, landed)]
    held = _rows_in(storage, day_dir)
    after = rebuilt.num_rows + sum(storage.parquet_row_count(f"{day_dir}/{name}") for name in kept)
    if after < held and not allow_shrink:
        raise LakehouseError(
            f"stream {feed.name}: a rebuild of {layout.date_partition(day)} would hold {after} rows, fewer than "
            f"the {held} it holds; the day is kept as it is (--allow-shrink replaces it anyway)")
    result = DayBackfill(feed.name, day, rebuilt.num_rows, held, len(kept), bad,
                         sorted(set(watermarks) - set(landed)))
    if not dry_run:  # 3 and 4 under the partitions' locks: no writer lands into the day meanwhile
        with commit.holding_partitions(storage, locks):
            if storage.local_root is None:
                swap_day_by_manifest(storage, feed.name, topic, day, rebuilt, landed)
            else:
                swap_day(storage, feed.name, day, stage_day(storage, feed.name, topic, day, rebuilt, landed))
    return result


def _expired_offsets(storage: LakeStorage, day_dir: str,
                     watermarks: dict[int, tuple[int, int]]) -> dict[int, tuple[int, int]]:
    """Per partition whose first record of the day Kafka no longer holds: (that offset, the topic's low mark)."""
    files = [storage.full(f"{day_dir}/{name}") for name in storage.list_dir(day_dir) if name.endswith(".parquet")]
    if not files:
        return {}
    coordinates = ds.dataset(files, filesystem=storage.fs, format="parquet").to_table(
        columns=["_partition", "_offset"])
    firsts = coordinates.group_by("_partition").aggregate([("_offset", "min")])
    expired = {}
    for partition, first in zip(firsts.column("_partition").to_pylist(), firsts.column("_offset_min").to_pylist(),
                                strict=True):
        low = watermarks.get(partition, (0, 0))[0]
        if first < low:
            expired[partition] = (first, low)
    return expired


def stage_day(storage: LakeStorage, feed: str, topic: str, day: date, table: pa.Table,
              landed: dict[int, int]) -> str:
    """Step 3: the new day in a staging folder: the rebuilt file, plus copies of the day's files landed past the
    rebuild's bound. Returns the staging folder."""
    day_dir = layout.stream_partition_dir(feed, day)
    staged = f"{BACKFILL_STAGING}/{feed}/{day.isoformat()}.{uuid.uuid4().hex[:12]}"
    storage.makedirs(staged)
    if table.num_rows:
        storage.write_parquet(f"{staged}/{topic}+backfill+{day.isoformat()}.parquet", table)
    for name in storage.list_dir(day_dir):
        if _landed_after(name, topic, landed):
            storage.write_bytes(f"{staged}/{name}", storage.read_bytes(f"{day_dir}/{name}"))
    return staged


def swap_day(storage: LakeStorage, feed: str, day: date, staged: str) -> None:
    """Step 4: two renames (the day out to `<staged>.retired`, the staged day in), then the retired day goes."""
    day_dir = layout.stream_partition_dir(feed, day)
    retired = f"{staged}{_RETIRED}"
    if storage.exists(day_dir):
        storage.rename(day_dir, retired)
    storage.makedirs(day_dir.rsplit("/", 1)[0])
    storage.rename(staged, day_dir)
    if storage.exists(retired):
        storage.delete_dir(retired)
    if not storage.list_dir(day_dir):
        storage.delete_dir(day_dir)  # an empty day is no partition at all


def swap_day_by_manifest(storage: LakeStorage, feed: str, topic: str, day: date, table: pa.Table,
                         landed: dict[int, int]) -> None:
    """Steps 3 and 4 on an object store: stage the rebuilt file, decide the swap in its manifest (the day's files
    holding only records below the rebuild's bound go, the rebuilt file comes), then carry it out."""
    day_dir = layout.stream_partition_dir(feed, day)
    staged = f"{BACKFILL_STAGING}/{feed}/{day.isoformat()}.{uuid.uuid4().hex[:12]}"
    final = f"{day_dir}/{topic}+backfill+{day.isoformat()}.parquet"
    add = []
    if table.num_rows:
        storage.write_parquet(f"{staged}/{final.rsplit('/', 1)[1]}", table)
        add = [(f"{staged}/{final.rsplit('/', 1)[1]}", final)]
    remove = [f"{day_dir}/{name}" for name in storage.list_dir(day_dir)
              if name.endswith(".parquet") and not _landed_after(name, topic, landed)
              and not (add and f"{day_dir}/{name}" == final)]  # an earlier rebuilt file is overwritten in place
    storage.write_bytes(f"{staged}{_SWAP}", orjson.dumps({"remove": remove, "add": add}))
    _finish_swap(storage, f"{staged}{_SWAP}")


def _finish_swap(storage: LakeStorage, manifest: str) -> None:
    """Carry out a decided object-store swap (idempotent): delete first, so a reader never sees a record twice."""
    entry = orjson.loads(storage.read_bytes(manifest))
    for path in entry["remove"]:
        if storage.exists(path):
            storage.delete_file(path)
    commit.publish(storage, [(staged, final) for staged, final in entry["add"]])
    storage.delete_file(manifest)


def recover(storage: LakeStorage, feed: str, held: list[tuple[str, int]]) -> None:
    """After a crash mid-swap: a retired day whose replacement never moved in (its staged folder is still
    there, or the day is missing) goes back into the day's folder, merged with anything a writer landed there
    since; a retired day whose replacement did move in is superseded and dropped, as is leftover staging."""
    folder = f"{BACKFILL_STAGING}/{feed}"
    with commit.holding_partitions(storage, held):
        names = storage.list_dir(folder)
        for name in names:
            if name.endswith(_SWAP):
                _finish_swap(storage, f"{folder}/{name}")
            if not name.endswith(_RETIRED):
                continue
            day_dir = layout.stream_partition_dir(feed, date.fromisoformat(name.split(".")[0]))
            if name.removesuffix(_RETIRED) in names or not storage.exists(day_dir):
                _restore(storage, f"{folder}/{name}", day_dir)
            else:
                storage.delete_dir(f"{folder}/{name}")
        for name in storage.list_dir(folder):
            storage.delete_dir(f"{folder}/{name}")


def _restore(storage: LakeStorage, retired: str, day_dir: str) -> None:
    """Put a retired day back, keeping the files a writer landed into the day's folder meanwhile."""
    if not storage.exists(day_dir):
        storage.makedirs(day_dir.rsplit("/", 1)[0])
        storage.rename(retired, day_dir)
        return
    present = set(storage.list_dir(day_dir))
    for name in storage.list_dir(retired):
        if name not in present:
            storage.rename(f"{retired}/{name}", f"{day_dir}/{name}")
    storage.delete_dir(retired)


def _landed_after(file_name: str, topic: str, landed: dict[int, int]) -> bool:
    """Whether a day's file holds records beyond the rebuild's bound (<topic>+<partition>+<first offset>)."""
    parts = file_name.removesuffix(".parquet").rsplit("+", 2)
    if len(parts) != 3 or parts[0] != topic or not parts[1].isdigit() or not parts[2].isdigit():
        return False  # an earlier backfill's file: its records are all below the bound
    return int(parts[2]) >= landed.get(int(parts[1]), 0)


def _rows_in(storage: LakeStorage, folder: str) -> int:
    return sum(storage.parquet_row_count(f"{folder}/{name}") for name in storage.list_dir(folder)
               if name.endswith(".parquet"))
