"""Landing rows of stream feeds in the lake, exactly once: Arrow tables -> Parquet files in date partitions.

  streams/<feed>/year=2026/month=9/day=7/<topic>+<partition>+<first offset>.parquet

A commit covers some Kafka partitions; for each partition it
  1. writes every file as a staged file under _staging/<topic>+<partition>/ (readers never look there),
  2. writes the partition's manifest (atomic): staged -> final renames, offsets and counts,
  3. renames the staged files to their final names (idempotent: a missing staged file was moved already),
  4. records the next offset and the cumulative counts in the feed metadata (one atomic write),
  5. deletes the manifest.
A crash before 2 leaves only garbage staging (discarded on recovery, the records are replayed into the
same deterministic file names); a crash after 2 is completed by `recover_partition`. So every record lands
exactly once whatever the moment of the crash. Export reuses the same functions; the rows come from lineage.stamp_rows.

Two writers of one partition (a rebalance that overlaps, a consumer and an export in different groups) are
fenced: steps 2 to 5 run under the partition's lock, and only when the lake's next offset is still the one the
commit started from and all its staged files are there; otherwise the commit is dropped (its staged files
deleted) and returned to the caller, which reads the partition again from the lake's offset.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, astuple, dataclass, field, fields
from datetime import date

import orjson
import pyarrow as pa
import pyarrow.dataset as ds

from lakehouse import layout
from lakehouse.lake.lineage import LANDED
from lakehouse.lake.metadata import FeedMetadata
from lakehouse.storage import LakeStorage

STAGING = "_staging"
_HIVE_DATE = pa.schema([("year", pa.int32()), ("month", pa.int32()), ("day", pa.int32())])


# ---------------------------------------------------------------- the commit protocol
def stream_file(feed: str, day: date, topic: str, partition: int, first_offset: int) -> str:
    return f"{layout.stream_partition_dir(feed, day)}/{layout.batch_file_name(topic, partition, first_offset)}"


def staging_dir(topic: str, partition: int) -> str:
    return f"{STAGING}/{topic}+{partition}"


def manifest_file(topic: str, partition: int) -> str:
    return f"{STAGING}/manifests/{topic}+{partition}.json"


@dataclass
class Counts:
    """What landing counted, per partition (in the lake's offsets files) and per feed; counts add up."""

    consumed: int = 0
    landed: int = 0
    quarantined: int = 0
    kafka_time_fallbacks: int = 0
    files: int = 0

    @classmethod
    def of(cls, values: Mapping[str, object]) -> Counts:
        """From a stored document (other keys ignored, missing ones 0)."""
        return cls(**{f.name: int(values.get(f.name, 0) or 0) for f in fields(cls)})  # type: ignore[arg-type]

    def __add__(self, other: Counts) -> Counts:
        return Counts(*(mine + theirs for mine, theirs in zip(astuple(self), astuple(other), strict=True)))


@dataclass
class PartitionCommit:
    """What one commit lands for one Kafka partition: files, the offset range and the counts."""

    feed: str
    topic: str
    partition: int
    start_offset: int  # next offset before this commit (the first one it covers)
    next_offset: int  # next offset after it
    renames: list[tuple[str, str]] = field(default_factory=list)  # staged -> final
    counts: dict[str, int] = field(default_factory=dict)  # a Counts, as stored in the manifest

    def stage(self, storage: LakeStorage, final: str, table: pa.Table) -> None:
        staged = f"{staging_dir(self.topic, self.partition)}/{uuid.uuid4().hex}.parquet"
        storage.write_parquet(staged, table)
        self.renames.append((staged, final))


def commit_partitions(storage: LakeStorage, commits: Iterable[PartitionCommit]) -> list[PartitionCommit]:
    """Steps 2 to 5 for partitions whose files are all staged (step 1); returns the commits that were fenced
    (another writer moved the partition on, or removed their staged files) and so landed nothing."""
    commits = sorted(commits, key=lambda item: (item.topic, item.partition))
    with holding_partitions(storage, [(item.topic, item.partition) for item in commits]):
        current = [item for item in commits if _still_current(storage, item)]
        for item in current:  # step 2 for all of them first: from here on each gets completed whatever happens
            storage.write_bytes(manifest_file(item.topic, item.partition), orjson.dumps(asdict(item)))
        for item in current:
            complete(storage, item)
    fenced = [item for item in commits if item not in current]
    for item in fenced:
        for staged, _final in item.renames:
            if storage.exists(staged):
                storage.delete_file(staged)
    return fenced


def partition_lock(topic: str, partition: int) -> str:
    return f"{STAGING}/locks/{topic}+{partition}.lock"


def day_lock(feed: str, day: date) -> str:
    """One lock per stream day, held by everyone who rewrites or deletes the day's files as a whole: compaction,
    retention and backfill (taken before any partition lock, so the lock order stays one for all)."""
    return f"{STAGING}/locks/days/{feed}/{day.isoformat()}.lock"


@contextmanager
def holding_partitions(storage: LakeStorage, partitions: Iterable[tuple[str, int]]) -> Iterator[None]:
    """Hold the locks of these (topic, partition)s: no commit lands a file of them meanwhile. Whoever else
    rewrites or deletes landed files (backfill, retention) holds them too."""
    with ExitStack() as locks:
        for topic, partition in sorted(set(partitions)):  # one lock order for everyone: no deadlock
            locks.enter_context(storage.exclusive(partition_lock(topic, partition)))
        yield


def _still_current(storage: LakeStorage, item: PartitionCommit) -> bool:
    state = FeedMetadata(storage, item.feed).partition_state(item.topic, item.partition)
    landed = None if state is None else int(state["next_offset"])
    return landed in (None, item.start_offset) and all(storage.exists(staged) for staged, _final in item.renames)


def recover_partition(storage: LakeStorage, topic: str, partition: int) -> PartitionCommit | None:
    """Before reading a partition: finish its interrupted commit, if any, and drop its garbage staging."""
    with storage.exclusive(partition_lock(topic, partition)):
        path = manifest_file(topic, partition)
        recovered = None
        if storage.exists(path):
            entry = orjson.loads(storage.read_bytes(path))
            recovered = PartitionCommit(**{**entry, "renames": [tuple(pair) for pair in entry["renames"]]})
            complete(storage, recovered)
        if storage.exists(staging_dir(topic, partition)):
            storage.delete_dir(staging_dir(topic, partition))
        return recovered


def complete(storage: LakeStorage, item: PartitionCommit) -> None:
    """Steps 3 to 5 (idempotent): publish the files, record offsets and counts, drop the manifest."""
    for staged, final in item.renames:
        if storage.exists(staged):
            storage.makedirs(final.rsplit("/", 1)[0])
            storage.rename(staged, final)
    metadata = FeedMetadata(storage, item.feed)
    state = metadata.partition_state(item.topic, item.partition) or {}
    if state.get("next_offset", -1) < item.next_offset:  # not recorded yet: counts are added exactly once
        totals = Counts.of(state) + Counts.of(item.counts)
        metadata.save_partition_state(item.topic, item.partition, item.next_offset, asdict(totals))
    storage.delete_file(manifest_file(item.topic, item.partition))


# ---------------------------------------------------------------- reading back
def stream_files(storage: LakeStorage, feed: str) -> list[str]:
    return [f.path for f in storage.walk_files(layout.feed_dir("stream", feed)) if f.path.endswith(".parquet")]


def landed_rows(storage: LakeStorage, feed: str) -> int:
    """Rows in the feed's files, from the Parquet footers (no data read)."""
    return sum(storage.parquet_row_count(path) for path in stream_files(storage, feed))


def read_stream(storage: LakeStorage, feed: str, schema: pa.Schema | None = None) -> pa.Table:
    """A whole stream feed with its hive date columns; `schema` (the feed's latest) spans evolved files."""
    files = [storage.full(path) for path in stream_files(storage, feed)]
    if not files:
        return pa.table({})
    if schema is not None:
        schema = pa.unify_schemas([schema, LANDED, _HIVE_DATE])
    dataset = ds.dataset(files, filesystem=storage.fs, format="parquet", schema=schema,
                         partitioning=ds.partitioning(flavor="hive"),
                         partition_base_dir=storage.full(layout.feed_dir("stream", feed)))
    return dataset.to_table()
