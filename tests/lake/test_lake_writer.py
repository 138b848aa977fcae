"""The lake writer's commit protocol on real files: two writers of one partition never both land."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import orjson
import pyarrow as pa
import pytest

from lakehouse import layout
from lakehouse.lake import backfill, commit
from lakehouse.lake.metadata import FeedMetadata
from lakehouse.storage import LakeStorage

FEED, TOPIC, DAY = "clicks", "clicks", date(2026, 11, 20)


def _staged(storage: LakeStorage, start: int, end: int, claim: str | None) -> commit.PartitionCommit:
    item = commit.PartitionCommit(feed=FEED, topic=TOPIC, partition=0, start_offset=start, next_offset=end,
                                  claim=claim)
    item.stage(storage, commit.stream_file(FEED, DAY, TOPIC, 0, start),
               pa.table({"_offset": pa.array(range(start, end), pa.int64())}))
    item.counts = {"consumed": end - start, "landed": end - start, "files": 1}
    return item


def _claim(storage: LakeStorage) -> str:
    return commit.claim_partition(storage, FEED, TOPIC, 0).version


def test_a_writer_that_lost_the_race_for_a_partition_lands_nothing(lake_root: Path) -> None:
    storage = LakeStorage(lake_root)
    # Both read the partition from offset 0 (an overlapping rebalance); the later claim lands 0-99 and then 100-199.
    late = _staged(storage, 0, 150, _claim(storage))
    first = _staged(storage, 0, 100, _claim(storage))
    assert commit.commit_partitions(storage, [first]) == []
    assert commit.commit_partitions(storage, [_staged(storage, 100, 200, first.claim)]) == []

    fenced = commit.commit_partitions(storage, [late])
    assert [(item.start_offset, item.next_offset) for item in fenced] == [(0, 150)]
    offsets = [offset for path in commit.stream_files(storage, FEED)
               for offset in storage.read_parquet(path).column("_offset").to_pylist()]
    assert sorted(offsets) == list(range(200)), "the late writer's rows replaced or duplicated landed ones"
    assert FeedMetadata(storage, FEED).partition_state(TOPIC, 0)["next_offset"] == 200
    assert not [f for f in storage.walk_files(commit.STAGING) if f.path.endswith(".parquet")]


def test_a_commit_whose_staged_files_were_removed_is_refused(lake_root: Path) -> None:
    storage = LakeStorage(lake_root)
    item = _staged(storage, 0, 10, _claim(storage))
    _claim(storage)  # a new owner takes the partition and sweeps its staging meanwhile
    assert commit.commit_partitions(storage, [item]) == [item]
    assert commit.stream_files(storage, FEED) == []
    assert FeedMetadata(storage, FEED).offsets(TOPIC) == {}


@pytest.mark.parametrize("lake_root", ["s3"], indirect=True)
def test_an_object_store_day_swap_killed_after_its_decision_is_finished_by_recovery(lake_root: str) -> None:
    storage = LakeStorage(lake_root)
    day_dir = layout.stream_partition_dir(FEED, DAY)
    for first in (0, 50, 100):  # two files below the backfill's bound (offset 100), one landed after it
        storage.write_parquet(f"{day_dir}/{layout.batch_file_name(TOPIC, 0, first)}",
                              pa.table({"_offset": pa.array(range(first, first + 50), pa.int64())}))
    staged = f"{backfill.BACKFILL_STAGING}/{FEED}/{DAY.isoformat()}.0123456789ab"
    storage.write_parquet(f"{staged}/rebuilt.parquet", pa.table({"_offset": pa.array(range(100), pa.int64())}))
    replaced = [f"{day_dir}/{layout.batch_file_name(TOPIC, 0, first)}" for first in (0, 50)]
    storage.write_bytes(f"{staged}.swap.json", orjson.dumps({"remove": replaced, "add": [
        (f"{staged}/rebuilt.parquet", f"{day_dir}/{TOPIC}+backfill+{DAY.isoformat()}.parquet")]}))
    storage.delete_file(replaced[0])  # killed mid-swap: one replaced file deleted, the rebuilt one not published

    backfill.recover(storage, FEED, [(TOPIC, 0)])
    offsets = [offset for path in commit.stream_files(storage, FEED)
               for offset in storage.read_parquet(path).column("_offset").to_pylist()]
    assert sorted(offsets) == list(range(150)), "a record lost or doubled by the swap's recovery"
    assert not storage.walk_files(backfill.BACKFILL_STAGING)
