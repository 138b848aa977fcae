"""Landing rows of stream feeds in the lake, exactly once, on a local disk or an object store.

  streams/<feed>/year=2026/month=9/day=7/<topic>+<partition>+<first offset>.parquet

A commit covers some Kafka partitions; for each partition it
  1. stages every file under _staging/<topic>+<partition>/ (readers never look there);
  2. decides, in one conditional write (`LakeStorage.write_if`: S3 If-Match / If-None-Match): the partition's state
     (_metadata/<feed>/offsets/<topic>+<partition>.json) moves from the offset the commit started at to the next
     one, with the cumulative counts and the staged -> final names it publishes (`pending`). The write succeeds
     only while the state is still the version this writer last wrote or claimed;
  3. publishes: moves each staged file to its deterministic final name (on an object store a copy then a delete;
     a staged file already gone was published already).
Before reading a partition a writer claims it (`claim_partition`): it publishes the pending files of the last
decided commit, rewrites the state with a fresh writer id (conditionally, again until it wins), and only then
sweeps the partition's staging. So a crash before 2 leaves garbage staging and the records are read again into
the same file names; a crash after 2 is published by the next claim; and a writer that lost the partition (a
rebalance, a consumer on another machine, an export) holds an older version, so its step 2 fails: it is fenced,
deletes its staged files and reads again from the lake's offset. The argument in full, and what a reader may see
meanwhile, is in ARCHITECTURE.md ("Exactly-once on an object store"). Export reuses the same functions; the rows
come from lineage.stamp_rows. The partition locks (`holding_partitions`) keep the processes of one machine in turn;
across machines the conditional writes alone decide.
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
    """Where the manifest protocol of earlier lakehouse versions kept an interrupted commit."""
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
    counts: dict[str, int] = field(default_factory=dict)  # a Counts, as stored in the partition state
    claim: str | None = None  # version of the partition state this writer holds (its claim, then its last commit)

    def stage(self, storage: LakeStorage, final: str, table: pa.Table) -> None:
        staged = f"{staging_dir(self.topic, self.partition)}/{uuid.uuid4().hex}.parquet"
        storage.write_parquet(staged, table)
        self.renames.append((staged, final))


def commit_partitions(storage: LakeStorage, commits: Iterable[PartitionCommit]) -> list[PartitionCommit]:
    """Steps 2 and 3 for partitions whose files are all staged (step 1); returns the commits that were fenced
    (another writer claimed or moved the partition since this one's claim) and so landed nothing. A decided
    commit's `claim` becomes the state version it wrote, for the writer's next commit."""
    commits = sorted(commits, key=lambda item: (item.topic, item.partition))
    with holding_partitions(storage, [(item.topic, item.partition) for item in commits]):
        decided = [item for item in commits if _decide(storage, item)]
        for item in decided:
            publish(storage, item.renames)
    fenced = [item for item in commits if item not in decided]
    for item in fenced:
        for staged, _final in item.renames:
            if storage.exists(staged):
                storage.delete_file(staged)
    return fenced


def _decide(storage: LakeStorage, item: PartitionCommit) -> bool:
    """Step 2: one conditional write of the partition state, from the version this writer holds."""
    metadata = FeedMetadata(storage, item.feed)
    state, version = metadata.partition_state_versioned(item.topic, item.partition)
    state = state or {}
    if version != item.claim or state.get("next_offset", item.start_offset) != item.start_offset:
        return False
    totals = Counts.of(state) + Counts.of(item.counts)
    written = metadata.write_partition_state(item.topic, item.partition, {
        **asdict(totals), "next_offset": item.next_offset, "writer": state.get("writer"),
        "pending": [list(pair) for pair in item.renames]}, version)
    if written is None:
        return False
    item.claim = written
    return True


def publish(storage: LakeStorage, renames: Iterable[tuple[str, str]]) -> int:
    """Step 3 (idempotent): move each staged file still there to its final name; returns how many moved."""
    moved = 0
    for staged, final in renames:
        if not storage.exists(staged):
            continue  # published already (by this writer before a crash, or by a claim)
        storage.makedirs(final.rsplit("/", 1)[0])
        try:
            storage.rename(staged, final)
        except OSError:
            if storage.exists(staged) or not storage.exists(final):
                raise
            continue  # a concurrent claim published it first
        moved += 1
    return moved


@dataclass(frozen=True)
class Claim:
    version: str  # of the partition state: the `claim` of this writer's first commit
    published: int  # files of an interrupted commit this claim published


def claim_partition(storage: LakeStorage, feed: str, topic: str, partition: int) -> Claim:
    """Before reading a partition: publish its last decided commit's files, take the partition (a conditional
    rewrite of its state with a fresh writer id, retried until it wins: every commit prepared by an earlier
    writer is fenced from here on), then sweep its staging, which now only fenced writers' files can be in."""
    metadata = FeedMetadata(storage, feed)
    with storage.exclusive(partition_lock(topic, partition)):
        published = finish_legacy_manifest(storage, topic, partition)
        while True:
            state, version = metadata.partition_state_versioned(topic, partition)
            state = state or {"topic": topic, "partition": partition}
            published += publish(storage, [(staged, final) for staged, final in state.get("pending", [])])
            claimed = metadata.write_partition_state(
                topic, partition, {**state, "pending": [], "writer": uuid.uuid4().hex}, version)
            if claimed is not None:
                break
        if storage.exists(staging_dir(topic, partition)):
            storage.delete_dir(staging_dir(topic, partition))
        return Claim(claimed, published)


def finish_legacy_manifest(storage: LakeStorage, topic: str, partition: int) -> int:
    """A commit that an earlier lakehouse (manifest protocol) left interrupted: publish it and record its offset.
    Returns the files it published."""
    path = manifest_file(topic, partition)
    if not storage.exists(path):
        return 0
    entry = orjson.loads(storage.read_bytes(path))
    published = publish(storage, [(staged, final) for staged, final in entry["renames"]])
    metadata = FeedMetadata(storage, entry["feed"])
    state = metadata.partition_state(topic, partition) or {}
    if state.get("next_offset", -1) < entry["next_offset"]:  # not recorded yet: counts are added exactly once
        totals = Counts.of(state) + Counts.of(entry["counts"])
        metadata.save_partition_state(topic, partition, entry["next_offset"], asdict(totals))
    storage.delete_file(path)
    return published


def published_offsets(storage: LakeStorage, feed: str, topic: str, dry_run: bool = False) -> dict[int, int]:
    """The landed offset of each partition of `topic`, once every file of a record below it is published (a decided
    commit whose files a writer is still publishing is published here too; `dry_run`: nothing is moved)."""
    metadata = FeedMetadata(storage, feed)
    landed = metadata.offsets(topic)
    if not dry_run:
        with holding_partitions(storage, [(topic, partition) for partition in landed]):
            for partition in landed:
                state = metadata.partition_state(topic, partition) or {}
                publish(storage, [(staged, final) for staged, final in state.get("pending", [])])
                landed[partition] = int(state.get("next_offset", landed[partition]))
    return landed


def partition_lock(topic: str, partition: int) -> str:
    return f"{STAGING}/locks/{topic}+{partition}.lock"


def day_lock(feed: str, day: date) -> str:
    """One lock per stream day, held by everyone who rewrites or deletes the day's files as a whole: compaction,
    retention and backfill (taken before any partition lock, so the lock order stays one for all)."""
    return f"{STAGING}/locks/days/{feed}/{day.isoformat()}.lock"


@contextmanager
def holding_partitions(storage: LakeStorage, partitions: Iterable[tuple[str, int]]) -> Iterator[None]:
    """Hold the locks of these (topic, partition)s: no commit of this machine lands a file of them meanwhile.
    Whoever else rewrites or deletes landed files (backfill, retention) holds them too."""
    with ExitStack() as locks:
        for topic, partition in sorted(set(partitions)):  # one lock order for everyone: no deadlock
            locks.enter_context(storage.exclusive(partition_lock(topic, partition)))
        yield


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
