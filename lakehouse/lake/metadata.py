"""Per-feed metadata kept in the lake, next to the data it describes.

  _metadata/<feed>/feed.json                         schema and its history, counts, current version, updated_at
  _metadata/<feed>/offsets/<topic>+<partition>.json  next offset to land for one Kafka partition

Offsets live in one file per Kafka partition so that consumers of one group, each owning different
partitions, never write the same file. Every write is atomic (LakeStorage.write_bytes).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import orjson

from lakehouse import layout
from lakehouse.storage import LakeStorage


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class FeedMetadata:
    def __init__(self, storage: LakeStorage, feed: str) -> None:
        self.storage = storage
        self.feed = feed

    def read(self) -> dict:
        path = layout.metadata_file(self.feed)
        return orjson.loads(self.storage.read_bytes(path)) if self.storage.exists(path) else {"feed": self.feed}

    def update(self, change: Callable[[dict], None]) -> dict:
        """Read feed.json, let `change` edit it in place, stamp updated_at, write it back atomically; under the
        feed's metadata lock and as a conditional write (retried from a fresh read when another writer, maybe on another
        machine, changed it first), so concurrent updaters (consumer copies, export, retention) never lose a change."""
        path = layout.metadata_file(self.feed)
        with self.storage.exclusive(layout.metadata_lock(self.feed)):
            while True:  # the lock keeps this machine's processes out; the conditional write the others
                data, version = self.storage.read_versioned(path)
                document = orjson.loads(data) if data is not None else {"feed": self.feed}
                change(document)
                document["updated_at"] = utc_now_iso()
                if self.storage.write_if(path, orjson.dumps(document, option=orjson.OPT_INDENT_2), version):
                    return document

    def retired_rows(self) -> dict[str, int]:
        """Rows retention has deleted on purpose, per target (stream, quarantine, table): they count as landed."""
        return {target: int(totals.get("rows_deleted", 0))
                for target, totals in self.read().get("retention", {}).items()}

    def offsets(self, topic: str) -> dict[int, int]:
        """Next offset to land per partition of `topic` (partitions never landed are absent)."""
        prefix = f"{topic}+"
        result = {}
        for name in self.storage.list_dir(layout.offsets_dir(self.feed)):
            if name.startswith(prefix) and name.endswith(".json"):
                partition = int(name[len(prefix):-len(".json")])
                entry = orjson.loads(self.storage.read_bytes(layout.offsets_file(self.feed, topic, partition)))
                if entry.get("next_offset") is not None:  # a partition claimed but never landed has none
                    result[partition] = int(entry["next_offset"])
        return result

    def partition_state(self, topic: str, partition: int) -> dict | None:
        """The offsets file of one partition, with any counts its owner keeps there (None if never landed)."""
        path = layout.offsets_file(self.feed, topic, partition)
        return orjson.loads(self.storage.read_bytes(path)) if self.storage.exists(path) else None

    def partition_state_versioned(self, topic: str, partition: int) -> tuple[dict | None, str | None]:
        """The partition state and its version (for `write_partition_state`); (None, None) if there is none."""
        data, version = self.storage.read_versioned(layout.offsets_file(self.feed, topic, partition))
        return (None, None) if data is None else (orjson.loads(data), version)

    def write_partition_state(self, topic: str, partition: int, state: dict, version: str | None) -> str | None:
        """Write the partition state if it is still at `version`: its new version, or None (another writer won)."""
        entry = {**state, "topic": topic, "partition": partition, "updated_at": utc_now_iso()}
        return self.storage.write_if(layout.offsets_file(self.feed, topic, partition), orjson.dumps(entry), version)

    def save_partition_state(self, topic: str, partition: int, next_offset: int, counts: dict[str, int]) -> None:
        """Next offset and cumulative counts of one partition in one atomic write, so they never disagree.

        offsets() reads the same file; only the partition's owner writes it.
        """
        entry = {**counts, "topic": topic, "partition": partition, "next_offset": next_offset,
                 "updated_at": utc_now_iso()}
        self.storage.write_bytes(layout.offsets_file(self.feed, topic, partition), orjson.dumps(entry))

    def partition_states(self) -> list[dict]:
        """Every partition file of this feed, all topics (for totals and reconciliation)."""
        folder = layout.offsets_dir(self.feed)
        return [orjson.loads(self.storage.read_bytes(f"{folder}/{name}"))
                for name in self.storage.list_dir(folder) if name.endswith(".json")]

    def landed_partitions(self) -> list[tuple[str, int]]:
        """The (topic, partition)s this feed has landed: whose locks a rewrite or delete of its files holds."""
        return [(state["topic"], int(state["partition"])) for state in self.partition_states()]


class ReadOnlyMetadata(FeedMetadata):
    """Feed metadata for a dry run: schema evolutions are applied in memory, never written."""

    def update(self, change: Callable[[dict], None]) -> dict:
        document = self.read()
        change(document)
        return document
