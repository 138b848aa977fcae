"""Reconciliation: every record a feed consumed is in its files, in its quarantine, or was deleted by retention.

`kafka_consumer_datalake.py --reconcile` prints it; `data_lake_config.py status` builds on it.
"""

from __future__ import annotations

from dataclasses import dataclass

from lakehouse import layout
from lakehouse.catalog import Feed
from lakehouse.lake import commit
from lakehouse.lake.metadata import FeedMetadata
from lakehouse.storage import LakeStorage


@dataclass(frozen=True)
class Reconciliation:
    feed: str
    consumed: int
    landed: int  # rows landed in files, including those retention has deleted since (`retired`)
    quarantined: int  # the same for quarantine records
    retired: int = 0

    @property
    def balanced(self) -> bool:
        return self.consumed == self.landed + self.quarantined


def reconcile(storage: LakeStorage, feeds: list[Feed]) -> list[Reconciliation]:
    """Per feed: records consumed (lake metadata) against rows in its files and in its quarantine."""
    results = []
    for feed in feeds:
        if feed.kind == "table":
            changelog = FeedMetadata(storage, feed.name).read().get("changelog", {})
            results.append(Reconciliation(feed.name, changelog.get("records", 0), changelog.get("applied", 0),
                                          changelog.get("quarantined", 0)))
            continue
        metadata = FeedMetadata(storage, feed.name)
        quarantine_dir = f"{layout.QUARANTINE}/{feed.name}"
        quarantined = sum(storage.parquet_row_count(f.path) for f in storage.walk_files(quarantine_dir)
                          if f.path.endswith(".parquet"))
        retired = metadata.retired_rows()
        results.append(Reconciliation(
            feed.name, sum(int(s.get("consumed", 0)) for s in metadata.partition_states()),
            commit.landed_rows(storage, feed.name) + retired.get("stream", 0),
            quarantined + retired.get("quarantine", 0), sum(retired.values())))
    return results
