"""The checkpoint's landing in two halves (a lake folder under tmp_path, no broker): records taken while a commit
stages in the worker land in the next commit, and a partition fenced meanwhile lands neither."""

from __future__ import annotations

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from lakehouse.catalog import FeedCatalog
from lakehouse.lake import commit
from lakehouse.lake.checkpoint import Checkpoint, FlushPolicy, PartitionProgress
from lakehouse.lake.decode import FeedDecoder
from lakehouse.lake.metadata import FeedMetadata
from lakehouse.storage import LakeStorage

TOPIC = "t_transaction_stream"


def checkpoint_of(root: str) -> tuple[Checkpoint, PartitionProgress, LakeStorage]:
    storage = LakeStorage(root)
    FeedCatalog(storage).init()
    feed = FeedCatalog(storage).get("transaction_stream")
    checkpoint = Checkpoint(storage, {TOPIC: FeedDecoder(feed, FeedMetadata(storage, feed.name))},
                            FlushPolicy(50_000, 30.0, 64, 250_000))
    claim = commit.claim_partition(storage, feed.name, TOPIC, 0)
    progress = checkpoint.partitions[(TOPIC, 0)] = PartitionProgress(feed, TOPIC, 0, 0, 0, claim=claim.version)
    return checkpoint, progress, storage


def take(checkpoint: Checkpoint, progress: PartitionProgress, offsets: range) -> None:
    """Records at `offsets` of partition 0, as the consumer hands them over."""
    values = [orjson.dumps({"transaction_id": f"t{o}", "timestamp": "2026-09-07T10:00:00Z", "user_id": "u1",
                            "amount": 1.5}) for o in offsets]
    table, _good, bad = checkpoint.decoders[TOPIC].decode(values)
    assert bad == {} and table.num_rows == len(offsets)
    checkpoint.add(TOPIC, table, pa.table({"partition": pa.array([0] * len(offsets), pa.int32()),
                                           "offset": pa.array(list(offsets), pa.int64()),
                                           "timestamp": pa.array([0] * len(offsets), pa.int64())}))
    progress.next_offset = offsets[-1] + 1


def landed_ids(storage: LakeStorage) -> list[str]:
    files = sorted(stored.path for stored in storage.walk_files("streams/transaction_stream"))
    return [i for path in files for i in pq.read_table(storage.full(path)).column("transaction_id").to_pylist()]


def test_records_taken_while_a_commit_stages_land_in_the_next_commit(tmp_path) -> None:
    checkpoint, progress, storage = checkpoint_of(str(tmp_path))
    take(checkpoint, progress, range(0, 10))
    checkpoint.begin_commit()
    take(checkpoint, progress, range(10, 15))  # consumed while the first commit stages
    first = checkpoint.end_commit()
    checkpoint.begin_commit()
    second = checkpoint.end_commit()
    checkpoint.close()
    assert [(o.partition, o.offset) for o in first.offsets + second.offsets] == [(0, 10), (0, 15)]
    assert [counts.landed for landed in (first, second) for counts in landed.counts.values()] == [10, 5]
    assert landed_ids(storage) == [f"t{o}" for o in range(15)]
    assert FeedMetadata(storage, "transaction_stream").offsets(TOPIC) == {0: 15}


def test_a_partition_claimed_by_another_writer_while_its_commit_stages_lands_nothing(tmp_path) -> None:
    checkpoint, progress, storage = checkpoint_of(str(tmp_path))
    take(checkpoint, progress, range(0, 10))
    checkpoint.begin_commit()
    take(checkpoint, progress, range(10, 15))
    checkpoint.landing.staged.result()  # then another writer takes the partition
    commit.claim_partition(storage, "transaction_stream", TOPIC, 0)
    landed = checkpoint.end_commit()
    assert landed.fenced == [progress] and landed.offsets == []
    checkpoint.restart(progress, 0)
    checkpoint.begin_commit()  # nothing held: the records read after the fenced commit were dropped too
    assert checkpoint.landing is None and checkpoint.buffers == {}
    checkpoint.close()
    assert landed_ids(storage) == []
    assert FeedMetadata(storage, "transaction_stream").offsets(TOPIC) == {}
