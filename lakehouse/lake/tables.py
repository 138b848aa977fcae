"""Table feeds in the lake consumer: a changelog topic materialized into versioned snapshots.

The consumer reads each table topic from the beginning (compacted topics stay small), keeps the
latest value per key (a tombstone deletes it) and, once it has caught up with the end offsets seen at
start, writes a complete `version=N` through lakehouse.lake.snapshots: only when the table changed, at most
once per snapshot interval, and a final one when it stops. A half-read table is never published.

Several copies of the consumer each materialize every table feed, but only one at a time publishes a feed
(the holder of its publisher lock, kept until that copy ends); the others keep their state current and
take over at their next snapshot once the holder is gone. So copies never publish older states over newer.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass

from lakehouse import layout
from lakehouse.catalog import Feed
from lakehouse.kafka import clients
from lakehouse.kafka.changelog import ChangelogReader
from lakehouse.lake.metadata import FeedMetadata
from lakehouse.lake.snapshots import SnapshotResult, current_version, write_snapshot
from lakehouse.metrics import ConsumerMetrics
from lakehouse.quarantine import QuarantineWriter
from lakehouse.settings import Settings
from lakehouse.storage import LakeStorage

log = logging.getLogger(__name__)


@dataclass
class TableTotals:
    consumed: int = 0
    applied: int = 0
    quarantined: int = 0
    versions_written: int = 0
    current_version: int | None = None


class TableLander:
    def __init__(self, settings: Settings, feeds: list[Feed], snapshot_interval: float, until_end: bool,
                 stop: threading.Event, metrics: ConsumerMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.storage = LakeStorage(settings.data_lake_root)
        self.quarantine = QuarantineWriter(self.storage)
        self.snapshot_interval = snapshot_interval
        self.until_end = until_end
        self.stop = stop
        self.feeds = [feed for feed in feeds if self._topic_exists(feed)]
        self.totals = {feed.name: TableTotals() for feed in feeds}
        self._publisher_locks = ExitStack()
        self._publishing: set[str] = set()

    def _topic_exists(self, feed: Feed) -> bool:
        if clients.topic_partitions(self.settings, self.settings.topic(feed.topic)):
            return True
        log.warning("table feed %s: topic %s does not exist yet; skipped", feed.name, self.settings.topic(feed.topic))
        return False

    def run(self) -> dict[str, TableTotals]:
        if not self.feeds:
            return self.totals
        reader = ChangelogReader(self.settings, self.feeds, self.quarantine)
        last_snapshot = float("-inf")
        try:
            while not self.stop.is_set():
                reader.poll(timeout=0.5)
                if not reader.caught_up():
                    continue
                if self.until_end:
                    break
                if time.monotonic() - last_snapshot >= self.snapshot_interval:
                    self._snapshot(reader)
                    last_snapshot = time.monotonic()
            if reader.caught_up():
                self._snapshot(reader)
        finally:
            reader.close()
            self._publisher_locks.close()
        return self.totals

    def _snapshot(self, reader: ChangelogReader) -> None:
        self.quarantine.flush()  # bad records are on disk before the version that skipped them
        for feed in self.feeds:
            state = reader.states[feed.name]
            totals = self.totals[feed.name]
            self.metrics.count(feed.name, consumed=state.applied + state.quarantined - totals.consumed,
                               landed=state.applied - totals.applied,
                               quarantined=state.quarantined - totals.quarantined)
            totals.applied, totals.quarantined = state.applied, state.quarantined
            totals.consumed = state.applied + state.quarantined
            if not self._publishes(feed):
                continue
            if state.changed or current_version(self.storage, feed.name) is None:
                result = write_snapshot(self.storage, feed, state.rows(), source_offsets=state.next_offsets)
                state.changed = False
                self._record(feed, result, totals)

    def _publishes(self, feed: Feed) -> bool:
        """Whether this copy publishes `feed` (taking its publisher lock when free; kept until the run ends)."""
        if feed.name not in self._publishing:
            try:
                self._publisher_locks.enter_context(self.storage.exclusive(layout.publisher_lock(feed.name),
                                                                           wait=False))
            except BlockingIOError:
                log.info("table %s: another consumer copy publishes its versions; this one stands by", feed.name)
                return False
            self._publishing.add(feed.name)
        return True

    def _record(self, feed: Feed, result: SnapshotResult, totals: TableTotals) -> None:
        totals.current_version = result.version
        if result.written:
            totals.versions_written += 1
            log.info("table %s: %s written (%d rows)", feed.name, layout.version_folder(result.version),
                     result.row_count)

        def note(document: dict) -> None:
            document["changelog"] = {"records": totals.consumed, "applied": totals.applied,
                                     "quarantined": totals.quarantined}
        FeedMetadata(self.storage, feed.name).update(note)
